"""scripts/uci_to_events.py: the UCI Online Retail file to an events CSV the evaluation reads."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

from models.events_csv import Event, read_events_csv

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "uci_to_events.py"
SAMPLE = """InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country
536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6.0,2010-12-01 08:26:00,2.55,17850.0,United Kingdom
536365,71053,WHITE  METAL LANTERN ,6,12/1/2010 8:26,3.39,17850,United Kingdom
536366,22633,HAND WARMER UNION JACK,6,12/1/2010 8:28,1.85,,United Kingdom
C536379,D,Discount,-1,12/1/2010 9:41,27.5,14527.0,United Kingdom
536380,22086,"PAPER CHAIN KIT, 50'S CHRISTMAS",0,12/1/2010 9:45,2.95,14527.0,United Kingdom
536381,22086,"PAPER CHAIN KIT, 50'S CHRISTMAS",2,12/9/2011 12:50,2.95,14527.0,United Kingdom
"""


def load_script():
    spec = importlib.util.spec_from_file_location("uci_to_events", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_converts_known_customers_purchases_only(tmp_path: Path):
    src, dst = tmp_path / "retail.csv.gz", tmp_path / "events.csv"
    src.write_bytes(gzip.compress(SAMPLE.encode()))
    counts = load_script().convert(str(src), str(dst))
    assert counts["written"] == 3 and counts["no CustomerID"] == 1
    assert counts["cancelled invoice"] == 1 and counts["Quantity <= 0"] == 1
    assert read_events_csv(dst) == [
        Event("17850", "85123A", 1_291_191_960.0, "purchase", "WHITE HANGING HEART T-LIGHT HOLDER"),
        Event("17850", "71053", 1_291_191_960.0, "purchase", "WHITE METAL LANTERN"),  # both date formats
        Event("14527", "22086", 1_323_435_000.0, "purchase", "PAPER CHAIN KIT, 50'S CHRISTMAS"),
    ]


def test_main_reports_counts_and_usage(tmp_path: Path, capsys):
    script = load_script()
    assert script.main([]) == 2
    src = tmp_path / "retail.csv"
    src.write_text(SAMPLE)
    assert script.main([str(src), str(tmp_path / "out.csv")]) == 0
    assert "6 lines read, 3 events written" in capsys.readouterr().err
