"""Constructor-argument checks shared by the components.

A component whose constructor raises has already been created, so Amaranth's must-use check
would later warn "created but never used" (an error under the test suite's warnings policy).
:func:`reject` silences that check on the rejected object, then raises.
"""

from __future__ import annotations

from contextlib import contextmanager

__all__ = ["reject", "rejecting", "check_int"]


def reject(component, error: Exception) -> None:
    """Raise *error* for a rejected *component*, silencing Amaranth's must-use warning."""
    component._MustUse__silence = True
    raise error


@contextmanager
def rejecting(component):
    """Run a constructor's checks; any exception rejects *component* (see :func:`reject`)."""
    try:
        yield
    except Exception:
        component._MustUse__silence = True
        raise


def check_int(component, name: str, value, low: int) -> None:
    """Reject *component* unless *value* is an integer of at least *low*."""
    if not isinstance(value, int) or isinstance(value, bool):
        reject(component, TypeError(f"{name} must be an integer, not {value!r}"))
    if value < low:
        reject(component, ValueError(f"{name} must be at least {low}, not {value}"))
