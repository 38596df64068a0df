"""overlay.v: the conv datapath generated for a design's hardware (``omniconv verilog``).

:func:`write_overlay` writes ``rtl.conv_datapath`` for the OverlayParams of a design with the
buffer sizes of :func:`overlay_limits` and the board's multiplier target.  ``omniconv
verilog``, ``omniconv.calibrate`` and the synthesis benches generate their overlay.v through
it, so the cost model is calibrated on exactly what the flow writes (docs/calibration.md).
"""

from __future__ import annotations

from pathlib import Path

from rtl.params import OVERLAY_MAX_WORDS

__all__ = ["TOP", "overlay_limits", "write_overlay", "generator_sources"]

#: Name of overlay.v's top module.
TOP = "overlay"


def overlay_limits(params, precision: int = 8) -> dict:
    """Buffer sizes of the datapath written as overlay.v, from the OverlayParams.

    One array tile of M and N (the larger side of the array), K what the accumulator holds
    (at most 64), and the feature, weight, tile and output buffers from the OverlayParams'
    KiB, each capped at :data:`rtl.params.OVERLAY_MAX_WORDS` words; the FFT path's tile and spectrum
    buffers like the feature buffer, and room for its 3·N² GEMMs.
    """
    side = max(params.rows, params.cols)
    act_words = params.act_buffer_kib * 1024 * 8 // params.a_width
    weight_words = params.weight_buffer_kib * 1024 * 8 // params.b_width
    out_words = params.out_buffer_kib * 1024 * 8 // params.acc_width
    max_k = min(64, 1 << max(0, params.acc_width - params.a_width - params.b_width))
    cap = lambda v: max(2, min(v, OVERLAY_MAX_WORDS))  # noqa: E731
    return dict(max_m=side, max_k=max_k, max_n=side, feature_words=cap(act_words),
                weight_words=cap(weight_words), tile_words=cap(act_words),
                out_words=cap(min(out_words, side * side)),
                max_gemms=max(49, 3 * params.fft_size ** 2), spectral_words=cap(act_words))


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
