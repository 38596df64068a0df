"""rtl.controller in the Amaranth simulator: programs from dse.compiler.asm.assemble run on mock
engines that take a random number of cycles per instruction.

Checked against references that do not come from the RTL: each engine receives exactly its
instructions, in program order, with the fields :func:`rtl.isa.decode` and
:meth:`rtl.isa.Field.encode` give for the words fed in; the measured (start, end) of every
instruction equals ``dse.compiler.asm.schedule(..., latency=DISPATCH_LATENCY)`` shifted by the first
cycle the engines can take commands; illegal words stop the controller with the class
:func:`rtl.isa.decode` reports and the right index; a second run repeats the first; random
idles on the instruction stream and back-pressure from the engines change the timing but
never the order, and never break a token rule.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator

from dse.compiler.asm import TokenError, assemble, check_tokens, disassemble, queues, schedule
from rtl.controller import (DISPATCH_LATENCY, FETCH_LATENCY, FINISH_CYCLES, Controller,
                            ErrorCode, InstructionDecoder, command_layout, format_layout)
from rtl.isa import (BY_OPCODE, INSTRUCTION_BITS, INSTRUCTIONS, NEIGHBOURS, Engine, Finish,
                     IllegalInstruction, decode)

ROOT = Path(__file__).resolve().parents[2]
L, C, P, S = Engine.LOAD, Engine.COMPUTE, Engine.POOL, Engine.STORE


# -- the mock engines and the harness -----------------------------------------------------


@dataclass
class Run:
    """What one program run did, cycles counted from the simulation's first edge."""

    start: int = 0                      # the cycle start was high
    t0: int | None = None               # first cycle the engines could take a command
    got: dict = field(default_factory=lambda: {e: [] for e in Engine})  # (bits, start, end)
    done_at: int | None = None          # first cycle done (or error) was high
    error: bool = False
    error_code: ErrorCode = ErrorCode.NONE
    error_index: int = 0
    cycles: int = 0
    busy_cycles: dict = field(default_factory=dict)
    idles: int = 0                      # cycles the source held back a word it had
    after: list = field(default_factory=list)   # commands taken after done or error


def simulate(dut, runs, *, seed=0, idle=0.0, not_ready=0.0, hold=True, tail=30,
             timeout=20_000):
    """Run programs on ``dut`` one after another, each after a ``start`` pulse.

    ``runs`` holds ``(words, durations)``: the instruction words to feed, and per engine the
    cycles of its k-th command (from the transfer to the ``done`` pulse; 0 pulses ``done``
    in the transfer's cycle).  ``idle`` and
    ``not_ready`` are the probabilities of a source idle cycle on ``i_stream`` and of an
    engine holding ``ready`` low.  With ``hold`` the engines take no command before
    ``FETCH_LATENCY`` cycles after the last word's transfer, when every instruction sits in
    its queue, so that the fetch is never on the critical path.  After ``done`` or ``error`` the harness runs
    ``tail`` more cycles, recording any command taken.  Returns a :class:`Run` each.
    """
    rng = random.Random(seed)
    out = []
    src = dut.i_stream
    ports = {e: getattr(dut, e.value) for e in Engine}
    watch = [src.valid, src.ready, dut.done, dut.error]
    for e in Engine:
        watch += [ports[e].cmd.valid, ports[e].cmd.ready, ports[e].cmd.payload]

    async def bench(ctx):
        t = 0
        for words, durations in runs:
            run = Run()
            ctx.set(dut.start, 1)
            await ctx.tick()
            run.start, t = t, t + 1
            ctx.set(dut.start, 0)
            run.t0 = None if hold else t
            i, pending, stop = 0, False, None
            active = {e: None for e in Engine}
            while stop is None or t < stop:
                assert t - run.start < timeout, f"no done or error in {timeout} cycles"
                if i < len(words) and (pending or rng.random() >= idle):
                    ctx.set(src.valid, 1)
                    ctx.set(src.payload, words[i])
                else:
                    run.idles += i < len(words)
                    ctx.set(src.valid, 0)
                for e in Engine:
                    ready = run.t0 is not None and t >= run.t0 and rng.random() >= not_ready
                    n = len(run.got[e])
                    # a zero-cycle command: done in the cycle of the transfer
                    instant = (ready and active[e] is None and n < len(durations[e])
                               and durations[e][n] == 0 and ctx.get(ports[e].cmd.valid))
                    ctx.set(ports[e].done, instant or (active[e] is not None
                                                       and active[e][1] == t))
                    ctx.set(ports[e].cmd.ready, ready)
                _, _, sv, sr, done, error, *cmds = await ctx.tick().sample(*watch)
                pending = bool(sv and not sr)
                if sv and sr:
                    i += 1
                    if hold and i == len(words):
                        run.t0 = t + FETCH_LATENCY
                for k, e in enumerate(Engine):
                    cv, cr, payload = cmds[3 * k:3 * k + 3]
                    if cv and cr:
                        bits = payload.as_bits()
                        if stop is not None:
                            run.after.append((e, bits, t))
                        assert active[e] is None, f"{e.value} offered a second command at {t}"
                        n = len(run.got[e])
                        d = durations[e][n] if n < len(durations[e]) else 1
                        active[e] = (t, t + d)
                        run.got[e].append([bits, t, None])
                    if active[e] is not None and active[e][1] == t:
                        run.got[e][-1][2] = t
                        active[e] = None
                if stop is None and (done or error):
                    run.done_at, stop = t, t + tail
                t += 1
            run.error = bool(ctx.get(dut.error))
            run.error_code = ctx.get(dut.error_code)
            run.error_index = ctx.get(dut.error_index)
            run.cycles = ctx.get(dut.cycles)
            run.busy_cycles = {e: getattr(ctx.get(dut.busy_cycles), e.value) for e in Engine}
            assert not ctx.get(dut.busy)
            out.append(run)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return out


# -- references independent of the RTL ----------------------------------------------------


def order(program) -> dict:
    """Engine → indices of its instructions, in program order."""
    return {e: [i for i, inst in enumerate(program) if inst.ENGINE is e] for e in Engine}


def per_engine(program, durations) -> dict:
    """Engine → the cycles of its k-th instruction."""
    return {e: [durations[i] for i in idx] for e, idx in order(program).items()}


def check_commands(run: Run, program, count=None):
    """Each engine got its instructions in program order, and (of those in ``count``, all
    by default) no other; the raw bits decode to the instruction, and each field of the
    command's struct holds rtl.isa's code for the value.  Returns engine → indices."""
    idx = order(program)
    for e in Engine:
        want = idx[e] if count is None else [i for i in idx[e] if i < count]
        got = run.got[e]
        if count is None:
            assert len(got) == len(want), f"{e.value} got {len(got)} of {len(want)} commands"
        else:
            assert len(got) <= len(want), f"{e.value} got {len(got)} commands, only " \
                                          f"{len(want)} come before instruction {count}"
        layout = command_layout(e)
        for (bits, _, _), i in zip(got, want):
            inst = program[i]
            assert decode(bits) == inst, f"{e.value} command for instruction {i}"
            view = layout.from_bits(bits)
            sub = getattr(view, inst.MNEMONIC.split(".")[1])
            assert view.opcode == sub.opcode == inst.OPCODE
            for f in inst.LAYOUT[1:]:
                assert getattr(sub, f.name) == f.encode(getattr(inst, f.name), inst.ENGINE), \
                    f"instruction {i} field {f.name}"
    return idx


def measured(run: Run, program) -> list:
    """(start, end) of every engine instruction, relative to ``run.t0``, in program order."""
    times = [None] * (len(program) - 1)
    for e, idx in order(program).items():
        for (_, s, t), i in zip(run.got[e], idx):
            times[i] = (s - run.t0, t - run.t0)
    return times


def model(program, durations, depth) -> list:
    """dse.compiler.asm.schedule with the controller's dispatch latency and finish cycles."""
    return schedule(program, list(durations[:len(program) - 1]) + [FINISH_CYCLES], depth,
                    latency=DISPATCH_LATENCY)


def check_counters(run: Run):
    assert run.cycles == run.done_at - run.start - 1
    for e in Engine:
        assert run.busy_cycles[e] == sum(t - s for _, s, t in run.got[e])


def check_token_rules(run: Run, program, depth):
    """The measured timeline keeps every rule of the model, with the dispatch latency: an
    engine's previous end, each popped token's push, each push's freeing pop."""
    times = measured(run, program)
    lat = DISPATCH_LATENCY
    prev = {e: None for e in Engine}
    pushed = {q: [] for q in queues()}
    popped = {q: [] for q in queues()}
    for i, inst in enumerate(program[:-1]):       # the k-th push and pop of each queue
        for n in inst.push:
            pushed[(inst.ENGINE, n)].append(i)
        for n in inst.pop:
            popped[(n, inst.ENGINE)].append(i)
    for i, inst in enumerate(program[:-1]):
        start, end = times[i]
        assert end >= start
        if prev[inst.ENGINE] is not None:
            assert start >= times[prev[inst.ENGINE]][1] + lat
        prev[inst.ENGINE] = i
        for n in inst.pop:
            q = (n, inst.ENGINE)
            k = popped[q].index(i)
            assert start >= times[pushed[q][k]][1] + lat, f"instruction {i} popped early"
        for n in inst.push:
            q = (inst.ENGINE, n)
            k = pushed[q].index(i)
            if k >= depth:
                assert start >= times[popped[q][k - depth]][0] + lat, \
                    f"instruction {i} pushed into a full queue"
    last = max((t[1] for t in times), default=0)
    assert run.done_at - run.t0 >= last + lat + FINISH_CYCLES


# -- programs -------------------------------------------------------------------------------


def docs_example():
    """The two-band conv layer of docs/isa.md ("Worked example")."""
    text = (ROOT / "docs" / "isa.md").read_text(encoding="utf-8")
    block = re.search(r"### Worked example.*?```asm\n(.*?)```", text, re.DOTALL)
    return assemble(block.group(1))


def banded_text(n: int) -> str:
    """A double-buffered conv layer in ``n`` bands of 8 output rows: load i + 2 waits for
    compute i to free its feature half, compute i + 2 for store i to free its output half."""
    lines = ["load.setup buf=weight elem=1 row_pitch=576 px_pitch=64",
             "load.setup buf=feature elem=1 row_pitch=1792 px_pitch=64",
             "compute.setup images=0x0",
             "store.setup elem=1 row_pitch=896 px_pitch=32",
             "load.tile buf=weight dram=0x200000 addr=0x0 rows=1 cols=576 ch=32"]

    def load(i, pop):
        half = (i % 2) * 0x1000
        return (f"load.tile buf=feature dram={0x100000 + i * 8 * 1792:#x} addr={half:#x} "
                f"rows=10 cols=28 ch=64 push=compute" + (" pop=compute" if pop else ""))

    lines += [load(i, False) for i in range(min(n, 2))]
    for i in range(n):
        half = (i % 2) * 0x1000
        pops = ["load"] + (["store"] if i >= 2 else [])
        pushes = ["store"] + (["load"] if i + 2 < n else [])
        image = 0 if i == 0 else 8 if i == n - 1 else 4     # top, bottom, middle band
        lines.append(f"compute.tile image={image:#x} pop={','.join(pops)} "
                     f"push={','.join(pushes)}")
        if i + 2 < n:
            lines.append(load(i + 2, True))
        lines.append(f"store.tile dram={0x300000 + i * 8 * 896:#x} addr={half:#x} rows=8 "
                     f"cols=28 ch=32 pop=compute" + (" push=compute" if i + 2 < n else ""))
    return "\n".join(lines + ["finish"]) + "\n"


def _random_values(rng, cls):
    """Legal values for every non-token field of ``cls``, over each field's whole range."""
    values = {}
    for f in cls.LAYOUT[1:]:
        if f.kind == "int":
            values[f.name] = rng.choice([f.lo, f.top, rng.randint(f.lo, f.top)])
        elif f.kind == "bool":
            values[f.name] = rng.random() < 0.5
        elif f.kind == "enum":
            values[f.name] = rng.choice(list(f.enum))
        elif f.kind == "choice":
            values[f.name] = rng.choice(f.choices)
    return values


def random_program(rng, depth, length):
    """A random program of every format that passes check_tokens(depth) by construction
    (each pop finds a queued token, each push finds room; leftovers drained at the end),
    built as text and assembled."""
    level = {q: 0 for q in queues()}
    formats = {e: [cls for cls in INSTRUCTIONS if cls.ENGINE is e] for e in Engine}
    program = []

    def add(e, pop, push):
        cls = rng.choice(formats[e])
        program.append(cls(pop=frozenset(pop), push=frozenset(push),
                           **_random_values(rng, cls)))

    for _ in range(length):
        e = rng.choice(list(Engine))
        pop = [n for n in NEIGHBOURS[e] if level[(n, e)] and rng.random() < 0.6]
        push = [n for n in NEIGHBOURS[e] if level[(e, n)] < depth and rng.random() < 0.5]
        for n in pop:
            level[(n, e)] -= 1
        for n in push:
            level[(e, n)] += 1
        add(e, pop, push)
    for (src, dst), count in level.items():
        for _ in range(count):
            add(dst, [src], [])
    program = assemble(disassemble(program + [Finish()]))
    check_tokens(program, depth)
    return program


def words(program) -> list[int]:
    return [inst.encode() for inst in program]


def durations(rng, program, long=12) -> list[int]:
    """Random cycles per engine instruction: now and then none (a command the engine
    refuses at once), mostly 1 to ``long``, now and then many."""
    return [rng.choice([0, rng.randint(20, 60)] + [rng.randint(1, long)] * 8)
            for _ in program[:-1]]


def run_exact(program, depth, seed, *, queue_depth=None, repeat=1):
    """Run ``program`` with every instruction queued before the engines start (so the
    fetch is never on the critical path) and check it against the model, cycle for cycle.
    Returns the runs."""
    rng = random.Random(seed)
    dur = durations(rng, program)
    need = max(len(v) for v in order(program).values())
    dut = Controller(token_depth=depth, queue_depth=queue_depth or max(need, 1))
    runs = simulate(dut, [(words(program), per_engine(program, dur))] * repeat, seed=seed)
    want = model(program, dur, depth)
    for run in runs:
        assert not run.error and not run.after
        check_commands(run, program)
        assert measured(run, program) == want[:-1]
        assert run.done_at - run.t0 == want[-1][1]
        check_counters(run)
    return runs


# -- (a), (b): order, fields and the timeline of the model --------------------------------


def test_schedule_latency_by_hand():
    # docs/isa.md's two bands, depth 1, with the controller's latency: every wait is one
    # cycle longer. Load 0-1, 2-3, 4-24, 25-125; compute tile 0 waits for band 0's token
    # (125 + 1); band 1's load for room in the depth-1 queue to compute, freed by that pop
    # (126 + 1); store tile 0 for compute tile 0 (426 + 1); compute tile 1 for room in the
    # queue to store, freed by that pop (427 + 1); store tile 1 for it (728 + 1); finish
    # starts one cycle after the last end (809 + 1).
    cycles = [1, 1, 1, 1, 20, 100, 300, 100, 80, 300, 80, 1]
    assert schedule(docs_example(), cycles, 1, latency=1) == [
        (0, 1), (2, 3), (0, 1), (0, 1), (4, 24), (25, 125), (126, 426), (127, 227),
        (427, 507), (428, 728), (729, 809), (810, 811)]
    assert schedule(docs_example(), cycles, 1) == schedule(docs_example(), cycles, 1,
                                                           latency=0)
    with pytest.raises(ValueError, match=r"^latency must be at least 0, not -1$"):
        schedule(docs_example(), cycles, 1, latency=-1)
    with pytest.raises(TypeError, match=r"^latency must be an integer, not 1.0$"):
        schedule(docs_example(), cycles, 1, latency=1.0)


def test_docs_example_runs_as_the_model_says():
    program = docs_example()
    check_tokens(program, 1)
    run, = run_exact(program, 1, seed=1)
    # every compute.tile after its band's load, every store after its compute
    assert [decode(b).MNEMONIC for b, _, _ in run.got[S]] == ["store.setup", "store.tile",
                                                              "store.tile"]


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_double_buffered_bands_run_as_the_model_says(n):
    program = assemble(banded_text(n))
    check_tokens(program, 2)
    run_exact(program, 2, seed=n)


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("seed", range(8))
def test_random_programs_run_as_the_model_says(depth, seed):
    rng = random.Random(100 * depth + seed)
    program = random_program(rng, depth, rng.randint(1, 40))
    run_exact(program, depth, seed)


def test_full_token_queue_holds_the_push_until_a_pop():
    # depth 1: load's second push waits for compute to take the first token, and compute
    # waits for a slow store, so the model and the hardware must both hold the second load
    # back (check_tokens refuses such a program; with these queues it still runs)
    program = assemble("load.tile buf=feature dram=0x0 addr=0x0 rows=1 cols=1 ch=1 push=compute\n"
                       "load.tile buf=feature dram=0x0 addr=0x0 rows=1 cols=1 ch=1 push=compute\n"
                       "store.tile dram=0x0 addr=0x0 rows=1 cols=1 ch=1 push=compute\n"
                       "compute.tile image=0x0 "
                       "pop=load,store\n"
                       "compute.tile image=0x0 pop=load\n"
                       "finish\n")
    with pytest.raises(TokenError, match=r"would hold 2 tokens, more than its depth 1$"):
        check_tokens(program, 1)
    dut = Controller(token_depth=1, queue_depth=2)
    dur = [3, 3, 40, 5, 5]
    run, = simulate(dut, [(words(program), per_engine(program, dur))])
    times = measured(run, program)
    assert times == model(program, dur, 1)[:-1]
    assert times[1][0] == times[3][0] + DISPATCH_LATENCY      # waited for the pop


def test_fetch_latency():
    # engines always ready: each word is taken the cycle after the previous one (the first
    # the cycle after start), and its instruction is dispatched FETCH_LATENCY cycles later
    program = assemble("store.setup elem=4 row_pitch=0x10 px_pitch=0x4\n"
                       "pool.setup mode=gavg ch=3\n"
                       "load.setup buf=table elem=2 row_pitch=0x0 px_pitch=0x2\nfinish\n")
    run, = simulate(Controller(), [(words(program), per_engine(program, [9, 9, 9]))],
                    hold=False)
    for k, e in enumerate((S, P, L)):
        (_, start, end), = run.got[e]
        assert start == run.start + 1 + k + FETCH_LATENCY and end == start + 9
    assert run.done_at == run.got[L][0][2] + DISPATCH_LATENCY + FINISH_CYCLES


# -- (c): illegal words and deadlocks -------------------------------------------------------


def classify(word: int) -> ErrorCode:
    """The error class of a word, from rtl.isa.decode's reason (not from the RTL)."""
    try:
        decode(word)
    except IllegalInstruction as exc:
        reason = exc.reason
    else:
        return ErrorCode.NONE
    if reason.startswith("unknown opcode"):
        return ErrorCode.OPCODE
    if "reserved bits set" in reason:
        return ErrorCode.RESERVED
    if " code must be " in reason:
        return ErrorCode.FIELD_CODE
    assert "must be between" in reason, reason
    return ErrorCode.FIELD_RANGE


def _set_field(word: int, cls, name: str, code: int) -> int:
    f = next(f for f in cls.LAYOUT if f.name == name)
    return word & ~f.mask | code << f.lsb


BASE = assemble("""\
load.setup buf=feature elem=1 row_pitch=1792 px_pitch=64
compute.setup images=0x40
load.tile buf=feature dram=0x1000 addr=0x0 rows=3 cols=28 ch=64 push=compute
compute.tile image=0x0 pop=load push=store
store.setup elem=2 row_pitch=1792 px_pitch=64
store.tile dram=0x9000 addr=0x0 rows=1 cols=28 ch=64 pop=compute
pool.setup mode=max kh=2 kw=2 stride=2 ch=64
pool.tile in_addr=0x0 in2_addr=0x0 out_addr=0x0 rows=2 cols=2
finish
""")


def _illegal_cases():
    """(name, index, word) of one illegal word of each class put into BASE."""
    by = {type(inst): (i, inst.encode()) for i, inst in enumerate(BASE)}
    free = sorted(set(range(16)) - set(BY_OPCODE))
    cases = [("zero word", 0, 0),
             *[(f"opcode {op:#x}", 3, (by[type(BASE[3])][1] & ~0xF) | op) for op in free]]
    for cls, (i, w) in by.items():
        bits = [b for b in range(INSTRUCTION_BITS) if cls.RESERVED_MASK >> b & 1]
        for bit in sorted({bits[0], bits[-1]} if bits else ()):   # load.tile has none
            cases.append((f"{cls.MNEMONIC} reserved bit {bit}", i, w | 1 << bit))
    ls, ss = (by[type(BASE[k])] for k in (0, 4))
    cases += [
        ("load elem code 3", ls[0], _set_field(ls[1], type(BASE[0]), "elem", 3)),
        ("store elem code 3", ss[0], _set_field(ss[1], type(BASE[4]), "elem", 3)),
        ("pool act code 3", 6, _set_field(BASE[6].encode(), type(BASE[6]), "act", 3)),
        ("pool kh 0", 6, _set_field(BASE[6].encode(), type(BASE[6]), "kh", 0)),
    ]
    for k in (2, 5, 7):
        cases.append((f"{BASE[k].MNEMONIC} rows 0", k,
                      _set_field(BASE[k].encode(), type(BASE[k]), "rows", 0)))
    return cases


ILLEGAL = _illegal_cases()


@pytest.mark.parametrize("name, index, word", ILLEGAL, ids=[c[0] for c in ILLEGAL])
def test_illegal_word_stops_with_its_class_and_index(name, index, word):
    want = classify(word)
    assert want is not ErrorCode.NONE
    fed = words(BASE)
    fed[index] = word
    dut = Controller(token_depth=1, queue_depth=2)
    dur = per_engine(BASE, [3] * (len(BASE) - 1))
    run, again = simulate(dut, [(fed, dur), (words(BASE), dur)], hold=False, seed=index)
    assert run.error and run.error_code == want and run.error_index == index
    assert not run.after, "dispatched after the error"
    check_commands(run, BASE, count=index)
    # the next start clears the error and runs the program
    assert not again.error and again.error_code == ErrorCode.NONE
    check_commands(again, BASE)


def test_pop_without_push_is_a_deadlock_at_finish():
    program = assemble("load.tile buf=feature dram=0x0 addr=0x0 rows=1 cols=1 ch=1\n"
                       "compute.tile image=0x0 "
                       "pop=load\nfinish\n")
    with pytest.raises(TokenError):
        check_tokens(program, 2)
    run, = simulate(Controller(), [(words(program), per_engine(program, [4, 4]))],
                    hold=False)
    assert run.error and run.error_code == ErrorCode.DEADLOCK and run.error_index == 2
    assert len(run.got[L]) == 1 and not run.got[C]


@pytest.mark.parametrize("queue_depth", [1, 4])
def test_a_deadlock_of_the_model_is_a_deadlock_of_the_hardware(queue_depth):
    # four double-buffered bands need token queues of 2; with 1, load, compute and store
    # all wait for each other (dse.compiler.asm.schedule names the same three waits)
    program = assemble(banded_text(4))
    with pytest.raises(TokenError, match=r"^the engines deadlock: load at instruction 8 "):
        schedule(program, [5] * len(program), 1)
    run, = simulate(Controller(token_depth=1, queue_depth=queue_depth),
                    [(words(program), per_engine(program, [5] * len(program)))], hold=False)
    assert run.error and run.error_code == ErrorCode.DEADLOCK and not run.after
    # the word the fetch holds: the first that finds its queue full, or finish
    want = 11 if queue_depth == 1 else len(program) - 1
    assert run.error_index == want
    check_commands(run, program, count=want)


@pytest.mark.parametrize("queue_depth", [2, 3])
def test_pops_ahead_of_their_pushes_deadlock_only_in_short_queues(queue_depth):
    # three pops queued before the pushes: with room for two the fetch stalls on the third
    # compute.tile while compute waits for load, whose instructions it never reaches
    tile = "compute.tile image=0x0 pop=load\n"
    load = "load.tile buf=feature dram=0x0 addr=0x0 rows=1 cols=1 ch=1 push=compute\n"
    program = assemble(tile * 3 + load * 3 + "finish\n")
    with pytest.raises(TokenError):
        check_tokens(program, 3)
    run, = simulate(Controller(token_depth=3, queue_depth=queue_depth),
                    [(words(program), per_engine(program, [2] * 6))], hold=False)
    if queue_depth == 2:
        assert run.error and run.error_code == ErrorCode.DEADLOCK and run.error_index == 2
        assert not run.got[C] and not run.got[L]
    else:
        assert not run.error and run.done_at is not None
        check_commands(run, program)


def test_decoder_agrees_with_isa_decode():
    rng = random.Random(7)
    legal = [inst.encode() for inst in random_program(rng, 2, 60)]
    cases = []
    for _ in range(1500):
        w = rng.choice(legal)
        for _ in range(rng.choice([0, 1, 1, 2])):
            w ^= 1 << rng.randrange(INSTRUCTION_BITS)
        cases.append(w)
    cases += [rng.getrandbits(INSTRUCTION_BITS) for _ in range(300)]
    # random values in every format's fields (100 a format: enough zero extents and bad
    # codes among them to see each error code at least 20 times)
    cases += [(rng.getrandbits(INSTRUCTION_BITS) & ~cls.RESERVED_MASK & ~0xF) | cls.OPCODE
              for cls in INSTRUCTIONS for _ in range(100)]
    dut = InstructionDecoder()
    seen = {code: 0 for code in ErrorCode}

    async def bench(ctx):
        for w in cases:
            want = classify(w)
            seen[want] += 1
            ctx.set(dut.word, w)
            assert ctx.get(dut.error_code) == want, f"{w:#034x}"
            assert ctx.get(dut.legal) == (want is ErrorCode.NONE)
            if want is ErrorCode.NONE:
                inst = decode(w)
                assert ctx.get(dut.finish) == isinstance(inst, Finish)
                if inst.ENGINE is not None:
                    assert ctx.get(dut.engine) == inst.ENGINE.code

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    assert all(seen[c] >= 20 for c in ErrorCode if c is not ErrorCode.DEADLOCK), seen


# -- (d), (e): a second run, random stalls --------------------------------------------------


def test_second_run_repeats_the_first():
    rng = random.Random(11)
    program = random_program(rng, 2, 25)
    first, second = run_exact(program, 2, seed=11, repeat=2)
    assert measured(first, program) == measured(second, program)
    assert first.done_at - first.t0 == second.done_at - second.t0
    assert (first.cycles, first.busy_cycles) == (second.cycles, second.busy_cycles)


@pytest.mark.parametrize("seed", range(8))
def test_stalls_change_timing_but_never_order(seed):
    rng = random.Random(50 + seed)
    depth = 2 if seed == 0 else 1 + seed % 3
    program = random_program(rng, depth, 40) if seed else assemble(banded_text(4))
    dur = durations(rng, program, long=6)
    dut = Controller(token_depth=depth, queue_depth=1 + seed % 2)
    run, = simulate(dut, [(words(program), per_engine(program, dur))], seed=seed,
                    idle=0.5, not_ready=0.4, hold=False)
    assert run.idles > 0 and not run.error and not run.after
    check_commands(run, program)
    check_token_rules(run, program, depth)
    check_counters(run)
    # delays only ever push the timeline later than the model's
    want = model(program, dur, depth)
    assert all(got[0] >= w[0] for got, w in zip(measured(run, program), want))


# -- parameters, layouts, Verilog ----------------------------------------------------------


def test_command_layout_places_every_field_where_isa_says():
    for cls in INSTRUCTIONS:
        if cls.ENGINE is None:
            continue
        layout = command_layout(cls.ENGINE)
        assert layout.size == max(max(f.msb for f in c.LAYOUT) + 1 for c in INSTRUCTIONS
                                  if c.ENGINE is cls.ENGINE)
        member = format_layout(cls)
        for f in cls.LAYOUT:
            assert member[f.name].offset == f.lsb and member[f.name].width == f.bits
        assert layout[cls.MNEMONIC.split(".")[1]].offset == 0


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match=r"^token_depth must be at least 1, not 0$"):
        Controller(token_depth=0)
    with pytest.raises(TypeError, match=r"^token_depth must be an integer, not 1.5$"):
        Controller(token_depth=1.5)
    with pytest.raises(ValueError, match=r"^queue_depth must be at least 1, not 0$"):
        Controller(queue_depth=0)
    with pytest.raises(TypeError, match=r"^queue_depth must be an integer, not '2'$"):
        Controller(queue_depth="2")
    with pytest.raises(ValueError, match=r"^counter_bits must be at least 1, not 0$"):
        Controller(counter_bits=0)
    with pytest.raises(TypeError, match=r"^counter_bits must be an integer, not True$"):
        Controller(counter_bits=True)
    with pytest.raises(ValueError, match=r"^engine must be one of load, compute, pool, "
                                         r"store, not 'dsp'$"):
        command_layout("dsp")
    with pytest.raises(TypeError, match=r"^engine must be an rtl.isa.Engine, not 3$"):
        command_layout(3)
    with pytest.raises(TypeError, match=r"^cls must be an rtl.isa instruction format, "
                                        r"not <class 'int'>$"):
        format_layout(int)


def test_verilog_conversion():
    text = verilog.convert(Controller(token_depth=2, queue_depth=4), name="controller")
    for e in Engine:
        width = command_layout(e).size
        assert re.search(rf"output \[{width - 1}:0\] {e.value}__cmd__payload;", text)
        assert f"input {e.value}__done;" in text
    assert "input [127:0] i_stream__payload;" in text
    assert "output [2:0] error_code;" in text


def test_controller_lints_clean(tmp_path):
    from sim.runner import emit_verilog, lint_verilog

    violations, _ = lint_verilog(emit_verilog(Controller(), "controller"), "controller",
                                 work_dir=tmp_path)
    assert not violations, "\n".join(f"line {w.line}: %{w.rule}: {w.message}"
                                     for w in violations[:20])
