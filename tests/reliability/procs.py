"""Real processes for the reliability tests.

- :class:`ServiceProcess`: ``inspectbot serve`` (``python -m bot.cli serve``) as a child process,
  configured by environment variables only, waited on until ``/healthz`` answers, stopped in
  ``finally`` (SIGTERM, then SIGKILL).
- :class:`FanOut`: a front that hands every webhook request to several instances at once (the
  same update delivered to both).
- :class:`PrivateCluster`: a PostgreSQL server of the test's own (initdb, its own port and
  directory) that a test may stop and start; the shared server on 5432 is never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web

from tests.e2e.harness import eventually

ROOT = Path(__file__).resolve().parents[2]
SETTINGS_PREFIXES = ("INSPECTBOT_", "TELEGRAM_", "SMS_", "DATABASE_URL")  # what Settings.from_env reads
RUNUSER = shutil.which("runuser") or "/usr/sbin/runuser"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_for(check, timeout: float, what: str, interval: float = 0.05):
    """:func:`tests.e2e.harness.eventually`, failing with what was awaited."""
    try:
        return await eventually(check, timeout=timeout, interval=interval)
    except AssertionError:
        raise AssertionError(f"timed out after {timeout} s waiting for {what}") from None


@dataclass
class ServiceProcess:
    """One ``python -m bot.cli serve`` child with its own port, data directory and log file."""

    name: str
    env: dict
    workdir: Path
    port: int = field(default_factory=free_port)
    proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    async def start(self, timeout: float = 20.0) -> None:
        data = self.workdir / self.name
        data.mkdir(parents=True, exist_ok=True)
        # only what this test sets configures the service, not the environment pytest runs in
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(SETTINGS_PREFIXES)}
        env = {
            **inherited,
            "PYTHONPATH": str(ROOT),
            "INSPECTBOT_DATA_DIR": str(data),
            "INSPECTBOT_WEB_HOST": "127.0.0.1",
            "INSPECTBOT_WEB_PORT": str(self.port),
            "INSPECTBOT_METRICS_PORT": "0",  # no metrics listener: several instances share this host
            # these tests are about processes, not beacons: run without one, acknowledged
            "INSPECTBOT_BEACON": "none",
            "INSPECTBOT_BEACON_NONE_ACKNOWLEDGED": "yes",
            **self.env,
        }
        out = open(self.log_path, "ab")
        try:
            self.proc = await asyncio.create_subprocess_exec(
                # cwd: its own directory, so a developer's .env in the repository changes nothing
                sys.executable,
                "-m",
                "bot.cli",
                "serve",
                cwd=str(data),
                env=env,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
        finally:
            out.close()
        await wait_for(self._ready, timeout, f"{self.name} to answer /healthz")

    async def _ready(self) -> bool:
        if self.proc is not None and self.proc.returncode is not None:
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
        return await self.health() == 200

    async def health(self) -> int:
        """The status of GET /healthz (0: no answer)."""
        try:
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{self.url}/healthz", timeout=aiohttp.ClientTimeout(total=2)) as r:
                    return r.status
        except (TimeoutError, aiohttp.ClientError):
            return 0

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def stop(self) -> None:
        """SIGTERM (a clean stop), SIGKILL after 5 s; never leaves the child behind."""
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


@contextlib.asynccontextmanager
async def services(workdir: Path, envs: list[dict], names: list[str] | None = None):
    """Start one service process per env (side by side) and stop them all on the way out."""
    procs = [ServiceProcess(names[i] if names else f"instance{i + 1}", env, workdir) for i, env in enumerate(envs)]
    try:
        await asyncio.gather(*(p.start() for p in procs))
        yield procs
    finally:
        await asyncio.gather(*(p.stop() for p in procs), return_exceptions=True)


@dataclass
class Forwarded:
    path: str
    statuses: list[int]  # one per backend, in backend order (0: no answer)


class FanOut:
    """A front (what a load balancer would be) that POSTs each request, headers and body
    unchanged, to every backend at once, and answers 200 if any backend did (else the first
    backend's status). Every webhook thus reaches both instances at the same moment."""

    def __init__(self, backends: list[str]) -> None:
        self.backends = backends
        self.forwarded: list[Forwarded] = []
        self.port = free_port()
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> FanOut:
        app = web.Application(client_max_size=4 << 20)
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        self._http = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._http is not None:
            await self._http.close()

    async def _one(self, backend: str, request: web.Request, body: bytes) -> int:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        try:
            async with self._http.post(
                backend + request.path_qs, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=10)
            ) as r:
                await r.read()
                return r.status
        except (TimeoutError, aiohttp.ClientError):
            return 0

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        statuses = list(await asyncio.gather(*(self._one(b, request, body) for b in self.backends)))
        self.forwarded.append(Forwarded(request.path, statuses))
        ok = any(200 <= s < 300 for s in statuses)
        return web.Response(status=200 if ok else (statuses[0] or 502))


# -- a private PostgreSQL server ---------------------------------------------------------------


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL's bin directory with initdb and pg_ctl, if any."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    return found[-1].parent if found and (found[-1].parent / "pg_ctl").exists() else None


def private_cluster_missing() -> str:
    """Why a private PostgreSQL server cannot be run here ('' if it can)."""
    if postgres_bin() is None:
        return "initdb/pg_ctl not found under /usr/lib/postgresql/*/bin"
    if os.geteuid() == 0 and not Path(RUNUSER).exists():
        return "running as root and runuser is missing (initdb refuses to run as root)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no postgres user to run the server as"
    return ""


class PrivateCluster:
    """A PostgreSQL server of our own (initdb into a temporary directory, its own port), so a
    test may stop and start it without touching the shared server on 5432. As root it runs as
    the ``postgres`` user (``runuser``), since PostgreSQL refuses to run as root."""

    def __init__(self) -> None:
        self.bin = postgres_bin()
        self.dir = Path(tempfile.mkdtemp(prefix="ibpg-", dir="/tmp"))
        self.data = self.dir / "data"
        self.port = free_port()
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = [RUNUSER, "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            raise RuntimeError(
                f"{args[0]} failed ({result.returncode}): {result.stdout}{result.stderr}\n{self.server_log()[-2000:]}"
            )
        return result

    def server_log(self) -> str:
        log = self.dir / "server.log"
        return log.read_text(errors="replace") if log.exists() else ""

    def init(self) -> None:
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.dir / "server.log"), "-w", "-t", "30", "start"
        )

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")

    @property
    def running(self) -> bool:
        return self._run("pg_ctl", "-D", str(self.data), "status", check=False).returncode == 0

    async def create_database(self, name: str) -> str:
        import asyncpg

        conn = await asyncpg.connect(self.admin_url, timeout=5)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return self.url(name)

    def destroy(self) -> None:
        """Stop the server if it runs (immediately: nothing in it is kept) and remove its files."""
        try:
            if self.data.exists() and self.running:
                self.stop("immediate")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
