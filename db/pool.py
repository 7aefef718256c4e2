"""asyncpg pools with JSON codecs, the one way this project connects to PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import ssl
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from asyncpg.pool import PoolConnectionProxy

# Anything a single statement can run on: a connection, a pooled connection, or the pool.
Executor = asyncpg.Connection | PoolConnectionProxy | asyncpg.Pool


async def init_connection(conn: asyncpg.Connection) -> None:
    # jsonb in and out as Python values, so no call site hand-encodes JSON.
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(
            type_name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )


# No statement of ours runs for long: a stuck one (a lost connection, a lock held elsewhere)
# fails after this many seconds, so that the activity's attempt fails and is retried.
COMMAND_TIMEOUT_SECONDS = 30.0


# How long opening a connection may take before it counts as "PostgreSQL is unreachable".
CONNECT_TIMEOUT_SECONDS = 15.0


class DatabaseUnavailable(ConnectionError):
    """PostgreSQL cannot be reached, refused the login, or its TLS certificate did not verify.

    The message names PostgreSQL and the server (never the password). A ConnectionError (so an
    OSError), so callers that treat lost connections as retryable keep doing so.
    """


def redact_dsn(dsn: str) -> str:
    """The DSN with its password replaced, for messages."""
    try:
        parts = urlsplit(dsn)
        if parts.password:
            netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
            return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return "the configured server"
    return dsn


def _unavailable(dsn: str, exc: BaseException) -> DatabaseUnavailable:
    reason = " ".join(str(exc).split()) or type(exc).__name__
    hint = "check LEO_DATABASE_URL"
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = f"the server's TLS certificate did not verify ({reason})"
        hint = (
            "check sslrootcert (the CA that signed the server's certificate) and, with "
            "sslmode=verify-full, that the URL's host is named in the certificate"
        )
    elif isinstance(exc, ssl.SSLError):
        reason = f"TLS failed ({reason})"
        hint = "check sslmode, sslrootcert, sslcert and sslkey in LEO_DATABASE_URL"
    elif isinstance(exc, TimeoutError):
        reason = f"no answer in {CONNECT_TIMEOUT_SECONDS:g} s"
    return DatabaseUnavailable(
        f"cannot connect to PostgreSQL at {redact_dsn(dsn)}: {reason}; {hint}"
    )


async def keep_session(conn: asyncpg.Connection) -> None:
    """The pool's `reset`: nothing to send. asyncpg still rolls back a transaction left open
    (`Connection._reset`, before this runs), so only its default reset query is skipped:
    `SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`, one round trip on
    every release (4 per handoff before issue 19).

    The invariant that makes this safe: **no session state on pooled connections**. Nothing
    that runs on a pooled connection sets a session GUC (`SET` without `LOCAL`,
    `set_config(..., false)`), takes a session-level advisory lock, LISTENs, or keeps a cursor
    or a prepared statement of its own (asyncpg's statement cache is per connection and
    harmless). Transactions scope everything: `SET LOCAL`, `pg_advisory_xact_lock`, cursors
    inside `conn.transaction()`. Whatever needs session state (the migration runner's
    session lock, a benchmark's `SET track_functions`) opens its own connection with
    `connect()` and closes it.
    """
    del conn


# What opening a connection raises when the server is away, refuses us, or fails TLS.
_CONNECT_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


def server_settings(search_path: str | None) -> dict[str, str]:
    """Startup settings of a connection: in adopt mode (`Settings.search_path`) schema leo comes
    first, so LEO's queries and calls reach its views and functions (docs/adoption.md)."""
    return {"search_path": search_path} if search_path else {}


async def create_pool(
    dsn: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    search_path: str | None = None,
    **kwargs: Any,
) -> asyncpg.Pool:
    """A pool with our JSON codecs and no reset query on release (`keep_session`). Raises
    `DatabaseUnavailable` naming the server when its first connections cannot be opened."""
    if search_path:
        kwargs["server_settings"] = {
            **kwargs.get("server_settings", {}),
            **server_settings(search_path),
        }
    kwargs.setdefault("command_timeout", COMMAND_TIMEOUT_SECONDS)
    kwargs.setdefault("timeout", CONNECT_TIMEOUT_SECONDS)
    kwargs.setdefault("reset", keep_session)
    try:
        pool = await asyncpg.create_pool(
            dsn, min_size=min_size, max_size=max_size, init=init_connection, **kwargs
        )
    except _CONNECT_ERRORS as exc:
        raise _unavailable(dsn, exc) from exc
    assert pool is not None
    return pool


async def connect(dsn: str, *, search_path: str | None = None) -> asyncpg.Connection:
    """One connection with our JSON codecs; `DatabaseUnavailable` when it cannot be opened."""
    try:
        conn = await asyncio.wait_for(
            asyncpg.connect(dsn, server_settings=server_settings(search_path)),
            CONNECT_TIMEOUT_SECONDS,
        )
    except _CONNECT_ERRORS as exc:
        raise _unavailable(dsn, exc) from exc
    await init_connection(conn)
    return conn
