"""What a benchmark prints and writes: rich tables, and bench/results/<name>.json."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

RESULTS_DIR = Path(__file__).resolve().parent / "results"
# Wide enough for the tables when the output is a file or a pipe.
console = Console(width=None if sys.stdout.isatty() else 140)


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    out = Table(title=title, title_justify="left", header_style="bold")
    for i, name in enumerate(columns):
        out.add_column(name, justify="left" if i == 0 else "right")
    for row in rows:
        styled = []
        for cell in row:
            text = str(cell)
            if text == "PASS":
                text = "[green]PASS[/green]"
            elif text == "MISS":
                text = "[red]MISS[/red]"
            styled.append(text)
        out.add_row(*styled)
    return out


def show(*tables: Table) -> None:
    for t in tables:
        console.print(t)


def write_json(name: str, data: dict[str, Any], results_dir: Path | None = None) -> Path:
    directory = results_dir or RESULTS_DIR
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path


def envelope(name: str, quick: bool, data: dict[str, Any]) -> dict[str, Any]:
    """The JSON every benchmark writes: when, where, which sizes, then its own figures."""
    return {
        "benchmark": name,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "size": "quick" if quick else "full",
        **data,
    }
