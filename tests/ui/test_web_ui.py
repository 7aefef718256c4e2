"""A browser check: headless Chromium opens the dev server's Web UI and finds the demo's
workflows by their search attributes. The screenshot is kept in tests/artifacts/."""

from __future__ import annotations

import asyncio
import io
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import quote

import asyncpg
import pytest
from rich.console import Console

from leo.api import LeoClient
from leo.cli.demo import run_demo
from leo.dev_stack import Stack
from leo.domain.handoffs import HandoffType
from tests.support.factories import unique_key

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
# Flags that keep headless Chromium off the network on a closed machine.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=15000",
]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    done = subprocess.run(
        [str(ROOT / "bin" / "ensure-chromium")],
        check=False,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode != 0:
        pytest.skip(f"headless Chromium is not available: {done.stderr.strip()}")
    return done.stdout.strip().splitlines()[-1]


async def browse(browser: str, url: str, *mode: str) -> str:
    argv = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={tempfile.mkdtemp()}", *mode, url]
    done = await asyncio.to_thread(
        subprocess.run, argv, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-1000:]
    return done.stdout


async def test_web_ui_lists_the_demo_workflows_by_search_attribute(
    stack: Stack, leo: LeoClient, db_pool: asyncpg.Pool
) -> None:
    browser = chromium()
    assert stack.ui_url, "the dev server was started without its Web UI"
    sd_key = unique_key("SD-LEO-INFRA-HARDENING")
    outcome = await run_demo(
        leo,
        db_pool,
        console=Console(file=io.StringIO()),
        ui_url=stack.ui_url,
        namespace="default",
        agent_seconds=0.2,
        sd_key=sd_key,
        auto_approve=True,
    )
    assert outcome.lifecycle.state == "completed"
    sd_id = outcome.lifecycle.sd_id
    # The UI lists what visibility has indexed, a moment after the runs: wait until it has all 6.
    async with asyncio.timeout(30):
        while (await leo.client.count_workflows(f'LeoSdId="{sd_id}"')).count < 6:
            await asyncio.sleep(0.2)

    query = quote(f'LeoSdId="{sd_id}"')
    url = f"{stack.ui_url}/namespaces/default/workflows?query={query}"
    dom = await browse(browser, url, "--dump-dom")
    for workflow_id in [f"SD-LIFECYCLE:{sd_id}", *(f"{h.value}:{sd_id}" for h in HandoffType)]:
        assert workflow_id in dom, f"{workflow_id} is not listed in the Web UI"
    count = re.search(r'data-testid="workflow-count">(\d+)<', dom)
    assert count is not None and count.group(1) == "6", "the UI does not count the SD's 6 workflows"

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "web-ui-demo-workflows.png"
    await browse(browser, url, f"--screenshot={shot}", "--window-size=1400,900")
    assert shot.stat().st_size > 10_000

    # The handoff's own page shows its typed result, opened from the demo's link.
    result = outcome.results[0]
    page = f"{stack.ui_url}/namespaces/default/workflows/{quote(result.workflow_id, safe='')}/{result.run_id}/history"
    dom = await browse(browser, page, "--dump-dom")
    assert result.workflow_id in dom
    assert "COMPLETED" in dom.upper()
