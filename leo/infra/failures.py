"""The failures clients see: stable type codes, messages without Python internals, and no stack
trace for a business outcome. Installed on every client and worker through `LEO_DATA_CONVERTER`.

A Temporal failure carries a type, a message, a stack trace and typed details. Clients in any
language (the Web UI, the `temporal` CLI, TypeScript, Go) see the type and the message first,
so ours are a small vocabulary (`leo.domain.refusals.FAILURE_TYPES`, documented in
docs/temporal-cli.md) instead of
Python class names, and a decision such as a rejected handoff reads as a decision: its message
leads with the gate, the score against the threshold and the issues, its details keep the typed
result as JSON, and it has no stack trace.
"""

from __future__ import annotations

import dataclasses

import pydantic
import temporalio.api.failure.v1
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DefaultFailureConverter, PayloadConverter
from temporalio.exceptions import ApplicationError

from leo.domain.refusals import FAILURE_TYPES, RefusalCode
from leo.infra.payloads import StrictPayloadConverter


def validation_message(error: pydantic.ValidationError) -> str:
    """'invalid input: approver: Input should be a valid string; ...', without pydantic's URLs
    or model names."""
    problems = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"]) or "input"
        problems.append(f"{where}: {str(item['msg']).removeprefix('Value error, ')}")
    return "invalid input: " + "; ".join(problems)


class LeoFailureConverter(DefaultFailureConverter):
    """The SDK's converter, plus: pydantic's ValidationError becomes INVALID_INPUT with a plain
    message, and failures of our vocabulary carry no stack trace (they are decisions and
    refusals, not crashes). Anything else, a bug, keeps its type and stack trace."""

    def to_failure(
        self,
        exception: BaseException,
        payload_converter: PayloadConverter,
        failure: temporalio.api.failure.v1.Failure,
    ) -> None:
        if isinstance(exception, pydantic.ValidationError):
            exception = ApplicationError(
                validation_message(exception), type=RefusalCode.INVALID_INPUT, non_retryable=True
            )
        super().to_failure(exception, payload_converter, failure)
        _strip_decisions(failure)


def _strip_decisions(failure: temporalio.api.failure.v1.Failure) -> None:
    node: temporalio.api.failure.v1.Failure | None = failure
    while node is not None:
        if (
            node.HasField("application_failure_info")
            and node.application_failure_info.type in FAILURE_TYPES
        ):
            node.stack_trace = ""
        node = node.cause if node.HasField("cause") else None


# The one data converter: pydantic payloads (refusing a non-JSON payload for a model at once,
# leo/infra/payloads.py) and our failure converter. Workers, clients, replayers and tests all use it
# (through `leo.infra.client.connect_client`).
LEO_DATA_CONVERTER = dataclasses.replace(
    pydantic_data_converter,
    payload_converter_class=StrictPayloadConverter,
    failure_converter_class=LeoFailureConverter,
)
