#!/usr/bin/env python3
"""A command sub-agent: reads the handoff snapshot as JSON on stdin, prints a verdict as JSON.

It sleeps for LEO_AGENT_SECONDS (default 2) to stand in for real work (an LLM call, a test
run), then passes when the SD has user stories. Register it with:
  executor_kind = 'command', executor_ref = '["{python}", "examples/agents/sleepy_check.py"]'
"""

import json
import os
import sys
import time

payload = json.load(sys.stdin)
seconds = float(os.environ.get("LEO_AGENT_SECONDS", payload["sub_agent"].get("seconds", 2)))
time.sleep(seconds)
stories = payload["snapshot"]["stories"]
verdict = "PASS" if stories else "FAIL"
print(
    json.dumps(
        {
            "verdict": verdict,
            "confidence": 90 if stories else 70,
            "detailed_analysis": f"checked {len(stories)} stories in {seconds:g} s",
            "critical_issues": [] if stories else ["no user stories to check"],
        }
    )
)
