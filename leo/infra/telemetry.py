"""Metrics and traces: the SDK runtime's Prometheus endpoint and optional OpenTelemetry tracing.

Both are off unless configured. Metrics: `leo worker --metrics-bind HOST:PORT` (or
LEO_METRICS_BIND) serves Prometheus text at /metrics, the SDK's own metrics and LEO's
(leo.infra.metrics). Traces: when OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT) is set, the
client and worker carry temporalio.contrib.opentelemetry's TracingInterceptor and spans go out
over OTLP http/protobuf, configured by the standard OTEL_* variables.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING

from opentelemetry import trace
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from leo.infra.settings import InvalidSetting

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from temporalio.client import Interceptor

# Histogram buckets for LEO's metrics; the SDK's default (0.05 .. 10) suits neither scores
# (0-100) nor agents that run for minutes.
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0)
HISTOGRAM_BUCKETS: dict[str, tuple[float, ...]] = {
    "leo_gate_score": (10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 85.0, 90.0, 95.0, 100.0),
    "leo_handoff_duration_seconds": DURATION_BUCKETS,
    "leo_sub_agent_duration_seconds": DURATION_BUCKETS,
}
SUPPORTED_OTLP_PROTOCOLS = ("http/protobuf",)
TRACER_NAME = "leo"


class TelemetryError(InvalidSetting):
    """Metrics or tracing configuration that cannot work; the message names the setting."""


def parse_bind(bind: str, what: str) -> tuple[str, int]:
    host, sep, port = bind.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise TelemetryError(f"{what} must be HOST:PORT (for example 0.0.0.0:9464), not {bind!r}")
    return host.strip("[]"), int(port)


def metrics_runtime(bind: str | None) -> Runtime | None:
    """A runtime whose telemetry serves Prometheus text at http://BIND/metrics, or None (the
    SDK's default runtime, no endpoint). A process binds it once: the worker makes one."""
    if not bind:
        return None
    parse_bind(bind, "LEO_METRICS_BIND / --metrics-bind")
    return Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(
                bind_address=bind.strip(),
                histogram_bucket_overrides={k: list(v) for k, v in HISTOGRAM_BUCKETS.items()},
            )
        )
    )


# --- tracing --------------------------------------------------------------------------------

_lock = threading.Lock()
_installed: list[TracerProvider] = []


def otlp_endpoint(env: Mapping[str, str]) -> str | None:
    return env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")


def tracer_provider_from_env(env: Mapping[str, str] | None = None) -> TracerProvider | None:
    """A tracer provider exporting over OTLP as the OTEL_* variables say, or None when no OTLP
    endpoint is set. The exporter reads the endpoint, headers, timeout and compression from
    the environment itself; the service name defaults to `leo` (OTEL_SERVICE_NAME)."""
    env = os.environ if env is None else env
    if not otlp_endpoint(env):
        return None
    protocol = (
        env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    )
    if protocol not in SUPPORTED_OTLP_PROTOCOLS:
        raise TelemetryError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r} is not supported here; "
            f"use {' or '.join(SUPPORTED_OTLP_PROTOCOLS)} (port 4318 on a collector)"
        )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    attributes = {} if env.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: "leo"}
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def tracing_interceptors(env: Mapping[str, str] | None = None) -> list[Interceptor]:
    """[TracingInterceptor] when tracing is on (a provider installed, or the OTEL_* variables
    name an OTLP endpoint: that provider is then installed, once per process), else [].
    Passed to Client.connect, it also applies to every worker built on that client."""
    with _lock:
        if not _installed:
            provider = tracer_provider_from_env(env)
            if provider is None:
                return []
            _installed.append(provider)
        tracer = _installed[0].get_tracer("temporalio.contrib.opentelemetry")
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor(tracer)]


def install_tracing(provider: TracerProvider) -> None:
    """Trace with this provider from now on (instead of one built from the environment).
    LEO keeps its own provider rather than replacing OpenTelemetry's global one."""
    with _lock:
        _installed[:] = [provider]


def uninstall_tracing() -> None:
    """Flush and stop tracing; clients connected afterwards are not traced."""
    with _lock:
        providers, _installed[:] = list(_installed), []
    for provider in providers:
        provider.shutdown()


def flush_traces(timeout_millis: int = 5000) -> None:
    """Export the spans still buffered: short-lived commands call this before os._exit."""
    for provider in list(_installed):
        provider.force_flush(timeout_millis)


@contextmanager
def span(
    name: str, attributes: Mapping[str, str | int | float | bool | None]
) -> Iterator[trace.Span]:
    """A span under the current one (the activity's, when traced); a no-op without tracing.
    Attributes that are None are left out."""
    providers = list(_installed)
    tracer = providers[0].get_tracer(TRACER_NAME) if providers else trace.get_tracer(TRACER_NAME)
    with tracer.start_as_current_span(
        name, attributes={k: v for k, v in attributes.items() if v is not None}
    ) as current:
        yield current
