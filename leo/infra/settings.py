"""The one settings object, read from the environment once."""

from __future__ import annotations

import contextlib
import os
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class InvalidSetting(ValueError):
    """A setting that cannot work (a malformed key, address or protocol); the message names
    the setting. `leo` prints it as one line and exits 2."""


# The variables the Temporal SDK's environment configuration reads (temporalio.envconfig), the
# same ones the `temporal` CLI reads: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY,
# TEMPORAL_TLS*, TEMPORAL_GRPC_META_*, TEMPORAL_PROFILE and TEMPORAL_CONFIG_FILE.
TEMPORAL_PREFIX = "TEMPORAL_"
# The ones a deployment passes through (docker-compose.yml); TEMPORAL_GRPC_META_<NAME> adds
# gRPC metadata too.
TEMPORAL_ENV_VARS = (
    "TEMPORAL_ADDRESS",
    "TEMPORAL_NAMESPACE",
    "TEMPORAL_API_KEY",
    "TEMPORAL_TLS",
    "TEMPORAL_TLS_CLIENT_CERT_PATH",
    "TEMPORAL_TLS_CLIENT_CERT_DATA",
    "TEMPORAL_TLS_CLIENT_KEY_PATH",
    "TEMPORAL_TLS_CLIENT_KEY_DATA",
    "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
    "TEMPORAL_TLS_SERVER_CA_CERT_DATA",
    "TEMPORAL_TLS_SERVER_NAME",
    "TEMPORAL_TLS_DISABLE_HOST_VERIFICATION",
    "TEMPORAL_PROFILE",
    "TEMPORAL_CONFIG_FILE",
)


DEFAULT_ADOPT_ACTOR = "LEO-ORCHESTRATOR"


def schema_mode(value: str) -> Literal["native", "adopt"]:
    if value == "native":
        return "native"
    if value == "adopt":
        return "adopt"
    raise InvalidSetting(f"LEO_SCHEMA_MODE must be native or adopt, not {value!r}")


class SettingsError(ValueError):
    """The environment's configuration cannot be used (a missing profile or certificate file)."""


class TemporalUnavailable(RuntimeError):
    """Temporal cannot be reached or refused the connection; the message names the server.

    Raised by `leo.infra.client.connect_client`; defined here so the CLI can map it without importing
    the SDK's client."""


class Settings(BaseModel):
    """Where the database and Temporal live.

    An unset ``database_url`` or ``temporal_address`` means "use the embedded stack":
    `leo dev` starts PostgreSQL and the Temporal dev server under ``data_dir``. The Temporal
    address and namespace come from the SDK's environment configuration: the ``TEMPORAL_*``
    variables, or the profile (``TEMPORAL_PROFILE``) of the ``temporal.toml`` file the
    ``temporal`` CLI reads (``TEMPORAL_CONFIG_FILE``).
    """

    model_config = ConfigDict(frozen=True)

    database_url: str | None = Field(default=None, description="LEO_DATABASE_URL")
    temporal_address: str | None = Field(default=None, description="TEMPORAL_ADDRESS")
    temporal_namespace: str = Field(default="default", description="TEMPORAL_NAMESPACE")
    task_queue: str = Field(default="leo-handoffs", description="LEO_TASK_QUEUE")
    data_dir: Path = Field(default=Path(".leo"), description="LEO_DATA_DIR")
    gate_plugins: tuple[str, ...] = Field(default=(), description="LEO_GATE_PLUGINS")
    # The TEMPORAL_* variables that connections load TLS, the API key and gRPC metadata from
    # (`leo.infra.client.connect_client`). None: a plain connection to `temporal_address`, as to the
    # embedded dev server. Kept out of repr: it may hold an API key.
    temporal_env: dict[str, str] | None = Field(default=None, repr=False, description="TEMPORAL_*")
    # Observability and payload encryption: all off unless set (docs/observability.md).
    metrics_bind: str | None = Field(default=None, description="LEO_METRICS_BIND")
    payload_key: SecretStr | None = Field(default=None, description="LEO_PAYLOAD_KEY")
    payload_key_id: str = Field(default="default", min_length=1, description="LEO_PAYLOAD_KEY_ID")
    payload_old_keys: SecretStr | None = Field(default=None, description="LEO_PAYLOAD_OLD_KEYS")
    # native: LEO's own schema (`leo db migrate`). adopt: beside an existing EHG_Engineer
    # database, every LEO object in schema leo (`leo db adopt`, docs/adoption.md).
    schema_mode: Literal["native", "adopt"] = Field(default="native", description="LEO_SCHEMA_MODE")
    # The created_by of LEO's handoff rows in adopt mode; the owner registers it in their
    # handoff_actor_policy.
    adopt_actor: str = Field(
        default=DEFAULT_ADOPT_ACTOR, min_length=1, max_length=50, description="LEO_ADOPT_ACTOR"
    )
    # The unprivileged OS user command agents run as (the worker must be root to switch);
    # leo/sub_agents/accounts.py. None: agents run as the worker's own user.
    agent_user: str | None = Field(default=None, description="LEO_AGENT_USER")
    # Worker deployment versioning (docs/deployment.md, "Rolling out a release"): with a build id
    # the worker polls as version <deployment_name>.<build_id>; handoffs stay pinned to the
    # version they started on, SD-LIFECYCLE moves to the current version at its next task.
    deployment_name: str = Field(
        default="leo", min_length=1, max_length=200, description="LEO_DEPLOYMENT_NAME"
    )
    build_id: str | None = Field(
        default=None, min_length=1, max_length=200, description="LEO_BUILD_ID"
    )

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        # An empty variable counts as unset, as for LEO_*: the SDK would read TEMPORAL_TLS=""
        # as "TLS on" and TEMPORAL_API_KEY="" as a key (docker-compose passes empty values).
        temporal_env = {k: v for k, v in env.items() if k.startswith(TEMPORAL_PREFIX) and v}
        profile = load_temporal_config(temporal_env)
        values: dict[str, object] = {
            "database_url": env.get("LEO_DATABASE_URL") or None,
            "temporal_address": profile.get("target_host") or None,
            "temporal_namespace": profile.get("namespace") or "default",
            "task_queue": env.get("LEO_TASK_QUEUE") or "leo-handoffs",
            "data_dir": Path(env.get("LEO_DATA_DIR") or ".leo"),
            # Comma-separated "module:function" hooks that add project gates to the registry.
            "gate_plugins": tuple(
                p.strip() for p in (env.get("LEO_GATE_PLUGINS") or "").split(",") if p.strip()
            ),
            "temporal_env": temporal_env,
            "metrics_bind": env.get("LEO_METRICS_BIND") or None,
            "payload_key": env.get("LEO_PAYLOAD_KEY") or None,
            "payload_key_id": env.get("LEO_PAYLOAD_KEY_ID") or "default",
            "payload_old_keys": env.get("LEO_PAYLOAD_OLD_KEYS") or None,
            "schema_mode": schema_mode(env.get("LEO_SCHEMA_MODE") or "native"),
            "adopt_actor": env.get("LEO_ADOPT_ACTOR") or DEFAULT_ADOPT_ACTOR,
            "agent_user": env.get("LEO_AGENT_USER") or None,
            "deployment_name": env.get("LEO_DEPLOYMENT_NAME") or "leo",
            "build_id": env.get("LEO_BUILD_ID") or None,
        }
        return cls.model_validate(values)

    @property
    def search_path(self) -> str | None:
        """The search_path of LEO's connections: in adopt mode LEO's schema comes first, so
        the same queries and calls reach its views and functions; None keeps the server's."""
        return "leo, public" if self.schema_mode == "adopt" else None

    def with_embedded_temporal(self, address: str) -> Settings:
        """These settings pointed at the embedded dev server: a plain connection, no TLS."""
        return self.model_copy(update={"temporal_address": address, "temporal_env": None})


def load_temporal_config(temporal_env: dict[str, str]) -> dict[str, object]:
    """`Client.connect` keyword arguments from the SDK's environment configuration.

    Reads the profile file too (TEMPORAL_CONFIG_FILE, else the `temporal` CLI's default
    location). Raises `SettingsError` naming the problem: an unknown profile, a certificate
    file that cannot be read, a malformed file.
    """
    from temporalio.envconfig import ClientConfig

    try:
        return dict(ClientConfig.load_client_connect_config(override_env_vars=temporal_env))
    except Exception as exc:  # the SDK's bridge raises its own ConfigError, or OSError
        where = temporal_env.get("TEMPORAL_CONFIG_FILE") or "the default temporal.toml"
        profile = temporal_env.get("TEMPORAL_PROFILE") or "default"
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise SettingsError(
            f"the Temporal client configuration cannot be loaded (TEMPORAL_* variables, "
            f"profile {profile!r} of {where}): {reason}"
        ) from exc


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
