"""Importers: files in other formats → :class:`~dse.network.Network`.

One module per format: :mod:`.onnx_import` (ONNX, BatchNorm folded), :mod:`.yaml_import`
(our own format, docs/networks.md) and :mod:`.scalesim` (SCALE-Sim topology CSV).
Use :func:`dse.load.load_network` to pick one by the file's suffix.  :mod:`.onnx_qdq` reads a
QDQ-quantised ONNX model's per-layer quantisation besides its network (:func:`import_qdq`),
for the compiler; the network alone still comes from :func:`import_onnx`.
"""

from __future__ import annotations

from .onnx_import import import_onnx
from .onnx_qdq import import_qdq, is_qdq
from .scalesim import import_scalesim
from .yaml_import import import_yaml

__all__ = ["import_onnx", "import_qdq", "import_scalesim", "import_yaml", "is_qdq", "IMPORTERS"]

#: File suffix -> importer.
IMPORTERS = {
    ".onnx": import_onnx,
    ".yaml": import_yaml,
    ".yml": import_yaml,
    ".csv": import_scalesim,
}
