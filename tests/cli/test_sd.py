from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml

from tests.cli.helpers import Leo, assert_one_error_line, stderr_lines
from tests.support.factories import create_sd, unique_key


def hardening_spec(sd_key: str) -> dict[str, Any]:
    return {
        "sd_key": sd_key,
        "title": "Harden the LEO handoff infrastructure",
        "sd_type": "infrastructure",
        "priority": "high",
        "description": "Make every handoff atomic, idempotent and audited.",
        "scope": "Transition functions, audit trail, session claims",
        "rationale": "Half-applied handoffs left SDs in impossible states.",
        "category": "infrastructure",
        "success_criteria": ["Every handoff is atomic", "Every attempt is audited"],
        "success_metrics": [{"metric": "half-applied handoffs", "target": 0}],
        "metadata": {"source": "plan", "owner": {"team": "leo"}},
        "prd": {
            "title": "Hardening PRD",
            "executive_summary": "Atomic transitions over PostgreSQL functions.",
            "functional_requirements": ["FR-1 atomic transitions", "FR-2 audit trail"],
            "test_scenarios": [{"id": "TS-1", "scenario": "failure rolls back"}],
        },
        "stories": [
            {
                "title": "Atomic EXEC-TO-PLAN",
                "acceptance_criteria": ["All steps commit or none do"],
            },
            {
                "title": "Failed attempts keep their audit row",
                "acceptance_criteria": ["error_details has failed_step"],
                "status": "ready",
                "e2e_test_path": "tests/db/test_exec_to_plan_function.py",
            },
        ],
    }


async def count_rows(pool: asyncpg.Pool, sd_key: str) -> tuple[int, int, int]:
    row = await pool.fetchrow(
        "SELECT (SELECT count(*) FROM strategic_directives_v2 WHERE sd_key = $1) AS sds, "
        "(SELECT count(*) FROM product_requirements_v2 WHERE id = 'PRD-' || $1) AS prds, "
        "(SELECT count(*) FROM user_stories WHERE story_key LIKE $1 || ':%') AS stories",
        sd_key,
    )
    assert row is not None
    return (row["sds"], row["prds"], row["stories"])


def assert_matches_spec(shown: dict[str, Any], spec: dict[str, Any]) -> None:
    sd = shown["sd"]
    for name in (
        "sd_key",
        "title",
        "sd_type",
        "priority",
        "description",
        "scope",
        "rationale",
        "category",
        "success_criteria",
        "success_metrics",
        "metadata",
    ):
        assert sd[name] == spec[name], name
    assert sd["id"] == spec.get("id", spec["sd_key"])
    assert (sd["status"], sd["current_phase"], sd["transition_version"]) == (
        "draft",
        "LEAD_APPROVAL",
        1,
    )
    prd = shown["prd"]
    assert prd["id"] == spec["prd"].get("id", f"PRD-{spec['sd_key']}")
    assert prd["sd_id"] == sd["id"]
    for name in ("title", "executive_summary", "functional_requirements", "test_scenarios"):
        assert prd[name] == spec["prd"][name], name
    assert prd["status"] == "draft"
    stories = shown["stories"]
    assert len(stories) == len(spec["stories"])
    for n, (story, wanted) in enumerate(zip(stories, spec["stories"], strict=True), start=1):
        assert story["story_key"] == wanted.get("story_key", f"{spec['sd_key']}:US-{n:03d}")
        assert story["title"] == wanted["title"]
        assert story["acceptance_criteria"] == wanted["acceptance_criteria"]
        assert story["status"] == wanted.get("status", "draft")
        assert story["e2e_test_path"] == wanted.get("e2e_test_path")
        assert (story["sd_id"], story["prd_id"]) == (sd["id"], prd["id"])


async def test_sd_create_from_yaml_round_trips_through_show_json(
    leo: Leo, tmp_path: Path, db_pool: asyncpg.Pool
) -> None:
    spec = hardening_spec(unique_key("SD-LEO-INFRA"))
    path = tmp_path / "sd.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))

    created = await leo("sd", "create", str(path))
    assert created.exit_code == 0, created.output
    assert f"Created {spec['sd_key']} with a PRD and 2 stories." in created.stdout
    assert await count_rows(db_pool, spec["sd_key"]) == (1, 1, 2)

    assert_matches_spec(await leo.json("sd", "show", spec["sd_key"]), spec)


async def test_sd_create_from_json_with_explicit_ids_round_trips(
    leo: Leo, tmp_path: Path, db_pool: asyncpg.Pool
) -> None:
    sd_key = unique_key("SD-JSON")
    spec = hardening_spec(sd_key)
    spec["id"] = str(uuid.uuid4())
    spec["prd"]["id"] = f"PRD-CUSTOM-{sd_key}"
    spec["stories"] = [
        {"story_key": f"{sd_key}:US-010", "title": "Ten", "acceptance_criteria": ["a"]},
        {"story_key": f"{sd_key}:US-020", "title": "Twenty", "acceptance_criteria": []},
    ]
    path = tmp_path / "sd.json"
    path.write_text(json.dumps(spec))

    created = await leo.json("sd", "create", str(path))
    assert_matches_spec(created, spec)
    # The SD is found by its canonical id as well as by its key, with the same content.
    assert await leo.json("sd", "show", spec["id"]) == created
    assert await leo.json("sd", "show", sd_key) == created


async def test_sd_show_prints_fields_prd_and_stories(leo: Leo, tmp_path: Path) -> None:
    spec = hardening_spec(unique_key("SD-SHOW"))
    path = tmp_path / "sd.yml"
    path.write_text(yaml.safe_dump(spec))
    assert (await leo("sd", "create", str(path))).exit_code == 0

    shown = await leo("sd", "show", spec["sd_key"])
    assert shown.exit_code == 0, shown.output
    text = shown.stdout
    for fragment in (
        spec["sd_key"],
        spec["title"],
        "infrastructure",
        "draft / LEAD_APPROVAL",
        "- Every handoff is atomic",
        f"PRD PRD-{spec['sd_key']}",
        "Hardening PRD",
        "- FR-2 audit trail",
        "User stories (2)",
        f"{spec['sd_key']}:US-001",
        "Failed attempts keep their audit row",
        "tests/db/test_exec_to_plan_function.py",
    ):
        assert fragment in text, fragment


INVALID_FILES: dict[str, tuple[str, dict[str, Any], list[str]]] = {
    "bad sd_type": ("sd.yaml", {"sd_type": "moonshot"}, ["sd_type", "'moonshot'"]),
    "missing title": ("sd.json", {"title": None}, ["title: Field required"]),
    "story key malformed": (
        "sd.yaml",
        {"stories": [{"story_key": "us-1", "title": "Lower case key"}]},
        ["stories[0].story_key: must look like SD-KEY:US-001", "(got 'us-1')"],
    ),
    "unknown field": ("sd.yaml", {"titel": "typo"}, ["titel: Extra inputs are not permitted"]),
    "prd without title": ("sd.yaml", {"prd": {"status": "draft"}}, ["prd.title: Field required"]),
}


@pytest.mark.parametrize("case", list(INVALID_FILES), ids=list(INVALID_FILES))
async def test_sd_create_refuses_an_invalid_file_naming_the_field_and_writes_nothing(
    leo: Leo, tmp_path: Path, db_pool: asyncpg.Pool, case: str
) -> None:
    filename, change, fragments = INVALID_FILES[case]
    spec = hardening_spec(unique_key("SD-BAD"))
    for name, value in change.items():
        if value is None:
            del spec[name]
        else:
            spec[name] = value
    path = tmp_path / filename
    path.write_text(json.dumps(spec) if filename.endswith(".json") else yaml.safe_dump(spec))

    result = await leo("sd", "create", str(path))

    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = stderr_lines(result)
    assert lines[0] == f"leo: invalid SD file {path} (1 problem):"
    for fragment in fragments:
        assert fragment in lines[1], lines
    assert "Traceback" not in result.output
    assert await count_rows(db_pool, spec["sd_key"]) == (0, 0, 0)


@pytest.mark.parametrize(
    "case",
    [
        ("sd.yaml", "sd_key: [unclosed\ntitle: x\n", "is not valid YAML: expected ',' or ']'"),
        ("sd.yaml", "\x00\x01 binary", "is not valid YAML"),
        ("sd.json", "{'sd_key': 'x'}", "is not valid JSON: Expecting property name"),
        ("sd.yaml", "just a sentence", "must hold one SD as a mapping of fields"),
        ("sd.yaml", "", "it holds nothing"),
        ("sd.yaml", "- sd_key: A\n- sd_key: B\n", "it holds a list"),
    ],
    ids=["broken-yaml", "binary", "broken-json", "scalar", "empty", "list"],
)
async def test_sd_create_refuses_a_file_that_is_not_one_sd(
    leo: Leo, tmp_path: Path, db_pool: asyncpg.Pool, case: tuple[str, str, str]
) -> None:
    filename, content, message = case
    before = await db_pool.fetchval("SELECT count(*) FROM strategic_directives_v2")
    path = tmp_path / filename
    path.write_text(content)

    result = await leo("sd", "create", str(path))

    assert_one_error_line(result, 2, str(path), message)
    assert await db_pool.fetchval("SELECT count(*) FROM strategic_directives_v2") == before


async def test_sd_create_refuses_a_missing_file(leo: Leo, tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    result = await leo("sd", "create", str(missing))
    assert_one_error_line(result, 2, f"cannot read {missing}: No such file or directory")


async def test_sd_create_refuses_a_taken_sd_key(
    leo: Leo, tmp_path: Path, db_pool: asyncpg.Pool
) -> None:
    existing = await create_sd(db_pool)
    spec = hardening_spec(existing.sd_key)
    path = tmp_path / "sd.yaml"
    path.write_text(yaml.safe_dump(spec))

    result = await leo("sd", "create", str(path))

    assert_one_error_line(result, 2, f"an SD with sd_key {existing.sd_key} already exists")
    assert await count_rows(db_pool, existing.sd_key) == (1, 0, 0)


async def test_sd_create_writes_nothing_when_a_later_row_is_refused(
    leo: Leo, tmp_path: Path, db_pool: asyncpg.Pool
) -> None:
    """The SD and PRD inserts succeed, the second story's key is taken: all of it rolls back."""
    other = await create_sd(db_pool, stories=[{"title": "Taken"}])
    spec = hardening_spec(unique_key("SD-ATOMIC"))
    spec["stories"][1]["story_key"] = other.story_keys[0]
    path = tmp_path / "sd.yaml"
    path.write_text(yaml.safe_dump(spec))

    result = await leo("sd", "create", str(path))

    assert_one_error_line(result, 2, "story key is already taken", other.story_keys[0])
    assert await count_rows(db_pool, spec["sd_key"]) == (0, 0, 0)
    assert (
        await db_pool.fetchval(
            "SELECT sd_id FROM user_stories WHERE story_key = $1", other.story_keys[0]
        )
        == other.id
    )


async def test_sd_show_refuses_an_unknown_sd(leo: Leo) -> None:
    result = await leo("sd", "show", "SD-DOES-NOT-EXIST'; DROP TABLE x; --")
    line = assert_one_error_line(result, 2)
    assert line == "leo: SD not found: SD-DOES-NOT-EXIST'; DROP TABLE x; --"
