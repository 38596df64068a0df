"""Run configs: which network on which board, at what precision, for what objective, with pins.

A run config is a YAML file (fields in docs/architecture.md, "Run configs").  ``load_config`` finds it (a path if that
file exists, else a name in ``configs/`` with or without ``.yaml``), validates every field and
loads its board; any problem is an :class:`~dse.errors.InputError` naming the file and field.
The network is kept as written plus the config's folder: the flow resolves it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from dse.board import Board, load_board
from dse.cost.sqnr import DEFAULT_MIN_SQNR_DB
from dse.cost.workload import DEFAULT_DENSITY
from dse.errors import InputError
from dse.search import OBJECTIVES, OPTIMIZERS
from dse.yamlio import check_keys, load_yaml, resolve_named_file
from rtl.params import BUS_BITS, Algorithm, Dataflow, OverlayParams

__all__ = ["CONFIGS_DIR", "OBJECTIVES", "PRECISIONS", "DEFAULT_ALGORITHMS", "LayerPin",
           "RunConfig", "load_config", "config_names"]

#: The folder of the built-in run configs.
CONFIGS_DIR = Path(__file__).resolve().parent.parent / "configs"

#: What the explorer minimises.

#: Bits of weights and activations.
PRECISIONS = (8, 16)

#: Allowed algorithms when a config names none: every unit that exists today.  ``sparse_fft``
#: must be named explicitly (its hardware is optional).
DEFAULT_ALGORITHMS = (Algorithm.IM2COL, Algorithm.KN2ROW, Algorithm.WINOGRAD, Algorithm.FFT)

_KEYS = ("name", "network", "board", "precision", "objective", "algorithms", "dataflows",
         "hardware", "layers", "verify", "clock_mhz", "min_sqnr_db", "optimizer", "sparsity")
_NETWORK_SUFFIXES = (".onnx", ".yaml", ".yml", ".csv")
_HARDWARE_FIELDS = tuple(f.name for f in dataclasses.fields(OverlayParams)
                         if f.type in (int, "int"))


@dataclass(frozen=True)
class LayerPin:
    """A per-layer entry: the algorithm and/or dataflow one layer must use (hard pins), and
    its spectral kernel density for ``sparse_fft``.

    Parameters
    ----------
    algorithm, dataflow:
        The pinned choice, or ``None`` where the explorer chooses.
    density:
        The layer's ``sparse_fft`` density in (0, 1], or ``None`` for the config's
        ``sparsity.density``.
    """

    algorithm: Algorithm | None = None
    dataflow: Dataflow | None = None
    density: float | None = None

    def __post_init__(self):
        if self.algorithm is not None and not isinstance(self.algorithm, Algorithm):
            raise TypeError(f"algorithm must be an Algorithm, not {self.algorithm!r}")
        if self.dataflow is not None and not isinstance(self.dataflow, Dataflow):
            raise TypeError(f"dataflow must be a Dataflow, not {self.dataflow!r}")
        if self.density is not None and not (isinstance(self.density, float)
                                             and 0 < self.density <= 1):
            raise ValueError(f"density must be a float in (0, 1], not {self.density!r}")
        if self.algorithm is None and self.dataflow is None and self.density is None:
            raise ValueError("a layer entry must name an algorithm, a dataflow or a density, "
                             "not none")


@dataclass(frozen=True)
class RunConfig:
    """One validated run config.

    Parameters
    ----------
    path:
        The config file.
    name:
        Label for reports (defaults to the file stem).
    network:
        The network as written: a built-in name or a path relative to ``base_dir``
        (see :attr:`network_spec`).
    board:
        The loaded board; ``clock_mhz`` already replaced by the config's, if it sets one.
    board_spec:
        The board as written in the config.
    precision:
        Bits of weights and activations: 8 or 16.
    objective:
        ``"latency"``, ``"energy"`` or ``"edp"``.
    algorithms, dataflows:
        Allowed sets, in the order written (duplicates removed).
    hardware:
        Pins of :class:`rtl.params.OverlayParams` fields, read-only ``{field: value}``.
    layers:
        Hard per-layer pins by layer name, read-only ``{name: LayerPin}``.
    verify_network:
        The network ``omniconv verify`` simulates, as written (defaults to ``network``).
    min_sqnr_db:
        The accuracy floor of approximate algorithms (FFT): the explorer offers them on a
        layer only where their predicted SQNR reaches it (:mod:`dse.cost.sqnr`).
    optimizer:
        ``"nlp"`` (default: relaxation and local search over the larger space,
        :mod:`dse.optimize`) or ``"grid"`` (the fixed grid, :class:`dse.search.SearchSpace`).
    density:
        ``sparsity.density``: the fraction of spectral kernel bins ``sparse_fft`` keeps per
        kernel, in (0, 1] (default :data:`dse.cost.workload.DEFAULT_DENSITY`); a layer's
        ``layers.NAME.density`` replaces it for that layer (:attr:`densities`).
    """

    path: Path
    name: str
    network: str
    board: Board
    board_spec: str
    precision: int = 8
    objective: str = "latency"
    algorithms: tuple[Algorithm, ...] = DEFAULT_ALGORITHMS
    dataflows: tuple[Dataflow, ...] = tuple(Dataflow)
    hardware: Mapping[str, int] = dataclasses.field(default_factory=lambda: MappingProxyType({}))
    layers: Mapping[str, LayerPin] = dataclasses.field(
        default_factory=lambda: MappingProxyType({}))
    verify_network: str | None = None
    min_sqnr_db: float = DEFAULT_MIN_SQNR_DB
    optimizer: str = "nlp"
    density: float = DEFAULT_DENSITY

    def __post_init__(self):
        if self.verify_network is None:
            object.__setattr__(self, "verify_network", self.network)

    @property
    def stem(self) -> str:
        """The config file's stem: names the output folder."""
        return self.path.stem

    @property
    def base_dir(self) -> Path:
        """The config file's folder: relative network and board paths start here."""
        return self.path.parent

    @property
    def out_dir(self) -> Path:
        """The default output folder, ``build/<config file stem>`` (relative to the cwd)."""
        return Path("build") / self.stem

    @property
    def network_spec(self) -> str:
        """The network for a loader: a built-in name, or the file's path made absolute."""
        return _network_spec(self.network, self.base_dir)

    @property
    def verify_network_spec(self) -> str:
        """The verification network for a loader, as :attr:`network_spec`."""
        return _network_spec(self.verify_network, self.base_dir)

    @property
    def densities(self) -> dict:
        """The ``density`` argument of :func:`dse.search.search`: ``{"*": sparsity.density,
        layer: its own density, ...}``."""
        return {"*": self.density, **{name: pin.density for name, pin in self.layers.items()
                                      if pin.density is not None}}

    @property
    def clock_mhz(self) -> float:
        """The overlay clock: the config's ``clock_mhz`` if set, else the board's."""
        return self.board.clock_mhz


def config_names() -> list[str]:
    """Return the names of the built-in configs (the stems of ``configs/*.yaml``)."""
    return sorted(p.stem for p in CONFIGS_DIR.glob("*.yaml"))


def _network_spec(network: str, base_dir: Path) -> str:
    # A value with a folder part or a network-file suffix is a path relative to the config.
    looks_like_path = ("/" in network or "\\" in network
                       or network.lower().endswith(_NETWORK_SUFFIXES))
    if not looks_like_path:
        return network
    path = Path(network)
    return str(path if path.is_absolute() else (base_dir / path).resolve())


def _text(path, field, value) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InputError(path, field, f"must be a non-empty string, not {value!r}")
    return value.strip()


def _choice(path, field, value, allowed):
    if isinstance(value, bool) or not isinstance(value, type(allowed[0])) or value not in allowed:
        raise InputError(path, field, f"must be one of {', '.join(map(str, allowed))}, "
                                      f"not {value!r}")
    return value


def _enum_set(path, field, value, enum_type) -> tuple:
    names = [e.value for e in enum_type]
    if not isinstance(value, list) or not value:
        raise InputError(path, field, f"must be a non-empty list of {', '.join(names)}, "
                                      f"not {value!r}")
    result = []
    for i, item in enumerate(value):
        if not isinstance(item, str) or item not in names:
            raise InputError(path, f"{field}[{i}]", f"must be one of {', '.join(names)}, "
                                                    f"not {item!r}")
        if enum_type(item) not in result:
            result.append(enum_type(item))
    return tuple(result)


def _hardware(path, value, precision) -> MappingProxyType:
    check_keys(path, "hardware", value, _HARDWARE_FIELDS)
    for key, item in value.items():
        if isinstance(item, bool) or not isinstance(item, int):
            raise InputError(path, f"hardware.{key}", f"must be an integer, not {item!r}")
    if "bus_bits" in value and value["bus_bits"] not in BUS_BITS:
        raise InputError(path, "hardware.bus_bits", f"must be one of "
                                                    f"{', '.join(map(str, BUS_BITS))} (the "
                                                    f"overlay top's AXI widths), not "
                                                    f"{value['bus_bits']}")
    for key in ("a_width", "b_width"):
        if key in value and value[key] < precision:
            raise InputError(path, f"hardware.{key}", f"must be at least the precision "
                                                      f"({precision} bits), not {value[key]}")
    # Validate the pins together by building OverlayParams; unpinned fields take values that
    # cannot clash with the pins (the search picks them later): an accumulator wide enough for
    # the pinned operands, and a partner for a lone sparse lane or bank count.
    trial = dict(value)
    if "acc_width" not in trial:
        a = trial.get("a_width", precision)
        b = trial.get("b_width", precision)
        trial["acc_width"] = min(64, max(32 if precision == 8 else 48, a + b))
    for one, other in (("sparse_lanes", "sparse_banks"), ("sparse_banks", "sparse_lanes")):
        if one in trial and other not in trial and isinstance(trial[one], int):
            trial[other] = 1 if trial[one] > 0 else 0
    try:
        OverlayParams(**trial)
    except (TypeError, ValueError) as exc:
        field, _, message = str(exc).partition(" ")
        # Messages of one field read "<field> must ..."; others name several fields.
        if field in value and message.startswith("must"):
            raise InputError(path, f"hardware.{field}", message) from None
        raise InputError(path, "hardware", str(exc)) from None
    return MappingProxyType(dict(value))


def _layers(path, value, algorithms, dataflows) -> MappingProxyType:
    if not isinstance(value, dict):
        raise InputError(path, "layers", f"must be a mapping of layer names to pins, "
                                         f"not {type(value).__name__}")
    pins = {}
    for name, pin in value.items():
        if not isinstance(name, str) or not name.strip():
            raise InputError(path, "layers", f"layer names must be non-empty strings, "
                                             f"not {name!r}")
        field = f"layers.{name}"
        check_keys(path, field, pin, ("algorithm", "dataflow", "density"))
        if not pin:
            raise InputError(path, field, "must pin an algorithm, a dataflow or both (or set a "
                                          "density), not none")
        algorithm = dataflow = density = None
        if "density" in pin:
            density = _density(path, f"{field}.density", pin["density"])
        if "algorithm" in pin:
            allowed = [a.value for a in algorithms]
            algorithm = Algorithm(_choice(path, f"{field}.algorithm", pin["algorithm"], allowed))
        if "dataflow" in pin:
            allowed = [d.value for d in dataflows]
            dataflow = Dataflow(_choice(path, f"{field}.dataflow", pin["dataflow"], allowed))
        pins[name] = LayerPin(algorithm, dataflow, density)
    return MappingProxyType(pins)


def _density(path, field, value) -> float:
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not math.isfinite(value) or not 0 < value <= 1):
        raise InputError(path, field, f"must be a number in (0, 1] (the share of spectral "
                                      f"kernel bins kept), not {value!r}")
    return float(value)


def load_config(spec: str | Path) -> RunConfig:
    """Load and validate a run config, and load its board.

    Parameters
    ----------
    spec:
        A path to a config file if that file exists, else a name in ``configs/`` with or
        without ``.yaml``.

    Raises
    ------
    InputError
        If the config cannot be found or read, is not valid YAML, has unknown, duplicate or
        missing keys, a bad value, a per-layer pin outside the allowed sets, or a board that
        cannot be loaded; the message names the file and the field.
    """
    path = resolve_named_file(spec, "config", CONFIGS_DIR)
    data = load_yaml(path)
    check_keys(path, "", data, _KEYS, required=("network", "board"))
    name = _text(path, "name", data.get("name", path.stem))
    network = _text(path, "network", data["network"])
    board_spec = _text(path, "board", data["board"])
    precision = _choice(path, "precision", data.get("precision", 8), PRECISIONS)
    objective = _choice(path, "objective", data.get("objective", "latency"), OBJECTIVES)
    optimizer = _choice(path, "optimizer", data.get("optimizer", "nlp"), OPTIMIZERS)
    algorithms = _enum_set(path, "algorithms",
                           data.get("algorithms", [a.value for a in DEFAULT_ALGORITHMS]),
                           Algorithm)
    dataflows = _enum_set(path, "dataflows", data.get("dataflows", [d.value for d in Dataflow]),
                          Dataflow)
    hardware = _hardware(path, data.get("hardware", {}), precision)
    layers = _layers(path, data.get("layers", {}), algorithms, dataflows)
    verify = data.get("verify", {})
    check_keys(path, "verify", verify, ("network",))
    verify_network = _text(path, "verify.network", verify["network"]) if verify else None
    try:
        board = load_board(board_spec, base_dir=path.parent)
    except InputError as exc:
        # Name the config's field when the board itself is missing; pass a bad board file's
        # own error through, since it names that file and its field.
        if exc.field or Path(exc.source).is_file():
            raise
        raise InputError(path, "board", exc.message) from None
    sparsity = data.get("sparsity", {})
    check_keys(path, "sparsity", sparsity, ("density",))
    density = _density(path, "sparsity.density", sparsity.get("density", DEFAULT_DENSITY))
    min_sqnr_db = data.get("min_sqnr_db", DEFAULT_MIN_SQNR_DB)
    if (isinstance(min_sqnr_db, bool) or not isinstance(min_sqnr_db, (int, float))
            or not math.isfinite(min_sqnr_db) or not 0 <= min_sqnr_db <= 200):
        raise InputError(path, "min_sqnr_db", f"must be a number of dB from 0 to 200, not "
                                              f"{min_sqnr_db!r}")
    if "clock_mhz" in data:
        clock = data["clock_mhz"]
        if (isinstance(clock, bool) or not isinstance(clock, (int, float))
                or not math.isfinite(clock) or clock <= 0):
            raise InputError(path, "clock_mhz", f"must be a positive number, not {clock!r}")
        board = dataclasses.replace(board, clock_mhz=clock)
    return RunConfig(path=path, name=name, network=network, board=board,
                     board_spec=board_spec, precision=precision, objective=objective,
                     algorithms=algorithms, dataflows=dataflows, hardware=hardware,
                     layers=layers, verify_network=verify_network,
                     min_sqnr_db=float(min_sqnr_db), optimizer=optimizer, density=density)
