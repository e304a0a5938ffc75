"""The local stack: Temporal CLI dev server (SQLite, WAL) with its Web UI, then the worker.

Between them, when this checkout has them: the database migration (db/, one-shot) and the
sandbox channel gateway (sandbox/, port GATEWAY_PORT, default 8700; the worker gets GATEWAY_URL).
After the worker: the payments and case API (api/, port API_PORT, default 8800, token API_TOKEN,
default "dev-token") and the codec server for the Web UI (encryption/codec_server.py, CODEC_DEV=1, port
CODEC_PORT, default 8081; the dev server's UI is pointed at it with --ui-codec-endpoint).

    python -m devstack.stack up       # foreground; Ctrl-C (or SIGTERM) stops the children in reverse order
    python -m devstack.stack start    # the same in the background; returns once everything is ready
    python -m devstack.stack stop     # stops a background (or foreground) stack
    python -m devstack.stack status   # what is running
    python -m devstack.stack urls     # the addresses of a running stack (UI, outbox, API, codec sign-in)

Ports come from TEMPORAL_ADDRESS (default localhost:7233), TEMPORAL_UI_PORT (8233), GATEWAY_PORT
(8700), API_PORT (8800), CODEC_PORT (8081) and WORKER_METRICS_ADDRESS (the worker's /metrics,
127.0.0.1:9464); state, the SQLite files, the development keys and logs live under
COLLECTIONS_VAR_DIR (default var/):

    var/temporal.db          the dev server's store: cases survive a restart
    var/gateway.db           the sandbox gateway's outbox (collections.db: the app database, db/)
    var/payload-keys.env     the development payload key (encryption/codec.py), unless PAYLOAD_KEYS is set;
                             every child (worker, API, codec server) and starter.py read the same one
    var/codec-token          the codec server's development sign-in token, unless CODEC_TOKEN is set
    var/stack.pid            pid of the supervisor (`up`), present while it runs
    var/stack.json           its children (name, pid, process group) and whether it is ready
    var/logs/<child>.log     each child's output; var/logs/stack.log the background supervisor's

The stack is a list of child specs (`children()`), started in order, each one waited on until
its readiness probe passes (or, for a one-shot step, until it exits 0), and stopped in reverse
order. The worker is ready when it polls and its build is the current version of its worker deployment
(Worker Versioning, infra/deployments.py): the stack makes it so, as an operator does in a cluster.
Each child runs in its own process group (so a terminal's Ctrl-C reaches only the supervisor,
which then stops the children in order): SIGTERM to the group, wait, SIGKILL after a timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from devstack import binaries
from infra import config
from infra.config import ROOT, StackSettings, load
from infra.private import private_dir, private_umask


def var_dir() -> Path:
    return config.var_dir()


def private_var() -> None:
    """var/ 0700, and every file the stack and its children create 0600 (they inherit the umask)."""
    private_umask()
    private_dir(var_dir())


def pid_file() -> Path:
    return var_dir() / "stack.pid"


def state_file() -> Path:
    return var_dir() / "stack.json"


def log_dir() -> Path:
    return var_dir() / "logs"


READY_TIMEOUT = 60.0
START_TIMEOUT = 150.0  # `start` waits this long for the whole stack


def say(msg: str) -> None:
    print(f"{datetime.now():%H:%M:%S} stack: {msg}", flush=True)


# ---------------------------------------------------------------------------- addresses


@dataclass(frozen=True)
class Endpoints:
    host: str  # what clients dial (from TEMPORAL_ADDRESS)
    ip: str  # what the server binds
    port: int
    ui_port: int
    namespace: str
    task_queue: str

    @property
    def dial(self) -> str:
        """What this process connects to: the bound IP for a local name, else the name (a container's)."""
        host = self.ip if self.host == "localhost" or self.host == self.ip else self.host
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"

    @property
    def ui_url(self) -> str:
        host = "localhost" if self.ip in ("127.0.0.1", "::1", "0.0.0.0") else self.ip
        return f"http://{host}:{self.ui_port}"

    @classmethod
    def from_settings(cls, cfg: StackSettings) -> Endpoints:
        host, sep, port = cfg.temporal_address.rpartition(":")
        if not sep or not port.isdigit():
            raise SystemExit(f"TEMPORAL_ADDRESS: {cfg.temporal_address!r} is not host:port")
        host = host.strip("[]") or "localhost"
        try:
            ip = str(ipaddress.ip_address(host))
        except ValueError:
            ip = "127.0.0.1"  # a name (localhost, ...): the local stack binds loopback only
        return cls(
            host=host, ip=ip, port=int(port), ui_port=cfg.ui_port, namespace=cfg.temporal_namespace, task_queue=cfg.task_queue
        )


def port_free(ip: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does: TIME_WAIT is not "in use"
        try:
            s.bind((ip, port))
        except OSError:
            return False
    return True


# ---------------------------------------------------------------------------- child specs

Probe = Callable[["Running"], Awaitable[bool]]


@dataclass
class Child:
    """One process of the stack."""

    name: str
    argv: list[str]
    env: dict[str, str]
    ready: Probe | None = None  # polled until True (or ready_timeout)
    ready_timeout: float = READY_TIMEOUT
    stop_timeout: float = 15.0  # SIGTERM, then SIGKILL after this long
    restart: bool = False  # restart when it exits on its own (else the stack stops)
    max_restarts: int = 5
    oneshot: bool = False  # a step that must exit 0 (within ready_timeout) before the next child
    ports: tuple[int, ...] = ()  # loopback ports it binds: checked free before anything starts
    link: tuple[str, str] | None = None  # (label, address and how to use it) for the banner


@dataclass
class Running:
    spec: Child
    proc: subprocess.Popen
    log: Path
    started_at: float = field(default_factory=time.monotonic)
    restarts: int = 0

    @property
    def pid(self) -> int:
        return self.proc.pid


async def _client(ep: Endpoints):
    from infra.temporal import connect

    return await asyncio.wait_for(connect(ep.dial, ep.namespace), timeout=5)


def server_ready(ep: Endpoints) -> Probe:
    async def probe(_: Running) -> bool:
        from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest

        client = await _client(ep)
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=ep.namespace), timeout=timedelta(seconds=5)
        )
        if ep.ui_port:
            import httpx

            async with httpx.AsyncClient(timeout=3) as http:
                ui_host = f"[{ep.ip}]" if ":" in ep.ip else ep.ip
                (await http.get(f"http://{ui_host}:{ep.ui_port}/")).raise_for_status()
        return True

    return probe


async def worker_poller(pid: int, ep: Endpoints | None = None, host: str | None = None):
    """The worker process `pid`'s poller on the task queue (identity `<pid>@<host>`), or None while it does not poll.
    Its `deployment_options` say which build of which worker deployment it is (empty when unversioned)."""
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    ep = ep or Endpoints.from_settings(stack_settings())
    identity = f"{pid}@{host or socket.gethostname()}"
    client = await _client(ep)
    resp = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=ep.namespace,
            task_queue=TaskQueue(name=ep.task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        ),
        timeout=timedelta(seconds=5),
    )
    return next((p for p in resp.pollers if p.identity == identity), None)


async def worker_polling(pid: int, ep: Endpoints | None = None, host: str | None = None) -> bool:
    """Whether the worker process `pid` (identity `<pid>@<host>`) polls the task queue right now.

    Also the worker container's health check in docker-compose.yml (there the worker is pid 1).
    """
    return await worker_poller(pid, ep, host) is not None


def worker_ready(ep: Endpoints) -> Probe:
    """Ready when this very worker process polls the task queue, and its build (Worker Versioning) is the
    deployment's current version: the stack runs one build, the one it just started (infra/deployments.py)."""

    async def probe(run: Running) -> bool:
        from infra import deployments

        poller = await worker_poller(run.pid, ep)
        if poller is None:
            return False
        opts = poller.deployment_options
        if await deployments.make_current(await _client(ep), opts):
            say(f"{run.spec.name}: build {opts.build_id} is now the current version of deployment {opts.deployment_name}")
        return True

    return probe


def gateway_ready(url: str, instance: str) -> Probe:
    """Ready when /health answers from this very gateway process (its instance id)."""

    async def probe(_: Running) -> bool:
        import httpx

        async with httpx.AsyncClient(timeout=2) as http:
            r = await http.get(f"{url}/health")
        return r.status_code == 200 and r.headers.get("X-Gateway-Instance") == instance

    return probe


def http_ready(url: str) -> Probe:
    """Ready when GET `url` answers 200 (the API's and the codec server's /health)."""

    async def probe(_: Running) -> bool:
        import httpx

        async with httpx.AsyncClient(timeout=2) as http:
            r = await http.get(url)
        return r.status_code == 200

    return probe


def _importable(*modules: str) -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in modules)


def stack_settings() -> StackSettings:
    """The stack's settings; a bad value stops it with the variable's name and the reason."""
    try:
        return load(StackSettings)
    except config.SettingsError as exc:
        raise SystemExit(f"error: {exc}") from None


def gateway_port(cfg: StackSettings | None = None) -> int:
    """GATEWAY_PORT, else the port of GATEWAY_URL (the worker's, default http://127.0.0.1:8700)."""
    from urllib.parse import urlsplit

    cfg = cfg or stack_settings()
    return cfg.gateway_port or urlsplit(cfg.gateway_url).port or 80


def shown_path(path: Path) -> str:
    """A path as a person types it here: relative to the checkout when inside it."""
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def children(cfg: StackSettings | None = None) -> list[Child]:
    """The stack, in start order (stopped in reverse).

    temporal -> migrate (one-shot, when db/ is present) -> gateway (when sandbox/ and its
    dependencies are present) -> worker -> schedules (one-shot: the daily jobs' schedules,
    app/schedules.py) -> api (when api/ is present) -> codec (the codec server for the Web UI).

    Every child gets the same environment (TEMPORAL_*, DATABASE_URL, PAYLOAD_KEYS/PAYLOAD_KEY_ID
    and COLLECTIONS_VAR_DIR): without PAYLOAD_KEYS they all read the one development key in
    var/payload-keys.env, so the worker, the API, the codec server and starter.py agree.
    """
    cfg = cfg or stack_settings()
    ep = Endpoints.from_settings(cfg)
    env = _stack_env(cfg)
    codec = (ROOT / "encryption" / "codec_server.py").exists() and _importable("fastapi", "uvicorn")
    specs = [_temporal_child(cfg, ep, env, codec)]

    if (ROOT / "db" / "engine.py").exists() and _importable("alembic", "sqlalchemy"):
        specs.append(Child("migrate", [sys.executable, "-m", "db.engine"], env, oneshot=True))
        # the `dev` operator (every role) and a second one to approve its proposals, tokens in var/
        specs.append(Child("operators", [sys.executable, "-m", "access.devadmin"], env, oneshot=True))

    worker_env = dict(env)
    if (ROOT / "sandbox" / "__main__.py").exists() and _importable("fastapi", "uvicorn"):
        gateway, url = _gateway_child(cfg, env)
        specs.append(gateway)
        worker_env.setdefault("GATEWAY_URL", url)

    specs.append(_worker_child(cfg, ep, worker_env))
    # the daily jobs' schedules (app/schedules.py), created or brought up to date; a paused one stays paused
    specs.append(Child("schedules", [sys.executable, "-m", "app.schedules", "apply"], worker_env, oneshot=True))
    if (ROOT / "api" / "__main__.py").exists() and _importable("fastapi", "uvicorn"):
        specs.append(_api_child(cfg, worker_env))
    if codec:
        specs.append(_codec_child(cfg, ep, worker_env))
    return specs


def _stack_env(cfg: StackSettings) -> dict[str, str]:
    """The environment every child starts from: this one, plus the stack's var/ and the demo's defaults."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", COLLECTIONS_VAR_DIR=str(var_dir()), COLLECTIONS_DEV_STACK="1")
    env.setdefault("COLLECTIONS_TEAMS_FILE", str(ROOT / "policies" / "teams" / "demo.toml"))  # the demo's floor
    # the borrower page's links (rendered by the worker) and the payment page's webhook and return addresses (the API's)
    # point at this stack's API, whatever API_PORT is
    env.setdefault("COLLECTIONS_PUBLIC_URL", f"http://127.0.0.1:{cfg.api_port}")
    return env


def _temporal_child(cfg: StackSettings, ep: Endpoints, env: dict[str, str], codec: bool) -> Child:
    """The Temporal dev server on SQLite in var/, with the case's search attributes and, when the codec server runs,
    the Web UI pointed at it."""
    from workflows.search import CLI_TYPES

    server = [
        binaries.find("temporal"),
        "server",
        "start-dev",
        "--db-filename",
        str(var_dir() / "temporal.db"),
        "--sqlite-pragma",
        "journal_mode=wal",
        "--sqlite-pragma",
        "synchronous=normal",
        "--ip",
        ep.ip,
        "--port",
        str(ep.port),
        "--ui-port",
        str(ep.ui_port),
        "--namespace",
        ep.namespace,
        "--log-level",
        "warn",
    ]
    for key, typ in CLI_TYPES.items():
        server += ["--search-attribute", f"{key.name}={typ}"]
    if codec:
        server += ["--ui-codec-endpoint", f"http://localhost:{cfg.codec_port}"]
    return Child(
        "temporal", server, env, ready=server_ready(ep), stop_timeout=20, ports=(ep.port, ep.ui_port), link=("Web UI", ep.ui_url)
    )


def _gateway_child(cfg: StackSettings, env: dict[str, str]) -> tuple[Child, str]:
    """The sandbox gateway and its address. Its instance id lets the ready check tell this run's gateway from a
    stale one still holding the port."""
    import uuid

    port, instance = gateway_port(cfg), uuid.uuid4().hex
    url = f"http://127.0.0.1:{port}"
    gateway_env = dict(env, GATEWAY_INSTANCE=instance)
    key = cfg.gateway_api_key
    child = Child(
        "gateway",
        [
            sys.executable,
            "-m",
            "sandbox",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--db",
            str(var_dir() / "gateway.db"),
        ],
        gateway_env,
        ready=gateway_ready(url, instance),
        restart=True,
        ports=(port,),
        link=("Outbox", f"{url}/outbox.html?key={key}"),
    )
    return child, url


def _worker_child(cfg: StackSettings, ep: Endpoints, worker_env: dict[str, str]) -> Child:
    """The worker; its metrics port is checked and linked only when it listens on this machine."""
    metrics_host, _, metrics_port = (getattr(cfg, "metrics_address", "") or "").rpartition(":")
    local_metrics = metrics_port.isdigit() and metrics_host.strip("[]") in ("127.0.0.1", "localhost", "0.0.0.0", "")
    return Child(
        "worker",
        [sys.executable, str(ROOT / "worker.py")],
        worker_env,
        ready=worker_ready(ep),
        stop_timeout=20,
        restart=True,
        ports=(int(metrics_port),) if local_metrics else (),
        link=("Metrics", f"http://127.0.0.1:{metrics_port}/metrics") if local_metrics else None,
    )


def _api_child(cfg: StackSettings, worker_env: dict[str, str]) -> Child:
    """The API (with the console and the borrower's page); without API_TOKEN its bootstrap token is `dev-token`."""
    port = cfg.api_port
    own_token = bool(cfg.api_token)
    api_env = dict(worker_env, API_PORT=str(port), API_TOKEN=cfg.api_token or "dev-token")
    url = f"http://127.0.0.1:{port}"
    return Child(
        "api",
        [sys.executable, "-m", "api", "--host", "127.0.0.1", "--port", str(port)],
        api_env,
        ready=http_ready(f"{url}/health"),
        restart=True,
        ports=(port,),
        link=(
            "API",
            f"{url}/docs  (operator token in {shown_path(var_dir() / 'dev-token')}; API_TOKEN "
            f"{'' if own_token else 'dev-token '}is the bootstrap admin token)",
        ),
    )


def _codec_child(cfg: StackSettings, ep: Endpoints, worker_env: dict[str, str]) -> Child:
    """The codec server for the Web UI and the CLI. Unless CODEC_CORS_ORIGINS is set it admits the Web UI under each
    name the browser may use for it, and its link says how to point the Web UI and the CLI at it."""
    codec_port = cfg.codec_port
    url = f"http://127.0.0.1:{codec_port}"
    codec_env = dict(
        worker_env, CODEC_DEV="1", CODEC_HOST="127.0.0.1", CODEC_PORT=str(codec_port), TEMPORAL_UI_PORT=str(ep.ui_port)
    )
    if not cfg.codec_cors_origins:
        codec_env["CODEC_CORS_ORIGINS"] = ",".join(
            dict.fromkeys([ep.ui_url, f"http://localhost:{ep.ui_port}", f"http://127.0.0.1:{ep.ui_port}"])
        )
    token = "from CODEC_TOKEN" if cfg.codec_token else f"in {shown_path(var_dir() / 'codec-token')}"
    return Child(
        "codec",
        [sys.executable, "-m", "encryption.codec_server"],
        codec_env,
        ready=http_ready(f"{url}/health"),
        restart=True,
        ports=(codec_port,),
        link=(
            "Codec",
            f"http://localhost:{codec_port}/login  (sign-in token {token})\nthen, in the "
            'Web UI\'s Codec Server settings, choose "Use my browser setting", paste '
            f'http://localhost:{codec_port} and tick "Include cross-origin credentials"\n'
            f"the temporal CLI ({shown_path(Path(sys.executable).parent / 'temporal')}; an operator token "
            "that may send inputs encodes):\n"
            f"  temporal workflow query -w loan-DEMO-0001 --type status --codec-endpoint "
            f'http://localhost:{codec_port} --codec-auth "Bearer $(cat {shown_path(var_dir() / "dev-token")})"\n'
            "every signal, update and query, with its JSON and a CLI example: docs/workflow-contract.md",
        ),
    )


# ---------------------------------------------------------------------------- process helpers


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):  # a zombie is not alive
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rpartition(")")[2].split()[0] == "Z":
            return False
    return True


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cmdline(pid: int) -> str | None:
    """The command line of a process, or None where /proc is not available."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None


def is_stack(pid: int) -> bool:
    if not alive(pid):
        return False
    cmd = cmdline(pid)
    return cmd is None or "devstack.stack" in cmd


def killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def stop_process(run: Running) -> int | None:
    """SIGTERM the child's process group, wait, SIGKILL after its timeout. Returns the exit code."""
    proc, spec = run.proc, run.spec
    if proc.poll() is None:
        say(f"stopping {spec.name} (pid {proc.pid})")
        killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(spec.stop_timeout)
        except subprocess.TimeoutExpired:
            say(f"{spec.name} did not stop within {spec.stop_timeout:.0f}s; killing it")
            killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    killpg(proc.pid, signal.SIGKILL)  # anything it left behind in its group
    return proc.returncode


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join("    | " + line for line in path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def read_state() -> dict:
    try:
        return json.loads(state_file().read_text())
    except (OSError, ValueError):
        return {}


def running_stack() -> dict | None:
    """The record (var/stack.json) of a local stack that is running and ready, else None."""
    state = read_state()
    pid = state.get("pid")
    return state if isinstance(pid, int) and state.get("ready") and is_stack(pid) else None


def running_pid() -> int | None:
    """The pid of a live supervisor, cleaning up stale files."""
    try:
        pid = int(pid_file().read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if is_stack(pid) else None


# ---------------------------------------------------------------------------- the supervisor (`up`)


class Supervisor:
    def __init__(self, specs: list[Child], ep: Endpoints) -> None:
        self.specs = specs
        self.ep = ep
        self.running: list[Running] = []
        self.stop = asyncio.Event()
        self.signals = 0
        self.ready = False
        self._probes: set[asyncio.Future] = set()  # the ready probes of restarted children

    def _on_signal(self, signame: str) -> None:
        self.signals += 1
        if self.signals == 1:
            say(f"{signame}: stopping (in reverse order: the server last)")
            self.stop.set()
        else:
            say(f"{signame} again: killing the children now")
            for run in self.running:
                killpg(run.pid, signal.SIGKILL)

    def _write_state(self) -> None:
        state = {
            "pid": os.getpid(),
            "ready": self.ready,
            "address": self.ep.dial,
            "ui": self.ep.ui_url,
            "namespace": self.ep.namespace,
            "task_queue": self.ep.task_queue,
            "var": str(var_dir()),
            "links": links(self.specs),
            "children": [
                {"name": r.spec.name, "pid": r.pid, "pgid": r.pid, "log": str(r.log), "argv0": r.spec.argv[0]}
                for r in self.running
            ],
        }
        tmp = state_file().with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(state_file())

    def _spawn(self, spec: Child) -> Running:
        log = log_dir() / f"{spec.name}.log"
        with log.open("ab") as fh:
            fh.write(f"\n==== {datetime.now().isoformat(timespec='seconds')} start {spec.name}: {' '.join(spec.argv)}\n".encode())
            fh.flush()
            proc = subprocess.Popen(
                spec.argv,
                env=spec.env,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return Running(spec, proc, log)

    async def _wait_ready(self, run: Running) -> bool:
        spec = run.spec
        if spec.ready is None:
            return True
        deadline = time.monotonic() + spec.ready_timeout
        last_error: BaseException | None = None
        while time.monotonic() < deadline:
            if self.stop.is_set():
                return False
            if run.proc.poll() is not None:
                say(
                    f"{spec.name} exited with code {run.proc.returncode} while starting;"
                    f" last lines of {run.log}:\n{tail(run.log)}"
                )
                return False
            try:
                if await asyncio.wait_for(spec.ready(run), timeout=10):
                    say(f"{spec.name} ready (pid {run.pid}, {time.monotonic() - run.started_at:.1f}s)")
                    return True
            except Exception as exc:  # not up yet
                last_error = exc
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stop.wait(), timeout=0.5)
        say(
            f"{spec.name} not ready after {spec.ready_timeout:.0f}s (last error: {last_error!r});"
            f" last lines of {run.log}:\n{tail(run.log)}"
        )
        return False

    async def _start_all(self) -> bool:
        for spec in self.specs:
            if self.stop.is_set():
                return False
            say(f"starting {spec.name}")
            run = self._spawn(spec)
            if spec.oneshot:
                if not await self._wait_done(run):
                    return False
                continue
            self.running.append(run)
            self._write_state()
            if not await self._wait_ready(run):
                return False
        return True

    async def _wait_done(self, run: Running) -> bool:
        """A one-shot step: it must exit 0 within its timeout."""
        deadline = time.monotonic() + run.spec.ready_timeout
        while run.proc.poll() is None and time.monotonic() < deadline and not self.stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stop.wait(), timeout=0.2)
        if run.proc.poll() is None:
            stop_process(run)
            if not self.stop.is_set():
                say(
                    f"{run.spec.name} did not finish within {run.spec.ready_timeout:.0f}s;"
                    f" last lines of {run.log}:\n{tail(run.log)}"
                )
            return False
        if run.proc.returncode != 0:
            say(f"{run.spec.name} failed (exit code {run.proc.returncode}); last lines of {run.log}:\n{tail(run.log)}")
            return False
        say(f"{run.spec.name} done ({time.monotonic() - run.started_at:.1f}s)")
        return True

    async def _watch(self) -> int:
        """Until a signal: restart children that may be restarted; any other exit stops the stack."""
        while not self.stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stop.wait(), timeout=0.5)
            if self.stop.is_set():
                break
            for i, run in enumerate(self.running):
                code = run.proc.poll()
                if code is None:
                    continue
                say(f"{run.spec.name} (pid {run.pid}) exited with code {code}; last lines of {run.log}:\n{tail(run.log, 10)}")
                if not run.spec.restart or run.restarts >= run.spec.max_restarts:
                    say("stopping the stack")
                    return 1
                await asyncio.sleep(min(2**run.restarts, 10))
                new = self._spawn(run.spec)
                new.restarts = run.restarts + 1
                self.running[i] = new
                self._write_state()
                say(f"restarted {run.spec.name} (pid {new.pid}, restart {new.restarts}/{run.spec.max_restarts})")
                # its probe again: a restarted worker whose sources changed is a new build, to be made current
                probe = asyncio.ensure_future(self._wait_ready(new))
                self._probes.add(probe)
                probe.add_done_callback(self._probes.discard)
        return 0

    def shutdown(self) -> None:
        for run in reversed(self.running):
            code = stop_process(run)
            how = f"by {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit code {code}"
            say(f"{run.spec.name} stopped ({how})")
        self.running.clear()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, self._on_signal, sig.name)
        try:
            if not await self._start_all():
                return 0 if self.stop.is_set() else 1
            self.ready = True
            self._write_state()
            banner(self.ep, links(self.specs), foreground=sys.stdout.isatty())
            return await self._watch()
        finally:
            self.shutdown()
            say("stopped")


def links(specs: list[Child]) -> list[list[str]]:
    return [list(s.link) for s in specs if s.link]


def banner(ep: Endpoints, shown: list[list[str]], foreground: bool = False) -> None:
    lines = [f"  {'Temporal':<10} {ep.host}:{ep.port}  (namespace {ep.namespace}, task queue {ep.task_queue})"]
    lines += [f"  {label:<10} " + text.replace("\n", "\n" + " " * 13) for label, text in shown]
    lines.append(f"  {'Logs':<10} {shown_path(log_dir())}/")
    print(
        "\n"
        + "\n".join(lines)
        + "\n"
        + ("  Ctrl-C stops the children in reverse order, the server last.\n" if foreground else ""),
        flush=True,
    )


def _claim_pid_file() -> bool:
    """Create var/stack.pid for this process; False if a live stack already holds it."""
    path = pid_file()
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            pid = running_pid()
            if pid is not None and pid != os.getpid():
                return False
            cleanup_orphans()
            path.unlink(missing_ok=True)
            state_file().unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(f"{os.getpid()}\n")
        return True
    return False


def up() -> int:
    cfg = stack_settings()
    ep = Endpoints.from_settings(cfg)
    private_var()
    log_dir().mkdir(parents=True, exist_ok=True)
    if not _claim_pid_file():
        say(f"already running (pid {running_pid()}); Web UI {ep.ui_url}. `python -m devstack.stack stop` stops it.")
        return 1
    try:
        specs = children(cfg)
        taken: dict[int, str] = {}
        for spec in specs:
            for port in spec.ports:
                if port in taken:
                    say(
                        f"{spec.name} and {taken[port]} are both set to port {port}; set TEMPORAL_ADDRESS, "
                        "TEMPORAL_UI_PORT, GATEWAY_PORT, API_PORT, CODEC_PORT or WORKER_METRICS_ADDRESS to different ports"
                    )
                    return 1
                taken[port] = spec.name
                if not port_free(ep.ip if spec.name == "temporal" else "127.0.0.1", port):
                    say(
                        f"{spec.name}: port {port} is in use (another stack?); set TEMPORAL_ADDRESS, "
                        "TEMPORAL_UI_PORT, GATEWAY_PORT, API_PORT, CODEC_PORT or WORKER_METRICS_ADDRESS"
                        " to other ports, or stop it"
                    )
                    return 1
        return asyncio.run(Supervisor(specs, ep).run())
    finally:
        state_file().unlink(missing_ok=True)
        with contextlib.suppress(OSError, ValueError):
            if int(pid_file().read_text()) == os.getpid():
                pid_file().unlink()


# ---------------------------------------------------------------------------- start / stop / status


def cleanup_orphans(quiet: bool = False) -> int:
    """Kill the process groups of children a dead supervisor left behind (it was SIGKILLed)."""
    killed = 0
    for ch in reversed(read_state().get("children", [])):
        pgid = ch.get("pgid")
        if not pgid or not group_alive(pgid):
            continue
        cmd = cmdline(pgid)
        if cmd is not None and ch.get("argv0") and ch["argv0"] not in cmd:
            continue  # the pid was reused by something else
        if not quiet:
            say(f"killing leftover {ch['name']} (pid {pgid})")
        killpg(pgid, signal.SIGTERM)
        for _ in range(50):
            if not group_alive(pgid):
                break
            time.sleep(0.2)
        killpg(pgid, signal.SIGKILL)
        killed += 1
    return killed


def start() -> int:
    cfg = stack_settings()
    ep = Endpoints.from_settings(cfg)
    pid = running_pid()
    if pid is not None:
        state = read_state()
        if state.get("ready"):
            say(f"already running (pid {pid})")
            banner(ep, state.get("links", []))
            return 0
        say(f"already starting (pid {pid}); waiting for it")
        return _wait_started(pid, None, ep)
    private_var()
    log_dir().mkdir(parents=True, exist_ok=True)
    log = log_dir() / "stack.log"
    with log.open("ab") as fh:
        fh.write(f"\n==== {datetime.now().isoformat(timespec='seconds')} stack start\n".encode())
        fh.flush()
        proc = subprocess.Popen(
            [sys.executable, "-m", "devstack.stack", "up"],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
    say(f"starting in the background (pid {proc.pid}, log {log})")
    return _wait_started(proc.pid, proc, ep)


def _wait_started(pid: int, proc: subprocess.Popen | None, ep: Endpoints) -> int:
    log = log_dir() / "stack.log"
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        state = read_state()
        if state.get("pid") == pid and state.get("ready"):
            banner(ep, state.get("links", []))
            return 0
        exited = proc.poll() is not None if proc else not alive(pid)
        if exited:
            say(f"the stack did not start; last lines of {log}:\n{tail(log)}")
            return 1
        time.sleep(0.3)
    say(f"the stack was not ready after {START_TIMEOUT:.0f}s; stopping it. Last lines of {log}:\n{tail(log)}")
    stop()
    return 1


def stop(timeout: float = 60.0) -> int:
    pid = running_pid()
    if pid is None:
        if cleanup_orphans():
            state_file().unlink(missing_ok=True)
            pid_file().unlink(missing_ok=True)
            say("stopped leftovers of a stack that had died")
        else:
            pid_file().unlink(missing_ok=True)
            state_file().unlink(missing_ok=True)
            say("not running")
        return 0
    say(f"stopping the stack (pid {pid})")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive(pid):
        time.sleep(0.2)
    if alive(pid):
        say(f"the supervisor did not stop within {timeout:.0f}s; killing it and its children")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
    cleanup_orphans()
    pid_file().unlink(missing_ok=True)
    state_file().unlink(missing_ok=True)
    say("stopped")
    return 0


def status() -> int:
    cfg = stack_settings()
    ep = Endpoints.from_settings(cfg)
    pid = running_pid()
    state = read_state()
    if pid is None:
        leftovers = [c for c in state.get("children", []) if group_alive(c.get("pgid", 0) or -1)]
        print(
            "stack: not running"
            + (
                f" (leftover processes: {', '.join(c['name'] for c in leftovers)}; `python -m devstack.stack stop` removes them)"
                if leftovers
                else ""
            )
        )
        return 3
    print(f"stack: {'running' if state.get('ready') else 'starting'} (supervisor pid {pid}, var {var_dir()})")
    for ch in state.get("children", []):
        print(f"  {ch['name']:<10} pid {ch['pid']:<8} {'up' if alive(ch['pid']) else 'DOWN'}   log {ch['log']}")
    print(f"  {'Temporal':<10} {ep.host}:{ep.port} namespace {ep.namespace}")
    for label, text in state.get("links", []):
        print(f"  {label:<10} " + text.replace("\n", "\n" + " " * 13))

    async def probe() -> str:
        client = await _client(ep)
        running = await client.count_workflows('WorkflowType = "CollectionCase" AND ExecutionStatus = "Running"')
        total = await client.count_workflows('WorkflowType = "CollectionCase"')
        return f"answers: {running.count} open cases, {total.count} in all"

    try:
        print(f"  frontend   {asyncio.run(asyncio.wait_for(probe(), 10))}")
    except Exception as exc:
        print(f"  frontend   not answering ({exc.__class__.__name__}: {exc})")
    return 0


def urls() -> int:
    """The addresses of the running stack (what `start` printed), e.g. after the demo's output."""
    state = read_state()
    if running_pid() is None or not state.get("ready"):
        print("stack: not running (`python -m devstack.stack start`, or `make demo`)")
        return 3
    banner(Endpoints.from_settings(stack_settings()), state.get("links", []))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.stack", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["up", "start", "stop", "status", "urls"])
    args = parser.parse_args(argv)
    return {"up": up, "start": start, "stop": stop, "status": status, "urls": urls}[args.command]()


if __name__ == "__main__":
    sys.exit(main())
