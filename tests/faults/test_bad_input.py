"""Bad input across every interface: workflow input from the `temporal` CLI, `leo` arguments,
SD files, sub-agent output, gate output, and SQL function arguments. Each gets a clear error,
and nothing is written.

Property-based (hypothesis) where the input space is large; the fixed hostile cases of the
transition functions live in tests/db/test_hostile_input.py and are not repeated here.
"""

from __future__ import annotations

import asyncio
import json
import math
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from leo.dev_stack import Stack, temporal_binary
from leo.domain.gates import GateStatus
from leo.domain.sd_spec import SdSpec
from leo.domain.verdicts import AgentOutput, Verdict, validate_agent_output
from leo.gates.core import Gate, evaluate_gates, validate_gate_result
from tests.cli.helpers import Leo, assert_one_error_line
from tests.support import builders
from tests.support.db import GATE_SUMMARY, REFUSAL_CODES, function_name, snapshot
from tests.support.factories import START_STATE, SdFixture, create_sd, unique_key

HANDOFFS = list(START_STATE)
# Text as a shell, a JSON file or a driver can deliver it to us. NUL and lone surrogates are
# excluded here (PostgreSQL text cannot hold NUL; argv can carry undecodable bytes) and
# pinned by their own tests below.
TEXT = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"]), max_size=40)
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=10,
)
FAST = settings(max_examples=150, deadline=None)


# --- Workflow input from the `temporal` CLI ----------------------------------------------------


async def temporal_cli(stack: Stack, *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        str(temporal_binary()),
        *args,
        "--address",
        stack.temporal_address,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(30):
        out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode(errors="replace")


def garbage_inputs(sd_id: str) -> dict[str, list[str]]:
    """Name -> the --input values of one `temporal workflow start`. Several name a real SD, so
    that "nothing is written" means something."""
    return {
        "sd_id missing": ["{}"],
        "sd_id a number": ['{"sd_id": 5}'],
        "sd_id empty": ['{"sd_id": ""}'],
        "sd_id too long": [json.dumps({"sd_id": "S" * 201})],
        "input is null": ["null"],
        "input is an array": [json.dumps([sd_id])],
        "input is a string": [json.dumps(sd_id)],
        "session_id empty": [json.dumps({"sd_id": sd_id, "session_id": ""})],
        "options not an object": [json.dumps({"sd_id": sd_id, "options": ["SECURITY"]})],
        "extra_sub_agents a string": [
            json.dumps({"sd_id": sd_id, "options": {"extra_sub_agents": "SECURITY"}})
        ],
        "negative agent timeout": [
            json.dumps({"sd_id": sd_id, "options": {"sub_agent_timeout_seconds": -1}})
        ],
        "two inputs": [json.dumps({"sd_id": sd_id}), "{}"],
    }


@dataclass
class GarbageRun:
    workflow_id: str
    status: WorkflowExecutionStatus | None  # 8 s after the start
    failure: str | None  # the workflow's failure message, if it failed
    activities: int  # activities it scheduled


@dataclass
class GarbageRuns:
    sd: SdFixture
    before: Any
    runs: dict[str, GarbageRun]


@pytest.fixture(scope="module")
async def garbage_runs(
    stack: Stack, client: Client, db_pool: asyncpg.Pool, task_queue: str
) -> GarbageRuns:
    """Every garbage input started at once on the session worker; what became of each within
    8 s. Whatever still runs then is terminated, so nothing keeps retrying afterwards."""
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN", sd_type="infrastructure")
    before = await snapshot(db_pool, sd.id)
    ids = {}
    for name, inputs in garbage_inputs(sd.id).items():
        workflow_id = f"LEAD-TO-PLAN:bad-input-{uuid.uuid4().hex[:10]}"
        args = ["workflow", "start", "--type", "LEAD-TO-PLAN", "--task-queue", task_queue]
        for value in inputs:
            args += ["--input", value]
        code, out = await temporal_cli(stack, *args, "--workflow-id", workflow_id)
        assert code == 0, out  # well-formed JSON: the CLI starts it; the worker must refuse it
        ids[name] = workflow_id
    handles = {name: client.get_workflow_handle(wid) for name, wid in ids.items()}
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        statuses = [(await h.describe()).status for h in handles.values()]
        if WorkflowExecutionStatus.RUNNING not in statuses:
            break
        await asyncio.sleep(0.5)
    runs = {}
    for name, handle in handles.items():
        status = (await handle.describe()).status
        events = (await handle.fetch_history()).events
        failure = None
        if status == WorkflowExecutionStatus.FAILED:
            failure = events[-1].workflow_execution_failed_event_attributes.failure.message
        elif status == WorkflowExecutionStatus.RUNNING:
            await handle.terminate("bad-input test: stuck on its input")
        activities = sum(
            e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED for e in events
        )
        runs[name] = GarbageRun(handle.id, status, failure, activities)
    return GarbageRuns(sd, before, runs)


async def test_garbage_workflow_input_runs_no_activity_and_writes_nothing(
    garbage_runs: GarbageRuns, db_pool: asyncpg.Pool
) -> None:
    assert {name: run.activities for name, run in garbage_runs.runs.items() if run.activities} == {}
    after = await snapshot(db_pool, garbage_runs.sd.id)
    assert after == garbage_runs.before
    assert after.audits == garbage_runs.before.audits == []
    assert not await db_pool.fetchval(
        "SELECT count(*) FROM sub_agent_execution_results WHERE sd_id = $1", garbage_runs.sd.id
    )


async def test_garbage_workflow_input_fails_the_workflow_with_a_clear_error(
    garbage_runs: GarbageRuns,
) -> None:
    problems = {
        name: run.failure or (run.status.name if run.status else "?")
        for name, run in garbage_runs.runs.items()
        if run.status != WorkflowExecutionStatus.FAILED
        # INVALID_INPUT, naming the field, without pydantic's internals (leo.infra.failures); two
        # inputs are refused by the start-input check (leo/infra/payloads.py).
        or not (run.failure or "").startswith(("invalid input: ", "LEAD-TO-PLAN takes exactly 1"))
        or "pydantic" in (run.failure or "")
    }
    assert problems == {}, problems


async def test_malformed_json_input_is_refused_by_the_cli_and_starts_nothing(
    stack: Stack, client: Client, task_queue: str
) -> None:
    for value in ('{"sd_id": ', "{'sd_id': 'SD-1'}", "", '{"sd_id": "x"} trailing'):
        workflow_id = f"LEAD-TO-PLAN:bad-json-{uuid.uuid4().hex[:10]}"
        code, out = await temporal_cli(
            stack,
            "workflow",
            "start",
            "--type",
            "LEAD-TO-PLAN",
            "--task-queue",
            task_queue,
            "--workflow-id",
            workflow_id,
            "--input",
            value,
        )
        assert code != 0, (value, out)
        assert "not valid JSON" in out, out
        with pytest.raises(RPCError, match="not found"):
            await client.get_workflow_handle(workflow_id).describe()


async def test_an_unknown_sd_id_fails_the_workflow_with_sd_not_found(
    stack: Stack, task_queue: str
) -> None:
    missing = f"SD-MISSING-{uuid.uuid4().hex[:8]}"
    code, out = await temporal_cli(
        stack,
        "workflow",
        "execute",
        "--type",
        "LEAD-TO-PLAN",
        "--task-queue",
        task_queue,
        "--workflow-id",
        f"LEAD-TO-PLAN:{missing}",
        "--input",
        json.dumps({"sd_id": missing}),
    )
    assert code != 0
    assert f"SD not found: {missing}" in out, out


async def test_a_misspelt_option_is_refused_not_ignored(
    stack: Stack, db_pool: asyncpg.Pool, task_queue: str
) -> None:
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN", sd_type="infrastructure")
    before = await snapshot(db_pool, sd.id)
    try:
        code, out = await temporal_cli(
            stack,
            "workflow",
            "execute",
            "--type",
            "LEAD-TO-PLAN",
            "--task-queue",
            task_queue,
            "--workflow-id",
            f"LEAD-TO-PLAN:{sd.id}",
            "--input",
            json.dumps({"sd_id": sd.id, "options": {"extra_sub_agent": ["SECURITY"]}}),
        )
    except TimeoutError:  # the workflow never failed: input decoding failed its task instead
        code, out = -1, "timed out"
    assert code != 0 and "extra_sub_agent" in out, out
    assert await snapshot(db_pool, sd.id) == before


# --- `leo` arguments ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli(migrated_db: str, stack: Stack, task_queue: str) -> Leo:
    return Leo(
        env={
            "LEO_DATABASE_URL": migrated_db,
            "LEO_DATA_DIR": tempfile.mkdtemp(prefix="leo-bad-input-"),
            "TEMPORAL_ADDRESS": stack.temporal_address,
            "LEO_TASK_QUEUE": task_queue,
            "COLUMNS": "250",
        }
    )


async def table_counts(db: asyncpg.Pool) -> tuple[int, ...]:
    row = await db.fetchrow(
        "SELECT (SELECT count(*) FROM strategic_directives_v2), "
        "(SELECT count(*) FROM product_requirements_v2), (SELECT count(*) FROM user_stories), "
        "(SELECT count(*) FROM sd_phase_handoffs), (SELECT count(*) FROM sd_transition_audit), "
        "(SELECT count(*) FROM sub_agent_execution_results)"
    )
    assert row is not None
    return tuple(row)


async def test_unknown_handoff_types_are_usage_errors(cli: Leo, db_pool: asyncpg.Pool) -> None:
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN", sd_type="infrastructure")
    before = await table_counts(db_pool)
    for kind in ("LEAD-TO-EXEC", "lead_to_plan", "", "BYPASS-COMPLETION", "LEAD-TO-PLAN;"):
        result = await cli("handoff", kind, sd.id)
        assert result.exit_code == 2, result.output
        assert "Invalid value for 'TYPE'" in result.stderr, result.stderr
        assert result.stdout == ""
    assert await table_counts(db_pool) == before


BAD_SD_REFS = [
    "SD-DOES-NOT-EXIST",
    "'; DROP TABLE strategic_directives_v2; --",
    "%",
    "",
    "   ",
    "S" * 500,
    "SD-ÜNÏCÖDE-✓",
]


async def test_bad_sd_arguments_are_refused_with_one_line_and_exit_2(
    cli: Leo, db_pool: asyncpg.Pool
) -> None:
    before = await table_counts(db_pool)
    for ref in BAD_SD_REFS:
        for command in (["handoff", "LEAD-TO-PLAN"], ["status"], ["audit"], ["sd", "show"]):
            result = await cli(*command, ref)
            assert_one_error_line(result, 2, "SD not found")
        started = await cli("lifecycle", "start", ref)
        assert_one_error_line(started, 2, "SD not found")
    # A newline in the argument is echoed as is, so this one error takes two lines.
    multi = await cli("status", "SD-1\nSD-2")
    assert multi.exit_code == 2 and "SD not found: SD-1\nSD-2" in multi.stderr
    assert multi.stdout == "" and "Traceback" not in multi.output
    assert await table_counts(db_pool) == before


@settings(max_examples=25, deadline=None)
@given(ref=TEXT)
async def test_any_sd_argument_gets_exit_2_and_no_traceback(cli: Leo, ref: str) -> None:
    result = await cli("status", ref)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.stdout == ""


async def test_an_sd_argument_that_is_not_utf8_is_bad_input(cli: Leo) -> None:
    result = await cli("status", "SD-\udcff")
    assert_one_error_line(result, 2)


async def test_an_unreachable_database_is_named_as_such_by_leo_handoff(
    cli: Leo, tmp_path: Path
) -> None:
    url = f"postgresql://postgres@/postgres?host={tmp_path / 'no-such-socket'}"
    result = await cli("handoff", "LEAD-TO-PLAN", "SD-1", env={"LEO_DATABASE_URL": url})
    assert_one_error_line(result, 3, "PostgreSQL")


# --- SD files -----------------------------------------------------------------------------------

SD_FIELDS = [
    "sd_key",
    "id",
    "title",
    "description",
    "sd_type",
    "priority",
    "intensity_level",
    "success_criteria",
    "metadata",
    "category",
]
DELETE = object()


@st.composite
def sd_documents(draw: st.DrawFn) -> Any:
    """A valid SD spec with random damage: fields removed, replaced by any JSON, unknown
    fields, random PRDs and stories; or no mapping at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(JSON)
    key = unique_key("SD-HYP")
    doc: dict[str, Any] = {"sd_key": key, "title": "A directive from hypothesis"}
    if draw(st.booleans()):
        doc["prd"] = {"title": "PRD"}
    if draw(st.booleans()):
        doc["stories"] = [{"title": "Story", "acceptance_criteria": ["a"]}]
    for _ in range(draw(st.integers(0, 3))):
        field = draw(st.sampled_from([*SD_FIELDS, "prd", "stories", "unknown_field"]))
        value = draw(
            st.one_of(
                st.just(DELETE),
                JSON,
                st.sampled_from(["feature", "security", "high", "structural", "SD-X-1", key]),
                st.lists(st.fixed_dictionaries({"title": TEXT}), max_size=3),
                st.fixed_dictionaries({"title": TEXT}, optional={"id": TEXT, "status": TEXT}),
            )
        )
        if value is DELETE:
            doc.pop(field, None)
        else:
            doc[field] = value
    return doc


@settings(max_examples=40, deadline=None)
@given(doc=sd_documents(), as_yaml=st.booleans())
async def test_an_sd_file_is_either_written_whole_or_refused_with_exit_2(
    cli: Leo, db_pool: asyncpg.Pool, doc: Any, as_yaml: bool
) -> None:
    folder = Path(tempfile.mkdtemp(prefix="leo-sd-file-"))
    path = folder / ("sd.yaml" if as_yaml else "sd.json")
    path.write_text(yaml.safe_dump(doc) if as_yaml else json.dumps(doc))
    try:
        valid = SdSpec.model_validate(doc) if isinstance(doc, dict) else None
    except ValueError:
        valid = None
    before = await table_counts(db_pool)

    result = await cli("sd", "create", str(path), "--json")

    after = await table_counts(db_pool)
    assert "Traceback" not in result.output
    if result.exit_code == 0:
        assert valid is not None, doc
        shown = json.loads(result.stdout)
        assert shown["sd"]["sd_key"] == valid.sd_key
        assert after[0] == before[0] + 1
        assert after[1] == before[1] + (valid.prd is not None)
        assert after[2] == before[2] + len(valid.stories)
    else:
        assert result.exit_code == 2, result.output
        assert result.stderr.startswith("leo: "), result.stderr
        assert result.stdout == ""
        assert after == before, "a refused SD file wrote something"
        if valid is not None:  # only the database may refuse a valid spec: a taken key
            assert "already" in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("suffix", "text"),
    [
        (".json", '{{"sd_key": "{key}", "title": "t", "description": "a\\u0000b"}}'),
        (".json", '{{"sd_key": "{key}", "title": "t", "metadata": {{"k": "a\\u0000b"}}}}'),
        (".json", '{{"sd_key": "{key}", "title": "t", "metadata": {{"k": 1e400}}}}'),
        (".yaml", "sd_key: {key}\ntitle: t\nmetadata: {{k: .inf}}\n"),
    ],
    ids=["nul-in-text", "nul-in-json", "json-1e400", "yaml-inf"],
)
async def test_values_postgres_cannot_store_are_bad_input(
    cli: Leo, db_pool: asyncpg.Pool, tmp_path: Path, suffix: str, text: str
) -> None:
    path = tmp_path / f"sd{suffix}"
    path.write_text(text.format(key=unique_key("SD-NUL")))
    before = await table_counts(db_pool)
    result = await cli("sd", "create", str(path))
    assert await table_counts(db_pool) == before
    if "u0000" in text:
        # Refused by SdSpec, naming the field, before the database sees it (storable.py).
        field = "`description`" if "description" in text else "`metadata.k`"
        assert result.exit_code == 2 and result.stdout == "", result.output
        assert f"{field} contains a NUL character" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    else:
        assert_one_error_line(result, 2)


# --- Sub-agent output ---------------------------------------------------------------------------

VERDICTS = st.sampled_from([v.value for v in Verdict]) | TEXT
AGENT_LIKE = st.fixed_dictionaries(
    {},
    optional={
        "verdict": VERDICTS | JSON,
        "confidence": st.integers(-5, 105) | JSON,
        "critical_issues": st.lists(TEXT | JSON, max_size=3) | JSON,
        "warnings": st.lists(TEXT, max_size=3) | JSON,
        "recommendations": st.lists(TEXT, max_size=60),
        "detailed_analysis": TEXT | JSON,
        "justification": st.text(min_size=0, max_size=80) | JSON,
        "conditions": st.lists(TEXT, max_size=3) | JSON,
        "extra": JSON,
    },
)
ANY_OUTPUT = (
    AGENT_LIKE
    | JSON
    | st.builds(object)
    | st.binary(max_size=20)
    | st.sets(st.integers(), max_size=3)
    | st.tuples(TEXT, st.integers())
    | st.complex_numbers(allow_nan=False)
    | st.just(math.nan)
)


@FAST
@given(raw=ANY_OUTPUT)
def test_sub_agent_output_is_validated_or_becomes_error_never_raises(raw: Any) -> None:
    out = validate_agent_output(raw)
    assert isinstance(out, AgentOutput)
    try:
        expected = AgentOutput.model_validate(dict(raw)) if isinstance(raw, Mapping) else None
    except ValueError:
        expected = None
    if expected is not None:
        assert out == expected
    else:
        assert out.verdict is Verdict.ERROR
        assert out.confidence == 0
        assert len(out.critical_issues) == 1
        assert out.critical_issues[0].startswith("sub-agent output ")
        assert len(out.critical_issues[0]) <= 2000


# --- Gate output --------------------------------------------------------------------------------

NUMBER = (
    st.integers(-5, 200)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(min_value=10**300, max_value=10**400)
    | st.booleans()
    | TEXT
)
GATE_LIKE = st.fixed_dictionaries(
    {},
    optional={
        "passed": st.booleans() | JSON,
        "score": NUMBER,
        "max_score": NUMBER,
        "maxScore": NUMBER,
        "issues": st.lists(TEXT, max_size=3) | JSON,
        "warnings": st.lists(TEXT, max_size=3) | JSON,
    },
)
GATE_CTX = builders.gate_context(sd_type="feature")


@FAST
@given(raw=GATE_LIKE | JSON | st.builds(object) | st.sets(st.integers(), max_size=2))
def test_gate_output_is_validated_or_fails_closed_never_raises(raw: Any) -> None:
    result, problem = validate_gate_result(raw)
    assert (result is None) != (problem is None)
    evaluation = evaluate_gates([Gate("HYPOTHESIS_GATE", lambda ctx: raw)], GATE_CTX)
    [outcome] = evaluation.gates
    if result is None:
        assert isinstance(problem, str) and problem
        # Fails closed, and says why; the result is never "fixed".
        assert outcome.status is GateStatus.FAILED
        assert evaluation.passed is False
        assert evaluation.failed_gate == "HYPOTHESIS_GATE"
        assert outcome.issues == (f"malformed gate result: {problem}",)
    else:
        assert math.isfinite(result.score) and math.isfinite(result.max_score)
        assert 0 <= result.score <= result.max_score
        assert outcome.status is (GateStatus.PASSED if result.passed else GateStatus.FAILED)
        if not result.passed:
            assert evaluation.passed is False


# --- SQL function arguments ---------------------------------------------------------------------

OK_OR_REFUSED = REFUSAL_CODES | {"OK", "TRANSITION_FAILED"}


@st.composite
def transition_calls(draw: st.DrawFn) -> dict[str, Any]:
    """Arguments for fn_atomic_*: mostly-valid contexts with random damage, or any JSON."""
    ctx: Any
    if draw(st.integers(0, 3)) == 0:
        ctx = draw(JSON)
    else:
        ctx = {"request_id": f"hyp-{uuid.uuid4()}", "expected_version": 1}
        if draw(st.booleans()):
            ctx["gate_summary"] = dict(GATE_SUMMARY)
        for _ in range(draw(st.integers(0, 3))):
            key = draw(
                st.sampled_from(["request_id", "expected_version", "gate_summary", "metadata"])
            )
            ctx[key] = draw(
                st.one_of(
                    JSON,
                    st.fixed_dictionaries(
                        {"passed": st.booleans() | JSON},
                        optional={"normalized_score": NUMBER.filter(_jsonable) | JSON},
                    ),
                )
            )
    return {
        "handoff": draw(st.sampled_from(HANDOFFS)),
        "sd": draw(st.sampled_from(["id", "key", "text", "none"])),
        "sd_text": draw(TEXT),
        "prd": draw(st.sampled_from(["own", "none", "text"])),
        "prd_text": draw(TEXT),
        "session": draw(st.none() | TEXT),
        "ctx": ctx,
    }


def _jsonable(value: Any) -> bool:
    return not isinstance(value, float) or math.isfinite(value)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(call=transition_calls())
async def test_transition_functions_answer_any_arguments_with_a_structured_result(
    db_pool: asyncpg.Pool, call: dict[str, Any]
) -> None:
    handoff = call["handoff"]
    sd = await create_sd(db_pool, ready_for=handoff, stories=[{}])
    sd_arg = {"id": sd.id, "key": sd.sd_key, "text": call["sd_text"], "none": None}[call["sd"]]
    prd_arg = {"own": sd.prd_id, "none": None, "text": call["prd_text"]}[call["prd"]]
    before = await snapshot(db_pool, sd.id)
    counts = await table_counts(db_pool)

    result = await db_pool.fetchval(
        f"SELECT {function_name(handoff)}(p_sd_id => $1, p_prd_id => $2, p_session_id => $3, "
        "p_transition_context => $4)",
        sd_arg,
        prd_arg,
        call["session"],
        call["ctx"],
    )

    assert isinstance(result, dict), result
    assert isinstance(result["success"], bool) and result["code"] in OK_OR_REFUSED, result
    after = await snapshot(db_pool, sd.id)
    if result["success"] and not result.get("idempotent_hit"):
        assert result["code"] == "OK"
        assert after.sd["transition_version"] == before.sd["transition_version"] + 1
        assert [a["status"] for a in after.audits] == ["completed"]
        assert [h["status"] for h in after.handoffs] == ["accepted"]
    elif result["code"] == "TRANSITION_FAILED":
        assert after.without_audits() == before.without_audits()
        assert [a["status"] for a in after.audits] == ["failed"]
    else:
        assert isinstance(result.get("error", ""), str)
        assert after == before and after.audits == before.audits
        assert await table_counts(db_pool) == counts


@settings(max_examples=60, deadline=None)
@given(
    function=st.sampled_from(["claim_sd", "heartbeat_sd_claim", "release_sd"]),
    first=st.none() | TEXT,
    second=st.none() | TEXT | st.sampled_from(["A", "STANDALONE", "manual", "completed"]),
)
async def test_claim_functions_answer_any_arguments_with_a_structured_result(
    db_pool: asyncpg.Pool, function: str, first: str | None, second: str | None
) -> None:
    sql = {
        "claim_sd": "SELECT claim_sd(p_sd_id => $1, p_session_id => $2)",
        "heartbeat_sd_claim": "SELECT heartbeat_sd_claim(p_session_id => $1)",
        "release_sd": "SELECT release_sd(p_session_id => $1, p_reason => $2)",
    }[function]
    args = [first] if function == "heartbeat_sd_claim" else [first, second]
    result = await db_pool.fetchval(sql, *args)
    assert isinstance(result, dict) and isinstance(result["success"], bool), result
    assert result["code"] in {
        "OK",
        "NOT_CLAIMED",
        "NO_ACTIVE_CLAIM",
        "INVALID_INPUT",
        "SD_NOT_FOUND",
    }


@settings(max_examples=60, deadline=None)
@given(
    handoff_type=st.sampled_from([*HANDOFFS, "BYPASS-COMPLETION"]) | st.none() | TEXT,
    sd_choice=st.sampled_from(["id", "text", "none"]),
    sd_text=TEXT,
    ctx=JSON
    | st.fixed_dictionaries(
        {"request_id": TEXT},
        optional={
            "gate_summary": st.dictionaries(TEXT, JSON, max_size=3),
            "metadata": st.dictionaries(TEXT, JSON, max_size=3),
            "rejection_reason": JSON,
        },
    ),
)
async def test_the_rejection_recorder_answers_sane_arguments_with_a_structured_result(
    db_pool: asyncpg.Pool, handoff_type: Any, sd_choice: str, sd_text: str, ctx: Any
) -> None:
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN")
    sd_arg = {"id": sd.id, "text": sd_text, "none": None}[sd_choice]
    before = await table_counts(db_pool)
    result = await db_pool.fetchval(
        "SELECT fn_record_handoff_rejection(p_sd_id => $1, p_handoff_type => $2, "
        "p_transition_context => $3)",
        sd_arg,
        handoff_type,
        ctx,
    )
    assert isinstance(result, dict) and isinstance(result["success"], bool), result
    if not result["success"]:
        assert result["code"] in REFUSAL_CODES
        assert await table_counts(db_pool) == before


@pytest.mark.parametrize(
    "case",
    [
        "metadata-array",
        "huge-gate-summary",
        "huge-request-id",
        "request-id-of-another-sd",
        "exec-report-request-id",
    ],
)
async def test_the_recorders_refuse_oversized_or_mistyped_arguments(
    db_pool: asyncpg.Pool, case: str
) -> None:
    sd = await create_sd(db_pool, ready_for="EXEC-TO-PLAN", stories=[{}])
    big = "".join(uuid.uuid4().hex for _ in range(300))  # 9,600 characters that do not compress
    reused = f"r-{uuid.uuid4()}"
    other = await create_sd(db_pool, ready_for="LEAD-TO-PLAN")
    first = await db_pool.fetchval(
        "SELECT fn_record_handoff_rejection(p_sd_id => $1, p_handoff_type => 'LEAD-TO-PLAN', "
        "p_transition_context => $2)",
        other.id,
        {"request_id": reused},
    )
    assert first["success"] is True
    before = await table_counts(db_pool)
    ctx = {
        "metadata-array": {"request_id": f"r-{uuid.uuid4()}", "metadata": ["a"]},
        "huge-gate-summary": {
            "request_id": f"r-{uuid.uuid4()}",
            "gate_summary": {"passed": False, "x": [big] * 12},
        },
        "huge-request-id": {"request_id": big},
        "request-id-of-another-sd": {"request_id": reused},
    }.get(case)
    try:
        if case == "exec-report-request-id":
            result = await db_pool.fetchval(
                "SELECT fn_record_exec_report(p_sd_id => $1, p_session_id => NULL, "
                "p_request_id => $2, p_summary => 'done', p_evidence => '{}')",
                sd.id,
                big,
            )
        else:
            result = await db_pool.fetchval(
                "SELECT fn_record_handoff_rejection(p_sd_id => $1, "
                "p_handoff_type => 'EXEC-TO-PLAN', p_transition_context => $2)",
                sd.id,
                ctx,
            )
    except asyncpg.PostgresError as exc:
        result = {"raised": f"{type(exc).__name__}: {exc}"}
    assert await table_counts(db_pool) == before
    assert result.get("code") == "INVALID_INPUT", result
