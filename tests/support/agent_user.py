"""An unprivileged OS user for the LEO_AGENT_USER tests, made with `useradd` (the product
creates no user; the image or the operator does). Needs root; skips otherwise."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess

import pytest

from leo.sub_agents import accounts

AGENT_USER = "leo-test-agent"


def ensure_agent_user() -> accounts.AgentAccount:
    """The test agent user with a subordinate uid range (one uid per run)."""
    if os.geteuid() != 0:
        pytest.skip("LEO_AGENT_USER needs a root worker to switch users; this run is not root")
    try:
        pwd.getpwnam(AGENT_USER)
    except KeyError:
        useradd = shutil.which("useradd", path="/usr/sbin:/sbin:/usr/bin")
        if useradd is None:
            pytest.skip("no useradd here to create the test agent user")
        subprocess.run(
            [useradd, "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin",
             AGENT_USER],
            check=True, capture_output=True,
        )  # fmt: skip
    account = accounts.resolve(AGENT_USER)
    if not account.per_run:  # useradd gives a new user one where /etc/subuid is used
        subprocess.run(
            ["usermod", "--add-subuids", "300000-300999", AGENT_USER],
            check=True, capture_output=True,
        )  # fmt: skip
        account = accounts.resolve(AGENT_USER)
    assert account.per_run, f"{AGENT_USER} has no range in /etc/subuid"
    return account


def system_python() -> str:
    """A Python every uid may run (the suite's own interpreter may live under /root)."""
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.access(candidate, os.X_OK):
            return candidate
    pytest.skip("no system-wide python3 an agent user can run")


# Holds a token in its environment until the other agent is done looking.
HOLDER = r"""
import json, os, sys, time
meet = sys.argv[1]
open(f"{meet}/.holder", "w").write(str(os.getpid()))
os.rename(f"{meet}/.holder", f"{meet}/holder")  # whole, or not there
deadline = time.time() + 90
while not os.path.exists(f"{meet}/done") and time.time() < deadline:
    time.sleep(0.05)
print(json.dumps({"verdict": "PASS", "confidence": 60}))
"""

# Looks for the holder's token, the worker's environment and a root-only file; leaves an
# unmarked `setsid` grandchild; reports what it saw.
PRYING = r"""
import json, os, subprocess, sys, time
meet, secret_file = sys.argv[1], sys.argv[2]
temporal = sys.argv[3:]  # site-packages, address, CA certificate, lifecycle workflow id
deadline = time.time() + 90
while not os.path.exists(f"{meet}/holder") and time.time() < deadline:
    time.sleep(0.05)
holder = int(open(f"{meet}/holder").read())
def attempt(path):
    try:
        with open(path, "rb") as f:
            return "read: " + f.read().decode(errors="replace")
    except OSError as exc:
        return f"refused: {type(exc).__name__}"
launcher = os.getppid()
with open(f"/proc/{launcher}/stat") as f:
    worker = int(f.read().rsplit(")", 1)[1].split()[1])
tokens = []
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            if b"hunter2-token" in open(f"/proc/{pid}/environ", "rb").read():
                tokens.append(int(pid))
        except OSError:
            pass
grandchild = subprocess.Popen(["setsid", "env", "-i", "sleep", "300"])
open(f"{meet}/grandchild", "w").write(str(grandchild.pid))
home = os.environ["HOME"]
seen = {
    "uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(), "groups": os.getgroups(),
    "holder_uid": os.stat(f"/proc/{holder}").st_uid,
    "home_owner": os.stat(home).st_uid, "home_is_tmpdir": home == os.environ["TMPDIR"],
    "holder_environ": attempt(f"/proc/{holder}/environ"),
    "worker_environ": attempt(f"/proc/{worker}/environ"),
    "secret_file": attempt(secret_file),
    "token_seen_in": tokens,
}
if temporal:
    sys.path.insert(0, temporal[0])
    import asyncio
    from temporalio.client import Client
    from temporalio.service import TLSConfig

    async def approve(tls):
        client = await Client.connect(temporal[1], namespace="default", tls=tls)
        handle = client.get_workflow_handle(temporal[3])
        await handle.execute_update("approve", {"approver": "an agent"})
        return "approved"

    ca = open(temporal[2], "rb").read()
    for how, tls in (("tls", TLSConfig(server_root_ca_cert=ca, domain="localhost")),
                     ("plain", False)):
        try:
            seen[f"temporal_{how}"] = asyncio.run(asyncio.wait_for(approve(tls), 20))
        except Exception as exc:
            seen[f"temporal_{how}"] = f"refused: {type(exc).__name__}: {exc}"
open(f"{meet}/done", "w").write("1")
print(json.dumps({"verdict": "PASS", "confidence": 60, "detailed_analysis": json.dumps(seen)}))
"""
