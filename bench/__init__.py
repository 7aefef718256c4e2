"""LEO benchmarks (not tests): `python -m bench`, see bench/__main__.py and docs/performance.md.

Each benchmark module (parallel, overhead, throughput, transitions, scaling, history, adopt)
exposes NAME,
TITLE, SIZES ({"quick": ..., "full": ...}), `measure(env, **sizes)`, `report(data)` and
`chart(data)`; `bench.runner` gives each one a fresh stack and writes its results.

This package's __init__ imports nothing: the workflow sandbox imports it on its way to
bench.floor, and asyncpg (or numpy) must never be imported inside the sandbox.
"""

# In the order they run; names are the modules under bench/.
BENCHMARKS = ("parallel", "overhead", "throughput", "transitions", "scaling", "history", "adopt")
