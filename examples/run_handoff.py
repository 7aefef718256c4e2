"""Run one LEO handoff from Python and print its typed result and the SD's status.

    bin/leo dev                                   # terminal 1: the stack
    bin/leo worker                                # terminal 2: a worker
    .venv/bin/python examples/run_handoff.py LEAD-TO-PLAN SD-LEO-INFRA-HARDENING-001

LEO_DATABASE_URL / TEMPORAL_ADDRESS / LEO_TASK_QUEUE are honoured, as everywhere. Exits 0 when
the handoff is accepted, 1 when it is rejected, 2 when it is refused (unknown SD, wrong phase).
"""

from __future__ import annotations

import asyncio
import os
import sys

from leo.api import HandoffFailed, LeoClient
from leo.dev_stack import running_temporal_address
from leo.domain.handoffs import HandoffType
from leo.infra.settings import Settings


async def main(handoff: str, sd: str) -> int:
    settings = Settings.from_env()
    if settings.temporal_address is None:
        # No TEMPORAL_ADDRESS: use the dev server that `leo dev` runs for this data directory.
        settings = settings.model_copy(
            update={"temporal_address": running_temporal_address(settings.data_dir)}
        )
    async with await LeoClient.connect(settings) as leo:
        try:
            result = await leo.run_handoff(HandoffType(handoff), sd)
        except HandoffFailed as refused:
            print(f"refused ({refused.code}): {refused}")
            return 2
        print(f"{result.handoff_type.value} {result.outcome} for {result.sd_key}")
        print(
            f"score {result.normalized_score} against threshold {result.threshold} ({result.sd_type})"
        )
        for agent in result.sub_agents:
            print(f"  {agent.summary()}")
        for gate in result.gates:
            print(f"  gate {gate.name}: {gate.status.value}")
        status = await leo.sd_status(sd)
        print(
            f"{status.sd_key} is now {status.status} / {status.current_phase}, version {status.transition_version}"
        )
        return 0 if result.accepted else 1


if __name__ == "__main__":
    code = asyncio.run(main(sys.argv[1], sys.argv[2]))
    # The Temporal SDK can crash the interpreter at exit (sdk-python#300): leave directly.
    sys.stdout.flush()
    os._exit(code)
