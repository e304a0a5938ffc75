"""Refuse big request bodies before reading them, and JSON bodies with a key twice (the
parser would keep the last of two, so what was checked and what was applied could differ).

A pure ASGI middleware, outermost, so it runs before routing and authentication:
- a Content-Length above the cap gets 413 at once, nothing read (a 100 MB body without a token was read
  whole before its 401: the API's peak went from 180 to 467 MB);
- a body sent without a length (chunked) is counted as it arrives and cut at the cap (413);
- a JSON body is parsed once with a hook that refuses a repeated key (`{"amount": "1", "amount": "900"}`
  silently took the last), 422 naming the key; otherwise the bytes are handed on unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Callable

DEFAULT_CAP = 64 * 1024


def _send_json(status: int, body: dict):
    data = json.dumps(body).encode()

    async def send_it(send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(data)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": data})

    return send_it


class DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs):
    seen = {}
    for k, v in pairs:
        if k in seen:
            raise DuplicateKey(k)
        seen[k] = v
    return seen


def duplicate_key(raw: bytes) -> str | None:
    """The first key that appears twice in one JSON object of `raw`, or None (also when it is not JSON)."""
    try:
        json.loads(raw, object_pairs_hook=_no_duplicates)
    except DuplicateKey as exc:
        return str(exc)
    except (ValueError, RecursionError):
        return None
    return None


class BodyCap:
    def __init__(
        self,
        app,
        cap: int = DEFAULT_CAP,
        caps: dict[str, int] | None = None,
        error: Callable[[str, str], dict] | None = None,
        check_json: bool = True,
    ) -> None:
        self.app, self.cap, self.caps, self.check_json = app, cap, caps or {}, check_json
        self.error = error or (lambda field, reason: {"error": {"field": field, "reason": reason}})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            return await self.app(scope, receive, send)
        cap = self.caps.get(scope.get("path", ""), self.cap)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        too_big = f"is larger than {cap} bytes; nothing was read or changed"
        if length is not None:
            if not length.isdigit() or int(length) > cap:
                return await _send_json(413, self.error("body", too_big))(send)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > cap:
                return await _send_json(413, self.error("body", too_big))(send)
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        ctype = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if self.check_json and ctype == b"application/json" and body:
            key = duplicate_key(body)
            if key is not None:
                shown = key if len(key) <= 40 else key[:40] + "..."
                return await _send_json(
                    422, self.error("body", f"the key {shown!r} appears twice in one object; nothing was changed")
                )(send)
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)
