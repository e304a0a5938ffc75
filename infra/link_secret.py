"""The borrower side's secrets. The links' (domain/selfservice.py): COLLECTIONS_LINK_SECRET, or for a Temporal on
this machine the local stack's own, kept in its var dir (0600), as the development payload key is; the worker (which
sends the links) and the API (which opens them) must hold the same one. The gateway webhooks' (domain/webhooks.py):
GATEWAY_WEBHOOK_SECRET, or for a Temporal on this machine one derived from GATEWAY_API_KEY (the sandbox derives the
same). Outside the local stack both must be set: `check()` says so when the worker or the API starts."""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import uuid
from functools import lru_cache
from pathlib import Path

from domain import webhooks
from encryption.codec import is_loopback
from infra.config import settings, var_dir

MIN_BYTES = 32


class LinkSecretError(ValueError):
    pass


def _decode(text: str, where: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise LinkSecretError(f"{where}: not valid base64") from None
    if len(raw) < MIN_BYTES:
        raise LinkSecretError(f"{where}: {len(raw)} bytes; at least {MIN_BYTES} are needed")
    return raw


def dev_path() -> Path:
    return var_dir() / "link-secret"


def _dev_secret(path: Path) -> bytes:
    if not path.exists():  # created whole, once, even when processes race (link, not rename)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(base64.b64encode(secrets.token_bytes(MIN_BYTES)).decode() + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return _decode(path.read_text(), str(path))


@lru_cache(maxsize=1)
def link_secret() -> bytes:
    cfg = settings()
    if cfg.link_secret is not None:
        return _decode(cfg.link_secret, "COLLECTIONS_LINK_SECRET")
    if is_loopback(cfg.temporal_address):
        return _dev_secret(dev_path())
    raise LinkSecretError(
        f"COLLECTIONS_LINK_SECRET is not set, and Temporal at {cfg.temporal_address} is not on this machine: the "
        "borrower links need the deployment's secret (the worker and the API the same one): "
        'python -c "import base64,secrets; print(base64.b64encode(secrets.token_bytes(32)).decode())"'
    )


def webhook_secret() -> bytes:
    """Not cached: the tests point the API at gateways with different keys."""
    cfg = settings()
    if cfg.webhook_secret:
        return cfg.webhook_secret.encode()
    if is_loopback(cfg.temporal_address):
        return webhooks.derived_secret(cfg.gateway_api_key)
    raise LinkSecretError(
        f"GATEWAY_WEBHOOK_SECRET is not set, and Temporal at {cfg.temporal_address} is not on this machine: the "
        "gateway's payment and SMS webhooks must be signed with the deployment's own secret (the gateway holds the "
        "same one); a secret derived from the API key would let anyone who knows the key confirm payments"
    )


def check() -> None:
    """At a worker's or the API's start: both secrets can be read, and the borrower links' address is one a borrower
    can open (LinkSecretError otherwise, with what to set)."""
    cfg = settings()
    link_secret()
    webhook_secret()
    if not is_loopback(cfg.temporal_address):
        from urllib.parse import urlsplit

        host = urlsplit(cfg.public_url).hostname or ""
        if not cfg.public_url.startswith("https://") or is_loopback(host):
            raise LinkSecretError(
                f"COLLECTIONS_PUBLIC_URL is {cfg.public_url!r}: the links in borrowers' messages must be an https address "
                "they can open (e.g. https://pay.example-bank.cn)"
            )
