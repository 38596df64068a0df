"""dse.compiler.asm: text and binary round trips, assembler errors, the token checker and the
schedule of the four engines."""

from __future__ import annotations

import dataclasses
import random
import re
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dse.compiler.asm import (AsmError, TokenError, assemble, check_tokens, disassemble,
                     format_instruction, from_bytes, from_words, parse_line, queues,
                     read_image, schedule, to_bytes, to_words, write_image)
from rtl.isa import (NEIGHBOURS, ComputeTile, Engine, FetchGeometry, Finish,
                     IllegalInstruction, LoadTile, PoolTile, StoreTile)
from sim.bench.isa_strategies import instructions

ROOT = Path(__file__).resolve().parents[2]
L, C, P, S = Engine.LOAD, Engine.COMPUTE, Engine.POOL, Engine.STORE


# -- the hand-written two-band conv layer (docs/isa.md shows the same program) -------------

#: 3×3 conv, 64 → 64 channels, 56×56, padding 1, im2col, weight-stationary; two bands of
#: 28 output rows, each reading 29 input rows (one halo row); buffers of 8-lane words, so a
#: 64-channel pixel is 8 words; band 1 sits in the second half of each buffer (0x4000).
TWO_BANDS = """\
# conv3x3 64->64 on 56x56 (pad 1), im2col, two bands of 28 output rows
load.setup buf=weight elem=1 row_pitch=36864 px_pitch=64
load.setup buf=feature elem=1 row_pitch=3584 px_pitch=64
compute.setup images=0x0
store.setup elem=1 row_pitch=3584 px_pitch=64
load.tile buf=weight dram=0x10100000 addr=0x0 rows=1 cols=576 ch=64
load.tile buf=feature dram=0x10000000 addr=0x0 rows=29 cols=56 ch=64 push=compute
compute.tile image=0x0 pop=load push=store
load.tile buf=feature dram=0x10017a00 addr=0x4000 rows=29 cols=56 ch=64 push=compute
store.tile dram=0x10200000 addr=0x0 rows=28 cols=56 ch=64 pop=compute
compute.tile image=0x4 pop=load push=store
store.tile dram=0x10218800 addr=0x4000 rows=28 cols=56 ch=64 pop=compute
finish
"""

#: Assumed durations of the worked example: setups 1 cycle, the weight load 20, a band's
#: load 100, its compute 300, its store 80.
TWO_BAND_CYCLES = [1, 1, 1, 1, 20, 100, 300, 100, 80, 300, 80, 0]
#: Its timeline, worked out by hand from start = max(own previous end, token arrival):
#: load runs 0-1, 1-2, 2-22, 22-122, 122-222; compute's first tile waits for band 0's
#: token (122), its second for its own end (422; band 1 arrived at 222); each store waits
#: for its compute tile.
TWO_BAND_TIMES = [(0, 1), (1, 2), (0, 1), (0, 1), (2, 22), (22, 122), (122, 422),
                  (122, 222), (422, 502), (422, 722), (722, 802), (802, 802)]


def test_two_band_program_assembles_and_balances():
    program = assemble(TWO_BANDS)
    assert len(program) == 12 and isinstance(program[-1], Finish)
    band1 = program[7]
    assert isinstance(band1, LoadTile) and band1.dram == 0x1000_0000 + 27 * 56 * 64
    assert program[10].dram == 0x1020_0000 + 28 * 56 * 64
    report = check_tokens(program, depth=1)
    assert report.tokens[(L, C)] == 2 and report.tokens[(C, S)] == 2
    assert sum(report.tokens.values()) == 4
    assert report.peak[(L, C)] == 1
    assert report.instructions == {L: 5, C: 3, P: 0, S: 3}


def test_two_band_program_schedule():
    assert schedule(assemble(TWO_BANDS), TWO_BAND_CYCLES, depth=2) == TWO_BAND_TIMES


def test_two_band_text_is_canonical():
    body = "".join(line + "\n" for line in TWO_BANDS.splitlines() if not line.startswith("#"))
    assert disassemble(assemble(TWO_BANDS)) == body


def test_docs_example_is_this_program():
    page = (ROOT / "docs" / "isa.md").read_text()
    blocks = re.findall(r"```asm\n(.*?)```", page, re.S)
    assert TWO_BANDS in blocks
    for block in blocks:
        check_tokens(assemble(block), depth=2)


# -- round trips ------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(inst=instructions())
def test_text_round_trip(inst):
    text = format_instruction(inst)
    assert parse_line(text) == inst
    assert disassemble(assemble(text)) == text + "\n"


@settings(max_examples=100, deadline=None)
@given(inst=instructions(), seed=st.integers(0, 1 << 16))
def test_field_order_spacing_and_comments_do_not_matter(inst, seed):
    mnemonic, *args = format_instruction(inst).split()
    random.Random(seed).shuffle(args)
    line = "   " + "  ".join([mnemonic, *args]) + "   # a comment = with text"
    assert parse_line(line) == inst


@settings(max_examples=50, deadline=None)
@given(program=st.lists(instructions(), max_size=12))
def test_binary_round_trip(program):
    data = to_bytes(program)
    assert len(data) == 16 * len(program)
    assert from_bytes(data) == program
    words = to_words(program)
    assert words == list(struct.unpack(f"<{4 * len(program)}I", data))
    assert from_words(words) == program
    assert assemble(disassemble(program)) == program


def test_image_is_little_endian_by_hand(tmp_path):
    assert to_bytes([Finish()]) == b"\x0f" + bytes(15)
    tile = StoreTile(dram=0x1122334455, addr=0, rows=1, cols=1, ch=1, pop={"compute"})
    # opcode 8, pop bit 0 (compute) at bit 4, dram 47:8, addr 67:48, rows 79:68, cols 91:80,
    # ch 104:92
    word = 0x8 | 1 << 4 | 0x1122334455 << 8 | 1 << 68 | 1 << 80 | 1 << 92
    assert to_bytes([tile]) == word.to_bytes(16, "little")
    assert to_words([tile])[0] == word & 0xFFFF_FFFF
    path = tmp_path / "out" / "program.bin"
    write_image(path, [tile, Finish()])
    assert path.read_bytes() == word.to_bytes(16, "little") + b"\x0f" + bytes(15)
    assert read_image(path) == [tile, Finish()]


def test_bad_images_are_refused():
    with pytest.raises(ValueError, match=r"^image length must be a multiple of 16 bytes, "
                                         r"not 17$"):
        from_bytes(bytes(17))
    image = to_bytes([Finish(), Finish()]) + bytes(16)
    with pytest.raises(IllegalInstruction, match=r"^instruction 2 \(byte 32\): illegal "
                                                 r"instruction 0x0+: unknown opcode 0x0$"):
        from_bytes(image)
    with pytest.raises(ValueError, match=r"^words must come in groups of 4, not 3$"):
        from_words([0, 0, 0])
    with pytest.raises(ValueError, match=r"^words must be 32-bit unsigned integers, "
                                         r"not 4294967296$"):
        from_words([1 << 32, 0, 0, 0])
    with pytest.raises(TypeError, match=r"^program must hold rtl.isa.Instruction objects"):
        to_bytes([0xF])


# -- assembler errors -------------------------------------------------------------------


@pytest.mark.parametrize("line,message", [
    ("load.tiel buf=feature", r"mnemonic must be one of .*, not 'load.tiel'; did you mean "
                              r"'load.tile' or 'load.setup'\?"),
    ("store.tile dram=0 addr=0 rows=1 cols=1 ch=1 rws=2",
     r"store.tile has no field 'rws' \(fields: pop, push, dram, addr, rows, cols, ch, tile, "
     r"slot\); did you mean 'rows'\?"),
    ("store.tile dram=0 addr=0 rows=1", r"store.tile needs cols, ch"),
    ("store.tile dram=0 addr=0 rows=1 rows=2 cols=1 ch=1", r"store.tile field rows given twice"),
    ("store.tile dram=0 addr=0 rows=x cols=1 ch=1", r"store.tile rows must be an integer, "
                                                    r"not 'x'"),
    ("store.tile dram=0 addr=0 rows=4096 cols=1 ch=1", r"store.tile rows must be between 1 "
                                                       r"and 4095 \(12 bits\), not 4096"),
    ("store.tile dram=0 addr=0 rows=1 cols=1 ch=1 pop=load", r"store.tile pop must name "
                                                             r"neighbours of store \(compute, "
                                                             r"pool\), not 'load'"),
    ("store.tile dram 0", r"store.tile operands must be name=value, not 'dram'"),
    ("compute.tile image=0x100000", r"compute.tile image must be between 0 and 1048575 "
                                    r"\(20 bits\), not 1048576"),
    ("compute.setup images=0x0 alg=im2col", r"compute.setup has no field 'alg' \(fields: pop, "
                                             r"push, images\)"),
    ("load.setup buf=feature elem=3 row_pitch=1 px_pitch=1", r"load.setup elem must be one "
                                                              r"of 1, 2, 4, not 3"),
    ("finish now=1", r"finish has no field 'now' \(fields: none\)"),
])
def test_assembler_errors_name_the_line(line, message):
    with pytest.raises(AsmError, match=rf"^line 3: {message}$"):
        assemble(f"# header\n\n{line}\nfinish\n")


def test_comment_and_blank_lines_are_skipped():
    assert assemble("  # only a comment\n\n\t\nfinish # done\n") == [Finish()]
    assert parse_line("# nothing") is None


# -- the token checker ------------------------------------------------------------------


def _inst(engine: Engine, pop=(), push=()):
    """A small instruction of an engine with the given tokens."""
    base = {L: LoadTile(buf="feature", dram=0, addr=0, rows=1, cols=1, ch=1),
            C: ComputeTile(image=0),
            P: PoolTile(in_addr=0, in2_addr=0, out_addr=0, rows=1, cols=1),
            S: StoreTile(dram=0, addr=0, rows=1, cols=1, ch=1)}[engine]
    return dataclasses.replace(base, pop=frozenset(pop), push=frozenset(push))


def banded(n: int) -> list:
    """The double-buffered pattern for n bands: load i+2 waits until compute i frees its
    feature half, compute i+2 until store i frees its output half; issued as load 0, load 1,
    then compute i, load i+2, store i."""
    prog = [_inst(L, push=[C]) for _ in range(min(n, 2))]
    for i in range(n):
        prog.append(_inst(C, pop=[L] + ([S] if i >= 2 else []),
                          push=[S] + ([L] if i + 2 < n else [])))
        if i + 2 < n:
            prog.append(_inst(L, pop=[C], push=[C]))
        prog.append(_inst(S, pop=[C], push=[C] if i + 2 < n else []))
    return prog + [Finish()]


@pytest.mark.parametrize("n", range(1, 7))
def test_double_buffered_bands_need_depth_two(n):
    report = check_tokens(banded(n), depth=2)
    assert report.tokens[(L, C)] == n and report.tokens[(C, S)] == n
    assert report.tokens[(C, L)] == report.tokens[(S, C)] == max(0, n - 2)
    assert max(report.peak.values()) == min(n, 2)
    if n >= 2:
        with pytest.raises(TokenError, match=r"^instruction 1 \(load.tile\): queue "
                                             r"load→compute would hold 2 tokens, more than "
                                             r"its depth 1$"):
            check_tokens(banded(n), depth=1)


def test_unmatched_push_is_refused():
    program = [_inst(L, push=[C]), _inst(L, push=[C]), _inst(C, pop=[L]), Finish()]
    with pytest.raises(TokenError, match=r"^queue load→compute: 2 pushes by load but 1 pops "
                                         r"by compute; every push needs exactly one matching "
                                         r"pop$"):
        check_tokens(program, depth=4)


def test_pop_before_its_push_is_refused():
    program = [_inst(C, pop=[L]), _inst(L, push=[C]), Finish()]
    with pytest.raises(TokenError, match=r"^instruction 0 \(compute.tile\): compute pops from "
                                         r"load, but no token is queued yet"):
        check_tokens(program, depth=4)


def test_finish_must_end_the_program():
    with pytest.raises(TokenError, match=r"^program must end with finish$"):
        check_tokens([_inst(L)], depth=1)
    with pytest.raises(TokenError, match=r"^program must end with finish$"):
        check_tokens([], depth=1)
    with pytest.raises(TokenError, match=r"^instruction 0 \(finish\): finish must be the last "
                                         r"instruction, not followed by 2 more$"):
        check_tokens([Finish(), _inst(L), Finish()], depth=1)


def test_depth_is_checked():
    with pytest.raises(ValueError, match=r"^depth must be at least 1, not 0$"):
        check_tokens([Finish()], depth=0)
    with pytest.raises(TypeError, match=r"^depth must be an integer, not 2.0$"):
        check_tokens([Finish()], depth=2.0)


def test_queues_run_both_ways_along_the_ring():
    assert sorted((a.value, b.value) for a, b in queues()) == sorted([
        ("load", "compute"), ("compute", "load"), ("compute", "store"), ("store", "compute"),
        ("load", "pool"), ("pool", "load"), ("pool", "store"), ("store", "pool")])


# -- the schedule -----------------------------------------------------------------------


def test_schedule_reports_a_deadlock():
    program = [_inst(L, pop=[C], push=[C]), _inst(C, pop=[L], push=[L]), Finish()]
    with pytest.raises(TokenError, match=r"^the engines deadlock: load at instruction 0 "
                                         r"\(load.tile\) waits for a token from compute; "
                                         r"compute at instruction 1 \(compute.tile\) waits for "
                                         r"a token from load$"):
        schedule(program, [1, 1, 0], depth=2)


def test_schedule_waits_for_room_in_a_full_queue():
    # load pushes three tokens to compute, then feeds pool; compute may take load's tokens
    # only after store, which waits for pool: with depth 2 the third push waits for the
    # first pop
    program = [_inst(L, push=[C]), _inst(L, push=[C]), _inst(L, push=[C]), _inst(L, push=[P]),
               _inst(P, pop=[L], push=[S]), _inst(S, pop=[P], push=[C]),
               _inst(C, pop=[L, S]), _inst(C, pop=[L]), _inst(C, pop=[L]), Finish()]
    cycles = [10, 10, 10, 10, 5, 5, 7, 7, 7, 0]
    with pytest.raises(TokenError, match=r"^the engines deadlock: load at instruction 2 "
                                         r"\(load.tile\) waits for room in the queue to "
                                         r"compute; .*compute at instruction 6 \(compute.tile\) "
                                         r"waits for a token from store"):
        schedule(program, cycles, depth=2)
    with pytest.raises(TokenError, match=r"would hold 3 tokens, more than its depth 2$"):
        check_tokens(program, depth=2)
    # depth 3: loads 0-10-20-30-40, pool 40-45, store 45-50, compute 50-57-64-71
    assert schedule(program, cycles, depth=3) == [
        (0, 10), (10, 20), (20, 30), (30, 40), (40, 45), (45, 50), (50, 57), (57, 64),
        (64, 71), (71, 71)]


def test_schedule_stalls_a_push_until_a_slot_frees():
    # depth 1: the second load may start only when compute has popped the first token
    program = [_inst(L, push=[C]), _inst(L, push=[C]), _inst(C, pop=[L]), _inst(C, pop=[L]),
               Finish()]
    assert schedule(program, [10, 10, 50, 50, 3], depth=1) == [
        (0, 10), (10, 20), (10, 60), (60, 110), (110, 113)]
    # the same with the first compute slow to start: it waits for a store token first
    program = [_inst(S, push=[C]), _inst(L, push=[C]), _inst(L, push=[C]),
               _inst(C, pop=[L, S]), _inst(C, pop=[L]), Finish()]
    assert schedule(program, [40, 10, 10, 50, 50, 0], depth=1) == [
        (0, 40), (0, 10), (40, 50), (40, 90), (90, 140), (140, 140)]


def test_schedule_with_instruction_queues():
    # queue_depth 1: the second load enters the load queue only the cycle after the first
    # load started (0 -> enters at 1), and the compute behind it in program order enters at
    # 2, so it starts at 3 instead of 0; the second load still waits for the engine (10)
    program = [_inst(L), _inst(L), _inst(C), Finish()]
    cycles = [10, 1, 1, 1]
    assert schedule(program, cycles, depth=1) == [(0, 10), (10, 11), (0, 1), (11, 12)]
    assert schedule(program, cycles, depth=1, queue_depth=1) == [
        (0, 10), (10, 11), (3, 4), (11, 12)]
    # deep enough: one instruction a cycle through the fetch register, each a cycle before
    # its start: the compute, third in program order, starts at 2
    assert schedule(program, cycles, depth=1, queue_depth=4) == [
        (0, 10), (10, 11), (2, 3), (11, 12)]


def test_schedule_with_instruction_fetch():
    # a 64-bit bus: two beats a word; the first burst is issued 5 cycles before cycle 0
    # (START_CYCLES = 6 after start), its beats arrive from cycle -3 on, so word 0 (beats
    # -3, -2) is offered at -1 and taken then, word 1 (beats -1, 0) at 1: the load starts
    # at 1 (not 0), the compute (taken at 1, in its queue at 2) at 3
    program = [_inst(L), _inst(C), Finish()]
    fetch = (FetchGeometry(64, 8), 0, 0)
    assert schedule(program, [10, 1, 1], depth=1, queue_depth=4, fetch=fetch) == [
        (1, 11), (3, 4), (11, 12)]
    # a 128-bit bus: one beat a word, word 0 offered at -2: nothing waits
    assert schedule(program, [10, 1, 1], depth=1, queue_depth=4,
                    fetch=(FetchGeometry(128, 8), 0, 0)) == [(0, 10), (1, 2), (10, 11)]
    with pytest.raises(ValueError, match="fetch needs queue_depth"):
        schedule(program, [10, 1, 1], depth=1, fetch=fetch)
    with pytest.raises(ValueError, match="^queue_depth must be at least 1, not 0$"):
        schedule(program, [10, 1, 1], depth=1, queue_depth=0)


def test_schedule_checks_its_cycles():
    with pytest.raises(ValueError, match=r"^cycles must be 2 non-negative integers, one per "
                                         r"instruction, not \[1\]$"):
        schedule([_inst(L), Finish()], [1], depth=1)
    with pytest.raises(ValueError, match=r"not \[1, -1\]$"):
        schedule([_inst(L), Finish()], [1, -1], depth=1)


@st.composite
def token_programs(draw):
    """Random programs whose tokens are valid by construction: run in program order, each
    instruction pops only queued tokens and pushes only into queues with room; the leftover
    tokens are drained at the end by their consumers."""
    depth = draw(st.integers(1, 3))
    level = {q: 0 for q in queues()}
    program = []
    for _ in range(draw(st.integers(0, 25))):
        e = draw(st.sampled_from(list(Engine)))
        pop = [n for n in NEIGHBOURS[e] if level[(n, e)] and draw(st.booleans())]
        push = [n for n in NEIGHBOURS[e] if level[(e, n)] < depth and draw(st.booleans())]
        for n in pop:
            level[(n, e)] -= 1
        for n in push:
            level[(e, n)] += 1
        program.append(_inst(e, pop, push))
    for (src, dst), count in level.items():
        program += [_inst(dst, pop=[src]) for _ in range(count)]
    cycles = draw(st.lists(st.integers(0, 50), min_size=len(program) + 1,
                           max_size=len(program) + 1))
    return program + [Finish()], cycles, depth


@settings(max_examples=150, deadline=None)
@given(case=token_programs())
def test_checked_programs_never_deadlock_and_keep_the_timing_rules(case):
    program, cycles, depth = case
    check_tokens(program, depth)
    times = schedule(program, cycles, depth)
    # each engine in order, each instruction as long as its cycles
    last = {e: 0 for e in Engine}
    for inst, (start, end), c in zip(program[:-1], times, cycles):
        assert end == start + c and start >= last[inst.ENGINE]
        last[inst.ENGINE] = end
    # the k-th pop on a queue starts no earlier than the k-th push on it ended
    ends = {q: [] for q in queues()}
    starts = {q: [] for q in queues()}
    for inst, (start, end) in zip(program[:-1], times):
        for n in inst.push:
            ends[(inst.ENGINE, n)].append(end)
        for n in inst.pop:
            starts[(n, inst.ENGINE)].append(start)
    for q in queues():
        assert len(ends[q]) == len(starts[q])
        assert all(s >= e for s, e in zip(starts[q], ends[q]))
    # and each start is exactly its latest constraint: own previous end, the arrival of
    # each popped token, and (a full queue) the pop that frees a slot for each push
    prev = {e: 0 for e in Engine}
    for i, inst in enumerate(program[:-1]):
        earlier = [p for p in program[:i] if p.ENGINE is inst.ENGINE]
        bounds = [prev[inst.ENGINE]]
        for n in inst.pop:
            bounds.append(ends[(n, inst.ENGINE)][sum(n in p.pop for p in earlier)])
        for n in inst.push:
            k = sum(n in p.push for p in earlier)
            if k >= depth:
                bounds.append(starts[(inst.ENGINE, n)][k - depth])
        assert times[i][0] == max(bounds)
        prev[inst.ENGINE] = times[i][1]
    assert times[-1][0] == max((t[1] for t in times[:-1]), default=0)
