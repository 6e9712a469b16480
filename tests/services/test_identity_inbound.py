"""Invite codes bind chats; inbound events are stored once and routed by role."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core.channel import EventKind, InboundEvent
from core.clock import FakeClock
from handlers.router import route
from models.messaging import ChatBinding, InviteCode, Outbox, Role
from models.messaging import InboundEvent as InboundRow
from services.identity import IdentityError, create_invite
from services.inbound import receive
from services.outbox import reply
from tests import builders

_ids = iter(range(1000, 10_000))


def ev(sender="501", kind=EventKind.TEXT, external_id=None, **kw) -> InboundEvent:
    return InboundEvent(channel="telegram", external_id=external_id or str(next(_ids)), sender=sender, kind=kind, **kw)


def start(code: str, sender="501") -> InboundEvent:
    return ev(sender, EventKind.COMMAND, command="start", argument=code, text=f"/start {code}", sender_name="张伟")


async def replies(address: str) -> list[Outbox]:
    return await Outbox.filter(address=address).order_by("id")


async def test_invite_binds_once_and_only_its_hash_is_stored(db):
    clock = FakeClock()
    await builders.inspector()
    code = await create_invite(Role.INSPECTOR, clock, cert_no="37020001")
    assert not await InviteCode.filter(code_hash=code).exists()  # stored hashed, never plain
    result = await receive(start(code), route, clock)
    assert result.outcome == "bound"
    binding = await ChatBinding.get(address="501")
    assert binding.role == Role.INSPECTOR and binding.inspector_id is not None
    [welcome] = await replies("501")
    assert welcome.template == "welcome.j2" and welcome.context["name"] == "张伟"
    stored = await InboundRow.get(kind="command")
    assert stored.payload["argument"].startswith("sha256:") and code not in str(
        stored.payload
    )  # the code does not linger in the event log

    # used: a second chat cannot take it
    result = await receive(start(code, sender="502"), route, clock)
    assert result.outcome == "invite_used"
    assert not await ChatBinding.filter(address="502").exists()
    [refusal] = await replies("502")
    assert refusal.template == "invite_refused.j2" and refusal.context == {"reason": "invite_used"}


@pytest.mark.parametrize("case", ["forged", "expired"])
async def test_forged_and_expired_codes_are_refused(db, case):
    clock = FakeClock()
    await builders.inspector()
    code = await create_invite(Role.INSPECTOR, clock, cert_no="37020001", ttl=timedelta(hours=1))
    if case == "forged":
        code = code[:-1] + ("A" if code[-1] != "A" else "B")
    else:
        clock.advance(timedelta(hours=2))
    result = await receive(start(code), route, clock)
    assert result.outcome == f"invite_{case}"
    assert await ChatBinding.all().count() == 0


async def test_invite_for_unknown_people_is_refused(db):
    clock = FakeClock()
    with pytest.raises(IdentityError) as err:
        await create_invite(Role.INSPECTOR, clock, cert_no="nobody")
    assert err.value.code == "unknown_inspector"
    with pytest.raises(IdentityError) as err:
        await create_invite(Role.COORDINATOR, clock, departments=("NOPE",))
    assert err.value.code == "unknown_department"


async def test_unknown_sender_gets_a_refusal_and_nothing_else(db):
    clock = FakeClock()
    result = await receive(ev("999", text="我是谁"), route, clock)
    assert result.outcome == "unknown"
    [refusal] = await replies("999")
    assert refusal.template == "unknown_sender.j2" and refusal.context == {}


async def test_duplicate_delivery_changes_nothing(db):
    clock = FakeClock()
    event = ev("999", text="hello", external_id="77")
    first = await receive(event, route, clock)
    second = await receive(event, route, clock)
    assert (first.duplicate, second.duplicate) == (False, True)
    assert await InboundRow.all().count() == 1
    assert len(await replies("999")) == 1


async def test_handler_failure_rolls_back_its_work_but_keeps_the_event(db):
    clock = FakeClock()

    async def broken(ctx):
        await reply(ctx.event, "help.j2", {"roles": []}, locale="zh-CN", now=clock.now(), connection=ctx.conn)
        raise RuntimeError("boom")

    result = await receive(ev("999", text="x", external_id="88"), broken, clock)
    assert result.outcome == "failed:RuntimeError"
    [row] = await InboundRow.all()
    assert row.outcome == "failed:RuntimeError" and row.processed_at is None
    [apology] = await replies("999")  # the handler's reply rolled back; the apology went out
    assert apology.template == "internal_error.j2"
    again = await receive(ev("999", text="x", external_id="88"), route, clock)
    assert again.duplicate


async def test_database_failure_propagates_so_the_sender_retries(db):
    from tortoise.exceptions import DBConnectionError

    async def unreachable(ctx):
        raise DBConnectionError("connection refused")

    with pytest.raises(DBConnectionError):
        await receive(ev("999", text="x", external_id="89"), unreachable, FakeClock())
    assert await InboundRow.all().count() == 0


async def test_bound_inspector_gets_help(db):
    clock = FakeClock()
    await builders.inspector()
    code = await create_invite(Role.INSPECTOR, clock, cert_no="37020001")
    await receive(start(code), route, clock)
    result = await receive(ev(kind=EventKind.COMMAND, command="help", text="/help"), route, clock)
    assert result.outcome == "help"
    assert (await replies("501"))[-1].context == {"roles": ["inspector"]}
