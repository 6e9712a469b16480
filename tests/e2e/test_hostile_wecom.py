"""What a curious or hostile person does to the WeCom side, through the WeCom simulator, the real
WecomChannel and the service's callback route (docs/messaging.md, "WeCom: what was tried").
Each test names the defect it guards against."""

from __future__ import annotations

import time

import aiohttp
from tortoise import Tortoise

from benchmarks.bench_wecom_fanout import context_for
from bot.channels.wecom import CALLBACK_PATH, MAX_BODY
from core import db as dbmod
from core.wecom_crypto import WecomCrypto
from models.alerts import Alert
from models.audit import AuditRecord
from models.directory import Inspector, InspectorStatus
from models.draws import Assignment, AssignmentStatus
from models.messaging import (
    Channel,
    ChatBinding,
    InboundEvent,
    Outbox,
    OutboxStatus,
    RecipientKind,
    Unreachable,
    WecomResponseCode,
)
from models.onsite import Photo, PhotoStatus
from scheduler import SWEEPS, Scheduler
from services import audit, plans
from services.identity import bind_coordinator
from services.outbox import enqueue_many
from simulators.telegram.media import make_png
from simulators.wecom import DEV_AES_KEY, DEV_AGENT_ID, DEV_CORP_ID, DEV_TOKEN
from tests.e2e.test_onsite_chat import on_site_now, setup
from tests.e2e.wecom_harness import Member, text, wecom_spine, with_key
from tests.services import draw_world as world

GENUINE = WecomCrypto(DEV_TOKEN, DEV_AES_KEY, DEV_CORP_ID)


def plain(
    inner: str, *, user: str = "eve", agent: str = f"<AgentID>{DEV_AGENT_ID}</AgentID>", created: str = ""
) -> str:
    created = created or f"<CreateTime>{int(time.time())}</CreateTime>"
    return (
        f"<xml><ToUserName><![CDATA[{DEV_CORP_ID}]]></ToUserName><FromUserName><![CDATA[{user}]]></FromUserName>"
        f"{created}{inner}{agent}</xml>"
    )


def text_xml(content: str, msg_id: int) -> str:
    return f"<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId>"


def sealed(xml: str) -> tuple[dict[str, str], str]:
    """The query and the Encrypt of a callback signed and encrypted with the application's own
    Token and key (a genuine one, as far as the signature goes)."""
    timestamp = str(int(time.time()))
    encrypt, signature = GENUINE.seal(xml, timestamp, "4242")
    return {"msg_signature": signature, "timestamp": timestamp, "nonce": "4242"}, encrypt


async def post(url: str, xml: str, *, body: bytes | None = None) -> int:
    query, encrypt = sealed(xml)
    sent = body if body is not None else f"<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>".encode()
    return await post_raw(url, query, sent)


async def post_raw(url: str, query: dict[str, str], body: bytes) -> int:
    async with aiohttp.ClientSession() as session:
        async with session.post(url + CALLBACK_PATH, params=query, data=body) as resp:
            return resp.status


async def test_a_doctype_in_another_encoding_is_refused_before_it_is_parsed(db):
    """Defect: the DOCTYPE check looked for the ASCII bytes ``<!DOCTYPE``; the same document in
    UTF-16 (with or without a BOM) passed it and expat expanded its entities — in the outer body,
    before any signature is checked. Here the entity even spells a genuine Encrypt: it was stored."""
    async with wecom_spine(db) as s:
        for n, encoding in enumerate(("utf-16", "utf-16-le", "utf-16-be", "utf-32")):
            query, encrypt = sealed(plain(text_xml("/help", n + 1)))
            body = (
                f'<?xml version="1.0" encoding="{encoding.upper()}"?>'
                f'<!DOCTYPE xml [<!ENTITY e "{encrypt}">]><xml><Encrypt>&e;</Encrypt></xml>'
            )
            assert await post_raw(s.url, query, body.encode(encoding)) == 403, encoding
        assert not await InboundEvent.exists()
        query, encrypt = sealed(plain(text_xml("/help", 9)))
        body = f"<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
        assert await post_raw(s.url, query, body.encode("utf-16")) == 403  # WeCom sends UTF-8, nothing else
        assert await post_raw(s.url, query, body.encode()) == 200  # the genuine one still passes


async def test_repeated_or_nested_fields_are_refused_whole(db):
    """Defect: ``findtext`` read the first of two ``<Content>`` (or ``<FromUserName>``) and the text
    before a nested element, so one callback could mean two things to two readers."""
    async with wecom_spine(db) as s:
        two_contents = text_xml("/help", 1).replace("</Content>", "</Content><Content><![CDATA[/tasks]]></Content>")
        assert await post(s.url, plain(two_contents)) == 400
        two_senders = plain(text_xml("hi", 2)).replace(
            "<CreateTime>", "<FromUserName>mallory</FromUserName><CreateTime>"
        )
        assert await post(s.url, two_senders) == 400
        nested = text_xml("x", 3).replace("<![CDATA[x]]>", "/he<b>ignored</b>lp")
        assert await post(s.url, plain(nested)) == 400
        # CDATA that closes early is just text: the content is what the member typed, whole
        assert await post(s.url, plain(text_xml("a]]]]><![CDATA[>b", 4))) == 200
        assert await InboundEvent.all().count() == 1
        stored = await InboundEvent.get()
        assert stored.payload["text"] == "a]]>b"


async def test_another_applications_callback_is_not_ours(db):
    """Defect: the AgentID inside a callback was never read: where two applications of the corp
    share a callback Token and key, a member's message to the other application was handled here
    (and answered from this one)."""
    async with wecom_spine(db) as s:
        for agent in ("<AgentID>1000099</AgentID>", ""):
            status = await post(s.url, plain(text_xml("/help", len(agent)), agent=agent))
            assert status == 200, agent  # genuine, so WeCom must not retry it; but not for us
        assert not await InboundEvent.exists()
        await s.deliver()
        assert not s.sim.member("eve").received


async def test_a_callback_without_create_time_is_refused(db):
    """Defect: events are keyed by member, CreateTime and kind; without a CreateTime every later
    ``enter_agent`` of the member had the key of the first, and was dropped as its duplicate."""
    async with wecom_spine(db) as s:
        enter = "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[enter_agent]]></Event>"
        for created in ("<CreateTime></CreateTime>", "<CreateTime>soon</CreateTime>", "<Other/>"):
            assert await post(s.url, plain(enter, created=created)) == 400, created
        no_msg_id = "<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[/help]]></Content>"
        for inner in (no_msg_id, no_msg_id + "<MsgId></MsgId>", no_msg_id + f"<MsgId>{'9' * 65}</MsgId>"):
            assert await post(s.url, plain(inner)) == 400, inner  # held up: a message is keyed by its MsgId
        assert not await InboundEvent.exists()
        # far in the past or the future (WeCom's own clock): stored, keyed by it
        assert await post(s.url, plain(enter, created="<CreateTime>1</CreateTime>")) == 200
        assert await post(s.url, plain(enter, created="<CreateTime>99999999999</CreateTime>")) == 200
        assert await InboundEvent.all().count() == 2


async def test_a_location_off_the_globe_is_refused(db):
    """Defect: latitude and longitude were both checked against ±180, so a latitude of 120° was stored."""
    async with wecom_spine(db) as s:
        cases = [("120", "10"), ("-90.5", "10"), ("10", "180.5"), ("nan", "1"), ("1", "inf"), ("1e400", "1"), ("", "1")]
        for n, (lat, lon) in enumerate(cases):
            inner = (
                f"<MsgType><![CDATA[location]]></MsgType><Location_X>{lat}</Location_X>"
                f"<Location_Y>{lon}</Location_Y><Scale>15</Scale><MsgId>{n + 1}</MsgId>"
            )
            assert await post(s.url, plain(inner)) == 400, (lat, lon)
        assert not await InboundEvent.exists()
        assert await s.sim.location("eve", -90, 180) == 200
        assert (await InboundEvent.get()).payload["latitude"] == -90


async def bound(s, assignment: Assignment, userid: str) -> Member:
    await Inspector.filter(id=assignment.inspector_id).update(wecom_userid=userid)
    m = Member(s, userid)
    await m.enter()
    return m


async def test_a_press_on_someone_elses_card_or_a_made_up_button_changes_nothing(db, tmp_path):
    """A member's press names a card (TaskId) and a key (EventKey); both are the member's word. A
    key of another inspector's assignment, a card that does not exist, a key no card had: each is
    refused and nothing changes; the owner's own press still works afterwards."""
    async with wecom_spine(db, clock=world.clock()) as s:
        await setup(s, tmp_path)
        first, other = await Assignment.filter(seat=1).order_by("id").limit(2)
        if other.inspector_id == first.inspector_id:
            other = await Assignment.filter(seat=1).exclude(inspector_id=first.inspector_id).order_by("id").first()
        alice, bob = await bound(s, first, "alice"), await bound(s, other, "bob")
        alice_card = with_key(alice.inbox, f"asg:accept:{first.id}")
        for task, key in (
            (alice_card["card"]["task_id"], f"asg:accept:{first.id}"),  # alice's card, pressed by bob
            ("ib-" + "0" * 32, f"asg:accept:{first.id}"),  # a card that never was
            (with_key(bob.inbox, f"asg:accept:{other.id}")["card"]["task_id"], f"asg:recuse:{first.id}"),
            ("ib-x", "asg:accept:99999999999999999999"),  # an id no column holds
            ("ib-x", "not a key at all"),
        ):
            assert await s.sim.press("bob", task, key) == 200
            await s.deliver()
        assert (await Assignment.get(id=first.id)).status == AssignmentStatus.SENT
        assert not await InboundEvent.filter(outcome__startswith="failed").exists()
        assert not await Outbox.filter(status=OutboxStatus.DEAD).exists()
        assert not alice.new()[1:]  # alice heard nothing of it (her binding's help at most)
        done = await alice.press(alice_card, f"asg:accept:{first.id}")
        assert (await Assignment.get(id=first.id)).status == AssignmentStatus.ACCEPTED and done


async def test_commands_typed_on_a_chinese_phone_keyboard(db, tmp_path):
    """Defect: a command was ``/`` + the text up to an ASCII space, so the full-width slash and
    letters of a Chinese keyboard (``／ｔａｓｋｓ``), the ideographic space between a command and its
    argument (``/risk　食品``) or a line break made an unknown command or plain text."""
    async with wecom_spine(db, clock=world.clock()) as s:
        w = await world.build(n_entities=4, n_scjg=2, n_wsj=0)
        await Inspector.filter(id=w.inspectors["S01"].id).update(wecom_userid="s01")
        member = Member(s, "s01")
        await member.enter()
        plain_tasks = [text(m) for m in await member.say("/tasks")]
        for typed in ("／tasks", "/ＴＡＳＫＳ", "  /tasks", "/tasks　", "/Tasks\n"):
            got = [text(m) for m in await member.say(typed)]
            assert got == plain_tasks, (typed, got)
        stored = await InboundEvent.filter(sender="s01").order_by("-id").first()
        assert stored.payload["command"] == "tasks"
        await Inspector.filter(id=w.inspectors["S02"].id).update(wecom_userid="s02")
        await bind_coordinator(Channel.WECOM, "coord", ("SCJG",), "协调员", s.clock)
        coord = Member(s, "coord")
        name = w.entities[0].name
        said = [text(m) for m in await coord.say(f"/risk　{name}")]
        assert said and name in said[-1], said
        assert [text(m) for m in await coord.say(f"/risk\n{name}")] == said


async def test_a_photo_whose_download_is_not_a_picture_is_never_stored(db, tmp_path):
    """Defect: any answer of ``media/get`` that was not JSON was taken for the picture — a proxy's
    HTML error page (HTTP 200) was stored as the inspector's evidence photo; and the body was read
    whole, however large. Now: a body past WeCom's largest medium is refused unread (the photo
    fails, the inspector is told), one that is no picture is tried again later, an errcode (the
    media id expired) fails it at once."""
    async with wecom_spine(db, clock=world.clock()) as s:
        await setup(s, tmp_path)
        lead = await Assignment.filter(seat=1).order_by("id").prefetch_related("inspection__entity").first()
        chat = await bound(s, lead, "lead.01")
        await chat.press(with_key(chat.inbox, f"asg:accept:{lead.id}"), f"asg:accept:{lead.id}")
        await on_site_now(s, lead)
        entity = lead.inspection.entity
        await chat.location(entity.lat, entity.lon)
        picture = make_png(40, 30, (10, 120, 200))
        for data in (picture, b"\xff\xd8\xff" + bytes(21 << 20), picture):
            got = await chat.photo(data)
            assert any("照片已收到" in text(m) for m in got), [text(m) for m in got]
        html, huge, expired = await Photo.filter(inspection_id=lead.inspection_id).order_by("id")
        del s.sim.media[expired.file_id.removeprefix("wecom:")]  # media/get answers 40007
        s.sim.inject("html")  # the first download answers a proxy's error page
        await SWEEPS["photos"](Scheduler(s.rt), s.clock.now())
        html, huge, expired = [await Photo.get(id=p.id) for p in (html, huge, expired)]
        assert (html.status, huge.status, expired.status) == (
            PhotoStatus.PENDING,
            PhotoStatus.FAILED,
            PhotoStatus.FAILED,
        )
        assert (html.last_error, huge.last_error, expired.last_error) == ("not_an_image", "too_long", "bad_request")
        assert not html.path and not (db.data_dir / "photos").exists()  # nothing written
        s.clock.advance(3600)
        await SWEEPS["photos"](Scheduler(s.rt), s.clock.now())
        html = await Photo.get(id=html.id)
        assert html.status == PhotoStatus.STORED and (db.data_dir / html.path).read_bytes() == picture
        await s.deliver()
        told = [text(m) for m in chat.new()]
        assert len([t for t in told if "照片" in t]) == 2, told  # the two that failed, each said once


async def test_a_userid_acts_for_whom_the_directory_names_now(db, tmp_path):
    """Defect: a WeCom binding outlived the directory row that made it. When the directory moved a
    userid to another inspector (WeCom reuses a departed member's userid), the new member acted as
    the old inspector — saw and could accept their tasks; and a userid the directory no longer
    names, or an inspector retired, still acted. The binding now follows the directory."""
    async with wecom_spine(db, clock=world.clock()) as s:
        await setup(s, tmp_path)
        first = await Assignment.filter(seat=1).order_by("id").prefetch_related("inspector").first()
        other = await Inspector.exclude(id=first.inspector_id).order_by("id").first()
        old = await bound(s, first, "zhangwei")
        card = with_key(old.inbox, f"asg:accept:{first.id}")
        # the directory moves the userid to another inspector (the first one left)
        await Inspector.filter(id=first.inspector_id).update(wecom_userid=None)
        await Inspector.filter(id=other.id).update(wecom_userid="zhangwei")
        new = Member(s, "zhangwei")
        new.seen = len(new.inbox)
        # the old inspector's notices no longer go to the userid: it is someone else's now
        for channel in (Channel.TELEGRAM, Channel.WECOM):  # a notice, and a row already moved to WeCom
            await enqueue_many(
                [(f"moved:{channel.value}", first.inspector_id, dbmod.encode(context_for(1)))],
                s.clock.now(),
                recipient_kind=RecipientKind.INSPECTOR,
                template="team_changed.j2",
                channel=channel,
            )
        await s.deliver()
        assert not new.new()
        assert {r.status for r in await Outbox.filter(dedupe_key__startswith="moved:")} == {OutboxStatus.NO_ADDRESS}
        await s.sim.press("zhangwei", card["card"]["task_id"], f"asg:accept:{first.id}")
        await s.deliver()
        assert (await Assignment.get(id=first.id)).status == AssignmentStatus.SENT
        said = [text(m) for m in await new.say("/tasks")]
        mine = await Assignment.filter(inspector_id=other.id).count()
        assert (f"共 {mine} 项" if mine else "没有待办任务") in said[-1], said[-1]  # their own tasks
        binding = await ChatBinding.get(channel=Channel.WECOM, address="zhangwei")
        assert binding.inspector_id == other.id and binding.revoked_at is None
        # the inspector now has another userid: the old one acts for nobody (the polite refusal)
        await Inspector.filter(id=other.id).update(wecom_userid="zhangwei2")
        assert "尚未登记" in text((await new.say("/tasks"))[-1])
        # named again, but retired: nobody's either; active again: theirs
        await Inspector.filter(id=other.id).update(wecom_userid="zhangwei", status=InspectorStatus.RETIRED)
        assert "尚未登记" in text((await new.say("/tasks"))[-1])
        await Inspector.filter(id=other.id).update(status=InspectorStatus.ACTIVE)
        assert "尚未登记" not in text((await new.say("/tasks"))[-1])
        assert await ChatBinding.filter(channel=Channel.WECOM, address="zhangwei").count() == 1
        moved = await AuditRecord.filter(action="binding.moved").values_list("data", flat=True)
        assert [(p["from"], p["to"]) for p in moved] == [(first.inspector.cert_no, other.cert_no)]
        assert (await audit.verify())[1] is None
        assert not await InboundEvent.filter(outcome__startswith="failed").exists()


BIG = "9" * 20  # past int64: PostgreSQL refuses it as a bigint parameter
HOSTILE_ARGUMENTS = [
    ("status", BIG),
    ("status", f"P1/2026-12-01/{BIG}"),
    ("pending", BIG),
    ("alerts", BIG),
    ("recusals", BIG),
    ("risk", "青岛" * 300),
    ("risk", BIG),
    ("risk", "９１３７０２００"),
    ("report", "２０２６－１２"),
    ("report", "9" * 4000),
    ("plan", "Ｐ１"),
    ("draw", "P1 " + "补抽" * 2000),
    ("beacon", f"P1/2026-12-01 {'1' + '0' * 400} 5"),
    ("approve", f"P1/2026-12-01/{BIG}"),
    ("return", f"P1/2026-12-01/{BIG} 请补充"),
    ("riskoverride", f"91370202MA00000012 A 2027-05-31 {'理由' * 1000}"),
    ("riskwithdraw", f"{BIG} 复核"),
    ("riskoverrides", BIG),
    ("verify", BIG),
    ("integrity", BIG),
    ("task", BIG),
    ("", ""),
    ("ｓｔａｔｕｓ", "P1"),
]


async def test_coordinator_commands_with_hostile_arguments_over_wecom(db, tmp_path):
    """Every coordinator command with numbers past int64, names of thousands of characters and
    full-width forms, each typed twice: every one answered, none failed, nothing dead-lettered."""
    async with wecom_spine(db, clock=world.clock()) as s:
        await world.build(n_entities=6, n_scjg=4, n_wsj=0)
        await plans.add_plan(world.plan_file(tmp_path, "P1", a="0.5", b="0.5", c="0.5"), s.clock)
        await bind_coordinator(Channel.WECOM, "coord", ("SCJG",), "协调员", s.clock)
        coord = Member(s, "coord")
        for command, argument in HOSTILE_ARGUMENTS:
            for _ in range(2):
                said = [text(m) for m in await coord.say(f"/{command} {argument}".strip())]
                assert said and all(len(t.encode()) <= 2048 for t in said), (command, argument[:30], said)
        for code in ("x" * 5000, "１２３４", "' OR 1=1 --"):  # an invite code nobody issued: refused, not stored
            said = [text(m) for m in await coord.say(f"/start {code}")]
            assert len(said) == 1 and len(said[0]) < 200, said
        assert not await InboundEvent.filter(outcome__startswith="failed").exists()
        assert not await Outbox.filter(status=OutboxStatus.DEAD).exists()
        assert await InboundEvent.filter(sender="coord").count() == 2 * len(HOSTILE_ARGUMENTS) + 3
        assert not any("x" * 100 in str(e.payload) for e in await InboundEvent.filter(sender="coord"))  # hashed


async def counts() -> dict[str, int]:
    return {name: await model.all().count() for name, model in Tortoise.apps["models"].items()}


async def test_a_member_the_directory_does_not_know_leaves_nothing_but_the_event(db, tmp_path):
    """Every command, a text, a press, a location and a photo from a userid no directory row and
    no binding names: one polite refusal each, and no row anywhere but the inbound events and
    those replies (no binding, no check-in, no photo). Defect: a coordinator's command, a list's
    page button and /integrity answered such a member with Telegram's refusal, which points to an
    invite link — on WeCom there is none; they now give WeCom's (ask your administrator)."""
    async with wecom_spine(db, clock=world.clock()) as s:
        await world.build(n_entities=4, n_scjg=2, n_wsj=0)
        before = await counts()
        stranger = Member(s, "stranger")
        acts = [stranger.say(f"/{c} {a}".strip()) for c, a in HOSTILE_ARGUMENTS[:6]]
        acts += [stranger.enter(), stranger.say("你好"), stranger.location(36.0, 120.4)]
        acts += [stranger.photo(make_png(8, 8, (1, 2, 3)))]
        for act in acts:
            got = await act
            assert len(got) == 1 and "尚未登记" in text(got[0]), [text(m) for m in got]
        assert await s.sim.press("stranger", "ib-" + "1" * 32, "asg:accept:1") == 200
        await s.deliver()
        after = await counts()
        changed = {name: after[name] - before[name] for name in after if after[name] != before[name]}
        n = len(acts) + 1  # each act and the press: its event, its one reply; the press's code is kept
        # before its event is stored (so any instance can update the card) and swept after 72 hours
        assert changed == {"InboundEvent": n, "Outbox": n, "WecomResponseCode": 1}, changed
        assert {r.template for r in await Outbox.all()} == {"unknown_member.j2"}


async def test_a_body_at_the_size_limit_passes_and_one_byte_more_does_not(db):
    """Held up: the callback's limit (64 KiB) is exact, whatever Content-Length says."""
    async with wecom_spine(db) as s:
        query, encrypt = sealed(plain(text_xml("/help", 1)))
        body = f"<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>".encode()
        padded = body.replace(b"</xml>", b" " * (MAX_BODY - len(body)) + b"</xml>")
        assert len(padded) == MAX_BODY
        assert await post_raw(s.url, query, padded + b" ") == 413
        assert not await InboundEvent.exists()
        assert await post_raw(s.url, query, padded) == 200
        assert await InboundEvent.all().count() == 1


async def test_kinds_and_events_we_do_not_handle_store_nothing(db):
    """Held up: a voice message, a menu click, a contact change, an unsubscribe: answered 200 (so
    WeCom does not retry), nothing stored, nothing said."""
    async with wecom_spine(db) as s:
        inners = [
            "<MsgType><![CDATA[voice]]></MsgType><MediaId><![CDATA[m]]></MediaId><MsgId>5</MsgId>",
            "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[click]]></Event><EventKey>k</EventKey>",
            "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_contact]]></Event>",
            "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[unsubscribe]]></Event>",
            "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[no_such_event]]></Event>",
        ]
        for inner in inners:
            assert await post(s.url, plain(inner)) == 200, inner
        await s.deliver()
        assert not await InboundEvent.exists() and not s.sim.member("eve").received


async def test_opening_the_application_again_and_again_is_answered_once_a_day(db, tmp_path):
    """Defect: WeCom sends ``enter_agent`` each time a member opens the application, and each was
    answered (help for an inspector, the refusal for a stranger): the chat filled with the same
    text, and every copy counted against the member's 30 a minute and the corp's daily quota. Now
    once per member and day; what a member types is still answered each time."""
    async with wecom_spine(db, clock=world.clock()) as s:
        w = await world.build(n_entities=2, n_scjg=2, n_wsj=0)
        await Inspector.filter(id=w.inspectors["S01"].id).update(wecom_userid="s01")
        known, stranger = Member(s, "s01"), Member(s, "stranger")
        for member, expected in ((known, "/tasks"), (stranger, "尚未登记")):
            first = await member.enter()
            assert len(first) == 1 and expected in text(first[0])
            for _ in range(5):
                assert await member.enter() == []
            assert len(await member.say("/help")) == 1  # typed: answered
        s.clock.advance(24 * 3600)
        assert len(await known.enter()) == 1  # the next day: once again
        assert await InboundEvent.filter(sender="s01").count() == 8  # every event is still stored


async def test_an_errcode_nobody_mapped_is_retried_then_given_up_and_told(db):
    """Held up: an errcode the adapter does not know is retryable; after the dispatcher's attempts
    the row is dead-lettered with the reason and the coordinators are alerted — never lost
    silently, never retried for ever; the member is not marked unreachable for it."""
    async with wecom_spine(db, clock=world.clock()) as s:
        w = await world.build(n_entities=2, n_scjg=2, n_wsj=0)
        await Inspector.filter(id=w.inspectors["S01"].id).update(wecom_userid="s01")
        member = Member(s, "s01")
        await member.enter()
        s.sim.inject(99991, count=100)
        await enqueue_many(
            [("odd:1", w.inspectors["S01"].id, dbmod.encode(context_for(1)))],
            s.clock.now(),
            recipient_kind=RecipientKind.INSPECTOR,
            template="team_changed.j2",
        )
        for _ in range(20):
            await s.deliver()
            s.clock.advance(3600)
        row = await Outbox.get(dedupe_key="odd:1")
        assert (row.status, row.last_error) == (OutboxStatus.DEAD, "gave_up:unknown"), (row.status, row.last_error)
        assert await Alert.filter(key=f"undeliverable:{row.id}").exists()
        assert not await Unreachable.exists()


async def test_a_nul_cannot_arrive_over_wecom(db):
    """Held up: WeCom's XML cannot carry a NUL (nor a lone surrogate, which no UTF-8 encodes): a
    callback with one is malformed (400), nothing stored."""
    async with wecom_spine(db) as s:
        assert await s.sim.text("eve", "/risk a\x00b") == 400
        assert not await InboundEvent.exists()


async def test_ids_longer_than_their_columns_are_refused_alike_on_both_databases(db):
    """Defect: a card event's TaskId and ResponseCode and an image's MediaId were taken at any
    length: SQLite stored them, PostgreSQL refused the press's code (503 on every retry of WeCom)
    and the photo row (the event failed). Longer than the columns now is malformed: 400 on both."""
    async with wecom_spine(db) as s:
        press = (
            "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[template_card_event]]></Event>"
            "<EventKey><![CDATA[asg:accept:1]]></EventKey><TaskId><![CDATA[{task}]]></TaskId>"
            "<ResponseCode><![CDATA[{code}]]></ResponseCode>"
        )
        image = "<MsgType><![CDATA[image]]></MsgType><MediaId><![CDATA[{media}]]></MediaId><MsgId>{n}</MsgId>"
        for inner in (
            press.format(task="t" * 129, code="c"),
            press.format(task="", code="c"),
            press.format(task="t", code="c" * 129),
            image.format(media="m" * 250, n=1),
            image.format(media="", n=2),
        ):
            assert await post(s.url, plain(inner)) == 400, inner[:120]
        assert not await InboundEvent.exists() and not await WecomResponseCode.exists()
        assert await post(s.url, plain(press.format(task="t" * 128, code="c" * 128))) == 200
        assert await post(s.url, plain(image.format(media="m" * 249, n=3))) == 200
        assert await InboundEvent.all().count() == 2 and await WecomResponseCode.all().count() == 1
