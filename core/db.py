"""The database: Tortoise configuration, start-up and schema migrations (aerich).

The schema is created and changed only by the migrations in ``migrations/``; production code
never calls ``generate_schemas``. Migration files hold the SQL for both dialects we run on
(SQLite and PostgreSQL), chosen at upgrade time.

Also here: :class:`GroupCommit` (concurrent callers' short transactions share one database
transaction, each in its own savepoint) and our SQLite client (:class:`SqliteClient`), which
runs a group commit's statements on the event loop's thread instead of handing each one to
aiosqlite's worker thread (:func:`on_loop`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sqlite3
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from enum import Enum
from functools import lru_cache, partial
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar, cast

import aiosqlite
from tortoise import Tortoise, connections
from tortoise.backends.base.client import BaseDBAsyncClient, TransactionalDBClient, TransactionContext
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.backends.base.executor import EXECUTOR_CACHE
from tortoise.backends.sqlite import client as _tortoise_sqlite
from tortoise.connection import get_connections
from tortoise.exceptions import DBConnectionError, IntegrityError, OperationalError, TransactionManagementError
from tortoise.transactions import in_transaction

from core.settings import Settings

log = logging.getLogger(__name__)

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
    "models.publication",
    "models.risk",
    "aerich.models",
]
MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


#: SQLite's ``synchronous`` pragma unless the URL names one (``sqlite://…?synchronous=FULL``).
#: In WAL mode NORMAL keeps every commit across a crash of the application; it gives up only the
#: last transactions before a power loss or an OS crash (never consistency). docs/benchmarks.md,
#: "Inbound SMS survey replies", says why: FULL fsyncs every commit (2.3 ms here), one at a time.
SQLITE_SYNCHRONOUS = "NORMAL"


def tortoise_config(database_url: str, tz: str = "Asia/Shanghai") -> dict[str, Any]:
    url = database_url
    if url.startswith("postgresql://"):
        url = "postgres://" + url[len("postgresql://") :]
    connection: str | dict[str, Any] = url
    if url.startswith("sqlite://"):
        if "synchronous=" not in url:
            url += ("&" if "?" in url else "?") + f"synchronous={SQLITE_SYNCHRONOUS}"
        connection = {**expand_db_url(url), "engine": __name__}  # our SqliteClient (client_class below)
    return {
        "connections": {"default": connection},
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


@asynccontextmanager
async def transaction(connection: BaseDBAsyncClient | None = None) -> AsyncIterator[BaseDBAsyncClient]:
    """The caller's transaction if it passes one, else a new one: one use case, one transaction."""
    if connection is not None:
        yield connection
        return
    async with in_transaction() as opened_conn:
        yield opened_conn


def conn() -> BaseDBAsyncClient:
    """The default connection (or the transaction bound to the current task)."""
    found: BaseDBAsyncClient = connections.get("default")  # Tortoise's proxy object is untyped
    return found


def dialect() -> str:
    return conn().schema_generator.DIALECT


def placeholders(n: int, start: int = 1, *, connection: BaseDBAsyncClient | None = None) -> str:
    """``?, ?, ?`` on SQLite, ``$1, $2, $3`` on PostgreSQL (of ``connection``, else the default's)."""
    return _placeholders((connection or conn()).capabilities.dialect, n, start)


@lru_cache(maxsize=1024)
def _placeholders(dialect_name: str, n: int, start: int) -> str:
    if dialect_name == "postgres":
        return ", ".join(f"${i}" for i in range(start, start + n))
    return ", ".join("?" * n)


def sql(text: str, *, connection: BaseDBAsyncClient | None = None) -> str:
    """``text``, written with ``?`` placeholders, for the dialect of ``connection`` (else the
    default's): PostgreSQL wants ``$1, $2, …``. The one place queries are translated; short
    texts (the hot paths' few constant queries) are cached, long generated ones are not."""
    if (connection or conn()).capabilities.dialect != "postgres":
        return text
    return _numbered(text) if len(text) <= 4096 else _numbered.__wrapped__(text)


@lru_cache(maxsize=1024)
def _numbered(text: str) -> str:
    counter = iter(range(1, 10_000_000))
    return re.sub(r"\?", lambda _: f"${next(counter)}", text)


def moment(value: str | datetime | None) -> datetime | None:
    """A timestamp column as raw SQL returns it (ISO text on SQLite, a datetime on asyncpg),
    aware and in UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))  # what json.dumps would build per call


_PLAIN = frozenset({str, int, float, bool, type(None), bytes})  # passed as they are (most values)


def decoded(value: Any, empty: Any) -> Any:
    """A JSON column as a raw read returns it (text on SQLite, and on asyncpg without codecs),
    as Python; ``empty`` for NULL. The reverse of :func:`encode` for JSON."""
    if value is None:
        return empty
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def encode(value: Any) -> Any:
    """A Python value as our raw-SQL writes pass it (JSON as text; both drivers take the rest)."""
    if type(value) in _PLAIN:
        return value
    if isinstance(value, (dict, list)):
        return _JSON.encode(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime) and value.tzinfo is not None and value.utcoffset():
        # Always UTC, as Tortoise writes them: SQLite compares datetimes as text.
        return value.astimezone(UTC)
    return value


def timestamp(value: datetime, *, connection: BaseDBAsyncClient | None = None) -> str | datetime:
    """``value`` as the driver takes it, worked out once for the many rows of an ``encoded``
    bulk insert: in UTC as :func:`encode` keeps it; on SQLite the very text the sqlite3 adapter
    Tortoise registers would make for each row (``isoformat(" ")``); asyncpg takes the datetime.
    For ``connection``'s dialect (else the default connection's)."""
    utc_value: datetime = encode(value)
    return utc_value if (connection or conn()).capabilities.dialect == "postgres" else utc_value.isoformat(" ")


async def bulk_insert(
    table: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    ignore_conflicts: bool = False,
    batch: int = 5000,
    connection: BaseDBAsyncClient | None = None,
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
    sql = _insert_sql(table, tuple(columns), client.capabilities.dialect, ignore_conflicts)
    if encoded:
        rows = iter(rows)
        while ready := list(islice(rows, batch)):
            # Tortoise types the rows list[list]; both drivers take any sequence per row (tuples here)
            await client.execute_many(sql, ready)  # type: ignore[arg-type]
        return
    chunk: list[list[Any]] = []
    for row in rows:
        chunk.append([encode(v) for v in row])
        if len(chunk) >= batch:
            await client.execute_many(sql, chunk)
            chunk = []
    if chunk:
        await client.execute_many(sql, chunk)


@lru_cache(maxsize=256)
def _insert_sql(table: str, columns: tuple[str, ...], dialect_name: str, ignore_conflicts: bool) -> str:
    cols = ", ".join(f'"{c}"' for c in columns)
    sql = f'INSERT INTO "{table}" ({cols}) VALUES ({_placeholders(dialect_name, len(columns), 1)})'
    return sql + " ON CONFLICT DO NOTHING" if ignore_conflicts else sql


# --- group commit -------------------------------------------------------------------------------

T = TypeVar("T")
Work = Callable[[Any], Awaitable[T]]

#: At most this many callers' work in one shared transaction.
GROUP_MAX = 128


class GroupCommit:
    """Group commit: the short transactions of concurrent callers share one database transaction.

    ``await group.run(work)`` runs ``work(conn)`` (``conn`` the transaction, which Tortoise's
    models in ``work`` use too) in a transaction shared with the work of the other callers
    queued meanwhile, inside a savepoint of its own, and returns its result once that
    transaction has **committed**: what ``work`` wrote is stored when ``run`` returns, exactly
    as with a transaction of its own. If ``work`` raises, its savepoint is rolled back — nothing
    it wrote stays, the others' work is untouched — and ``run`` raises that exception at once.
    If the shared transaction cannot begin, commit or return to a savepoint, nothing of the
    batch is stored and every caller of it gets that error.

    One batch runs at a time; the callers arriving while it runs form the next one, so under
    load one commit serves many callers, and a lone caller waits for nobody (no commit delay).
    The dispatcher's :class:`~bot.dispatcher.OutcomeWriter` batches its outcomes the same way.

    On SQLite the batch's statements run on the event loop's thread (:func:`on_loop`), its
    BEGIN IMMEDIATE (which waits for another process's write lock) and its COMMIT (which may
    checkpoint the WAL) on aiosqlite's thread: ``work`` must be short statements — a webhook's
    event — never bulk writes or long reads, which would hold up the loop.
    """

    def __init__(self, max_batch: int = GROUP_MAX) -> None:
        self.max_batch = max_batch
        self._queue: list[tuple[Work[Any], asyncio.Future[Any]]] = []
        self._writer: asyncio.Task[None] | None = None
        self.batches = 0  # transactions committed (or tried); with ``self.items``, the mean batch size
        self.items = 0

    async def run(self, work: Work[T]) -> T:
        if isinstance(conn(), TransactionalDBClient):  # its work would commit with the batch, not with the caller
            raise TransactionManagementError("a group commit cannot run inside a transaction")
        done: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append((work, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain())
        return await done

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
                await self._commit(batch)
        except BaseException as exc:  # cancelled (shutdown): no caller may wait for ever
            for _, done in self._queue:
                if not done.done():
                    done.set_exception(exc if isinstance(exc, Exception) else ConnectionError("shutting down"))
            self._queue = []
            raise

    async def _commit(self, batch: list[tuple[Work[Any], asyncio.Future[Any]]]) -> None:
        self.batches += 1
        self.items += len(batch)
        results: list[tuple[Work[Any], asyncio.Future[Any], Any]] = []
        try:
            async with in_transaction() as conn:
                with on_loop():
                    for i, (work, done) in enumerate(batch):
                        if done.cancelled():  # its caller is gone (shutdown): nothing to answer
                            continue
                        await conn.execute_query(f"SAVEPOINT group_{i}")
                        try:
                            result = await work(conn)
                        except Exception as exc:
                            # a failure here breaks the whole transaction: raised out, all rolled back
                            await conn.execute_query(f"ROLLBACK TO SAVEPOINT group_{i}")
                            await conn.execute_query(f"RELEASE SAVEPOINT group_{i}")
                            if not done.done():
                                done.set_exception(exc)
                            continue
                        await conn.execute_query(f"RELEASE SAVEPOINT group_{i}")
                        results.append((work, done, result))
        except Exception as exc:
            log.warning("group commit of %d failed, nothing of it stored: %s", len(batch), exc.__class__.__name__)
            for _, done in batch:
                if not done.done():
                    done.set_exception(exc)
            return
        except BaseException as exc:
            for _, done in batch:
                if not done.done():
                    done.set_exception(ConnectionError("shutting down") if not isinstance(exc, Exception) else exc)
            raise
        for _, done, result in results:
            if not done.done():
                done.set_result(result)


_GROUPS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, GroupCommit] = weakref.WeakKeyDictionary()


def group() -> GroupCommit:
    """The running loop's :class:`GroupCommit` (one per loop: its futures belong to one loop)."""
    loop = asyncio.get_running_loop()
    found = _GROUPS.get(loop)
    if found is None:
        found = _GROUPS[loop] = GroupCommit()
    return found


async def group_commit(work: Work[T]) -> T:
    """``work(conn)`` committed in the running loop's group commit (:class:`GroupCommit`)."""
    return await group().run(work)


# --- SQLite: short statements on the event loop's thread ----------------------------------------

_ON_LOOP: ContextVar[bool] = ContextVar("sqlite_on_loop", default=False)
#: An ``executemany`` of more rows than this runs on aiosqlite's thread even inside :func:`on_loop`.
ON_LOOP_MAX_ROWS = 64


@contextmanager
def on_loop() -> Iterator[None]:
    """Within this block, the current task's SQLite statements run on the event loop's thread.

    aiosqlite runs each statement on its worker thread: a queue put, a wake-up of that thread,
    the GIL changing hands and a wake-up back, 4–6 context switches for a statement that itself
    takes tens of µs in WAL mode. Here they run at once on the calling thread instead — for
    short statements only (a group commit's work): the loop runs nothing else meanwhile. Calls
    still queued on the worker thread go first (a statement never overlaps another, and never
    overtakes one). A transaction *opened* within it runs its BEGIN IMMEDIATE there too when
    SQLite's write lock is free at once (else that one statement waits on the worker thread)
    and its COMMIT: a whole short transaction without a hand-off (the dispatcher's outcomes).
    No effect on PostgreSQL (asyncpg is already on the loop)."""
    token = _ON_LOOP.set(True)
    try:
        yield
    finally:
        _ON_LOOP.reset(token)


class _LoopConnection(aiosqlite.Connection):
    """aiosqlite's connection, running a call on the loop's thread inside :func:`on_loop` when
    nothing is queued on its worker thread (the sqlite3 connection is opened with
    ``check_same_thread=False``; one call at a time either way)."""

    def __init__(self, connector: Callable[[], sqlite3.Connection]) -> None:
        super().__init__(connector, 64)
        self._handed = 0  # calls handed to the worker thread (counted on the loop's thread)
        self._finished = 0  # of those, finished (counted on the worker thread)

    def _counted(self, function: Callable[[], T]) -> T:
        try:
            return function()
        finally:
            self._finished += 1

    async def _execute(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        if _ON_LOOP.get() and self._finished == self._handed:
            return fn(*args, **kwargs)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._handed += 1
        self._tx.put_nowait((future, partial(self._counted, partial(fn, *args, **kwargs))))
        return await future


class SqliteClient(_tortoise_sqlite.SqliteClient):
    """Tortoise's SQLite client with a :class:`_LoopConnection`, and transactions that begin with
    one ``BEGIN IMMEDIATE`` (Tortoise's send a COMMIT first, a hand-off for nothing: the
    connection is in autocommit mode). IMMEDIATE takes the write lock at once — every
    transaction here writes — so a statement run on the loop never waits for another process."""

    async def create_connection(self, with_db: bool) -> None:
        if not self._connection:
            self._connection = await _LoopConnection(
                partial(sqlite3.connect, self.filename, isolation_level=None, check_same_thread=False)
            )
            self._connection._conn.row_factory = sqlite3.Row
            for pragma, val in self.pragmas.items():
                cursor = await self._connection.execute(f"PRAGMA {pragma}={val}")
                await cursor.close()
            await self._post_connect()

    def _in_transaction(self) -> TransactionContext:
        return _SqliteTransactionContext(_SqliteTransaction(self), self._lock)


class _SqliteTransaction(_tortoise_sqlite.SqliteTransactionWrapper):
    """A transaction on our SQLite connection. Inside :func:`on_loop` its statements go straight
    to sqlite3 (what Tortoise's methods do, less aiosqlite's and the wrapper's lock's steps),
    unless another statement is under way on the worker thread or holds this transaction."""

    def _here(self) -> sqlite3.Connection | None:
        raw = cast(_LoopConnection, self._connection)  # SqliteClient.create_connection opened it
        if (
            _ON_LOOP.get()
            and raw._finished == raw._handed
            and not self._lock.locked()
            and raw._running
            and raw._connection is not None
        ):
            return raw._connection
        return None

    async def execute_query(self, query: str, values: list[Any] | None = None) -> tuple[int, Sequence[dict[str, Any]]]:
        here = self._here()
        if here is None:
            result: tuple[int, Sequence[dict[str, Any]]] = await super().execute_query(query, values)
            return result
        try:
            start = here.total_changes
            rows = here.execute(query.replace("\x00", "'||CHAR(0)||'"), values or ()).fetchall()
        except _TRANSLATED as exc:
            raise _translated(exc) from exc
        return (here.total_changes - start) or len(rows), rows

    async def execute_query_dict(self, query: str, values: list[Any] | None = None) -> list[dict[str, Any]]:
        here = self._here()
        if here is None:
            rows: list[dict[str, Any]] = await super().execute_query_dict(query, values)
            return rows
        try:
            return list(map(dict, here.execute(query.replace("\x00", "'||CHAR(0)||'"), values or ()).fetchall()))
        except _TRANSLATED as exc:
            raise _translated(exc) from exc

    async def execute_insert(self, query: str, values: list[Any]) -> int:
        here = self._here()
        if here is None:
            rowid: int = await super().execute_insert(query, values)
            return rowid
        try:
            # sqlite3 types lastrowid int | None (None before any INSERT); this runs INSERTs
            return cast(int, here.execute(query, values).lastrowid)
        except _TRANSLATED as exc:
            raise _translated(exc) from exc

    async def execute_many(self, query: str, values: list[list[Any]]) -> None:
        if len(values) > ON_LOOP_MAX_ROWS:  # a bulk write: on the thread, even inside on_loop()
            token = _ON_LOOP.set(False)
            try:
                await super().execute_many(query, values)
                return
            finally:
                _ON_LOOP.reset(token)
        here = self._here()
        if here is None:
            await super().execute_many(query, values)
            return
        try:
            here.executemany(query, values)
        except _TRANSLATED as exc:
            raise _translated(exc) from exc

    async def begin(self) -> None:
        """BEGIN IMMEDIATE. A transaction opened inside :func:`on_loop` tries it on the loop's
        thread first, without waiting: when another process holds the write lock it waits for
        it on aiosqlite's thread instead (the busy timeout), never on the loop. Its COMMIT then
        runs on the loop too — in WAL mode only, where the lock is ours and COMMIT has nothing to
        wait for (in a rollback-journal mode it may wait for readers: BEGIN and COMMIT stay on
        the thread)."""
        here = self._here()
        self._commit_here = here is not None and _wal(here)
        if self._commit_here and here is not None and _begin_now(here):
            return
        token = _ON_LOOP.set(False)
        try:
            await self._connection.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:  # "database is locked": transient, as on a statement
            raise _translated(exc) from exc
        finally:
            _ON_LOOP.reset(token)

    async def commit(self) -> None:
        """COMMIT; if it fails (a deferred constraint, a full disk) roll back, which SQLite does
        not do by itself — Tortoise's would leave the transaction open on the one connection."""
        if self._finalized:
            raise TransactionManagementError("Transaction already finalised")
        self._finalized = True
        token = _ON_LOOP.set(_ON_LOOP.get() and getattr(self, "_commit_here", False))
        try:
            await self._connection.commit()
        except sqlite3.Error as exc:
            try:
                await self._connection.rollback()
            except sqlite3.Error:
                pass
            raise _translated(exc) from exc
        finally:
            _ON_LOOP.reset(token)


_TRANSLATED = (sqlite3.OperationalError, sqlite3.IntegrityError)  # as Tortoise's statements translate them


def _wal(here: sqlite3.Connection) -> bool:
    (mode,) = here.execute("PRAGMA journal_mode").fetchone()
    return str(mode).lower() == "wal"


def _begin_now(here: sqlite3.Connection) -> bool:
    """BEGIN IMMEDIATE on the calling thread if SQLite's write lock is free now (no busy wait);
    False, with nothing begun, if it is not (or the statement fails: the thread's try says why)."""
    (wait,) = here.execute("PRAGMA busy_timeout").fetchone()
    here.execute("PRAGMA busy_timeout=0")
    try:
        here.execute("BEGIN IMMEDIATE")
    except sqlite3.Error:
        return False
    finally:
        here.execute(f"PRAGMA busy_timeout={int(wait)}")
    return True


def _translated(exc: sqlite3.Error) -> Exception:
    """sqlite3's error as Tortoise raises it from a statement."""
    return IntegrityError(exc) if isinstance(exc, sqlite3.IntegrityError) else OperationalError(exc)


class _SqliteTransactionContext(_tortoise_sqlite.SqliteTransactionContext):
    async def __aenter__(self) -> TransactionalDBClient:
        await self._trxlock.acquire()
        try:
            await self.ensure_connection()
            self.token = get_connections().set(self.connection_name, self.connection)
            try:
                await self.connection.begin()
            except BaseException:
                get_connections().reset(self.token)
                raise
        except BaseException:  # Tortoise's would keep the lock (and the connection) for ever
            self._trxlock.release()
            raise
        client: TransactionalDBClient = self.connection  # Tortoise types it Any
        return client


#: Tortoise's engine hook: ``{"engine": "core.db"}`` (see :func:`tortoise_config`) selects this client.
client_class = SqliteClient


#: SQLSTATEs of a statement PostgreSQL broke off to undo a lock cycle (``40P01``, deadlock) or a
#: serialization conflict (``40001``): its transaction (or savepoint) stored nothing of it, and it
#: may be run again once the other party has committed.
CONFLICT_STATES = frozenset({"40P01", "40001"})


def lock_conflict(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) is a :data:`CONFLICT_STATES` error."""
    seen: set[int] = set()
    found: BaseException | None = exc
    while found is not None and id(found) not in seen:
        if getattr(found, "sqlstate", None) in CONFLICT_STATES:
            return True
        seen.add(id(found))
        found = found.__cause__ or found.__context__
    return False


def transient(exc: BaseException) -> bool:
    """A failure of the database or the network (worth retrying), not of our code."""
    if isinstance(exc, (DBConnectionError, OSError, ConnectionError, asyncio.TimeoutError)):
        return True
    if lock_conflict(exc):
        return True
    if isinstance(exc, OperationalError):
        text = str(exc).lower()
        return any(w in text for w in ("connect", "closed", "locked", "terminat", "shutdown", "timeout", "refused"))
    return False
