"""Small process helpers: the servers the tests start as subprocesses, and the clean exit of short-lived commands."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import NoReturn


def leave(code: int) -> NoReturn:
    """End a short-lived command that held a Temporal client: flush, then leave without interpreter finalisation.
    The client's core threads may still call back into Python while the interpreter tears down, which aborts
    the process ("Fatal Python error: PyGILState_Release ... finalizing", exit -6; seen at the end of make demo)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):
            pass
    os._exit(code)


def exit_with_parent(pid: int) -> None:
    """Stop gracefully (SIGTERM to ourselves) once the process that started us is gone (a killed test run)."""

    def watch() -> None:
        while True:
            time.sleep(1.0)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os.kill(os.getpid(), signal.SIGTERM)
                return
            except PermissionError:
                pass

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
