"""Reading event logs: time formats, optional columns, gzip, and clear errors on bad rows."""

from __future__ import annotations

import gzip
import io
import re
from pathlib import Path

import pytest

from models.events_csv import Event, parse_ts, read_events_csv

GOOD = """visitor,item,ts,event,title
u1,sku-1,1700000000,view,Green tea
u1,sku-2,1700000060.5,add_to_cart,
u2,sku-1,2023-11-14 22:13:20,purchase,"Tea, green"
u2,sku-3,2023-11-14T22:13:20Z,,
u3,茶-1,2023-11-15T06:13:20+08:00,view_item,龙井
"""


def test_reads_numbers_iso_dates_and_optional_fields(tmp_path: Path):
    path = tmp_path / "events.csv"
    path.write_text(GOOD, encoding="utf-8")
    events = read_events_csv(path)
    assert events[0] == Event("u1", "sku-1", 1_700_000_000.0, "view", "Green tea")
    assert events[1].ts == 1_700_000_060.5 and events[1].event == "add_to_cart" and events[1].title == ""
    assert events[2].ts == 1_700_000_000.0 and events[2].title == "Tea, green"  # naive date = UTC
    assert events[3].ts == 1_700_000_000.0 and events[3].event == "view"  # empty event = view
    assert events[4].ts == 1_700_000_000.0 and events[4].item == "茶-1"


def test_minimal_header_and_gzip_and_open_files(tmp_path: Path):
    text = "ts,item,visitor,extra\n5,a,v,x\n6,b,v,y\n"
    path = tmp_path / "events.csv.gz"
    path.write_bytes(gzip.compress(text.encode()))
    expected = [Event("v", "a", 5.0), Event("v", "b", 6.0)]
    assert read_events_csv(path) == expected
    assert read_events_csv(str(path)) == expected
    assert read_events_csv(io.BytesIO(gzip.compress(text.encode()))) == expected
    assert read_events_csv(io.BytesIO(("\ufeff" + text).encode())) == expected  # BOM from spreadsheets
    assert read_events_csv(io.StringIO(text)) == expected


def test_a_bad_row_names_its_line_and_problem(tmp_path: Path):
    rows = [f"u{n},sku-{n},{1_700_000_000 + n}" for n in range(10)]
    rows[5] = "u5,sku-5,yesterday"  # data row 6 = line 7 of the file (the header is line 1)
    path = tmp_path / "bad.csv"
    path.write_text("visitor,item,ts\n" + "\n".join(rows) + "\n")
    with pytest.raises(ValueError) as caught:
        read_events_csv(path)
    message = str(caught.value)
    assert "bad.csv: line 7:" in message and "'yesterday'" in message and "ISO-8601" in message


@pytest.mark.parametrize(("line", "problem"), [
    (",sku,1,", "empty visitor"),
    ("u,,1,", "empty item"),
    ("u,sku,1,click", "unknown event 'click'"),
    ("u,sku", "expected 4 fields, found 2"),
    ("u,sku,nan,", "not a finite number"),
    ("u,sku,1700000000000,", "milliseconds"),
    ("u,sku,2023-13-01,", "neither unix seconds nor an ISO-8601 date"),
])
def test_each_kind_of_bad_row(line: str, problem: str):
    text = f"visitor,item,ts,event\nu,sku,1,view\n{line}\n"
    with pytest.raises(ValueError, match=rf"^<events>: line 3: .*{re.escape(problem)}"):
        read_events_csv(io.StringIO(text))


def test_bad_headers_and_files(tmp_path: Path):
    with pytest.raises(ValueError, match="header lacks ts"):
        read_events_csv(io.StringIO("visitor,item,time\nu,i,1\n"))
    with pytest.raises(ValueError, match="empty file"):
        read_events_csv(io.StringIO(""))
    path = tmp_path / "binary.csv"
    path.write_bytes(b"visitor,item,ts\n\xff\xfe,x,1\n")
    with pytest.raises(ValueError, match="not a readable CSV"):
        read_events_csv(path)
    with pytest.raises(FileNotFoundError):
        read_events_csv(tmp_path / "missing.csv")


def test_blank_lines_are_skipped():
    assert len(read_events_csv(io.StringIO("visitor,item,ts\n\nu,i,1\n\n"))) == 1


def test_parse_ts():
    assert parse_ts(" 1700000000 ") == 1_700_000_000.0
    assert parse_ts("2010-12-01 08:26:00") == 1_291_191_960.0
    assert parse_ts("2010-12-01T16:26:00+08:00") == 1_291_191_960.0
