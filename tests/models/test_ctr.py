"""The CTR model on synthetic impressions whose true click probability is known: it must beat a
constant predictor, rank contexts like the truth does, fall back to the prior where it knows nothing,
and survive a save/load round trip while refusing unsafe files."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from models.ctr import (
    DEFAULT_PRIOR_STRENGTH,
    CtrContext,
    CtrModel,
    feature_indices,
    load_ctr,
    load_current_ctr,
    recency_bucket,
    save_ctr,
    train_ctr,
    views_bucket,
)

# The truth: a logistic function of recency and placement (and nothing else), around a 2-3% CTR.
BASE_LOGIT = -4.4
PLACEMENT_EFFECT = {"feed": 0.4, "sidebar": -0.3, "footer": -0.9}
RECENCY_EFFECT = {"none": -1.0, "1h": 2.0, "1d": 1.5, "3d": 1.0, "7d": 0.5, "30d": 0.0, "old": -0.5}
RECENCY_AGE = {"none": 0, "1h": 3000, "1d": 80000, "3d": 250000, "7d": 600000, "30d": 2500000, "old": 9000000}
ADVERTISERS = ("shop-a", "shop-b", "shop-c", "shop-d")


def true_probability(placement: str, age: int) -> float:
    return 1.0 / (1.0 + math.exp(-(BASE_LOGIT + PLACEMENT_EFFECT[placement] + RECENCY_EFFECT[recency_bucket(age)])))


def synthetic_impressions(n: int, seed: int = 7) -> tuple[list[CtrContext], list[int], np.ndarray]:
    """``n`` impressions in time order, their clicks drawn from ``true_probability``, and that probability.
    Size, hour, device, views and advertiser are noise features the model has to learn to ignore."""
    rng = np.random.default_rng(seed)
    placements = rng.choice(list(PLACEMENT_EFFECT), n)
    recency = rng.choice(list(RECENCY_EFFECT), n)
    ages = [int(RECENCY_AGE[r] * u) if r != "none" else 0 for r, u in zip(recency, rng.uniform(0.4, 1.0, n), strict=True)]
    sizes = rng.choice(["300x250", "160x600", "responsive"], n)
    advertisers = rng.choice(ADVERTISERS, n)
    devices = rng.choice(["desktop", "mobile", "tablet"], n, p=[0.5, 0.4, 0.1])
    hours = rng.integers(0, 24, n)
    views = rng.integers(1, 12, n)
    contexts = [CtrContext(str(p), str(s), str(a), age, int(v) if age else 0, int(h), str(d))
                for p, s, a, age, v, h, d in zip(placements, sizes, advertisers, ages, views, hours, devices, strict=True)]
    probabilities = np.array([true_probability(c.placement, c.interest_age) for c in contexts])
    clicks = (rng.random(n) < probabilities).astype(int).tolist()
    return contexts, clicks, probabilities


@pytest.fixture(scope="module")
def data():
    return synthetic_impressions(40_000)


@pytest.fixture(scope="module")
def trained(data):
    contexts, clicks, _ = data
    return train_ctr(contexts, clicks)


def test_buckets():
    assert [recency_bucket(a) for a in (0, 1, 3599, 3600, 86399, 86400, 3 * 86400, 7 * 86400 - 1,
                                        29 * 86400, 30 * 86400)] == [
        "none", "1h", "1h", "1d", "1d", "3d", "7d", "7d", "30d", "old"]
    assert [views_bucket(v) for v in (0, 1, 2, 3, 4, 5, 9, 10, 500)] == ["0", "1", "2", "3-4", "3-4", "5-9", "5-9",
                                                                          "10+", "10+"]


def test_feature_hashing_is_stable_across_processes():
    """The serving processes and the training job must map a feature to the same weight: no salted hash()."""
    ctx = CtrContext("feed", "300x250", "茶-shop", 4000, 3, 13, "mobile")
    here = feature_indices(ctx, 2**18)
    assert len(here) == 10 and all(0 <= i < 2**18 for i in here)
    code = ("from models.ctr import CtrContext, feature_indices; "
            "print(feature_indices(CtrContext('feed', '300x250', '茶-shop', 4000, 3, 13, 'mobile'), 2**18))")
    root = Path(__file__).resolve().parents[2]
    for seed in ("1", "2"):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root,
                             env={**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(root)})
        assert json.loads(out.stdout) == here
    # Crosses keep their parts apart: ("ab", "c") is not ("a", "bc").
    a = feature_indices(CtrContext("ab", "s", "c", 0, 0, 0, "d"), 2**30)
    b = feature_indices(CtrContext("a", "s", "bc", 0, 0, 0, "d"), 2**30)
    assert a[7] != b[7]


def test_model_beats_the_constant_baseline(trained, data):
    model, metrics = trained
    _, clicks, truth = data
    print("\nCTR synthetic:", json.dumps(metrics))
    assert metrics["train_rows"] == 32_000 and metrics["test_rows"] == 8_000
    assert metrics["baseline_auc"] == 0.5
    assert metrics["ctr"] == pytest.approx(np.mean(clicks))
    assert metrics["auc"] > 0.72
    assert metrics["logloss"] < metrics["baseline_logloss"] * 0.95
    # ...and comes close to the truth itself on the same held-out impressions.
    from sklearn.metrics import roc_auc_score

    oracle_auc = roc_auc_score(clicks[32_000:], truth[32_000:])
    assert metrics["auc"] > oracle_auc - 0.03
    assert model.meta["metrics"] == metrics and model.meta["rows"] == 40_000


def test_predictions_track_the_true_probabilities(trained, data):
    model, _ = trained
    contexts, _, truth = data
    sample = contexts[-5000:]
    predicted = model.predict_many(sample)
    from scipy.stats import spearmanr

    assert spearmanr(predicted, truth[-5000:]).statistic > 0.9
    # Per recency bucket (averaged over placements), the order of the predictions is the true order.
    buckets = sorted(RECENCY_EFFECT, key=RECENCY_EFFECT.get)
    means = []
    for bucket in buckets:
        grid = [CtrContext(p, "300x250", a, RECENCY_AGE[bucket] // 2, 3 if bucket != "none" else 0, 12,
                           "desktop")
                for p in PLACEMENT_EFFECT for a in ADVERTISERS]
        means.append(float(np.mean(model.predict_many(grid))))
    assert means == sorted(means), dict(zip(buckets, means, strict=True))
    # Calibrated on average: the mean prediction is close to the observed rate.
    assert float(predicted.mean()) == pytest.approx(float(truth[-5000:].mean()), rel=0.15)
    # The strongest signal comes through with roughly the right size: 1 h vs no interest, same placement.
    fresh = model.predict(CtrContext("feed", "300x250", "shop-b", 600, 2, 9, "mobile"))
    cold = model.predict(CtrContext("feed", "300x250", "shop-b", 0, 0, 9, "mobile"))
    assert fresh / cold == pytest.approx(true_probability("feed", 600) / true_probability("feed", 0), rel=0.35)


def test_predict_and_predict_many_agree(trained, data):
    model, _ = trained
    contexts = data[0][:300] + [CtrContext("new-slot", "728x90", "new-shop", 10, 1, 3, "bot")]
    np.testing.assert_allclose(model.predict_many(contexts), [model.predict(c) for c in contexts], rtol=1e-12)
    assert model.predict_many([]).shape == (0,)


def test_the_prior_dominates_where_the_model_knows_nothing(trained):
    model, metrics = trained
    assert model.prior_ctr == pytest.approx(metrics["ctr"])
    known = CtrContext("feed", "300x250", "shop-a", 600, 3, 10, "mobile")
    assert model.predict(known) > 3 * model.prior_ctr  # fresh interest on the best placement
    # An advertiser or a placement never seen in training: the generic prediction (what interest, hour,
    # device and size say), and still more for a fresh interest than for none.
    new_fresh = CtrContext("feed", "300x250", "brand-new", 600, 3, 10, "mobile")
    new_none = CtrContext("feed", "300x250", "brand-new", 0, 0, 10, "mobile")
    assert model.predict(new_fresh) == model.generic(new_fresh) > model.predict(new_none) == model.generic(new_none)
    other_slot = CtrContext("new-slot", "300x250", "shop-a", 600, 3, 10, "mobile")
    assert model.predict(other_slot) == model.generic(other_slot)


def test_support_shrinks_rare_advertisers_toward_the_prior():
    contexts, clicks, _ = synthetic_impressions(6000, seed=3)
    # 20 impressions of a rare advertiser, all clicked: the raw model would believe in a huge CTR.
    rare = [CtrContext("feed", "300x250", "rare", 0, 0, 12, "desktop")] * 20
    model, _ = train_ctr(contexts + rare, clicks + [1] * 20, test_fraction=0.5)
    ctx = rare[0]
    assert model.support(ctx) == 20
    raw, served = model.raw(ctx), model.predict(ctx)
    k = DEFAULT_PRIOR_STRENGTH
    generic = model.generic(ctx)
    assert served == pytest.approx((20 * raw + k * generic) / (20 + k))
    assert generic < served < raw / 4


def test_predict_is_fast(trained):
    model, _ = trained
    ctx = CtrContext("feed", "300x250", "shop-a", 600, 3, 10, "mobile")
    model.predict(ctx)
    n = 20_000
    started = time.perf_counter()
    for _ in range(n):
        model.predict(ctx)
    per_call = (time.perf_counter() - started) / n
    assert per_call < 50e-6, f"{per_call * 1e6:.1f} µs per prediction"


def test_training_input_is_checked():
    ctx = CtrContext("feed", "300x250", "a", 0, 0, 0, "desktop")
    with pytest.raises(ValueError, match="labels"):
        train_ctr([ctx] * 3, [0, 1])
    with pytest.raises(ValueError, match="0 and 1"):
        train_ctr([ctx] * 3, [0, 2, 1])
    # One class only (no clicks yet): a constant model at that rate, AUC undefined rather than invented.
    model, metrics = train_ctr([ctx] * 50, [0] * 50, prior_ctr=0.003)
    assert metrics["auc"] is None and model.prior_ctr == 0.003
    assert model.raw(ctx) < 1e-5


def test_save_and_load_round_trip(trained, data, tmp_path: Path):
    model, metrics = trained
    assert load_current_ctr(tmp_path) is None
    version = save_ctr(model, tmp_path)
    assert model.version == version
    assert (tmp_path / "CURRENT").read_text().strip() == version
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["CURRENT", version])  # nothing temporary left
    assert (tmp_path / version).stat().st_mode & 0o777 == 0o755
    loaded = load_current_ctr(tmp_path)
    assert loaded is not None and loaded.version == version
    sample = data[0][-2000:] + [CtrContext("new-slot", "1x1", "new-shop", 0, 0, 0, "other")]
    np.testing.assert_array_equal(loaded.predict_many(sample), model.predict_many(sample))
    assert [loaded.predict(c) for c in sample[:200]] == [model.predict(c) for c in sample[:200]]
    assert loaded.advertiser_support == model.advertiser_support
    assert loaded.placement_support == model.placement_support
    assert loaded.meta["metrics"] == metrics
    with pytest.raises(FileExistsError):
        save_ctr(model, tmp_path)


def _small_model() -> CtrModel:
    coef = np.zeros(64)
    coef[[3, 7]] = [0.5, -0.25]
    return CtrModel(coef=coef, intercept=-4.0, advertiser_support={"a": 10}, placement_support={"p": 10},
                    prior_ctr=0.01, version="v1", meta={"note": "中文"})


def test_loading_refuses_pickles_and_garbage(tmp_path: Path):
    save_ctr(_small_model(), tmp_path)
    assert load_ctr(tmp_path, "v1").meta == {"note": "中文"}
    npz = tmp_path / "v1" / "model.npz"
    good = npz.read_bytes()

    def arrays(**changes):
        with np.load(tmp_path / "v1" / "model.npz", allow_pickle=False) as f:
            out = {name: f[name] for name in f.files}
        out.update(changes)
        return out

    # A pickled (object) array must never be unpickled.
    original = arrays()
    np.savez(npz, **{**original, "advertisers": np.array([{"evil": 1}], dtype=object)})
    with pytest.raises(ValueError, match="pickle-free"):
        load_ctr(tmp_path, "v1")
    npz.write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match="CTR model v1"):
        load_ctr(tmp_path, "v1")
    for changes, message in (
        ({"coef": np.array([np.nan, 1.0])}, "finite"),
        ({"coef": original["coef"].astype(np.float32)}, "coef"),
        ({"advertiser_support": np.array([-1])}, "negative"),
        ({"placements": np.array(["p", "q"])}, "placement_support"),
    ):
        np.savez(npz, **{**original, **changes})
        with pytest.raises(ValueError, match=message):
            load_ctr(tmp_path, "v1")
    np.savez(npz, **{k: v for k, v in original.items() if k != "intercept"})
    with pytest.raises(ValueError, match="lacks intercept"):
        load_ctr(tmp_path, "v1")
    npz.write_bytes(good)

    meta_path = tmp_path / "v1" / "meta.json"
    meta = json.loads(meta_path.read_text())
    for key, value, message in (("hashing", "python-hash", "hashed with"), ("kind", "similarity", "not a CTR"),
                                ("prior_ctr", 2.0, "prior_ctr"), ("n_features", 128, "n_features"),
                                ("version", "v2", "names version")):
        meta_path.write_text(json.dumps({**meta, key: value}))
        with pytest.raises(ValueError, match=message):
            load_ctr(tmp_path, "v1")
    meta_path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_ctr(tmp_path, "v1")
    with pytest.raises(ValueError, match="invalid model version"):
        load_ctr(tmp_path, "../v1")
    with pytest.raises(FileNotFoundError):
        load_ctr(tmp_path, "v9")
