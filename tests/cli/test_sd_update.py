"""`leo sd update` (file and --set), its refusals, and the record `leo audit` shows."""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml

from tests.cli.helpers import Leo, assert_one_error_line
from tests.cli.test_sd import hardening_spec
from tests.support.factories import unique_key


@pytest.fixture
async def sd_key(leo: Leo, tmp_path: Path) -> str:
    key = unique_key("SD-EDIT")
    spec = tmp_path / "sd.yaml"
    spec.write_text(yaml.safe_dump(hardening_spec(key)))
    created = await leo("sd", "create", str(spec))
    assert created.exit_code == 0, created.output
    return key


async def snapshot(pool: asyncpg.Pool, key: str) -> dict[str, Any]:
    """Everything an edit could touch, to show that a refusal changed nothing."""
    row = await pool.fetchrow(
        "SELECT to_jsonb(sd) - 'updated_at' AS sd, "
        "(SELECT to_jsonb(p) - 'updated_at' FROM product_requirements_v2 p WHERE p.sd_id = sd.id) "
        "AS prd, (SELECT jsonb_agg(to_jsonb(s) - 'updated_at' ORDER BY story_key) "
        "FROM user_stories s WHERE s.sd_id = sd.id) AS stories, "
        "(SELECT count(*) FROM sd_changes c WHERE c.sd_id = sd.id) AS edits "
        "FROM strategic_directives_v2 sd WHERE sd_key = $1",
        key,
    )
    assert row is not None
    return dict(row)


async def test_sd_update_from_a_file_changes_the_sd_prd_and_stories_and_records_it(
    leo: Leo, sd_key: str, tmp_path: Path
) -> None:
    fix = tmp_path / "fix.yaml"
    fix.write_text(
        yaml.safe_dump(
            {
                "title": "Harden the LEO handoffs",
                "success_criteria": ["Every handoff is atomic", "Failures keep their audit row"],
                "prd": {"executive_summary": "One PL/pgSQL call per handoff."},
                "stories": [
                    {"story_key": f"{sd_key}:US-001", "acceptance_criteria": ["All or nothing"]},
                    {"title": "Rejections read as decisions"},
                ],
            }
        )
    )

    result = await leo("sd", "update", sd_key, str(fix), "--actor", "alice", "--json")

    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["success"] and data["actor"] == "alice"
    assert data["transition_version"] == 2
    changes = data["changes"]
    assert changes["sd.title"] == {
        "from": "Harden the LEO handoff infrastructure",
        "to": "Harden the LEO handoffs",
    }
    assert changes["sd.success_criteria"]["to"][1] == "Failures keep their audit row"
    assert changes["prd.executive_summary"]["to"] == "One PL/pgSQL call per handoff."
    assert changes[f"stories.{sd_key}:US-001.acceptance_criteria"] == {
        "from": ["All steps commit or none do"],
        "to": ["All or nothing"],
    }
    added = changes[f"stories.{sd_key}:US-003"]
    assert added["from"] is None and added["to"]["title"] == "Rejections read as decisions"
    assert "sd.scope" not in changes  # fields the file leaves out keep their values

    shown = await leo.json("sd", "show", sd_key)
    assert shown["sd"]["title"] == "Harden the LEO handoffs"
    assert shown["sd"]["scope"] == "Transition functions, audit trail, session claims"
    assert shown["sd"]["transition_version"] == 2
    assert shown["prd"]["executive_summary"] == "One PL/pgSQL call per handoff."
    assert [s["story_key"] for s in shown["stories"]] == [f"{sd_key}:US-00{n}" for n in (1, 2, 3)]

    audit = await leo.json("audit", sd_key)
    assert audit["entries"] == []
    (edit,) = audit["edits"]
    assert (edit["actor"], edit["version_before"], edit["version_after"]) == ("alice", 1, 2)
    assert edit["changes"] == changes
    text = await leo("audit", sd_key)
    assert "0 attempts, 0 failed, 1 edit" in text.stdout
    assert "SD edits (leo sd update)" in text.stdout and "alice" in text.stdout
    assert "sd.title" in text.stdout and "Harden the LEO handoffs" in text.stdout


async def test_sd_update_set_expressions_cover_text_json_lists_nested_fields_and_stories(
    leo: Leo, sd_key: str
) -> None:
    result = await leo(
        "sd",
        "update",
        sd_key,
        "--set",
        "scope=Only the EXEC phase",
        "--set",
        "success_criteria+=Rejections read as decisions",
        "--set",
        "success_metrics:=[]",
        "--set",
        "metadata.owner.team=platform",
        "--set",
        "prd.title=The hardening PRD",
        "--set",
        f"stories[{sd_key}:US-002].title=Failed attempts stay audited",
        "--set",
        "category:=null",
    )

    assert result.exit_code == 0, result.output
    assert f"Updated {sd_key} by {getpass.getuser()}: 7 changes" in result.stdout
    sd = (await leo.json("sd", "show", sd_key))["sd"]
    assert sd["scope"] == "Only the EXEC phase"
    assert sd["success_criteria"][-1] == "Rejections read as decisions"
    assert len(sd["success_criteria"]) == 3
    assert sd["success_metrics"] == []
    assert sd["metadata"] == {"source": "plan", "owner": {"team": "platform"}}
    assert sd["category"] is None

    again = await leo("sd", "update", sd_key, "--set", "scope=Only the EXEC phase")
    assert again.exit_code == 0, again.output
    assert "Nothing to change" in again.stdout
    assert len((await leo.json("audit", sd_key))["edits"]) == 1


@pytest.mark.parametrize(
    "args",
    [
        ["--set", "current_phase=EXEC"],
        ["--set", "status=active"],
        ["--set", "transition_version:=7"],
        ["--set", "prd.status=approved"],
        ["--set", "title=New", "--set", "status=completed"],
    ],
)
async def test_sd_update_refuses_transition_owned_fields_and_changes_nothing(
    leo: Leo, sd_key: str, db_pool: asyncpg.Pool, args: list[str]
) -> None:
    before = await snapshot(db_pool, sd_key)

    result = await leo("sd", "update", sd_key, *args)

    field = args[-1].split("=")[0].rstrip(":")
    line = assert_one_error_line(result, 2, "TRANSITION_OWNED_FIELD", field)
    assert "changes only through transitions" in line and "nothing was changed" in line
    assert await snapshot(db_pool, sd_key) == before


async def test_sd_update_refuses_what_sd_create_refuses(
    leo: Leo, sd_key: str, db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    before = await snapshot(db_pool, sd_key)

    bad_type = await leo("sd", "update", sd_key, "--set", "sd_type=nonsense")
    assert bad_type.exit_code == 2, bad_type.output
    assert bad_type.stderr.startswith("leo: invalid SD update from --set (1 problem):")
    assert "sd_type: Input should be 'feature'" in bad_type.stderr
    assert "(got 'nonsense')" in bad_type.stderr

    empty_title = await leo("sd", "update", sd_key, "--set", "title=")
    assert empty_title.exit_code == 2 and "title" in empty_title.stderr

    owned_in_file = tmp_path / "owned.json"
    owned_in_file.write_text(json.dumps({"title": "x", "current_phase": "EXEC"}))
    refused = await leo("sd", "update", sd_key, str(owned_in_file))
    assert_one_error_line(refused, 2, "TRANSITION_OWNED_FIELD: current_phase")

    typo = tmp_path / "typo.yaml"
    typo.write_text("titel: Misspelt\n")
    misspelt = await leo("sd", "update", sd_key, str(typo))
    assert misspelt.exit_code == 2 and "titel" in misspelt.stderr

    rename = await leo("sd", "update", sd_key, "--set", "sd_key=SD-OTHER")
    assert_one_error_line(rename, 2, "INVALID_INPUT", "sd_key identifies the SD")

    not_json = await leo("sd", "update", sd_key, "--set", "success_criteria:=[oops")
    assert_one_error_line(not_json, 2, "success_criteria:=", "not JSON")

    missing = await leo("sd", "update", "SD-NOPE-404", "--set", "title=x")
    assert_one_error_line(missing, 2, "SD_NOT_FOUND")

    nothing = await leo("sd", "update", sd_key)
    assert_one_error_line(nothing, 2, "--set")

    assert await snapshot(db_pool, sd_key) == before


async def test_sd_update_help_documents_the_set_syntax(leo: Leo) -> None:
    result = await leo("sd", "update", "--help")
    assert result.exit_code == 0
    for fragment in ("FIELD:=JSON", "FIELD+=TEXT", "metadata.owner", "stories[SD-X:US-002]"):
        assert fragment in result.stdout, fragment
