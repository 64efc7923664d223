"""The server-side SVG chart: well-formed, one bar per point, the CTR line, everything escaped."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from adserver.console.chart import Point, nice_max, render

NS = "{http://www.w3.org/2000/svg}"


def test_bars_line_and_axes():
    points = [Point(f"2026-03-{d:02d}", f"03-{d:02d}", 0.01 * d, d) for d in range(1, 11)]
    root = ET.fromstring(str(render(points)))
    bars = root.findall(f"{NS}rect[@class='bar']")
    assert len(bars) == 10
    heights = [float(b.get("height")) for b in bars]
    assert heights == sorted(heights) and heights[-1] > heights[0] > 0
    line = root.find(f"{NS}polyline[@class='ctr-line']")
    ys = [float(xy.split(",")[1]) for xy in line.get("points").split()]
    assert ys == sorted(ys, reverse=True)  # growing CTR goes up the chart
    assert bars[2].find(f"{NS}title").text == "2026-03-03: CTR 3%, 3 conversions"
    assert root.get("viewBox") == "0 0 720 260" and root.get("width") == "100%"


def test_missing_ctr_and_empty_charts():
    root = ET.fromstring(str(render([Point("a", "a", None, 0), Point("b", "b", 0.5, 2)])))
    assert len(root.find(f"{NS}polyline").get("points").split()) == 1
    assert "No data" in str(render([]))


def test_labels_are_escaped():
    svg = str(render([Point("<script>", "<b>", 0.1, 1)], title='"><script>'))
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    ET.fromstring(svg)


def test_nice_axis_maximum():
    assert [nice_max(v) for v in (0, 0.0123, 3, 17, 250)] == [1.0, 0.02, 4, 20, 400]
