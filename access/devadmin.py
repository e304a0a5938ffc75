"""python -m access.devadmin: the local stack's operators. `dev` holds every role (the demo's one person);
`dev-checker` (supervisor, compliance) approves what `dev` proposes, since nobody approves their own.
Their tokens go to var/dev-token and var/dev-checker-token (0600), kept while they still work."""

from __future__ import annotations

import sys
from pathlib import Path

from access.operators import Operators
from access.permissions import ROLES
from infra.config import var_dir  # console/demo.py takes it from here too
from infra.private import write_secret

OPERATORS = {"dev": ROLES, "dev-checker": ("supervisor", "compliance")}


def ensure(repo) -> dict[str, Path]:
    store = Operators(repo)
    out = {}
    for name, roles in OPERATORS.items():
        op = store.ensure(name, roles)
        path = var_dir() / f"{name}-token"
        current = path.read_text().strip() if path.exists() else ""
        if not current or store.authenticate(current) is None:
            write_secret(path, store.issue_token(op.id, days=366).token + "\n")
        out[name] = path
    return out


def main() -> int:
    from db.engine import make_engine
    from db.repo import Repo

    for name, path in ensure(Repo(make_engine())).items():
        print(f"operator {name}: token in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
