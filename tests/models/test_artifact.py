"""Artifact files: round trip, the CURRENT pointer, and refusal of unsafe or corrupt content."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from models.artifact import Artifact, load_artifact, load_current, new_version, save_artifact


def make(version: str = "20261127T081500Z-abc123", **changes) -> Artifact:
    fields = dict(
        version=version,
        items=np.array(["sku-1", "茶-2", "sku-3"]),
        neighbors=np.array([[1, 2], [0, -1], [-1, -1]], dtype=np.int32),
        scores=np.array([[0.9, 0.4], [0.9, 0.0], [0.0, 0.0]], dtype=np.float32),
        popular=np.array([2, 0], dtype=np.int32),
        meta={"advertiser": "shop", "events": 12, "note": "中文"},
    )
    fields.update(changes)
    return Artifact(**fields)


def test_round_trip_and_lookups(tmp_path: Path):
    path = save_artifact(tmp_path, make())
    assert path == tmp_path / "20261127T081500Z-abc123"
    assert sorted(p.name for p in path.iterdir()) == ["meta.json", "model.npz"]
    loaded = load_current(tmp_path)
    assert loaded is not None and loaded.version == "20261127T081500Z-abc123"
    assert loaded.items.dtype.kind == "U" and loaded.items.tolist() == ["sku-1", "茶-2", "sku-3"]
    np.testing.assert_array_equal(loaded.neighbors, make().neighbors)
    np.testing.assert_array_equal(loaded.scores, make().scores)
    assert loaded.meta == {"advertiser": "shop", "events": 12, "note": "中文"}
    assert loaded.index("茶-2") == 1 and loaded.index("nope") is None
    assert loaded.similar("sku-1", 5) == [("茶-2", pytest.approx(0.9)), ("sku-3", pytest.approx(0.4))]
    assert loaded.similar("茶-2", 5) == [("sku-1", pytest.approx(0.9))]  # padding is not returned
    assert loaded.similar("sku-1", 1) == [("茶-2", pytest.approx(0.9))]
    assert loaded.similar("nope", 5) == []
    assert loaded.popular_ids(1) == ["sku-3"] and loaded.popular_ids(10) == ["sku-3", "sku-1"]


def test_current_points_at_the_latest_save(tmp_path: Path):
    assert load_current(tmp_path) is None  # nothing trained yet
    save_artifact(tmp_path, make("v1"))
    save_artifact(tmp_path, make("v2", popular=np.array([1], dtype=np.int32)))
    assert (tmp_path / "CURRENT").read_text().strip() == "v2"
    current = load_current(tmp_path)
    assert current is not None and current.popular_ids(5) == ["茶-2"]
    assert load_artifact(tmp_path, "v1").popular_ids(5) == ["sku-3", "sku-1"]
    # No temporary files or folders are left behind, and what is there is readable by other users (the
    # serving processes), although it was made with private temporary files.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["CURRENT", "v1", "v2"]
    assert (tmp_path / "CURRENT").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "v2").stat().st_mode & 0o777 == 0o755
    with pytest.raises(FileExistsError):
        save_artifact(tmp_path, make("v2"))


def test_new_version_format_and_uniqueness():
    versions = {new_version() for _ in range(20)}
    assert len(versions) == 20
    assert all(re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{6}", v) for v in versions)


@pytest.mark.parametrize("version", ["../evil", "..", "a/b", "", "x" * 65, "v1\n", "/etc/passwd"])
def test_path_traversal_versions_are_rejected(tmp_path: Path, version: str):
    with pytest.raises(ValueError, match="invalid model version"):
        load_artifact(tmp_path, version)
    with pytest.raises(ValueError, match="invalid model version"):
        save_artifact(tmp_path, make(version))


def test_current_naming_a_traversal_is_rejected(tmp_path: Path):
    save_artifact(tmp_path / "other", make("v1"))
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "CURRENT").write_text("../other/v1\n")
    with pytest.raises(ValueError, match="invalid model version"):
        load_current(tmp_path / "shop")


def rewrite_npz(folder: Path, version: str, **arrays) -> None:
    path = folder / version / "model.npz"
    with np.load(path) as npz:
        data = {name: npz[name] for name in npz.files}
    data.update(arrays)
    np.savez(path, **data)  # np.savez pickles object arrays: exactly what a hostile file would contain


@pytest.mark.parametrize(("arrays", "message"), [
    ({"neighbors": np.zeros((2, 2), dtype=np.int32)}, "neighbors must be int32"),
    ({"neighbors": np.zeros((3, 2), dtype=np.int64)}, "neighbors must be int32"),
    ({"scores": np.zeros((3, 3), dtype=np.float32)}, "scores must be float32"),
    ({"neighbors": np.array([[1, 7], [0, -1], [-1, -1]], dtype=np.int32)}, "outside"),
    ({"popular": np.array([3], dtype=np.int32)}, "outside"),
    ({"scores": np.full((3, 2), np.nan, dtype=np.float32)}, "finite"),
    ({"items": np.array([1, 2, 3])}, "unicode"),
    ({"items": np.array(["a", "b", "c"], dtype=object)}, "pickle"),
])
def test_tampered_npz_is_rejected(tmp_path: Path, arrays: dict, message: str):
    save_artifact(tmp_path, make("v1"))
    rewrite_npz(tmp_path, "v1", **arrays)
    with pytest.raises(ValueError, match=message):
        load_artifact(tmp_path, "v1")


def test_missing_array_truncated_file_and_bad_meta_are_rejected(tmp_path: Path):
    save_artifact(tmp_path, make("v1"))
    npz = tmp_path / "v1" / "model.npz"
    good = npz.read_bytes()
    np.savez(npz, items=np.array(["a"]))
    with pytest.raises(ValueError, match="lacks neighbors, scores, popular"):
        load_artifact(tmp_path, "v1")
    npz.write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="model v1"):
        load_artifact(tmp_path, "v1")
    npz.write_bytes(good)
    meta = tmp_path / "v1" / "meta.json"
    meta.write_text(json.dumps({"version": "v2", "meta": {}}))
    with pytest.raises(ValueError, match="names version 'v2'"):
        load_artifact(tmp_path, "v1")
    meta.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_artifact(tmp_path, "v1")


def test_save_refuses_invalid_arrays_and_coerces_item_ids(tmp_path: Path):
    with pytest.raises(ValueError, match="scores must be float32"):
        save_artifact(tmp_path, make("v1", scores=np.zeros((3, 2))))
    with pytest.raises(TypeError):
        save_artifact(tmp_path, make("v1", meta={"not json": object()}))
    assert not (tmp_path / "v1").exists() and not (tmp_path / "CURRENT").exists()
    save_artifact(tmp_path, make("v1", items=["sku-1", "茶-2", "sku-3"]))  # a list of str is accepted
    assert load_artifact(tmp_path, "v1").items.dtype.kind == "U"
