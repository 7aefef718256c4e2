"""Encrypted payloads end to end: the server holds ciphertext, the codec server and the key
holders read plaintext, a wrong key fails naming its key id, old histories still replay."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from google.protobuf import json_format
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer
from typer.testing import CliRunner

from leo.api import HandoffFailed, LeoClient
from leo.cli import app
from leo.dev_stack import free_port, port_is_open, temporal_binary
from leo.domain.handoffs import HandoffType
from leo.infra.client import connect_client
from leo.infra.codec import (
    ENCODING,
    EncryptionCodec,
    KeyRing,
    PayloadKeyError,
    codec_for,
    data_converter,
    new_key,
)
from leo.infra.failures import LEO_DATA_CONVERTER
from leo.infra.settings import Settings
from leo.runtime import build_worker
from leo.services.codec_server import CodecServer
from tests.support.factories import create_sd
from workflows.registry import HANDOFF_WORKFLOWS
from workflows.sd_lifecycle import SdLifecycleWorkflow

KEY = new_key()
KEY_ID = "2026-11"
SECRET_TITLE = "Quarterly merger plan for Falcon Holdings"
AUTH = "Bearer codec-test-token"
HISTORIES = Path(__file__).parent / "workflows" / "histories"


def encrypted(settings: Settings, key: str = KEY, key_id: str = KEY_ID, old: str = "") -> Settings:
    return settings.model_copy(
        update={
            "payload_key": SecretStr(key),
            "payload_key_id": key_id,
            "payload_old_keys": SecretStr(old) if old else None,
        }
    )


@pytest.fixture(scope="module")
async def secret_handoff(settings: Settings, db_pool: asyncpg.Pool) -> AsyncIterator[str]:
    """One LEAD-TO-PLAN handoff run by an encrypting client and worker; its workflow id."""
    client = await connect_client(encrypted(settings))
    queue = f"leo-codec-{uuid.uuid4().hex[:8]}"
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN", title=SECRET_TITLE)
    async with build_worker(client, db_pool, task_queue=queue):
        result = await LeoClient(client, db_pool, queue).run_handoff(
            HandoffType.LEAD_TO_PLAN, sd.id
        )
        assert result.sd_id == sd.id
        yield result.workflow_id


@pytest.fixture(scope="module")
def codec_server() -> Iterator[CodecServer]:
    keys = KeyRing.from_values(KEY, KEY_ID)
    server = CodecServer(("127.0.0.1", 0), EncryptionCodec(keys), authorization=AUTH)
    server.start_in_thread()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def temporal_show(settings: Settings, workflow_id: str, *extra: str) -> str:
    done = subprocess.run(
        [
            str(temporal_binary()),
            "workflow",
            "show",
            "--address",
            str(settings.temporal_address),
            "--workflow-id",
            workflow_id,
            "--output",
            "json",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def post(url: str, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, Any]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **headers},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def readable_text(history_json: str) -> str:
    """Everything a reader of this history can see: the JSON itself plus the decoded data of
    every json/plain payload in it (`temporal workflow show -o json` keeps data base64)."""
    found = [history_json]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            encoding = node.get("metadata", {}).get("encoding") if "data" in node else None
            if encoding and base64.b64decode(encoding) == b"json/plain":
                found.append(base64.b64decode(node["data"]).decode())
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(history_json))
    return "\n".join(found)


def first_input(history_json: str) -> dict[str, Any]:
    events = json.loads(history_json)["events"]
    started = events[0]["workflowExecutionStartedEventAttributes"]
    payload: dict[str, Any] = started["input"]["payloads"][0]
    return payload


async def test_server_history_holds_no_plaintext_sd_title(
    settings: Settings, secret_handoff: str, client: Client
) -> None:
    raw = temporal_show(settings, secret_handoff)
    assert "Falcon" not in readable_text(raw)
    # The summaries the Web UI shows are payloads too.
    assert "load snapshot of" not in readable_text(raw)
    payload = first_input(raw)
    assert base64.b64decode(payload["metadata"]["encoding"]) == ENCODING
    assert base64.b64decode(payload["metadata"]["encryption-key-id"]).decode() == KEY_ID
    # The same history through the SDK without the codec: still only ciphertext.
    history = await client.get_workflow_handle(secret_handoff).fetch_history()
    assert "Falcon" not in readable_text(json.dumps(history.to_json_dict()))


async def test_refusal_messages_are_encrypted_too_and_still_reach_the_key_holder(
    settings: Settings, secret_handoff: str, db_pool: asyncpg.Pool
) -> None:
    client = await connect_client(encrypted(settings))
    queue = f"leo-codec-{uuid.uuid4().hex[:8]}"
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN", title=SECRET_TITLE)
    async with build_worker(client, db_pool, task_queue=queue):
        with pytest.raises(HandoffFailed) as failure:
            await LeoClient(client, db_pool, queue).run_handoff(HandoffType.EXEC_TO_PLAN, sd.id)
    assert failure.value.code == "INVALID_PHASE"
    assert "expects active / EXEC" in str(failure.value)

    raw = readable_text(temporal_show(settings, f"EXEC-TO-PLAN:{sd.id}"))
    assert "INVALID_PHASE" in raw  # the failure type stays readable
    assert "expects active / EXEC" not in raw
    assert "Encoded failure" in raw


def test_codec_server_decodes_what_the_worker_wrote(
    settings: Settings, secret_handoff: str, codec_server: CodecServer
) -> None:
    payload = first_input(temporal_show(settings, secret_handoff))

    status, body = post(
        f"{codec_server.url}/decode", {"payloads": [payload]}, {"Authorization": AUTH}
    )

    assert status == 200
    decoded = body["payloads"][0]
    assert base64.b64decode(decoded["metadata"]["encoding"]) == b"json/plain"
    assert json.loads(base64.b64decode(decoded["data"]))["sd_id"].startswith("SD-TEST-")
    # And the `temporal` CLI shows plaintext through it, the SD title included.
    shown = temporal_show(
        settings,
        secret_handoff,
        "--codec-endpoint",
        codec_server.url,
        "--codec-auth",
        AUTH,
    )
    assert SECRET_TITLE in readable_text(shown)


def test_codec_server_requires_its_authorization_and_answers_cors_for_the_web_ui(
    codec_server: CodecServer,
) -> None:
    plain = {"metadata": {"encoding": base64.b64encode(b"json/plain").decode()}, "data": ""}
    status, body = post(f"{codec_server.url}/encode", {"payloads": [plain]}, {})
    assert status == 401 and "Authorization" in body["error"]

    status, body = post(
        f"{codec_server.url}/encode", {"payloads": [plain]}, {"Authorization": AUTH}
    )
    assert status == 200
    assert base64.b64decode(body["payloads"][0]["metadata"]["encoding"]) == ENCODING

    def preflight(origin: str) -> str | None:
        request = urllib.request.Request(
            f"{codec_server.url}/decode",
            method="OPTIONS",
            headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            allowed: str | None = response.headers.get("Access-Control-Allow-Origin")
            return allowed

    assert preflight("http://localhost:8233") == "http://localhost:8233"
    assert preflight("http://127.0.0.1:8233") == "http://127.0.0.1:8233"
    assert preflight("http://evil.example") is None

    status, body = post(f"{codec_server.url}/decode", {"payloads": "nope"}, {"Authorization": AUTH})
    assert status == 400 and "payloads" in body["error"]


async def test_wrong_key_fails_with_an_error_naming_the_key_id(
    settings: Settings, secret_handoff: str
) -> None:
    wrong = await connect_client(encrypted(settings, key=new_key()))
    with pytest.raises(PayloadKeyError, match=f"key id '{KEY_ID}'.*wrong key"):
        await wrong.get_workflow_handle(secret_handoff).result()

    unknown = await connect_client(encrypted(settings, key_id="2027-01"))
    with pytest.raises(PayloadKeyError, match=f"key id '{KEY_ID}'.*LEO_PAYLOAD_OLD_KEYS"):
        await unknown.get_workflow_handle(secret_handoff).result()


async def test_rotated_key_still_reads_payloads_written_under_the_old_one(
    settings: Settings, secret_handoff: str
) -> None:
    rotated = await connect_client(
        encrypted(settings, key=new_key(), key_id="2027-01", old=f"{KEY_ID}:{KEY}")
    )
    result = await rotated.get_workflow_handle(secret_handoff).result()
    assert result["workflow_id"] == secret_handoff


async def test_histories_recorded_without_a_key_still_replay_with_one() -> None:
    codec = EncryptionCodec(KeyRing.from_values(KEY, KEY_ID))
    replayer = Replayer(
        workflows=[*HANDOFF_WORKFLOWS.values(), SdLifecycleWorkflow],
        data_converter=data_converter(codec),
    )
    files = sorted(HISTORIES.glob("*.json"))
    assert files
    for path in files:
        record = json.loads(path.read_text())
        history = WorkflowHistory.from_json(record["workflow_id"], record["history"])
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"


def test_without_a_key_payloads_stay_plain_json() -> None:
    settings = Settings.from_env({})
    assert codec_for(settings) is None
    assert data_converter(codec_for(settings)) is LEO_DATA_CONVERTER


async def test_codec_round_trips_and_binds_the_key_id() -> None:
    codec = EncryptionCodec(KeyRing.from_values(KEY, KEY_ID))
    original = Payload(metadata={"encoding": b"json/plain"}, data=b'{"title": "secret"}')
    [sealed] = await codec.encode([original])
    assert b"secret" not in sealed.data
    assert await codec.decode([sealed]) == [original]
    # A payload relabelled with another known key id is refused, not misread.
    other = EncryptionCodec(KeyRing.from_values(KEY, "other", old_keys=f"{KEY_ID}:{KEY}"))
    relabelled = Payload(
        metadata={**sealed.metadata, "encryption-key-id": b"other"}, data=sealed.data
    )
    with pytest.raises(PayloadKeyError, match="key id 'other'"):
        await other.decode([relabelled])


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LEO_PAYLOAD_KEY": "not base64!"}, "LEO_PAYLOAD_KEY is not valid base64"),
        ({"LEO_PAYLOAD_KEY": base64.b64encode(b"short").decode()}, "32 bytes, not 5"),
        ({"LEO_PAYLOAD_KEY": KEY, "LEO_PAYLOAD_OLD_KEYS": KEY}, "'id:base64,id:base64"),
        ({"LEO_PAYLOAD_OLD_KEYS": f"a:{KEY}"}, "LEO_PAYLOAD_KEY is not"),
    ],
)
def test_bad_key_settings_fail_naming_the_setting(env: dict[str, str], message: str) -> None:
    with pytest.raises(PayloadKeyError, match=message):
        codec_for(Settings.from_env(env))


def test_new_key_prints_32_random_bytes() -> None:
    runner = CliRunner()
    first = runner.invoke(app, ["codec-server", "--new-key"])
    second = runner.invoke(app, ["codec-server", "--new-key"])
    assert first.exit_code == 0, first.output
    assert len(base64.b64decode(first.output.strip(), validate=True)) == 32
    assert first.output != second.output


async def test_codec_server_command_serves_until_sigterm() -> None:
    port = free_port()
    env = {**os.environ, "LEO_PAYLOAD_KEY": KEY, "LEO_PAYLOAD_KEY_ID": KEY_ID}
    env.pop("LEO_CODEC_AUTHORIZATION", None)
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "leo"),
        "codec-server",
        "--bind",
        f"127.0.0.1:{port}",
        "--cors-origin",
        "https://ui.example.com",
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        for _ in range(100):
            if port_is_open("127.0.0.1", port):
                break
            await asyncio.sleep(0.1)
        codec = EncryptionCodec(KeyRing.from_values(KEY, KEY_ID))
        [sealed] = codec.encrypt_all([Payload(metadata={"encoding": b"json/plain"}, data=b"42")])
        body = {"payloads": [json_format.MessageToDict(sealed)]}
        status, decoded = await asyncio.to_thread(
            post,
            f"http://127.0.0.1:{port}/decode",
            body,
            {"Origin": "https://ui.example.com"},
        )
        assert status == 200
        assert base64.b64decode(decoded["payloads"][0]["data"]) == b"42"
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=20)
    assert process.returncode == 0, stderr.decode()
    assert "CORS for https://ui.example.com" in stderr.decode()
    assert "Codec server stopped." in stderr.decode()
