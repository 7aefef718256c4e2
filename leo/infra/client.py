"""Temporal clients for workers, starters and tests: always with the pydantic converter.

The connection options come from the SDK's environment configuration
(`temporalio.envconfig.ClientConfig.load_client_connect_config`), the same TEMPORAL_* variables
and `temporal.toml` profiles the `temporal` CLI reads: TLS and mTLS, API keys, gRPC metadata.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.service import TLSConfig

from leo.infra.codec import codec_for, data_converter
from leo.infra.settings import Settings, TemporalUnavailable, load_temporal_config
from leo.infra.telemetry import tracing_interceptors

__all__ = ["TemporalUnavailable", "connect_client", "connect_options", "describe_security"]

# A dev server that has just opened its port can still answer "Frontend is not healthy yet".
STARTING_UP_SECONDS = 20.0
DEFAULT_ADDRESS = "127.0.0.1:7233"


def connect_options(settings: Settings) -> dict[str, Any]:
    """`Client.connect` keyword arguments: the environment configuration's TLS, API key and
    gRPC metadata, with the address and namespace of `settings` (which may point at the
    embedded dev server instead), and always our data converter (pydantic payloads, LEO's
    failure types: `leo.infra.failures`; encrypted with a payload key: `leo.infra.codec`)."""
    options: dict[str, Any] = {}
    if settings.temporal_env is not None:
        options.update(load_temporal_config(settings.temporal_env))
    options["target_host"] = settings.temporal_address or DEFAULT_ADDRESS
    options["namespace"] = settings.temporal_namespace
    # Encrypting when LEO_PAYLOAD_KEY is set (leo.infra.codec).
    options["data_converter"] = data_converter(codec_for(settings))
    return options


def describe_security(options: dict[str, Any]) -> str:
    """How a connection authenticates, for messages: "mTLS", "TLS + API key", "plaintext", ..."""
    tls = options.get("tls")
    if isinstance(tls, TLSConfig):
        mode = "mTLS" if tls.client_cert else "TLS"
    else:
        mode = "TLS" if tls else "plaintext"
    if options.get("api_key"):
        mode += " + API key"
    if options.get("rpc_metadata"):
        mode += " + gRPC metadata"
    return mode


async def connect_client(settings: Settings, *, runtime: Runtime | None = None) -> Client:
    """The one way to connect to Temporal here, so no caller can forget the converter: LEO's,
    encrypting when LEO_PAYLOAD_KEY is set; traced when OTEL_EXPORTER_OTLP_ENDPOINT is.
    `runtime` carries the worker's metrics endpoint (leo.infra.telemetry.metrics_runtime).

    Raises `TemporalUnavailable` naming the server, the namespace and the security in use.
    """
    options = connect_options(settings)
    interceptors = tracing_interceptors()
    deadline = time.monotonic() + STARTING_UP_SECONDS
    while True:
        try:
            return await Client.connect(**options, interceptors=interceptors, runtime=runtime)
        except RuntimeError as exc:
            # Only a server that is still starting is waited for; anything else is an error.
            if "not healthy" in str(exc) and time.monotonic() <= deadline:
                await asyncio.sleep(0.2)
                continue
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise TemporalUnavailable(
                f"cannot connect to Temporal at {options['target_host']} "
                f"(namespace {options['namespace']}, {describe_security(options)}): {reason}"
            ) from exc
