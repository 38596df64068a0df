"""overlay.v: the conv datapath generated for a design's hardware (``omniconv verilog``).

:func:`write_overlay` writes ``rtl.conv_datapath`` for the OverlayParams of a design with the
buffer sizes of :func:`overlay_limits` and the board's multiplier target.  ``omniconv
verilog``, ``omniconv.calibrate`` and the synthesis benches generate their overlay.v through
it, so the cost model is calibrated on exactly what the flow writes (docs/calibration.md).
"""

from __future__ import annotations

from pathlib import Path

from dse.cost.resources import overlay_limits

__all__ = ["TOP", "overlay_limits", "write_overlay", "generator_sources"]

#: Name of overlay.v's top module.
TOP = "overlay"


def write_overlay(design, board, out_dir: Path, precision: int | None = None) -> Path:
    """Write the conv datapath for ``design``'s hardware as ``out_dir/overlay.v``.

    ``precision`` defaults to the design's.  Returns the path.
    """
    from dse.design import write_text_atomic
    from rtl.conv_datapath import generate_verilog
    from rtl.params import DatapathLimits
    from rtl.params import OverlayParams

    if precision is None:
        precision = int(getattr(design, "precision", 8) or 8)
    params = OverlayParams(**design.hardware)
    limits = DatapathLimits(**overlay_limits(params, precision))
    text = generate_verilog(params, limits, precision=precision, target=board.family,
                            name=TOP)
    path = Path(out_dir) / "overlay.v"
    write_text_atomic(path, text)
    return path


def generator_sources() -> list[Path]:
    """The files whose change changes overlay.v for the same design: this module and the RTL
    package's Python sources (an overlay.v older than any of them is regenerated)."""
    import rtl

    return [Path(__file__).resolve(), *sorted(Path(rtl.__file__).resolve().parent.rglob("*.py"))]
