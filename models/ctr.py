"""Click-through-rate prediction for the auction: eCPM = price x predicted CTR for CPC campaigns.

The model is a logistic regression (L2) over hashed one-hot features of the ad request: placement,
size, advertiser, how recently and how much the visitor looked at the advertiser's products, the hour
and the device, plus three crosses (placement x advertiser, size x device, advertiser x recency).

Design choices, and why:

- **Feature hashing with a fixed, stable hash** (CRC-32 of the UTF-8 feature string, modulo the
  table size). No vocabulary to store or keep in sync, new placements and advertisers need no
  retraining to be *representable*, and the index of a feature is the same in the training job and
  in every serving process. Python's ``hash()`` is salted per process, so it would silently map
  features to different weights in each gunicorn worker.
- **Serving without scikit-learn**: ``predict`` hashes ~10 short strings and sums the matching
  weights from a plain dict of the non-zero weights, a few microseconds, so it can run for every
  candidate campaign of every ad request. Training and serving compute the indices with the same
  function (``feature_indices``), so they cannot drift apart.
- **Shrinkage toward a prior by support**: a weight learnt from a handful of impressions is mostly
  noise, and in an auction noise is not harmless: the campaigns whose CTR is overestimated win and
  pay, the underestimated ones never get shown and so never get the data that would correct them.
  The served prediction is ``p = (n * p_model + k * p_generic) / (n + k)`` with ``n`` the training
  impressions of the less known of (advertiser, placement), and ``p_generic`` the model's prediction
  from the features that are not about a particular advertiser or placement (interest recency and
  depth, hour, device, size). An unseen advertiser or placement gets the generic prediction, which
  still says that a visitor who looked at the store an hour ago clicks more than one who never did;
  a flat global CTR would make every new advertiser's candidates look alike, so that price alone
  decided. A well known pair gets the model, and in between the model earns trust as data
  accumulates. With no model at all, the serving side uses its own prior.
- **Time-ordered evaluation**: the last 20% of impressions (by time) are held out, because a random
  split would leak the future (same visitors, same day) and flatter the model. The figures compare
  the served (shrunk) prediction with a constant predictor of the training CTR.

Artifacts follow ``models.artifact``: ``<folder>/<version>/model.npz`` (no object arrays, loaded
with ``allow_pickle=False``) + ``meta.json``, and an atomically replaced ``<folder>/CURRENT``.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.artifact import _check_version, new_version, publish_version, read_npz

DEFAULT_PRIOR_CTR = 0.003  # used when no model was trained yet
DEFAULT_PRIOR_STRENGTH = 200.0  # k: impressions' worth of trust given to the prior
DEFAULT_N_FEATURES = 2**18
FORMAT = 1
HASHING = "crc32-utf8-v1"  # bump when feature names, buckets or the hash change: old files must not load
KIND = "ctr"
ARRAYS = ("coef", "intercept", "advertisers", "advertiser_support", "placements", "placement_support")
_EPS = 1e-7

# Seconds since the visitor's last product view at the advertiser, in roughly logarithmic buckets.
RECENCY_BUCKETS = ((3600, "1h"), (86400, "1d"), (3 * 86400, "3d"), (7 * 86400, "7d"), (30 * 86400, "30d"))
VIEWS_BUCKETS = ((1, "1"), (2, "2"), (4, "3-4"), (9, "5-9"))


@dataclass(frozen=True)
class CtrContext:
    """What the auction knows about one ad request for one advertiser's campaign."""

    placement: str
    size: str
    advertiser: str
    interest_age: int  # seconds since the visitor's last product view at the advertiser; 0 = none/unknown
    interest_views: int  # products viewed there recently; 0 = none
    hour: int  # 0-23, UTC
    device: str  # desktop / mobile / tablet / bot / other


def recency_bucket(age: int) -> str:
    """``none`` for 0 (no interest known), else the first bucket the age falls under, ``old`` past 30 days."""
    if age <= 0:
        return "none"
    for limit, name in RECENCY_BUCKETS:
        if age < limit:
            return name
    return "old"


def views_bucket(views: int) -> str:
    if views <= 0:
        return "0"
    for limit, name in VIEWS_BUCKETS:
        if views <= limit:
            return name
    return "10+"


def feature_names(ctx: CtrContext) -> list[str]:
    """The hashed features of a context. ``\\x1f`` separates the parts of a cross so that
    ("ab", "c") and ("a", "bc") stay different features."""
    recency = recency_bucket(int(ctx.interest_age))
    return [
        "p=" + ctx.placement,
        "s=" + ctx.size,
        "a=" + ctx.advertiser,
        "r=" + recency,
        "v=" + views_bucket(int(ctx.interest_views)),
        "h=" + str(int(ctx.hour) % 24),
        "d=" + ctx.device,
        "pa=" + ctx.placement + "\x1f" + ctx.advertiser,
        "sd=" + ctx.size + "\x1f" + ctx.device,
        "ar=" + ctx.advertiser + "\x1f" + recency,
    ]


N_FIELDS = 10  # len(feature_names(...)): every context has exactly one value per field
# Positions in ``feature_names`` of the fields that say nothing about a particular advertiser or
# placement: size, recency, views, hour, device, size x device. They make the generic prediction.
GENERIC_FIELDS = (1, 3, 4, 5, 6, 8)


def feature_indices(ctx: CtrContext, n_features: int) -> list[int]:
    """Column indices of the context's features: CRC-32 of the UTF-8 name, modulo ``n_features``.
    Stable across processes, machines and Python versions (unlike ``hash()``)."""
    crc = zlib.crc32
    return [crc(name.encode("utf-8")) % n_features for name in feature_names(ctx)]


def design_matrix(contexts: Sequence[CtrContext], n_features: int):
    """Sparse one-hot matrix (rows = contexts) of the hashed features, for training."""
    from scipy.sparse import csr_matrix

    n = len(contexts)
    cols = np.fromiter((i for ctx in contexts for i in feature_indices(ctx, n_features)),
                       dtype=np.int64, count=n * N_FIELDS)
    indptr = np.arange(0, n * N_FIELDS + 1, N_FIELDS, dtype=np.int64)
    data = np.ones(n * N_FIELDS, dtype=np.float64)
    matrix = csr_matrix((data, cols, indptr), shape=(n, n_features))
    matrix.sum_duplicates()  # two features of a row hashed to one column add up, as at serving time
    return matrix


def _support(contexts: Sequence[CtrContext], attr: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for ctx in contexts:
        key = getattr(ctx, attr)
        counts[key] = counts.get(key, 0) + 1
    return counts


@dataclass(eq=False)  # identity equality: numpy arrays have no single truth value
class CtrModel:
    """A trained CTR model: hashed weights, the support (training impressions) of each advertiser and
    placement, and the prior the prediction is shrunk toward."""

    coef: np.ndarray  # float64 [n_features]
    intercept: float
    advertiser_support: dict[str, int]
    placement_support: dict[str, int]
    prior_ctr: float
    prior_strength: float = DEFAULT_PRIOR_STRENGTH
    version: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    _weights: dict[int, float] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.coef = np.asarray(self.coef, dtype=np.float64)
        nonzero = np.flatnonzero(self.coef)
        # A dict of the non-zero weights: a lookup is ~40 ns, and it holds only the features seen in
        # training, not 2**18 Python floats.
        self._weights = dict(zip(nonzero.tolist(), self.coef[nonzero].tolist(), strict=True))

    @property
    def n_features(self) -> int:
        return int(self.coef.shape[0])

    def raw(self, ctx: CtrContext) -> float:
        """The logistic regression's probability, before shrinkage."""
        w = self._weights.get
        z = self.intercept + sum(w(i, 0.0) for i in feature_indices(ctx, self.coef.shape[0]))
        return 1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0

    def generic(self, ctx: CtrContext) -> float:
        """The probability from the generic fields only: the prior of an unknown advertiser or placement."""
        w = self._weights.get
        indices = feature_indices(ctx, self.coef.shape[0])
        z = self.intercept + sum(w(indices[i], 0.0) for i in GENERIC_FIELDS)
        return 1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0

    def support(self, ctx: CtrContext) -> int:
        """Training impressions of the less known of the context's advertiser and placement."""
        return min(self.advertiser_support.get(ctx.advertiser, 0), self.placement_support.get(ctx.placement, 0))

    def predict(self, ctx: CtrContext) -> float:
        """Predicted CTR of one context, shrunk toward ``prior_ctr`` by support (see the module doc)."""
        n = self.support(ctx)
        k = self.prior_strength
        if n == 0:
            return self.generic(ctx)
        return (n * self.raw(ctx) + k * self.generic(ctx)) / (n + k)

    def predict_many(self, contexts: Sequence[CtrContext]) -> np.ndarray:
        """Predictions for many contexts at once (evaluation, batch scoring); same values as ``predict``."""
        if not len(contexts):
            return np.zeros(0, dtype=np.float64)
        n_features = self.coef.shape[0]
        idx = np.array([feature_indices(ctx, n_features) for ctx in contexts], dtype=np.int64)
        z = self.intercept + self.coef[idx].sum(axis=1)
        raw = 1.0 / (1.0 + np.exp(-np.clip(z, -700, 700)))
        zg = self.intercept + self.coef[idx[:, list(GENERIC_FIELDS)]].sum(axis=1)
        generic = 1.0 / (1.0 + np.exp(-np.clip(zg, -700, 700)))
        n = np.array([self.support(ctx) for ctx in contexts], dtype=np.float64)
        k = self.prior_strength
        return (n * raw + k * generic) / (n + k)


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, _EPS, 1 - _EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def _auc(y: np.ndarray, p: np.ndarray) -> float | None:
    """ROC AUC, or None when the held-out part has only one class (AUC is undefined then)."""
    if y.min() == y.max():
        return None
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p))


def _fit(contexts: Sequence[CtrContext], y: np.ndarray, n_features: int, c: float, prior_strength: float,
         prior_ctr: float | None) -> CtrModel:
    from scipy.sparse import csr_matrix
    from sklearn.linear_model import LogisticRegression

    ctr = float(y.mean())
    prior = prior_ctr if prior_ctr is not None else ctr
    if y.min() == y.max():  # one class only: nothing to learn, the constant is the best logistic model
        intercept = math.log(max(ctr, _EPS) / max(1 - ctr, _EPS))
        coef = np.zeros(n_features)
    else:
        # L2 is the default penalty (``l1_ratio=0``); leaving it implicit works on every scikit-learn
        # version, where spelling it out warns on some (``penalty`` is deprecated since 1.8).
        clf = LogisticRegression(C=c, solver="lbfgs", max_iter=1000, tol=1e-6)
        matrix = design_matrix(contexts, n_features)
        # Fit on the columns that occur only: the same optimum (an unused column's L2-penalised weight
        # is 0), but L-BFGS then works on ~10^3 instead of 2**18 dimensions, about 30 times faster.
        used, columns = np.unique(matrix.indices, return_inverse=True)
        compact = csr_matrix((matrix.data, columns.reshape(-1), matrix.indptr), shape=(matrix.shape[0], len(used)))
        clf.fit(compact, y)
        coef = np.zeros(n_features, dtype=np.float64)
        coef[used] = clf.coef_[0]
        intercept = float(clf.intercept_[0])
    return CtrModel(coef=coef, intercept=intercept, advertiser_support=_support(contexts, "advertiser"),
                    placement_support=_support(contexts, "placement"), prior_ctr=float(prior),
                    prior_strength=float(prior_strength))


def train_ctr(contexts: Sequence[CtrContext], clicked: Sequence[int], *, n_features: int = DEFAULT_N_FEATURES,
              c: float = 1.0, prior_strength: float = DEFAULT_PRIOR_STRENGTH, test_fraction: float = 0.2,
              prior_ctr: float | None = None) -> tuple[CtrModel, dict[str, Any]]:
    """Train on impressions in time order (oldest first) and their click labels (0/1).

    Evaluates on the last ``test_fraction`` of the rows, with a model fitted on the rows before them,
    then refits on all rows and returns that model with the held-out metrics: ``auc``, ``logloss``
    (of the served, shrunk predictions), ``baseline_logloss`` and ``baseline_auc`` (0.5) of a constant
    predictor of the training CTR, ``train_rows``, ``test_rows`` and ``ctr`` (of all rows). ``auc`` is
    None when the held-out part holds only one class. ``prior_ctr`` defaults to the training CTR.
    """
    y = np.asarray(clicked, dtype=np.float64)
    if len(contexts) != len(y):
        raise ValueError(f"{len(contexts)} contexts but {len(y)} labels")
    if len(y) < 2:
        raise ValueError("need at least 2 impressions to train and evaluate")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("clicked must hold only 0 and 1")
    if n_features < 2 or not 0 < test_fraction < 1:
        raise ValueError("n_features must be >= 2 and test_fraction in (0, 1)")
    split = min(max(int(round(len(y) * (1 - test_fraction))), 1), len(y) - 1)
    train_ctx, test_ctx = contexts[:split], contexts[split:]
    y_train, y_test = y[:split], y[split:]

    held = _fit(train_ctx, y_train, n_features, c, prior_strength, prior_ctr)
    p_test = held.predict_many(test_ctx)
    baseline = np.full(len(y_test), float(y_train.mean()))
    metrics: dict[str, Any] = {
        "auc": _auc(y_test, p_test),
        "logloss": _log_loss(y_test, p_test),
        "baseline_auc": 0.5,
        "baseline_logloss": _log_loss(y_test, baseline),
        "train_rows": int(split),
        "test_rows": int(len(y_test)),
        "ctr": float(y.mean()),
        "test_ctr": float(y_test.mean()),
        "mean_prediction": float(p_test.mean()),
    }
    model = _fit(contexts, y, n_features, c, prior_strength, prior_ctr)
    model.meta = {"metrics": metrics, "rows": int(len(y)), "clicks": int(y.sum()), "c": c}
    return model, metrics


# --- files ---------------------------------------------------------------------------------------

def save_ctr(model: CtrModel, folder: Path) -> str:
    """Write ``folder/<version>/`` (model.npz, meta.json) and point ``folder/CURRENT`` at it.

    Uses ``model.version`` when set, else a new sortable version name; returns the version and sets it
    on the model. Refuses to overwrite an existing version.
    """
    folder = Path(folder)
    version = _check_version(model.version or new_version())
    arrays = _arrays(model)
    _check_arrays(arrays, f"CTR model {version}")
    meta = {"version": version, "kind": KIND, "format": FORMAT, "hashing": HASHING,
            "n_features": model.n_features, "prior_ctr": float(model.prior_ctr),
            "prior_strength": float(model.prior_strength), "meta": model.meta}
    publish_version(folder, version, arrays, meta, "CTR model")
    model.version = version
    return version


def _arrays(model: CtrModel) -> dict[str, np.ndarray]:
    advertisers = sorted(model.advertiser_support)
    placements = sorted(model.placement_support)
    return {
        "coef": np.asarray(model.coef, dtype=np.float64),
        "intercept": np.array([model.intercept], dtype=np.float64),
        "advertisers": np.array(advertisers, dtype=str) if advertisers else np.zeros(0, dtype="U1"),
        "advertiser_support": np.array([model.advertiser_support[a] for a in advertisers], dtype=np.int64),
        "placements": np.array(placements, dtype=str) if placements else np.zeros(0, dtype="U1"),
        "placement_support": np.array([model.placement_support[p] for p in placements], dtype=np.int64),
    }


def _check_arrays(arrays: dict[str, np.ndarray], where: str) -> None:
    """Raise ValueError unless the arrays have the dtypes and shapes of a valid CTR model."""
    coef, intercept = arrays["coef"], arrays["intercept"]
    if coef.dtype != np.float64 or coef.ndim != 1 or coef.shape[0] < 2:
        raise ValueError(f"{where}: coef must be a 1-D float64 array, got {coef.dtype} {coef.shape}")
    if intercept.dtype != np.float64 or intercept.shape != (1,):
        raise ValueError(f"{where}: intercept must be float64 [1], got {intercept.dtype} {intercept.shape}")
    if not (np.isfinite(coef).all() and np.isfinite(intercept).all()):
        raise ValueError(f"{where}: weights are not all finite")
    for names, counts in (("advertisers", "advertiser_support"), ("placements", "placement_support")):
        keys, support = arrays[names], arrays[counts]
        if keys.dtype.kind != "U" or keys.ndim != 1:
            raise ValueError(f"{where}: {names} must be a 1-D unicode array, got {keys.dtype} {keys.shape}")
        if support.dtype != np.int64 or support.shape != keys.shape:
            raise ValueError(f"{where}: {counts} must be int64 {keys.shape}, got {support.dtype} {support.shape}")
        if support.size and support.min() < 0:
            raise ValueError(f"{where}: {counts} holds negative counts")
        if len(set(keys.tolist())) != len(keys):
            raise ValueError(f"{where}: {names} holds duplicates")


def _check_probability(value: Any, name: str, where: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value < 1:
        raise ValueError(f"{where}: meta.json {name} must be a number in (0, 1), got {value!r}")
    return float(value)


def load_ctr(folder: Path, version: str) -> CtrModel:
    """Load and check ``folder/<version>``; ValueError (naming the problem) for any invalid content,
    OSError when the files are missing or unreadable. Never unpickles."""
    version = _check_version(version)
    where = f"CTR model {version}"
    path = Path(folder) / version
    try:
        meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{where}: meta.json is not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("meta", {}), dict):
        raise ValueError(f"{where}: meta.json must hold an object with an object 'meta'")
    if meta.get("version") != version:
        raise ValueError(f"{where}: meta.json names version {meta.get('version')!r}")
    if meta.get("kind") != KIND or meta.get("format") != FORMAT:
        raise ValueError(f"{where}: not a CTR model of format {FORMAT} (kind {meta.get('kind')!r}, "
                         f"format {meta.get('format')!r})")
    if meta.get("hashing") != HASHING:
        raise ValueError(f"{where}: features hashed with {meta.get('hashing')!r}, this code uses {HASHING!r}")
    prior_ctr = _check_probability(meta.get("prior_ctr"), "prior_ctr", where)
    strength = meta.get("prior_strength")
    if not isinstance(strength, (int, float)) or isinstance(strength, bool) or not 0 <= strength < math.inf:
        raise ValueError(f"{where}: meta.json prior_strength must be a number >= 0, got {strength!r}")
    arrays = read_npz(path / "model.npz", ARRAYS, where)
    _check_arrays(arrays, where)
    if meta.get("n_features") != arrays["coef"].shape[0]:
        raise ValueError(f"{where}: meta.json n_features {meta.get('n_features')!r} does not match coef")
    return CtrModel(
        coef=arrays["coef"], intercept=float(arrays["intercept"][0]),
        advertiser_support=dict(zip(arrays["advertisers"].tolist(), arrays["advertiser_support"].tolist(),
                                    strict=True)),
        placement_support=dict(zip(arrays["placements"].tolist(), arrays["placement_support"].tolist(),
                                   strict=True)),
        prior_ctr=prior_ctr, prior_strength=float(strength), version=version, meta=meta.get("meta", {}),
    )


def load_current_ctr(folder: Path) -> CtrModel | None:
    """The model ``folder/CURRENT`` points at, or None when nothing was trained yet."""
    try:
        version = (Path(folder) / "CURRENT").read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return load_ctr(folder, version)
