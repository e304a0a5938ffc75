"""Payload encryption (encryption/codec.py) and the codec server (encryption/codec_server.py).

Unit tests of the codec and its keys; a case on the time-skipping server whose raw history holds no
amount, payment id or loan id in any payload; and the real codec server over HTTP.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import stat
import subprocess
import sys
import uuid

import httpx
import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.failure.v1 import Failure
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from domain.models import PaymentIn
from encryption import codec
from encryption.codec import CodecConfigError, EncryptionCodec, Keyring, PayloadDecryptionError
from encryption.codec_server import COOKIE, running_codec_server
from infra.config import ROOT
from tests.conftest import DATA_CONVERTER, TEST_KEY_ID
from tests.workflow_helpers import payloads_in
from workflows.case import CollectionCase


def ring(*ids: str, current: str | None = None) -> Keyring:
    return Keyring({i: os.urandom(32) for i in ids}, current or ids[0])


PAYMENT = PaymentIn(payment_id="BANK-889-SECRET", amount="10520.00", currency="CNY")


# ---------------------------------------------------------------------------- the codec


async def test_round_trip_through_the_data_converter():
    conv = codec.data_converter(ring("k1"))
    [payload] = await conv.encode([PAYMENT])
    assert payload.metadata["encoding"] == b"binary/encrypted"
    assert payload.metadata["encryption-key-id"] == b"k1"
    assert set(payload.metadata) == {"encoding", "encryption-key-id"}  # the inner encoding is hidden too
    assert b"10520.00" not in payload.data and b"BANK-889" not in payload.data
    [back] = await conv.decode([payload], [PaymentIn])
    assert back == PAYMENT
    again = await conv.encode([PAYMENT])
    assert again[0].data != payload.data  # a fresh nonce each time


async def test_an_unknown_key_id_is_refused_clearly():
    [payload] = await codec.data_converter(ring("old-2025")).encode([PAYMENT])
    with pytest.raises(PayloadDecryptionError, match=r"key id 'old-2025', which is not among the known keys \(new-2026\)"):
        await EncryptionCodec(ring("new-2026")).decode([payload])


async def test_a_wrong_key_under_a_known_id_fails_authentication():
    [payload] = await codec.data_converter(ring("k1")).encode([PAYMENT])
    with pytest.raises(PayloadDecryptionError, match="failed authentication"):
        await EncryptionCodec(ring("k1")).decode([payload])  # same id, another key


async def test_tampering_is_detected():
    keys = ring("a", "b")
    c = EncryptionCodec(keys)
    [payload] = await c.encode([Payload(metadata={"encoding": b"json/plain"}, data=b'"10520.00"')])
    for i in (0, len(payload.data) // 2, len(payload.data) - 1):  # nonce, ciphertext, tag
        bad = Payload()
        bad.CopyFrom(payload)
        bad.data = payload.data[:i] + bytes([payload.data[i] ^ 1]) + payload.data[i + 1 :]
        with pytest.raises(PayloadDecryptionError, match="failed authentication"):
            await c.decode([bad])
    relabelled = Payload()
    relabelled.CopyFrom(payload)
    relabelled.metadata["encryption-key-id"] = b"b"  # the key id is bound as associated data
    with pytest.raises(PayloadDecryptionError, match="failed authentication"):
        await c.decode([relabelled])
    truncated = Payload(metadata=payload.metadata, data=payload.data[:10])
    with pytest.raises(PayloadDecryptionError, match="truncated"):
        await c.decode([truncated])


async def test_rotation_decrypts_with_any_known_key_and_plaintext_passes_through():
    old = ring("2025")
    [sealed_old] = await EncryptionCodec(old).encode([Payload(metadata={"encoding": b"json/plain"}, data=b"1")])
    rotated = Keyring({**old.keys, "2026": os.urandom(32)}, "2026")
    c = EncryptionCodec(rotated)
    plain = Payload(metadata={"encoding": b"json/plain"}, data=b'"written before encryption"')
    assert await c.decode([sealed_old, plain]) == [Payload(metadata={"encoding": b"json/plain"}, data=b"1"), plain]
    [sealed_new] = await c.encode([plain])
    assert sealed_new.metadata["encryption-key-id"] == b"2026"


async def test_failure_messages_are_encrypted_too():
    failure = Failure()
    await DATA_CONVERTER.encode_failure(ApplicationError("refused: amount 10520.00 for BANK-889"), failure)
    assert "10520" not in str(failure) and "BANK-889" not in str(failure)
    assert failure.encoded_attributes.metadata["encoding"] == b"binary/encrypted"
    err = await DATA_CONVERTER.decode_failure(failure)
    assert "amount 10520.00 for BANK-889" in str(err)


KEY = base64.b64encode(b"k" * 32).decode()


@pytest.mark.parametrize(
    "spec, current, message",
    [
        ("", None, "no keys"),
        ("k1", None, "entry 1 is not 'id:base64key'"),
        (f"k1:{KEY},k1:{KEY}", "k1", "appears twice"),
        ("k1:not base64!", None, "not valid base64"),
        (f"k1:{base64.b64encode(b'short').decode()}", None, "5 bytes; AES-256 needs 32"),
        (f"k1:{KEY},k2:{KEY}", None, "PAYLOAD_KEY_ID: required when PAYLOAD_KEYS holds more than one key"),
        (f"k1:{KEY}", "k9", "'k9' is not one of the ids in PAYLOAD_KEYS"),
        (f"bad id:{KEY}", None, "must be 1-64 letters"),
    ],
)
def test_bad_key_configuration_says_what_is_wrong(spec, current, message):
    with pytest.raises(CodecConfigError, match=message.replace("(", r"\(")):
        Keyring.parse(spec, current)


def test_keys_come_from_the_environment_or_the_local_dev_key_or_nowhere(tmp_path, monkeypatch):
    ring_ = codec.keyring_for("temporal.bank.internal:7233", {"PAYLOAD_KEYS": f"k1:{KEY}"})
    assert ring_.current == "k1" and ring_.keys["k1"] == b"k" * 32
    with pytest.raises(CodecConfigError, match="PAYLOAD_KEYS is not set, and Temporal at temporal.bank.internal:7233"):
        codec.keyring_for("temporal.bank.internal:7233", {})
    monkeypatch.setenv("COLLECTIONS_VAR_DIR", str(tmp_path))
    dev = codec.keyring_for("127.0.0.1:7233", {})
    path = tmp_path / "payload-keys.env"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and dev.current.startswith("dev-")
    assert codec.keyring_for("localhost:7233", {}) == dev  # the same key for every local process
    assert codec.keyring_for("[::1]:7233", {}) == dev
    assert codec.is_loopback("127.0.0.2:7233") and not codec.is_loopback("10.0.0.5:7233")


def test_new_key_command_prints_a_usable_entry():
    out = subprocess.run(
        [sys.executable, "-m", "encryption.codec", "new-key", "--id", "prod-2026a"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Keyring.parse(out).keys["prod-2026a"] and len(Keyring.parse(out).keys["prod-2026a"]) == 32


# ---------------------------------------------------------------------------- a case, encrypted

# Written by the SDK's core, not through the codec: a local activity's marker metadata (sequence number,
# activity type, times; its result is encrypted) and a patch marker's patch id. No case data, and
# checked below to hold none.
SDK_BOOKKEEPING = (".marker_recorded_event_attributes.details[data]", ".marker_recorded_event_attributes.details[patch-data]")


def readable_parts(where: str, p) -> bytes:
    """What a payload shows to someone without keys. The SDK's own markers are plain JSON whose numbers are
    sequence ids and timestamps (a nanosecond field may contain any five digits, ``"nanos":561052051``), so of
    those only the strings count, and the numbers as numbers; every other payload counts byte for byte."""
    if not where.startswith(SDK_BOOKKEEPING):
        return p.SerializeToString()
    strings: list[str] = []

    def walk(v):
        if isinstance(v, dict):
            for k, x in v.items():
                strings.append(str(k))
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
        elif isinstance(v, str):
            strings.append(v)
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            assert v not in (10520, 10420), (where, v)  # an amount would be a string; a number equal to one is not

    walk(json.loads(p.data))
    return "\n".join(strings).encode()


def test_a_marker_timestamp_is_not_read_as_an_amount():
    from temporalio.api.common.v1 import Payload

    marker = SDK_BOOKKEEPING[0] + ".payloads[0]"
    stamp = Payload(metadata={"encoding": b"json/plain"}, data=b'{"seq":8,"time":{"nanos":561052051}}')
    assert b"10520" not in readable_parts(marker, stamp) and b"10520" in stamp.data
    leak = Payload(metadata={"encoding": b"json/plain"}, data=b'{"seq":8,"note":"CNY 10520.00"}')
    assert b"10520" in readable_parts(marker, leak)
    other = Payload(metadata={"encoding": b"json/plain"}, data=b'{"nanos":561052051}')
    assert b"10520" in readable_parts(".activity_task_scheduled_event_attributes.input", other)


async def test_a_case_leaves_no_amounts_or_ids_in_temporal(env, cases, monkeypatch):
    loan = f"ENC{uuid.uuid4().hex[:8]}"
    start_workflow = env.client.start_workflow

    async def with_summary(*args, **kwargs):  # as starter.py does: the summary names the loan and the amount
        return await start_workflow(*args, static_summary=f"Loan {loan} · CNY 10520.00 · policy default", **kwargs)

    monkeypatch.setattr(env.client, "start_workflow", with_summary)
    h = await cases.start(dpd=1, loan_id=loan, borrower_id=f"BORROWER-{loan}")  # 10520.00 outstanding
    monkeypatch.undo()
    paid = await h.execute_update(
        CollectionCase.record_payment, PaymentIn(payment_id=f"PAY-{loan}", amount="100.00", currency="CNY")
    )
    await cases.advance(days=8)  # reminder notice and first call: activities with amounts
    status = await cases.status(h)  # the codec client reads the case
    assert status.loan_id == loan and status.outstanding["total"] == "10420.00" and paid
    assert status.stage == "first_call"

    plain = Client(env.client.service_client, namespace=env.client.namespace)  # no keys
    # not anywhere (OutstandingAmount, a search attribute, holds 10420 as a number, by design)
    secrets_ = [b"10520.00", b"10420.00", f"PAY-{loan}".encode(), f"BORROWER-{loan}".encode(), b"Asia/Shanghai"]
    for handle in (h,):
        history = await plain.get_workflow_handle(handle.id).fetch_history()
        raw = b"".join(e.SerializeToString() for e in history.events)
        for s in secrets_:
            assert s not in raw, f"{s!r} in the raw history of {handle.id}"
        found = payloads_in(history.events[0])
        for e in history.events[1:]:
            found += payloads_in(e)
        assert len(found) > 10
        for where, p in found:
            if ".search_attributes" in where:  # plaintext by design: the server indexes them
                continue
            if not where.startswith(SDK_BOOKKEEPING):
                assert p.metadata["encoding"] == b"binary/encrypted", where
                assert p.metadata["encryption-key-id"] == TEST_KEY_ID.encode(), where
            for s in (loan.encode(), b"10520", b"10420", b"first_call", b"reminder"):  # nor in any payload
                assert s not in readable_parts(where, p), (where, s)
    # the ids visible by design: the workflow id (loan-<loan id>) and the search attributes
    assert (await plain.get_workflow_handle(h.id).describe()).typed_search_attributes is not None
    with pytest.raises(Exception, match="(?i)encoding|decode|convert"):
        await plain.get_workflow_handle(h.id).query(CollectionCase.status)  # without keys: unreadable


# ---------------------------------------------------------------------------- the codec server

TOKEN = "test-codec-token-" + "x" * 24
UI = "http://localhost:8233"


@pytest.fixture(scope="module")
def server():
    with running_codec_server({"CODEC_TOKEN": TOKEN, "CODEC_DEV": "", "TEMPORAL_UI_PORT": "8233"}) as url:
        yield url


def as_json(payloads: list[Payload]) -> dict:
    return json_format.MessageToDict(Payloads(payloads=payloads))


async def test_codec_server_decodes_for_the_token_holder(server):
    sealed = await DATA_CONVERTER.encode([PAYMENT, "plain text 10520.00"])
    auth = {"Authorization": f"Bearer {TOKEN}", "X-Namespace": "default"}
    async with httpx.AsyncClient(base_url=server, timeout=5) as http:
        r = await http.post("/decode", json=as_json(sealed), headers=auth)
        assert r.status_code == 200, r.text
        decoded = json_format.ParseDict(r.json(), Payloads()).payloads
        assert DATA_CONVERTER.payload_converter.from_payloads(decoded, [PaymentIn, str]) == [PAYMENT, "plain text 10520.00"]
        assert json.loads(decoded[0].data)["payment_id"] == "BANK-889-SECRET"
        # the codec token decodes only: /encode is for operators who may send inputs (tests/test_codec_cli.py),
        # so nobody mints payloads under the live key with it (issue 14, hole 7)
        plain = DATA_CONVERTER.payload_converter.to_payloads(["from the UI"])
        r = await http.post("/encode", json=as_json(plain), headers=auth)
        assert r.status_code == 403 and "payloads" not in r.text and "decodes only" in r.json()["detail"]
        r = await http.post("/encode", json=as_json(plain))
        assert r.status_code == 401 and "payloads" not in r.text
        # a payload under an unknown key: a clear refusal
        [foreign] = await codec.data_converter(ring("elsewhere")).encode([PAYMENT])
        r = await http.post("/decode", json=as_json([foreign]), headers=auth)
        assert r.status_code == 422 and "'elsewhere'" in r.json()["detail"]
        r = await http.post("/decode", content=b"{not json", headers=auth)
        assert r.status_code == 400


async def test_codec_server_refuses_without_a_valid_token(server):
    sealed = as_json(await DATA_CONVERTER.encode([PAYMENT]))
    async with httpx.AsyncClient(base_url=server, timeout=5) as http:
        for headers in (
            {},
            {"Authorization": "Bearer wrong-token"},
            {"Authorization": f"Basic {TOKEN}"},
            {"Authorization": f"Bearer {TOKEN}x"},
        ):
            for path in ("/decode",):
                r = await http.post(path, json=sealed, headers=headers)
                assert r.status_code == 401, (path, headers)
                assert r.headers["www-authenticate"].startswith("Bearer")
                assert "BANK-889" not in r.text and "payloads" not in r.json()
        # a forged or expired session cookie is no better
        http.cookies.set(COOKIE, "9999999999.deadbeef")
        assert (await http.post("/decode", json=sealed)).status_code == 401


async def test_codec_server_answers_the_ui_cors_preflight(server):
    async with httpx.AsyncClient(base_url=server, timeout=5) as http:
        r = await http.options(
            "/decode",
            headers={
                "Origin": UI,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,x-namespace,authorization",
            },
        )
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == UI
        assert r.headers["access-control-allow-credentials"] == "true"
        allowed = r.headers["access-control-allow-headers"].lower()
        assert {"content-type", "x-namespace", "authorization"} <= {h.strip() for h in allowed.split(",")}
        r = await http.options("/decode", headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in r.headers
        # the actual request from the UI's origin carries the CORS headers too
        sealed = as_json(await DATA_CONVERTER.encode(["x"]))
        r = await http.post("/decode", json=sealed, headers={"Origin": UI, "Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == UI


async def test_signing_in_gives_the_browser_a_session_for_the_ui(server):
    sealed = as_json(await DATA_CONVERTER.encode([PAYMENT]))
    async with httpx.AsyncClient(base_url=server, timeout=5) as http:
        r = await http.post("/login", data={"token": "wrong"})
        assert r.status_code == 401 and COOKIE not in r.cookies
        assert ">Sign in</button>" in r.text and "Sign out" not in r.text
        r = await http.post("/login", data={"token": TOKEN})
        assert r.status_code == 200 and "Signed in" in r.text
        # signed in: the page offers signing out, not signing in again, and says how to point the UI here
        assert ">Sign in</button>" not in r.text and ">Sign out</button>" in r.text
        assert "Use my browser setting" in r.text and "Include cross-origin credentials" in r.text
        again = await http.get("/login")
        assert "You are signed in" in again.text and ">Sign in</button>" not in again.text
        set_cookie = r.headers["set-cookie"].lower()
        assert "httponly" in set_cookie and "samesite=strict" in set_cookie
        value = r.cookies[COOKIE]
        assert TOKEN not in value
        r = await http.post("/decode", json=sealed)  # the cookie, as the UI sends it
        assert r.status_code == 200 and "payloads" in r.json()
        r = await http.post("/decode", content=json.dumps(sealed), headers={"Content-Type": "text/plain"})
        assert r.status_code == 415  # no simple (preflight-free) requests
        out = await http.post("/logout")
        assert ">Sign in</button>" in out.text and ">Sign out</button>" not in out.text
        assert (await http.post("/decode", json=sealed)).status_code == 401
    async with httpx.AsyncClient(base_url=server, timeout=5) as http:
        http.cookies.set(COOKIE, value)  # the old cookie, kept by a copy: dead after sign-out
        assert (await http.post("/decode", json=sealed)).status_code == 401


def test_codec_server_refuses_to_start_without_a_token_and_says_so_in_dev_mode(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("CODEC_TOKEN", "CODEC_DEV")}
    done = subprocess.run(
        [sys.executable, "-m", "encryption.codec_server", "--port", "1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2 and "CODEC_TOKEN is not set" in done.stderr
    dev_env = dict(
        env,
        CODEC_DEV="1",
        COLLECTIONS_VAR_DIR=str(tmp_path),
        PAYLOAD_KEYS="",
        PAYLOAD_KEY_ID="",
        CODEC_PORT="0",
        CODEC_HOST="0.0.0.0",
    )
    done = subprocess.run(
        [sys.executable, "-m", "encryption.codec_server"], cwd=ROOT, env=dev_env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2 and "loopback" in done.stderr
    with running_codec_server(dict(dev_env, CODEC_HOST="127.0.0.1")) as url:
        token = (tmp_path / "codec-token").read_text().strip()
        assert len(token) >= 32 and stat.S_IMODE((tmp_path / "codec-token").stat().st_mode) == 0o600
        dev_key = codec.ensure_dev_keyring(tmp_path / "payload-keys.env")
        sealed = EncryptionCodec(dev_key).encrypt(Payload(metadata={"encoding": b"json/plain"}, data=b'"dev"'))
        r = httpx.post(f"{url}/decode", json=as_json([sealed]), headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200 and base64.b64decode(r.json()["payloads"][0]["data"]) == b'"dev"'
    proc = subprocess.Popen(
        [sys.executable, "-m", "encryption.codec_server", "--port", "0"],
        cwd=ROOT,
        env=dict(dev_env, CODEC_HOST="127.0.0.1"),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert "CODEC_DEV=1: development mode" in line and str(tmp_path / "codec-token") in line
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()


def test_the_readme_codec_steps_are_complete():
    """A newcomer following the docs reaches decrypted payloads: every UI step, and the CLI with --detailed."""
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    start = text.index("**The codec server**")
    section = text[start : text.index("\n## ", start)]
    for step in (
        "/login",
        "var/codec-token",
        "Use my browser setting",
        "paste the endpoint",
        "http://localhost:8081",
        "Include cross-origin credentials",
        "Apply",
    ):
        assert step in section, f"docs/operations.md codec steps: {step!r} missing"
    cli = next(line for line in section.splitlines() if "temporal workflow show" in line)
    assert "--detailed" in cli and "--codec-endpoint" in cli


def test_sessions_end_at_sign_out_and_expire():
    from encryption.codec_server import Sessions

    sessions = Sessions(seconds=60)
    sid = sessions.new("op-000000000001:viewer", now=1000)
    assert sessions.who(sid, now=1001) == "op-000000000001:viewer"
    assert sessions.who(sid, now=1061) is None
    sid = sessions.new("codec-token", now=2000)
    sessions.end(sid)
    assert sessions.who(sid, now=2001) is None and sessions.who("forged", now=2001) is None


@pytest.fixture(scope="module")
def operator_server(tmp_path_factory):
    """The codec server with an operators database: one viewer, one admin (who may not read cases)."""
    from access.operators import Operators
    from db.engine import make_engine, migrate
    from db.repo import Repo

    url = f"sqlite:///{tmp_path_factory.mktemp('codec-ops') / 'ops.db'}"
    migrate(url)
    store = Operators(Repo(make_engine(url)))
    viewer = store.issue_token(store.add("codec viewer", ["viewer"]).id)
    admin = store.issue_token(store.add("codec admin", ["admin"]).id)
    with running_codec_server(
        {"CODEC_TOKEN": TOKEN, "CODEC_DEV": "", "TEMPORAL_UI_PORT": "8233", "DATABASE_URL": url, "LOG_FORMAT": "json"}
    ) as server:
        yield server, viewer, admin


async def test_codec_server_decodes_for_operators_who_may_read_cases_only(operator_server):
    server, viewer, admin = operator_server
    sealed = as_json(await DATA_CONVERTER.encode([PAYMENT]))
    async with httpx.AsyncClient(base_url=server, timeout=10) as http:
        r = await http.post("/decode", json=sealed, headers={"Authorization": f"Bearer {viewer.token}"})
        assert r.status_code == 200 and "payloads" in r.json()
        r = await http.post("/decode", json=sealed, headers={"Authorization": f"Bearer {admin.token}"})
        assert r.status_code == 401, "admin manages operators; it does not read cases"
        r = await http.post("/login", data={"token": viewer.token})
        assert r.status_code == 200 and viewer.token not in r.cookies[COOKIE]
        assert (await http.post("/decode", json=sealed)).status_code == 200


async def test_login_is_rate_limited_and_bodies_are_capped_before_reading(operator_server):
    server, _, _ = operator_server
    async with httpx.AsyncClient(base_url=server, timeout=10) as http:
        codes = [(await http.post("/login", data={"token": f"guess-{i}"})).status_code for i in range(7)]
        assert codes[:5] == [401] * 5 and codes[5:] == [429, 429]
        r = await http.post(
            "/login", content=b"token=" + b"x" * 100_000, headers={"content-type": "application/x-www-form-urlencoded"}
        )
        assert r.status_code == 413
    # a client that announces 100 MB and sends nothing: answered 413 at once, from the headers alone
    host, port = server.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        f"POST /decode HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {100 * 1024 * 1024}\r\n\r\n".encode()
    )
    await writer.drain()
    status = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    assert b" 413 " in status, status
