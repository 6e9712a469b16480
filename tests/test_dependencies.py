"""An upgrade of a library whose private parts we rely on fails here, naming what changed.

``core/db.py`` subclasses aiosqlite's ``Connection`` (``_execute``, ``_tx``, ``_running``,
``_connection``, ``_conn``) and Tortoise's SQLite client, transaction wrapper and transaction
context (their private attributes and methods), and sets aerich's ``_init_when_aenter``. Those
are not public APIs: pyproject.toml pins each library to the minor version tested, and these
tests check that the installed version is inside that range and that every private piece we
use still exists with the shape we rely on.
"""

from __future__ import annotations

import asyncio
import inspect
import sqlite3
import tomllib
from functools import partial
from importlib.metadata import version
from pathlib import Path

import aerich.utils
import aiosqlite
import pytest
from aerich import Command, TortoiseContext
from packaging.requirements import Requirement
from packaging.version import Version
from tortoise import Tortoise
from tortoise.backends.base import config_generator, executor
from tortoise.backends.base.client import BaseDBAsyncClient, TransactionalDBClient, TransactionContext
from tortoise.backends.sqlite import client as tortoise_sqlite
from tortoise.connection import ConnectionHandler

from core import db

ROOT = Path(__file__).resolve().parent.parent

#: The libraries whose internals we use, and where.
PINNED = {
    "tortoise-orm": "core/db.py: SqliteClient, _SqliteTransaction, _SqliteTransactionContext",
    "aiosqlite": "core/db.py: _LoopConnection",
    "aerich": "core/db.py: upgrade() sets Command._init_when_aenter",
}


def _declared() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    requirements = [Requirement(text) for text in project["project"]["dependencies"]]
    return {r.name: r for r in requirements}


def _params(function) -> list[str]:
    return list(inspect.signature(function).parameters)


def _changed(package: str, what: str) -> str:
    return f"{package} {version(package)} changed: {what} (used by {PINNED[package]}); see tests/test_dependencies.py"


@pytest.mark.parametrize("package", list(PINNED))
def test_installed_version_is_the_tested_one(package: str) -> None:
    declared = _declared()
    assert package in declared, f"{package} is not declared in pyproject.toml, but {PINNED[package]} relies on it"
    specifier = declared[package].specifier
    assert any(s.operator == "<" for s in specifier), (
        f"{package} is declared without an upper bound ({specifier or 'any version'}); {PINNED[package]} uses "
        "its private parts, so pin it below the next minor version"
    )
    installed = Version(version(package))
    assert installed in specifier, (
        f"{package} {installed} is installed, outside the tested range {specifier}: check {PINNED[package]} "
        "against its changes, then move the pin in pyproject.toml"
    )


# --- aiosqlite ----------------------------------------------------------------------------------


def test_aiosqlite_connection_internals() -> None:
    assert _params(aiosqlite.Connection.__init__)[:3] == ["self", "connector", "iter_chunk_size"], _changed(
        "aiosqlite", "Connection.__init__(connector, iter_chunk_size) (we pass both positionally)"
    )
    execute = getattr(aiosqlite.Connection, "_execute", None)
    assert execute is not None and inspect.iscoroutinefunction(execute), _changed(
        "aiosqlite", "Connection._execute, the coroutine every call goes through (we override it)"
    )
    assert _params(execute) == ["self", "fn", "args", "kwargs"], _changed(
        "aiosqlite", "Connection._execute(fn, *args, **kwargs)"
    )
    assert isinstance(inspect.getattr_static(aiosqlite.Connection, "_conn", None), property), _changed(
        "aiosqlite", "the Connection._conn property (the sqlite3 connection)"
    )
    connection = aiosqlite.Connection(partial(sqlite3.connect, ":memory:"), 64)  # not started: no thread runs
    for name in ("_running", "_connection", "_tx"):
        assert hasattr(connection, name), _changed("aiosqlite", f"the Connection attribute {name}")
    assert hasattr(connection._tx, "put_nowait"), _changed("aiosqlite", "Connection._tx, the worker thread's queue")


async def test_aiosqlite_worker_takes_future_and_function_pairs() -> None:
    """_LoopConnection queues (future, function) pairs on ``_tx`` itself, and runs calls on the
    loop inside on_loop(): both must still work against the worker thread."""
    connection = await asyncio.wait_for(
        db._LoopConnection(partial(sqlite3.connect, ":memory:", isolation_level=None, check_same_thread=False)), 10
    )
    try:
        cursor = await asyncio.wait_for(connection.execute("SELECT 41 + 1"), 10)  # on the worker thread
        assert await cursor.fetchall() == [(42,)], _changed(
            "aiosqlite", "the worker thread's (future, function) queue items"
        )
        handed = connection._handed
        assert handed == connection._finished > 0
        with db.on_loop():
            cursor = await connection.execute("SELECT 2")
            assert connection._handed == handed, "inside on_loop() the call went to the worker thread"
            assert await cursor.fetchall() == [(2,)]
    finally:
        await asyncio.wait_for(connection.close(), 10)


# --- Tortoise ------------------------------------------------------------------------------------


def test_tortoise_sqlite_client_internals() -> None:
    assert issubclass(tortoise_sqlite.SqliteClient, BaseDBAsyncClient)
    assert _params(tortoise_sqlite.SqliteClient.create_connection) == ["self", "with_db"], _changed(
        "tortoise-orm", "SqliteClient.create_connection(with_db), which we override"
    )
    assert inspect.iscoroutinefunction(getattr(tortoise_sqlite.SqliteClient, "_post_connect", None)), _changed(
        "tortoise-orm", "the coroutine SqliteClient._post_connect, which our create_connection awaits"
    )
    assert _params(tortoise_sqlite.SqliteClient._in_transaction) == ["self"], _changed(
        "tortoise-orm", "SqliteClient._in_transaction(), which we override"
    )
    client = tortoise_sqlite.SqliteClient(":memory:", connection_name="dependency_check")
    for name in ("filename", "pragmas", "_connection", "_lock"):
        assert hasattr(client, name), _changed("tortoise-orm", f"the SqliteClient attribute {name}")
    assert isinstance(client._lock, asyncio.Lock), _changed("tortoise-orm", "SqliteClient._lock is an asyncio.Lock")


def test_tortoise_sqlite_transaction_internals() -> None:
    wrapper_class = tortoise_sqlite.SqliteTransactionWrapper
    assert issubclass(wrapper_class, tortoise_sqlite.SqliteClient) and issubclass(wrapper_class, TransactionalDBClient)
    for method, params in {
        "execute_query": ["self", "query", "values"],
        "execute_query_dict": ["self", "query", "values"],
        "execute_insert": ["self", "query", "values"],
        "execute_many": ["self", "query", "values"],
        "begin": ["self"],
        "commit": ["self"],
    }.items():
        assert _params(getattr(wrapper_class, method)) == params, _changed(
            "tortoise-orm", f"SqliteTransactionWrapper.{method}({', '.join(params[1:])}), which we override"
        )
    client = tortoise_sqlite.SqliteClient(":memory:", connection_name="dependency_check")
    wrapper = wrapper_class(client)
    for name in ("_connection", "_lock", "_finalized"):
        assert hasattr(wrapper, name), _changed("tortoise-orm", f"the SqliteTransactionWrapper attribute {name}")
    assert isinstance(wrapper._lock, asyncio.Lock), _changed("tortoise-orm", "SqliteTransactionWrapper._lock")

    context_class = tortoise_sqlite.SqliteTransactionContext
    assert issubclass(context_class, TransactionContext)
    assert _params(context_class.__init__) == ["self", "connection", "trxlock"], _changed(
        "tortoise-orm", "SqliteTransactionContext(connection, trxlock), which SqliteClient._in_transaction builds"
    )
    assert inspect.iscoroutinefunction(getattr(context_class, "ensure_connection", None)), _changed(
        "tortoise-orm", "the coroutine SqliteTransactionContext.ensure_connection, which our __aenter__ awaits"
    )
    context = context_class(wrapper, client._lock)
    for name in ("_trxlock", "connection", "connection_name"):
        assert hasattr(context, name), _changed("tortoise-orm", f"the SqliteTransactionContext attribute {name}")
    # our __aenter__ sets ``token`` for Tortoise's __aexit__, which resets it and reads ``_finalized``
    aexit = inspect.getsource(context_class.__aexit__)
    assert "self.token" in aexit and "_finalized" in aexit, _changed(
        "tortoise-orm", "SqliteTransactionContext.__aexit__ no longer resets self.token / reads _finalized"
    )


def test_tortoise_hooks_we_call() -> None:
    assert "client_class" in inspect.getsource(ConnectionHandler._discover_client_class), _changed(
        "tortoise-orm", "an engine module's client_class (how {'engine': 'core.db'} selects our SqliteClient)"
    )
    assert "_enable_global_fallback" in _params(Tortoise.init), _changed(
        "tortoise-orm", "Tortoise.init(_enable_global_fallback=...), which core.db.init passes"
    )
    assert hasattr(executor.EXECUTOR_CACHE, "clear"), _changed("tortoise-orm", "executor.EXECUTOR_CACHE")
    assert callable(config_generator.expand_db_url), _changed("tortoise-orm", "config_generator.expand_db_url")
    assert callable(getattr(ConnectionHandler, "set", None)) and callable(getattr(ConnectionHandler, "reset", None)), (
        _changed("tortoise-orm", "ConnectionHandler.set/reset (get_connections().set/reset in our __aenter__)")
    )


# --- aerich ---------------------------------------------------------------------------------------


def test_aerich_internals() -> None:
    assert _params(Command.__init__)[:4] == ["self", "tortoise_config", "app", "location"], _changed(
        "aerich", "Command(tortoise_config, app=, location=)"
    )
    command = Command(db.tortoise_config("sqlite://:memory:"), app=db.APP, location=str(db.MIGRATIONS))
    assert hasattr(command, "_init_when_aenter"), _changed("aerich", "the Command attribute _init_when_aenter")
    assert "_init_when_aenter" in inspect.getsource(TortoiseContext), _changed(
        "aerich",
        "Command no longer reads _init_when_aenter (core.db.upgrade sets it so aerich does not re-init Tortoise)",
    )
    assert "run_in_transaction" in _params(Command.upgrade), _changed("aerich", "Command.upgrade(run_in_transaction=)")
    assert inspect.iscoroutinefunction(Command.init), _changed("aerich", "the coroutine Command.init()")
    assert callable(getattr(aerich.utils, "get_formatted_compressed_data", None)) and callable(
        getattr(aerich.utils, "get_models_describe", None)
    ), _changed("aerich", "aerich.utils.get_formatted_compressed_data / get_models_describe (bot/migrations_tool.py)")
