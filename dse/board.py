"""Boards: the resource budget, memory bandwidth, clock and synthesis family of one FPGA board.

A board is a YAML file in ``boards/`` (fields in docs/boards.md); ``load_board`` reads
one by name or path, validates every field and refuses unknown or duplicate keys with an
:class:`~dse.errors.InputError` naming the file and the field.
"""

from __future__ import annotations

import math
import re
from dataclasses import MISSING, dataclass, fields
from pathlib import Path

from .errors import InputError
from .yamlio import check_keys, load_yaml, resolve_named_file

__all__ = ["FAMILIES", "BOARDS_DIR", "Board", "load_board", "board_names"]

#: Synthesis families: ``xcup`` is Xilinx UltraScale+ (Yosys ``synth_xilinx -family xcup``),
#: ``ecp5`` Lattice ECP5 (``synth_ecp5`` and nextpnr-ecp5).
FAMILIES = ("xcup", "ecp5")

#: The folder of the built-in board files.
BOARDS_DIR = Path(__file__).resolve().parent.parent / "boards"

# Xilinx speed grades: -1, -2, -3 with an optional temperature/voltage suffix (-2E, -1L, -2LV).
_XILINX_SPEED = re.compile(r"-[123][A-Z]{0,2}")
_ECP5_SPEEDS = ("6", "7", "8")


def _check_int(name: str, value, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if value < low:
        raise ValueError(f"{name} must be at least {low}, not {value}")


def _check_number(name: str, value, positive: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, not {value!r}")
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        kind = "a positive" if positive else "a non-negative"
        raise ValueError(f"{name} must be {kind} finite number, not {value!r}")


def _check_text(name: str, value) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, not {value!r}")
    if not value.strip():
        raise ValueError(f"{name} must be a non-empty string, not {value!r}")


@dataclass(frozen=True)
class Board:
    """One FPGA board: what the explorer may spend and how fast it can feed the overlay.

    Parameters
    ----------
    name:
        Short name (the file stem in ``boards/``).
    family:
        ``"xcup"`` or ``"ecp5"``: picks the synthesis flow.
    part, package:
        Device and package as the vendor spells them (``"XCZU9EG"``, ``"FFVB1156"``).
    speed_grade:
        Vendor speed grade as a string: ``"-2"`` (Xilinx, with optional suffix such as
        ``"-2E"``) or ``"6"``/``"7"``/``"8"`` (ECP5; nextpnr analyses timing for it).
    dsp:
        Hard multipliers: DSP48E2 slices (xcup) or MULT18X18D (ecp5).
    lut, ff:
        Logic LUTs (LUT6 or LUT4) and flip-flops.
    bram_blocks, bram_block_kbits:
        Block RAMs and the capacity of one in Kbit (RAMB36E2: 36; DP16KD: 18).
    uram_blocks:
        UltraRAM blocks of 288 Kbit (0 where the part has none).
    dram_gbps:
        Peak off-chip memory bandwidth the overlay can use, in GB/s (10^9 bytes/s).
    clock_mhz:
        Target clock of the overlay in MHz.
    static_power_w:
        Static (leakage) power of the device in W, the floor of the energy model.
    source:
        Data sheet(s) the numbers come from; says "unconfirmed" where they are not certain.
    dram_latency_ns:
        Read latency of the off-chip memory as the overlay sees it, in ns: from a read
        request to its first data (optional, default 0: a memory that answers at once).
        design.json's cycles are timed with it (:attr:`dram_latency_cycles`), and
        ``omniconv verify`` / ``run`` simulate it.
    """

    name: str
    family: str
    part: str
    package: str
    speed_grade: str
    dsp: int
    lut: int
    ff: int
    bram_blocks: int
    bram_block_kbits: int
    uram_blocks: int
    dram_gbps: float
    clock_mhz: float
    static_power_w: float
    source: str
    dram_latency_ns: float = 0.0

    #: Capacity of one UltraRAM block (URAM288) in Kbit.
    URAM_BLOCK_KBITS = 288
    #: Logic sites a LUT that Yosys counts takes once placed, per family: on the ECP5 a
    #: carry cell (CCU2C, not counted as a LUT4) fills two TRELLIS_COMB sites and LUT RAM
    #: more; the three overlay tops nextpnr placed took 1.39, 1.43 and 1.46 sites per LUT4
    #: (docs/synthesis.md).  UltraScale+ carries (CARRY8) have sites of their own.
    LUT_SITES_PER_LUT = {"xcup": 1.0, "ecp5": 1.46}
    #: The share of the logic sites a design may fill and still route, per family: nextpnr's
    #: router2 routed an ECP5-85 overlay top at 47 % of the sites in 81 iterations and did
    #: not converge at 81 % (66 min) or 94 % (96 min) (docs/synthesis.md).  Vivado routes
    #: UltraScale+ designs well past this, so the LUT count itself is its limit.
    ROUTABLE_FILL = {"xcup": 1.0, "ecp5": 0.6}

    def __post_init__(self):
        for name in ("name", "part", "package", "source"):
            _check_text(name, getattr(self, name))
        if self.family not in FAMILIES:
            raise ValueError(f"family must be one of {', '.join(FAMILIES)}, "
                             f"not {self.family!r}")
        if isinstance(self.speed_grade, bool) or not isinstance(self.speed_grade, (str, int)):
            raise TypeError(f"speed_grade must be a string such as '-2' or '6', "
                            f"not {self.speed_grade!r}")
        # YAML reads `speed_grade: -2` and `speed_grade: 6` as integers: keep the text form.
        object.__setattr__(self, "speed_grade", str(self.speed_grade).strip())
        if self.family == "ecp5" and self.speed_grade not in _ECP5_SPEEDS:
            raise ValueError(f"speed_grade must be 6, 7 or 8 for an ECP5 part, "
                             f"not {self.speed_grade!r}")
        if self.family == "xcup" and not _XILINX_SPEED.fullmatch(self.speed_grade):
            raise ValueError(f"speed_grade must be a Xilinx speed grade such as '-1', '-2' or "
                             f"'-2E', not {self.speed_grade!r}")
        _check_int("dsp", self.dsp, 1)
        _check_int("lut", self.lut, 1)
        _check_int("ff", self.ff, 1)
        _check_int("bram_blocks", self.bram_blocks, 0)
        _check_int("bram_block_kbits", self.bram_block_kbits, 1)
        _check_int("uram_blocks", self.uram_blocks, 0)
        if self.family == "ecp5" and self.uram_blocks:
            raise ValueError(f"uram_blocks must be 0 for an ECP5 part, not {self.uram_blocks}")
        _check_number("dram_gbps", self.dram_gbps, positive=True)
        _check_number("clock_mhz", self.clock_mhz, positive=True)
        _check_number("static_power_w", self.static_power_w, positive=False)
        _check_number("dram_latency_ns", self.dram_latency_ns, positive=False)

    @property
    def lut_budget(self) -> int:
        """The LUTs (as Yosys and the resource model count them) that the explorer lets a
        design use: the routable share of the ``lut`` sites (:data:`ROUTABLE_FILL`) over the
        sites a counted LUT takes (:data:`LUT_SITES_PER_LUT`) of the family."""
        return int(self.lut * self.ROUTABLE_FILL[self.family]
                   / self.LUT_SITES_PER_LUT[self.family])

    @property
    def bram_kbits(self) -> int:
        """Total block RAM capacity in Kbit."""
        return self.bram_blocks * self.bram_block_kbits

    @property
    def uram_kbits(self) -> int:
        """Total UltraRAM capacity in Kbit."""
        return self.uram_blocks * self.URAM_BLOCK_KBITS

    @property
    def onchip_blocks(self) -> int:
        """Block RAMs plus UltraRAMs counted as the block RAMs they hold (a 288 Kb URAM is
        288 // bram_block_kbits of them): what the overlay's buffers may use."""
        return self.bram_blocks + self.uram_blocks * (self.URAM_BLOCK_KBITS
                                                       // self.bram_block_kbits)

    @property
    def onchip_bytes(self) -> int:
        """Block RAM plus UltraRAM capacity in bytes (1 Kbit = 1024 bits)."""
        return (self.bram_kbits + self.uram_kbits) * 1024 // 8

    @property
    def dram_latency_cycles(self) -> int:
        """The DRAM read latency in overlay clock cycles, rounded up."""
        return math.ceil(self.dram_latency_ns * self.clock_mhz / 1000 - 1e-9)

    def dram_bandwidth_256(self, bus_bits: int) -> int:
        """The DRAM's bytes per 256 overlay cycles (rounded down) where it is narrower than
        an AXI bus of ``bus_bits``, else 0 (the bus is the limit: a beat a cycle): the
        bandwidth the program timing and the simulated DRAM model share."""
        rate = math.floor(self.dram_bytes_per_cycle * 256 + 1e-9)
        return rate if rate < bus_bits // 8 * 256 else 0

    @property
    def dram_bytes_per_cycle(self) -> float:
        """Peak DRAM bytes per overlay clock cycle (GB/s is 10^9 bytes/s)."""
        return self.dram_gbps * 1e9 / (self.clock_mhz * 1e6)

    def as_dict(self) -> dict:
        """Return the fields as a flat dict (the board YAML's content)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def board_names() -> list[str]:
    """Return the names of the built-in boards (the stems of ``boards/*.yaml``)."""
    return sorted(p.stem for p in BOARDS_DIR.glob("*.yaml"))


def load_board(spec: str | Path, base_dir: str | Path | None = None) -> Board:
    """Load and validate a board.

    Parameters
    ----------
    spec:
        A path to a board YAML file (relative to *base_dir* when given, else to the current
        folder) or, when no such file exists, a name in ``boards/`` with or without ``.yaml``.
    base_dir:
        Folder that relative paths start from (a config file's folder).

    Raises
    ------
    InputError
        If the board cannot be found, is not valid YAML, has unknown, duplicate or missing
        keys, or a value out of range; the message names the file and the field.
    """
    path = resolve_named_file(spec, "board", BOARDS_DIR, base_dir)
    data = load_yaml(path)
    names = [f.name for f in fields(Board)]
    check_keys(path, "", data, names,
               required=[f.name for f in fields(Board) if f.default is MISSING])
    try:
        return Board(**data)
    except (TypeError, ValueError) as exc:
        # Messages start with the field's name ("dsp must be ..."): split it off for the error.
        field, _, message = str(exc).partition(" ")
        raise InputError(path, field, message) from None
