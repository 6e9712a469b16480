"""``enqueue_many``: the bulk path writes the very rows ``enqueue`` writes, with the same dedupe."""

from datetime import UTC, datetime

import pytest
from tortoise.transactions import in_transaction

from core import db as dbmod
from models.messaging import Channel, Outbox, OutboxStatus, RecipientKind
from services.alerts import Recipient
from services.outbox import Message, enqueue, enqueue_many, enqueue_to_people

NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
CONTEXT = {"no": 1, "名称": "<b>青岛</b>", "quote": 'a "b" \\ c', "list": [1, {"x": None}]}
FIELDS = (
    "channel",
    "recipient_kind",
    "recipient_id",
    "address",
    "template",
    "context",
    "locale",
    "status",
    "priority",
    "attempts",
    "next_attempt_at",
    "last_error",
    "created_at",
    "claimed_until",
    "sent_at",
)


def bulk(key: str, recipient: int = 7, context: dict = CONTEXT) -> tuple[str, int, str]:
    return key, recipient, dbmod.encode(context)


@pytest.mark.parametrize("channel, locale, priority", [(Channel.TELEGRAM, "zh-CN", 0), (Channel.SMS, "en", -1)])
async def test_rows_are_those_enqueue_writes(db, channel, locale, priority):
    await enqueue(
        [
            Message(
                dedupe_key="one",
                recipient_kind=RecipientKind.INSPECTOR,
                recipient_id=7,
                template="assignment.j2",
                context=CONTEXT,
                channel=channel,
                locale=locale,
                priority=priority,
            )
        ],
        NOW,
    )
    await enqueue_many(
        [bulk("many")],
        NOW,
        recipient_kind=RecipientKind.INSPECTOR,
        template="assignment.j2",
        channel=channel,
        locale=locale,
        priority=priority,
    )
    one, many = await Outbox.all().order_by("id")
    assert [getattr(many, f) for f in FIELDS] == [getattr(one, f) for f in FIELDS]
    assert many.context == CONTEXT and many.status is OutboxStatus.PENDING and many.next_attempt_at == NOW
    # the stored timestamps compare as Tortoise's own do (SQLite compares them as text)
    assert await Outbox.filter(next_attempt_at__lte=NOW, created_at=NOW).count() == 2


async def test_a_key_already_present_is_left_alone(db):
    await enqueue_many([bulk("a", 1, {"v": 1})], NOW, recipient_kind=RecipientKind.INSPECTOR, template="t.j2")
    await enqueue_many(
        (bulk(k, 2, {"v": 2}) for k in ("a", "b")), NOW, recipient_kind=RecipientKind.INSPECTOR, template="t.j2"
    )
    rows = {r.dedupe_key: r for r in await Outbox.all()}
    assert sorted(rows) == ["a", "b"]
    assert (rows["a"].recipient_id, rows["a"].context) == (1, {"v": 1})
    assert (rows["b"].recipient_id, rows["b"].context) == (2, {"v": 2})


async def test_many_rows_in_batches_and_in_order(db):
    keys = [f"asg:{i}:sent" for i in range(12_345)]
    await enqueue_many(
        (bulk(k, i, {"i": i}) for i, k in enumerate(keys)), NOW, recipient_kind=RecipientKind.INSPECTOR, template="t.j2"
    )
    rows = await Outbox.all().order_by("id").values_list("dedupe_key", "recipient_id")
    assert rows == [(k, i) for i, k in enumerate(keys)]


async def test_rows_roll_back_with_their_transaction(db):
    with pytest.raises(RuntimeError):
        async with in_transaction() as conn:
            await enqueue_many(
                [bulk("x")], NOW, recipient_kind=RecipientKind.INSPECTOR, template="t.j2", connection=conn
            )
            raise RuntimeError("the state change failed")
    assert await Outbox.all().count() == 0


async def test_a_local_time_is_stored_as_enqueue_stores_it(db):
    from zoneinfo import ZoneInfo

    local = NOW.astimezone(ZoneInfo("Asia/Shanghai"))
    await enqueue(
        [Message(dedupe_key="one", recipient_kind=RecipientKind.INSPECTOR, recipient_id=7, template="t.j2")], local
    )
    await enqueue_many([bulk("many")], local, recipient_kind=RecipientKind.INSPECTOR, template="t.j2")
    stored = await dbmod.conn().execute_query('SELECT "next_attempt_at", "created_at" FROM "outbox" ORDER BY "id"')
    one, many = (tuple(r) for r in stored[1])
    assert one == many
    assert await Outbox.filter(next_attempt_at=NOW).count() == 2


async def test_one_message_to_each_person_ahead_of_the_fan_outs(db):
    people = [Recipient(3, "telegram", "zh-CN"), Recipient(5, "sms", "en")]
    await enqueue_to_people(people, "alert:9", "alert.j2", CONTEXT, NOW)
    await enqueue_to_people(people[:1], "alert:9", "alert.j2", {"again": True}, NOW)  # the same key: left alone
    rows = await Outbox.all().order_by("id")
    assert [(r.dedupe_key, r.recipient_id, r.channel, r.locale) for r in rows] == [
        ("alert:9:3", 3, Channel.TELEGRAM, "zh-CN"),
        ("alert:9:5", 5, Channel.SMS, "en"),
    ]
    assert {(r.recipient_kind, r.template, r.priority) for r in rows} == {(RecipientKind.PERSON, "alert.j2", -1)}
    assert all(r.context == CONTEXT for r in rows)
