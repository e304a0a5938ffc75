"""python -m console.demo: the console's demo operators, after `devstack.demo` has loaded its cases.

Creates (once) a collector `demo-collector`, a supervisor `demo-supervisor` and a viewer `demo-viewer`,
writes each one's token to var/<name>-token (0600, kept while it still works), and prints where to sign
in. The demo's cases fill the dashboard and the worklists (its promise, plan, dispute and hardship holds,
and the lawsuit waiting for a judgment)."""

from __future__ import annotations

import os
import sys

from access.devadmin import var_dir
from access.operators import Operators
from infra.private import write_secret

OPERATORS = {"demo-collector": ("collector",), "demo-supervisor": ("supervisor",), "demo-viewer": ("viewer",)}


def ensure(repo) -> dict[str, str]:
    store = Operators(repo)
    out = {}
    for name, roles in OPERATORS.items():
        op = store.ensure(name, roles)
        path = var_dir() / f"{name}-token"
        current = path.read_text().strip() if path.exists() else ""
        if not current or store.authenticate(current) is None:
            write_secret(path, store.issue_token(op.id, days=30).token + "\n")
        out[name] = str(path)
    return out


def main() -> int:
    from db.engine import make_engine
    from db.repo import Repo

    paths = ensure(Repo(make_engine()))
    port = os.environ.get("API_PORT", "8800")
    print(f"\nConsole: http://127.0.0.1:{port}/console  (API docs: http://127.0.0.1:{port}/docs)")
    for name, path in paths.items():
        print(f"  sign in as {name:<16} with the token in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
