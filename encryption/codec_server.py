"""The codec server: lets the Temporal Web UI (and the `temporal` CLI) show encrypted payloads decrypted,
to those who hold its token.

    python -m encryption.codec_server            # CODEC_TOKEN and PAYLOAD_KEYS (as the worker's) required
    CODEC_DEV=1 python -m encryption.codec_server  # local stack: a development token and key kept under var/

It implements the UI's remote codec protocol: `POST /decode` and `POST /encode` take and return
`{"payloads": [...]}` in protobuf JSON (metadata values and data base64), with the payload keys of
encryption/codec.py. Nothing is decoded for a caller without a valid token, and every decode is logged with who asked
(operator id and role, or `codec-token`), the namespace and, when the UI's page names it, the workflow:

- `Authorization: Bearer <operator token>`: an operator whose roles may read cases (access.permissions;
  the token is checked against the database, DATABASE_URL);
- `Authorization: Bearer <CODEC_TOKEN>`: programs, and the CLI
  (`temporal workflow show -w loan-L1001 --codec-endpoint http://localhost:8081 --codec-auth "Bearer $CODEC_TOKEN"`);
- the Web UI cannot send a header of its own, so a person signs in once at `GET /login` with the
  operator's token (or CODEC_TOKEN); that sets an HttpOnly, SameSite=Strict session cookie (8 h, a
  random id the server keeps, never the token; signing out ends it at once) that the UI's requests carry
  once "Include cross-origin credentials" is ticked in the UI's Codec Server settings. Five failed
  sign-ins from one address in a minute get 429 until the minute has passed.

`/encode` (the `temporal` CLI encodes a signal's, an update's or a query's input with it) answers only an
operator's bearer token whose roles may send a case's inputs (SEND_USE_CASES); the codec token and browser
sessions decode only, and each refusal is logged. The inputs the CLI sends reach the case without the
application layer's per-input role check: grant operator tokens with input roles as you would the API.
Bodies are capped (4 KB for /login, 8 MB for /decode and /encode) by Content-Length before they are read.

Requests with a cookie must be `application/json` (so a cross-origin one always needs a CORS
preflight), and CORS admits only the UI's origins: CODEC_CORS_ORIGINS (comma-separated; default
http://localhost:<TEMPORAL_UI_PORT> and http://127.0.0.1:<TEMPORAL_UI_PORT>, the UI port 8233).

Environment: CODEC_PORT (8081), CODEC_HOST (127.0.0.1), CODEC_TOKEN, CODEC_DEV, CODEC_CORS_ORIGINS,
CODEC_COOKIE_SECURE=1 (behind HTTPS), PAYLOAD_KEYS / PAYLOAD_KEY_ID.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import html
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs

import structlog
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from encryption.codec import (
    CodecConfigError,
    EncryptionCodec,
    Keyring,
    PayloadDecryptionError,
    ensure_dev_keyring,
    var_dir,
)
from infra.bodycap import BodyCap

log = structlog.get_logger("codec_server")
DEFAULT_PORT = 8081
COOKIE = "codec_session"
SESSION_SECONDS = 8 * 3600
MIN_TOKEN_CHARS = 24


@dataclass(frozen=True)
class Config:
    token: str
    keyring: Keyring
    origins: tuple[str, ...]
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    secure_cookie: bool = False
    dev: bool = False
    log_level: str = "info"


def dev_token_path() -> Path:
    return var_dir() / "codec-token"


def dev_token() -> str:
    """The local stack's codec token: random, created once under var/ (0600)."""
    path = dev_token_path()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(32) + "\n")
    for _ in range(50):  # another process may be writing it right now
        token = path.read_text().strip()
        if token:
            return token
        time.sleep(0.02)
    raise CodecConfigError(f"{path} is empty")


def config_from_env(env: Mapping[str, str] | None = None) -> Config:
    from infra.config import CodecServerSettings, SettingsError, load

    try:
        cfg = load(CodecServerSettings, None if env is None else dict(env))
    except SettingsError as exc:
        raise CodecConfigError(str(exc)) from None
    token = (cfg.token or "").strip()
    if not token:
        if not cfg.dev:
            raise CodecConfigError(
                "CODEC_TOKEN is not set: the codec server decrypts payloads only for holders of "
                "its token (set CODEC_TOKEN to a long random string, or CODEC_DEV=1 on a developer "
                "machine for a development token)"
            )
        token = dev_token()
    elif len(token) < MIN_TOKEN_CHARS and not cfg.dev:
        raise CodecConfigError(f"CODEC_TOKEN is {len(token)} characters; use at least {MIN_TOKEN_CHARS} random ones")
    keyring = Keyring.from_env(env)
    if keyring is None:
        if not cfg.dev:
            raise CodecConfigError("PAYLOAD_KEYS is not set: give the codec server the same keys as the workers")
        keyring = ensure_dev_keyring()
    origins = cfg.cors_origins or f"http://localhost:{cfg.ui_port},http://127.0.0.1:{cfg.ui_port}"
    return Config(
        token=token,
        keyring=keyring,
        origins=tuple(o.strip().rstrip("/") for o in origins.split(",") if o.strip()),
        host=cfg.host,
        port=cfg.port,
        secure_cookie=cfg.cookie_secure,
        dev=cfg.dev,
        log_level=cfg.server_log_level,
    )


# ---------------------------------------------------------------------------- sessions


class Sessions:
    """Server-side sign-in sessions: the cookie is a random id, the server keeps who it belongs to and until
    when. Signing out deletes it, so the cookie is dead at once: a signed cookie carrying its own expiry would
    still be accepted after sign-out, until it expired, by anyone holding a copy. A restart signs everybody out."""

    def __init__(self, seconds: int = SESSION_SECONDS) -> None:
        self.seconds = seconds
        self._live: dict[str, tuple[str, float]] = {}

    def new(self, who: str, now: float | None = None) -> str:
        now = now or time.time()
        self._live = {k: v for k, v in self._live.items() if v[1] > now}
        sid = secrets.token_urlsafe(32)
        self._live[sid] = (who, now + self.seconds)
        return sid

    def who(self, sid: str | None, now: float | None = None) -> str | None:
        found = self._live.get(sid or "")
        if found is None or found[1] <= (now or time.time()):
            return None
        return found[0]

    def end(self, sid: str | None) -> None:
        self._live.pop(sid or "", None)


class LoginLimiter:
    """At most `tries` failed sign-ins per client address in `window` seconds (429 after that)."""

    def __init__(self, tries: int = 5, window: float = 60.0) -> None:
        self.tries, self.window = tries, window
        self._failures: dict[str, list[float]] = {}

    def blocked(self, client: str, now: float | None = None) -> float:
        now = now or time.time()
        recent = [t for t in self._failures.get(client, []) if t > now - self.window]
        self._failures[client] = recent
        return (recent[0] + self.window - now) if len(recent) >= self.tries else 0.0

    def failed(self, client: str, now: float | None = None) -> None:
        self._failures.setdefault(client, []).append(now or time.time())


SIGN_IN_FORM = """<form method="post" action="/login"><label for="token">Codec token</label>
<input id="token" name="token" type="password" autocomplete="off" autofocus>
<button type="submit">Sign in</button></form>"""
SIGN_OUT_FORM = """<form method="post" action="/logout"><button type="submit">Sign out</button></form>"""

LOGIN_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Codec server sign-in</title>
<style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;line-height:1.5}}
input{{font-size:1rem;padding:.4rem;width:100%;box-sizing:border-box}}button{{font-size:1rem;padding:.4rem 1rem;margin-top:.6rem}}
.msg{{padding:.6rem;border-radius:.3rem;background:#eef}}</style></head><body>
<h1>Loan collections: codec server</h1>
{message}
{form}
<p>Then, in the Temporal Web UI: open the Codec Server settings (the data encoder icon at the top), choose
<em>Use my browser setting</em>, paste the endpoint <code>{endpoint}</code>, tick
<em>Include cross-origin credentials</em> and apply. The session lasts 8 hours.</p>
</body></html>"""


# ---------------------------------------------------------------------------- the app


# /encode: an operator who may send at least one of a case's inputs (the `temporal` CLI's signal and update)
SEND_USE_CASES = ("payment.record", "payment.reverse", "plan.agree", "outcome.call", "outcome.visit", "outcome.court")


def operator_lookup(token: str, use_cases: tuple[str, ...] = ("case.read",)) -> str | None:
    """An operator token (ct_...) whose operator may do one of `use_cases`: 'operator-id:role', else None."""
    from access.operators import TOKEN_RE, Operators
    from access.permissions import Forbidden

    if not TOKEN_RE.fullmatch(token):
        return None
    from db.engine import make_engine
    from db.repo import Repo

    global _REPO
    if _REPO is None:
        _REPO = Repo(make_engine())
    caller = Operators(_REPO).authenticate(token)
    if caller is None:
        return None
    for use_case in use_cases:
        try:
            actor = caller.actor(use_case)
        except Forbidden:
            continue
        return f"{actor.operator_id}:{actor.role}"
    return None


_REPO = None
LOGIN_CAP, CODEC_CAP = 4 * 1024, 8 * 1024 * 1024


def create_app(cfg: Config, lookup=operator_lookup) -> FastAPI:
    """`lookup(token)` names the operator of an operator token allowed to read cases (None otherwise)."""
    app = FastAPI(title="Loan collections codec server", docs_url=None, redoc_url=None, openapi_url=None)
    _add_middleware(app, cfg)
    auth = _Auth(cfg, lookup, Sessions())
    _add_codec_routes(app, EncryptionCodec(cfg.keyring), auth)
    _add_sign_in_routes(app, cfg, auth, LoginLimiter())
    return app


def _add_middleware(app: FastAPI, cfg: Config) -> None:
    """CORS for the Web UI's origins only, and the body cap around everything."""
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(cfg.origins),
        allow_credentials=True,
        allow_methods=["POST"],
        max_age=600,
        allow_headers=["Authorization", "Authorization-Extras", "Content-Type", "X-Namespace"],
    )
    # outermost: a large body is refused by its length before it is read, before any token check
    app.add_middleware(
        BodyCap,
        cap=CODEC_CAP,
        caps={"/login": LOGIN_CAP},
        check_json=False,
        error=lambda field, reason: {"detail": f"{field} {reason}"},
    )


class _Auth:
    """Who a request is: the codec token or an operator, by bearer token or by the session cookie of /login."""

    def __init__(self, cfg: Config, lookup, sessions: Sessions) -> None:
        self.cfg, self.lookup, self.sessions = cfg, lookup, sessions

    def who_is(self, token: str) -> str | None:
        """'codec-token' for the service token, 'op-...:role' for an operator allowed to read cases."""
        if hmac.compare_digest(token.encode(), self.cfg.token.encode()):
            return "codec-token"
        return self.lookup(token) if len(token) <= 200 else None

    async def authorized(self, request: Request) -> tuple[str | None, bool]:
        """(who, by cookie)"""
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and given:
            return await asyncio.to_thread(self.who_is, given.strip()), False
        return self.sessions.who(request.cookies.get(COOKIE)), True

    async def may_encode(self, request: Request) -> tuple[str | None, str]:
        """(who, why not): an operator's bearer token whose roles may send a case's inputs."""
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        token = given.strip() if scheme.lower() == "bearer" else ""
        if not token:
            return None, "encoding needs an operator's bearer token (--codec-auth 'Bearer <operator token>')"
        if hmac.compare_digest(token.encode(), self.cfg.token.encode()):
            return None, "the codec token decodes only; encoding needs an operator token whose roles may send inputs"
        who = await asyncio.to_thread(self.lookup, token, SEND_USE_CASES) if len(token) <= 200 else None
        return who, "" if who else "this token's operator may not send a case's inputs (payment, plan, outcome)"


def _refuse(status: int, detail: str) -> JSONResponse:
    """A refusal as JSON; a 401 says which scheme would do."""
    headers = {"WWW-Authenticate": 'Bearer realm="codec"'} if status == 401 else None
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _add_codec_routes(app: FastAPI, codec: EncryptionCodec, auth: _Auth) -> None:
    """/decode, /encode and /health."""

    async def transcode(request: Request, decode: bool) -> Response:
        """Both directions: who may (any reader decodes, only a sender encodes), the body, the codec, one log line."""
        if decode:
            who, by_cookie = await auth.authorized(request)
            if who is None:
                return _refuse(401, "a valid bearer token (or a session from /login) is required; nothing was decoded")
        else:
            who, why = await auth.may_encode(request)
            by_cookie = False
            if who is None:
                log.warning("encode refused", reason=why, namespace=request.headers.get("x-namespace"))
                return _refuse(403 if "may not" in why or "decodes only" in why else 401, why + "; nothing was encoded")
        if by_cookie and request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return _refuse(415, "Content-Type must be application/json")
        try:
            payloads = json_format.Parse(await request.body(), Payloads(), ignore_unknown_fields=True)
        except json_format.ParseError as exc:
            return _refuse(400, f'body is not {{"payloads": [...]}} in protobuf JSON: {exc}')
        try:
            out = await (codec.decode(payloads.payloads) if decode else codec.encode(payloads.payloads))
        except PayloadDecryptionError as exc:
            return _refuse(422, str(exc))
        referer = request.headers.get("referer", "")
        workflow = referer.split("/workflows/", 1)[1].split("/", 1)[0] if "/workflows/" in referer else None
        log.info(
            "decoded" if decode else "encoded",
            who=who,
            via="session" if by_cookie else "bearer",
            namespace=request.headers.get("x-namespace"),
            workflow=workflow,
            payloads=len(out),
        )
        return JSONResponse(json_format.MessageToDict(Payloads(payloads=out)))

    @app.post("/decode")
    async def decode(request: Request) -> Response:
        return await transcode(request, decode=True)

    @app.post("/encode")
    async def encode(request: Request) -> Response:
        """For the `temporal` CLI's signal, update and query inputs: only an operator whose roles may send a case's
        inputs (SEND_USE_CASES), by bearer token; the codec token and browser sessions decode only."""
        return await transcode(request, decode=False)

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}


def _add_sign_in_routes(app: FastAPI, cfg: Config, auth: _Auth, limiter: LoginLimiter) -> None:
    """/login and /logout: the Web UI's browser session, since the Web UI cannot send a bearer token itself."""
    endpoint = f"http://{'localhost' if cfg.host in ('127.0.0.1', '::1') else cfg.host}:{cfg.port}"

    def page(message: str = "", status: int = 200, signed_in: bool = False) -> HTMLResponse:
        """The sign-in page: the form to sign in, or (signed in) only the way to sign out."""
        form = SIGN_OUT_FORM if signed_in else SIGN_IN_FORM
        return HTMLResponse(
            LOGIN_PAGE.format(message=message, form=form, endpoint=html.escape(endpoint)),
            status_code=status,
            headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"},
        )

    @app.get("/login")
    async def login_form(request: Request) -> HTMLResponse:
        if auth.sessions.who(request.cookies.get(COOKIE)):
            return page('<p class="msg">You are signed in.</p>', signed_in=True)
        return page()

    @app.post("/login")
    async def login(request: Request) -> HTMLResponse:
        client = request.client.host if request.client else "?"
        wait = limiter.blocked(client)
        if wait:
            resp = page(f'<p class="msg">Too many failed sign-ins: try again in {int(wait) + 1} s.</p>', status=429)
            resp.headers["Retry-After"] = str(int(wait) + 1)
            return resp
        form = parse_qs((await request.body()).decode(errors="replace"))
        given = (form.get("token") or [""])[0].strip()
        who = await asyncio.to_thread(auth.who_is, given) if given else None
        if who is None:
            limiter.failed(client)
            log.warning("sign-in refused", client=client)
            return page('<p class="msg">That is not a token that may read cases.</p>', status=401)
        log.info("signed in", who=who)
        resp = page('<p class="msg">Signed in: the Temporal UI can now show payloads decrypted.</p>', signed_in=True)
        resp.set_cookie(
            COOKIE,
            auth.sessions.new(who),
            max_age=SESSION_SECONDS,
            httponly=True,
            samesite="strict",
            secure=cfg.secure_cookie,
            path="/",
        )
        return resp

    @app.post("/logout")
    async def logout(request: Request) -> HTMLResponse:
        auth.sessions.end(request.cookies.get(COOKIE))
        resp = page('<p class="msg">Signed out.</p>')
        resp.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=cfg.secure_cookie)
        return resp


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m encryption.codec_server", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", help="address to bind (CODEC_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help=f"port (CODEC_PORT, default {DEFAULT_PORT})")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    if args.host:
        env["CODEC_HOST"] = args.host
    if args.port:
        env["CODEC_PORT"] = str(args.port)
    try:
        cfg = config_from_env(env)
    except CodecConfigError as exc:
        print(f"codec server: {exc}", file=sys.stderr)
        return 2
    if cfg.dev:
        if cfg.host not in ("127.0.0.1", "::1", "localhost"):
            print("codec server: CODEC_DEV=1 serves on a loopback address only", file=sys.stderr)
            return 2
        where = "CODEC_TOKEN" if env.get("CODEC_TOKEN") else str(dev_token_path())
        print(
            f"codec server: CODEC_DEV=1: development mode, token from {where}, key id {cfg.keyring.current}. "
            f"Sign in at http://localhost:{cfg.port}/login",
            flush=True,
        )

    import uvicorn

    uvicorn.run(create_app(cfg), host=cfg.host, port=cfg.port, log_level=cfg.log_level, server_header=False)
    return 0


# ---------------------------------------------------------------------------- for tests and the stack


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_codec_server(env: Mapping[str, str], port: int | None = None, timeout: float = 20.0) -> Iterator[str]:
    """`python -m encryption.codec_server` in a subprocess on a free loopback port; yields its URL once /health answers."""
    import httpx

    port = port or free_port()
    proc_env = {**os.environ, **env, "CODEC_PORT": str(port), "CODEC_HOST": "127.0.0.1", "CODEC_LOG_LEVEL": "warning"}
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [sys.executable, "-m", "encryption.codec_server"],
        env=proc_env,
        cwd=Path(__file__).parent.parent,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"codec server exited {proc.returncode}: {log.read().decode(errors='replace')}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"codec server not answering on {url} after {timeout}s")
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


if __name__ == "__main__":
    sys.exit(main())
