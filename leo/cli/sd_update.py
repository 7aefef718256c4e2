"""`leo sd update`: fix an SD without SQL. A thin command over `leo.services.sd_edit`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.markup import escape

from leo.cli.common import CliError, ExitCode, JsonFlag, SdArg, run_with_db, settings
from leo.cli.render import print_json, stdout
from leo.cli.render_edits import render_changes
from leo.cli.sd import sd_app, validation_message, yaml_problem
from leo.domain.refusals import RefusalCode

SET_HELP = """\
FIELD=TEXT sets text; FIELD:=JSON sets a JSON value (lists, objects, numbers, null);
FIELD+=TEXT appends text to a list, FIELD+:=JSON a JSON value. Nested fields with '.':
metadata.owner=alice, prd.title=..., and stories by key: stories[SD-X:US-002].title=...
(a new key adds a story). Repeatable; applied in order, after FILE."""

# Refusals that mean "this edit cannot apply as asked"; CONCURRENT_LOCK is worth a retry.
EDIT_BAD_INPUT = {
    RefusalCode.SD_NOT_FOUND,
    RefusalCode.INVALID_INPUT,
    RefusalCode.TRANSITION_OWNED_FIELD,
    RefusalCode.VERSION_CONFLICT,
}


@sd_app.command(
    "update",
    epilog=(
        "Examples:\n\n"
        "    leo sd update SD-X fix.yaml --actor alice\n\n"
        "    leo sd update SD-X --set scope='Only the EXEC phase' "
        "--set 'success_criteria+=Audit rows for failures' --set metadata.owner=alice\n\n"
        '    leo sd update SD-X --set \'stories[SD-X:US-001].acceptance_criteria:=["a", "b"]\''
    ),
)
def sd_update(
    sd: SdArg,
    file: Annotated[
        Path | None,
        typer.Argument(
            metavar="[FILE]",
            help="A JSON or YAML file in the shape `leo sd create` reads; the fields it gives "
            "replace the SD's, the others keep their values. Stories are matched by story_key.",
            show_default=False,
        ),
    ] = None,
    sets: Annotated[
        list[str] | None,
        typer.Option("--set", metavar="FIELD=VALUE", help=SET_HELP, show_default=False),
    ] = None,
    actor: Annotated[
        str | None,
        typer.Option("--actor", help="Who makes the change, for the record. Default: the OS user."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Fix an SD without SQL: title, scope, success criteria, metadata, its PRD and stories.

    The result gets the same validation as `leo sd create`. current_phase, status and
    transition_version (and the status of an existing PRD or story) change only through
    transitions: naming them is refused and changes nothing. The edit is one transaction: it
    takes the SD's lock like a transition, fails if the SD changed since it was read, bumps
    transition_version (so a handoff that judged the old content does not commit), and records
    what changed, who changed it and when; `leo audit SD` shows the record.
    """
    from pydantic import ValidationError

    from leo.services.sd_edit import SdEditError, update_sd

    if file is None and not sets:
        raise CliError("give a FILE, or one or more --set FIELD=VALUE", ExitCode.BAD_INPUT)
    data = read_sd_file(file) if file is not None else None

    async def work(conn: Any) -> Any:
        try:
            return await update_sd(conn, sd, data=data, sets=sets or (), actor=actor)
        except SdEditError as exc:
            code = ExitCode.BAD_INPUT if exc.code in EDIT_BAD_INPUT else ExitCode.ENVIRONMENT
            raise CliError(f"{exc.code}: {exc.message}", code) from exc
        except ValidationError as exc:
            raise CliError(
                validation_message(file or Path("--set"), exc).replace(
                    "invalid SD file", "invalid SD update from", 1
                ),
                ExitCode.BAD_INPUT,
            ) from exc

    result = run_with_db(settings(), work)
    if as_json:
        print_json(result.model_dump(mode="json"))
        return
    console = stdout()
    if not result.changes:
        console.print(f"Nothing to change: {escape(result.sd_key or sd)} already reads so.")
        return
    console.print(
        f"Updated [bold]{escape(result.sd_key or sd)}[/bold] by {escape(result.actor or '?')}: "
        f"{len(result.changes)} {'change' if len(result.changes) == 1 else 'changes'}, "
        f"transition_version now {result.transition_version}."
    )
    console.print(render_changes(result.changes))


def read_sd_file(path: Path) -> dict[str, Any]:
    """A JSON or YAML file holding one mapping of fields (partial SD)."""

    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CliError(f"{path} is not a UTF-8 text file", ExitCode.BAD_INPUT) from exc
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}", ExitCode.BAD_INPUT) from exc
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise CliError(
            f"{path} is not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'}: "
            f"{yaml_problem(exc)}",
            ExitCode.BAD_INPUT,
        ) from exc
    if not isinstance(data, dict):
        held = "nothing" if data is None else f"a {type(data).__name__}"
        raise CliError(
            f"{path} must hold a mapping of SD fields (title, scope, ...); it holds {held}",
            ExitCode.BAD_INPUT,
        )
    return data
