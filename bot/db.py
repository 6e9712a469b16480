"""The database: Tortoise configuration, start-up and schema migrations (aerich).

The schema is created and changed only by the migrations in ``migrations/``; production code
never calls ``generate_schemas``. Migration files hold the SQL for both dialects we run on
(SQLite and PostgreSQL), chosen at upgrade time.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from contextlib import asynccontextmanager
from enum import Enum
from itertools import islice
from pathlib import Path
from typing import AsyncIterator, Iterable, Sequence

from tortoise import Tortoise, connections
from tortoise.backends.base.executor import EXECUTOR_CACHE

from bot.settings import Settings

APP = "models"
MODEL_MODULES = [
    "models.directory",
    "models.messaging",
    "models.plans",
    "models.draws",
    "models.audit",
    "models.alerts",
    "models.chat",
    "models.scheduling",
    "models.surveys",
    "models.onsite",
    "aerich.models",
]
MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


#: SQLite's ``synchronous`` pragma unless the URL names one (``sqlite://…?synchronous=FULL``).
#: In WAL mode NORMAL keeps every commit across a crash of the application; it gives up only the
#: last transactions before a power loss or an OS crash (never consistency). docs/benchmarks.md,
#: "Inbound SMS survey replies", says why: FULL fsyncs every commit (2.3 ms here), one at a time.
SQLITE_SYNCHRONOUS = "NORMAL"


def tortoise_config(database_url: str, tz: str = "Asia/Shanghai") -> dict:
    url = database_url
    if url.startswith("postgresql://"):
        url = "postgres://" + url[len("postgresql://") :]
    if url.startswith("sqlite://") and "synchronous=" not in url:
        url += ("&" if "?" in url else "?") + f"synchronous={SQLITE_SYNCHRONOUS}"
    return {
        "connections": {"default": url},
        "apps": {APP: {"models": MODEL_MODULES, "default_connection": "default"}},
        "use_tz": True,
        "timezone": "UTC",
    }


async def init(settings: Settings) -> None:
    """Connect Tortoise (the context is global, so tasks started later see it too)."""
    if settings.dialect == "sqlite":
        path = settings.database_url.removeprefix("sqlite://")
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    # Tortoise caches each model's SQL per connection *name*, not per dialect; a process that
    # opens SQLite and then PostgreSQL (the test suite, the benchmarks) would reuse "?"
    # placeholders on PostgreSQL. Start every init from an empty cache.
    EXECUTOR_CACHE.clear()
    await Tortoise.init(config=tortoise_config(settings.database_url), _enable_global_fallback=True)


async def close() -> None:
    await Tortoise.close_connections()


@asynccontextmanager
async def opened(settings: Settings, *, migrate: bool = True) -> AsyncIterator[None]:
    await init(settings)
    try:
        if migrate:
            await upgrade(settings)
        yield
    finally:
        await close()


async def upgrade(settings: Settings) -> list[str]:
    """Apply every migration not yet applied; return their names."""
    from aerich import Command

    command = Command(tortoise_config(settings.database_url), app=APP, location=str(MIGRATIONS))
    command._init_when_aenter = False  # Tortoise is already initialised by us
    await command.init()
    return await command.upgrade(run_in_transaction=True)


def conn():
    """The default connection (or the transaction bound to the current task)."""
    return connections.get("default")


def dialect() -> str:
    return conn().schema_generator.DIALECT


def placeholders(n: int, start: int = 1) -> str:
    """``?, ?, ?`` on SQLite, ``$1, $2, $3`` on PostgreSQL."""
    if dialect() == "postgres":
        return ", ".join(f"${i}" for i in range(start, start + n))
    return ", ".join("?" * n)


_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))  # what json.dumps would build per call


def encode(value):
    """A Python value as our raw-SQL writes pass it (JSON as text; both drivers take the rest)."""
    if isinstance(value, (dict, list)):
        return _JSON.encode(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime) and value.tzinfo is not None and value.utcoffset():
        # Always UTC, as Tortoise writes them: SQLite compares datetimes as text.
        return value.astimezone(timezone.utc)
    return value


def timestamp(value: datetime):
    """``value`` as the driver takes it, worked out once for the many rows of an ``encoded``
    bulk insert: in UTC as :func:`encode` keeps it; on SQLite the very text the sqlite3 adapter
    Tortoise registers would make for each row (``isoformat(" ")``); asyncpg takes the datetime."""
    value = encode(value)
    return value if dialect() == "postgres" else value.isoformat(" ")


async def bulk_insert(
    table: str,
    columns: Sequence[str],
    rows: Iterable[Sequence],
    *,
    ignore_conflicts: bool = False,
    batch: int = 5000,
    connection=None,
    encoded: bool = False,
) -> None:
    """Insert plain tuples with ``executemany``: the path for city-scale writes.

    Building a Tortoise object per row costs far more than the write itself at a million rows;
    callers pass tuples in ``columns`` order. Runs on ``connection`` (a transaction) if given.
    With ``encoded`` the rows are already as the driver takes them (JSON as text, enums as their
    values, timestamps from :func:`timestamp`) and go to the driver untouched: no look at each
    value, which at 300,000 rows of 14 columns costs more than SQLite's own work.
    """
    client = connection or conn()
    cols = ", ".join(f'"{c}"' for c in columns)
    sql = f'INSERT INTO "{table}" ({cols}) VALUES ({placeholders(len(columns))})'
    if ignore_conflicts:
        sql += " ON CONFLICT DO NOTHING"
    if encoded:
        rows = iter(rows)
        while chunk := list(islice(rows, batch)):
            await client.execute_many(sql, chunk)
        return
    chunk: list[list] = []
    for row in rows:
        chunk.append([encode(v) for v in row])
        if len(chunk) >= batch:
            await client.execute_many(sql, chunk)
            chunk = []
    if chunk:
        await client.execute_many(sql, chunk)
