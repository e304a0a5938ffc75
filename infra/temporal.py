"""Connecting to Temporal with the project's data converter (pydantic, payloads encrypted: encryption/codec.py)."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.runtime import Runtime

from encryption.codec import data_converter_for
from infra.config import settings


async def connect(address: str | None = None, namespace: str | None = None, runtime: Runtime | None = None) -> Client:
    cfg = settings()
    address = address or cfg.temporal_address
    return await Client.connect(
        address,
        namespace=namespace or cfg.temporal_namespace,
        data_converter=data_converter_for(address),   # PAYLOAD_KEYS, or the local stack's dev key
        **({"runtime": runtime} if runtime else {}),
    )
