"""Unwritable outputs: one line naming the path and the OS's reason, exit status 3, nothing
half-written; a closed standard output exits quietly with 141.

A read-only folder cannot be made by chmod when the tests run as root (root writes anyway),
so that case is simulated there by ``os.access`` answering no; the other cases (a path under a
regular file, a full disk, a closed pipe, /dev/full) fail the same way for every user.
"""

from __future__ import annotations

import errno
import io
import os
import stat
import subprocess
import sys

import pytest

from dse.design import write_bytes_atomic, write_text_atomic
from dse.errors import OutputError, check_output_dir, output_errors
from omniconv import cli
from omniconv.cli import EXIT_OUTPUT, EXIT_PIPE, main

ROOT = os.geteuid() == 0 if hasattr(os, "geteuid") else False


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


class _FullDisk(io.RawIOBase):
    """A file whose every write fails as on a full disk."""

    def __init__(self, fd):
        os.close(fd)

    def writable(self):
        return True

    def write(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.fixture
def full_disk(monkeypatch):
    """Every atomic write runs out of space."""
    import dse.design

    monkeypatch.setattr(dse.design.os, "fdopen", lambda fd, mode="r": _FullDisk(fd))


@pytest.fixture
def read_only(tmp_path, monkeypatch):
    """A read-only folder: chmod for a normal user; for root (whom chmod does not stop) the
    permission check says no."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if ROOT:
        real = os.access
        monkeypatch.setattr("dse.errors.os.access",
                            lambda p, mode, **kw: False if os.path.abspath(p) == str(folder)
                            else real(p, mode, **kw))
    else:
        folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    yield folder
    folder.chmod(stat.S_IRWXU)


# -- the writers ----------------------------------------------------------------------------

def test_atomic_write_on_a_full_disk_keeps_the_old_file(tmp_path, full_disk):
    path = tmp_path / "design.json"
    path.write_text("old")
    with pytest.raises(OutputError) as exc:
        write_text_atomic(path, "new")
    assert exc.value.errno == errno.ENOSPC
    assert str(exc.value) == f"cannot write {path}: No space left on device"
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["design.json"]   # no temp file


def test_atomic_write_under_a_regular_file(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError) as exc:
        write_bytes_atomic(tmp_path / "file" / "sub" / "a.json", b"{}")
    assert "Not a directory" in str(exc.value) or "File exists" in str(exc.value)
    assert str(tmp_path / "file" / "sub" / "a.json") in str(exc.value)


def test_check_output_dir(tmp_path, read_only):
    (tmp_path / "file").write_text("x")
    check_output_dir(tmp_path / "new" / "deeper")           # creatable: fine, creates nothing
    assert not (tmp_path / "new").exists()
    with pytest.raises(OutputError, match="Not a directory"):
        check_output_dir(tmp_path / "file" / "sub")
    with pytest.raises(OutputError, match="Not a directory"):
        check_output_dir(tmp_path / "file")
    with pytest.raises(OutputError, match="Permission denied|Read-only file system"):
        check_output_dir(read_only / "out")


def test_output_errors_maps_only_errors_under_the_folder(tmp_path):
    with pytest.raises(OutputError, match="No space left on device"):
        with output_errors(tmp_path):
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "sim" / "j"))
    with pytest.raises(FileNotFoundError):
        with output_errors(tmp_path):
            raise FileNotFoundError(errno.ENOENT, "No such file", "/elsewhere/input.onnx")


# -- the commands ---------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [["dse", "tiny"], ["dse", "tiny", "--json"],
                                  ["verilog", "tiny"], ["verify", "tiny"], ["synth", "tiny"]])
def test_out_under_a_regular_file_exits_3(tmp_path, capsys, argv):
    (tmp_path / "file").write_text("x")
    out = tmp_path / "file" / "build"
    code, stdout, err = run_cli(capsys, *argv, "--out", out)
    assert code == EXIT_OUTPUT == 3
    line = one_line(err)
    assert line.startswith(f"omniconv {argv[0]}: cannot write {out}: Not a directory")
    assert stdout == ""
    assert (tmp_path / "file").read_text() == "x"


def test_lint_work_folder_unwritable_exits_3(tmp_path, capsys):
    (tmp_path / "overlay.v").write_text("module overlay; endmodule\n")
    (tmp_path / "lint").write_text("a file where lint's work folder goes")
    code, _, err = run_cli(capsys, "lint", "tiny", "--out", tmp_path)
    assert code == 3
    assert err.strip().splitlines()[-1] == (f"omniconv lint: cannot write {tmp_path / 'lint'}: "
                                            "Not a directory")


@pytest.mark.parametrize("command", ["dse", "verilog", "verify"])
def test_read_only_out_exits_3(capsys, read_only, command):
    code, _, err = run_cli(capsys, command, "tiny", "--out", read_only / "build")
    assert code == 3
    line = one_line(err)
    assert str(read_only) in line
    assert "Permission denied" in line or "Read-only file system" in line
    assert list(read_only.iterdir()) == []


def test_dse_on_a_full_disk_exits_3_and_leaves_nothing(tmp_path, capsys, full_disk):
    code, stdout, err = run_cli(capsys, "dse", "tiny", "--out", tmp_path / "o")
    assert code == 3
    assert one_line(err) == (f"omniconv dse: cannot write {tmp_path / 'o' / 'design.json'}: "
                             "No space left on device")
    assert stdout == ""
    assert list((tmp_path / "o").iterdir()) == []


def test_report_on_a_full_disk_exits_3_and_leaves_the_folder(tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    out = tmp_path / "o"
    assert main(["dse", "tiny", "--out", str(out)]) == 0
    capsys.readouterr()
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    import dse.design

    monkeypatch.setattr(dse.design.os, "fdopen", lambda fd, mode="r": _FullDisk(fd))
    code, _, err = run_cli(capsys, "report", out)
    assert code == 3
    last = err.strip().splitlines()[-1]          # after the "[i/n] drawing" progress lines
    assert last.startswith(f"omniconv report: cannot write {out}/") and \
        last.endswith("No space left on device")
    assert "Traceback" not in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_report_in_a_read_only_folder_exits_3(tmp_path, capsys, monkeypatch):
    out = tmp_path / "o"
    assert main(["dse", "tiny", "--out", str(out)]) == 0
    capsys.readouterr()
    real = os.access
    monkeypatch.setattr("dse.errors.os.access",
                        lambda p, mode, **kw: False if os.path.abspath(p) == str(out)
                        else real(p, mode, **kw))
    code, _, err = run_cli(capsys, "report", out)
    assert code == 3
    assert one_line(err) == f"omniconv report: cannot write {out}: Permission denied"


def test_stdout_error_is_exit_3(capsys, tmp_path, monkeypatch):
    class Full(io.StringIO):
        def write(self, text):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(sys, "stdout", Full())
    code = main(["info", "tiny"])
    monkeypatch.undo()
    assert code == 3
    assert one_line(capsys.readouterr().err) == \
        "omniconv info: cannot write standard output: No space left on device"


def _cli_process(*argv, stdout):
    return subprocess.Popen([sys.executable, "-m", "omniconv", *map(str, argv)],
                            stdout=stdout, stderr=subprocess.PIPE)


@pytest.mark.parametrize("argv", [["dse", "tiny", "--json"], ["info", "resnet50"]])
def test_closed_pipe_exits_141_quietly(tmp_path, argv):
    if argv[0] == "dse":
        argv = [*argv, "--out", tmp_path / "o"]
    proc = _cli_process(*argv, stdout=subprocess.PIPE)
    proc.stdout.close()                    # the reader is gone before anything is written
    with proc.stderr:
        err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == EXIT_PIPE == 141
    assert err == ""
    if argv[0] == "dse":                   # the files were complete before stdout was used
        assert (tmp_path / "o" / "design.json").is_file()


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_dev_full_stdout_exits_3():
    with open("/dev/full", "w") as full:
        proc = _cli_process("info", "tiny", stdout=full)
        with proc.stderr:
            err = proc.stderr.read().decode()
        assert proc.wait(timeout=120) == 3
    assert err == "omniconv info: cannot write standard output: No space left on device\n"


def test_exit_statuses_are_distinct():
    codes = [cli.EXIT_OK, cli.EXIT_FAILED, cli.EXIT_INPUT, cli.EXIT_OUTPUT,
             cli.EXIT_INTERRUPTED, cli.EXIT_PIPE]
    assert codes == [0, 1, 2, 3, 130, 141]


def test_write_failure_is_reported_even_if_the_cleanup_fails(tmp_path, monkeypatch, full_disk):
    import dse.design

    def refuse(path):
        raise PermissionError(errno.EACCES, "Permission denied", path)

    monkeypatch.setattr(dse.design.os, "unlink", refuse)
    with pytest.raises(OutputError, match="No space left on device"):
        write_text_atomic(tmp_path / "a.json", "x")
