"""Text PostgreSQL can store: no NUL character, in a string or anywhere in a JSON value.

PostgreSQL refuses U+0000 in `text` (SQLSTATE 22021) and in `jsonb` strings (22P05). A value
that reaches SQL with one fails the same way on every retry, so each model whose text reaches
SQL (EXEC's report, an SD's fields, an agent's output) refuses it at the door, naming where it
is; text LEO writes itself about such a value escapes it instead (`escape_nul`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, model_validator

NUL = "\x00"


def nul_path(value: Any) -> str | None:
    """Where the first NUL in a JSON-like value is (`evidence.log[2]`, `""` for the value
    itself, a key's path for a NUL in a key), or None. Iterative: any nesting depth."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, str):
            if NUL in node:
                return path
        elif isinstance(node, dict):
            for key, item in node.items():
                name = f"{path}.{key}" if path else str(key)
                if isinstance(key, str) and NUL in key:
                    return escape_nul(name)
                stack.append((name, item))
        elif isinstance(node, list | tuple):
            stack.extend((f"{path}[{n}]", item) for n, item in enumerate(node))
    return None


def refuse_nul(value: Any, what: str = "") -> Any:
    """`value` unchanged, or ValueError naming the field that holds a NUL."""
    path = nul_path(value)
    if path is None:
        return value
    where = ".".join(p for p in (what, path) if p) or "the text"
    raise ValueError(
        f"`{where}` contains a NUL character (\\u0000), which PostgreSQL cannot store: "
        "remove it (or escape it as text)"
    )


def escape_nul(text: str) -> str:
    return text.replace(NUL, "\\u0000")


class StorableModel(BaseModel):
    """A model whose input may carry no NUL anywhere: refused naming the field, before any
    other validation (so the refusal is a plain ValidationError, INVALID_INPUT on the wire)."""

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        return refuse_nul(data)
