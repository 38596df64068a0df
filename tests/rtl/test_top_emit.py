"""The overlay top's Verilog with its datapath as a module of its own (``omniconv verilog``
writes overlay.v once and reuses its text in overlay_top.v).

* Converting the top with ``datapath_module`` gives exactly the shell (the datapath's modules
  ``provided``) followed by the datapath's own conversion: the reused text is what a full
  conversion would have written.
* ``omniconv.overlay.write_overlay_top`` reuses only a datapath text that declares the top's
  datapath ports: given overlay.v of the plain datapath (no pool-engine or tile-slot ports)
  it converts the whole top instead, so overlay_top.v never instantiates ports that do not
  exist.
"""

from amaranth.lib.wiring import In

from omniconv.overlay import _declares_ports
from rtl.conv_datapath import generate_verilog
from rtl.emit import _silence, module_instance, verilog_text
from rtl.overlay_top import OverlayTop, top_datapath
from rtl.params import DatapathLimits, OverlayParams

HW = OverlayParams(rows=4, cols=4, a_width=10, b_width=12, acc_width=32, winograd_m=2,
                   winograd_lanes=1, bus_bits=64)
LIMITS = DatapathLimits(max_m=32, max_k=72, max_n=8, feature_words=256, weight_words=128,
                        out_words=64, max_gemms=16, tile_words=32, spectral_words=2)


def test_shell_plus_datapath_is_the_whole_top():
    whole = verilog_text(OverlayTop(HW, LIMITS, datapath_module="overlay"), "overlay_top")
    top = OverlayTop(HW, LIMITS, datapath_module="overlay")
    provided = set(top.instance_modules())
    assert "overlay" in provided and len(provided) == 2          # the datapath, the PE
    shell = verilog_text(top, "overlay_top", provided=provided)
    datapath = verilog_text(top_datapath(HW, LIMITS, pe_instances=True), "overlay")
    assert "module overlay(" not in shell and "module overlay(" in datapath
    assert whole == shell + datapath


def test_instance_connects_every_port_by_its_converted_name():
    dp = top_datapath(HW, LIMITS)
    inst = module_instance(dp, "overlay")
    members = list(dp.signature.flatten(dp))
    names = {"__".join(map(str, path)): member.flow for path, member, _ in members}
    assert len(inst.ports) == len(names) + 2                  # plus clk and rst
    for name, flow in names.items():
        _, direction = inst.ports[name]
        assert direction == ("i" if flow == In else "o")
    # the ports of the top's datapath, as its Verilog declares them
    text = verilog_text(top_datapath(HW, LIMITS, pe_instances=True), "overlay")
    assert _declares_ports(text, dp)
    _silence(dp)                                   # built for its ports, never elaborated


def test_plain_datapath_text_is_not_reused():
    plain = generate_verilog(HW, LIMITS, name="overlay")
    dp = top_datapath(HW, LIMITS)
    assert not _declares_ports(plain, dp)                     # no ow_*, fr_*, ts_* ports
    assert not _declares_ports("module other(a);\nendmodule\n", dp)
    _silence(dp)
