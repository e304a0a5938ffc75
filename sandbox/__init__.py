"""Sandbox channel gateway: a real HTTP server standing in for the bank's channel providers.

    python -m sandbox --host 127.0.0.1 --port 8700

Tests start it in a subprocess on a free loopback port:

    from sandbox import running_gateway
    with running_gateway(api_key="k") as gw:
        httpx.post(gw.url + "/v1/sms", headers=gw.headers | {"Idempotency-Key": "..."}, json={...})
"""

from sandbox.gateway import (
    CHANNELS,
    RunningGateway,
    create_app,
    free_port,
    running_gateway,
    start_in_subprocess,
)

__all__ = ["CHANNELS", "RunningGateway", "create_app", "free_port", "running_gateway", "start_in_subprocess"]
