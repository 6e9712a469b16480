"""Binding a WeCom member from the directory (services.identity.bind_from_directory)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from core import db
from models.audit import AuditRecord
from models.messaging import Channel, ChatBinding
from services.identity import bind_from_directory
from tests import builders

NOW = datetime(2026, 12, 7, 4, 0, tzinfo=UTC)


async def bind(userid: str, now) -> list[ChatBinding]:
    async with db.transaction() as conn:
        return await bind_from_directory(Channel.WECOM.value, userid, now, conn)


async def test_two_first_events_at_once_write_one_binding_and_one_audit_record(db):
    inspector = await builders.inspector()
    await inspector.__class__.filter(id=inspector.id).update(wecom_userid="zhang.wei")
    now = NOW
    first, second = await asyncio.gather(bind("zhang.wei", now), bind("zhang.wei", now))
    assert [b.id for b in first] == [b.id for b in second] and len(first) == 1  # both events are the member's
    assert await ChatBinding.filter(channel=Channel.WECOM, address="zhang.wei").count() == 1
    assert await AuditRecord.filter(action="binding.created").count() == 1
    # a third event later finds the binding and writes nothing more
    assert [b.id for b in await bind("zhang.wei", now)] == [first[0].id]
    assert await AuditRecord.filter(action="binding.created").count() == 1


async def test_a_revoked_binding_is_not_made_again(db):
    inspector = await builders.inspector()
    await inspector.__class__.filter(id=inspector.id).update(wecom_userid="zhang.wei")
    now = NOW
    [binding] = await bind("zhang.wei", now)
    await ChatBinding.filter(id=binding.id).update(revoked_at=binding.created_at)
    assert await bind("zhang.wei", now) == []
    assert await bind("nobody", now) == []
    assert await AuditRecord.filter(action="binding.created").count() == 1
