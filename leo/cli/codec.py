"""`leo codec-server`: decode LEO's encrypted payloads for the Web UI and the `temporal` CLI."""

from __future__ import annotations

from typing import Annotated

import typer

from leo.cli.common import CliError, ExitCode, Shutdown, settings, shutdown_on_signals
from leo.cli.render import stderr
from leo.services.codec_server import DEFAULT_BIND, DEFAULT_CORS_ORIGINS

commands = typer.Typer()


@commands.command("codec-server")
def codec_server(
    bind: Annotated[
        str, typer.Option("--bind", metavar="HOST:PORT", help="Where to listen.")
    ] = DEFAULT_BIND,
    cors_origin: Annotated[
        list[str] | None,
        typer.Option(
            "--cors-origin",
            metavar="ORIGIN",
            show_default=False,
            help="A browser origin allowed to call it, such as the Web UI's "
            "(repeatable). Default: "
            + " and ".join(DEFAULT_CORS_ORIGINS)
            + " (the Web UI of `leo dev`).",
        ),
    ] = None,
    authorization: Annotated[
        str | None,
        typer.Option(
            "--authorization",
            envvar="LEO_CODEC_AUTHORIZATION",
            metavar="VALUE",
            show_default=False,
            help="Require this exact Authorization header on every request, such as "
            "'Bearer <token>' (prefer the LEO_CODEC_AUTHORIZATION variable: a command line "
            "is visible to other users). Default: none required, which only a loopback "
            "--bind allows.",
        ),
    ] = None,
    allowed_host: Annotated[
        list[str] | None,
        typer.Option(
            "--allowed-host",
            metavar="NAME",
            show_default=False,
            help="A host name clients may use to reach it, checked against the Host header "
            "(repeatable). Loopback names and IP addresses are always accepted; any other "
            "name is refused, against DNS rebinding.",
        ),
    ] = None,
    new_key: Annotated[
        bool,
        typer.Option("--new-key", help="Print a new random key for LEO_PAYLOAD_KEY and exit."),
    ] = False,
) -> None:
    """Serve Temporal's codec-server protocol (POST /encode, POST /decode) with LEO's payload key.

    Reads the keys as the worker does (LEO_PAYLOAD_KEY, LEO_PAYLOAD_KEY_ID,
    LEO_PAYLOAD_OLD_KEYS). Point the Web UI's codec endpoint, or `temporal workflow show
    --codec-endpoint` (TEMPORAL_CODEC_ENDPOINT), at it to read encrypted payloads. Whoever
    can reach it can decrypt: a --bind that is not loopback is refused without --authorization.
    Bodies over 8 MiB, without a Content-Length or not JSON are refused, and idle or slow
    connections are closed after 30 s.
    """
    from leo.infra.codec import codec_for
    from leo.infra.codec import new_key as make_key
    from leo.infra.telemetry import parse_bind
    from leo.services.codec_server import CodecServer, InsecureBind

    if new_key:
        typer.echo(make_key())
        return
    # A malformed key or address is an InvalidSetting: one line, exit 2.
    codec = codec_for(settings())
    address = parse_bind(bind, "--bind")
    if codec is None:
        raise CliError(
            "LEO_PAYLOAD_KEY is not set: the codec server needs the key the workers use "
            "(`leo codec-server --new-key` prints a new one)",
            ExitCode.BAD_INPUT,
        )
    try:
        server = CodecServer(
            address,
            codec,
            cors_origins=cors_origin or DEFAULT_CORS_ORIGINS,
            authorization=authorization,
            allowed_hosts=allowed_host or (),
        )
    except InsecureBind as exc:
        raise CliError(str(exc), ExitCode.BAD_INPUT) from None
    except OSError as exc:
        raise CliError(f"cannot listen on {bind}: {exc}", ExitCode.ENVIRONMENT) from None
    stderr().print(
        f"LEO codec server at {server.url} (key ids {', '.join(codec.keys.key_ids)}; "
        f"encrypting with {codec.keys.current_id!r}), CORS for "
        f"{', '.join(sorted(server.cors_origins))}"
        + (", Authorization required" if server.authorization else "")
        + ". Ctrl-C to stop.",
        markup=False,
    )
    with shutdown_on_signals():
        try:
            server.serve_forever()
        except Shutdown:
            pass
        finally:
            server.shutdown()
            server.server_close()
    stderr().print("Codec server stopped.")
