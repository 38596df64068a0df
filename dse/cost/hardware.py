"""The hardware side of the cost model: many :class:`rtl.params.OverlayParams` points as arrays.

:class:`HardwareTable` holds ``P`` overlay points, one integer array per OverlayParams field,
plus the board numbers every point shares: the clock, the DRAM bandwidth, the static power and
the FPGA family.  The search builds it either from OverlayParams objects
(:meth:`HardwareTable.from_params`) or, much faster for thousands of points, as a cartesian
grid validated in one vectorised pass (:meth:`HardwareTable.from_grid`) with the same rules
and messages as OverlayParams.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from rtl.params import REQUANT_KINDS, OverlayParams, winograd_lanes_ok

__all__ = ["HardwareTable", "PARAM_FIELDS"]

#: The OverlayParams fields the table holds (the integer ones), in declaration order.
#: ``requant`` is not among them: the network fixes it (a quantised network needs the
#: per-channel requantiser), the search does not explore it.
PARAM_FIELDS = tuple(f.name for f in fields(OverlayParams) if f.type in (int, "int"))

_FAMILIES = ("xcup", "ecp5")


def _check_points(arrays: dict) -> None:
    """Vectorised OverlayParams validation (same constraints, first offender reported)."""

    def bad(name, ok, rule):
        if not np.all(ok):
            i = int(np.argmin(ok))
            raise ValueError(f"{name} must be {rule}, not {arrays[name][i]} (point {i})")

    for name in ("rows", "cols"):
        bad(name, (arrays[name] >= 1) & (arrays[name] <= 256), "between 1 and 256")
    for name in ("a_width", "b_width"):
        bad(name, (arrays[name] >= 2) & (arrays[name] <= 27), "between 2 and 27")
    bad("acc_width", (arrays["acc_width"] >= 2) & (arrays["acc_width"] <= 64),
        "between 2 and 64")
    bad("acc_width", arrays["acc_width"] >= arrays["a_width"] + arrays["b_width"],
        "at least a_width + b_width")
    bad("winograd_m", np.isin(arrays["winograd_m"], (0, 2, 4)), "0, 2 or 4")
    bad("winograd_lanes", (arrays["winograd_lanes"] >= 1) & (arrays["winograd_lanes"] <= 256),
        "between 1 and 256")
    bad("winograd_lanes", winograd_lanes_ok(arrays["cols"], arrays["winograd_m"],
                                            arrays["winograd_lanes"]),
        "1 without a Winograd unit, else a power of two dividing cols with winograd_lanes·m² "
        "at most max(cols, m²)")
    bad("fft_size", np.isin(arrays["fft_size"], (0, 4, 8, 16, 32)), "0, 4, 8, 16 or 32")
    for name in ("sparse_lanes", "sparse_banks"):
        bad(name, (arrays[name] >= 0) & (arrays[name] <= 1024), "between 0 and 1024")
    bad("sparse_lanes", (arrays["sparse_lanes"] == 0) == (arrays["sparse_banks"] == 0),
        "0 exactly when sparse_banks is 0")
    for name in ("act_buffer_kib", "weight_buffer_kib", "out_buffer_kib"):
        bad(name, (arrays[name] >= 1) & (arrays[name] <= 1 << 20), f"between 1 and {1 << 20}")
    bad("bus_bits", np.isin(arrays["bus_bits"], (32, 64, 128, 256, 512, 1024)),
        "a power of two from 32 to 1024")


@dataclass(frozen=True, eq=False)
class HardwareTable:
    """``P`` overlay points on one board.

    Members
    -------
    rows, cols, a_width, b_width, acc_width, winograd_m, winograd_lanes, fft_size, sparse_lanes,
    sparse_banks,
    act_buffer_kib, weight_buffer_kib, out_buffer_kib, bus_bits:
        ``(P,)`` int64 arrays, one per :class:`rtl.params.OverlayParams` field.
    clock_mhz:
        Clock of the overlay on this board (MHz).
    dram_gbps:
        Board DRAM bandwidth in GB/s (10**9 bytes per second).
    static_power_w:
        Static power of the FPGA (W), charged for the whole latency.
    family:
        ``"xcup"`` or ``"ecp5"`` (picks the resource model's primitives).
    requant:
        The requantiser of every point (:data:`rtl.params.REQUANT_KINDS`): a quantised
        network's table is all ``f32`` (the resource model prices its units).
    """

    rows: np.ndarray
    cols: np.ndarray
    a_width: np.ndarray
    b_width: np.ndarray
    acc_width: np.ndarray
    winograd_m: np.ndarray
    winograd_lanes: np.ndarray
    fft_size: np.ndarray
    sparse_lanes: np.ndarray
    sparse_banks: np.ndarray
    act_buffer_kib: np.ndarray
    weight_buffer_kib: np.ndarray
    out_buffer_kib: np.ndarray
    bus_bits: np.ndarray
    clock_mhz: float = 200.0
    dram_gbps: float = 19.2
    static_power_w: float = 0.0
    family: str = "xcup"
    requant: str = "shift"

    def __post_init__(self):
        arrays = {}
        n = None
        for name in PARAM_FIELDS:
            arr = np.asarray(getattr(self, name))
            if arr.ndim != 1:
                raise ValueError(f"{name} must be a 1-D array, not shape {arr.shape}")
            if not np.issubdtype(arr.dtype, np.integer):
                raise TypeError(f"{name} must be an integer array, not {arr.dtype}")
            if n is None:
                n = arr.shape[0]
            elif arr.shape[0] != n:
                raise ValueError(f"{name} must have {n} points, not {arr.shape[0]}")
            arr = arr.astype(np.int64)
            arr.setflags(write=False)
            arrays[name] = arr
            object.__setattr__(self, name, arr)
        if n == 0:
            raise ValueError("a HardwareTable must hold at least one point, not 0")
        _check_points(arrays)
        for name in ("clock_mhz", "dram_gbps"):
            value = getattr(self, name)
            if hasattr(value, "requires_grad"):     # a torch scalar tensor, for gradients
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"{name} must be a positive number, not {value!r}")
        if not hasattr(self.static_power_w, "requires_grad") and not (
                isinstance(self.static_power_w, (int, float)) and self.static_power_w >= 0):
            raise ValueError(f"static_power_w must be a non-negative number, "
                             f"not {self.static_power_w!r}")
        if self.family not in _FAMILIES:
            raise ValueError(f"family must be one of {_FAMILIES}, not {self.family!r}")
        if self.requant not in REQUANT_KINDS:
            raise ValueError(f"requant must be one of {REQUANT_KINDS}, not {self.requant!r}")

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    @classmethod
    def from_params(cls, params, clock_mhz: float = 200.0, dram_gbps: float = 19.2,
                    static_power_w: float = 0.0, family: str = "xcup") -> "HardwareTable":
        """Build a table from :class:`rtl.params.OverlayParams` objects (or one of them)."""
        if isinstance(params, OverlayParams):
            params = [params]
        params = list(params)
        for p in params:
            if not isinstance(p, OverlayParams):
                raise TypeError(f"params must be OverlayParams, not {p!r}")
        arrays = {name: np.array([getattr(p, name) for p in params], dtype=np.int64)
                  for name in PARAM_FIELDS}
        kinds = {p.requant for p in params}
        if len(kinds) > 1:
            raise ValueError(f"params must share one requant, not {sorted(kinds)}")
        return cls(**arrays, clock_mhz=clock_mhz, dram_gbps=dram_gbps,
                   static_power_w=static_power_w, family=family, requant=kinds.pop())

    @classmethod
    def from_grid(cls, clock_mhz: float = 200.0, dram_gbps: float = 19.2,
                  static_power_w: float = 0.0, family: str = "xcup",
                  **axes) -> "HardwareTable":
        """The cartesian product of per-field value lists (missing fields take defaults).

        Example: ``HardwareTable.from_grid(rows=[8, 16, 32], cols=[8, 16, 32],
        winograd_m=[0, 2], bus_bits=[128, 256])`` has 36 points.
        """
        defaults = OverlayParams()
        for name in axes:
            if name not in PARAM_FIELDS:
                raise ValueError(f"grid axis must be an OverlayParams field, not {name!r}")
        values = [np.atleast_1d(np.asarray(axes.get(name, getattr(defaults, name))))
                  for name in PARAM_FIELDS]
        grids = np.meshgrid(*values, indexing="ij")
        arrays = {name: g.reshape(-1).astype(np.int64) for name, g in zip(PARAM_FIELDS, grids)}
        return cls(**arrays, clock_mhz=clock_mhz, dram_gbps=dram_gbps,
                   static_power_w=static_power_w, family=family)

    def params(self, i: int) -> OverlayParams:
        """The OverlayParams of point ``i`` (validated again by its constructor)."""
        return OverlayParams(**{name: int(getattr(self, name)[i]) for name in PARAM_FIELDS},
                             requant=self.requant)

    def take(self, index) -> "HardwareTable":
        """The sub-table of the points at ``index`` (an integer array, list or boolean mask)."""
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        arrays = {name: getattr(self, name)[index.reshape(-1)] for name in PARAM_FIELDS}
        return HardwareTable(**arrays, clock_mhz=self.clock_mhz, dram_gbps=self.dram_gbps,
                             static_power_w=self.static_power_w, family=self.family,
                             requant=self.requant)

    def column(self, name: str, xp=np):
        """Return field ``name`` as a float64 ``(1, 1, P)`` array of namespace ``xp``."""
        return xp.asarray(getattr(self, name).astype(np.float64).reshape(1, 1, -1))

    def dram_bytes_per_cycle(self, xp=np):
        """DRAM bytes per overlay clock cycle, ``(1, 1, P)``: the smaller of the AXI bus width
        and the board bandwidth (``dram_gbps``·10^9 B/s ÷ ``clock_mhz``·10^6 cycles/s)."""
        board = self.dram_gbps * 1e3 / self.clock_mhz
        bus = self.column("bus_bits", xp) / 8.0
        return xp.minimum(bus, board)
