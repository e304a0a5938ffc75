"""Connecting to Temporal with the project's data converter."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from infra.config import settings


async def connect(address: str | None = None, namespace: str | None = None) -> Client:
    cfg = settings()
    return await Client.connect(
        address or cfg.temporal_address,
        namespace=namespace or cfg.temporal_namespace,
        data_converter=pydantic_data_converter,
    )
