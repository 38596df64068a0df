"""Strict YAML: duplicate and unknown keys are errors that name the file and the field."""

import pytest

from dse.errors import InputError
from dse.yamlio import check_keys, load_yaml


def test_duplicate_key_is_refused(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("board: zcu102\nnetwork: vgg16\nboard: zu2\n")
    with pytest.raises(InputError, match=r"c\.yaml: line 3: is not valid YAML: duplicate key 'board'$"):
        load_yaml(path)


def test_nested_duplicate_key_is_refused(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("hardware:\n  rows: 8\n  rows: 16\n")
    with pytest.raises(InputError, match=r"duplicate key 'rows'"):
        load_yaml(path)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match=r"nope\.yaml: cannot be read \(No such file"):
        load_yaml(tmp_path / "nope.yaml")


def test_check_keys_names_the_field():
    with pytest.raises(InputError, match=r"^f\.yaml: hardware\.rowz: is not a known key "
                                         r"\(expected one of: rows, cols\); did you mean "
                                         r"'rows'\?$"):
        check_keys("f.yaml", "hardware", {"rowz": 1}, ("rows", "cols"))
    with pytest.raises(InputError, match=r"\(expected one of: rows, cols\)$"):
        check_keys("f.yaml", "hardware", {"depth": 1}, ("rows", "cols"))   # nothing near
    with pytest.raises(InputError, match=r"^f\.yaml: name: is required$"):
        check_keys("f.yaml", "", {}, ("name",), required=("name",))
    with pytest.raises(InputError, match=r"^f\.yaml: layers: must be a mapping, not list$"):
        check_keys("f.yaml", "layers", [], ("name",))
