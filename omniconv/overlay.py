"""overlay.v: the conv datapath generated for a design's hardware (``omniconv verilog``), and
beside it, where the overlay top runs the design, the top with its program and DRAM image.

:func:`write_overlay` writes ``rtl.conv_datapath`` for the OverlayParams of a design with the
buffer sizes of :func:`overlay_limits` and the board's multiplier target.  ``omniconv
verilog``, ``omniconv.calibrate`` and the synthesis benches generate their overlay.v through
it, so the cost model is calibrated on exactly what the flow writes (docs/calibration.md).

:func:`write_overlay_top` writes ``overlay_top.v`` (:class:`rtl.overlay_top.OverlayTop`: the
datapath of overlay.v with its DRAM master, controller and engines: the top's own modules
followed by overlay.v's text, whose module ``overlay`` it instantiates; for a design the top
runs overlay.v is the top's datapath, :func:`rtl.overlay_top.top_datapath`, with the pool
engine's and the tile-mode loader's ports into its buffers), ``program.bin`` (the
instructions, 16 bytes each, little-endian), ``program.s`` (their text form,
``dse.compiler.asm``) and ``dram.bin`` (the DRAM image from address 0: the program, register
images, weights, the input tensor and room for every layer's output), compiled by
``dse.compiler.network.compile_network``.  The network IR carries no weights, so the image
holds weights and an input drawn from ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

from pathlib import Path

from dse.cost.resources import overlay_limits

__all__ = ["TOP", "TOP_MODULE", "TOP_FILES", "overlay_limits", "overlay_text", "write_overlay",
           "write_overlay_top",
           "generator_sources"]

#: Name of overlay.v's top module.
TOP = "overlay"
#: Name of overlay_top.v's top module.
TOP_MODULE = "overlay_top"
#: The files :func:`write_overlay_top` writes.
TOP_FILES = ("overlay_top.v", "program.bin", "program.s", "dram.bin")


def overlay_text(design, board, precision: int | None = None, *, top: bool = False) -> str:
    """The Verilog of overlay.v for ``design``'s hardware: the conv datapath with the buffer
    sizes of :func:`overlay_limits` and ``board``'s multipliers.

    ``precision`` defaults to the design's.  With ``top`` (a design the overlay top runs)
    the datapath is the top's (:func:`rtl.overlay_top.top_datapath`: the pool engine's and
    the tile-mode loader's extra ports into its buffers), so :func:`write_overlay_top`
    reuses the text.
    """
    from rtl.conv_datapath import generate_verilog
    from rtl.emit import verilog_text
    from rtl.overlay_top import top_datapath
    from rtl.params import DatapathLimits
    from rtl.params import OverlayParams

    if precision is None:
        precision = int(getattr(design, "precision", 8) or 8)
    params = OverlayParams(**design.hardware)
    limits = DatapathLimits(**overlay_limits(params, precision))
    if top:
        return verilog_text(top_datapath(params, limits, precision, target=board.family,
                                         pe_instances=True), TOP)
    return generate_verilog(params, limits, precision=precision, target=board.family,
                            name=TOP)


def write_overlay(design, board, out_dir: Path, precision: int | None = None, *,
                  top: bool = False) -> Path:
    """Write :func:`overlay_text` of ``design`` as ``out_dir/overlay.v``; return the path."""
    from dse.design import write_text_atomic

    path = Path(out_dir) / "overlay.v"
    write_text_atomic(path, overlay_text(design, board, precision, top=top))
    return path


def write_overlay_top(design, network, out_dir: Path, *, seed: int = 0, target: str = "sim",
                      datapath_text=None) -> list[Path]:
    """Write :data:`TOP_FILES` for ``design`` (of ``network``) into ``out_dir`` (module
    docstring); return their paths.

    The top's datapath is module ``overlay`` (multipliers for ``target``, a board family);
    ``datapath_text``, overlay.v as :func:`write_overlay` wrote it with ``top`` for the same
    design and family (a string, or a function returning it, called only once the rest is
    converted: ``omniconv verilog`` writes overlay.v meanwhile in another process), is used
    as its Verilog instead of converting it again.

    Raises
    ------
    ValueError
        If the overlay top cannot run the design (``compile_network``'s reason); nothing is
        written.
    """
    import numpy as np

    from dse.compiler.asm import disassemble
    from dse.compiler.network import compile_network, design_overlay
    from dse.design import write_bytes_atomic, write_text_atomic
    from rtl.emit import verilog_text
    from rtl.isa import INSTRUCTION_BYTES
    from rtl.overlay_top import OverlayTop, table_words_for

    precision = int(getattr(design, "precision", 8) or 8)
    x = np.random.default_rng(seed).integers(-(1 << (precision - 1)), 1 << (precision - 1),
                                             network.input_shape)
    lp, _ = compile_network(network, design, x, seed=seed + 1)
    params, limits = design_overlay(design)
    top = OverlayTop(params, limits, precision, table_words=table_words_for(lp.table_words),
                     token_depth=lp.token_depth, target=target, datapath_module=TOP)
    verilog = None
    if datapath_text is not None:
        shell = verilog_text(top, TOP_MODULE, provided=set(top.instance_modules()))
        text = datapath_text() if callable(datapath_text) else datapath_text
        if _declares_ports(text, top.datapath):
            verilog = shell + text
    if verilog is None:
        verilog = verilog_text(top, TOP_MODULE)
    code = b"".join(i.encode().to_bytes(INSTRUCTION_BYTES, "little") for i in lp.program)
    out_dir = Path(out_dir)
    paths = [out_dir / name for name in TOP_FILES]
    write_text_atomic(paths[0], verilog)
    write_bytes_atomic(paths[1], code)
    write_text_atomic(paths[2], f"; {network.name}: {len(lp.program)} instructions at DRAM "
                                f"address {lp.program_addr:#x}\n" + disassemble(lp.program))
    write_bytes_atomic(paths[3], lp.image)
    return paths


def _declares_ports(text: str, component) -> bool:
    """Whether ``text`` declares module :data:`TOP` with every port of ``component`` (an
    overlay.v written for another datapath is not reused)."""
    import re

    header = re.search(rf"^module {TOP}\((.*?)\);", text, re.M | re.S)
    if header is None:
        return False
    declared = set(re.findall(r"[A-Za-z_][A-Za-z0-9_$]*", header.group(1)))
    return all("__".join(map(str, path)) in declared
               for path, _, _ in component.signature.flatten(component))


def generator_sources() -> list[Path]:
    """The files whose change changes overlay.v for the same design: this module and the RTL
    package's Python sources (an overlay.v older than any of them is regenerated)."""
    import rtl

    return [Path(__file__).resolve(), *sorted(Path(rtl.__file__).resolve().parent.rglob("*.py"))]
