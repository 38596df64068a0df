"""Parameters and shared enums of the overlay.

This module must not import Amaranth: the explorer (``dse``) imports it to size and
describe hardware without pulling in the HDL.  Every dataclass here is frozen and validated
at construction; ``dataclasses.replace`` re-validates, so variants made in a search are
checked too.  Messages follow "*name* must be *constraint*, not *value*".
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields

__all__ = ["Algorithm", "Dataflow", "ArrayParams", "OverlayParams"]


class Algorithm(str, enum.Enum):
    """Convolution algorithm families the overlay can run (names as in DESIGN.md)."""

    IM2COL = "im2col"
    KN2ROW = "kn2row"
    WINOGRAD = "winograd"
    FFT = "fft"
    SPARSE_FFT = "sparse_fft"


class Dataflow(str, enum.Enum):
    """Dataflows of the systolic array, with SCALE-Sim's names and spatial assignment.

    ``OS``: rows × cols hold output pixels × filters; ``WS``: window elements × filters;
    ``IS``: window elements × output pixels.  The run-time encoding is the enum's index.
    """

    WS = "ws"
    OS = "os"
    IS = "is"

    @property
    def code(self) -> int:
        """Encoding of the dataflow in the array's 2-bit mode register."""
        return list(Dataflow).index(self)


def _check_int(name: str, value, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"at least {low}" if high is None else f"between {low} and {high}"
        raise ValueError(f"{name} must be {bound}, not {value}")


@dataclass(frozen=True)
class ArrayParams:
    """Shape and widths of the systolic array.

    Parameters
    ----------
    rows, cols:
        PEs in each dimension.
    a_width, b_width:
        Signed operand widths in bits: activations (A) and weights (B).  Transforms widen
        them (Winograd F(2×2,3×3) on int8 needs about 10 × 12 bits).
    acc_width:
        Signed accumulator width in bits (32 for int8, 48 for int16).
    """

    rows: int = 8
    cols: int = 8
    a_width: int = 8
    b_width: int = 8
    acc_width: int = 32

    def __post_init__(self):
        _check_int("rows", self.rows, 1, 256)
        _check_int("cols", self.cols, 1, 256)
        _check_int("a_width", self.a_width, 2, 27)
        _check_int("b_width", self.b_width, 2, 27)
        _check_int("acc_width", self.acc_width, 2, 64)
        if self.acc_width < self.a_width + self.b_width:
            raise ValueError(f"acc_width must be at least a_width + b_width = "
                             f"{self.a_width + self.b_width}, not {self.acc_width}")

    @property
    def pes(self) -> int:
        """Number of processing elements."""
        return self.rows * self.cols


@dataclass(frozen=True)
class OverlayParams:
    """Everything that sizes the overlay hardware (flat, as design.json's ``hardware``).

    Parameters
    ----------
    rows, cols, a_width, b_width, acc_width:
        The systolic array (see :class:`ArrayParams`).
    winograd_m:
        Output tile of the Winograd unit, F(m×m, 3×3); 0 when there is no Winograd unit.
    fft_size:
        Points per side of the 2-D FFT unit; 0 when there is no FFT unit.
    sparse_lanes, sparse_banks:
        Sparse spectral MAC lanes and input-spectrum banks; 0 when absent.
    act_buffer_kib, weight_buffer_kib, out_buffer_kib:
        On-chip buffer capacities in KiB (each double-buffered: the figure is one half).
    bus_bits:
        AXI4 data width to DRAM in bits.
    """

    rows: int = 8
    cols: int = 8
    a_width: int = 8
    b_width: int = 8
    acc_width: int = 32
    winograd_m: int = 0
    fft_size: int = 0
    sparse_lanes: int = 0
    sparse_banks: int = 0
    act_buffer_kib: int = 64
    weight_buffer_kib: int = 64
    out_buffer_kib: int = 64
    bus_bits: int = 128

    def __post_init__(self):
        ArrayParams(self.rows, self.cols, self.a_width, self.b_width, self.acc_width)
        if self.winograd_m not in (0, 2, 4):
            raise ValueError(f"winograd_m must be 0, 2 or 4, not {self.winograd_m!r}")
        if self.fft_size not in (0, 4, 8, 16, 32):
            raise ValueError(f"fft_size must be 0, 4, 8, 16 or 32, not {self.fft_size!r}")
        _check_int("sparse_lanes", self.sparse_lanes, 0, 1024)
        _check_int("sparse_banks", self.sparse_banks, 0, 1024)
        if (self.sparse_lanes == 0) != (self.sparse_banks == 0):
            raise ValueError("sparse_lanes and sparse_banks must both be 0 or both positive, "
                             f"not {self.sparse_lanes} and {self.sparse_banks}")
        for name in ("act_buffer_kib", "weight_buffer_kib", "out_buffer_kib"):
            _check_int(name, getattr(self, name), 1, 1 << 20)
        if self.bus_bits not in (32, 64, 128, 256, 512, 1024):
            raise ValueError(f"bus_bits must be a power of two from 32 to 1024, "
                             f"not {self.bus_bits!r}")

    @property
    def array(self) -> ArrayParams:
        """The systolic array part of these parameters."""
        return ArrayParams(self.rows, self.cols, self.a_width, self.b_width, self.acc_width)

    @property
    def algorithms(self) -> tuple[Algorithm, ...]:
        """Algorithms whose hardware exists in this overlay (im2col and kn2row always)."""
        algos = [Algorithm.IM2COL, Algorithm.KN2ROW]
        if self.winograd_m:
            algos.append(Algorithm.WINOGRAD)
        if self.fft_size:
            algos.append(Algorithm.FFT)
        if self.sparse_lanes:
            algos.append(Algorithm.SPARSE_FFT)
        return tuple(algos)

    def as_dict(self) -> dict:
        """The fields as a flat dict (design.json's ``hardware``)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}
