"""The auction: which campaign gets the slot, and why the others did not.

Every campaign that may show to this visitor on this placement is a candidate, once per advertiser
the visitor showed interest in (personalised: recently viewed and similar products) and once as a
non-personalised fallback (the campaign's popular products). Candidates are ranked by expected value
per thousand impressions:

    eCPM = price x predicted CTR x 1000 (CPC)   or   price (CPM)

and must reach the placement's floor. Rules are checked first, in this order, and the first that
fails is the candidate's status: store dismissed by the visitor ("not interested": never shown to
them again while their answer lasts, see ``tracker.hides``), campaign not running (paused, before its start, after its end),
visitor outside the audience window, recent buyer excluded, daily frequency cap reached, minimum
gap between impressions not over, below the floor, fatigue (after ``FATIGUE_FREE`` impressions
without a click the visitor sees the advertiser again only with probability
``FATIGUE_DECAY ** (unclicked - FATIGUE_FREE + 1)``: the more banners ignored, the less likely
one more gets a click, as Criteo's retargeting studies describe).

Non-personalised slots (no cookie, opted out, no interest) are sold only to CPC campaigns: they pay
for clicks, so the low CTR of a visitor who never saw the store costs them nothing, while a CPM
campaign buys impressions of its retargeting audience only.

The best candidates then try, in order, to fill the unit with products and to reserve budget
(atomic in Redis, see ``budgets``); the first that does wins. Advertisers without any campaign are
the publisher's house ads: unpaid (eCPM 0), shown only where the placement lists them or has no
floor, after every paid candidate. When nothing else can be shown, the placement's house
advertisers fill the slot with their popular products, unpaid: never an empty unit.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from adserver.campaigns.campaign import Campaign
from adserver.catalog.registry import Placement
from adserver.serving.decision import Decision, Slot, fill_unit, popular_for
from tracker.hides import hidden_skus, store_hidden
from tracker.stream import Frequency, Interest

FATIGUE_FREE = 3  # unclicked impressions before fatigue starts (settings override)
FATIGUE_DECAY = 0.6  # each further unclicked impression multiplies the chance to be shown by this
RANKED_TRIES = 5  # candidates tried (products, budget) before giving up on paid ads


@dataclass
class Candidate:
    campaign: Campaign | None  # None: a house advertiser without campaigns
    advertiser: str
    interest: Interest | None  # None: non-personalised
    pctr: float = 0.0
    ecpm: float = 0.0
    status: str = "eligible"

    @property
    def house(self) -> bool:
        return self.campaign is None

    def describe(self) -> dict:
        c = self.campaign
        return {
            "campaign": c.id if c else None, "advertiser": self.advertiser,
            "personalised": self.interest is not None,
            "pricing": c.pricing if c else "house", "price": c.price if c else 0.0,
            "pctr": round(self.pctr, 6), "ecpm": round(self.ecpm, 4), "status": self.status,
        }


@dataclass
class AuctionContext:
    """What the auction knows about the request."""

    placement_id: str
    placement: Placement | None
    placement_known: bool  # False: a placement nobody registered (no paid ads on unknown inventory)
    size: str
    slots: int
    device: str
    now: float
    hour: int
    interests: list[Interest] = field(default_factory=list)
    frequency: Frequency = field(default_factory=Frequency)
    personalised: bool = True  # False: no cookie, opted out, or the profile could not be read
    fatigue_free: int = FATIGUE_FREE
    fatigue_decay: float = FATIGUE_DECAY


@dataclass
class Sources:
    """Where the auction looks things up (in memory, or one Redis script for the budget)."""

    campaigns: Callable[[str], Sequence[Campaign]]  # running or not, of one advertiser
    advertisers: Callable[[], Sequence[str]]
    timezone: Callable[[str], str]
    catalog: Callable[[str], dict]
    popular: Callable[[str], Sequence[str]]
    model: Callable[[str], object]
    predict: Callable[..., float]  # CTR for (campaign, advertiser, interest, context)
    reserve: Callable[[Campaign, float], bool]  # budget: reserve this amount (0 = check) or refuse
    local_date: Callable[[str, float], object]  # advertiser, now -> datetime.date
    house: Callable[[str], Sequence[str]] = lambda placement_id: ()  # last-resort advertisers of a placement
    hides: Callable[[str], Mapping[str, float]] = lambda advertiser: {}  # readers' recent "not this product"s
    rng: Callable[[], float] = random.random


def fatigue(unclicked: int, free: int = FATIGUE_FREE, decay: float = FATIGUE_DECAY) -> float:
    """Probability of showing an advertiser again after ``unclicked`` impressions without a click."""
    return 1.0 if unclicked < free else decay ** (unclicked - free + 1)


def _check(candidate: Candidate, ctx: AuctionContext, sources: Sources, floor: float) -> str:
    c, interest = candidate.campaign, candidate.interest
    now = ctx.now
    if store_hidden(ctx.frequency.hidden, candidate.advertiser):
        return "hidden"
    if c is not None:
        if not c.running_on(sources.local_date(c.advertiser, now)):
            return "not_running"
        if interest is not None and now - interest.last_seen > c.audience_days * 86400:
            return "outside_audience"
        if interest is not None and c.exclude_buyers_days and interest.last_purchase \
                and now - interest.last_purchase < c.exclude_buyers_days * 86400:
            return "recent_buyer"
        if c.cap_per_day and ctx.frequency.today.get(c.id, 0) >= c.cap_per_day:
            return "capped"
        last = ctx.frequency.last_shown.get(c.id)
        if c.min_gap_seconds and last is not None and now - last < c.min_gap_seconds:
            return "min_gap"
        candidate.pctr = sources.predict(c, candidate.advertiser, interest, ctx)
        candidate.ecpm = c.bid_per_impression(candidate.pctr) * 1000
        if candidate.ecpm < floor or candidate.ecpm <= 0:
            return "below_floor"
    elif ctx.placement_known and ctx.placement is not None:
        house = ctx.placement.advertisers
        if (house and candidate.advertiser not in house) or (not house and ctx.placement.floor > 0):
            return "not_house"
    chance = fatigue(ctx.frequency.unclicked.get(candidate.advertiser, 0), ctx.fatigue_free, ctx.fatigue_decay)
    if chance < 1.0 and sources.rng() >= chance:
        return "fatigued"
    return "eligible"


def candidates(ctx: AuctionContext, sources: Sources) -> list[Candidate]:
    """Every candidate with its rule status, pCTR and eCPM (eligible ones ranked first)."""
    floor = ctx.placement.floor if ctx.placement is not None else 0.0
    found: list[Candidate] = []
    seen: set[tuple[str, bool]] = set()
    if ctx.personalised and ctx.placement_known:
        for interest in ctx.interests:
            campaigns = list(sources.campaigns(interest.advertiser))
            for campaign in campaigns or [None]:
                found.append(Candidate(campaign, interest.advertiser, interest))
                seen.add((campaign.id if campaign else interest.advertiser, True))
    for advertiser in sources.advertisers():
        campaigns = list(sources.campaigns(advertiser)) if ctx.placement_known else []
        for campaign in campaigns or [None]:
            key = campaign.id if campaign else advertiser
            if (key, True) in seen or (campaign is not None and campaign.pricing != "cpc"):
                continue
            found.append(Candidate(campaign, advertiser, None))
    for candidate in found:
        candidate.status = _check(candidate, ctx, sources, floor)
    recency = {i.advertiser: -i.last_seen for i in ctx.interests}
    return sorted(found, key=lambda c: (c.status != "eligible", c.house, -c.ecpm, c.interest is None,
                                        recency.get(c.advertiser, 0.0), c.campaign.id if c.campaign else c.advertiser))


def _slots(candidate: Candidate, ctx: AuctionContext, sources: Sources) -> list[Slot]:
    products = sources.catalog(candidate.advertiser)
    artifact = sources.model(candidate.advertiser)
    popular = popular_for(sources.popular, artifact, candidate.advertiser)
    interest = candidate.interest
    hidden = hidden_skus(ctx.frequency.hidden, candidate.advertiser)
    hides = sources.hides(candidate.advertiser)
    if interest is None:
        bought = next((i.bought for i in ctx.interests if i.advertiser == candidate.advertiser), set())
        return fill_unit(products, [], popular, (bought if ctx.personalised else set()) | hidden, ctx.slots,
                         hides=hides)
    return fill_unit(products, interest.recent, popular, interest.bought | hidden, ctx.slots, artifact, hides)


def run(ctx: AuctionContext, sources: Sources) -> tuple[Decision, list[Candidate]]:
    """Rank, then let the best candidates fill the unit and reserve budget; the first that can wins."""
    ranked = candidates(ctx, sources)
    tries = 0
    for candidate in ranked:
        if candidate.status != "eligible":
            break
        if not candidate.house:
            if tries >= RANKED_TRIES:
                candidate.status = "not_tried"
                continue
            tries += 1
        slots = _slots(candidate, ctx, sources)
        if not slots:
            candidate.status = "no_products"
            continue
        c = candidate.campaign
        if c is not None and not sources.reserve(c, c.charge_per_impression()):
            candidate.status = "budget"
            continue
        candidate.status = "won"
        for other in ranked:
            if other.status == "eligible":
                other.status = "outbid"
        personalised = candidate.interest is not None and any(s.reason != "popular" for s in slots)
        decision = Decision(candidate.advertiser, slots, personalised=personalised,
                            path="personalised" if candidate.interest is not None else "fallback")
        decision.campaign = c
        decision.charged = c.charge_per_impression() if c else 0.0
        decision.pctr = candidate.pctr
        decision.interest = candidate.interest
        return decision, ranked
    # Last resort: unpaid popular products of the placement's house advertisers, or (none known, e.g.
    # the registry cannot be read) of the stores the visitor knows.
    house = list(sources.house(ctx.placement_id)) or [i.advertiser for i in ctx.interests]
    for advertiser in house:
        if store_hidden(ctx.frequency.hidden, advertiser):
            continue
        filler = Candidate(None, advertiser, None, status="house")
        slots = _slots(filler, ctx, sources)
        if slots:
            ranked.append(filler)
            return Decision(advertiser, slots, path="fallback"), ranked
    return Decision(None, [], path="empty"), ranked
