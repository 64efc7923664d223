"""``train``, ``train-ctr`` and ``evaluate`` on hostile input (the models themselves: tests/adserver/learning
and tests/models)."""

from __future__ import annotations

import pytest


def test_train_without_advertisers_trains_nothing(runner, ch):
    assert runner("train") == (0, "")


def test_train_names_every_unknown_advertiser(runner, ch):
    code, out = runner("train", "--advertiser", "nope", "--advertiser", "nada")
    assert code == 1 and out == "error (unknown_advertiser): unknown advertiser(s): nope, nada\n"


@pytest.mark.parametrize("days", ["0", "-7"])
def test_train_ctr_needs_at_least_one_day(runner, ch, days):
    code, out = runner("train-ctr", "--days", days)
    assert code == 2 and "--days must be at least 1" in out


def test_evaluate_refuses_a_non_utf8_file(runner, tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("visitor,item,ts\nv1,café,1700000000\n".encode("latin-1"))
    code, out = runner("evaluate", str(path))
    assert code == 2
    assert out.startswith(f"error: {path}: not a readable CSV file")


def test_evaluate_refuses_directories_missing_and_empty_files(runner, tmp_path):
    code, out = runner("evaluate", str(tmp_path))
    assert code == 2 and out.startswith("error: ") and "Is a directory" in out
    code, out = runner("evaluate", str(tmp_path / "missing.csv"))
    assert code == 2 and out.startswith("error: ")
    header_only = tmp_path / "empty.csv"
    header_only.write_text("visitor,item,ts\n")
    code, out = runner("evaluate", str(header_only))
    assert code == 2 and out.splitlines()[-1] == "error: no events in the file"
