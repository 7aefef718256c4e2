"""The one settings object, read from the environment once."""

from __future__ import annotations

import contextlib
import os
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field


class Settings(BaseModel):
    """Where the database and Temporal live.

    An unset ``database_url`` or ``temporal_address`` means "use the embedded stack":
    `leo dev` starts PostgreSQL and the Temporal dev server under ``data_dir``.
    """

    model_config = ConfigDict(frozen=True)

    database_url: str | None = Field(default=None, description="LEO_DATABASE_URL")
    temporal_address: str | None = Field(default=None, description="TEMPORAL_ADDRESS")
    temporal_namespace: str = Field(default="default", description="TEMPORAL_NAMESPACE")
    task_queue: str = Field(default="leo-handoffs", description="LEO_TASK_QUEUE")
    data_dir: Path = Field(default=Path(".leo"), description="LEO_DATA_DIR")
    gate_plugins: tuple[str, ...] = Field(default=(), description="LEO_GATE_PLUGINS")

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        values: dict[str, object] = {
            "database_url": env.get("LEO_DATABASE_URL") or None,
            "temporal_address": env.get("TEMPORAL_ADDRESS") or None,
            "temporal_namespace": env.get("TEMPORAL_NAMESPACE") or "default",
            "task_queue": env.get("LEO_TASK_QUEUE") or "leo-handoffs",
            "data_dir": Path(env.get("LEO_DATA_DIR") or ".leo"),
            # Comma-separated "module:function" hooks that add project gates to the registry.
            "gate_plugins": tuple(
                p.strip() for p in (env.get("LEO_GATE_PLUGINS") or "").split(",") if p.strip()
            ),
        }
        return cls.model_validate(values)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()


def redact_url(url: str) -> str:
    """The URL with its password replaced, for printing."""
    with contextlib.suppress(ValueError):
        parts = urlsplit(url)
        if parts.password:
            netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
            return urlunsplit(parts._replace(netloc=netloc))
    return url
