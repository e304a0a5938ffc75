"""The gateway in a subprocess (`python -m sandbox`) on a loopback port: what the tests, the simulator, the
benchmarks and the chaos run start and stop."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

from sandbox.gateway.common import DEFAULT_API_KEY, INSTANCE_HEADER
from sandbox.gateway.store import MEMORY

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class GatewayStartError(RuntimeError):
    pass


class RunningGateway:
    """A gateway in a subprocess (`python -m sandbox`) on a loopback port.

    db_path=None puts the outbox in a temporary SQLite file (removed by close()), so stop()/start()
    keeps it; pass ":memory:" for a store that dies with the process. The port is chosen on the
    first start() and kept across restarts.
    """

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        db_path: str | os.PathLike | None = None,
        port: int | None = None,
        host: str = "127.0.0.1",
        env: dict[str, str] | None = None,
        startup_timeout: float = 30.0,
    ):
        self.api_key = api_key
        self.host = host
        self.port = port
        self._fixed_port = port is not None
        self._env = dict(env or {})
        self.startup_timeout = startup_timeout
        self._tmpdir = tempfile.TemporaryDirectory(prefix="sandbox-gateway-")
        self.db_path = str(db_path) if db_path is not None else str(Path(self._tmpdir.name) / "outbox.sqlite3")
        self.log_path = Path(self._tmpdir.name) / "gateway.log"
        self.process: subprocess.Popen | None = None
        self._log_file = None

    # -- addresses
    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("gateway not started")
        return f"http://{self.host}:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    @property
    def outbox_page(self) -> str:
        return f"{self.url}/outbox.html?{urlencode({'key': self.api_key})}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # -- lifecycle
    def start(self) -> RunningGateway:
        if self.running:
            return self
        attempts = 1 if (self._fixed_port or self.port is not None) else 3
        for attempt in range(attempts):
            if self.port is None or (attempt and not self._fixed_port):
                self.port = free_port(self.host)
            try:
                self._spawn()
                return self
            except GatewayStartError:
                if attempt == attempts - 1:
                    raise
                self.port = None
        return self

    def _spawn(self) -> None:
        instance = uuid.uuid4().hex
        env = (
            os.environ.copy()
            | self._env
            | {
                "GATEWAY_API_KEY": self.api_key,
                "GATEWAY_DB": self.db_path,
                "GATEWAY_PORT": str(self.port),
                "GATEWAY_INSTANCE": instance,
                "PYTHONUNBUFFERED": "1",
                "PYTHONPATH": os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH")) if p),
            }
        )
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sandbox",
                "--host",
                self.host,
                "--port",
                str(self.port),
                "--exit-with-parent",
                str(os.getpid()),
            ],
            cwd=str(PROJECT_ROOT),
            env=env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + self.startup_timeout
        with httpx.Client(timeout=1.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    self._cleanup_process()
                    raise GatewayStartError(f"gateway exited with {self.process.returncode}:\n{self.logs()[-3000:]}")
                try:
                    r = client.get(f"{self.url}/health")
                    if r.status_code == 200 and r.headers.get(INSTANCE_HEADER) == instance:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
        self.stop()
        raise GatewayStartError(f"gateway not healthy after {self.startup_timeout}s:\n{self.logs()[-3000:]}")

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        self._cleanup_process()

    def kill(self) -> None:
        """Stop abruptly (SIGKILL), as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._cleanup_process()

    def restart(self) -> RunningGateway:
        self.stop()
        return self.start()

    def _cleanup_process(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def close(self) -> None:
        self.stop()
        self._tmpdir.cleanup()

    def logs(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def __enter__(self) -> RunningGateway:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- conveniences (sync httpx, authenticated)
    def client(self, **kwargs: Any) -> httpx.Client:
        kwargs.setdefault("timeout", 10.0)
        return httpx.Client(base_url=self.url, headers=self.headers | kwargs.pop("headers", {}), **kwargs)

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        with self.client() as c:
            r = c.request(method, path, **kwargs)
            r.raise_for_status()
            return r.json()

    def set_faults(self, **settings: Any) -> dict:
        return self._call("POST", "/admin/faults", json=settings)

    def clear_faults(self) -> dict:
        return self._call("DELETE", "/admin/faults")

    def script_calls(self, outcomes: dict[str, Any]) -> dict:
        return self._call("POST", "/admin/call-outcomes", json=outcomes)

    def stats(self) -> dict:
        return self._call("GET", "/admin/stats")

    def reset(self) -> dict:
        return self._call("POST", "/admin/reset")

    def outbox(self, **filters: Any) -> list[dict]:
        return self._call("GET", "/outbox", params={k: v for k, v in filters.items() if v is not None})["items"]


@contextlib.contextmanager
def running_gateway(
    api_key: str = DEFAULT_API_KEY, db_path: str | os.PathLike | None = None, port: int | None = None, **kwargs: Any
) -> Iterator[RunningGateway]:
    """`with running_gateway(api_key="k") as gw:` → gw.url, gw.api_key, gw.headers, gw.stop()/gw.start()."""
    with RunningGateway(api_key=api_key, db_path=db_path, port=port, **kwargs) as gw:
        yield gw


def start_in_subprocess(
    port: int | None = None, api_key: str = DEFAULT_API_KEY, db_path: str | None = MEMORY
) -> tuple[str, subprocess.Popen]:
    """Start `python -m sandbox` on `port` (a free loopback port if None), wait for /health, and
    return (url, process). The caller stops it with process.terminate(); process.wait()."""
    gw = RunningGateway(api_key=api_key, db_path=db_path, port=port)
    gw.start()
    assert gw.process is not None
    return gw.url, gw.process
