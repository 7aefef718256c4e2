"""How `leo sd update` and `leo audit` show the edits of an SD's content."""

from __future__ import annotations

import json
from datetime import UTC
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from db.sd_updates import SdChangeRecord


def short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 120 else text[:117] + "..."


def render_changes(changes: dict[str, Any]) -> Table:
    table = Table()
    for column in ("Field", "Before", "After"):
        table.add_column(column, overflow="fold")
    for field, change in changes.items():
        before = "-" if change.get("from") is None else short(change["from"])
        table.add_row(escape(field), escape(before), escape(short(change.get("to"))))
    return table


def render_edits(console: Console, edits: list[SdChangeRecord]) -> None:
    """The `leo audit` section for content edits, oldest first."""
    if not edits:
        return
    table = Table(title="SD edits (leo sd update), oldest first", title_justify="left")
    for column in ("When", "Actor", "Version", "Field", "Before", "After"):
        table.add_column(column, overflow="fold")
    for edit in edits:
        when = edit.changed_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        for n, (field, change) in enumerate(edit.changes.items()):
            before = "-" if change.get("from") is None else short(change["from"])
            table.add_row(
                when if n == 0 else "",
                escape(f"{edit.actor} (role {edit.db_role or '?'})") if n == 0 else "",
                f"{edit.version_before} -> {edit.version_after}" if n == 0 else "",
                escape(field),
                escape(before),
                escape(short(change.get("to"))),
            )
    console.print(table)
