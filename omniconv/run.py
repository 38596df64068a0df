"""``omniconv run CONFIG --input X.npy [--out DIR]``: run the config's quantised network on the
simulated overlay, as onnxruntime runs it.

The network must be an ONNX model quantised by ``onnxruntime.quantization.quantize_static``
in the QDQ format (uint8 activations, per-channel int8 weights); the overlay computes its
integer kernels value for value as onnxruntime does (docs/verify.md, "omniconv run").

1. The design: ``DIR/design.json`` when it is up to date (:func:`omniconv.flow.is_stale`)
   and requantises per channel, else a fresh exploration of the config (not written).
2. ``X.npy`` is the graph input as onnxruntime takes it: float32, batch dimension 1
   included.  The host quantises it (the graph input's QuantizeLinear), the compiler builds
   the program and DRAM image with the model's weights and quantisation, and the runtime
   (:mod:`sim.runtime`) runs it on the overlay top in Verilator, one progress line per layer
   on stderr.
3. Each graph output is read back, dequantised as the model's DequantizeLinear does and
   written as ``DIR/<output name>.npy`` (float32, onnxruntime's shape; characters other than
   letters, digits, ``.``, ``_`` and ``-`` in the name become ``_``), with ``DIR/run.json``:
   per layer its predicted cycles, measured and predicted end cycle and DRAM bytes; the
   totals; the simulation speed.

Exit 0 when the run finished, 1 when the overlay stopped with an error, 2 for bad input (a
float model, an input of the wrong shape or dtype, a layer the overlay does not run), 3 when
an output cannot be written.
"""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path

__all__ = ["add_arguments", "run", "output_file_name"]


def add_arguments(parser) -> None:
    # the DRAM model's options are omniconv verify's, with its checks
    from omniconv.verify import _cycles, _stall

    parser.add_argument("config", help="run config (YAML) whose network is a QDQ ONNX model")
    parser.add_argument("--input", metavar="X.npy", required=True,
                        help="the graph input as onnxruntime takes it (float32, batch 1)")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help="output folder (default: build/<config stem>)")
    parser.add_argument("--dram-latency", metavar="CYCLES", type=_cycles, default=None,
                        help="the DRAM model's read latency in cycles (default: the board's "
                             "dram_latency_ns at its clock, as design.json is timed)")
    parser.add_argument("--dram-stall", metavar="N", type=_stall, default=0,
                        help="random AXI back-pressure, N/256 of the cycles (default 0)")


def output_file_name(name: str) -> str:
    """The file an ONNX graph output is written to (module docstring)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name) + ".npy"


def _read_input(path: str):
    import numpy as np

    from dse.errors import InputError

    p = Path(path)
    if not p.is_file():
        raise InputError(path, "", "does not exist")
    try:
        return np.load(p, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError(path, "", f"is not a .npy array ({exc})") from None


def _output_shapes(model_path: Path) -> dict:
    """The graph outputs' shapes from the model (a symbolic dimension, the batch, is 1)."""
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    return {o.name: tuple(d.dim_value or 1 for d in o.type.tensor_type.shape.dim)
            for o in model.graph.output}


def _design(config, out_dir: Path, log):
    from dse.design import read_design
    from omniconv.flow import explore, is_stale

    path = out_dir / "design.json"
    if not is_stale(path, config):
        design = read_design(path)
        if design.hardware.get("requant") == "f32":
            log(f"design from {path}")
            return design
    log("design.json missing, stale or not quantised: exploring the config")
    return explore(config, progress=False)


def run(args) -> int:
    """Run ``omniconv run``: exit 0 done, 1 the overlay stopped, 2 bad input."""
    import numpy as np

    from dse.design import write_bytes_atomic, write_text_atomic
    from dse.errors import InputError, check_output_dir, output_errors
    from dse.load import load_network
    from omniconv.config import load_config
    from omniconv.flow import quantized_network
    from omniconv.verify import dram_latency
    from sim.runtime import check_input, run_quantized

    config = load_config(args.config)
    out_dir = Path(args.out) if args.out else config.out_dir
    check_output_dir(out_dir)

    def log(text):
        print(text, file=sys.stderr, flush=True)

    x = _read_input(args.input)
    quant = quantized_network(config)
    if quant is None:
        raise InputError(str(config.path), "network",
                         "must be an ONNX model quantised in the QDQ format "
                         "(onnxruntime.quantization.quantize_static); omniconv run computes "
                         "its integer kernels as onnxruntime does")
    network = load_network(config.network_spec, config.base_dir)
    try:
        check_input(x, network)
    except ValueError as exc:
        raise InputError(args.input, "", str(exc)) from None
    design = _design(config, out_dir, log)
    with output_errors(out_dir):
        try:
            result = run_quantized(network, design, quant, x, out_dir / "sim",
                                   output_shapes=_output_shapes(Path(config.network_spec)),
                                   latency=dram_latency(args, config),
                                   stall=args.dram_stall, log=log,
                                   bandwidth=config.board.dram_bandwidth_256(
                                       int(design.hardware["bus_bits"])))
        except ValueError as exc:                 # a layer the overlay does not run
            raise InputError(str(config.path), "network", str(exc)) from None
        except RuntimeError as exc:
            log(f"omniconv run: {exc}")
            return 1
        written = []
        for name, values in result.outputs.items():
            buf = io.BytesIO()
            np.save(buf, values.astype(np.float32))
            path = out_dir / output_file_name(name)
            write_bytes_atomic(path, buf.getvalue())
            written.append(path)
        write_text_atomic(out_dir / "run.json", json.dumps(result.doc, indent=1) + "\n")
    t = result.doc["totals"]
    print(f"wrote {', '.join(str(p) for p in written)} and {out_dir / 'run.json'}: "
          f"{t['measured_cycles']:,} cycles (predicted {t['predicted_cycles']:,})")
    return 0
