"""Compare simulation results with a numpy golden and report mismatches clearly.

Two checks: :func:`assert_matrix_equal` for a whole result array (a GEMM's C), and
:func:`assert_stream_equal` for an in-order beat sequence (nothing lost, nothing duplicated,
nothing reordered).  Both raise :class:`ScoreboardMismatch`, an ``AssertionError`` whose
message says how many entries differ and lists the first few with their indices, so a failing
test reads without a debugger.  Neither imports cocotb: they run on the pytest side, on
arrays the simulation wrote back.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

__all__ = ["ScoreboardMismatch", "assert_matrix_equal", "assert_stream_equal"]


class ScoreboardMismatch(AssertionError):
    """Simulated results differ from the golden model."""


def assert_matrix_equal(actual, expected, *, name: str = "result", context: str = "",
                        show: int = 8) -> None:
    """Check that two integer arrays are equal, element for element.

    Parameters
    ----------
    actual:
        What the simulation produced.
    expected:
        The golden model's result.
    name:
        What is compared (used in the message, e.g. ``"C"``).
    context:
        Extra words for the message (the case: shape, dataflow, seed).
    show:
        How many mismatching entries to list.

    Raises
    ------
    ScoreboardMismatch
        On a shape difference or any differing entry.
    """
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    where = f" ({context})" if context else ""
    if actual.shape != expected.shape:
        raise ScoreboardMismatch(f"{name}{where}: shape {actual.shape} differs from the "
                                 f"golden {expected.shape}")
    diff = np.argwhere(actual != expected)
    if len(diff) == 0:
        return
    lines = [f"{name}{where}: {len(diff)} of {expected.size} entries differ from the golden"]
    for idx in diff[:show]:
        i = tuple(int(x) for x in idx)
        a, e = int(actual[i]), int(expected[i])
        lines.append(f"  {name}{list(i)}: got {a}, expected {e} (difference {a - e})")
    if len(diff) > show:
        lines.append(f"  ... and {len(diff) - show} more")
    if actual.ndim == 2:
        bad_rows = sorted({int(idx[0]) for idx in diff})
        bad_cols = sorted({int(idx[1]) for idx in diff})
        lines.append(f"  rows with errors: {_ranges(bad_rows)}; columns: {_ranges(bad_cols)}")
    raise ScoreboardMismatch("\n".join(lines))


def assert_stream_equal(actual: Sequence[Any], expected: Sequence[Any], *,
                        name: str = "stream", context: str = "", show: int = 8) -> None:
    """Check that a received beat sequence equals the expected one, in order.

    The message separates the three ways a stream goes wrong: beats lost (too few), beats
    duplicated or invented (too many), and beats that differ at a position.

    Raises
    ------
    ScoreboardMismatch
        If the sequences differ in length or in any beat.
    """
    where = f" ({context})" if context else ""
    actual, expected = list(actual), list(expected)
    bad = [i for i, (a, e) in enumerate(zip(actual, expected)) if not _same(a, e)]
    if not bad and len(actual) == len(expected):
        return
    lines = [f"{name}{where}: received {len(actual)} beats, expected {len(expected)}"]
    if len(actual) < len(expected):
        lines.append(f"  {len(expected) - len(actual)} beats missing at the end (lost)")
    elif len(actual) > len(expected):
        lines.append(f"  {len(actual) - len(expected)} extra beats (duplicated or invented), "
                     f"first extra: {actual[len(expected)]!r}")
    if bad:
        lines.append(f"  {len(bad)} beats differ; first at index {bad[0]}")
        for i in bad[:show]:
            lines.append(f"  beat {i}: got {actual[i]!r}, expected {expected[i]!r}")
    raise ScoreboardMismatch("\n".join(lines))


def _same(a, b) -> bool:
    return bool(np.array_equal(np.asarray(a), np.asarray(b)))


def _ranges(values: list[int]) -> str:
    """Format sorted integers as compact ranges: [0, 1, 2, 5] -> '0-2, 5'."""
    out = []
    start = prev = None
    for v in values:
        if start is None:
            start = prev = v
        elif v == prev + 1:
            prev = v
        else:
            out.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = prev = v
    if start is not None:
        out.append(f"{start}" if start == prev else f"{start}-{prev}")
    return ", ".join(out)
