"""A local append-only spool for events accepted while Redis is unreachable.

The pixel must answer and nothing accepted may be lost, even with Redis down: the event goes to a
JSON-lines file of this process instead, and a background thread replays the files into the
stream once Redis answers again. Files left by a process that died are replayed by any other
process sharing the folder. Lines are flushed to the OS at once (a crash of the process loses
nothing); an fsync per event would make the degraded mode too slow to be useful.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)


class Spool:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._name = f"{socket.gethostname()}-{os.getpid()}"
        self._file = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def append(self, record: dict) -> None:
        """Keep one record (``{"kind", "row", "uid", "counter"}``) until Redis is back."""
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
        with self._lock:
            if self._file is None:
                self.folder.mkdir(parents=True, exist_ok=True)
                self._file = open(self.folder / f"{self._name}.jsonl", "a", encoding="utf-8")  # noqa: SIM115
            self._file.write(line)
            self._file.flush()

    def pending_files(self) -> list[Path]:
        try:
            return sorted(p for p in self.folder.iterdir() if p.suffix in (".jsonl", ".replaying"))
        except FileNotFoundError:
            return []

    def pending_records(self) -> int:
        total = 0
        for path in self.pending_files():
            try:
                with open(path, "rb") as fh:
                    total += sum(1 for _ in fh)
            except FileNotFoundError:
                continue
        return total

    def replay(self, sink: Callable[[dict], None]) -> int:
        """Feed every spooled record to ``sink``; stops at the first failure, keeping the rest."""
        done = 0
        for path in self.pending_files():
            claimed = self._claim(path)
            if claimed is not None:
                done += self._replay_file(claimed, sink)
        return done

    def _owner_alive(self, path: Path) -> bool:
        """Whether the process that wrote (or was replaying) a file is still running here."""
        host, _, rest = path.name.partition("-")
        pid = rest.split(".", 1)[0]
        if host != socket.gethostname() or not pid.isdigit():
            return True  # another machine's file, or not ours to judge
        if int(pid) == os.getpid():
            return False
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def _claim(self, path: Path) -> Path | None:
        """Rename a file out of the appenders' way; the rename is atomic, so one replayer wins."""
        if path.name == f"{self._name}.jsonl":
            with self._lock:  # our own file: close it so new records start a new one
                if self._file is not None:
                    self._file.close()
                    self._file = None
        elif self._owner_alive(path):
            return None  # its writer still appends to it
        claimed = path.with_name(f"{self._name}.{time.time_ns()}.replaying")
        try:
            os.replace(path, claimed)
        except FileNotFoundError:
            return None
        return claimed

    def _replay_file(self, path: Path, sink: Callable[[dict], None]) -> int:
        with open(path, encoding="utf-8") as fh:
            lines = fh.readlines()
        done = 0
        for index, line in enumerate(lines):
            try:
                record = json.loads(line)
            except ValueError:
                log.error("dropping an unreadable spool line in %s", path.name)
                continue
            try:
                sink(record)
            except Exception as exc:  # noqa: BLE001 - keep the rest for the next attempt
                log.warning("spool replay paused after %d records: %s", done, exc)
                rest = path.with_name(f"{self._name}.{time.time_ns()}.jsonl")
                with open(rest, "w", encoding="utf-8") as out:
                    out.writelines(lines[index:])
                path.unlink()
                return done
            done += 1
        path.unlink()
        return done

    def start_replayer(self, sink: Callable[[dict], None], ready: Callable[[], bool], interval: float = 1.0) -> None:
        """Replay in a daemon thread of this process whenever ``ready()`` says Redis may be back."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(target=self._loop, args=(sink, ready, interval),
                                            name="spool-replayer", daemon=True)
            self._thread.start()

    def _loop(self, sink, ready, interval: float) -> None:
        while not self._stop.wait(interval):
            if self.pending_files() and ready():
                try:
                    replayed = self.replay(sink)
                    if replayed:
                        log.info("replayed %d spooled events into Redis", replayed)
                except Exception:  # noqa: BLE001 - try again at the next tick
                    log.exception("spool replay failed")

    def stop(self) -> None:
        self._stop.set()
