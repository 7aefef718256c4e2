"""Temporal clients for workers, starters and tests: always with the pydantic converter."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from leo.settings import Settings


async def connect_client(settings: Settings) -> Client:
    """The one way to connect to Temporal here, so no caller can forget the converter."""
    address = settings.temporal_address or "127.0.0.1:7233"
    return await Client.connect(
        address, namespace=settings.temporal_namespace, data_converter=pydantic_data_converter
    )
