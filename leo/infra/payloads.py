"""Decoding of workflow, update and activity inputs: a payload that cannot become its model
fails at once, non-retryably, naming the problem, instead of failing the workflow task for ever.

Two gaps of the SDK's defaults are closed here. A payload in another encoding (`temporal workflow
start --input-meta encoding=binary/plain`) decodes to bytes, whatever the type hint says, and the
workflow then fails its task on `bytes.sd_id`; the converter refuses it. A start with no input (or
two) never reaches the converter: the SDK calls `run()` with the wrong number of arguments, a
TypeError that fails the task; the interceptor refuses it. A start or update input (HandoffInput,
LifecycleInput, the lifecycle's messages) that is not valid JSON or does not validate is refused
as INVALID_INPUT naming the field. Any other ValidationError (an activity result an older worker wrote that this code cannot
decode) is no outcome of the workflow: a handoff declares it a failure of that handoff
(`failure_exception_types`), SD-LIFECYCLE fails its task until a fix is deployed and keeps its
state (review F8). `leo.infra.failures.LEO_DATA_CONVERTER` installs the converter on every client,
worker and replayer.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ValidationError
from temporalio import workflow
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import PydanticPayloadConverter
from temporalio.exceptions import ApplicationError
from temporalio.worker import (
    ExecuteWorkflowInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from leo.domain.handoff_messages import HandoffInput
from leo.domain.lifecycle_messages import (
    ApprovalInput,
    ExecReport,
    LifecycleInput,
    ReclaimInput,
    RetryInput,
)

INVALID_INPUT = "INVALID_INPUT"
# What clients send: workflow start inputs (also a child's and a continued run's) and update
# inputs. One that does not validate is refused at once with INVALID_INPUT naming the field (a
# start fails, an update is rejected). Activity results are not among them (review F8).
CLIENT_INPUT_MODELS: tuple[type[BaseModel], ...] = (
    HandoffInput,
    LifecycleInput,
    ExecReport,
    ApprovalInput,
    RetryInput,
    ReclaimInput,
)
JSON_ENCODING = "json/plain"


def invalid_input(message: str) -> ApplicationError:
    return ApplicationError(message, type=INVALID_INPUT, non_retryable=True)


class StrictPayloadConverter(PydanticPayloadConverter):
    """The pydantic converter, refusing a payload for a model that is not JSON."""

    def from_payloads(
        self, payloads: Sequence[Payload], type_hints: list[type] | None = None
    ) -> list[Any]:
        for index, (payload, hint) in enumerate(zip(payloads, type_hints or (), strict=False)):
            if not (isinstance(hint, type) and issubclass(hint, BaseModel)):
                continue
            encoding = payload.metadata.get("encoding", b"").decode(errors="replace")
            if encoding != JSON_ENCODING:
                raise invalid_input(
                    f"input {index + 1} has encoding {encoding or 'none'!r}, so it cannot be "
                    f"decoded into {hint.__name__}: send a JSON object as {JSON_ENCODING} "
                    "(the `temporal` CLI's default for --input)"
                )
        try:
            return super().from_payloads(payloads, type_hints)
        except ValidationError as err:
            if not any(hint in CLIENT_INPUT_MODELS for hint in type_hints or ()):
                raise
            from leo.infra.failures import validation_message  # it imports this module

            raise invalid_input(validation_message(err)) from None


def _parameter_count(run_fn: Any) -> int:
    params = list(inspect.signature(run_fn).parameters.values())
    return len([p for p in params if p.name != "self"])


class _CheckStartInput(WorkflowInboundInterceptor):
    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        expected = _parameter_count(input.run_fn)
        if len(input.args) != expected:
            name = workflow.info().workflow_type
            raise invalid_input(
                f"{name} takes exactly {expected} JSON input(s), e.g. "
                f'--input \'{{"sd_id": "SD-..."}}\'; it was started with {len(input.args)}'
            )
        return await super().execute_workflow(input)


class InputCheckInterceptor(Interceptor):
    """Registered on every LEO worker: refuses a start with the wrong number of inputs."""

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        return _CheckStartInput
