"""The dispatcher: subcommands, one-line errors with exit status 2."""

import subprocess
import sys

import pytest

from dse.errors import InputError
from omniconv import cli


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name in cli.COMMANDS:
        assert name in out


def test_input_error_is_one_line_and_status_2(monkeypatch, capsys):
    def boom(args):
        raise InputError("configs/x.yaml", "board", "must be a board name or path, not 7")

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    for action in parser._subparsers._group_actions[0].choices.values():
        action.set_defaults(_run=boom, _missing=None)
    assert cli.main(["info", "tiny"]) == 2
    err = capsys.readouterr().err
    assert err == "omniconv info: configs/x.yaml: board: must be a board name or path, not 7\n"


def test_module_entry_point_runs():
    proc = subprocess.run([sys.executable, "-m", "omniconv", "--help"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "omniconv" in proc.stdout
