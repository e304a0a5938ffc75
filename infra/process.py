"""Small process helpers shared by the servers the tests start as subprocesses."""

from __future__ import annotations

import os
import signal
import threading
import time


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
