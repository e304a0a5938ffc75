"""Bring a history from a running stack into tests/histories/, encrypted with the suite's test key.

    python -m tests.import_history loan-DEMO-0007 race_first_send     # the local stack (make demo)
    python -m tests.import_history loan-DEMO-0007 race_first_send --run-id RUN_ID

The stack's payloads are encrypted with its own key (var/payload-keys.env, or PAYLOAD_KEYS when set);
each one is decrypted and encrypted again with the test key, so that the replay test can read it.
Demo data only: a history of a real borrower's case never belongs in the repository.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
from pathlib import Path
from typing import Any

from temporalio.api.common.v1 import Payload

from encryption import codec

OUT = Path(__file__).parent / "histories"
ENCRYPTED = base64.b64encode(codec.ENCODING.encode()).decode()


def _payload(node: dict[str, Any]) -> Payload:
    return Payload(
        metadata={k: base64.b64decode(v) for k, v in node["metadata"].items()}, data=base64.b64decode(node.get("data", ""))
    )


def _node(p: Payload) -> dict[str, Any]:
    meta = {k: base64.b64encode(v).decode() for k, v in p.metadata.items()}
    return {"metadata": meta, "data": base64.b64encode(p.data).decode()}


def rekey(history: dict[str, Any], source: codec.EncryptionCodec, target: codec.EncryptionCodec) -> int:
    """Re-encrypt every encrypted payload of a history (its JSON form) in place; returns how many."""
    count = 0

    def walk(node: Any) -> Any:
        nonlocal count
        if isinstance(node, dict):
            if isinstance(node.get("metadata"), dict) and node["metadata"].get("encoding") == ENCRYPTED:
                count += 1
                return _node(target.encrypt(source.decrypt(_payload(node))))
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    history["events"] = walk(history["events"])
    return count


async def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workflow_id")
    ap.add_argument("name", help="the scenario's name: tests/histories/<name>-<test key id>-0.json")
    ap.add_argument("--run-id")
    args = ap.parse_args(argv)
    from infra.temporal import connect  # the stack's converter, before the test key is set below

    client = await connect()
    history = await client.get_workflow_handle(args.workflow_id, run_id=args.run_id).fetch_history()
    source = client.data_converter.payload_codec
    assert isinstance(source, codec.EncryptionCodec)
    from tests.conftest import DATA_CONVERTER, TEST_KEY_ID

    target = DATA_CONVERTER.payload_codec
    assert isinstance(target, codec.EncryptionCodec)
    data = json.loads(history.to_json())
    n = rekey(data, source, target)
    out = OUT / f"{args.name}-{TEST_KEY_ID}-0.json"
    out.write_text(json.dumps(data, indent=2) + "\n")
    print(f"{out}: {len(data['events'])} events, {n} payloads re-encrypted with the test key")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
