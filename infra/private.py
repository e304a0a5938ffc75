"""var/ holds the database, the gateway's outbox, the development keys and tokens, and the logs: none of it
is for other users of the machine. The directory is 0700 and what is created in it 0600 (files made
with the default umask would be 0644, world-readable)."""

from __future__ import annotations

import os
from pathlib import Path

DIR_MODE, FILE_MODE, UMASK = 0o700, 0o600, 0o077


def private_dir(path: Path) -> Path:
    """Create `path` (and parents) and make it 0700 even when it existed with wider rights."""
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    os.chmod(path, DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """Create an empty `path` 0600 if missing (SQLite then keeps the mode for its -wal/-shm files), or narrow it."""
    private_dir(path.parent)
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, FILE_MODE)
    os.close(fd)
    os.chmod(path, FILE_MODE)
    return path


def private_umask() -> None:
    """Every file this process and its children create is 0600 (the stack's logs, the outbox, the server's store)."""
    os.umask(UMASK)


def write_secret(path: Path, text: str) -> None:
    """Write a secret file 0600, replacing it whole."""
    private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)
