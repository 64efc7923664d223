"""Helpers shared by the ad server's web tests: small feeds, second advertisers, visitor ids."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest

# Any test here may run on the Redis Cluster too (``tests/adserver/redis_modes.py``); single by default.
from tests.adserver.redis_modes import (  # noqa: F401 - fixtures
    cluster,
    cluster_settings,
    cluster_stores,
    redis_client,
    redis_mode,
    settings,
    writers,
)

FEED_FIELDS = ("id", "title", "link", "image_link", "price", "currency", "availability", "item_group_id")


def product(sku: str, title: str | None = None, price: str = "10.00", **extra: str) -> dict[str, str]:
    """A valid feed row for a shop on ``shop.example`` (override any field with keyword arguments)."""
    row = {
        "id": sku, "title": title or f"Product {sku}", "link": f"https://shop.example/p/{sku}",
        "image_link": f"https://shop.example/img/{sku}.png", "price": price, "currency": "CNY",
        "availability": "in stock",
    }
    row.update(extra)
    return row


def feed_bytes(rows: list[dict], fmt: str = "csv") -> bytes:
    if fmt == "json":
        return json.dumps(rows, ensure_ascii=False).encode()
    fields = list(FEED_FIELDS) + sorted({k for r in rows for k in r} - set(FEED_FIELDS))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields, delimiter="\t" if fmt == "tsv" else ",", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


class LargeBody(io.RawIOBase):
    """A request body of ``size`` bytes made up as it is read: ``consumed`` says how much the server read."""

    def __init__(self, size: int, fill: bytes = b"a") -> None:
        self.size, self.fill, self.position, self.consumed = size, fill[:1], 0, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = 0) -> int:
        self.position = {0: offset, 1: self.position + offset, 2: self.size + offset}[whence]
        return self.position

    def readinto(self, buffer) -> int:
        count = max(0, min(len(buffer), self.size - self.position))
        buffer[:count] = self.fill * count
        self.position += count
        self.consumed += count
        return count


@pytest.fixture
def create_advertiser(runner) -> Callable[..., None]:
    """``create_advertiser(id, *domains)``: its landing domains are ``shop.example`` (where ``product``
    links) unless given."""

    def create(advertiser: str, *domains: str) -> None:
        options = [arg for domain in (domains or ("shop.example",)) for arg in ("--domain", domain)]
        code, out = runner("create-advertiser", advertiser, *options)
        assert code == 0, out

    return create


@pytest.fixture
def import_feed(runner, tmp_path: Path) -> Callable[..., tuple[int, str]]:
    """``import_feed(advertiser, rows_or_bytes, fmt="csv", full=False)`` through the CLI: (exit code, output)."""
    counter = iter(range(10**6))

    def run(advertiser: str, rows: list[dict] | bytes, fmt: str = "csv", full: bool = False) -> tuple[int, str]:
        data = rows if isinstance(rows, bytes) else feed_bytes(rows, fmt)
        path = tmp_path / f"feed{next(counter)}.{fmt}"
        path.write_bytes(data)
        return runner("import-feed", advertiser, str(path), *(["--full"] if full else []))

    return run


def uid_from_cookie(value: str) -> str:
    """The id part of a ``uid`` cookie value (``<id>.<mac>``)."""
    return value.split(".", 1)[0]


def visitor_uid(client) -> str:
    cookie = client.get_cookie("uid")
    assert cookie is not None, "no uid cookie in the test client"
    return uid_from_cookie(cookie.value)
