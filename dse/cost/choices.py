"""The choice axis of the cost model: (algorithm, variant, dataflow, tiling) per layer.

A *choice* is everything a layer decides on a given overlay:

* the algorithm and its variant: ``im2col``; ``kn2row``; Winograd ``F2x2_3x3`` or
  ``F4x4_3x3``; FFT overlap-and-add ``fft8`` or ``fft16``; pruned spectral (``sparse_fft``,
  opt-in) ``sparse8`` or ``sparse16`` (the FFT unit of that size plus the sparse MAC unit);
* the array dataflow: ``ws``, ``os`` or ``is`` (:class:`rtl.params.Dataflow`);
* the tiling, i.e. which operand stays resident in its on-chip buffer while the other
  streams past it -- the spectral paper's "reuse kernels or activations?":
  ``weights`` (a block of output channels' weights is resident; the activations stream, and
  are re-fetched once per weight block) or ``activations`` (a spatial tile of the input is
  resident; all weights stream past it, re-fetched once per tile).  The tile sizes follow
  from the buffer capacities of each hardware point (``dse.cost.traffic``).  For
  ``sparse_fft`` the tiling is the flexible dataflow's per-layer reuse mode: ``weights`` =
  kernels resident (activations streamed), ``activations`` = activations resident (kernels
  streamed), priced by :mod:`dse.cost.sparse_traffic`; its array dataflow means nothing.

:class:`ChoiceTable` is the axis as arrays; :func:`legal_mask` says which (layer, choice)
pairs can run at all and :func:`hardware_mask` which (choice, hardware point) pairs the
overlay supports.

Legality (the algorithm's own limits, independent of the hardware) is each algorithm's
lowering's (:mod:`dse.lowering`: ``legal`` and ``RULE``), the rule the compiler refuses by:
im2col runs every conv and fc layer with equal strides and dilations; kn2row kernels larger
than 1×1 (a 1×1 kn2row is im2col) with strides 1, 2 or 4; Winograd F(m×m, 3×3) square
kernels k ≥ 3 at stride 1, dilation 1, one group (larger kernels as ceil(k/3)² 3×3 pieces);
FFT with N-point tiles square kernels 1 < k < N at stride 1, dilation 1, one group; sparse FFT
the same as FFT.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from rtl.params import WINOGRAD_EXTRA_BITS, Algorithm, Dataflow

__all__ = ["Choice", "ChoiceTable", "VARIANTS", "TILINGS", "UNIT_COLUMN", "enumerate_choices",
           "legal_mask",
           "hardware_mask", "required_widths", "weight_word_bytes"]

#: Variant name -> (algorithm, Winograd output tile m, FFT size N).  ``patches``: im2col of a
#: layer that reads the network's input, from the host's im2col patches of that input
#: (:func:`dse.lowering.im2col.patched`).
VARIANTS = {
    "im2col": (Algorithm.IM2COL, 0, 0),
    "patches": (Algorithm.IM2COL, 0, 0),
    "kn2row": (Algorithm.KN2ROW, 0, 0),
    "F2x2_3x3": (Algorithm.WINOGRAD, 2, 0),
    "F4x4_3x3": (Algorithm.WINOGRAD, 4, 0),
    "fft8": (Algorithm.FFT, 0, 8),
    "fft16": (Algorithm.FFT, 0, 16),
    "sparse8": (Algorithm.SPARSE_FFT, 0, 8),
    "sparse16": (Algorithm.SPARSE_FFT, 0, 16),
}

#: Tiling names; the index is the tiling code in :class:`ChoiceTable`.
TILINGS = ("weights", "activations")

# Extra operand bits over the precision p that each variant needs in the array, as
# (activation bits, weight bits).  Winograd: rtl.params.WINOGRAD_EXTRA_BITS (exact transforms:
# int8 needs 10 x 12 bits for F(2x2,3x3), 15 x 18 for F(4x4,3x3)).  FFT: 16-bit fixed-point
# spectra for int8 (p+8), plus one bit on each operand for Gauss's sums.
_EXTRA_BITS = {"im2col": (0, 0), "patches": (0, 0), "kn2row": (0, 0),
               "F2x2_3x3": WINOGRAD_EXTRA_BITS[2],
               "F4x4_3x3": WINOGRAD_EXTRA_BITS[4],
               "fft8": (9, 9), "fft16": (9, 9),
               # the sparse lanes have their own 16-bit parts (rtl.params.SparseParams); the
               # array runs nothing of the layer
               "sparse8": (0, 0), "sparse16": (0, 0)}


def required_widths(variant: str, precision: int) -> tuple[int, int]:
    """Return the (activation, weight) operand bits the array needs for ``variant``."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {sorted(VARIANTS)}, not {variant!r}")
    if precision not in (8, 16):
        raise ValueError(f"precision must be 8 or 16, not {precision!r}")
    ea, eb = _EXTRA_BITS[variant]
    return precision + ea, precision + eb


def weight_word_bytes(variant: str, precision: int) -> int:
    """Bytes of one stored weight word in DRAM for ``variant`` (transformed weights are wider).

    Spatial weights are ``precision`` bits.  Winograd weights are stored pre-transformed at
    the width the array needs (p+4 or p+6 bits, rounded up to whole bytes).  FFT weights are
    stored as the two real parts of each complex bin at p+8 bits each (rounded up to bytes);
    the Gauss sums are formed on chip, so one stored bin is two words.
    """
    _, bits = required_widths(variant, precision)
    if VARIANTS[variant][0] == Algorithm.FFT:
        bits -= 1
    return -(-bits // 8)


@dataclass(frozen=True)
class Choice:
    """One point of the choice axis.

    Members
    -------
    algorithm: the algorithm family.
    variant: one of :data:`VARIANTS` (equals the algorithm's name for im2col and kn2row).
    dataflow: array dataflow.
    tiling: one of :data:`TILINGS` (the operand kept resident on chip).
    """

    algorithm: Algorithm
    variant: str
    dataflow: Dataflow
    tiling: str

    def __post_init__(self):
        if not isinstance(self.algorithm, Algorithm):
            raise TypeError(f"algorithm must be an Algorithm, not {self.algorithm!r}")
        if not isinstance(self.dataflow, Dataflow):
            raise TypeError(f"dataflow must be a Dataflow, not {self.dataflow!r}")
        if self.variant not in VARIANTS or VARIANTS[self.variant][0] != self.algorithm:
            raise ValueError(f"variant must be a variant of {self.algorithm.value}, "
                             f"not {self.variant!r}")
        if self.tiling not in TILINGS:
            raise ValueError(f"tiling must be one of {TILINGS}, not {self.tiling!r}")

    @property
    def label(self) -> str:
        """Short text form, e.g. ``winograd/F2x2_3x3/ws/weights``."""
        return f"{self.algorithm.value}/{self.variant}/{self.dataflow.value}/{self.tiling}"


class ChoiceTable:
    """The choice axis as arrays (length ``C``), plus the :class:`Choice` objects.

    Members
    -------
    choices: the :class:`Choice` objects, in axis order.
    algo: index of the algorithm in ``list(Algorithm)``.
    wino_m: Winograd output tile m (0 for other algorithms).
    fft_n: FFT size N (0 for other algorithms).
    dataflow: :attr:`rtl.params.Dataflow.code` (0 ws, 1 os, 2 is).
    tiling: index into :data:`TILINGS` (0 weights resident, 1 activations resident).
    patches: 1 for im2col from host patches (variant ``patches``), else 0.
    """

    def __init__(self, choices):
        self.choices = tuple(choices)
        if not self.choices:
            raise ValueError("choices must not be empty")
        for c in self.choices:
            if not isinstance(c, Choice):
                raise TypeError(f"choices must be Choice objects, not {c!r}")
        algos = list(Algorithm)
        self.algo = np.array([algos.index(c.algorithm) for c in self.choices], dtype=np.int64)
        self.wino_m = np.array([VARIANTS[c.variant][1] for c in self.choices], dtype=np.int64)
        self.fft_n = np.array([VARIANTS[c.variant][2] for c in self.choices], dtype=np.int64)
        self.dataflow = np.array([c.dataflow.code for c in self.choices], dtype=np.int64)
        self.tiling = np.array([TILINGS.index(c.tiling) for c in self.choices], dtype=np.int64)
        self.patches = np.array([c.variant == "patches" for c in self.choices], dtype=np.int64)
        for arr in (self.algo, self.wino_m, self.fft_n, self.dataflow, self.tiling,
                    self.patches):
            arr.setflags(write=False)

    def __len__(self) -> int:
        return len(self.choices)

    def __getitem__(self, i) -> Choice:
        return self.choices[i]

    def index(self, choice: Choice) -> int:
        """Position of ``choice`` on the axis."""
        return self.choices.index(choice)

    def is_algorithm(self, algorithm: Algorithm) -> np.ndarray:
        """Boolean ``(C,)`` mask of the choices of ``algorithm``."""
        return self.algo == list(Algorithm).index(algorithm)

    def column(self, name: str, xp=np):
        """Return field ``name`` as a float64 ``(1, C, 1)`` array of namespace ``xp``."""
        return xp.asarray(getattr(self, name).astype(np.float64).reshape(1, -1, 1))


def _as_enum(values, enum_cls, what):
    out = []
    for v in values:
        try:
            out.append(v if isinstance(v, enum_cls) else enum_cls(v))
        except ValueError:
            raise ValueError(f"{what} must be one of {[e.value for e in enum_cls]}, "
                             f"not {v!r}") from None
    return out


def enumerate_choices(algorithms=None, dataflows=None, tilings=None,
                      variants=None) -> ChoiceTable:
    """Every (algorithm, variant, dataflow, tiling) combination of the allowed sets.

    Parameters
    ----------
    algorithms:
        Allowed algorithms (names or :class:`Algorithm`); default im2col, kn2row, winograd,
        fft (``sparse_fft`` is opt-in: name it).
    dataflows:
        Allowed dataflows (names or :class:`Dataflow`); default all three.
    tilings:
        Allowed tilings (:data:`TILINGS`); default both.
    variants:
        Allowed variants (:data:`VARIANTS` names); default all of the allowed algorithms.
    """
    algos = _as_enum(algorithms if algorithms is not None
                     else ("im2col", "kn2row", "winograd", "fft"), Algorithm, "algorithms")
    flows = _as_enum(dataflows if dataflows is not None else list(Dataflow), Dataflow,
                     "dataflows")
    tils = tuple(tilings) if tilings is not None else TILINGS
    for t in tils:
        if t not in TILINGS:
            raise ValueError(f"tilings must be among {TILINGS}, not {t!r}")
    vnames = tuple(variants) if variants is not None else tuple(VARIANTS)
    for v in vnames:
        if v not in VARIANTS:
            raise ValueError(f"variants must be among {tuple(VARIANTS)}, not {v!r}")
    out = []
    for v in vnames:
        algo = VARIANTS[v][0]
        if algo not in algos:
            continue
        for flow, til in itertools.product(flows, tils):
            out.append(Choice(algo, v, flow, til))
    return ChoiceTable(out)


#: The :class:`ChoiceTable` column that is each algorithm's ``unit`` in :mod:`dse.lowering`.
UNIT_COLUMN = {Algorithm.IM2COL: "patches", Algorithm.WINOGRAD: "wino_m",
               Algorithm.FFT: "fft_n", Algorithm.SPARSE_FFT: "fft_n"}


def legal_mask(layers, choices: ChoiceTable) -> np.ndarray:
    """Boolean ``(L, C)``: the datapath can run each layer by each choice's algorithm, by
    the legality rule of that algorithm's lowering (:mod:`dse.lowering`, the rules the
    compiler refuses by)."""
    from dse.lowering import LOWERINGS, SPARSE_LOWERINGS, Geometry

    g = Geometry.of_table(layers)
    out = np.zeros((len(layers), len(choices)), dtype=bool)
    for algo, mod in {**LOWERINGS, **SPARSE_LOWERINGS}.items():
        sel = choices.is_algorithm(algo)
        if not sel.any():
            continue
        unit = choices.column(UNIT_COLUMN.get(algo, "fft_n"))
        ok = np.broadcast_to(mod.legal(g, unit), (len(layers), len(choices), 1))[:, :, 0]
        if algo == Algorithm.IM2COL:        # host patches: only of the network's input
            ok = ok & ((choices.patches[None, :] == 0) | (layers.first[:, None] == 1))
        flows = np.isin(choices.dataflow, [d.code for d in mod.DATAFLOWS])
        out[:, sel] = ok[:, sel] & flows[None, sel]
    return out


def hardware_mask(choices: ChoiceTable, hardware, precision: int = 8) -> np.ndarray:
    """Boolean ``(C, P)``: the overlay at each hardware point can run each choice.

    A Winograd choice needs a Winograd unit of the same m, an FFT choice an FFT unit of the
    same size, a sparse FFT choice that FFT unit and a sparse MAC unit (``sparse_lanes`` >
    0), and every choice needs array operand widths of at least :func:`required_widths`
    (transformed operands are wider).
    """
    req = np.array([required_widths(c.variant, precision) for c in choices.choices])
    a_ok = hardware.a_width[None, :] >= req[:, 0:1]
    b_ok = hardware.b_width[None, :] >= req[:, 1:2]
    wm = choices.wino_m[:, None]
    fn = choices.fft_n[:, None]
    sparse = choices.is_algorithm(Algorithm.SPARSE_FFT)[:, None]
    unit_ok = (((wm == 0) | (hardware.winograd_m[None, :] == wm))
               & ((fn == 0) | (hardware.fft_size[None, :] == fn))
               & (~sparse | (hardware.sparse_lanes[None, :] > 0)))
    return a_ok & b_ok & unit_ok
