"""Shared fixtures: a real database per test, on SQLite and on PostgreSQL.

``db`` is parametrised over both dialects. The schema comes from our migrations, never from
``generate_schemas``. PostgreSQL tests use a private database created for this test session
from the server named by ``INSPECTBOT_TEST_PG`` (default: the local trust-auth server's
``test`` database); when ``CI=true`` they must run, elsewhere they skip with the reason.

Safe under pytest-xdist (``uv run pytest -n auto``, what CI runs): each worker process makes its
own PostgreSQL database and SQLite template, servers bind port 0 or a free port, and files go
under each test's ``tmp_path``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from core import db as dbmod
from core.settings import Settings

PG_ADMIN_URL = os.environ.get("INSPECTBOT_TEST_PG", "postgres://postgres@127.0.0.1:5432/test")
_pg_state: dict = {}


def _pg_base(url: str) -> tuple[str, str]:
    head, _, name = url.rpartition("/")
    return head, name


async def _pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_URL.replace("postgres://", "postgresql://", 1), timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _run(coro):
    """Run a coroutine to completion on a private loop, even from inside a running loop."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _pg_database() -> str:
    """Create (once per session) a private PostgreSQL database and migrate it."""
    if "url" in _pg_state or "error" in _pg_state:
        if "error" in _pg_state:
            raise _pg_state["error"]
        return _pg_state["url"]
    # one per process: under pytest-xdist each worker (gw0, gw1, …) has its own database
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"ib_test_{worker}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    head, _ = _pg_base(PG_ADMIN_URL)
    url = f"{head}/{name}"
    try:
        _run(_pg_admin(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # connection refused, auth, …
        _pg_state["error"] = exc
        raise

    async def migrate():
        async with dbmod.opened(Settings(database_url=url)):
            pass

    _run(migrate())
    _pg_state.update(url=url, name=name)
    return url


def pytest_xdist_auto_num_workers(config) -> int:
    """``-n auto`` (pyproject.toml's addopts): the whole suite (``uv run pytest``, what CI runs)
    on one worker per core, at least two (much of it waits on child processes and servers); a run
    naming its own tests (``uv run pytest tests/x.py``) stays in one process, which starts
    faster. An explicit ``-n N`` (``-n0`` included) always wins."""
    if config.args_source != pytest.Config.ArgsSource.TESTPATHS:
        return 0
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(2, cores)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tpl") / "template.sqlite3"

    async def migrate():
        async with dbmod.opened(Settings(database_url=f"sqlite://{path}")):
            pass

    asyncio.run(migrate())
    return path


def pytest_sessionfinish(session, exitstatus):
    if "name" in _pg_state:
        try:
            _run(_pg_admin(f'DROP DATABASE IF EXISTS "{_pg_state["name"]}" WITH (FORCE)'))
        except Exception:
            pass


def postgres_url_or_skip() -> str:
    try:
        return _pg_database()
    except Exception as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required in CI but unreachable at {PG_ADMIN_URL}: {exc!r}")
        pytest.skip(f"PostgreSQL unreachable at {PG_ADMIN_URL}: {exc!r}")


async def _truncate_all() -> None:
    """Empty every table but aerich's and restart every sequence, as a fresh migration leaves them.

    Only the tables that hold rows are emptied, by DELETE with foreign-key triggers off for the
    transaction (``session_replication_role = replica``; the schema has no triggers of its own):
    a ``TRUNCATE`` of every table makes new files for each, ~0.5 s a test. Every sequence a test
    advanced is set back to its start, as ``RESTART IDENTITY`` did."""
    conn = dbmod.conn()
    rows = await conn.execute_query_dict(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'aerich'"
    )
    if not rows:
        return
    probe = " UNION ALL ".join(
        f"SELECT '{r['tablename']}' AS name WHERE EXISTS (SELECT 1 FROM \"{r['tablename']}\")" for r in rows
    )
    filled = [r["name"] for r in await conn.execute_query_dict(probe)]
    if filled:
        deletes = " ".join(f'DELETE FROM "{name}";' for name in filled)
        await conn.execute_script(f"BEGIN; SET LOCAL session_replication_role = replica; {deletes} COMMIT;")
    await conn.execute_query(
        "SELECT setval(format('%I.%I', s.schemaname, s.sequencename), s.start_value, false)"
        " FROM pg_sequences s"
        " JOIN pg_class c ON c.relname = s.sequencename AND c.relkind = 'S'"
        " JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = s.schemaname"
        " JOIN pg_depend d ON d.objid = c.oid AND d.deptype IN ('a', 'i')"
        " JOIN pg_class t ON t.oid = d.refobjid"
        " WHERE s.schemaname = 'public' AND t.relname <> 'aerich' AND s.last_value IS NOT NULL"
    )


@asynccontextmanager
async def _opened(tmp_path: Path, dialect: str, sqlite_template: Path | None = None) -> AsyncIterator[Settings]:
    """A migrated, empty database of ``dialect`` with Tortoise initialised on it: SQLite copied from
    the session's migrated template, PostgreSQL this worker's database emptied."""
    if dialect == "sqlite":
        assert sqlite_template is not None
        path = tmp_path / "inspectbot.sqlite3"
        shutil.copy(sqlite_template, path)
        settings = Settings(data_dir=tmp_path, database_url=f"sqlite://{path}")
    else:
        settings = Settings(data_dir=tmp_path, database_url=postgres_url_or_skip())
    await dbmod.init(settings)
    try:
        if dialect != "sqlite":
            await _truncate_all()
        yield settings
    finally:
        await dbmod.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def db(request, tmp_path, sqlite_template) -> AsyncIterator[Settings]:
    """A migrated, empty database of each dialect, with Tortoise initialised on it."""
    async with _opened(tmp_path, request.param, sqlite_template) as settings:
        yield settings


@pytest.fixture
async def pg_db(tmp_path) -> AsyncIterator[Settings]:
    """Only PostgreSQL, migrated and empty: for what only it can show (row locks between writers;
    SQLite has one writer)."""
    async with _opened(tmp_path, "postgres") as settings:
        yield settings


@pytest.fixture
async def sqlite_db(tmp_path, sqlite_template) -> AsyncIterator[Settings]:
    """Only SQLite, for tests about behaviour that does not depend on the dialect."""
    async with _opened(tmp_path, "sqlite", sqlite_template) as settings:
        yield settings
