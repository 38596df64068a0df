"""Boards: the built-in files carry the data-sheet numbers; bad board files give one clear error."""

from __future__ import annotations

import dataclasses

import pytest

from dse.board import BOARDS_DIR, FAMILIES, Board, board_names, load_board
from dse.errors import InputError

# Published resource counts (DS891 Zynq UltraScale+, DS962 Alveo, Lattice FPGA-DS-02012),
# typed in from the data sheets, independent of the board files.
DATASHEET = {
    "zcu102": dict(family="xcup", part="XCZU9EG", dsp=2520, lut=274080, ff=548160,
                   bram_blocks=912, bram_block_kbits=36, uram_blocks=0),
    "zu2": dict(family="xcup", part="XCZU2EG", dsp=240, lut=47232, ff=94464,
                bram_blocks=150, bram_block_kbits=36, uram_blocks=0),
    "alveo-u200": dict(family="xcup", part="XCU200", dsp=6840, lut=1182240, ff=2364480,
                       bram_blocks=2160, bram_block_kbits=36, uram_blocks=960),
    "ecp5-85k": dict(family="ecp5", part="LFE5U-85F", package="CABGA381", speed_grade="6",
                     dsp=156, lut=83640, ff=83640, bram_blocks=208, bram_block_kbits=18,
                     uram_blocks=0),
}

GOOD = """\
name: test
family: xcup
part: XCZU9EG
package: FFVB1156
speed_grade: "-2"
dsp: 2520
lut: 274080
ff: 548160
bram_blocks: 912
bram_block_kbits: 36
uram_blocks: 0
dram_gbps: 19.2
clock_mhz: 300
static_power_w: 1.0
source: DS891
"""


def write(tmp_path, text, name="b.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def edit(field, value):
    """GOOD with one field's line replaced (value is YAML text)."""
    lines = [f"{field}: {value}" if ln.startswith(f"{field}:") else ln
             for ln in GOOD.splitlines()]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("name", sorted(DATASHEET))
def test_builtin_board_matches_data_sheet(name):
    board = load_board(name)
    for field, value in DATASHEET[name].items():
        assert getattr(board, field) == value, field


def test_every_board_file_loads_and_names_its_source():
    assert set(DATASHEET) <= set(board_names())
    for name in board_names():
        board = load_board(name)
        assert board.name == name
        assert board.family in FAMILIES
        assert board.source.strip()
        # Every file says where its numbers come from and what is not certain.
        assert "unconfirmed" in (BOARDS_DIR / f"{name}.yaml").read_text()


def test_dram_latency_and_bandwidth_in_cycles(tmp_path):
    """The DRAM latency is optional (0: a memory that answers at once) and counted in cycles
    at the clock, rounded up; the DRAM's bytes per 256 cycles count only where the DRAM is
    narrower than the bus."""
    board = load_board(write(tmp_path, GOOD))
    assert board.dram_latency_ns == 0 and board.dram_latency_cycles == 0
    board = load_board(write(tmp_path, GOOD + "dram_latency_ns: 130\n"))
    assert board.dram_latency_cycles == 39                  # 130 ns · 300 MHz
    assert dataclasses.replace(board, clock_mhz=310).dram_latency_cycles == 41   # 40.3
    assert dataclasses.replace(board, dram_latency_ns=100).dram_latency_cycles == 30
    # 19.2 GB/s at 300 MHz is 64 bytes a cycle: a 512-bit bus is the limit, a wider one not
    assert board.dram_bandwidth_256(512) == 0
    assert board.dram_bandwidth_256(1024) == 64 * 256
    slow = dataclasses.replace(board, dram_gbps=0.5)       # 1.667 bytes a cycle
    assert slow.dram_bandwidth_256(64) == 426


def test_derived_quantities_by_hand():
    board = load_board("zcu102")
    assert board.bram_kbits == 912 * 36            # DS891: 32.1 Mb
    assert board.dram_bytes_per_cycle == pytest.approx(19.2e9 / 300e6)
    u200 = load_board("alveo-u200")
    assert u200.uram_kbits == 960 * 288            # DS962: 270 Mb
    assert u200.onchip_bytes == (2160 * 36 + 960 * 288) * 128


def test_lookup_by_name_with_suffix_path_and_base_dir(tmp_path):
    assert load_board("zu2.yaml") == load_board("zu2")
    path = write(tmp_path, GOOD, "mine.yaml")
    assert load_board(path).name == "test"
    assert load_board("mine.yaml", base_dir=tmp_path).dsp == 2520
    sub = tmp_path / "cfg"
    sub.mkdir()
    assert load_board("../mine.yaml", base_dir=sub).part == "XCZU9EG"


def test_unknown_board():
    with pytest.raises(InputError, match=r"^nosuch: must be a board file or a name in boards/ "
                                         r"\(.*zcu102.*\), but neither exists$"):
        load_board("nosuch")


@pytest.mark.parametrize("text, field, message", [
    (GOOD + "colour: red\n", "colour", r"is not a known key .*"),
    (GOOD + "dsp: 3\n", "line 16", r"is not valid YAML: duplicate key 'dsp'"),
    (GOOD.replace("dsp: 2520\n", ""), "dsp", r"is required"),
    (edit("dsp", "-4"), "dsp", r"must be at least 1, not -4"),
    (edit("dsp", "0"), "dsp", r"must be at least 1, not 0"),
    (edit("lut", "many"), "lut", r"must be an integer, not 'many'"),
    (edit("ff", "true"), "ff", r"must be an integer, not True"),
    (edit("bram_blocks", "9.5"), "bram_blocks", r"must be an integer, not 9.5"),
    (edit("family", "xc7"), "family", r"must be one of xcup, ecp5, not 'xc7'"),
    (edit("speed_grade", "6"), "speed_grade", r"must be a Xilinx speed grade .*, not '6'"),
    (edit("dram_gbps", "0"), "dram_gbps", r"must be a positive finite number, not 0"),
    (edit("clock_mhz", ".nan"), "clock_mhz", r"must be a positive finite number, not nan"),
    (edit("static_power_w", "-1"), "static_power_w",
     r"must be a non-negative finite number, not -1"),
    (edit("source", '""'), "source", r"must be a non-empty string, not ''"),
    (edit("part", "[a]"), "part", r"must be a string, not \['a'\]"),
    (GOOD + "dram_latency_ns: -5\n", "dram_latency_ns",
     r"must be a non-negative finite number, not -5"),
])
def test_bad_board_file(tmp_path, text, field, message):
    path = write(tmp_path, text)
    with pytest.raises(InputError) as info:
        load_board(path)
    assert info.value.source == str(path)
    assert info.value.field == field
    assert info.match(message)


def test_ecp5_specific_checks(tmp_path):
    ecp5 = GOOD.replace("family: xcup", "family: ecp5")
    with pytest.raises(InputError, match=r"speed_grade: must be 6, 7 or 8 for an ECP5 part"):
        load_board(write(tmp_path, ecp5))
    ecp5 = ecp5.replace('speed_grade: "-2"', "speed_grade: 8").replace("uram_blocks: 0",
                                                                       "uram_blocks: 4")
    with pytest.raises(InputError, match=r"uram_blocks: must be 0 for an ECP5 part, not 4$"):
        load_board(write(tmp_path, ecp5))


@pytest.mark.parametrize("text", ["", "- a list\n", "just text\n", "a: [unclosed\n"])
def test_not_a_board_mapping(tmp_path, text):
    with pytest.raises(InputError, match=r"must be a mapping|is not valid YAML"):
        load_board(write(tmp_path, text))


def test_dataclass_validates_on_replace():
    board = load_board("zcu102")
    with pytest.raises(ValueError, match=r"^clock_mhz must be a positive finite number, not 0$"):
        dataclasses.replace(board, clock_mhz=0)
    with pytest.raises(TypeError, match=r"^dsp must be an integer, not '1'$"):
        dataclasses.replace(board, dsp="1")
    assert isinstance(dataclasses.replace(board, speed_grade=-1), Board)
    assert dataclasses.replace(board, speed_grade=-1).speed_grade == "-1"
