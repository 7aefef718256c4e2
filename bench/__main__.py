"""`python -m bench`: run the benchmarks (all by default), each on its own fresh stack.

    .venv/bin/python -m bench                     # the full set (about 10 minutes on 2 cores)
    .venv/bin/python -m bench --quick             # smaller sizes (about 2 minutes)
    .venv/bin/python -m bench overhead --profile  # one benchmark, with a py-spy profile
    .venv/bin/python -m bench --only parallel,transitions

Results go to bench/results/<name>.json and <name>.png, plus summary.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from bench.runner import BENCHMARKS, RESULTS_DIR, run_all


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="LEO benchmarks: each starts its own embedded PostgreSQL and tuned Temporal "
        "dev server, measures, prints a table, and writes JSON and a PNG chart.",
    )
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help=f"benchmarks to run: {', '.join(BENCHMARKS)}"
    )
    parser.add_argument("--only", default="", help="comma-separated benchmarks to run")
    parser.add_argument("--quick", action="store_true", help="small sizes (about 2 minutes)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="profile the handoff overhead benchmark with py-spy (needs root or ptrace rights)",
    )
    parser.add_argument(
        "--results-dir", type=Path, default=RESULTS_DIR, help=f"default: {RESULTS_DIR}"
    )
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)
    chosen = [*args.names, *[n.strip() for n in args.only.split(",") if n.strip()]]
    unknown = [n for n in chosen if n not in BENCHMARKS]
    if unknown:
        parser.error(
            f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}"
        )
    # Keep the canonical order, whatever order they were named in.
    args.chosen = [n for n in BENCHMARKS if n in chosen] if chosen else list(BENCHMARKS)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    if args.list:
        for name in BENCHMARKS:
            print(name)
        return 0
    summary = asyncio.run(
        run_all(args.chosen, quick=args.quick, results_dir=args.results_dir, profile=args.profile)
    )
    del summary  # figures are reported, not asserted: a MISS is a finding, not a failure
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Temporal's SDK can abort at interpreter exit after the work is done (sdk-python#300).
    os._exit(code)
