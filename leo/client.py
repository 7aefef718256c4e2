"""Temporal clients for workers, starters and tests: always with the pydantic converter."""

from __future__ import annotations

import asyncio
import time

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from leo.settings import Settings

# A dev server that has just opened its port can still answer "Frontend is not healthy yet".
STARTING_UP_SECONDS = 20.0


async def connect_client(settings: Settings) -> Client:
    """The one way to connect to Temporal here, so no caller can forget the converter."""
    address = settings.temporal_address or "127.0.0.1:7233"
    deadline = time.monotonic() + STARTING_UP_SECONDS
    while True:
        try:
            return await Client.connect(
                address,
                namespace=settings.temporal_namespace,
                data_converter=pydantic_data_converter,
            )
        except RuntimeError as exc:
            # Only a server that is still starting is waited for; anything else is an error.
            if "not healthy" not in str(exc) or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
