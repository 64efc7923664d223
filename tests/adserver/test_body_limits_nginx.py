"""nginx's request body limits (``deploy/nginx/adserver.conf``) are the app's: 64 KB by default, and
each route that accepts more (``adserver.limits.accepts_body``) gets a location with its own limit, so
nginx neither lets a large body through to a small route nor refuses what a large route accepts."""

from __future__ import annotations

import re
from pathlib import Path

from adserver.limits import DEFAULT_MAX_BODY

NGINX_CONF = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "adserver.conf"
UNITS = {"": 1, "k": 1024, "m": 1024 * 1024, "g": 1024 ** 3}


def _bytes(size: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([kmg]?)", size.lower()).groups()
    return int(number) * UNITS[unit]


def _tls_server(text: str) -> str:
    return text[text.index("listen 443"):]


def _body_limit(text: str, path: str) -> int:
    """The limit nginx applies to ``path``: that of the location it picks (exact, then the first
    matching regular expression, then the longest prefix), else the server's."""
    locations = re.findall(r"location\s+(=|~\*?|\^~)?\s*(\S+)\s*\{([^}]*)\}", text)
    chosen = next((loc for loc in locations if loc[0] == "=" and loc[1] == path), None)
    if chosen is None:
        chosen = next((loc for loc in locations if loc[0].startswith("~")
                       and re.search(loc[1], path, re.IGNORECASE if loc[0] == "~*" else 0)), None)
    if chosen is None:
        prefixes = [loc for loc in locations if loc[0] in ("", "^~") and path.startswith(loc[1])]
        chosen = max(prefixes, key=lambda loc: len(loc[1]), default=None)
    own = re.search(r"client_max_body_size\s+(\S+);", chosen[2]) if chosen else None
    if own:
        return _bytes(own.group(1))
    server = re.sub(r"location\s[^{]*\{[^}]*\}", "", text)
    return _bytes(re.search(r"client_max_body_size\s+(\S+);", server).group(1))


def test_nginx_body_limits_are_the_apps(app):
    text = _tls_server(NGINX_CONF.read_text())
    large = {}
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        path = re.sub(r"<[^>]+>", "demo", rule.rule)
        expected = getattr(view, "max_body_bytes", None) or DEFAULT_MAX_BODY
        assert _body_limit(text, path) == expected, (rule.rule, expected)
        if expected != DEFAULT_MAX_BODY:
            large[rule.rule] = expected
    assert large.get("/api/v1/feeds/<advertiser>", 0) > 100 * DEFAULT_MAX_BODY  # the test saw the feed upload
    assert _body_limit(text, "/reports/login") == DEFAULT_MAX_BODY == app.config["MAX_CONTENT_LENGTH"]
