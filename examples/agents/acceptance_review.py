#!/usr/bin/env python3
"""A command sub-agent that reviews acceptance criteria, the way an LLM reviewer would.

Contract: the handoff snapshot arrives as JSON on stdin; print one JSON object on stdout with
`verdict` (PASS, FAIL, WARNING, ...) and `confidence` (0-100). `--seconds N` stands in for the
time a real reviewer takes, so that parallel agents are visible in the demo and the Web UI.
"""

import argparse
import json
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--seconds", type=float, default=2.0)
args = parser.parse_args()
payload = json.load(sys.stdin)
time.sleep(args.seconds)

stories = payload["snapshot"]["stories"]
vague = [s["story_key"] for s in stories if any(len(str(c)) < 15 for c in s["acceptance_criteria"])]
missing = [s["story_key"] for s in stories if not s["acceptance_criteria"]]
if missing:
    result = {
        "verdict": "FAIL",
        "confidence": 90,
        "critical_issues": [f"{k}: no acceptance criteria" for k in missing],
    }
elif vague:
    result = {
        "verdict": "WARNING",
        "confidence": 75,
        "warnings": [f"{k}: a criterion is too short to test" for k in vague],
    }
else:
    result = {
        "verdict": "PASS",
        "confidence": 88,
        "detailed_analysis": f"{len(stories)} stories have testable criteria",
    }
print(json.dumps(result))
