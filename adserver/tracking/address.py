"""The client's address, for click floods and login throttling.

Behind a proxy every request comes from the proxy, so the address it forwards is taken, but only
from proxies the operator trusts (``ADSERVER_FORWARDED_ALLOW_IPS``, gunicorn's own rule): anyone
else could write any address into ``X-Forwarded-For`` and slip past the limits.
"""

from __future__ import annotations

import ipaddress

from flask import request

from adserver.services import services


def client_ip() -> str:
    """The peer's address, or the last one a trusted proxy put in ``X-Forwarded-For``."""
    peer = request.remote_addr or "unknown"
    forwarded = request.headers.get("X-Forwarded-For", "")
    if not forwarded:
        return peer
    trusted = services().settings.forwarded_allow_ips
    try:
        peer_ip = ipaddress.ip_address(peer)
    except ValueError:
        return peer
    if trusted != ("*",) and not any(peer_ip in net for net in trusted):
        return peer
    last = forwarded.split(",")[-1].strip()
    try:
        return str(ipaddress.ip_address(last))
    except ValueError:
        return peer
