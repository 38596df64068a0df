"""Signed multiplier with a fixed register latency, mapped per FPGA family.

Each PE multiplies one activation by one weight per cycle.  Where the multiplier sits on the
critical path decides the clock: on ECP5, Yosys maps ``a * b`` to a MULT18X18D but never pulls
neighbouring flip-flops into its input/pipeline/output registers, so an inferred multiplier
followed by a 32-bit carry chain limits the array to ~90-130 MHz.  Instantiating MULT18X18D
with its own registers enabled takes the multiplier off that path.  ``latency`` is the number
of register stages between the operands and the product; the array and the cycle formula
(``dse.cost.gemm``) account for it.

Targets
-------
``"sim"``
    Behavioural ``*`` with ``latency`` registers (input, pipeline, output), for the Amaranth
    simulator and Verilator.
``"xcup"``
    The same behavioural description: Yosys ``synth_xilinx -family xcup`` infers a DSP48E2.
``"ecp5"``
    A ``MULT18X18D`` instance whose REG_INPUTA/B, REG_PIPELINE and REG_OUTPUT registers give
    the latency (1: inputs; 2: inputs + output; 3: inputs + pipeline + output; 4: all three
    plus one fabric register on the product, which gives the DSP-to-fabric route a cycle of
    its own — the DSP columns sit far from the accumulators' carry chains).  Operands are
    sign-extended to 18 bits.  Simulate with ``"sim"``: the timing is identical.
"""

from __future__ import annotations

from amaranth.hdl import ClockSignal, Const, Instance, Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .validate import rejecting

__all__ = ["TARGETS", "MAX_LATENCY", "DEFAULT_LATENCY", "Multiplier"]

#: Synthesis targets the multiplier knows.
TARGETS = ("sim", "xcup", "ecp5")
#: Largest register latency (MULT18X18D's input, pipeline and output registers + one in fabric).
MAX_LATENCY = 4
#: Latency of the engine's default PE (the cycle formula's default ``mult_latency``).
DEFAULT_LATENCY = 3

# Which MULT18X18D registers are enabled for each latency (inputs, pipeline, output).
_ECP5_REGS = {1: (True, False, False), 2: (True, False, True), 3: (True, True, True),
              4: (True, True, True)}


class Multiplier(wiring.Component):
    """Signed ``a_width`` × ``b_width`` multiplier with ``latency`` register stages.

    Parameters
    ----------
    a_width, b_width:
        Signed operand widths in bits.
    latency:
        Register stages from ``a``/``b`` to ``p`` (0 … 4).  ``p`` in cycle *t* is the product
        of the operands of cycle *t − latency*.
    target:
        ``"sim"``, ``"xcup"`` or ``"ecp5"`` (see the module docstring).

    Members
    -------
    a : In(signed(a_width))
    b : In(signed(b_width))
    p : Out(signed(a_width + b_width))

    Raises
    ------
    TypeError, ValueError
        For a bad parameter (ECP5 needs widths <= 18 and a latency >= 1).
    """

    def __init__(self, a_width: int, b_width: int, latency: int = DEFAULT_LATENCY,
                 target: str = "sim"):
        with rejecting(self):
            self._setup(a_width, b_width, latency, target)

    def _setup(self, a_width, b_width, latency, target):
        for name, value in (("a_width", a_width), ("b_width", b_width), ("latency", latency)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an integer, not {value!r}")
        if not 2 <= a_width <= 27 or not 2 <= b_width <= 27:
            raise ValueError(f"a_width and b_width must be between 2 and 27, "
                             f"not {a_width} and {b_width}")
        if not 0 <= latency <= MAX_LATENCY:
            raise ValueError(f"latency must be between 0 and {MAX_LATENCY}, not {latency}")
        if target not in TARGETS:
            raise ValueError(f"target must be one of {', '.join(TARGETS)}, not {target!r}")
        if target == "ecp5":
            if a_width > 18 or b_width > 18:
                raise ValueError(f"a_width and b_width must be at most 18 for MULT18X18D, "
                                 f"not {a_width} and {b_width}")
            if latency < 1:
                raise ValueError("latency must be at least 1 for target 'ecp5' (an unregistered "
                                 "MULT18X18D is what the wrapper avoids), not 0")
        self._a_width, self._b_width = a_width, b_width
        self._latency, self._target = latency, target
        super().__init__({
            "a": In(signed(a_width)),
            "b": In(signed(b_width)),
            "p": Out(signed(a_width + b_width)),
        })

    @property
    def latency(self) -> int:
        """Register stages from operands to product."""
        return self._latency

    @property
    def target(self) -> str:
        """Synthesis target this multiplier is described for."""
        return self._target

    def elaborate(self, platform):
        if self._target == "ecp5":
            return self._elaborate_ecp5()
        m = Module()
        a, b = self.a, self.b
        # Registers in the order of the DSP's own: inputs, then pipeline/output on the product.
        if self._latency >= 1:
            a_r = Signal.like(a, name="a_reg", reset_less=True)
            b_r = Signal.like(b, name="b_reg", reset_less=True)
            m.d.sync += [a_r.eq(a), b_r.eq(b)]
            a, b = a_r, b_r
        p = Signal(signed(self._a_width + self._b_width), name="prod")
        m.d.comb += p.eq(a * b)
        for stage in range(max(0, self._latency - 1)):
            p_r = Signal.like(p, name=f"prod_reg{stage}", reset_less=True)
            m.d.sync += p_r.eq(p)
            p = p_r
        m.d.comb += self.p.eq(p)
        return m

    def _elaborate_ecp5(self):
        m = Module()
        a18 = Signal(signed(18))
        b18 = Signal(signed(18))
        p36 = Signal(signed(36))
        m.d.comb += [a18.eq(self.a), b18.eq(self.b)]
        reg_in, reg_pipe, reg_out = _ECP5_REGS[self._latency]
        ports = {
            "p_REG_INPUTA_CLK": _clk_sel(reg_in), "p_REG_INPUTB_CLK": _clk_sel(reg_in),
            "p_REG_PIPELINE_CLK": _clk_sel(reg_pipe), "p_REG_OUTPUT_CLK": _clk_sel(reg_out),
            "p_REG_INPUTC_CLK": "NONE",
            "p_CLK0_DIV": "ENABLED", "p_GSR": "DISABLED", "p_RESETMODE": "SYNC",
            "p_SOURCEB_MODE": "B_SHIFT", "p_MULT_BYPASS": "DISABLED",
            "p_CAS_MATCH_REG": "FALSE", "p_HIGHSPEED_CLK": "NONE",
            "i_SIGNEDA": Const(1), "i_SIGNEDB": Const(1),
            "i_SOURCEA": Const(0), "i_SOURCEB": Const(0),
            # Only clock/enable/reset 0 are used; the other clocks and the cascade inputs
            # (SRIA/SRIB) stay unconnected as in Yosys's own MULT18X18D mapping: tying them
            # to constants leaves nextpnr with unroutable constant arcs.
            "i_CLK0": ClockSignal("sync"), "i_CE0": Const(1), "i_RST0": Const(0),
        }
        for i in range(18):
            ports[f"i_A{i}"] = a18[i]
            ports[f"i_B{i}"] = b18[i]
            ports[f"i_C{i}"] = Const(0)
        for i in range(36):
            ports[f"o_P{i}"] = p36[i]
        m.submodules.mult = Instance("MULT18X18D", **ports)
        product = p36[:self._a_width + self._b_width]
        if self._latency == 4:
            fabric = Signal(signed(self._a_width + self._b_width), name="prod_fabric",
                            reset_less=True)
            m.d.sync += fabric.eq(product)
            product = fabric
        m.d.comb += self.p.eq(product)
        return m


def _clk_sel(enabled: bool) -> str:
    """Clock selection parameter of one MULT18X18D register ("NONE" bypasses it)."""
    return "CLK0" if enabled else "NONE"
