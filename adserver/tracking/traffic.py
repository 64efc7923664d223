"""Invalid traffic: requests that must not count as impressions, clicks or interest.

``classify`` answers ``""`` for a request that counts, or the reason it does not:

- ``prefetch``: the browser fetched the URL speculatively (``Sec-Purpose: prefetch`` or
  ``prefetch;prerender``, ``Purpose: prefetch``, ``X-Moz: prefetch``, ``X-Purpose: preview``). Nobody
  saw the ad yet; a prerendered page that is later shown does not ask again, which undercounts a
  little rather than counting pages nobody looked at.
- ``no_user_agent``: every browser sends one; scripts that strip it are not people.
- ``previewer``: a chat or social app fetching the link to draw a preview card (Slack, WhatsApp,
  Telegram, iMessage, ...). Most of them are known to crawlerdetect as well; they get their own code
  because publishers ask about them ("clicks from Slack") and because the list below adds the few
  crawlerdetect misses.
- ``bot``: the user agent matches the crawler list of the maintained ``crawlerdetect`` package
  (search engines, SEO tools, HTTP libraries such as curl and python-requests, monitoring, and
  headless browsers: ``HeadlessChrome`` is automation, not a person, so it is a bot).
  In-app browsers (WeChat ``MicroMessenger``, Weibo, Instagram, Facebook ``FBAN``) are people.
- ``click_flood``: more clicks in one minute from one visitor or one address than the settings
  allow (``ADSERVER_CLICK_LIMIT_VISITOR``, ``ADSERVER_CLICK_LIMIT_ADDRESS``); only for clicks.

Invalid requests are still answered normally (the ad renders, the click redirects): a person
classified wrongly loses nothing, and a bot learns nothing about the rules. The event is stored
with ``invalid = 1`` and the reason, reports count it apart, and it never feeds a visitor's profile.

Cost: crawlerdetect joins about 1,900 patterns into one case-insensitive regular expression. A
user agent it does not match (every browser) is scanned against all of them: about 1 ms of CPU
(0.4 ms on average over a mix of bots and browsers, where bots match early). Browsers repeat the
same few thousand user agents, so verdicts are kept in a bounded LRU (``UA_CACHE_SIZE``) and a
repeated user agent costs a dictionary lookup (about 0.15 µs; ``classify`` as a whole, with its
header checks, about 5 µs).
"""

from __future__ import annotations

import ipaddress
import logging
import re
import time
from collections.abc import Callable, Mapping
from functools import lru_cache

import redis
from crawlerdetect import CrawlerDetect
from werkzeug.datastructures import Headers

from tracker.events import device_class

log = logging.getLogger(__name__)

VALID = ""
BOT = "bot"
NO_USER_AGENT = "no_user_agent"
PREFETCH = "prefetch"
PREVIEWER = "previewer"
CLICK_FLOOD = "click_flood"
REASONS = (BOT, NO_USER_AGENT, PREFETCH, PREVIEWER, CLICK_FLOOD)

UA_CACHE_SIZE = 4096
# Longer user agents are cut before matching: real ones are a few hundred characters, and the cut
# bounds the regex work an attacker can ask for per request (and the memory the cache holds).
MAX_USER_AGENT = 1024

# Link previewers, matched before the generic crawler list so they get their own reason. Those
# crawlerdetect 0.4.2 does not know: Bluesky (Cardyb), Mastodon, WeChat's share extension.
_PREVIEWERS = re.compile(
    r"facebookexternalhit|Facebot|Slackbot-LinkExpanding|Slack-ImgProxy|Twitterbot|WhatsApp/|TelegramBot"
    r"|Discordbot|SkypeUriPreview|MicrosoftPreview|LinkedInBot|redditbot|Pinterestbot|vkShare|Iframely|Embedly"
    r"|Yahoo Link Preview|Snap URL Preview|kakaotalk-scrap|DingTalkBot-LinkService|Google-PageRenderer"
    r"|Bluesky Cardyb|Mastodon/|WeChatShareExtension",
    re.IGNORECASE,
)

# Speculative fetches: header -> values (first ``;``-separated token, lower case) that mean one.
_PREFETCH_HEADERS = {
    "Sec-Purpose": ("prefetch", "prerender"),
    "Purpose": ("prefetch", "preview"),
    "X-Purpose": ("prefetch", "preview"),
    "X-Moz": ("prefetch",),
}

_detector: CrawlerDetect | None = None


def _crawler_detect() -> CrawlerDetect:
    """One detector per process: building it compiles the big pattern."""
    global _detector
    if _detector is None:
        _detector = CrawlerDetect()
    return _detector


def user_agent_verdict_uncached(user_agent: str) -> str:
    """The verdict on a user agent alone, without the cache (``""``, ``previewer`` or ``bot``)."""
    user_agent = user_agent[:MAX_USER_AGENT]
    if not user_agent.strip():
        return NO_USER_AGENT
    if _PREVIEWERS.search(user_agent):
        return PREVIEWER
    # ``is_crawler`` answers from its argument only (the instance's ``matches`` attribute, which
    # threads would share, is not read), so one detector serves every thread.
    return BOT if _crawler_detect().is_crawler(user_agent) else VALID


@lru_cache(maxsize=UA_CACHE_SIZE)
def user_agent_verdict(user_agent: str) -> str:
    """``user_agent_verdict_uncached`` behind a bounded LRU (thread-safe)."""
    return user_agent_verdict_uncached(user_agent)


@lru_cache(maxsize=UA_CACHE_SIZE)
def _device_cached(user_agent: str) -> str:
    return device_class(user_agent)


def device_of(user_agent: str) -> str:
    """``tracker.events.device_class`` behind a bounded LRU, for the same reason as the verdicts: its
    three case-insensitive patterns cost ~20 µs per browser user agent, a few per cent of a pixel hit.
    Only user agents up to ``MAX_USER_AGENT`` characters are kept, which bounds the cache's memory."""
    return _device_cached(user_agent) if len(user_agent) <= MAX_USER_AGENT else device_class(user_agent)


def prefetch(headers: Mapping[str, str]) -> bool:
    """True if the headers say the browser fetched this speculatively."""
    for name, values in _PREFETCH_HEADERS.items():
        raw = headers.get(name)
        if raw and raw.split(";", 1)[0].strip().lower() in values:
            return True
    return False


@lru_cache(maxsize=UA_CACHE_SIZE)
def address_key(remote_addr: str | None) -> str:
    """The address a flood is counted on: IPv4 as is, IPv6 by its /64 (one subscriber's network).

    Cached (bounded LRU): parsing the address was a tenth of a click's CPU, and clicks come from
    far fewer addresses than the cache holds at any moment."""
    try:
        ip = ipaddress.ip_address(remote_addr or "")
    except ValueError:
        return remote_addr or "unknown"
    if ip.version == 4:
        return str(ip)
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return f"{ipaddress.ip_network(f'{ip}/64', strict=False).network_address}/64"


class ClickFlood:
    """Fixed one-minute windows of clicks per visitor and per address, counted in Redis.

    One pipeline (INCR + EXPIRE of ``cf:{<uid>}:<minute>`` and ``cf:ip:<address>:<minute>``) per
    click. A click over either limit is a flood. Counting must never cost a click: any Redis error
    (or an open circuit breaker) makes the click valid.
    """

    WINDOW = 60

    def __init__(self, client: Callable[[], redis.Redis], per_visitor: int, per_address: int,
                 on_error: Callable[[], None] | None = None) -> None:
        self._client = client
        self.per_visitor = per_visitor
        self.per_address = per_address
        self._on_error = on_error

    def keys(self, uid: str | None, remote_addr: str | None, now: float) -> list[tuple[str, int]]:
        minute = int(now // self.WINDOW)
        keys = [(f"cf:ip:{address_key(remote_addr)}:{minute}", self.per_address)]
        if uid:
            keys.insert(0, (f"cf:{{{uid}}}:{minute}", self.per_visitor))
        return keys

    def over_limit(self, uid: str | None, remote_addr: str | None, now: float | None = None) -> bool:
        """Count this click; True if it is beyond a limit of its visitor or its address."""
        keys = self.keys(uid, remote_addr, time.time() if now is None else now)
        try:
            pipe = self._client().pipeline(transaction=False)
            for key, _ in keys:
                pipe.incr(key)
                pipe.expire(key, 2 * self.WINDOW)
            counts = pipe.execute()[::2]
        except (redis.RedisError, OSError) as exc:
            if self._on_error:
                self._on_error()
            log.warning("click flood counters unavailable (%s): click counted as valid", exc)
            return False
        return any(int(count) > limit for count, (_, limit) in zip(counts, keys))


def classify(headers: Mapping[str, str], remote_addr: str | None, *, uid: str | None = None,
             flood: ClickFlood | None = None) -> str:
    """``""`` if the request counts, else the reason it does not (see the module docstring).

    ``flood`` (clicks only) counts the click against its visitor's and address's limits; it is
    asked last, so that bots and prefetches cost no Redis round trip and do not use up the
    allowance of the people behind the same address.
    """
    if not isinstance(headers, Headers):
        headers = Headers(dict(headers))
    if prefetch(headers):
        return PREFETCH
    verdict = user_agent_verdict(headers.get("User-Agent", ""))
    if verdict:
        return verdict
    if flood is not None and flood.over_limit(uid, remote_addr):
        return CLICK_FLOOD
    return VALID


def invalid_fields(reason: str) -> dict:
    """The event fields of a verdict: nothing for valid traffic, ``invalid``/``invalid_reason`` else."""
    return {"invalid": 1, "invalid_reason": reason} if reason else {}


# --- In a request --------------------------------------------------------------------------------

def client_address() -> str:
    """The client's address, trusting ``X-Forwarded-For`` only from the configured proxies (the
    rule gunicorn's ``forwarded_allow_ips`` and the login throttle follow)."""
    from adserver.tracking.address import client_ip

    return client_ip()


def request_verdict(uid: str | None = None, click: bool = False) -> str:
    """The verdict on the current request, computed once per request (kept in ``flask.g``), so
    code deciding whether to update per-visitor state (profiles, frequency caps) sees the same
    answer as the event row. ``click`` also counts the click against the flood limits."""
    from flask import g, request

    from adserver.services import services

    cached = g.get("traffic_verdict")
    if cached is not None:
        return cached
    flood = None
    if click:
        svc = services()
        flood = ClickFlood(lambda: svc.stream_if_up().client, svc.settings.click_limit_visitor,
                           svc.settings.click_limit_address, on_error=svc.breaker.failure)
    # Only the flood count needs the client's address (resolving it reads the proxy settings).
    verdict = classify(request.headers, client_address() if click else None, uid=uid, flood=flood)
    g.traffic_verdict = verdict
    return verdict
