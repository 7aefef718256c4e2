"""What `leo doctor` reports: one finding per check, with the fix to apply."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

Level = Literal["error", "warning"]


class Check(BaseModel):
    name: str
    ok: bool
    level: Level = "error"
    detail: str
    fix: str = ""


class DoctorReport(BaseModel):
    ok: bool
    checks: list[Check]


def reason_of(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def not_checked(name: str, why: str) -> Check:
    return Check(name=name, ok=False, detail=f"not checked: {why}", fix="fix the check above")
