"""The CURRENT-pointer cache both model caches (similar products, CTR) are built on, with a loader
that reads a text file so each case is a few lines on disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from adserver.learning.cache import CurrentVersionCache
from adserver.learning.similar import ModelCache


def load_text(folder: Path, version: str) -> str:
    text = (folder / version / "model.txt").read_text()
    if not text:
        raise ValueError("empty model")
    return text


def publish(folder: Path, version: str, text: str) -> None:
    (folder / version).mkdir(parents=True)
    (folder / version / "model.txt").write_text(text)
    (folder / "CURRENT").write_text(version + "\n")


@pytest.fixture
def loads() -> list[tuple[Path, str]]:
    """Every call of the loader, to tell a reload from a reuse."""
    return []


def counting(calls: list[tuple[Path, str]]):
    def load(folder: Path, version: str) -> str:
        calls.append((folder, version))
        return load_text(folder, version)

    return load


def test_loads_the_named_version_once_and_follows_a_new_one(tmp_path: Path, loads):
    cache = CurrentVersionCache(counting(loads), check_seconds=0.0)
    folder = tmp_path / "shop"
    assert cache.current(folder) is None  # nothing published yet
    publish(folder, "v1", "first")
    assert cache.current(folder) == "first"
    assert cache.current(folder) == "first"
    assert loads == [(folder, "v1")]  # CURRENT re-read, the model not reloaded
    publish(folder, "v2", "second")
    assert cache.current(folder) == "second"
    (folder / "CURRENT").unlink()  # withdrawn: nothing serves
    assert cache.current(folder) is None


@pytest.mark.parametrize("broken", ["missing", "empty"])
def test_a_version_that_does_not_load_leaves_the_previous_one_serving(tmp_path: Path, loads, broken):
    cache = CurrentVersionCache(counting(loads), check_seconds=0.0)
    folder = tmp_path / "shop"
    publish(folder, "v1", "first")
    assert cache.current(folder) == "first"
    if broken == "empty":
        publish(folder, "v2", "")
    else:
        (folder / "CURRENT").write_text("v2\n")
    assert cache.current(folder) == "first"
    assert cache.current(folder) == "first"
    assert loads == [(folder, "v1"), (folder, "v2")]  # the broken version is tried once, not on every check
    publish(folder, "v3", "third")
    assert cache.current(folder) == "third"


def test_current_is_read_at_most_every_check_seconds(tmp_path: Path, loads):
    cache = CurrentVersionCache(counting(loads), check_seconds=3600.0)
    folder = tmp_path / "shop"
    publish(folder, "v1", "first")
    assert cache.current(folder) == "first"
    publish(folder, "v2", "second")
    assert cache.current(folder) == "first"  # not checked again within the hour
    cache.check_seconds = 0.0
    assert cache.current(folder) == "second"


def test_model_cache_keeps_one_version_per_advertiser(tmp_path: Path):
    models = ModelCache(tmp_path, check_seconds=0.0)
    models.load = load_text  # text files instead of artifacts
    publish(tmp_path / "shop-a", "v1", "a1")
    publish(tmp_path / "shop-b", "v7", "b7")
    assert models.get("shop-a") == "a1" and models.get("shop-b") == "b7"
    assert models.get("shop-c") is None
    publish(tmp_path / "shop-a", "v2", "a2")
    assert models.get("shop-a") == "a2" and models.get("shop-b") == "b7"
