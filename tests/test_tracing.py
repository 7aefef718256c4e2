"""Traces: one handoff is one trace (client start, workflow, each sub-agent, the transition
call), and a `leo` command exports its spans over OTLP http/protobuf before it exits."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import asyncpg
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from leo.api import HandoffFailed, LeoClient
from leo.domain.handoff_messages import HandoffOptions
from leo.domain.handoffs import HandoffType
from leo.infra import telemetry
from leo.infra.client import connect_client
from leo.infra.settings import Settings
from leo.runtime import build_worker
from tests.support.factories import add_agent, create_sd


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry.install_tracing(provider)
    try:
        yield exporter
    finally:
        telemetry.uninstall_tracing()


def children(all_spans: list[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    assert parent.context is not None
    return [s for s in all_spans if s.parent and s.parent.span_id == parent.context.span_id]


def attribute(span: ReadableSpan, key: str) -> str:
    return str((span.attributes or {})[key])


def one(all_spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [s for s in all_spans if s.name == name]
    assert len(found) == 1, f"{name}: {[s.name for s in all_spans]}"
    return found[0]


async def test_one_handoff_is_one_trace_with_agent_and_transition_spans(
    spans: InMemorySpanExporter, settings: Settings, db_pool: asyncpg.Pool
) -> None:
    client = await connect_client(settings)
    queue = f"leo-trace-{uuid.uuid4().hex[:8]}"
    agent = await add_agent(db_pool, metadata={"seconds": 0.1})
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN", sd_type="infrastructure")
    wrong = await create_sd(db_pool, ready_for="LEAD-TO-PLAN")
    async with build_worker(client, db_pool, task_queue=queue):
        leo = LeoClient(client, db_pool, queue)
        result = await leo.run_handoff(
            HandoffType.LEAD_TO_PLAN,
            sd.id,
            options=HandoffOptions(extra_sub_agents=[agent]),
        )
        first = list(spans.get_finished_spans())
        with pytest.raises(HandoffFailed):
            await leo.run_handoff(HandoffType.EXEC_TO_PLAN, wrong.id)
    assert result.accepted

    trace_ids = {s.context.trace_id for s in first if s.context}
    assert len(trace_ids) == 1, "the handoff's spans belong to one trace"
    root = one(first, "StartWorkflow:LEAD-TO-PLAN")
    assert root.parent is None
    # TracingInterceptor's workflow spans are instants, so the workflow's own spans and the
    # activities it starts all hang off the client's start span.
    under_root = sorted(s.name for s in children(first, root))
    assert under_root == [
        "CompleteWorkflow:LEAD-TO-PLAN",
        "RunWorkflow:LEAD-TO-PLAN",
        "StartActivity:decide_and_commit_handoff",
        "StartActivity:prepare_handoff",
        # Only the catalogue agent is an activity: the built-in rules run in the snapshot step.
        "StartActivity:run_sub_agent",
    ]

    agents = [s for s in first if s.name.startswith("leo.sub_agent ")]
    assert sorted(attribute(s, "leo.sub_agent") for s in agents) == sorted(
        r.code for r in result.sub_agents if r.ran
    )
    verdicts = {r.code: r.verdict.value for r in result.sub_agents}
    for agent_span in agents:
        # sub-agent span <- RunActivity:run_sub_agent <- StartActivity:run_sub_agent <- workflow;
        # a built-in rule's span hangs under the snapshot step's run.
        [activity_run] = [s for s in first if s.context.span_id == agent_span.parent.span_id]  # type: ignore[union-attr]
        code = attribute(agent_span, "leo.sub_agent")
        assert activity_run.name == (
            "RunActivity:prepare_handoff"
            if code in ("VALIDATION", "RISK")
            else "RunActivity:run_sub_agent"
        )
        assert attribute(agent_span, "leo.verdict") == verdicts[code]

    transition = one(first, "leo.transition")
    assert dict(transition.attributes or {}) == {
        "leo.sd_id": sd.id,
        "leo.handoff_type": "LEAD-TO-PLAN",
        "leo.outcome": "accepted",
    }
    [commit_run] = [s for s in first if s.context.span_id == transition.parent.span_id]  # type: ignore[union-attr]
    assert commit_run.name == "RunActivity:decide_and_commit_handoff"

    # The refused handoff is its own trace; its dry run met INVALID_PHASE, so no agent ran and
    # no transition span was opened.
    later = [s for s in spans.get_finished_spans() if s not in first]
    assert {s.context.trace_id for s in later if s.context} - trace_ids
    assert not [s for s in later if s.name.startswith(("leo.sub_agent", "leo.transition"))]
    assert one(later, "RunActivity:prepare_handoff").status.status_code.name == "ERROR"


def test_without_an_otlp_endpoint_nothing_is_traced() -> None:
    assert telemetry.tracer_provider_from_env({}) is None
    with pytest.raises(telemetry.TelemetryError, match="http/protobuf"):
        telemetry.tracer_provider_from_env(
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
        )


class Collector(BaseHTTPRequestHandler):
    """A stand-in OTLP/HTTP collector: records each POST /v1/traces body."""

    received: list[tuple[str, str, bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).received.append((self.path, self.headers.get("Content-Type") or "", body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


async def test_leo_command_posts_its_spans_over_otlp_http_before_exiting(
    settings: Settings, task_queue: str, db_pool: asyncpg.Pool
) -> None:
    Collector.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN", sd_type="infrastructure")
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": str(settings.temporal_address),
        "LEO_DATABASE_URL": str(settings.database_url),
        "LEO_TASK_QUEUE": task_queue,
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{server.server_address[1]}",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_SERVICE_NAME": "leo-cli-test",
    }
    try:
        # In a thread: the session's worker runs on this event loop and must keep polling.
        done = await asyncio.to_thread(
            subprocess.run,
            [str(Path(sys.executable).parent / "leo"), "handoff", "LEAD-TO-PLAN", sd.id, "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        server.shutdown()
        server.server_close()
    assert done.returncode == 0, done.stderr

    assert Collector.received, "no spans reached the collector"
    names, services = set(), set()
    for path, content_type, body in Collector.received:
        assert path == "/v1/traces" and content_type == "application/x-protobuf"
        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            services |= {
                a.value.string_value
                for a in resource_spans.resource.attributes
                if a.key == "service.name"
            }
            for scope in resource_spans.scope_spans:
                names |= {s.name for s in scope.spans}
    assert "StartWorkflow:LEAD-TO-PLAN" in names
    assert services == {"leo-cli-test"}
