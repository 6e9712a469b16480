"""Group commit (core.db.GroupCommit) and SQLite statements on the event loop's thread (core.db.on_loop).

Concurrent callers' work shares one transaction, each in its own savepoint: a caller's failure
rolls back its own writes alone, a failure of the shared transaction fails every caller of it,
and a caller learns of success only once the transaction has committed.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import threading

import pytest
from tortoise.exceptions import IntegrityError, OperationalError, TransactionManagementError
from tortoise.transactions import in_transaction

from core import db as dbmod
from core.db import GroupCommit, on_loop
from core.settings import Settings
from models.directory import Department


def _insert(code: str, *, then_fail: Exception | None = None, twice: bool = False):
    async def work(conn):
        p = dbmod.placeholders(4)
        sql = f"INSERT INTO department (code, name, level, division_code) VALUES ({p})"
        await conn.execute_query(sql, [code, f"局{code}", "city", "370200"])
        if twice:  # the same unique code again: a failing statement (on PostgreSQL it aborts the transaction)
            await conn.execute_query(sql, [code, f"局{code}", "city", "370200"])
        if then_fail is not None:
            raise then_fail
        return code

    return work


async def _codes() -> set[str]:
    return set(await Department.all().values_list("code", flat=True))


async def test_concurrent_callers_share_one_transaction_and_each_gets_its_result(db):
    group = GroupCommit()
    results = await asyncio.gather(*(group.run(_insert(f"D{i}")) for i in range(30)))
    assert results == [f"D{i}" for i in range(30)]
    assert await _codes() == {f"D{i}" for i in range(30)}
    assert (group.batches, group.items) == (1, 30)  # all queued before the writer ran: one commit


async def test_a_failing_caller_rolls_back_alone(db):
    group = GroupCommit()
    works = [
        _insert("A"),
        _insert("BAD", then_fail=ValueError("bug")),
        _insert("C"),
        _insert("DUP", twice=True),
        _insert("E"),
    ]
    outcomes = await asyncio.gather(*(group.run(w) for w in works), return_exceptions=True)
    assert outcomes[0] == "A" and outcomes[2] == "C" and outcomes[4] == "E"
    assert isinstance(outcomes[1], ValueError)
    assert isinstance(outcomes[3], IntegrityError)  # its first INSERT is rolled back with it
    assert await _codes() == {"A", "C", "E"}
    assert group.batches == 1


async def test_batches_are_capped_and_later_callers_form_the_next(db):
    group = GroupCommit(max_batch=4)
    await asyncio.gather(*(group.run(_insert(f"D{i}")) for i in range(10)))
    assert (group.batches, group.items) == (3, 10)
    assert len(await _codes()) == 10


async def test_work_sees_the_writes_of_earlier_callers_of_its_batch(db):
    group = GroupCommit()

    async def count(conn):
        return (await conn.execute_query_dict("SELECT COUNT(*) AS n FROM department"))[0]["n"]

    results = await asyncio.gather(group.run(_insert("A")), group.run(count), group.run(_insert("B")), group.run(count))
    assert results == ["A", 1, "B", 2]


async def test_a_cancelled_caller_is_skipped_and_the_others_commit(db):
    group = GroupCommit()
    first = asyncio.ensure_future(group.run(_insert("A")))
    gone = asyncio.ensure_future(group.run(_insert("GONE")))
    last = asyncio.ensure_future(group.run(_insert("C")))
    await asyncio.sleep(0)  # all three queued; the writer has not run yet
    gone.cancel()
    assert await first == "A" and await last == "C"
    assert await _codes() == {"A", "C"}


async def test_the_transaction_failing_to_begin_fails_every_caller_and_frees_the_connection(sqlite_db):
    """Another process holds SQLite's write lock: BEGIN IMMEDIATE times out, every caller gets the
    (transient) error, nothing is stored, and the connection's lock is released for what follows."""
    path = sqlite_db.database_url.removeprefix("sqlite://")
    await dbmod.conn().execute_script("PRAGMA busy_timeout=50")
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        group = GroupCommit()
        outcomes = await asyncio.gather(*(group.run(_insert(f"D{i}")) for i in range(3)), return_exceptions=True)
        assert all(isinstance(o, OperationalError) and "locked" in str(o) for o in outcomes), outcomes
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert await _codes() == set()
    assert await group.run(_insert("LATER")) == "LATER"  # Tortoise's own BEGIN failure would keep the lock for ever
    assert await _codes() == {"LATER"}


async def test_nothing_is_acknowledged_when_the_commit_fails(sqlite_db):
    """A deferred foreign key fails only at COMMIT: the whole batch is refused, including the callers
    whose own work went through."""
    group = GroupCommit()

    async def orphan(conn):
        await conn.execute_query("PRAGMA defer_foreign_keys=ON")
        await conn.execute_query("INSERT INTO unit (name, jurisdiction, department_id) VALUES ('一队', '370200', 9999)")
        return "orphan"

    outcomes = await asyncio.gather(group.run(_insert("A")), group.run(orphan), return_exceptions=True)
    assert all(isinstance(o, IntegrityError) for o in outcomes), outcomes
    assert await _codes() == set()
    assert await group.run(_insert("B")) == "B"


async def test_the_loops_group_is_one_per_loop(db):
    assert dbmod.group() is dbmod.group()
    assert await dbmod.group_commit(_insert("A")) == "A"


# --- SQLite statements on the loop's thread -----------------------------------------------------


async def _raw_connection():
    """The aiosqlite connection behind the default client, with ``thread_id()``: the thread a statement runs on."""
    await dbmod.conn().execute_query("SELECT 1")  # connected on first use
    raw = dbmod.conn()._connection
    await raw._execute(raw._conn.create_function, "thread_id", 0, threading.get_ident)
    return raw


async def _thread_of_statement(conn) -> int:
    return (await conn.execute_query_dict("SELECT thread_id() AS t"))[0]["t"]


async def test_on_loop_runs_sqlite_statements_on_the_loops_thread(sqlite_db):
    await _raw_connection()
    here = threading.get_ident()
    async with in_transaction() as conn:
        assert await _thread_of_statement(conn) != here  # by default: aiosqlite's worker thread
        with on_loop():
            assert await _thread_of_statement(conn) == here
    assert await _thread_of_statement(dbmod.conn()) != here


async def test_on_loop_never_overtakes_a_statement_queued_on_the_thread(sqlite_db):
    raw = await _raw_connection()
    release = threading.Event()
    await raw._execute(raw._conn.create_function, "wait_here", 0, lambda: release.wait(5))
    slow = asyncio.ensure_future(raw.execute_fetchall("SELECT wait_here()"))  # queued on the worker thread
    await asyncio.sleep(0.05)
    with on_loop():
        after = asyncio.ensure_future(raw.execute_fetchall("SELECT thread_id()"))
        await asyncio.sleep(0.05)
        assert not after.done()  # it waits for the thread's statement instead of running beside it
        release.set()
        await slow
        [[thread]] = await after
    assert thread != threading.get_ident()
    with on_loop():  # nothing queued any more: on the loop again
        [[thread]] = await raw.execute_fetchall("SELECT thread_id()")
    assert thread == threading.get_ident()


async def test_transactions_begin_immediate_in_one_statement(sqlite_db):
    raw = await _raw_connection()
    seen: list[str] = []
    await raw._execute(raw._conn.set_trace_callback, seen.append)
    async with in_transaction() as conn:
        await conn.execute_query("SELECT 1")
    await raw._execute(raw._conn.set_trace_callback, None)
    assert seen == ["BEGIN IMMEDIATE", "SELECT 1", "COMMIT"]  # Tortoise's sent COMMIT, BEGIN


async def test_a_transaction_opened_on_the_loop_begins_and_commits_there(sqlite_db):
    raw = await _raw_connection()
    seen: list[tuple[str, int]] = []
    await raw._execute(raw._conn.set_trace_callback, lambda s: seen.append((s, threading.get_ident())))
    with on_loop():
        async with in_transaction() as conn:
            await conn.execute_query("SELECT 1")
    await raw._execute(raw._conn.set_trace_callback, None)
    here = threading.get_ident()
    assert [s for s, t in seen if t == here and not s.startswith("PRAGMA")] == ["BEGIN IMMEDIATE", "SELECT 1", "COMMIT"]
    assert (await dbmod.conn().execute_query_dict("PRAGMA busy_timeout"))[0]["timeout"] == 5000  # put back


async def test_outside_wal_mode_begin_and_commit_stay_on_the_thread(tmp_path, sqlite_template):
    """In a rollback-journal mode COMMIT may wait for another process's readers: never on the loop."""
    path = tmp_path / "journal.sqlite3"
    shutil.copy(sqlite_template, path)
    await dbmod.init(Settings(data_dir=tmp_path, database_url=f"sqlite://{path}?journal_mode=DELETE"))
    try:
        raw = await _raw_connection()
        seen: list[tuple[str, int]] = []
        await raw._execute(raw._conn.set_trace_callback, lambda s: seen.append((s, threading.get_ident())))
        with on_loop():
            async with in_transaction() as conn:
                await conn.execute_query("SELECT 1")
        await raw._execute(raw._conn.set_trace_callback, None)
        ends = [(s, t) for s, t in seen if s in ("BEGIN IMMEDIATE", "COMMIT")]
        assert [s for s, _ in ends] == ["BEGIN IMMEDIATE", "COMMIT"]
        assert all(t != threading.get_ident() for _, t in ends)
        assert ("SELECT 1", threading.get_ident()) in seen  # the statements inside still run on the loop
    finally:
        await dbmod.close()


async def test_a_transaction_opened_on_the_loop_waits_for_another_process_off_the_loop(sqlite_db):
    """Another process holds SQLite's write lock: BEGIN waits for it on aiosqlite's thread (the
    busy timeout), the loop goes on meanwhile, and the transaction runs once the lock is free."""
    path = sqlite_db.database_url.removeprefix("sqlite://")
    await _raw_connection()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")

    async def write() -> None:
        with on_loop():
            async with in_transaction() as conn:
                await _insert("W")(conn)

    try:
        task = asyncio.ensure_future(write())
        loop = asyncio.get_running_loop()
        started = loop.time()
        for _ in range(10):  # the loop is free while the transaction waits for the lock
            await asyncio.sleep(0.01)
        assert loop.time() - started < 1.0, "the loop was held up by the lock"
        assert not task.done()
    finally:
        other.execute("ROLLBACK")
        other.close()
    await task
    assert await _codes() == {"W"}


async def test_on_loop_leaves_bulk_writes_on_the_thread(sqlite_db):
    await _raw_connection()
    sql = "INSERT INTO department (code, name, level, division_code) VALUES (?, CAST(thread_id() AS TEXT), 'city', '1')"
    async with in_transaction() as conn:
        with on_loop():
            await conn.execute_many(sql, [[f"S{i}"] for i in range(dbmod.ON_LOOP_MAX_ROWS)])
            await conn.execute_many(sql, [[f"B{i}"] for i in range(dbmod.ON_LOOP_MAX_ROWS + 1)])
    small = {int(n) for c, n in await Department.filter(code__startswith="S").values_list("code", "name")}
    bulk = {int(n) for c, n in await Department.filter(code__startswith="B").values_list("code", "name")}
    assert small == {threading.get_ident()}  # up to ON_LOOP_MAX_ROWS rows: on the loop
    assert len(bulk) == 1 and bulk != small  # more: on aiosqlite's thread


async def test_a_group_commit_is_refused_inside_a_transaction(db):
    """Its work would be committed with the batch, not with the caller's transaction: a bug, said at once."""
    async with in_transaction():
        with pytest.raises(TransactionManagementError):
            await GroupCommit().run(_insert("A"))
    assert await _codes() == set()
