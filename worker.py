"""`python worker.py`: one LEO worker from the environment's settings (the same as `leo worker`).

The wiring lives in `leo.runtime`; nothing imports this file.
"""

from __future__ import annotations

import asyncio

from leo.infra.settings import get_settings
from leo.runtime import run_worker

if __name__ == "__main__":
    asyncio.run(run_worker(get_settings()))
