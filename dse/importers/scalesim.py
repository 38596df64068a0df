"""SCALE-Sim topology CSV, so that users bring the workloads they already simulate.

Format (one conv layer per row, rows end with a comma; the header is :data:`HEADER`)::

    Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter,
    Strides,
    Conv1, 230, 230, 7, 7, 3, 64, 2,

(the header is one line in the file).

How rows become IR layers (see ``docs/networks.md``):

- The IFMAP sizes already include the padding, so the layer reads an unpadded map of exactly
  that size.
- SCALE-Sim sizes the output as ``ceil((IFMAP − Filter + Stride) / Stride)``: where the stride
  does not divide ``IFMAP − Filter``, its last window hangs over the bottom or right edge.  We
  keep its output size (and so its MAC count) by padding those edges with the overhang.
- SCALE-Sim topologies skip pools and padding between layers, so a row's IFMAP rarely equals the
  previous row's output.  A row reads the previous layer when the shapes match exactly and
  otherwise reads a fresh ``input`` node of its stated shape, named ``<layer>/ifmap``; the
  network is then a forest of chains (every row still has its exact shape and MACs).
"""

from __future__ import annotations

import csv
from pathlib import Path

from ..errors import InputError
from ..network import Network, NetworkBuilder

__all__ = ["import_scalesim", "HEADER"]

#: The column names, in order (compared without case and surrounding spaces).
HEADER = ("Layer name", "IFMAP Height", "IFMAP Width", "Filter Height", "Filter Width",
          "Channels", "Num Filter", "Strides")


def _cells(row: list[str]) -> list[str]:
    cells = [c.strip() for c in row]
    while cells and cells[-1] == "":  # rows end with a comma: drop the empty last cell
        cells.pop()
    return cells


def import_scalesim(path: str | Path) -> Network:
    """Return the chain of conv layers in the SCALE-Sim topology CSV at *path*.

    Raises
    ------
    InputError
        The file is missing, the header differs from :data:`HEADER`, or a row is malformed
        (field ``row N.<column>``, N counting the header as row 1).
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(path, "", f"cannot be read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise InputError(path, "", "must be a text (CSV) file") from None
    rows = [(n, _cells(r)) for n, r in enumerate(csv.reader(text.splitlines()), 1)]
    rows = [(n, r) for n, r in rows if r]
    if not rows:
        raise InputError(path, "", "must have a header row and at least one layer row")
    n, header = rows[0]
    if [h.lower() for h in header] != [h.lower() for h in HEADER]:
        raise InputError(path, "row 1", f"must be the header '{', '.join(HEADER)},', "
                                        f"not '{', '.join(header)}'")
    if len(rows) < 2:
        raise InputError(path, "", "must have at least one layer row after the header")
    b: NetworkBuilder | None = None
    for n, cells in rows[1:]:
        if len(cells) != len(HEADER):
            raise InputError(path, f"row {n}", f"must have {len(HEADER)} values, "
                                               f"not {len(cells)}")
        name = cells[0]
        if not name:
            raise InputError(path, f"row {n}.{HEADER[0]}", "must not be empty")
        values = []
        for column, cell in zip(HEADER[1:], cells[1:]):
            try:
                value = int(cell)
            except ValueError:
                raise InputError(path, f"row {n}.{column}",
                                 f"must be an integer, not {cell!r}") from None
            if value < 1:
                raise InputError(path, f"row {n}.{column}", f"must be positive, not {value}")
            values.append(value)
        ifmap_h, ifmap_w, filt_h, filt_w, channels, filters, stride = values
        for column, filt, size in (("Filter Height", filt_h, ifmap_h),
                                   ("Filter Width", filt_w, ifmap_w)):
            if filt > size:
                raise InputError(path, f"row {n}.{column}",
                                 f"must be at most the IFMAP size ({size}), not {filt}")
        shape = (channels, ifmap_h, ifmap_w)
        where = f"row {n}"
        if b is None:
            b = NetworkBuilder(path.stem, shape, source=path, input_name=f"{name}/ifmap",
                               input_where=where)
            src = b.last
        elif b.shape() == shape:
            src = b.last
        else:
            src = b.input(b.unique_name(f"{name}/ifmap"), shape, where=where)
        # ceil((I - F + S) / S) outputs: pad the bottom/right edge by the overhang.
        over_h = (-(ifmap_h - filt_h)) % stride
        over_w = (-(ifmap_w - filt_w)) % stride
        if name in b:
            raise InputError(path, f"row {n}.{HEADER[0]}", f"must be unique, not repeat {name!r}")
        b.conv(name, src, out_channels=filters, kernel=[filt_h, filt_w], stride=stride,
               padding=[0, 0, over_h, over_w], where=where)
    return b.build()
