#!/usr/bin/env python3
"""Convert the UCI Online Retail data set into an events CSV for ``python -m adserver evaluate``.

Usage::

    python scripts/uci_to_events.py <uci_online_retail.csv[.gz]> <events.csv[.gz]>

Each invoice line of a known customer becomes one purchase event::

    visitor = CustomerID (as an integer: "17850.0" -> "17850")
    item    = StockCode
    ts      = InvoiceDate as unix seconds, read as UTC ("12/1/2010 8:26" or "2010-12-01 08:26:00")
    event   = purchase
    title   = Description

Dropped, and counted on stderr: lines without a CustomerID (guest checkouts cannot form a history),
cancellations (InvoiceNo starting with "C") and lines with Quantity <= 0 (returns and stock corrections).
Lines whose date or quantity cannot be read are dropped and counted too (the published file has none).
The output keeps the input order, so the lines of one invoice stay together. Standard library only.
"""

from __future__ import annotations

import csv
import gzip
import sys
from collections import Counter
from datetime import UTC, datetime

DATE_FORMATS = ("%m/%d/%Y %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M")
REQUIRED = ("InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "CustomerID")


def open_text(path: str, mode: str):
    """Open a text file, through gzip when the name ends in .gz."""
    if path.endswith(".gz"):
        return gzip.open(path, mode + "t", encoding="utf-8", newline="")
    return open(path, mode, encoding="utf-8", newline="")


def parse_date(text: str) -> int:
    """Unix seconds (UTC) of an InvoiceDate; ValueError if no known format matches."""
    text = text.strip()
    for fmt in DATE_FORMATS:
        try:
            return int(datetime.strptime(text, fmt).replace(tzinfo=UTC).timestamp())
        except ValueError:
            continue
    raise ValueError(f"unreadable InvoiceDate {text!r}")


def customer_id(text: str) -> str:
    """"17850.0" -> "17850"; "" stays "" (no customer)."""
    text = text.strip()
    if text.endswith(".0") and text[:-2].isdigit():
        return text[:-2]
    return text


def convert(src: str, dst: str) -> Counter:
    counts: Counter = Counter()
    with open_text(src, "r") as fin, open_text(dst, "w") as fout:
        reader = csv.DictReader(fin)
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise SystemExit(f"{src}: header lacks {', '.join(missing)}")
        writer = csv.writer(fout, lineterminator="\n")
        writer.writerow(["visitor", "item", "ts", "event", "title"])
        for row in reader:
            counts["read"] += 1
            visitor = customer_id(row["CustomerID"] or "")
            if not visitor:
                counts["no CustomerID"] += 1
                continue
            if (row["InvoiceNo"] or "").strip().upper().startswith("C"):
                counts["cancelled invoice"] += 1
                continue
            try:
                quantity = float(row["Quantity"])
                ts = parse_date(row["InvoiceDate"] or "")
            except (TypeError, ValueError):
                counts["unreadable date or quantity"] += 1
                continue
            if not quantity > 0:
                counts["Quantity <= 0"] += 1
                continue
            item = (row["StockCode"] or "").strip()
            if not item:
                counts["no StockCode"] += 1
                continue
            writer.writerow([visitor, item, ts, "purchase", " ".join((row["Description"] or "").split())])
            counts["written"] += 1
    return counts


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.split("Each invoice")[0].strip(), file=sys.stderr)
        return 2
    counts = convert(argv[0], argv[1])
    dropped = ", ".join(f"{reason}: {n:,}" for reason, n in counts.items() if reason not in ("read", "written"))
    print(f"{counts['read']:,} lines read, {counts['written']:,} events written to {argv[1]} "
          f"(dropped: {dropped or 'none'})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
