#!/usr/bin/env python3
"""A command sub-agent: every success criterion of the SD should be traceable to the PRD.

Reads the handoff snapshot as JSON on stdin and prints a verdict as JSON on stdout.
`--seconds N` simulates the work.
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

snapshot = payload["snapshot"]
criteria = snapshot["sd"]["success_criteria"]
prd = snapshot.get("prd") or {}
requirements = prd.get("functional_requirements") or []
if not criteria:
    result = {
        "verdict": "FAIL",
        "confidence": 85,
        "critical_issues": ["the SD has no success criteria"],
    }
elif not requirements:
    result = {
        "verdict": "WARNING",
        "confidence": 70,
        "warnings": ["no PRD requirements to trace the criteria to yet"],
    }
else:
    result = {
        "verdict": "PASS",
        "confidence": 82,
        "detailed_analysis": f"{len(criteria)} success criteria, {len(requirements)} PRD requirements",
    }
print(json.dumps(result))
