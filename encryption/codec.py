"""Payload encryption: every payload this project sends to Temporal is AES-256-GCM encrypted.

Temporal (its database, its history exports, its Web UI) then holds ciphertext only: case inputs,
update arguments and results, query results, activity inputs and results, summaries and details,
and failure messages and stack traces (the failure converter moves those into an encoded, hence
encrypted, attribute). What stays plaintext, by design:

- the workflow id (`loan-<loan_id>`), run ids, task queue, workflow and activity type names and
  event types: Temporal routes by them;
- the search attributes (CollectionStage, CaseStatus, OnHold, OutstandingAmount, DelinquentSince,
  NextActionAt, PolicyName, Segment): the server must read them to answer visibility queries, so
  the outstanding amount of a case is visible to whoever may list cases. No PII is in them;
- the SDK core's own marker bookkeeping, which does not pass through a codec: a local activity's
  sequence number, type and times (its result is encrypted), and `workflow.patched` ids.

Keys come from the environment:

    PAYLOAD_KEYS="2026a:<base64 32 bytes>,2025b:<base64 32 bytes>"   every key that may still be needed
    PAYLOAD_KEY_ID=2026a                                              the one new payloads are encrypted with

Each encrypted payload names its key id in its metadata (`encoding: binary/encrypted`,
`encryption-key-id: 2026a`), so rotating is: add the new key to PAYLOAD_KEYS everywhere, then
switch PAYLOAD_KEY_ID; keep old keys while any history (retention period) still uses them.
`python -m encryption.codec new-key [--id ID]` prints a fresh key entry.

Where no PAYLOAD_KEYS is set:

- against a Temporal on this machine (a loopback TEMPORAL_ADDRESS: the local stack, `make demo`),
  a random development key is generated once and kept in `var/payload-keys.env` (mode 0600,
  ignored by git); every local process (worker, starter, demo, codec server) reads it from there.
  It never leaves the machine and is never the same on two machines. A fixed, published dev key
  was rejected: any environment that fell back to it by mistake would be encrypted in name only.
- against any other address, connecting fails with an error that says what to set: a production
  process without its keys must not start, rather than write plaintext (or a throwaway key's
  ciphertext) into a shared cluster.

Decoding passes payloads that are not `binary/encrypted` through unchanged, so histories written
before encryption was turned on (and the plaintext replay histories in tests/) still decode.
Each payload's key id is bound to its ciphertext as associated data: relabelling a payload with
another key id, or changing a byte of it, fails authentication, and decoding says so.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import dataclasses
import ipaddress
import os
import re
import secrets
import sys
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes, PayloadCodec

from infra.config import PayloadKeySettings, load, var_dir

ENCODING = b"binary/encrypted"
KEY_ID_META = "encryption-key-id"
KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # 96-bit random nonce per payload (GCM's standard size)
KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class CodecConfigError(ValueError):
    """The keys in the environment are missing or malformed."""


class PayloadDecryptionError(ValueError):
    """A payload could not be decrypted: unknown key id, or the ciphertext failed authentication."""


# ---------------------------------------------------------------------------- keys


@dataclass(frozen=True)
class Keyring:
    keys: Mapping[str, bytes]  # key id -> 32 raw bytes
    current: str  # the id new payloads are encrypted with

    def __post_init__(self) -> None:
        if not self.keys:
            raise CodecConfigError("PAYLOAD_KEYS: no keys given")
        for key_id, key in self.keys.items():
            if not KEY_ID_PATTERN.match(key_id):
                raise CodecConfigError(f"PAYLOAD_KEYS: key id {key_id!r} must be 1-64 letters, digits, '.', '_' or '-'")
            if len(key) != KEY_BYTES:
                raise CodecConfigError(f"PAYLOAD_KEYS: key {key_id!r} is {len(key)} bytes; AES-256 needs {KEY_BYTES}")
        if self.current not in self.keys:
            raise CodecConfigError(
                f"PAYLOAD_KEY_ID: {self.current!r} is not one of the ids in PAYLOAD_KEYS ({', '.join(sorted(self.keys))})"
            )

    @classmethod
    def parse(cls, spec: str, current: str | None = None) -> Keyring:
        """`id1:base64key,id2:base64key`; `current` may be omitted when there is exactly one key."""
        keys: dict[str, bytes] = {}
        for n, item in enumerate((i.strip() for i in spec.split(",")), start=1):
            if not item:
                continue
            key_id, sep, b64 = item.partition(":")
            key_id = key_id.strip()
            if not sep or not key_id:
                raise CodecConfigError(f"PAYLOAD_KEYS: entry {n} is not 'id:base64key'")
            if key_id in keys:
                raise CodecConfigError(f"PAYLOAD_KEYS: key id {key_id!r} appears twice")
            try:
                keys[key_id] = base64.b64decode(b64.strip(), validate=True)
            except (binascii.Error, ValueError):
                raise CodecConfigError(f"PAYLOAD_KEYS: key {key_id!r} is not valid base64") from None
        if not keys:
            raise CodecConfigError("PAYLOAD_KEYS: no keys given")
        if not current:
            if len(keys) > 1:
                raise CodecConfigError(
                    f"PAYLOAD_KEY_ID: required when PAYLOAD_KEYS holds more than one key "
                    f"({', '.join(keys)}): name the one to encrypt with"
                )
            current = next(iter(keys))
        return cls(keys, current.strip())

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Keyring | None:
        """PAYLOAD_KEYS and PAYLOAD_KEY_ID from the settings (or from `env` alone); None when no key is set."""
        if env is None:
            cfg = load(PayloadKeySettings)
            spec, current = (cfg.keys or "").strip(), cfg.key_id
        else:
            spec, current = env.get("PAYLOAD_KEYS", "").strip(), env.get("PAYLOAD_KEY_ID")
        return cls.parse(spec, current) if spec else None

    def to_env(self) -> dict[str, str]:
        return {
            "PAYLOAD_KEYS": ",".join(f"{i}:{base64.b64encode(k).decode()}" for i, k in self.keys.items()),
            "PAYLOAD_KEY_ID": self.current,
        }


def new_key_entry(key_id: str | None = None) -> str:
    key_id = key_id or f"k{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(2)}"
    return f"{key_id}:{base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()}"


def dev_keyring_path() -> Path:
    return var_dir() / "payload-keys.env"


def ensure_dev_keyring(path: Path | None = None) -> Keyring:
    """The local stack's development key: read `var/payload-keys.env`, creating it (0600) the first time.

    Safe when several processes race to create it: the file appears whole, once (link, not rename).
    """
    path = path or dev_keyring_path()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        ring = Keyring.parse(new_key_entry(f"dev-{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(2)}"))
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write("# Development payload key of the local stack (encryption/codec.py). Never use it elsewhere.\n")
            fh.writelines(f"{k}={v}\n" for k, v in ring.to_env().items())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process won; use its key
        finally:
            tmp.unlink()
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and not name.startswith("#"):
            values[name.strip()] = value.strip()
    try:
        read = Keyring.from_env(values)
    except CodecConfigError as exc:
        raise CodecConfigError(f"{path}: {exc}") from None
    if read is None:
        raise CodecConfigError(f"{path}: no PAYLOAD_KEYS line")
    return read


def is_loopback(address: str) -> bool:
    host = address.rpartition(":")[0].strip("[]") if ":" in address else address
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def keyring_for(address: str, env: Mapping[str, str] | None = None) -> Keyring:
    """PAYLOAD_KEYS if set; else, for a Temporal on this machine, the local stack's dev key; else an error."""
    ring = Keyring.from_env(env)
    if ring is not None:
        return ring
    if is_loopback(address):
        return ensure_dev_keyring()
    raise CodecConfigError(
        f"PAYLOAD_KEYS is not set, and Temporal at {address} is not on this machine: payloads must be "
        f"encrypted with the deployment's keys. Set PAYLOAD_KEYS=id:base64key[,...] and PAYLOAD_KEY_ID=id "
        f"(a new key: python -m encryption.codec new-key)"
    )


# ---------------------------------------------------------------------------- the codec


class EncryptionCodec(PayloadCodec):
    """AES-256-GCM over each whole payload (its metadata and data), with its key id as associated data."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring
        self._aead = {key_id: AESGCM(key) for key_id, key in keyring.keys.items()}

    def encrypt(self, payload: Payload) -> Payload:
        key_id = self.keyring.current
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead[key_id].encrypt(nonce, payload.SerializeToString(), key_id.encode())
        return Payload(metadata={"encoding": ENCODING, KEY_ID_META: key_id.encode()}, data=nonce + sealed)

    def decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload  # plaintext (written before encryption was on): passed through
        raw_id = payload.metadata.get(KEY_ID_META)
        if raw_id is None:
            raise PayloadDecryptionError(f"encrypted payload has no {KEY_ID_META} in its metadata")
        key_id = raw_id.decode(errors="replace")
        aead = self._aead.get(key_id)
        if aead is None:
            raise PayloadDecryptionError(
                f"payload is encrypted with key id {key_id!r}, which is not among the known keys "
                f"({', '.join(sorted(self._aead))}): add that key to PAYLOAD_KEYS"
            )
        if len(payload.data) < NONCE_BYTES + 16:
            raise PayloadDecryptionError(f"encrypted payload (key id {key_id!r}) is truncated")
        try:
            plain = aead.decrypt(payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:], key_id.encode())
        except InvalidTag:
            raise PayloadDecryptionError(
                f"encrypted payload (key id {key_id!r}) failed authentication: it was altered, or encrypted "
                f"with a different key under that id"
            ) from None
        return Payload.FromString(plain)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(p) for p in payloads]


UNDECRYPTABLE = b"binary/undecryptable"


class WorkerCodec(EncryptionCodec):
    """The worker's codec: a payload it cannot decrypt (an unknown key id, altered bytes) becomes a payload of encoding
    binary/undecryptable carrying the reason, instead of an error that fails the whole workflow task. A signal's input
    is then recorded as rejected by the case (it does not decode); any other payload still fails where it is
    converted, naming that encoding."""

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = []
        for p in payloads:
            try:
                out.append(self.decrypt(p))
            except PayloadDecryptionError as exc:
                out.append(Payload(metadata={"encoding": UNDECRYPTABLE, "reason": str(exc)[:300].encode()}, data=b""))
        return out


def for_worker(converter: DataConverter) -> DataConverter:
    """`converter` with the worker's codec in place of the encryption codec (same keys)."""
    codec = converter.payload_codec
    if not isinstance(codec, EncryptionCodec) or isinstance(codec, WorkerCodec):
        return converter
    return dataclasses.replace(converter, payload_codec=WorkerCodec(codec.keyring))


def data_converter(keyring: Keyring) -> DataConverter:
    """The project's converter (pydantic) with encrypted payloads and encrypted failure messages."""
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=EncryptionCodec(keyring),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


def data_converter_for(address: str) -> DataConverter:
    return data_converter(keyring_for(address))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m encryption.codec", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    new = sub.add_parser("new-key", help="print a new PAYLOAD_KEYS entry (id:base64 of 32 random bytes)")
    new.add_argument("--id", help="key id (default k<date>-<random>)")
    sub.add_parser("dev-key", help="create (once) and show where the local stack's development key is")
    args = parser.parse_args(argv)
    if args.cmd == "new-key":
        if args.id and not KEY_ID_PATTERN.match(args.id):
            parser.error("--id: 1-64 letters, digits, '.', '_' or '-'")
        print(new_key_entry(args.id))
    else:
        ring = ensure_dev_keyring()
        print(f"{dev_keyring_path()}: key id {ring.current}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
