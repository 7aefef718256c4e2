"""README, docs and code comments name only files that exist.

A moved module leaves stale paths behind in prose that no import checks; this test reads every
tracked text file for repository paths and markdown links and looks each one up.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PATH = re.compile(
    r"(?<![\w./:-])((?:[\w.-]+/)+[\w.-]+\.(?:py|md|sql|yml|yaml|json|sh|toml))(?![\w/])"
)
MARKDOWN_LINK = re.compile(r"\]\(([^)#\s]+\.md)(?:#[^)]*)?\)")
# Reference notes about other code bases (their paths name files of those projects), and this
# file, whose samples are made-up paths.
NOTES = {"docs/temporal-notes.md", "docs/leo-domain.md", "tests/docs/test_references.py"}
# Paths that are examples for users, files a benchmark writes, upstream files, or test data.
NOT_FILES_HERE = {
    "myproject/leo_gates.py",
    "myproject/leo_agents.py",
    "bench/results/overhead-py-spy.raw.txt",
    "compose/docker-compose-postgres.yml",
    "config/dynamicconfig/development-sql.yaml",
    "tests/e2e/lock.py",
}


def tracked_text_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    return [
        f
        for f in listed
        if re.search(r"\.(py|md|sql|sh|yml|toml)$", f)
        and f not in NOTES
        and not f.startswith("tests/workflows/histories/")
    ]


def references(text: str) -> set[str]:
    return {m.group(1) for m in PATH.finditer(text)} | {
        m.group(1) for m in MARKDOWN_LINK.finditer(text) if "://" not in m.group(1)
    }


def test_every_path_named_in_docs_and_code_exists() -> None:
    missing = {}
    for name in tracked_text_files():
        source = ROOT / name
        gone = sorted(
            ref
            for ref in references(source.read_text(errors="replace")) - NOT_FILES_HERE
            if not (ROOT / ref).exists() and not (source.parent / ref).exists()
        )
        if gone:
            missing[name] = gone
    assert missing == {}


def test_the_reference_finder_sees_paths_and_links() -> None:
    text = "see `leo/runtime.py` and [gates](gates.md), not https://x.io/a/b.md or v1.2"
    assert references(text) == {"leo/runtime.py", "gates.md"}
