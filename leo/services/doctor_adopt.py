"""`leo doctor`'s PostgreSQL checks in adopt mode (LEO_SCHEMA_MODE=adopt, docs/adoption.md):
the adoption current (its migrations and functions), their schema's fingerprint unchanged
since `leo db adopt` recorded it, and LEO's actor still registered in their allow-list."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from db import health
from db.adopt.check import check_adoption, schema_fingerprint
from db.adopt.runner import adoption_plan, adoption_state
from db.migrate import MigrationError
from leo.services.doctor_report import Check, not_checked

if TYPE_CHECKING:
    import asyncpg

ADOPT_CHECKS = ("postgres.adoption", "postgres.fingerprint", "postgres.actor")


def changed_parts(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Which tables (or "functions") differ between two recorded shapes."""
    return sorted(k for k in stored.keys() | current.keys() if stored.get(k) != current.get(k))


async def check_adopted(conn: asyncpg.Connection, where: str, actor: str) -> list[Check]:
    version, ssl = await health.server_info(conn)
    checks = [
        Check(
            name="postgres.connection",
            ok=True,
            detail=f"{where} (PostgreSQL {version}, {'TLS' if ssl else 'no TLS'})",
        )
    ]
    state = await adoption_state(conn)
    if state is None:
        checks.append(
            Check(
                name="postgres.adoption",
                ok=False,
                detail="LEO_SCHEMA_MODE=adopt, but this database has no schema leo",
                fix="leo db adopt --check, then leo db adopt (docs/adoption.md)",
            )
        )
        return checks + [not_checked(n, "not adopted") for n in ADOPT_CHECKS[1:]]
    current = await check_adoption(conn, actor)
    try:
        plan = await adoption_plan(conn, current, actor)
        pending = plan.migrations + (
            ["the views and functions of schema leo"] if plan.functions else []
        )
        checks.append(
            Check(
                name="postgres.adoption",
                ok=not pending,
                detail=f"pending: {', '.join(pending)}" if pending else "adoption up to date",
                fix="leo db adopt" if pending else "",
            )
        )
    except MigrationError as exc:
        checks.append(
            Check(name="postgres.adoption", ok=False, detail=str(exc), fix="leo db adopt")
        )
    stored_shape = state["shape"]
    moved = schema_fingerprint(stored_shape) != current.fingerprint
    checks.append(
        Check(
            name="postgres.fingerprint",
            ok=not moved,
            detail=(
                "their schema changed since it was adopted: "
                + ", ".join(changed_parts(stored_shape, current.shape))
                if moved
                else f"their schema is as adopted ({state['fingerprint'][:12]})"
            ),
            fix="leo db adopt --check; if it passes, leo db adopt records the new fingerprint"
            if moved
            else "",
        )
    )
    actor_findings = [f for f in current.findings if f.topic == "actor"]
    blocked = [f for f in actor_findings if f.level == "blocker"]
    checks.append(
        Check(
            name="postgres.actor",
            ok=not blocked,
            detail=blocked[0].detail if blocked else f"{actor} is registered in their allow-list",
            fix=blocked[0].fix if blocked else "",
        )
    )
    return checks
