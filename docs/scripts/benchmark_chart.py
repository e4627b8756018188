"""Draw the Performance page's bar chart from the benchmark results, as a standalone SVG.

For every operation that the benchmarks compare with OpenInference or
OpenTelemetry, one group of horizontal bars: tracectrl's median time and each
alternative's, on one scale, shorter is faster.  No plotting library: the SVG
is written by hand, so the docs need nothing beyond the standard library.

``tests/benchmarks/run.py --write-docs`` redraws it; to redraw it from the
committed results alone::

    python docs/scripts/benchmark_chart.py
"""

from __future__ import annotations

import argparse
import json
from html import escape
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "tests" / "benchmarks" / "results.json"
CHART = ROOT / "docs" / "pages" / "assets" / "benchmarks.svg"

# Only libraries that do the same job as tracectrl belong in the chart; the
# hand-written baselines are in the table.
ALTERNATIVES = ("OpenInference", "OpenTelemetry")
COLOURS = {"tracectrl": "#3f51b5", "OpenInference": "#ef6c00", "OpenTelemetry": "#7b7b7b"}

WIDTH = 720
LABEL_WIDTH = 250
BAR_HEIGHT = 16
BAR_GAP = 4
GROUP_GAP = 18
TOP = 46
VALUE_WIDTH = 70


def _library(compared_with: str) -> str | None:
    return next((name for name in ALTERNATIVES if compared_with.startswith(name)), None)


def _plain(operation: str) -> str:
    return operation.replace("`", "")


def _duration(ns: float) -> str:
    return f"{ns / 1000:.2f} µs" if ns >= 1000 else f"{ns:.0f} ns"


def groups(summary: dict[str, Any]) -> list[tuple[str, list[tuple[str, str, float]]]]:
    """Return (operation, [(library, label, median ns)]) for each compared operation."""
    found: dict[str, list[tuple[str, str, float]]] = {}
    for result in summary["results"]:
        library = _library(result.get("compared_with", ""))
        if library is None or "skipped" in result:
            continue
        bars = found.setdefault(result["operation"], [])
        if not bars:
            bars.append(("tracectrl", "tracectrl", result["ours_ns"]["median"]))
        bars.append((library, result["compared_with"], result["theirs_ns"]["median"]))
    return list(found.items())


def svg(summary: dict[str, Any]) -> str:
    """Return the chart as an SVG document."""
    data = groups(summary)
    longest = max(ns for _, bars in data for _, _, ns in bars)
    scale = (WIDTH - LABEL_WIDTH - VALUE_WIDTH - 10) / longest
    height = TOP + sum(len(bars) * (BAR_HEIGHT + BAR_GAP) + GROUP_GAP for _, bars in data)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
        f'width="100%" role="img" font-family="sans-serif" font-size="12">',
        "<title>Median time per operation: tracectrl, OpenInference, OpenTelemetry "
        "(shorter is faster)</title>",
        f'<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>',
        '<text x="0" y="16" font-size="14" font-weight="bold" fill="#222">'
        "Median time per operation (shorter is faster)</text>",
    ]
    x = 0
    for name, colour in COLOURS.items():
        parts.append(f'<rect x="{x}" y="26" width="12" height="12" fill="{colour}"/>')
        parts.append(f'<text x="{x + 16}" y="36" fill="#222">{name}</text>')
        x += 16 + 8 * len(name) + 24
    y = TOP
    for operation, bars in data:
        label_y = y + (len(bars) * (BAR_HEIGHT + BAR_GAP)) / 2 + 4
        parts.append(
            f'<text x="{LABEL_WIDTH - 8}" y="{label_y:.0f}" text-anchor="end" fill="#222">'
            f"{escape(_wrap(_plain(operation)))}</text>"
        )
        for library, label, ns in bars:
            width = max(1.0, ns * scale)
            parts.append(
                f'<rect x="{LABEL_WIDTH}" y="{y}" width="{width:.1f}" height="{BAR_HEIGHT}" '
                f'fill="{COLOURS[library]}"><title>{escape(label)}: {_duration(ns)}</title></rect>'
            )
            parts.append(
                f'<text x="{LABEL_WIDTH + width + 4:.1f}" y="{y + BAR_HEIGHT - 4}" '
                f'fill="#222">{_duration(ns)}</text>'
            )
            y += BAR_HEIGHT + BAR_GAP
        y += GROUP_GAP
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _wrap(label: str, width: int = 38) -> str:
    return label if len(label) <= width else label[: width - 1] + "…"


def write(summary: dict[str, Any], chart: Path = CHART) -> Path:
    chart.parent.mkdir(parents=True, exist_ok=True)
    chart.write_text(svg(summary), encoding="utf-8")
    return chart


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--output", type=Path, default=CHART)
    args = parser.parse_args()
    summary = json.loads(args.results.read_text(encoding="utf-8"))
    print(f"wrote {write(summary, args.output)}")


if __name__ == "__main__":
    main()
