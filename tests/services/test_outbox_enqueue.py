from datetime import UTC, datetime

from tortoise.transactions import in_transaction

from models.messaging import Channel, Outbox, OutboxStatus, RecipientKind
from services.outbox import Message, enqueue

NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


def msg(key: str, **kw) -> Message:
    return Message(
        dedupe_key=key,
        recipient_kind=RecipientKind.INSPECTOR,
        recipient_id=7,
        template="assignment.j2",
        context={"no": 1, "名称": "<b>青岛</b>"},
        **kw,
    )


async def test_enqueue_writes_rows_readable_by_the_orm(db):
    await enqueue([msg("a"), msg("b", channel=Channel.SMS)], NOW)
    rows = await Outbox.all().order_by("id")
    assert [r.dedupe_key for r in rows] == ["a", "b"]
    assert rows[0].context == {"no": 1, "名称": "<b>青岛</b>"}
    assert rows[0].status is OutboxStatus.PENDING and rows[1].channel is Channel.SMS
    assert rows[0].next_attempt_at == NOW


async def test_same_dedupe_key_is_written_once(db):
    await enqueue([msg("a")], NOW)
    await enqueue([msg("a"), msg("c")], NOW)
    assert sorted(await Outbox.all().values_list("dedupe_key", flat=True)) == ["a", "c"]


async def test_rows_roll_back_with_their_transaction(db):
    try:
        async with in_transaction() as conn:
            await enqueue([msg("x")], NOW, connection=conn)
            raise RuntimeError("the state change failed")
    except RuntimeError:
        pass
    assert await Outbox.all().count() == 0
