"""`leo sd create` (an SD with its PRD and stories, from a file) and `leo sd show`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import asyncpg
import typer
import yaml
from pydantic import ValidationError

from db.sds import SdDetails, SdWriteError, create_sd, get_sd_details
from leo.cli.common import CliError, ExitCode, JsonFlag, SdArg, one_line, run_with_db, settings
from leo.cli.render import print_created_sd, print_json, render_sd, stdout
from leo.domain.sd_spec import SdSpec

sd_app = typer.Typer(
    help="Strategic directives: create one from a file, show one.", no_args_is_help=True
)

SD_FILE_EXAMPLE = """\
sd_key: SD-LEO-INFRA-HARDENING-001
title: Harden the LEO handoff infrastructure
sd_type: infrastructure          # feature, bugfix, database, security, ...
priority: high                   # critical, high, medium, low
description: ...
success_criteria: [Every handoff is atomic]
prd:
  title: Hardening PRD           # id defaults to PRD-<sd_key>
  functional_requirements: [Atomic transitions]
stories:
  - title: Atomic EXEC-TO-PLAN   # story_key defaults to <sd_key>:US-001, ...
    acceptance_criteria: [All steps commit or none do]
"""


ADOPT_CREATE_REFUSAL = (
    "adopt mode (LEO_SCHEMA_MODE=adopt): SDs, PRDs and stories are created with the "
    "EHG_Engineer tooling, whose creation rules apply to them; LEO runs their handoffs "
    "(docs/adoption.md)"
)


@sd_app.command(
    "create",
    epilog=f"Example (YAML):\n\n```yaml\n{SD_FILE_EXAMPLE}```",
)
def sd_create(
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE",
            help="A JSON (.json) or YAML (.yaml, .yml) file describing one SD.",
            show_default=False,
        ),
    ],
    as_json: JsonFlag = False,
) -> None:
    """Create an SD with its PRD and user stories from a JSON or YAML file.

    The file is validated first (unknown or misspelt fields are errors), and everything is
    written in one transaction: an invalid file or a taken key writes nothing (exit code 2).
    The SD starts as draft / LEAD_APPROVAL. Refused in adopt mode (LEO_SCHEMA_MODE=adopt):
    there, SDs, PRDs and stories are created with the EHG_Engineer tooling.
    """
    configured = settings()
    if configured.schema_mode == "adopt":
        raise CliError(ADOPT_CREATE_REFUSAL, ExitCode.BAD_INPUT)
    spec = load_sd_spec(file)
    details = run_with_db(configured, lambda conn: create_new_sd(conn, spec))
    if as_json:
        print_json(details.model_dump(mode="json"))
        return
    print_created_sd(stdout(), details)


async def create_new_sd(conn: asyncpg.Connection, spec: SdSpec) -> SdDetails:
    try:
        return await create_sd(conn, spec)
    except SdWriteError as exc:
        raise CliError(str(exc), ExitCode.BAD_INPUT) from exc


def load_sd_spec(path: Path) -> SdSpec:
    """Read and validate an SD file; a `CliError` (exit code 2) names what is wrong."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CliError(f"{path} is not a UTF-8 text file", ExitCode.BAD_INPUT) from exc
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}", ExitCode.BAD_INPUT) from exc
    data: object
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CliError(f"{path} is not valid JSON: {exc}", ExitCode.BAD_INPUT) from exc
    else:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise CliError(
                f"{path} is not valid YAML: {yaml_problem(exc)}", ExitCode.BAD_INPUT
            ) from exc
    if not isinstance(data, dict):
        held = "nothing" if data is None else f"a {type(data).__name__}"
        raise CliError(
            f"{path} must hold one SD as a mapping of fields (sd_key, title, ...); it holds {held}",
            ExitCode.BAD_INPUT,
        )
    try:
        return SdSpec.model_validate(data)
    except ValidationError as exc:
        raise CliError(validation_message(path, exc), ExitCode.BAD_INPUT) from exc


def yaml_problem(exc: Exception) -> str:
    problem = getattr(exc, "problem", None)
    mark = getattr(exc, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return one_line(str(exc))


def validation_message(path: Path, exc: ValidationError) -> str:
    errors = exc.errors()
    lines = [
        f"invalid SD file {path} ({len(errors)} {'problem' if len(errors) == 1 else 'problems'}):"
    ]
    for error in errors:
        where = "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"]
        ).lstrip(".")
        message = str(error["msg"]).removeprefix("Value error, ")
        value = error.get("input")
        got = ""
        if error["type"] != "missing" and isinstance(value, str | int | float | bool):
            shown = repr(value)
            got = f" (got {shown[:60]}{'...' if len(shown) > 60 else ''})"
        lines.append(f"  {where or 'file'}: {message}{got}")
    return "\n".join(lines)


@sd_app.command("show")
def sd_show(sd: SdArg, as_json: JsonFlag = False) -> None:
    """Show an SD: its fields, its PRD and its user stories."""
    details = run_with_db(settings(), lambda conn: get_sd_details(conn, sd))
    if details is None:
        raise CliError(f"SD not found: {sd}", ExitCode.BAD_INPUT)
    if as_json:
        print_json(details.model_dump(mode="json"))
        return
    render_sd(stdout(), details)
