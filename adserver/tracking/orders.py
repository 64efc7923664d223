"""Validation of a batch of server-to-server orders (``POST /api/v1/conversions/<advertiser>``).

The body is JSON: ``{"orders": [{"order_id", "value", "currency", "skus", "ts"?, "click_id"?}, …]}``.
A body that cannot be read as such a batch is refused whole (:class:`BadBatch`); otherwise each
order is checked on its own and every problem is reported with the order's index, the field and a
stable reason code, so one call tells the store everything to fix while its good orders are stored.

Nothing is trusted: numbers are read as decimals (no float rounding, no overflow, ``NaN`` and
``Infinity`` are reported per order, not crash the parser), strings are checked for length,
characters and valid UTF-8, and unknown fields are refused so a misspelt field is never silently
dropped.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation

from adserver.serving.click_ids import ClickIds, InvalidClickId
from tracker.events import CURRENCIES, MAX_SKUS, ORDER_RE, SKU_RE

MAX_ORDERS = 1000
MAX_BODY_BYTES = 2 * 1024 * 1024
MAX_VALUE = Decimal(10) ** 12
MAX_AGE_SECONDS = 90 * 86400  # the longest attribution window: an older order can never be attributed
MAX_AHEAD_SECONDS = 300  # clocks differ a little; an order from the future is a unit mistake (ms?)
FIELDS = ("order_id", "value", "currency", "skus", "ts", "click_id")
REQUIRED = ("order_id", "value", "currency", "skus")


class BadBatch(ValueError):
    """The body as a whole is not a batch of orders: answered with ``status`` and nothing stored."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass
class OrderError:
    index: int
    field: str
    reason: str
    message: str
    order_id: str | None = None

    def as_dict(self) -> dict:
        out: dict = {"index": self.index}
        if self.order_id is not None:
            out["order_id"] = self.order_id
        out.update(field=self.field, reason=self.reason, message=self.message)
        return out


@dataclass
class Order:
    """A valid order, ready to be stored as a verified ``purchase`` event."""

    order_id: str
    value: float
    currency: str
    skus: list[str]
    ts: int
    impression_id: str = ""  # the clicked impression, from the click id
    uid: str = ""  # the visitor who clicked, from the click id


@dataclass
class Batch:
    orders: list[tuple[int, Order]] = field(default_factory=list)  # (index in the body, order)
    errors: list[OrderError] = field(default_factory=list)
    size: int = 0


class _NonFinite:
    """What ``NaN``, ``Infinity`` and ``-Infinity`` parse to: reported per order, not a parse error."""

    def __init__(self, text: str) -> None:
        self.text = text


def parse_body(data: bytes) -> list:
    """The list of orders in a request body, or :class:`BadBatch`."""
    if len(data) > MAX_BODY_BYTES:
        raise BadBatch(413, "too_large", f"the body is larger than {MAX_BODY_BYTES // 1024} KB; "
                                         f"send at most {MAX_ORDERS} orders per request")
    if not data.strip():
        raise BadBatch(400, "empty_body", 'the body must be JSON: {"orders": [...]}')
    try:
        doc = json.loads(data, parse_float=Decimal, parse_int=Decimal, parse_constant=_NonFinite)
    except RecursionError:
        raise BadBatch(400, "bad_json", "the body is nested too deeply") from None
    except ValueError as exc:  # also invalid UTF-8
        raise BadBatch(400, "bad_json", f"the body is not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(doc, dict) or set(doc) != {"orders"}:
        raise BadBatch(400, "bad_batch", 'the body must be a JSON object with one key, "orders": [...]')
    orders = doc["orders"]
    if not isinstance(orders, list):
        raise BadBatch(400, "bad_batch", '"orders" must be a list of order objects')
    if not orders:
        raise BadBatch(400, "empty_batch", '"orders" is empty: send at least one order')
    if len(orders) > MAX_ORDERS:
        raise BadBatch(413, "too_many_orders", f"{len(orders)} orders; at most {MAX_ORDERS} per request")
    return orders


def parse_orders(data: bytes, advertiser: str, click_ids: ClickIds, now: float | None = None) -> Batch:
    """Check a request body; ``now`` (unix seconds) bounds the orders' times."""
    items = parse_body(data)
    now = time.time() if now is None else now
    batch = Batch(size=len(items))
    for index, item in enumerate(items):
        result = check_order(index, item, advertiser, click_ids, now)
        if isinstance(result, Order):
            batch.orders.append((index, result))
        else:
            batch.errors += result
    return batch


def check_order(index: int, item: object, advertiser: str, click_ids: ClickIds, now: float) -> Order | list[OrderError]:
    """One order, or every problem found in it."""
    if not isinstance(item, dict):
        return [OrderError(index, "", "not_an_object", "an order is a JSON object")]
    errors: list[OrderError] = []

    def fail(name: str, reason: str, message: str) -> None:
        errors.append(OrderError(index, name, reason, message))

    for name in sorted(set(item) - set(FIELDS), key=str)[:5]:
        fail(str(name)[:64], "unknown_field", f"unknown field (known: {', '.join(FIELDS)})")
    for name in REQUIRED:
        if name not in item:
            fail(name, "missing", f"{name} is required")
    order_id = _order_id(item.get("order_id"), fail) if "order_id" in item else ""
    value = _value(item["value"], fail) if "value" in item else 0.0
    currency = _currency(item["currency"], fail) if "currency" in item else ""
    skus = _skus(item["skus"], fail) if "skus" in item else []
    ts = _ts(item.get("ts"), now, fail) if item.get("ts") is not None else int(now)
    impression_id = uid = ""
    if item.get("click_id") is not None:
        try:
            ref = click_ids.verify(advertiser, item["click_id"])
            impression_id, uid = ref.impression_id, ref.uid
        except InvalidClickId as exc:
            fail("click_id", "invalid_click_id", f"{exc}; send the adclid parameter of the landing URL unchanged")
    if errors:
        for error in errors:
            error.order_id = order_id or None
        return errors
    return Order(order_id, value, currency, skus, ts, impression_id, uid)


def _text_ok(value: str) -> bool:
    """Encodable as UTF-8 (JSON escapes can spell lone surrogates, which no store can hold)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _order_id(value: object, fail) -> str:
    if isinstance(value, Decimal) and 0 <= value < Decimal(10) ** 30 and value == value.to_integral_value():
        value = str(int(value))  # numeric order ids are common; stored as their decimal text
    if not isinstance(value, str) or not ORDER_RE.match(value) or not _text_ok(value):
        fail("order_id", "invalid", "order_id is a string of 1-100 printable characters without quotes, "
                                    "backslashes or angle brackets")
        return ""
    return value


def _value(value: object, fail) -> float:
    if isinstance(value, _NonFinite):
        fail("value", "not_finite", f"value must be a number, not {value.text}")
        return 0.0
    if isinstance(value, str):
        try:
            value = Decimal(value.strip()) if len(value) <= 40 else None
        except InvalidOperation:
            value = None
    if not isinstance(value, Decimal) or not value.is_finite():
        fail("value", "not_a_number", "value must be a number (or a decimal string) such as 129.90")
        return 0.0
    if value < 0:
        fail("value", "negative", "value must not be negative")
    elif value >= MAX_VALUE:
        fail("value", "too_large", "value must be below 1,000,000,000,000")
    else:
        return float(value.quantize(Decimal("0.0001")))
    return 0.0


def _currency(value: object, fail) -> str:
    if not isinstance(value, str) or value not in CURRENCIES:
        fail("currency", "unknown_currency", "currency must be an ISO 4217 code in upper case, such as CNY, EUR, USD")
        return ""
    return value


def _skus(value: object, fail) -> list[str]:
    if not isinstance(value, list) or not value:
        fail("skus", "invalid", "skus must be a non-empty list of product ids")
        return []
    if len(value) > MAX_SKUS:
        fail("skus", "too_many", f"at most {MAX_SKUS} skus per order")
        return []
    if not all(isinstance(s, str) and SKU_RE.match(s) and _text_ok(s) for s in value):
        fail("skus", "invalid_sku", "each sku is 1-100 printable characters without spaces, quotes or commas")
        return []
    return list(dict.fromkeys(value))


def _ts(value: object, now: float, fail) -> int:
    seconds: Decimal | None = None
    if isinstance(value, Decimal) and value.is_finite():
        seconds = value
    elif isinstance(value, str) and len(value) <= 40:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            seconds = Decimal(parsed.timestamp())
    if seconds is None:
        fail("ts", "invalid", "ts is unix seconds or an ISO 8601 time with its offset (2026-03-10T12:00:00+08:00)")
        return 0
    if seconds > Decimal(now + MAX_AHEAD_SECONDS):
        fail("ts", "in_the_future", "ts is in the future (unix seconds expected, not milliseconds)")
    elif seconds < Decimal(now - MAX_AGE_SECONDS):
        fail("ts", "too_old", "ts is more than 90 days ago")
    else:
        return int(seconds)
    return 0
