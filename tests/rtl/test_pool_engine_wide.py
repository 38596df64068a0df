"""rtl.pool_engine.PoolEngine with wider input or output words (``in_lanes`` / ``out_lanes``
a power of two times ``lanes``), against sim.models.pool.

The engine works on groups of ``lanes`` lanes: a pixel of ``ch`` channels is ⌈ch / lanes⌉
groups.  With ``in_lanes`` > ``lanes`` (an overlay with rows > cols) it reads input words of
``in_lanes`` lanes, ⌈ch / in_lanes⌉ a pixel, and picks each group out of its word; with
``out_lanes`` > ``lanes`` (rows < cols) it writes output words of ``out_lanes`` lanes,
⌈ch / out_lanes⌉ a pixel, each holding consecutive groups, zero past the pixel's last group.
The bench is tests/rtl/test_pool_engine.py's ``_run``: it answers the read ports from Python
lists with junk words around the tiles and junk lanes past ``ch``, and records every write.
The reference is ``pool_tile`` on the tile's lanes as the buffer holds them (every lane of the
⌈ch / lanes⌉ groups), laid out in output words independently of the engine.  Cycles equal
``pool_cycles`` with ``ch_words`` = ⌈ch / lanes⌉ (the groups), exactly.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from dse.cost.transforms import pool_cycles
from rtl.isa import Activation, PoolSetup, PoolTile
from rtl.pool_engine import PoolEngine
from sim.models.pool import pool_output_size, pool_tile
from test_pool_engine import _pack, _run, _unpack

MODES = ("max", "avg", "gmax", "gavg", "add", "rescale")


def _words(values, lanes, per_pixel):
    """rows × cols × n lane values as packed words of ``lanes`` lanes, ``per_pixel`` words a
    pixel (zero past the values)."""
    r, c, n = values.shape
    out = np.zeros((r, c, per_pixel * lanes), dtype=np.int64)
    out[:, :, :n] = values
    return [_pack(w) for w in out.reshape(-1, lanes)]


def _check_wide(engine, cases, seed):
    rng = random.Random(seed)
    lanes, il, ol = engine.lanes, engine.in_lanes, engine.out_lanes
    feature = [rng.getrandbits(8 * il) for _ in range(engine.depth)]
    aux = [rng.getrandbits(8 * il) for _ in range(engine.in2_depth)]
    commands, expected = [], []
    in_at, out_at = 3, 5                           # odd bases: a wrong word offset shows
    for setup, pads, rows, cols in cases:
        ch = setup.ch
        mode = setup.mode.value
        n_in, n_out = -(-ch // il), -(-ch // ol)   # words a pixel
        groups = -(-ch // lanes)
        # the buffer's lanes: random everywhere (junk past ch too)
        a = np.random.default_rng(rng.getrandbits(32)).integers(-128, 128,
                                                                 (rows, cols, n_in * il))
        b = np.random.default_rng(rng.getrandbits(32)).integers(-128, 128,
                                                                 (rows, cols, n_in * il))
        for i, word in enumerate(_words(a, il, n_in)):
            feature[in_at + i] = word
        for i, word in enumerate(_words(b, il, n_in)):
            aux[in_at + 7 + i] = word
        oh, ow = pool_output_size(mode, rows, cols, setup.kh, setup.kw, setup.stride, pads)
        res = pool_tile(mode, a[:, :, :groups * lanes],
                        b[:, :, :groups * lanes] if mode == "add" else None,
                        kh=setup.kh, kw=setup.kw, stride=setup.stride, pads=pads,
                        mult=setup.mult, shift=setup.shift, mult2=setup.mult2,
                        relu=setup.act is Activation.RELU)
        want = [_unpack(w, ol) for w in _words(res.reshape(oh, ow, -1), ol, n_out)]
        commands += [setup, PoolTile(in_addr=in_at, in2_addr=in_at + 7, out_addr=out_at,
                                     rows=rows, cols=cols, pad_t=pads[0], pad_b=pads[1],
                                     pad_l=pads[2], pad_r=pads[3])]
        expected += [None, (out_at, want, int(pool_cycles(mode, rows, cols, groups, setup.kh,
                                                           setup.kw, setup.stride, pads)))]
        in_at += rows * cols * n_in + 11
        out_at += len(want) + 2
        assert in_at + 8 < engine.depth and out_at < engine.out_depth
    writes, log = _run(engine, commands, feature, aux, seed)
    got = {}
    for addr, word in writes:
        assert addr not in got, f"word {addr} written twice"
        got[addr] = word
    n = 0
    for (start, done, error), want in zip(log, expected, strict=True):
        assert not error
        if want is None:
            assert done == start
            continue
        at, words, cycles = want
        assert [got.get(at + i) for i in range(len(words))] == words
        assert done - start == cycles
        n += len(words)
    assert len(got) == n                                   # nothing else written


def _cases(seed, lanes, count):
    rng = random.Random(seed)
    out = []
    for k in range(count):
        mode = MODES[k % len(MODES)]
        rows, cols = rng.randint(1, 6), rng.randint(1, 6)
        ch = rng.randint(1, 5 * lanes)
        pads = tuple(rng.randint(0, 2) for _ in range(4)) if mode in ("max", "avg") else (0,) * 4
        kh = rng.randint(max(1, pads[0] + 1, pads[1] + 1), 3) if mode in ("max", "avg") else 1
        kw = rng.randint(max(1, pads[2] + 1, pads[3] + 1), 3) if mode in ("max", "avg") else 1
        kh, kw = min(kh, pads[0] + rows + pads[1]), min(kw, pads[2] + cols + pads[3])
        stride = rng.randint(1, 2) if mode in ("max", "avg") else 1
        mult = rng.choice([1, rng.randrange(1, 1 << 16)])
        setup = PoolSetup(mode=mode, kh=kh, kw=kw, stride=stride, ch=ch,
                          act=Activation.RELU if rng.random() < 0.4 else Activation.NONE,
                          mult=mult, shift=0 if mult == 1 else rng.randrange(0, 20),
                          mult2=rng.randrange(0, 1 << 16) if mode == "add" else 0)
        out.append((setup, pads, rows, cols))
    return out


@pytest.mark.parametrize("lanes,in_lanes,out_lanes,seed", [
    (4, 4, 8, 1),        # a 4×8 overlay: output words of two groups
    (2, 2, 8, 2),        # four groups an output word
    (4, 8, 4, 3),        # an 8×4 overlay: input words of two groups
    (2, 8, 2, 4),        # four groups an input word
])
def test_wide_words_bit_exact_with_exact_cycles(lanes, in_lanes, out_lanes, seed):
    engine = PoolEngine(lanes, 2048, in_lanes=in_lanes, out_lanes=out_lanes)
    _check_wide(engine, _cases(seed, lanes, 18), seed)


def test_wide_parameter_errors():
    with pytest.raises(ValueError, match=r"^in_lanes must be lanes \(4\) times a power of "
                                         r"two, at most 256, not 12$"):
        PoolEngine(4, in_lanes=12)
    with pytest.raises(ValueError, match=r"^out_lanes must be lanes \(4\) times a power of "
                                         r"two, at most 256, not 6$"):
        PoolEngine(4, out_lanes=6)
    with pytest.raises(ValueError, match=r"^in_lanes or out_lanes must be lanes \(4\), not 8 "
                                         r"and 8$"):
        PoolEngine(4, in_lanes=8, out_lanes=8)
    with pytest.raises(TypeError, match=r"^out_lanes must be an integer, not 8\.0$"):
        PoolEngine(4, out_lanes=8.0)


@pytest.mark.verilator
@pytest.mark.parametrize("in_lanes,out_lanes", [(4, 8), (8, 4)])
def test_wide_lint_clean(tmp_path, in_lanes, out_lanes):
    from sim.runner import emit_verilog, lint_verilog

    engine = PoolEngine(4, 1024, in_lanes=in_lanes, out_lanes=out_lanes)
    violations, _ = lint_verilog(emit_verilog(engine, "pool_engine"), "pool_engine",
                                 work_dir=tmp_path)
    assert not violations, "\n".join(f"line {w.line}: %{w.rule}: {w.message}"
                                     for w in violations[:20])
