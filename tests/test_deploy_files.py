"""Static checks of the production deploy files: docker-compose.yml, Dockerfile, deploy/.

No Docker engine runs here, so nothing is built or started. Instead the files are parsed and
checked against each other and against our code (and the certificates job's script is run, its
output put in front of a real Temporal through an mTLS proxy): the services and their start order, pinned
images, that the worker scales, that the env the containers get is what `leo.infra.settings` reads,
that the search attributes match `leo.domain.search_attributes.SEARCH_ATTRIBUTES`, that mounted files exist, and
that the Dockerfile installs from the hash-checked lock and copies every package we ship.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import re
import shutil
import subprocess
import tomllib
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.service import TLSConfig

from leo.dev_stack import Stack
from leo.domain.search_attributes import SEARCH_ATTRIBUTES
from leo.infra.settings import TEMPORAL_ENV_VARS, Settings
from tests.tls.certs import Certificates, Pair
from tests.tls.proxy import mtls_proxy

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SHELL_SCRIPTS = sorted((ROOT / "deploy").rglob("*.sh"))
MAKE_CERTS = ROOT / "deploy" / "temporal" / "make-certs.py"

EXPECTED_SERVICES = {
    "postgresql",
    "temporal-admin-tools",
    "temporal-certs",
    "temporal",
    "temporal-create-namespace",
    "temporal-ui",
    "leo-migrate",
    "worker",
}
# Versions from docs/temporal-notes.md section 5 (samples-server compose/.env).
EXPECTED_IMAGES = {
    "postgresql": ("postgres", "16"),
    "temporal-admin-tools": ("temporalio/admin-tools", "1.30.1"),
    "temporal": ("temporalio/server", "1.30.1"),
    "temporal-create-namespace": ("temporalio/admin-tools", "1.30.1"),
    "temporal-ui": ("temporalio/ui", "2.34.0"),
}
OUR_SERVICES = ("leo-migrate", "worker")
# Built from our image too, but not running `leo`: the mTLS certificates job.
OUR_IMAGE_JOBS = ("temporal-certs",)
DEPENDS_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
# `temporal server start-dev --search-attribute` / `operator search-attribute create` types.
SEARCH_ATTRIBUTE_TYPES = {"Text", "Keyword", "Int", "Double", "Bool", "Datetime", "KeywordList"}
TEMPORAL_WORKDIR = PurePosixPath("/etc/temporal")  # the server resolves relative paths here
SETTINGS_ENV_PREFIXES = ("LEO_", "TEMPORAL_")
# What an operator sets in .env: compose refuses to start without each (`${VAR:?message}`).
REQUIRED_SECRETS = {
    "POSTGRES_PASSWORD": "pg-s3cret",
    "TEMPORAL_DB_PASSWORD": "temporal-s3cret",
    "LEO_DB_PASSWORD": "leo-s3cret",
    "LEO_WORKER_DB_PASSWORD": "worker-s3cret",
}
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|PWD|SECRET|TOKEN|API_KEY|PRIVATE_KEY")


# --- helpers ---------------------------------------------------------------------------------

_INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


class Required(Exception):
    """A `${VAR:?message}` that is not set: compose refuses to start with `message`."""


def interpolate(value: object, env: dict[str, str] | None = None) -> str:
    """Compose-style `${VAR:-default}` / `${VAR:?message}` interpolation; by default only the
    required secrets are set (as an operator's .env would)."""
    env = REQUIRED_SECRETS if env is None else env

    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["bare"]
        op, arg = match["op"], match["arg"]
        current = env.get(name)
        if op in (":-", ":?") and not current:
            current = None
        if current is not None:
            return current
        if op in (":-", "-"):
            return arg
        if op == ":?":
            raise Required(f"{name}: {arg}")
        pytest.fail(f"${{{name}}} has no default in {COMPOSE_FILE.name}: {value!r}")

    return _INTERPOLATION.sub(replace, str(value))


def load_compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict), "docker-compose.yml is not a mapping"
    return data


COMPOSE = load_compose()
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]


def service_env(name: str) -> dict[str, str]:
    """A service's environment with compose defaults applied (mapping or list form), without
    the variables it passes through from the host (`passed_through`)."""
    raw = SERVICES[name].get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) if "=" in item else (item, None) for item in raw)
    return {key: interpolate(value) for key, value in raw.items() if value is not None}


def passed_through(name: str) -> set[str]:
    """Variables a service takes from the host's environment as they are (`NAME:` with no value
    in compose): set there, they reach the container; unset, they stay unset."""
    raw = SERVICES[name].get("environment") or {}
    if isinstance(raw, list):
        return {item for item in raw if "=" not in item}
    return {key for key, value in raw.items() if value is None}


def split_image(image: str) -> tuple[str, str | None]:
    image = interpolate(image)
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        repo, tag = name.rsplit(":", 1)
        return repo, tag
    return name, (f"@{digest}" if digest else None)


def depends_on(name: str) -> dict[str, str]:
    raw = SERVICES[name].get("depends_on") or {}
    if isinstance(raw, list):
        return dict.fromkeys(raw, "service_started")
    return {
        target: (spec or {}).get("condition", "service_started") for target, spec in raw.items()
    }


def bind_mounts(name: str) -> list[tuple[Path, PurePosixPath]]:
    """(host path, container path) for the service's bind mounts (short or long syntax)."""
    mounts = []
    for volume in SERVICES[name].get("volumes") or []:
        if isinstance(volume, dict):
            if volume.get("type") != "bind":
                continue
            source, target = volume["source"], volume["target"]
        else:
            parts = interpolate(volume).split(":")
            if len(parts) < 2 or not parts[0].startswith((".", "/", "~")):
                continue
            source, target = parts[0], parts[1]
        mounts.append(((ROOT / source).resolve(), PurePosixPath(target)))
    return mounts


def host_path_for(name: str, container_path: PurePosixPath) -> Path | None:
    """The host file behind a container path, through the service's bind mounts."""
    for host, target in bind_mounts(name):
        if container_path == target:
            return host
        if target in container_path.parents:
            return host / container_path.relative_to(target)
    return None


def as_list(command: object) -> list[str]:
    if isinstance(command, str):
        return command.split()
    assert isinstance(command, list), f"unexpected command {command!r}"
    return [str(part) for part in command]


def container_ports(name: str) -> set[int]:
    ports = set()
    for spec in SERVICES[name].get("ports") or []:
        if isinstance(spec, dict):
            ports.add(int(spec["target"]))
        else:
            ports.add(int(str(spec).split("/")[0].rsplit(":", 1)[-1]))
    ports.update(int(str(port).split("/")[0]) for port in SERVICES[name].get("expose") or [])
    return ports


# The field that keeps every TEMPORAL_* variable for the SDK's environment configuration
# (TLS, API key, gRPC metadata, profiles); the address and namespace also land in their fields.
PASS_THROUGH_FIELD = "temporal_env"


def settings_env_fields() -> dict[str, str]:
    """Env var name -> Settings field, from the fields' descriptions (checked below)."""
    return {
        str(info.description): field
        for field, info in Settings.model_fields.items()
        if info.description and field != PASS_THROUGH_FIELD
    }


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        pending += stripped
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip() + " "
            continue
        keyword, _, args = pending.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
        pending = ""
    assert not pending, "Dockerfile ends inside a continued line"
    return instructions


INSTRUCTIONS = dockerfile_instructions()


def instruction_index(predicate: Callable[[str, str], object]) -> int:
    for index, (keyword, args) in enumerate(INSTRUCTIONS):
        if predicate(keyword, args):
            return index
    return -1


def copy_sources() -> list[tuple[int, str]]:
    """(instruction index, source) for every COPY/ADD from the build context."""
    sources: list[tuple[int, str]] = []
    for index, (keyword, args) in enumerate(INSTRUCTIONS):
        if keyword not in ("COPY", "ADD"):
            continue
        assert "--from" not in args, "single-stage image: every COPY is from the build context"
        if args.startswith("["):
            parts = [str(part) for part in json.loads(args)]
        else:
            parts = [part for part in args.split() if not part.startswith("--")]
        sources.extend((index, source.rstrip("/")) for source in parts[:-1])
    return sources


def shipped_paths() -> list[str]:
    """What `pip install .` needs: what the wheel includes (anchored paths), and the readme."""
    wheel = PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]
    paths = [path.lstrip("/") for path in wheel["include"]]
    return [*paths, "pyproject.toml", PYPROJECT["project"]["readme"]]


# --- docker-compose.yml ----------------------------------------------------------------------


def test_compose_has_exactly_the_expected_services() -> None:
    assert set(SERVICES) == EXPECTED_SERVICES


@pytest.mark.parametrize("name", sorted(EXPECTED_SERVICES))
def test_every_image_is_pinned(name: str) -> None:
    image = SERVICES[name].get("image")
    assert image, f"{name} has no image"
    repo, tag = split_image(image)
    assert tag, f"{name}: image {image!r} has no tag"
    assert tag != "latest", f"{name}: image {image!r} is not pinned"
    if name in EXPECTED_IMAGES:
        assert (repo, tag) == EXPECTED_IMAGES[name]
    else:
        assert tag == PYPROJECT["project"]["version"], "our image is tagged with our version"


def test_admin_tools_match_the_server_version() -> None:
    # The schema job must ship the schema of the server it prepares.
    server_tag = split_image(SERVICES["temporal"]["image"])[1]
    for name in ("temporal-admin-tools", "temporal-create-namespace"):
        assert split_image(SERVICES[name]["image"])[1] == server_tag


@pytest.mark.parametrize("name", [*OUR_SERVICES, *OUR_IMAGE_JOBS])
def test_our_services_build_this_repository(name: str) -> None:
    build = SERVICES[name]["build"]
    context = build if isinstance(build, str) else build["context"]
    dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
    assert (ROOT / context).resolve() == ROOT
    assert (ROOT / context / dockerfile).resolve() == DOCKERFILE
    # One image for both, so the migration job and the workers run the same code.
    assert SERVICES[name]["image"] == SERVICES[OUR_SERVICES[0]]["image"]


@pytest.mark.parametrize("name", sorted(EXPECTED_SERVICES))
def test_depends_on_targets_and_conditions_are_valid(name: str) -> None:
    for target, condition in depends_on(name).items():
        assert target in SERVICES, f"{name} depends on unknown service {target}"
        assert target != name
        assert condition in DEPENDS_CONDITIONS, f"{name} -> {target}: {condition}"
        if condition == "service_healthy":
            test = (SERVICES[target].get("healthcheck") or {}).get("test")
            assert test, f"{name} waits for {target} to be healthy, but it has no healthcheck"
            assert not (SERVICES[target].get("healthcheck") or {}).get("disable")
        if condition == "service_completed_successfully":
            # A one-shot job: restarting it would turn "completed" into a loop.
            assert str(SERVICES[target].get("restart", "no")) in ("no", "False", "false")


def test_dependency_graph_has_no_cycles() -> None:
    done: set[str] = set()
    remaining = {name: set(depends_on(name)) for name in SERVICES}
    while remaining:
        ready = {name for name, deps in remaining.items() if deps <= done}
        assert ready, f"dependency cycle among {sorted(remaining)}"
        done |= ready
        for name in ready:
            del remaining[name]


def test_start_order() -> None:
    assert depends_on("temporal-admin-tools") == {"postgresql": "service_healthy"}
    assert depends_on("temporal") == {
        "temporal-admin-tools": "service_completed_successfully",
        "temporal-certs": "service_completed_successfully",
    }
    assert depends_on("temporal-certs") == {}
    assert depends_on("temporal-create-namespace") == {"temporal": "service_healthy"}
    assert depends_on("temporal-ui") == {"temporal": "service_healthy"}
    assert depends_on("leo-migrate") == {"postgresql": "service_healthy"}
    assert depends_on("worker") == {
        "leo-migrate": "service_completed_successfully",
        "temporal-certs": "service_completed_successfully",
        "temporal": "service_healthy",
        "temporal-create-namespace": "service_completed_successfully",
    }


def test_postgresql_keeps_its_data_in_a_declared_volume() -> None:
    declared = set(COMPOSE.get("volumes") or {})
    named = [
        volume.split(":")[0]
        for volume in SERVICES["postgresql"]["volumes"]
        if isinstance(volume, str) and not volume.startswith((".", "/"))
    ]
    assert named, "postgresql has no named data volume"
    assert set(named) <= declared
    assert any(v.endswith(":/var/lib/postgresql/data") for v in SERVICES["postgresql"]["volumes"])


def test_worker_is_scalable() -> None:
    worker = SERVICES["worker"]
    assert "container_name" not in worker, "container_name prevents --scale worker=N"
    assert "hostname" not in worker
    assert not worker.get("ports"), "host ports would collide with --scale worker=N"
    assert interpolate(worker.get("restart", "no")) in ("always", "unless-stopped", "on-failure")


@pytest.mark.parametrize("name", OUR_SERVICES)
def test_commands_of_our_services(name: str) -> None:
    expected = {"leo-migrate": ["leo", "db", "migrate"], "worker": ["leo", "worker"]}[name]
    assert as_list(SERVICES[name]["command"]) == expected
    assert "leo" in PYPROJECT["project"]["scripts"]


def assert_lands_in_field(env_name: str, value: str, field: str) -> None:
    """Setting only `env_name` changes `field` (and no other), to `value` for text fields."""
    baseline = Settings.from_env({})
    settings = Settings.from_env({env_name: value})
    changed = {
        name for name in Settings.model_fields if getattr(settings, name) != getattr(baseline, name)
    } - {PASS_THROUGH_FIELD}
    default = getattr(baseline, field)
    assert changed == {field} or (changed == set() and str(default) == value), (
        f"{env_name}={value!r} changed {sorted(changed)}, expected {field}"
    )
    if isinstance(default, str | Path) or default is None:
        landed = getattr(settings, field)
        if isinstance(landed, SecretStr):
            landed = landed.get_secret_value()
        assert str(landed) == value, env_name


def test_settings_field_descriptions_name_the_env_vars_from_env_reads() -> None:
    # The descriptions are what the next test uses to map env vars to fields; prove them.
    fields = settings_env_fields()
    assert set(fields.values()) == set(Settings.model_fields) - {PASS_THROUGH_FIELD}
    constrained = {"LEO_SCHEMA_MODE": "adopt"}  # only its allowed values are accepted
    for env_name, field in fields.items():
        probe = constrained.get(env_name, f"/probe/{env_name.lower()}")
        assert_lands_in_field(env_name, probe, field)


@pytest.mark.parametrize("name", OUR_SERVICES)
def test_env_of_our_services_lands_in_settings(name: str, made_certs: dict[str, Path]) -> None:
    env = with_local_certs(service_env(name), made_certs)
    ours = {key: value for key, value in env.items() if key.startswith(SETTINGS_ENV_PREFIXES)}
    fields = settings_env_fields()
    unknown = set(ours) - set(fields) - set(TEMPORAL_ENV_VARS)
    assert not unknown, f"{name} sets env vars that leo.infra.settings does not read: {unknown}"
    assert "LEO_DATABASE_URL" in ours
    settings = Settings.from_env(env)
    for key, value in ours.items():
        if key not in fields:  # the SDK's TLS variables: temporal_env (checked below)
            continue
        assert_lands_in_field(key, value, fields[key])
        assert getattr(settings, fields[key]) == getattr(
            Settings.from_env({key: value}), fields[key]
        )


# The worker's Temporal client certificate, from the temporal-certs volume, unless overridden.
WORKER_TLS_DEFAULTS = {
    "TEMPORAL_TLS_CLIENT_CERT_PATH": "client.pem",
    "TEMPORAL_TLS_CLIENT_KEY_PATH": "client.key",
    "TEMPORAL_TLS_SERVER_CA_CERT_PATH": "ca.pem",
}
WORKER_TLS_DIR = PurePosixPath("/etc/leo/temporal-tls")


def load_make_certs() -> Any:
    spec = importlib.util.spec_from_file_location("make_certs", MAKE_CERTS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def made_certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """What the temporal-certs job writes, made here with the same script."""
    out = tmp_path_factory.mktemp("compose-certs")
    files: dict[str, Path] = load_make_certs().make(out / "server", out / "worker", out / "tools")
    return files


def with_local_certs(env: dict[str, str], made: dict[str, Path]) -> dict[str, str]:
    """The worker's env with its certificate volume's paths pointing at `made` ones."""
    local = made["worker_cert"].parent
    return {
        key: value.replace(str(WORKER_TLS_DIR), str(local))
        if key.startswith("TEMPORAL_TLS")
        else value
        for key, value in env.items()
    }


def test_worker_passes_the_temporal_client_configuration_through(
    made_certs: dict[str, Path],
) -> None:
    """TLS, API keys and profiles (Temporal Cloud) reach the worker from the host or an .env
    file, exactly the variables the SDK's environment configuration reads; the client
    certificate, its CA and server name default to compose's own (mTLS)."""
    assert passed_through("worker") == set(TEMPORAL_ENV_VARS) - {
        "TEMPORAL_ADDRESS",
        "TEMPORAL_NAMESPACE",
        "TEMPORAL_TLS_SERVER_NAME",
        *WORKER_TLS_DEFAULTS,
    }
    env = service_env("worker")
    for variable, name in WORKER_TLS_DEFAULTS.items():
        assert env[variable] == str(WORKER_TLS_DIR / name)
        raw = SERVICES["worker"]["environment"][variable]
        assert interpolate(raw, {**REQUIRED_SECRETS, variable: "/mine"}) == "/mine"
    assert env["TEMPORAL_TLS_SERVER_NAME"] == "temporal"
    env = with_local_certs(service_env("worker"), made_certs)
    for name in ("TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE"):
        # Overridable from the host, defaulting to the compose stack's server.
        assert SERVICES["worker"]["environment"][name].startswith(f"${{{name}:-"), name
    host = {"TEMPORAL_API_KEY": "k-123", "TEMPORAL_TLS_SERVER_NAME": "ns.tmprl.cloud"}
    settings = Settings.from_env({**env, **host})
    assert settings.temporal_env is not None
    assert {k: settings.temporal_env[k] for k in host} == host
    assert settings.temporal_address == "temporal:7233"


def test_worker_env_points_at_the_stack(made_certs: dict[str, Path]) -> None:
    env = with_local_certs(service_env("worker"), made_certs)
    assert set(env) >= {"LEO_DATABASE_URL", "TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE"}
    settings = Settings.from_env(env)
    assert settings.temporal_namespace == "default"
    assert settings.task_queue == "leo-handoffs"
    assert settings.temporal_namespace == service_env("temporal-create-namespace").get(
        "DEFAULT_NAMESPACE", "default"
    )
    # Same database; the worker logs in as the least-privilege login, migrations as the owner.
    worker, owner = (
        urlsplit(env["LEO_DATABASE_URL"]),
        urlsplit(service_env("leo-migrate")["LEO_DATABASE_URL"]),
    )
    assert (worker.hostname, worker.port, worker.path) == (owner.hostname, owner.port, owner.path)
    assert (worker.username, owner.username) == ("leo_worker_login", "leo")


@pytest.mark.parametrize("name", ["worker", "temporal-create-namespace", "temporal-ui"])
def test_temporal_address_is_the_temporal_service(name: str) -> None:
    address = service_env(name)["TEMPORAL_ADDRESS"]
    host, _, port = address.rpartition(":")
    assert host == "temporal"
    assert host in SERVICES
    assert int(port) in container_ports("temporal")
    healthcheck = " ".join(as_list(SERVICES["temporal"]["healthcheck"]["test"]))
    assert port in healthcheck, "the healthcheck probes the port clients use"


def test_database_urls_match_the_roles_created_on_postgresql() -> None:
    """leo-migrate logs in as the owner of LEO's database; the worker as a login that is a
    member of the least-privilege group leo_worker and nothing else (docs/reliability.md)."""
    init_sql = host_path_for(
        "postgresql", PurePosixPath("/docker-entrypoint-initdb.d/10-init-leo-db.sql")
    )
    assert init_sql is not None
    assert init_sql.is_file()
    sql = init_sql.read_text()
    variables = dict(re.findall(r"\\getenv\s+(\w+)\s+(\w+)", sql))
    assert variables, "the roles' passwords are read from the environment"
    for service, membership in (("leo-migrate", None), ("worker", "leo_worker")):
        url = urlsplit(service_env(service)["LEO_DATABASE_URL"])
        assert url.scheme in ("postgresql", "postgres")
        assert url.hostname == "postgresql"
        assert url.hostname in SERVICES
        assert (url.port or 5432) == 5432
        database = url.path.lstrip("/")
        assert database == "leo", "our schema lives in its own database, not Temporal's"
        role = re.search(
            rf"CREATE\s+ROLE\s+{url.username}\s+LOGIN\s+PASSWORD\s+:'(\w+)'([^;]*);", sql, re.I
        )
        assert role, f"{service}: no role {url.username} in {init_sql.name}"
        assert service_env("postgresql")[variables[role[1]]] == url.password
        if membership is None:
            assert re.search(
                rf"CREATE\s+DATABASE\s+{database}\s+OWNER\s+{url.username}\b", sql, re.I
            )
        else:
            assert re.fullmatch(rf"\s*IN\s+ROLE\s+{membership}\s*", role[2], re.I), role[0]
            assert re.search(rf"CREATE\s+ROLE\s+{membership}\s+NOLOGIN", sql, re.I)
    assert re.search(r"REVOKE\s+CREATE\s+ON\s+SCHEMA\s+public\s+FROM\s+PUBLIC", sql, re.I)


def init_sql() -> str:
    path = host_path_for(
        "postgresql", PurePosixPath("/docker-entrypoint-initdb.d/10-init-leo-db.sql")
    )
    assert path is not None
    return path.read_text()


def test_temporal_logs_in_as_its_own_role_not_the_superuser() -> None:
    """The Temporal server and its schema job use `temporal`, made by the init script with
    CREATEDB and no superuser; only the postgresql service knows the superuser's password."""
    sql = init_sql()
    variables = dict(re.findall(r"\\getenv\s+(\w+)\s+(\w+)", sql))
    role = re.search(r"CREATE\s+ROLE\s+temporal\s+([^;]*?)PASSWORD\s+:'(\w+)'([^;]*);", sql, re.I)
    assert role, "no role temporal in the init script"
    options = f"{role[1]} {role[3]}".upper().split()
    assert "LOGIN" in options and "CREATEDB" in options
    assert not {"SUPERUSER", "CREATEROLE", "REPLICATION", "BYPASSRLS"} & set(options)
    postgres = service_env("postgresql")
    assert postgres["POSTGRES_USER"] == "postgres"
    for name in ("temporal-admin-tools", "temporal"):
        env = service_env(name)
        assert env["DB"] == "postgres12"
        assert env["POSTGRES_SEEDS"] == "postgresql"
        assert env["POSTGRES_USER"] == "temporal"
        assert env["POSTGRES_PWD"] == postgres[variables[role[2]]]
        assert env["POSTGRES_PWD"] != postgres["POSTGRES_PASSWORD"]
    assert service_env("temporal-admin-tools")["SQL_PASSWORD"] == postgres[variables[role[2]]]
    # Only LEO's roles may connect to LEO's database.
    assert re.search(r"REVOKE\s+ALL\s+ON\s+DATABASE\s+leo\s+FROM\s+PUBLIC", sql, re.I)
    superuser = json.dumps(
        {n: s.get("environment") for n, s in SERVICES.items() if n != "postgresql"}
    )
    assert "POSTGRES_PASSWORD" not in superuser


def test_the_compose_file_has_no_default_secret() -> None:
    """Every password is `${VAR:?message}`: without it `docker compose up` refuses to start
    and says how to set it. No secret has a default anywhere, nor a literal value."""
    text = COMPOSE_FILE.read_text()
    for match in _INTERPOLATION.finditer(text):
        name = match["braced"] or match["bare"] or ""
        if SECRET_NAME.search(name):
            assert match["op"] == ":?", f"${{{name}}} must be required (:?), is {match[0]!r}"
            message = match["arg"] or ""
            assert name in message and "docs/deployment.md" in message, match[0]
            assert ".env" in message, f"{name}: the message says where to set it"
    required = {(m["braced"] or "") for m in _INTERPOLATION.finditer(text) if m["op"] == ":?"}
    assert required == set(REQUIRED_SECRETS)

    def literal_secrets(node: object, where: str) -> list[str]:
        found = []
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(value, str) and SECRET_NAME.search(str(key)) and "${" not in value:
                    found.append(f"{where}.{key}={value!r}")
                found += literal_secrets(value, f"{where}.{key}")
        elif isinstance(node, list):
            for index, item in enumerate(node):
                found += literal_secrets(item, f"{where}[{index}]")
        return found

    assert literal_secrets(COMPOSE, "compose") == []
    for service in SERVICES.values():  # a URL carries no literal password either
        for value in (service.get("environment") or {}).values():
            url = urlsplit(str(value)) if "://" in str(value) else None
            if url is not None and url.password is not None:
                assert str(value).count("${") and ":?" in str(value), value
    # Unset, every one of them stops compose with its own message.
    for name in REQUIRED_SECRETS:
        missing = {k: v for k, v in REQUIRED_SECRETS.items() if k != name}
        raws = [
            value
            for service in SERVICES.values()
            for value in (service.get("environment") or {}).values()
            if isinstance(value, str) and f"${{{name}:?" in value
        ]
        assert raws, f"{name} is required but used nowhere"
        for raw in raws:
            with pytest.raises(Required, match=f"^{name}: set {name} "):
                interpolate(raw, missing)


def test_passwords_reach_only_the_services_that_need_them() -> None:
    postgres = service_env("postgresql")
    assert set(REQUIRED_SECRETS) <= set(postgres)
    worker_env = json.dumps(SERVICES["worker"]["environment"])
    assert "${LEO_WORKER_DB_PASSWORD:?" in worker_env
    # The owner's and the superuser's passwords never reach a worker (nor, through it, an agent).
    for other in ("LEO_DB_PASSWORD", "POSTGRES_PASSWORD", "TEMPORAL_DB_PASSWORD"):
        assert other not in worker_env
    assert "${LEO_DB_PASSWORD:?" in SERVICES["leo-migrate"]["environment"]["LEO_DATABASE_URL"]


def service_volumes(name: str) -> dict[str, str]:
    """Named volume -> container path, for the service's named-volume mounts."""
    found = {}
    for volume in SERVICES[name].get("volumes") or []:
        source, _, rest = str(volume).partition(":")
        if source and not source.startswith((".", "/", "~")):
            found[source] = rest.split(":")[0]
    return found


def test_temporal_frontend_requires_a_client_certificate() -> None:
    env = service_env("temporal")
    assert env["TEMPORAL_TLS_REQUIRE_CLIENT_AUTH"] == "true"
    mounted = service_volumes("temporal")["temporal-tls-server"]
    for variable in (
        "TEMPORAL_TLS_SERVER_CA_CERT", "TEMPORAL_TLS_SERVER_CERT", "TEMPORAL_TLS_SERVER_KEY",
        "TEMPORAL_TLS_FRONTEND_CERT", "TEMPORAL_TLS_FRONTEND_KEY", "TEMPORAL_TLS_CLIENT1_CA_CERT",
    ):  # fmt: skip
        assert PurePosixPath(env[variable]).parent == PurePosixPath(mounted), variable
    assert env["TEMPORAL_TLS_FRONTEND_SERVER_NAME"] == "temporal"
    # Each certificate volume is mounted only where it is used: the workers' key nowhere else.
    users = {
        volume: sorted(n for n in SERVICES if volume in service_volumes(n))
        for volume in ("temporal-tls-server", "temporal-tls-worker", "temporal-tls-tools")
    }
    assert users == {
        "temporal-tls-server": ["temporal", "temporal-certs"],
        "temporal-tls-worker": ["temporal-certs", "worker"],
        "temporal-tls-tools": ["temporal-certs", "temporal-create-namespace", "temporal-ui"],
    }
    assert set(users) <= set(COMPOSE["volumes"])
    certs = as_list(SERVICES["temporal-certs"]["command"])
    assert host_path_for("temporal-certs", PurePosixPath(certs[1])) == MAKE_CERTS
    by_dir = {PurePosixPath(p) for p in certs[2:]}
    assert by_dir == {PurePosixPath(p) for p in service_volumes("temporal-certs").values()}
    tools = service_env("temporal-create-namespace")
    assert tools["TEMPORAL_TLS_CLIENT_KEY_PATH"].startswith(
        service_volumes("temporal-create-namespace")["temporal-tls-tools"]
    )
    ui = service_env("temporal-ui")
    assert ui["TEMPORAL_TLS_KEY"].startswith(service_volumes("temporal-ui")["temporal-tls-tools"])
    worker_dir = service_volumes("worker")["temporal-tls-worker"]
    assert PurePosixPath(worker_dir) == WORKER_TLS_DIR


def test_the_certificates_job_makes_a_working_mtls_set(made_certs: dict[str, Path]) -> None:
    """What temporal-certs writes: one CA signs the server (named `temporal`) and both
    clients; the workers' key is 0600; the CA's key is written nowhere."""
    for name in ("server_cert", "worker_cert", "tools_cert"):
        done = subprocess.run(
            ["openssl", "verify", "-CAfile", str(made_certs["server_ca"]), str(made_certs[name])],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
    text = subprocess.run(
        ["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", str(made_certs["server_cert"])],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "DNS:temporal" in text
    assert made_certs["worker_key"].stat().st_mode & 0o777 == 0o600
    written = {p.name for p in made_certs["server_ca"].parent.parent.rglob("*") if p.is_file()}
    assert written == {
        "ca.pem",
        "server.pem",
        "server.key",
        "client.pem",
        "client.key",
        "tools.pem",
        "tools.key",
    }
    before = {p: p.read_bytes() for p in made_certs.values()}
    again = load_make_certs().make(
        *(made_certs[k].parent for k in ("server_ca", "worker_ca", "tools_ca"))
    )
    assert {p: p.read_bytes() for p in again.values()} == before, "a restart changes nothing"


def test_services_that_start_processes_run_an_init() -> None:
    assert SERVICES["worker"].get("init") is True


def test_search_attributes_registered_in_compose_match_leo_stack() -> None:
    command = as_list(SERVICES["temporal-create-namespace"]["command"])
    pairs = [part for part in command[1:] if "=" in part]
    registered = dict(pair.split("=", 1) for pair in pairs)
    assert len(registered) == len(pairs), "an attribute is listed twice"
    assert registered == SEARCH_ATTRIBUTES
    assert set(registered.values()) <= SEARCH_ATTRIBUTE_TYPES
    script = host_path_for("temporal-create-namespace", PurePosixPath(command[0]))
    assert script is not None
    text = script.read_text()
    assert "temporal operator search-attribute create" in text
    assert 'for pair in "$@"' in text, "the script registers every NAME=Type argument"


@pytest.mark.parametrize("name", sorted(EXPECTED_SERVICES))
def test_mounted_host_files_exist(name: str) -> None:
    for host, target in bind_mounts(name):
        assert host.exists(), f"{name} mounts {host} at {target}, which does not exist"
        assert ROOT in host.parents, f"{name} mounts {host}, outside the repository"


@pytest.mark.parametrize(
    ("name", "script"),
    [
        ("temporal-admin-tools", "deploy/temporal/setup-postgres.sh"),
        ("temporal-create-namespace", "deploy/temporal/create-namespace.sh"),
    ],
)
def test_one_shot_jobs_run_our_mounted_scripts(name: str, script: str) -> None:
    service = SERVICES[name]
    assert as_list(service["entrypoint"]) == ["/bin/sh"]
    command = as_list(service["command"])
    assert host_path_for(name, PurePosixPath(command[0])) == ROOT / script


def test_temporal_dynamic_config_is_mounted_and_valid() -> None:
    relative = service_env("temporal")["DYNAMIC_CONFIG_FILE_PATH"]
    host = host_path_for("temporal", TEMPORAL_WORKDIR / relative)
    assert host == ROOT / "deploy/temporal/dynamicconfig/development-sql.yaml"
    assert host.is_file()
    config = yaml.safe_load(host.read_text())
    assert config, "empty dynamic config"
    for key, entries in config.items():
        assert isinstance(entries, list), key
        assert entries, key
        assert all(isinstance(entry, dict) and "value" in entry for entry in entries), key
    assert config["limit.maxIDLength"][0]["value"] == 255


def test_ui_listens_on_8080() -> None:
    assert 8080 in container_ports("temporal-ui")


# --- deploy/ shell scripts -------------------------------------------------------------------


def test_deploy_scripts_exist() -> None:
    names = {path.relative_to(ROOT).as_posix() for path in SHELL_SCRIPTS}
    assert names == {"deploy/temporal/setup-postgres.sh", "deploy/temporal/create-namespace.sh"}


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda path: path.name)
def test_shell_script_syntax_with_bash(script: Path) -> None:
    result = subprocess.run(
        ["bash", "-n", str(script)], check=False, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert script.read_text().startswith("#!/bin/sh\n")
    assert re.search(r"^set -eu$", script.read_text(), re.M), "scripts stop on errors"


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda path: path.name)
def test_shell_script_syntax_with_posix_sh(script: Path) -> None:
    # The admin-tools image runs them with /bin/sh, which is not bash.
    dash = shutil.which("dash")
    if dash is None:
        pytest.skip("dash is not installed; the bash -n check still ran")
    result = subprocess.run([dash, "-n", str(script)], check=False, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda path: path.name)
def test_shell_scripts_use_only_defined_variables(script: Path) -> None:
    # Under `set -u` a misspelt variable aborts the script (the upstream create-namespace.sh
    # has `$MAX_ATTdMPTS` in its failure branch). Every variable used must be assigned in the
    # script or come from the environment the compose service gives it.
    text = "\n".join(
        line for line in script.read_text().splitlines() if not line.lstrip().startswith("#")
    )
    used = set(re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", text))
    assigned = set(re.findall(r"(?:^|[\s;(])([A-Za-z_][A-Za-z0-9_]*)=", text, re.M))
    assigned |= set(re.findall(r"\bfor\s+([A-Za-z_][A-Za-z0-9_]*)\s+in\b", text))
    assigned |= set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?])", text))
    services = [name for name in SERVICES if any(host == script for host, _ in bind_mounts(name))]
    assert services, f"{script.name} is not mounted into any service"
    provided = set().union(*(service_env(name) for name in services))
    undefined = used - assigned - provided
    assert not undefined, f"{script.name} uses undefined variables {sorted(undefined)}"


# --- Dockerfile ------------------------------------------------------------------------------


def test_dockerfile_base_image_is_pinned_python_311_slim() -> None:
    bases = [args for keyword, args in INSTRUCTIONS if keyword == "FROM"]
    assert len(bases) == 1, "single-stage image"
    image = bases[0].split()[0]
    repo, tag = split_image(image)
    assert repo == "python"
    assert tag
    assert tag != "latest"
    assert re.match(r"3\.11(\.\d+)?-slim", tag), tag
    assert PYPROJECT["project"]["requires-python"] == ">=3.11"


def test_dockerfile_installs_the_lock_with_hashes_before_the_project() -> None:
    lock_install = instruction_index(
        lambda keyword, args: (
            keyword == "RUN"
            and re.search(r"\bpip install\b", args)
            and "--require-hashes" in args.split()
            and re.search(r"(-r|--requirement)\s+requirements-runtime\.lock\b", args)
        )
    )
    assert lock_install >= 0, "no `pip install --require-hashes -r requirements-runtime.lock`"
    project_install = instruction_index(
        lambda keyword, args: (
            keyword == "RUN" and re.search(r"\bpip install\b.*--no-deps\b.*\s\.(\s|$)", args + " ")
        )
    )
    assert project_install > lock_install, "`pip install --no-deps .` comes after the lock"
    sources = {source: index for index, source in copy_sources()}
    assert sources.get("requirements-runtime.lock", 10**6) < lock_install
    # Hash checking only holds if nothing else installs dependencies.
    for keyword, args in INSTRUCTIONS:
        if keyword == "RUN" and "pip install" in args:
            assert "--require-hashes" in args or "--no-deps" in args, args


def test_dockerfile_copies_every_package_we_ship() -> None:
    copied = {source: index for index, source in copy_sources()}
    project_install = instruction_index(
        lambda keyword, args: keyword == "RUN" and "--no-deps" in args
    )
    for path in [*shipped_paths(), "examples"]:
        assert path in copied, f"the Dockerfile does not COPY {path}"
        assert copied[path] < project_install, f"{path} is copied after `pip install .`"
    for source in copied:
        assert (ROOT / source).exists(), f"COPY {source}: not in the repository"


def test_the_worker_runs_as_root_only_to_run_agents_as_the_agent_user() -> None:
    """The image's default user is root so that the worker can run each agent as its own uid
    of LEO_AGENT_USER (docs/sub-agents.md, Agent users); the migration job runs as `leo`."""
    assert not [args for keyword, args in INSTRUCTIONS if keyword == "USER"]
    env_lines = " ".join(args for keyword, args in INSTRUCTIONS if keyword == "ENV")
    match = re.search(r"\bLEO_AGENT_USER=(\S+)", env_lines)
    assert match, "the image does not set LEO_AGENT_USER"
    agent = match[1]
    runs = " ".join(args for keyword, args in INSTRUCTIONS if keyword == "RUN")
    created = re.search(rf"\buseradd\b([^&;]*)\s{re.escape(agent)}(\s|;|$)", runs)
    assert created, f"user {agent} is never created"
    assert "--system" not in created[1] and "nologin" in created[1]
    assert re.search(rf"usermod\s+--add-subuids\s+\d+-\d+\s+[^&;]*\b{agent}\b", runs), (
        "the agent user gets a subordinate uid range (one uid per run)"
    )
    assert as_list(SERVICES["worker"].get("user", "0:0")) in (["0:0"], ["root"])
    assert SERVICES["leo-migrate"]["user"] == "leo"
    assert re.search(r"\buseradd\b[^&;]*\sleo(\s|$)", runs)
    worker = SERVICES["worker"]
    assert worker["cap_drop"] == ["ALL"]
    assert set(worker["cap_add"]) == {
        "CHOWN", "DAC_OVERRIDE", "FOWNER", "KILL", "SETGID", "SETUID", "SETPCAP",
    }  # fmt: skip
    assert "no-new-privileges:true" in worker["security_opt"]


def test_dockerfile_default_command_is_leo_worker() -> None:
    commands = [args for keyword, args in INSTRUCTIONS if keyword == "CMD"]
    assert commands, "no CMD"
    assert json.loads(commands[-1]) == ["leo", "worker"], "exec form, so SIGTERM reaches leo"
    assert not [args for keyword, args in INSTRUCTIONS if keyword == "ENTRYPOINT"]
    assert "leo" in PYPROJECT["project"]["scripts"]


def test_dockerfile_data_dir_is_writable_by_the_migration_user() -> None:
    env_lines = " ".join(args for keyword, args in INSTRUCTIONS if keyword == "ENV")
    match = re.search(r"\bLEO_DATA_DIR=(\S+)", env_lines)
    assert match, "LEO_DATA_DIR is not set; the default .leo under /app is not writable"
    data_dir = match[1]
    user = SERVICES["leo-migrate"]["user"]  # the worker is root
    assert any(
        keyword == "RUN" and re.search(rf"chown\s+{user}(:\w+)?\s+{re.escape(data_dir)}\b", args)
        for keyword, args in INSTRUCTIONS
    )


def _dockerignore_match(path: str, pattern: str) -> bool:
    if pattern.startswith("**/"):
        segments = path.split("/")
        rest = pattern[3:]
        return any(fnmatch.fnmatchcase("/".join(segments[i:]), rest) for i in range(len(segments)))
    return fnmatch.fnmatchcase(path, pattern)


def _dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether the build context leaves `path` out: it or a parent matches, last rule wins."""
    parts = PurePosixPath(path).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw.removeprefix("!").strip("/")
        if any(_dockerignore_match(prefix, pattern) for prefix in prefixes):
            excluded = not negate
    return excluded


def test_dockerignore_excludes_local_state_but_not_what_is_copied() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    for path in (".venv", ".git", ".leo", ".pytest_cache", ".mypy_cache", ".ruff_cache"):
        assert _dockerignored(path, patterns), f"{path} is sent to the Docker daemon"
    assert _dockerignored("leo/__pycache__/cli.cpython-311.pyc", patterns)
    assert _dockerignored("tests/artifacts/shot.png", patterns)
    for _, source in copy_sources():
        assert not _dockerignored(source, patterns), f"COPY {source} is excluded by .dockerignore"
        for file in (ROOT / source).rglob("*.py") if (ROOT / source).is_dir() else []:
            relative = file.relative_to(ROOT).as_posix()
            if "__pycache__" not in relative:
                assert not _dockerignored(relative, patterns), relative


# --- the Grafana dashboard ----------------------------------------------------------------------

DASHBOARD = ROOT / "deploy" / "grafana" / "leo-dashboard.json"
PROMQL_WORDS = {"sum", "by", "rate", "increase", "histogram_quantile", "le", "without", "on"}


def dashboard_metric_names() -> set[str]:
    """The metric names the dashboard's PromQL reads (histogram series suffixes removed)."""
    dashboard = json.loads(DASHBOARD.read_text())
    names = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\"[^\"]*\"", "", target["expr"])
            for word in re.findall(r"[a-z_][a-z0-9_]*", expr):
                if word in PROMQL_WORDS or not word.startswith(("leo_", "temporal_")):
                    continue
                names.add(re.sub(r"_(bucket|sum|count)$", "", word))
    return names


def test_dashboard_charts_every_leo_metric_by_its_exposed_name() -> None:
    from leo.infra.metrics import METRIC_NAMES

    names = dashboard_metric_names()
    leo_names = {n for n in names if n.startswith("leo_")}
    assert leo_names == set(METRIC_NAMES), f"unknown: {leo_names - set(METRIC_NAMES)}"
    assert {n for n in names if n.startswith("temporal_")}, "no SDK worker metrics charted"


def test_dashboard_groups_only_by_labels_the_metrics_carry() -> None:
    labels = {
        "leo_handoffs_total": {"handoff_type", "outcome"},
        "leo_handoff_duration_seconds": {"handoff_type", "le"},
        "leo_gate_score": {"sd_type", "le"},
        "leo_sub_agent_duration_seconds": {"code", "verdict", "le"},
        "leo_transition_refusals_total": {"code"},
        "leo_lifecycles_total": {"outcome"},
    }
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            metrics = {m for m in labels if m in expr}
            allowed = set().union(*(labels[m] for m in metrics)) if metrics else None
            if allowed is None:
                continue
            for group in re.findall(r"by \(([^)]*)\)", expr):
                used = {g.strip() for g in group.split(",")}
                assert used <= allowed, f"{panel['title']}: {used - allowed} not on {metrics}"


def test_worker_exposes_the_metrics_port_it_binds() -> None:
    env = service_env("worker")
    host, _, port = env["LEO_METRICS_BIND"].rpartition(":")
    assert host == "0.0.0.0", "bind all interfaces inside the container, or nothing can scrape"
    assert int(port) in container_ports("worker")
    assert not SERVICES["worker"].get("ports"), "a host port would stop --scale worker=N"


async def test_the_made_certificates_admit_the_worker_and_refuse_a_client_without_one(
    made_certs: dict[str, Path], stack: Stack, tmp_path: Path
) -> None:
    """The same set in front of a real Temporal (haproxy requiring a client certificate, as
    compose's frontend does): the workers' certificate connects, verifying the server as
    `temporal`; the CA alone, which an agent could copy, does not."""
    pair = Pair(made_certs["server_cert"], made_certs["server_key"])
    certs = Certificates(
        directory=tmp_path,
        ca=Pair(made_certs["server_ca"], made_certs["server_ca"]),
        server=pair,
        client=Pair(made_certs["worker_cert"], made_certs["worker_key"]),
        other_ca=Pair(made_certs["server_ca"], made_certs["server_ca"]),
    )
    ca = made_certs["worker_ca"].read_bytes()
    with mtls_proxy(certs, stack.temporal_address, tmp_path) as address:
        worker = await Client.connect(
            address,
            tls=TLSConfig(
                server_root_ca_cert=ca,
                client_cert=made_certs["worker_cert"].read_bytes(),
                client_private_key=made_certs["worker_key"].read_bytes(),
                domain="temporal",
            ),
        )
        assert await worker.service_client.check_health()
        with pytest.raises(RuntimeError, match="Failed client connect"):
            await Client.connect(address, tls=TLSConfig(server_root_ca_cert=ca, domain="temporal"))
