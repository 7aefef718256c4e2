"""The lock files pin exactly what pyproject.toml asks for (hash-checked installs read them)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def pins(path: Path) -> dict[str, str]:
    found = re.findall(r"^([A-Za-z0-9_.\-]+)==([^\s\\]+)", path.read_text(), flags=re.MULTILINE)
    return {name.lower().replace("_", "-"): version for name, version in found}


def declared(requirements: list[str]) -> dict[str, str]:
    result = {}
    for requirement in requirements:
        name, _, version = requirement.partition("==")
        result[re.sub(r"\[.*\]", "", name).lower().replace("_", "-")] = version
    return result


def test_locks_pin_the_versions_pyproject_declares_and_carry_hashes() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    runtime = declared(project["project"]["dependencies"])
    dev = declared(project["dependency-groups"]["dev"])
    full, slim = pins(ROOT / "requirements.lock"), pins(ROOT / "requirements-runtime.lock")

    for name, version in {**runtime, **dev}.items():
        assert full.get(name) == version, (
            f"requirements.lock pins {name}=={full.get(name)}, pyproject wants {version}"
        )
    for name, version in runtime.items():
        assert slim.get(name) == version, f"requirements-runtime.lock pins {name}=={slim.get(name)}"
    for tool in ("pytest", "ruff", "mypy", "hypothesis", "matplotlib", "py-spy"):
        assert tool not in slim, f"{tool} (a dev tool) is in the runtime lock the image installs"
    for lock in ("requirements.lock", "requirements-runtime.lock"):
        text = (ROOT / lock).read_text()
        blocks = re.split(r"\n(?=[A-Za-z0-9])", text.strip())
        assert all("--hash=sha256:" in block for block in blocks if "==" in block), (
            f"{lock} has an unhashed pin"
        )
