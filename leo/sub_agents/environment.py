"""The environment a command agent gets: a minimal base plus what its catalogue row declares.

Never the worker's secrets: a declared name that is, or may be, one of the worker's own
settings or credentials (LEO_*, TEMPORAL_*, libpq's PG*, DATABASE_URL) is refused, as is
TMPDIR, which is the run's private temp dir (and, with LEO_AGENT_USER, HOME as well: see
leo.sub_agents.accounts). The same rule is a CHECK on `leo_sub_agents`
(db/migrations/0007_sub_agent_env.sql).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

# Taken from the worker's environment when set there.
BASE_VARS = ("PATH", "HOME", "LANG", "TZ")
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
REFUSED_PREFIXES = ("LEO_", "TEMPORAL_", "PG")
REFUSED_NAMES = frozenset({"DATABASE_URL", "TMPDIR"})


def refused_names(names: Iterable[str]) -> list[str]:
    """The declared names that may not be passed, each with the reason."""
    refused = []
    for name in names:
        upper = name.upper()
        if not NAME.fullmatch(name):
            refused.append(f"{name!r} (not a variable name)")
        elif upper in REFUSED_NAMES or upper.startswith(REFUSED_PREFIXES):
            refused.append(f"{name} (the worker's own setting or secret)")
    return refused


def agent_environment(
    passthrough: Iterable[str], source: Mapping[str, str] | None = None
) -> dict[str, str]:
    """PATH, HOME, LANG, TZ and each declared name, with values from the worker's environment
    (a declared name the worker does not have is left out). Raises ValueError on a refused
    name; the caller adds TMPDIR and the run markers."""
    names = list(passthrough)
    refused = refused_names(names)
    if refused:
        raise ValueError(f"env_passthrough may not name {', '.join(refused)}")
    source = os.environ if source is None else source
    env = {name: source[name] for name in (*BASE_VARS, *names) if name in source}
    env.setdefault("PATH", os.defpath)
    env.setdefault("LANG", "C.UTF-8")
    return env
