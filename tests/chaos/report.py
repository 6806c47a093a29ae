"""The results table of the fault suite.

``python -m tests.chaos.report RESULTS.jsonl`` prints the table of a run (one JSON object per
scenario, as the suite appends them to ``$TASKFLOW_CHAOS_RESULTS``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

COLUMNS = (
    ("scenario", "scenario"),
    ("accepted", "accepted"),
    ("succeeded", "succeeded"),
    ("failed", "failed"),
    ("cancelled", "cancelled"),
    ("re-run", "re-run"),
    ("lost", "lost"),
    ("double-recorded", "double-recorded"),
    ("recovery_s", "recovery s"),
    ("verdict", "verdict"),
)


def _cell(value: Any) -> str:
    return "—" if value is None else str(value)


def table(rows: Sequence[dict[str, Any]]) -> str:
    """A Markdown table (readable as plain text too)."""
    cells = [[_cell(r.get(key)) for key, _ in COLUMNS] for r in rows]
    heads = [title for _, title in COLUMNS]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(heads)]

    def line(values: Sequence[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"

    out = [line(heads), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(c) for c in cells]
    return "\n".join(out)


def read(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main(argv: Sequence[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.chaos.report RESULTS.jsonl", file=sys.stderr)
        return 2
    rows = read(Path(argv[0]))
    if not rows:
        print(f"{argv[0]}: no results", file=sys.stderr)
        return 1
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
