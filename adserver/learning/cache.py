"""How a serving process keeps the current version of a trained model without a restart.

A training job writes each version into its own folder and then names it in the folder's ``CURRENT``
file. A serving process reads ``CURRENT`` at most every ``check_seconds`` (so a request almost never
touches the disk) and loads the named version when the name changes. A version that fails to load
is logged and skipped, and the previous one keeps serving: a broken artifact must not take ads down.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class CurrentVersionCache(Generic[T]):
    """The version named by ``<folder>/CURRENT`` of any number of model folders, loaded by ``load``.

    ``load(folder, version)`` returns the model or raises ``OSError`` / ``ValueError`` when the
    version is missing or broken.
    """

    def __init__(self, load: Callable[[Path, str], T], check_seconds: float = 5.0) -> None:
        self.load = load
        self.check_seconds = check_seconds
        self._lock = threading.Lock()
        # folder -> (when CURRENT was read, the version it named, the model serving)
        self._entries: dict[Path, tuple[float, str | None, T | None]] = {}

    def current(self, folder: Path) -> T | None:
        """The model serving for ``folder``: None before any version was published."""
        entry = self._entries.get(folder)
        now = time.monotonic()
        if entry is not None and now - entry[0] < self.check_seconds:
            return entry[2]
        with self._lock:
            entry = self._entries.get(folder)
            if entry is not None and now - entry[0] < self.check_seconds:
                return entry[2]  # another thread checked while this one waited
            try:
                version: str | None = (folder / "CURRENT").read_text().strip() or None
            except OSError:
                version = None
            model = entry[2] if entry is not None else None
            if entry is None or entry[1] != version:
                if version is None:
                    model = None
                else:
                    try:
                        model = self.load(folder, version)
                        log.info("loaded %s version %s", folder, version)
                    except (OSError, ValueError) as exc:
                        log.error("%s version %s not loaded (%s); keeping the previous one", folder, version, exc)
            self._entries[folder] = (now, version, model)
            return model
