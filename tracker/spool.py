"""A local append-only spool for events accepted while Redis is unreachable.

The pixel must answer and nothing accepted may be lost, even with Redis down: the event goes to a
JSON-lines file of this process instead, and a background thread replays the files into the
stream once Redis answers again. Files left by a process that died are replayed by any other
process sharing the folder. Lines are flushed to the OS at once (a crash of the process loses
nothing); an fsync per event would make the degraded mode too slow to be useful.

The folder is bounded: while Redis stays away, pixels keep coming and a full disk would take the
host down with it. An event that would take the folder's pending files beyond ``max_bytes`` is
dropped; the drops of every process sharing the folder are counted in its ``dropped`` file (read by
``/metrics`` as ``adserver_spool_dropped_total``) and logged at most once a minute per process. Each
process counts its own appends at once and re-reads the folder's size at most every
``rescan_seconds``, so the folder holds at most ``max_bytes`` plus what the other processes sharing
it append within that interval. A line is one event row, whose fields ``tracker.events`` bounds.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 1024 * 1024 * 1024
DROPPED_FILE = "dropped"  # the count of dropped events, shared by the processes of the folder
LOG_EVERY_SECONDS = 60.0


class Spool:
    def __init__(self, folder: Path, max_bytes: int = DEFAULT_MAX_BYTES, rescan_seconds: float = 1.0) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self.rescan_seconds = rescan_seconds
        self._lock = threading.Lock()
        self._name = f"{socket.gethostname()}-{os.getpid()}"
        self._file = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._size = 0  # bytes of the folder's pending files: scanned, plus this process's appends since
        self._scanned: float | None = None  # monotonic time of the last scan
        self._logged = 0.0  # monotonic time of the last "spool is full" log line

    def append(self, record: dict) -> bool:
        """Keep one record (``{"kind", "row", "uid", ...}``, or a batch of them: ``{"kind": "batch", "records":
        [...], ...}``) until Redis is back; False if dropped (full)."""
        events = len(record.get("records") or ()) or 1
        data = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        with self._lock:
            now = time.monotonic()
            if self._scanned is None or now - self._scanned >= self.rescan_seconds:
                self._size = self.pending_bytes()
                self._scanned = now
            if self._size + len(data) > self.max_bytes:
                self._drop(now, f"{self._size} bytes of at most {self.max_bytes}", events)
                return False
            try:
                if self._file is None:
                    self.folder.mkdir(parents=True, exist_ok=True)
                    self._file = open(self.folder / f"{self._name}.jsonl", "ab")  # noqa: SIM115
                self._file.write(data)
                self._file.flush()
            except OSError as exc:  # a full disk before the cap: the same drop (a torn line is skipped at replay)
                self._drop(now, str(exc), events)
                return False
            self._size += len(data)
        return True

    def _drop(self, now: float, why: str, events: int) -> None:
        """Count dropped events in the folder's shared count; log now and then (the lock is held)."""
        try:
            total = self._count_drop(events)
        except OSError:  # the disk that filled up may refuse the count too: the log still says it
            total = None
        if now - self._logged >= LOG_EVERY_SECONDS or not self._logged:
            self._logged = now
            log.error("event spool is full (%s, in %s): dropping events while Redis is unavailable; "
                      "%s dropped so far", why, self.folder, "?" if total is None else total)

    def _count_drop(self, events: int) -> int:
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder / DROPPED_FILE, os.O_RDWR | os.O_CREAT, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # released by the close: every process of the folder counts here
            total = _read_count(fd) + events
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, b"%d\n" % total)
            os.ftruncate(fd, os.lseek(fd, 0, os.SEEK_CUR))
            return total
        finally:
            os.close(fd)

    def dropped(self) -> int:
        """Events dropped so far by the processes sharing this folder (the spool was full)."""
        try:
            fd = os.open(self.folder / DROPPED_FILE, os.O_RDONLY)
        except FileNotFoundError:
            return 0
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            return _read_count(fd)
        finally:
            os.close(fd)

    def pending_bytes(self) -> int:
        """Bytes of the folder's files not replayed yet (every process's)."""
        total = 0
        for path in self.pending_files():
            try:
                total += path.stat().st_size
            except FileNotFoundError:
                continue
        return total

    def pending_files(self) -> list[Path]:
        try:
            return sorted(p for p in self.folder.iterdir() if p.suffix in (".jsonl", ".replaying"))
        except FileNotFoundError:
            return []

    def pending_records(self) -> int:
        """Events waiting: a line each, or each record of a batch line (a key ``"row":`` per event; JSON
        escapes the quotes of any such text inside a value)."""
        total = 0
        for path in self.pending_files():
            try:
                with open(path, "rb") as fh:
                    total += sum(line.count(b'"row":') or 1 for line in fh)
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
        """Rename a file out of the appenders' way; the rename is atomic, so one replayer wins.

        Our own file is closed and renamed under the appenders' lock, in one step: an append between
        the two would open the file again by its name, and every later append would go to the
        renamed file, which the replay reads once and deletes.
        """
        claimed = path.with_name(f"{self._name}.{time.time_ns()}.replaying")
        if path.name == f"{self._name}.jsonl":
            with self._lock:
                if self._file is not None:
                    self._file.close()
                    self._file = None
                return self._rename(path, claimed)
        if self._owner_alive(path):
            return None  # its writer still appends to it
        return self._rename(path, claimed)

    @staticmethod
    def _rename(path: Path, claimed: Path) -> Path | None:
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


def _read_count(fd: int) -> int:
    raw = os.read(fd, 32).strip()
    return int(raw) if raw.isdigit() else 0
