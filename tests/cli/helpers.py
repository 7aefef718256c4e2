"""Runs the `leo` CLI in-process for the CLI tests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from typer.testing import CliRunner, Result

from leo.cli import app


@dataclass
class Leo:
    """`leo ARGS...` in-process with a fixed environment (LEO_DATABASE_URL and friends).

    Commands call `asyncio.run`, which cannot run inside the test's event loop, so each
    invocation runs in a worker thread.
    """

    env: dict[str, str | None]
    runner: CliRunner = field(default_factory=CliRunner)

    async def __call__(self, *args: str, env: Mapping[str, str | None] | None = None) -> Result:
        merged = {**self.env, **(env or {})}
        return await asyncio.to_thread(self.runner.invoke, app, list(args), env=merged)

    async def json(self, *args: str) -> Any:
        result = await self(*args, "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)


def stderr_lines(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def assert_one_error_line(result: Result, code: int, *fragments: str) -> str:
    """The command failed with `code`, printed one "leo: " line and nothing on stdout."""
    assert result.exit_code == code, result.output
    lines = stderr_lines(result)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("leo: "), lines[0]
    assert "Traceback" not in result.output
    assert result.stdout == ""
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]
