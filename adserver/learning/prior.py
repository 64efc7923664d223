"""The click-through rate the auction assumes before a CTR model has been trained."""

from __future__ import annotations

from models.ctr import DEFAULT_PRIOR_CTR, CtrContext

NO_INTEREST_CTR_RATIO = 0.2  # a visitor who never looked at the store clicks about 5x less
PRIOR_HALF_LIFE_DAYS = 7.0  # interest fades: a week-old view is worth half a fresh one


def prior_ctr(context: CtrContext) -> float:
    """The CTR assumed before any model is trained: the default, less for older or no interest.

    Without it every candidate would look alike, and price alone would decide: a store the visitor
    never saw could outbid the one they browsed a minute ago.
    """
    if not context.interest_views:
        return DEFAULT_PRIOR_CTR * NO_INTEREST_CTR_RATIO
    return DEFAULT_PRIOR_CTR / (1.0 + context.interest_age / (PRIOR_HALF_LIFE_DAYS * 86400))
