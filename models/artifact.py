"""The similarity artifact: what a training run writes and every serving process loads.

Layout of a model folder (one per advertiser)::

    <folder>/CURRENT                      the live version, one line
    <folder>/<version>/model.npz          items, neighbors, scores, popular (no object arrays)
    <folder>/<version>/meta.json          version, shapes, and the training run's metadata

A version is written completely, in a temporary folder renamed into place, before CURRENT is switched to it
with an atomic rename, so a reader sees either the old or the new model and never half of one. Loading
never unpickles (``allow_pickle=False``) and checks every array, because a model folder may be copied
between machines and a corrupt file must fail loudly at load time, not as an IndexError while serving.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

VERSION_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
FORMAT = 1
ARRAYS = ("items", "neighbors", "scores", "popular")
DIR_MODE, FILE_MODE = 0o755, 0o644  # readable by the serving processes' user


@dataclass(eq=False)  # identity equality: comparing numpy arrays field by field has no single truth value
class Artifact:
    """Neighbour lists by item index: ``neighbors[i]`` / ``scores[i]`` are item ``items[i]``'s similar items
    (indices, -1 = padding), best first; ``popular`` holds item indices, most popular first."""

    version: str
    items: np.ndarray
    neighbors: np.ndarray
    scores: np.ndarray
    popular: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    _index: dict[str, int] | None = field(default=None, init=False, repr=False, compare=False)

    def index(self, item_id: str) -> int | None:
        """Position of ``item_id`` in ``items``, or None; the dictionary is built on first use."""
        if self._index is None:
            self._index = {str(item): n for n, item in enumerate(self.items.tolist())}
        return self._index.get(item_id)

    def similar(self, item_id: str, n: int) -> list[tuple[str, float]]:
        """Up to ``n`` (item id, score) pairs similar to ``item_id``, best first; [] for an unknown item."""
        i = self.index(item_id)
        if i is None or n <= 0:
            return []
        row, scores = self.neighbors[i], self.scores[i]
        return [(str(self.items[j]), float(s)) for j, s in zip(row[:n].tolist(), scores[:n].tolist(), strict=True)
                if j >= 0]

    def popular_ids(self, n: int) -> list[str]:
        """The ``n`` most popular item ids."""
        return [str(self.items[j]) for j in self.popular[: max(n, 0)].tolist()]


def new_version() -> str:
    """A sortable, unique version name: UTC time to the second and 6 random hex digits,
    e.g. ``20261127T081500Z-3fa9c1``."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def _check_version(version: str) -> str:
    if not isinstance(version, str) or not VERSION_RE.fullmatch(version) or version in (".", ".."):
        raise ValueError(f"invalid model version {version!r}: expected a plain name matching {VERSION_RE.pattern}")
    return version


def _check_arrays(arrays: dict[str, np.ndarray], where: str) -> None:
    """Raise ValueError unless the arrays have the dtypes, shapes and index ranges of a valid artifact."""
    items, neighbors, scores, popular = (arrays[name] for name in ARRAYS)
    if items.dtype.kind != "U" or items.ndim != 1:
        raise ValueError(f"{where}: items must be a 1-D unicode array, got {items.dtype} with shape {items.shape}")
    n = len(items)
    if neighbors.dtype != np.int32 or neighbors.ndim != 2 or neighbors.shape[0] != n:
        raise ValueError(f"{where}: neighbors must be int32 [{n}, k], got {neighbors.dtype} {neighbors.shape}")
    if scores.dtype != np.float32 or scores.shape != neighbors.shape:
        raise ValueError(f"{where}: scores must be float32 {neighbors.shape}, got {scores.dtype} {scores.shape}")
    if popular.dtype != np.int32 or popular.ndim != 1:
        raise ValueError(f"{where}: popular must be a 1-D int32 array, got {popular.dtype} {popular.shape}")
    if neighbors.size and (neighbors.min() < -1 or neighbors.max() >= n):
        raise ValueError(f"{where}: neighbors hold indices outside [-1, {n})")
    if popular.size and (popular.min() < 0 or popular.max() >= n):
        raise ValueError(f"{where}: popular holds indices outside [0, {n})")
    if not np.isfinite(scores).all():
        raise ValueError(f"{where}: scores are not all finite")


def save_artifact(folder: Path, artifact: Artifact) -> Path:
    """Write ``folder/<version>/`` (model.npz and meta.json), then point ``folder/CURRENT`` at it.

    Returns the version folder. Refuses to overwrite an existing version.
    """
    folder = Path(folder)
    version = _check_version(artifact.version)
    arrays = {
        "items": np.asarray(artifact.items, dtype=str),
        "neighbors": np.asarray(artifact.neighbors),
        "scores": np.asarray(artifact.scores),
        "popular": np.asarray(artifact.popular),
    }
    _check_arrays(arrays, f"artifact {version}")
    meta = {"version": version, "format": FORMAT, "items": int(len(arrays["items"])),
            "k": int(arrays["neighbors"].shape[1]), "meta": artifact.meta}
    return publish_version(folder, version, arrays, meta, "model")


def publish_version(folder: Path, version: str, arrays: dict[str, np.ndarray], meta: dict, what: str) -> Path:
    """Write ``folder/<version>/`` (model.npz, meta.json) and then point ``folder/CURRENT`` at it.

    The version is built in a staging folder and renamed into place, so a serving process that
    follows ``CURRENT`` never sees half a model; an existing version is never overwritten.
    """
    meta_text = json.dumps(meta, indent=2, ensure_ascii=False, allow_nan=False)  # fails early if not JSON
    target = folder / version
    if target.exists():
        raise FileExistsError(f"{what} version {version} already exists in {folder}")
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=folder))
    try:
        os.chmod(staging, DIR_MODE)  # mkdtemp makes it private; serving processes may run as another user
        with open(staging / "model.npz", "wb") as f:
            np.savez_compressed(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        _write_text(staging / "meta.json", meta_text + "\n")
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _write_text(folder / "CURRENT", version + "\n", atomic_in=folder)
    return target


def _write_text(path: Path, text: str, atomic_in: Path | None = None) -> None:
    """Write a text file durably; with ``atomic_in``, through a temporary file renamed over ``path``."""
    if atomic_in is None:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        return
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=atomic_in)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, FILE_MODE)  # mkstemp makes it private
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_artifact(folder: Path, version: str) -> Artifact:
    """Load and check ``folder/<version>``; ValueError (naming the problem) for any invalid content,
    OSError when the files are missing or unreadable."""
    version = _check_version(version)
    where = f"model {version}"
    path = Path(folder) / version
    try:
        meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: meta.json is not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("meta", {}), dict):
        raise ValueError(f"{where}: meta.json must hold an object with an object 'meta'")
    if meta.get("version") != version:
        raise ValueError(f"{where}: meta.json names version {meta.get('version')!r}")
    arrays = read_npz(path / "model.npz", ARRAYS, where)
    _check_arrays(arrays, where)
    return Artifact(version=version, meta=meta.get("meta", {}), **arrays)


def read_npz(file: Path, names: tuple[str, ...], where: str) -> dict[str, np.ndarray]:
    """The named arrays of a pickle-free ``.npz``; ValueError naming ``where`` for anything else.

    ``allow_pickle=False``: an artifact is data, never code, whoever wrote the file.
    """
    try:
        with np.load(file, allow_pickle=False) as npz:
            missing = [name for name in names if name not in npz.files]
            if missing:
                raise ValueError(f"{where}: {file.name} lacks {', '.join(missing)}")
            return {name: npz[name] for name in names}
    except ValueError as exc:
        # np.load raises ValueError for object arrays (pickles) and for files that are not npz at all.
        if str(exc).startswith(where):
            raise
        raise ValueError(f"{where}: {file.name} is not a valid pickle-free npz file ({exc})") from None
    except FileNotFoundError:
        raise
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise ValueError(f"{where}: {file.name} is unreadable ({exc})") from None


def load_current(folder: Path) -> Artifact | None:
    """The artifact ``folder/CURRENT`` points at, or None when nothing was trained yet."""
    try:
        version = (Path(folder) / "CURRENT").read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return load_artifact(folder, version)
