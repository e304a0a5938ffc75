"""The channel gateway client: one httpx.AsyncClient per worker.

Base URL and API key from the environment (GATEWAY_URL, GATEWAY_API_KEY). Every request
carries an Idempotency-Key; the gateway delivers once per key. 5xx, timeouts and 429 are
retryable (Retry-After honoured through the activity's next retry delay); any other 4xx
says the request is wrong and is final.

With tracing on (infra/tracing.py), each call is a client span `gateway <channel>` and sends its W3C
`traceparent`, under the activity's span; off, the call is made as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from domain.channels import REGISTRY
from infra import tracing

PATHS = {r.channel: r.path for r in REGISTRY}  # from the channel registry (domain/channels.py)


class GatewayRetryable(Exception):
    """The gateway may accept the same request later (5xx, timeout, 429)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class GatewayRejected(Exception):
    """The gateway says the request itself is wrong (4xx): do not retry."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"HTTP {status}: {reason}")
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class GatewaySettings:
    url: str
    api_key: str
    timeout: float = 10.0
    max_connections: int = 16

    @classmethod
    def from_env(cls) -> GatewaySettings:
        from infra.config import settings

        cfg = settings()
        return cls(
            url=cfg.gateway_url,
            api_key=cfg.gateway_api_key,
            timeout=cfg.gateway_timeout,
            max_connections=cfg.gateway_max_connections,
        )


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def _reason(resp: httpx.Response) -> str:
    try:
        err = resp.json().get("error", {})
        return f"{err.get('field', '?')}: {err.get('reason', resp.text[:200])}"
    except (ValueError, AttributeError):
        return resp.text[:200] or resp.reason_phrase


CHECKOUT_PATH = "/v1/payments/checkout"


class GatewayClient:
    def __init__(self, settings: GatewaySettings | None = None) -> None:
        self.settings = settings or GatewaySettings.from_env()
        self._client = httpx.AsyncClient(
            base_url=self.settings.url,
            headers={"Authorization": f"Bearer {self.settings.api_key}"},
            timeout=httpx.Timeout(self.settings.timeout, connect=5.0),
            limits=httpx.Limits(
                max_connections=self.settings.max_connections, max_keepalive_connections=self.settings.max_connections // 2
            ),
        )

    async def send(self, channel: str, body: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
        path, headers = PATHS[channel], {"Idempotency-Key": idempotency_key}
        with tracing.http_client_span(f"gateway {channel}", "POST", f"{self.settings.url.rstrip('/')}{path}", headers) as span:
            resp = await self._post(path, body, headers)
            tracing.http_status(span, resp.status_code)
        return self._answer(resp)

    async def checkout(self, body: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
        """A payment page at the gateway for one payment (the borrower pays by the link on their page); the gateway
        confirms it to `webhook_url` (app/webhooks.py) and sends the borrower back to `return_url`."""
        return self._answer(await self._post(CHECKOUT_PATH, body, {"Idempotency-Key": idempotency_key}))

    async def _post(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
        try:
            return await self._client.post(path, json=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise GatewayRetryable(f"timeout: {type(exc).__name__}") from exc
        except httpx.TransportError as exc:
            raise GatewayRetryable(f"transport: {type(exc).__name__}: {exc}") from exc

    @staticmethod
    def _answer(resp: httpx.Response) -> dict[str, Any]:
        if resp.status_code == 429:
            raise GatewayRetryable("HTTP 429: rate limited", _retry_after(resp.headers.get("Retry-After")))
        if resp.status_code >= 500:
            raise GatewayRetryable(f"HTTP {resp.status_code}: {_reason(resp)}", _retry_after(resp.headers.get("Retry-After")))
        if resp.status_code >= 400:
            raise GatewayRejected(resp.status_code, _reason(resp))
        return resp.json()

    async def aclose(self) -> None:
        await self._client.aclose()
