"""``omniconv sweep`` on a local Dask cluster: one row per combination, the same designs as
the explorer run in process, refusals as rows, bad options as one line."""

from __future__ import annotations

import csv

import pytest

from omniconv.cli import main


@pytest.mark.regress      # a Dask cluster beside the xdist workers: about 53 s of make test
def test_sweep_on_a_local_cluster_matches_the_explorer(tmp_path, capsys):
    from dse.board import load_board
    from dse.load import load_network
    from dse.search import search

    out = tmp_path / "sweep"
    status = main(["sweep", "--networks", "tiny,alexnet", "--boards", "ecp5-85k,zu2",
                   "--precisions", "8", "--out", str(out), "--workers", "2"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "4 searches on a local cluster of 2 worker processes" in captured.err
    rows = list(csv.DictReader((out / "sweep.csv").read_text().splitlines()))
    assert [(r["network"], r["board"]) for r in rows] == [
        ("tiny", "ecp5-85k"), ("tiny", "zu2"), ("alexnet", "ecp5-85k"), ("alexnet", "zu2")]
    for row in rows:
        if row["error"]:
            assert row["latency_ms"] == ""
            continue
        local = search(load_network(row["network"]), load_board(row["board"]),
                       precision=8, objective="latency")
        assert float(row["latency_ms"]) == pytest.approx(local.latency_ms, abs=1e-6)
        assert (int(row["rows"]), int(row["cols"])) == (local.hardware["rows"],
                                                        local.hardware["cols"])
    assert any(not r["error"] for r in rows)
    if (out / "sweep.png").exists():
        assert (out / "sweep.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("argv, field", [
    (["--networks", "tiny,nosuchnet"], "nosuchnet"),
    (["--boards", "nosuchboard"], "nosuchboard"),
    (["--precisions", "12"], "--precisions"),
    (["--objectives", "fast"], "--objectives"),
    (["--workers", "0", "--networks", "tiny", "--boards", "zu2"], "--workers"),
])
def test_bad_options_are_one_line_before_any_worker(tmp_path, capsys, argv, field):
    status = main(["sweep", "--out", str(tmp_path / "o"), *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and field in err[0], err
    assert not (tmp_path / "o").exists()


def test_help_names_the_scheduler_option(capsys):
    with pytest.raises(SystemExit):
        main(["sweep", "--help"])
    assert "--scheduler ADDRESS" in capsys.readouterr().out
