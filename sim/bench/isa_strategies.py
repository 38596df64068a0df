"""Hypothesis strategies over the overlay's instruction set (``rtl/isa.py``), shared by the
ISA, assembler and controller tests."""

from __future__ import annotations

from hypothesis import strategies as st

from rtl.isa import INSTRUCTIONS, NEIGHBOURS, Field

__all__ = ["field_values", "instructions"]


def field_values(f: Field, engine) -> st.SearchStrategy:
    """Every legal value of field ``f`` of an instruction of ``engine``."""
    if f.kind == "int":
        return st.integers(f.lo, f.top)
    if f.kind == "bool":
        return st.booleans()
    if f.kind == "enum":
        return st.sampled_from(list(f.enum))
    if f.kind == "choice":
        return st.sampled_from(f.choices)
    if f.kind == "tokens":
        return st.frozensets(st.sampled_from(NEIGHBOURS[engine]))
    raise AssertionError(f.kind)


@st.composite
def instructions(draw, classes=tuple(INSTRUCTIONS)):
    """Any legal instruction of one of ``classes`` (a format class or a tuple of them),
    every field drawn over its whole range."""
    if isinstance(classes, type):
        classes = (classes,)
    cls = draw(st.sampled_from(tuple(classes)))
    values = {f.name: draw(field_values(f, cls.ENGINE)) for f in cls.LAYOUT[1:]}
    return cls(**values)
