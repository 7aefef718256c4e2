"""The world fingerprint of a sub-agent (issue 17 item 4): the output of the catalogue's
`reuse_fingerprint` command, for an agent whose verdict depends on something outside the
snapshot (a checkout, a test run, an environment value). It joins the agent's reuse key, so a
recorded verdict is reused only while that world is the same. The command runs like an agent
(its own launcher, the agent's minimal environment, the process tree killed at the end), with
a short deadline; when it fails there is no fingerprint, and the agent runs.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import sys
import uuid
from collections.abc import Iterable

from leo.domain.snapshot import SubAgentSpec
from leo.sub_agents.environment import agent_environment
from leo.sub_agents.processes import AgentProcess

log = logging.getLogger(__name__)

# The snapshot step waits for the fingerprints: they must be quick (`git rev-parse HEAD`).
FINGERPRINT_SECONDS = 5.0
FINGERPRINT_MAX_BYTES = 64 * 1024


async def world_fingerprint(spec: SubAgentSpec) -> str | None:
    """sha256 of what the agent's fingerprint command printed, or None: no command, or it did
    not exit 0 within FINGERPRINT_SECONDS with at most FINGERPRINT_MAX_BYTES on stdout."""
    if not spec.reuse_fingerprint:
        return None
    argv = [sys.executable if arg == "{python}" else arg for arg in spec.reuse_fingerprint]
    try:
        env = agent_environment(spec.env_passthrough)
        process = AgentProcess(argv, env, f"fingerprint-{spec.code}-{uuid.uuid4().hex}")
        async with asyncio.timeout(FINGERPRINT_SECONDS), process:
            run = await process.communicate(b"", FINGERPRINT_MAX_BYTES)
    except (TimeoutError, OSError, ValueError) as exc:
        log.warning("fingerprint of %s failed, it runs: %s", spec.code, exc)
        return None
    if run.returncode != 0 or run.stdout_overflow:
        log.warning(
            "fingerprint of %s exited %s%s, it runs",
            spec.code,
            run.returncode,
            " (output over the cap)" if run.stdout_overflow else "",
        )
        return None
    return hashlib.sha256(run.stdout).hexdigest()


async def world_fingerprints(specs: Iterable[SubAgentSpec]) -> dict[str, str | None]:
    """Every given agent's fingerprint, computed concurrently."""
    wanted = [s for s in specs if s.reuse_fingerprint]
    prints = await asyncio.gather(*(world_fingerprint(s) for s in wanted))
    return {s.code: p for s, p in zip(wanted, prints, strict=True)}
