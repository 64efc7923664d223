"""The local spool is bounded: beyond its size events are dropped, counted for ``/metrics`` and logged;
what is appended while a replay claims the file is kept."""

from __future__ import annotations

import logging
import os

from tracker.spool import Spool


def _record(n: int) -> dict:
    return {"kind": "ev", "row": {"event": "view_item", "n": n, "pad": "x" * 80}, "uid": "u", "counter": None}


def _bytes(folder) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.suffix in (".jsonl", ".replaying"))


def test_appends_beyond_the_cap_are_dropped_counted_and_logged(tmp_path, caplog):
    spool = Spool(tmp_path, max_bytes=2000)
    with caplog.at_level(logging.ERROR, logger="tracker.spool"):
        kept = [spool.append(_record(n)) for n in range(60)]
    assert kept[0] and not kept[-1]
    assert 0 < _bytes(tmp_path) <= 2000
    assert spool.pending_records() == kept.count(True)
    assert spool.dropped() == kept.count(False) > 0
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "spool is full" in errors[0]  # once, not once per event


def test_the_count_is_shared_by_every_process_of_the_folder(tmp_path):
    first, second = Spool(tmp_path, max_bytes=300), Spool(tmp_path, max_bytes=300)
    results = [first.append(_record(n)) for n in range(5)] + [second.append(_record(n)) for n in range(5)]
    assert first.dropped() == second.dropped() == results.count(False) >= 8


def test_files_of_other_processes_count_toward_the_cap(tmp_path):
    (tmp_path / "otherhost-123.jsonl").write_bytes(b"{}\n" * 650)  # 1950 bytes left by another machine
    spool = Spool(tmp_path, max_bytes=2000)
    assert spool.append(_record(1)) is False
    assert spool.dropped() == 1


def test_space_freed_by_the_replay_is_used_again(tmp_path):
    spool = Spool(tmp_path, max_bytes=500, rescan_seconds=0)
    while spool.append(_record(0)):
        pass
    replayed: list[dict] = []
    assert spool.replay(replayed.append) == len(replayed) > 0
    assert spool.append(_record(1)) is True
    assert spool.pending_records() == 1


def test_an_append_racing_the_claim_of_our_own_file_loses_no_later_record(tmp_path, monkeypatch):
    """The replay renames this process's file while the flusher may be appending to it. An append that
    slipped in between closing the file and renaming it reopened it by name, so every later append
    went to the renamed file, read once by the replay and deleted: events answered during a Redis
    failover vanished (the cluster drill lost a second of hits). The append is made to slip in there
    whenever the claim leaves room for it."""
    spool = Spool(tmp_path)
    spool.append(_record(1))
    rename = os.replace
    slipped: list[bool] = []

    def replace_with_an_append_first(src, dst):
        if spool._lock.acquire(blocking=False):  # appenders could run here: one does
            spool._lock.release()
            slipped.append(spool.append(_record(2)))
        rename(src, dst)

    monkeypatch.setattr("tracker.spool.os.replace", replace_with_an_append_first)
    replayed: list[dict] = []
    spool.replay(replayed.append)
    monkeypatch.setattr("tracker.spool.os.replace", rename)
    spool.append(_record(3))
    spool.replay(replayed.append)
    assert [r["row"]["n"] for r in replayed] == [1, *([2] if slipped else []), 3]
    assert spool.pending_records() == 0
