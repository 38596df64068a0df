"""``omniconv verify CONFIG [--out DIR]``: run the conv datapath in Verilator, write verify.json.

The command reads the config, chooses the hardware and hands the rest to :mod:`sim.verify`:

1. The hardware: ``DIR/design.json``'s OverlayParams when that file is newer than the
   config's inputs (:func:`omniconv.flow.is_stale`), else a fresh search of the config.
2. The verification network (``verify.network``, default the config's network) is loaded and
   :func:`sim.verify.verify_config` maps it anew on exactly that hardware with the config's
   allowed algorithms, dataflows, objective and per-layer pins (sparse FFT left out: it has
   no datapath; a per-layer sparse_fft pin is refused with exit status 2), runs every conv
   layer through one Verilator build of the datapath with seeded random data, and checks it
   bit for bit against exact convolution or the approximate algorithms' golden models, and
   its cycles against ``ConvPlan.cycles`` (:mod:`dse.lowering`, the explorer's own
   formula; docs/verify.md).
3. ``DIR/verify.json`` is written atomically; the simulator's job and result files go to
   ``DIR/sim``.  Exit 0 when every layer is bit-exact, 1 when any is not, 2 for bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["add_arguments", "run", "hardware_of", "settings_of"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``omniconv verify``."""
    parser.add_argument("config", metavar="CONFIG",
                        help="run config: a path, or a name in configs/ (with or without .yaml)")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help="output folder (default: build/<config stem>)")


def hardware_of(config, out_dir: Path, log=print):
    """The :class:`rtl.params.OverlayParams` to verify: ``out_dir/design.json``'s when it is
    up to date (:func:`omniconv.flow.is_stale`), else those of a fresh search of ``config``."""
    from dse.design import read_design
    from omniconv.flow import explore, is_stale
    from rtl.params import OverlayParams

    design_path = out_dir / "design.json"
    if not is_stale(design_path, config):
        log(f"hardware from {design_path}")
        return OverlayParams(**read_design(design_path).hardware)
    log("design.json missing or stale: searching the hardware")
    return OverlayParams(**explore(config, progress=False).hardware)


def settings_of(config):
    """The :class:`sim.verify.VerifySettings` of a :class:`omniconv.config.RunConfig`."""
    from sim.verify import VerifySettings

    pins = {name: {k: getattr(pin, k).value for k in ("algorithm", "dataflow")
                   if getattr(pin, k) is not None}
            for name, pin in config.layers.items()}
    return VerifySettings(name=config.name, stem=config.stem, source=str(config.path),
                          network_source=config.verify_network_spec, board=config.board,
                          precision=config.precision, objective=config.objective,
                          algorithms=tuple(a.value for a in config.algorithms),
                          dataflows=tuple(d.value for d in config.dataflows),
                          layer_pins=pins)


def run(args) -> int:
    """Run ``omniconv verify``: exit 0 all bit-exact, 1 any not, 2 bad input."""
    from dse.design import write_text_atomic
    from dse.load import load_network
    from omniconv.config import load_config
    from sim.verify import verify_config

    config = load_config(args.config)
    out_dir = Path(args.out) if args.out else config.out_dir

    def log(text):
        print(text, file=sys.stderr, flush=True)

    params = hardware_of(config, out_dir, log)
    network = load_network(config.verify_network_spec, config.base_dir)
    # the simulator's files beside verify.json: verifications into other folders may run at
    # the same time
    doc = verify_config(settings_of(config), network, params, out_dir / "sim", log=log)
    path = out_dir / "verify.json"
    write_text_atomic(path, json.dumps(doc, indent=1) + "\n")
    t = doc["totals"]
    print(f"wrote {path}: {len(doc['layers'])} layers, all_bit_exact={t['all_bit_exact']}, "
          f"cycles measured {t['measured_cycles']} / predicted {t['predicted_cycles']}, "
          f"max_rel_error {t['max_rel_error']:.4f}")
    return 0 if t["all_bit_exact"] else 1
