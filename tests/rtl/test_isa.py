"""rtl.isa: the instruction formats, their encoding, the illegal words and the docs tables."""

from __future__ import annotations

import ast
import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtl import isa
from rtl.isa import (INSTRUCTIONS, NEIGHBOURS, ComputeSetup, ComputeTile, Engine, Finish,
                     IllegalInstruction, LoadSetup, LoadTile, PoolSetup, StoreTile, decode)
from sim.bench.isa_strategies import field_values, instructions

ROOT = Path(__file__).resolve().parents[2]
ALL_ONES = (1 << 128) - 1


FORMATS = pytest.mark.parametrize("cls", INSTRUCTIONS, ids=lambda c: c.MNEMONIC)


# -- the layout table itself ------------------------------------------------------------


@FORMATS
def test_layout_fields_are_disjoint_and_fit_the_width(cls):
    seen = 0
    for f in cls.LAYOUT:
        assert f.bits >= 1 and f.lsb >= 0, f
        assert f.msb < isa.INSTRUCTION_BITS, f"{cls.MNEMONIC} {f.name} ends at bit {f.msb}"
        assert not seen & f.mask, f"{cls.MNEMONIC} {f.name} overlaps another field"
        seen |= f.mask
    assert cls.RESERVED_MASK == ALL_ONES & ~seen      # reserved: exactly the unused bits


@FORMATS
def test_layout_fields_hold_every_legal_code(cls):
    for f in cls.LAYOUT[1:]:
        if f.kind == "int":
            assert 0 <= f.lo <= f.top < 1 << f.bits, f
        elif f.kind == "enum":
            codes = [m.code for m in f.enum]
            assert max(codes) < 1 << f.bits and len(set(codes)) == len(codes), f
        elif f.kind == "choice":
            assert len(f.choices) <= 1 << f.bits, f
        elif f.kind == "tokens":
            assert f.bits == len(NEIGHBOURS[cls.ENGINE]), f
        assert f.doc, f"{cls.MNEMONIC} {f.name} has no meaning to document"


@FORMATS
def test_layout_covers_exactly_the_dataclass_fields(cls):
    names = [f.name for f in cls.LAYOUT]
    assert names == ["opcode"] + [f.name for f in dataclasses.fields(cls)]


@FORMATS
def test_every_format_shares_the_header(cls):
    by_name = {f.name: f for f in cls.LAYOUT}
    assert (by_name["opcode"].lsb, by_name["opcode"].bits) == (0, 4)
    if cls.ENGINE is None:
        assert cls is Finish and len(cls.LAYOUT) == 1
    else:
        assert (by_name["pop"].lsb, by_name["pop"].bits) == (4, 2)
        assert (by_name["push"].lsb, by_name["push"].bits) == (6, 2)


def test_opcodes_are_unique_and_zero_is_illegal():
    codes = [cls.OPCODE for cls in INSTRUCTIONS]
    assert len(set(codes)) == len(codes) and 0 not in codes
    assert all(0 < c < 16 for c in codes)
    assert {cls.MNEMONIC.split(".")[0] for cls in INSTRUCTIONS} == \
        {"load", "compute", "pool", "store", "finish"}


def test_neighbours_form_the_ring_both_ways():
    for engine, near in NEIGHBOURS.items():
        assert engine not in near and len(set(near)) == 2
        for n in near:
            assert engine in NEIGHBOURS[n]        # a queue each way along every edge
    assert Engine.STORE not in NEIGHBOURS[Engine.LOAD]


# -- encodings written out by hand --------------------------------------------------------


def test_finish_is_its_opcode_alone():
    assert Finish().encode() == 0xF
    assert decode(0xF) == Finish()


def test_load_tile_bits_by_hand():
    inst = LoadTile(buf="weight", dram=0x12_3456_789A, addr=0x5, rows=3, cols=226, ch=64,
                    pop={"pool"}, push={"compute"})
    # opcode 3:0, pop 5:4 (bit 1 = pool), push 7:6 (bit 0 = compute), buf 10:8 (weight = 1),
    # dram 50:11, addr 70:51, rows 82:71, cols 94:83, ch 107:95 (docs/isa.md)
    want = (0x2 | 0b10 << 4 | 0b01 << 6 | 1 << 8 | 0x12_3456_789A << 11 | 5 << 51
            | 3 << 71 | 226 << 83 | 64 << 95)
    assert inst.encode() == want
    assert decode(want) == inst


def test_compute_instructions_carry_register_image_addresses():
    # opcode 3:0, pop 5:4, push 7:6 (bit 0 = load, bit 1 = store), images / image 27:8
    assert ComputeSetup(images=0xABCDE).encode() == 0x3 | 0xABCDE << 8
    assert ComputeTile(image=0x12, pop={"load"}, push={"store"}).encode() == (
        0x4 | 0b01 << 4 | 0b10 << 6 | 0x12 << 8)


# -- round trips ------------------------------------------------------------------------


@FORMATS
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_binary_round_trip(cls, data):
    inst = data.draw(instructions(cls))
    word = inst.encode()
    assert 0 <= word < 1 << 128
    assert word & 0xF == cls.OPCODE and not word & cls.RESERVED_MASK
    assert decode(word) == inst


@FORMATS
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_each_field_lives_in_its_own_bits(cls, data):
    """Changing one field changes only that field's bits of the word."""
    inst = data.draw(instructions(cls))
    for f in cls.LAYOUT[1:]:
        other = data.draw(field_values(f, cls.ENGINE))
        try:
            changed = dataclasses.replace(inst, **{f.name: other})
        except ValueError:
            continue
        assert (inst.encode() ^ changed.encode()) & ~f.mask == 0, f.name


# -- refusals at construction -----------------------------------------------------------


INT_FIELDS = [(cls, f) for cls in INSTRUCTIONS for f in cls.LAYOUT[1:] if f.kind == "int"]


def _legal(cls):
    """A legal instruction of a format: every field at its smallest legal value."""
    values = {}
    for f in cls.LAYOUT[1:]:
        values[f.name] = {"int": f.lo, "bool": False, "tokens": frozenset()}.get(f.kind)
        if f.kind == "enum":
            values[f.name] = next(iter(f.enum))
        elif f.kind == "choice":
            values[f.name] = f.choices[0]
    return cls(**values)


@pytest.mark.parametrize("cls,f", INT_FIELDS, ids=lambda x: getattr(x, "name", None) or
                         getattr(x, "MNEMONIC", ""))
def test_out_of_range_names_the_field(cls, f):
    inst = _legal(cls)
    bad = [f.top + 1, f.lo - 1] if f.lo > 0 else [f.top + 1, -1]
    for value in bad:
        want = (rf"^{re.escape(cls.MNEMONIC)} {f.name} must be between {f.lo} and {f.top} "
                rf"\({f.bits} bits\), not {value}$")
        with pytest.raises(ValueError, match=want):
            dataclasses.replace(inst, **{f.name: value})
    with pytest.raises(TypeError, match=rf"^{re.escape(cls.MNEMONIC)} {f.name} must be an "
                                        rf"integer, not '1'$"):
        dataclasses.replace(inst, **{f.name: "1"})


def test_full_size_networks_fit():
    # VGG16/ResNet-50 at 224×224: 4096 channels, a 7×7 stride-2 conv with padding 3 on a
    # whole 230-pixel-wide padded row, addresses past 4 GiB
    PoolSetup(mode="max", kh=7, kw=7, stride=2, ch=4096, mult=(1 << 16) - 1, shift=63)
    LoadTile(buf="feature", dram=(1 << 40) - 1, addr=(1 << 20) - 1, rows=230, cols=230,
             ch=4096)
    StoreTile(dram=0xFFFF_FFFF, addr=0, rows=224, cols=224, ch=4096)
    LoadSetup(buf="feature", elem=4, row_pitch=224 * 4096 * 4, px_pitch=4096 * 4)


def test_enum_values_are_checked():
    with pytest.raises(ValueError, match=r"^pool.setup act must be one of none, relu, "
                                         r"not 'gelu'$"):
        dataclasses.replace(_legal(PoolSetup), act="gelu")
    with pytest.raises(ValueError, match=r"^pool.setup mode must be one of max, avg, gmax, "
                                         r"gavg, add, rescale, qadd, qgavg, lut, not 'min'$"):
        dataclasses.replace(_legal(PoolSetup), mode="min")
    with pytest.raises(TypeError, match=r"^load.tile buf must be a Buffer, not 1$"):
        dataclasses.replace(_legal(LoadTile), buf=1)


def test_choices_are_checked():
    with pytest.raises(ValueError, match=r"^load.setup elem must be one of 1, 2, 4, not 3$"):
        dataclasses.replace(_legal(LoadSetup), elem=3)


def test_tokens_must_name_neighbours():
    with pytest.raises(ValueError, match=r"^load.tile push must name neighbours of load "
                                         r"\(compute, pool\), not 'store'$"):
        dataclasses.replace(_legal(LoadTile), push={"store"})
    with pytest.raises(ValueError, match=r"^compute.tile pop must name neighbours of compute "
                                         r"\(load, store\), not 'pool'$"):
        dataclasses.replace(_legal(ComputeTile), pop=[Engine.POOL])
    with pytest.raises(TypeError, match=r"^store.tile pop must be a set of engines, not 3$"):
        dataclasses.replace(_legal(StoreTile), pop=3)
    assert dataclasses.replace(_legal(LoadTile), push="pool").push == {Engine.POOL}


# -- illegal words ----------------------------------------------------------------------


@pytest.mark.parametrize("opcode", sorted(set(range(16)) - {c.OPCODE for c in INSTRUCTIONS}))
def test_unknown_opcodes_are_illegal(opcode):
    word = opcode | 0x1234 << 40
    with pytest.raises(IllegalInstruction, match=rf"^illegal instruction 0x{word:032x}: "
                                                 rf"unknown opcode 0x{opcode:x}$"):
        decode(word)


@pytest.mark.parametrize("cls", [c for c in INSTRUCTIONS if c.RESERVED_MASK],
                         ids=lambda c: c.MNEMONIC)
def test_every_reserved_bit_is_illegal(cls):
    # (a format whose fields fill the word, load.tile's, has none)
    good = _legal(cls).encode()
    bits = [b for b in range(128) if cls.RESERVED_MASK >> b & 1]
    for b in bits:
        with pytest.raises(IllegalInstruction, match=rf"{re.escape(cls.MNEMONIC)} reserved bits "
                                                     rf"set \(0x{1 << b:x}\)$"):
            decode(good | 1 << b)


def test_out_of_range_fields_in_a_word_are_illegal():
    # a store.tile whose extents are zero: rows 79:68 and cols 91:80 hold 0
    with pytest.raises(IllegalInstruction, match=r"^illegal instruction 0x0+8: store.tile "
                                                 r"rows must be between 1 and 4095 \(12 bits\), "
                                                 r"not 0$"):
        decode(0x8)
    setup = _legal(LoadSetup).encode()
    with pytest.raises(IllegalInstruction, match=r"load.setup elem code must be below 3, "
                                                 r"not 3$"):
        decode(setup | 0b11 << 11)
    pool = _legal(PoolSetup).encode()
    at = {f.name: f.lsb for f in PoolSetup.LAYOUT}
    # the 4-bit mode and the 2-bit activation have codes left over
    with pytest.raises(IllegalInstruction, match=r"pool.setup act code must be one of "
                                                 r"0 \(none\), 1 \(relu\), not 3$"):
        decode(pool | 0b11 << at["act"])
    with pytest.raises(IllegalInstruction, match=r"pool.setup mode code must be one of "
                                                 r"0 \(max\), .*, 8 \(lut\), not 15$"):
        decode(pool | 0b1111 << at["mode"])


def test_decode_refuses_what_is_not_a_word():
    with pytest.raises(ValueError, match=r"^word must be between 0 and 2\^128 − 1, not -1$"):
        decode(-1)
    with pytest.raises(ValueError, match=r"^word must be between 0 and 2\^128 − 1"):
        decode(1 << 128)
    with pytest.raises(TypeError, match=r"^word must be an integer, not '15'$"):
        decode("15")


# -- layering and docs ------------------------------------------------------------------


def test_isa_and_assembler_never_import_amaranth():
    for rel in ("rtl/isa.py", "dse/compiler/asm.py"):
        tree = ast.parse((ROOT / rel).read_text())
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not {n for n in names if n.split(".")[0] == "amaranth"}, rel
    code = "import sys, rtl.isa, dse.compiler.asm; sys.exit('amaranth' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=False).returncode == 0


def test_docs_tables_equal_the_generated_ones():
    page = (ROOT / "docs" / "isa.md").read_text()
    for cls in INSTRUCTIONS:
        assert f"<!-- isa:{cls.MNEMONIC} -->" in page, f"docs/isa.md lacks {cls.MNEMONIC}"
    assert "<!-- isa:opcodes -->" in page
    assert isa.render_doc_tables(page) == page, \
        "docs/isa.md is stale: run .venv/bin/python -m rtl.isa docs/isa.md"


def test_doc_regions_are_replaced_and_checked():
    stale = "x\n<!-- isa:finish -->\nold\n<!-- isa:end -->\ny\n"
    new = isa.render_doc_tables(stale)
    assert "old" not in new and "| 3:0 | `opcode` | 4 | 0xf | `finish` |" in new
    assert "| 127:4 | reserved | 124 | 0 | must be zero |" in new
    with pytest.raises(ValueError, match=r"^region must name opcodes or an instruction .*, "
                                         r"not 'load.tiles'$"):
        isa.render_doc_tables("<!-- isa:load.tiles -->\n<!-- isa:end -->")
