"""The secret the borrower links are made with (domain/selfservice.py): COLLECTIONS_LINK_SECRET, or for a Temporal
on this machine the local stack's own, kept in its var dir (0600), as the development payload key is. The worker
(which sends the links) and the API (which opens them) must hold the same one."""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import uuid
from functools import lru_cache
from pathlib import Path

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
