"""The schema is made by migrations; they must match the models."""

from __future__ import annotations

from bot.migrations_tool import initial_path, render_initial
from core import db as dbmod
from models.directory import Department


async def test_initial_migration_matches_models():
    # Fails when a model changed and `inspectbot db makemigrations` was not run.
    assert initial_path().read_text(encoding="utf-8") == await render_initial()


async def test_migrated_database_accepts_models(db):
    await Department.create(code="D1", name="市场监督管理局")
    assert await Department.filter(code="D1").count() == 1
    applied = await dbmod.conn().execute_query_dict("SELECT version FROM aerich")
    assert [r["version"] for r in applied] == [initial_path().name]


async def test_upgrade_is_idempotent(db):
    assert await dbmod.upgrade(db) == []
