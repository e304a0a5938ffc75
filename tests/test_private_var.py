"""var/ is private (issue 14, hole 7): the directory 0700, the database and the dev tokens 0600, and what the
stack's children create afterwards 0600 too, whatever the caller's umask. They were 0755/0644."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_database_and_the_dev_tokens_are_private_under_a_permissive_umask(tmp_path):
    var = tmp_path / "var"
    var.mkdir(mode=0o755)
    os.chmod(var, 0o755)
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["COLLECTIONS_VAR_DIR"] = str(var)
    for module in ("db.engine", "access.devadmin"):
        subprocess.run(
            [sys.executable, "-m", module],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
            preexec_fn=lambda: os.umask(0o022),
        )
    assert mode(var) == 0o700
    for name in ("collections.db", "dev-token", "dev-checker-token"):
        assert mode(var / name) == 0o600, name


def test_the_stack_makes_what_its_children_create_private(tmp_path):
    """The supervisor's umask is inherited by every child: the dev server's store, the outbox, the logs."""
    code = (
        "import subprocess; from devstack import stack; stack.private_var(); "
        "subprocess.run(['sh', '-c', 'echo x > \"$COLLECTIONS_VAR_DIR/child.log\"'], check=True)"
    )
    var = tmp_path / "v"
    subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        check=True,
        preexec_fn=lambda: os.umask(0o022),
        env=dict(os.environ, COLLECTIONS_VAR_DIR=str(var)),
        timeout=60,
    )
    assert mode(var) == 0o700 and mode(var / "child.log") == 0o600
