"""The layering rules of docs/architecture.md, held by reading every module's imports.

Imports inside functions and under TYPE_CHECKING count too: a deferred import is still a
dependency, and a reader of the tree should be able to trust what the folders say.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PRODUCT_PACKAGES = ("leo", "workflows", "activities", "db")
# Sub-packages of leo that are one unit each for the package-cycle rule; leo's only top-level
# module, runtime (the composition root), is a unit of its own.
LEO_SUBPACKAGES = (
    "domain",
    "infra",
    "gates",
    "sub_agents",
    "services",
    "api",
    "cli",
    "dev_stack",
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def python_files(*tops: str) -> Iterator[Path]:
    for top in tops:
        target = ROOT / top
        if target.is_file():
            yield target
        else:
            yield from sorted(p for p in target.rglob("*.py") if ".venv" not in p.parts)


def imports_of(path: Path) -> set[str]:
    """Every module `path` imports, as absolute dotted names (relative imports resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                prefix = ".".join(base)
                module = f"{prefix}.{node.module}" if node.module else prefix
            else:
                module = node.module or ""
            found.add(module)
            # `from leo.domain import search_attributes` imports a module, not a name.
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def product_modules() -> dict[str, set[str]]:
    modules = {module_name(p): imports_of(p) for p in python_files(*PRODUCT_PACKAGES)}
    modules["worker"] = imports_of(ROOT / "worker.py")
    known = set(modules)
    # Keep only imports of our own modules (a `from x import name` adds x.name: drop non-modules).
    return {m: {i for i in imps if i in known} for m, imps in modules.items()} | {
        f"{m}#external": {i for i in imps if i.split(".")[0] not in known}
        for m, imps in modules.items()
    }


def own_imports() -> dict[str, set[str]]:
    return {m: imps for m, imps in product_modules().items() if not m.endswith("#external")}


def external_imports() -> dict[str, set[str]]:
    return {
        m.removesuffix("#external"): imps
        for m, imps in product_modules().items()
        if m.endswith("#external")
    }


def top_names(imports: set[str]) -> set[str]:
    return {i.split(".")[0] for i in imports}


def unit_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "leo" and len(parts) > 1:
        return f"leo.{parts[1]}" if parts[1] in LEO_SUBPACKAGES else module
    return parts[0]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_domain_imports_neither_temporalio_nor_asyncpg_nor_outer_layers() -> None:
    for module, imports in external_imports().items():
        if module.startswith("leo.domain"):
            assert not top_names(imports) & {"temporalio", "asyncpg"}, module
    for module, imports in own_imports().items():
        if module.startswith("leo.domain"):
            outer = {i for i in imports if not i.startswith("leo.domain")}
            assert not outer, f"{module} imports {sorted(outer)}"


def test_workflow_modules_never_import_db_or_asyncpg() -> None:
    for module, imports in own_imports().items():
        if module.startswith("workflows"):
            assert "db" not in top_names(imports), f"{module} imports {sorted(imports)}"
    for module, imports in external_imports().items():
        if module.startswith("workflows"):
            assert "asyncpg" not in top_names(imports), module


def test_nothing_imports_worker_py() -> None:
    importers = [
        str(path.relative_to(ROOT))
        for path in python_files(*PRODUCT_PACKAGES, "tests", "bench", "examples")
        if "worker" in imports_of(path)
    ]
    assert importers == []


def test_product_code_does_not_depend_on_the_embedded_dev_stack() -> None:
    """Supervising the embedded PostgreSQL and dev server is dev tooling: only the CLI's
    dev-facing commands may use it."""
    for module, imports in own_imports().items():
        if module == "leo.dev_stack" or module.startswith("leo.cli"):
            continue
        assert "leo.dev_stack" not in imports, module


def test_there_is_no_import_cycle_between_packages() -> None:
    graph: dict[str, set[str]] = {}
    for module, imports in own_imports().items():
        unit = unit_of(module)
        graph.setdefault(unit, set()).update(unit_of(i) for i in imports if unit_of(i) != unit)
    assert cycles(graph) == []


@pytest.mark.parametrize(
    "package",
    [
        "leo.domain",
        "leo.gates",
        "leo.sub_agents",
        "leo.cli",
        "leo.dev_stack",
        *PRODUCT_PACKAGES[1:],
    ],
)
def test_there_is_no_import_cycle_between_modules_of_one_package(package: str) -> None:
    graph = {
        module: {i for i in imports if unit_of(i) == unit_of(module) and i != module}
        for module, imports in own_imports().items()
        if unit_of(module) == package
    }
    # A package's __init__ is imported by each of its modules; it must import none of them.
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_product_module_is_over_about_400_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): n
        for path in python_files(*PRODUCT_PACKAGES, "worker.py")
        if (n := len(path.read_text().splitlines())) > 420
    }
    assert long == {}


SQL_STATEMENT = re.compile(r"\b(SELECT\s|INSERT\s+INTO\s|UPDATE\s+\w+\s+SET\s|DELETE\s+FROM\s)")


def test_all_sql_lives_under_db() -> None:
    """Statements live in `db/` (thin modules and .sql files); everything else calls them."""
    offenders = {}
    for path in python_files("leo", "workflows", "activities", "worker.py"):
        relative = str(path.relative_to(ROOT))
        strings = [
            node.value
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
        ]
        found = [s for s in strings if SQL_STATEMENT.search(s)]
        if found:
            offenders[relative] = found
    assert offenders == {}


def test_the_sql_detector_sees_statements_and_not_prose() -> None:
    assert SQL_STATEMENT.search("SELECT claim_sd(p_sd_id => $1)")
    assert SQL_STATEMENT.search("INSERT INTO leo_sub_agents (code) VALUES ($1)")
    assert SQL_STATEMENT.search("UPDATE user_stories SET status = $1")
    assert not SQL_STATEMENT.search("select the agents this phase requires")
