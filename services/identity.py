"""Who is talking: one-time invite codes bind a person (their own Telegram user id, redeemed in a
private chat) with a role.

Only a code's SHA-256 is stored, so a database dump cannot be used to bind a chat. A code is
redeemed with one conditional UPDATE (unused and unexpired), so two chats racing for one code
cannot both win.
"""

from __future__ import annotations

import hashlib
import secrets
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from tortoise.expressions import Q
from tortoise.functions import Lower
from tortoise.transactions import in_transaction

from core import db
from core.clock import Clock
from domain.errors import ServiceError
from domain.wecom import fold_userid, same_userid
from models.directory import Department, Entity, Inspector, InspectorStatus
from models.messaging import CHAT_CHANNELS, Channel, ChatBinding, InviteCode, Outbox, OutboxStatus, RecipientKind, Role
from services import audit
from services.reachability import release_held

INVITE_TTL = timedelta(days=7)


class IdentityError(ServiceError):
    """A refused binding; ``reason`` is a text code: invite_forged, invite_used, invite_expired, …"""


def code_hash(code: str) -> str:
    return hashlib.sha256(code.strip().encode()).hexdigest()


async def create_invite(
    role: Role,
    clock: Clock,
    *,
    cert_no: str | None = None,
    uscc: str | None = None,
    departments: tuple[str, ...] = (),
    ttl: timedelta = INVITE_TTL,
    actor: str = "cli",
) -> str:
    """A new one-time code (URL-safe, fits Telegram's 64-character start parameter), on the audit
    chain as ``actor``'s (``invite.created``: the role and whom it is for, never the code)."""
    inspector = entity = None
    if role == Role.INSPECTOR:
        inspector = await Inspector.get_or_none(cert_no=cert_no)
        if inspector is None:
            raise IdentityError("unknown_inspector", cert_no=cert_no)
    elif role == Role.ENTITY:
        entity = await Entity.get_or_none(uscc=uscc)
        if entity is None:
            raise IdentityError("unknown_entity", uscc=uscc)
    elif role == Role.COORDINATOR:
        if not departments:
            raise IdentityError("coordinator_needs_department")
        known = set(await Department.filter(code__in=list(departments)).values_list("code", flat=True))
        missing = [d for d in departments if d not in known]
        if missing:
            raise IdentityError("unknown_department", codes=missing)
    code = secrets.token_urlsafe(18)
    now = clock.now()
    async with in_transaction() as conn:
        invite = await InviteCode.create(
            code_hash=code_hash(code),
            role=role,
            inspector=inspector,
            entity=entity,
            departments=list(departments),
            expires_at=now + ttl,
            using_db=conn,
        )
        await audit.append(
            actor,
            "invite.created",
            f"invite:{invite.id}",
            {
                "role": role.value,
                "inspector": cert_no if inspector else None,
                "entity": uscc if entity else None,
                "departments": list(departments),
                "expires_at": invite.expires_at.isoformat(),
            },
            now,
            conn,
        )
    return code


@dataclass(frozen=True)
class Bound:
    binding: ChatBinding
    name: str


async def redeem(code: str, channel: Channel, address: str, display_name: str, clock: Clock) -> Bound:
    """Bind ``address`` with the invite's role. Raises IdentityError (forged / used / expired)."""
    now = clock.now()
    h = code_hash(code)
    async with in_transaction() as conn:
        p = db.placeholders(4).split(", ")
        n, _ = await conn.execute_query(
            f"UPDATE invite_code SET used_at={p[0]}, used_by={p[1]} "
            f"WHERE code_hash={p[2]} AND used_at IS NULL AND expires_at > {p[3]}",
            [now, address, h, now],
        )
        invite = await InviteCode.get_or_none(code_hash=h).using_db(conn)
        if not n:
            if invite is None:
                raise IdentityError("invite_forged")
            if invite.used_at is not None and invite.used_by != address:
                raise IdentityError("invite_used")
            if invite.used_at is not None:
                raise IdentityError("invite_used")
            raise IdentityError("invite_expired")
        binding = await ChatBinding.get_or_none(channel=channel, address=address, role=invite.role).using_db(conn)
        fields = dict(
            inspector_id=invite.inspector_id,
            entity_id=invite.entity_id,
            departments=invite.departments,
            display_name=display_name[:64],
            reachable=True,
            revoked_at=None,
        )
        if binding is None:
            binding = await ChatBinding.create(
                channel=channel, address=address, role=invite.role, using_db=conn, **fields
            )
        else:
            await ChatBinding.filter(id=binding.id).using_db(conn).update(**fields)
            binding = await ChatBinding.get(id=binding.id).using_db(conn)
        await requeue_waiting(binding, conn)
        await release_held(channel.value, address, now, conn)  # held for this person elsewhere: due here now
        await audit.append(
            f"binding:{binding.id}",
            "invite.redeemed",
            f"binding:{binding.id}",
            {
                "invite": invite.id,
                "role": invite.role.value if hasattr(invite.role, "value") else invite.role,
                "channel": channel.value,
                "inspector_id": invite.inspector_id,
                "entity_id": invite.entity_id,
                "departments": list(invite.departments or ()),
            },
            now,
            conn,
        )
        name = display_name
        if invite.inspector_id:
            name = (await Inspector.get(id=invite.inspector_id).using_db(conn)).name
        elif invite.entity_id:
            name = (await Entity.get(id=invite.entity_id).using_db(conn)).name
    return Bound(binding, name)


async def requeue_waiting(binding: ChatBinding, conn) -> None:
    """Messages that waited for this person to have an address are due now."""
    if binding.inspector_id:
        kind, rid = RecipientKind.INSPECTOR, binding.inspector_id
    elif binding.entity_id:
        kind, rid = RecipientKind.ENTITY, binding.entity_id
    else:
        kind, rid = RecipientKind.PERSON, binding.id
    channel = getattr(binding.channel, "value", binding.channel)
    channels = list(CHAT_CHANNELS) if channel in CHAT_CHANNELS else [channel]  # chat rows go where the person is
    await (
        Outbox.filter(status=OutboxStatus.NO_ADDRESS, channel__in=channels, recipient_kind=kind, recipient_id=rid)
        .using_db(conn)
        .update(status=OutboxStatus.PENDING)
    )


def named_by_userid(userid: str):
    """The inspectors whose directory userid is ``userid`` in any case (WeCom ignores case when it
    compares userids): a query on the unique ``LOWER("wecom_userid")`` index."""
    return Inspector.annotate(wecom_key=Lower("wecom_userid")).filter(wecom_key=fold_userid(userid))


#: Channels whose members the organisation's directory names (WeCom userids): a member the
#: directory knows is bound on their first event, without an invite code.
DIRECTORY_CHANNELS = frozenset({Channel.WECOM.value})


_BIND_SQL = (
    'INSERT INTO "chat_binding" ("channel", "address", "role", "inspector_id", "departments", "display_name", '
    '"locale", "reachable", "created_at") VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}) ON CONFLICT DO NOTHING RETURNING id'
)


async def bind_from_directory(channel: str, userid: str, now, conn) -> list[ChatBinding]:
    """Bind a WeCom member to the inspector whose directory row names their userid (the import's
    ``wecom_userid``), on their first event; [] when the directory does not know them — or when
    they were bound before and that binding was revoked (a revocation is not undone by writing).
    A binding of this userid made for *another* inspector — the directory has since given the
    userid to someone else (WeCom reuses a departed member's userid) — is moved to the one it
    names now (audited ``binding.moved``): that revocation, if any, was about the other person."""
    if channel not in DIRECTORY_CHANNELS:
        return []
    inspector = await named_by_userid(userid).exclude(status=InspectorStatus.RETIRED).using_db(conn).first()
    if inspector is None:
        return []
    # Two first events of one member at once (two instances): the second insert does nothing and
    # returns no id, finds the binding the first made (instead of failing its event on the unique
    # key), and leaves the audit record and the requeue to the one whose insert made it.
    row = (channel, userid, Role.INSPECTOR.value, inspector.id, [], inspector.name[:64], "zh-CN", True, now)
    made = await conn.execute_query_dict(
        _BIND_SQL.format(*db.placeholders(len(row), connection=conn).split(", ")), [db.encode(v) for v in row]
    )
    binding = await ChatBinding.get(channel=channel, address=userid, role=Role.INSPECTOR).using_db(conn)
    if binding.inspector_id != inspector.id:
        return await _move_binding(binding, inspector, now, conn)
    if binding.revoked_at is not None:
        return []
    if not made:
        return [binding]
    await requeue_waiting(binding, conn)
    await audit.append(
        "directory",
        "binding.created",
        f"binding:{binding.id}",
        {"channel": channel, "address": userid, "role": Role.INSPECTOR.value, "cert_no": inspector.cert_no},
        now,
        connection=conn,
    )
    return [binding]


async def _move_binding(binding: ChatBinding, inspector: Inspector, now, conn) -> list[ChatBinding]:
    """``binding`` (another inspector's) given to ``inspector``, whom the directory names now."""
    before = binding.inspector_id
    fields = dict(inspector_id=inspector.id, display_name=inspector.name[:64], revoked_at=None, reachable=True)
    n = await ChatBinding.filter(id=binding.id, inspector_id=before).using_db(conn).update(**fields)
    binding = await ChatBinding.get(id=binding.id).using_db(conn)
    if not n:  # moved meanwhile by another event of the member
        return [binding] if binding.inspector_id == inspector.id and binding.revoked_at is None else []
    was = await Inspector.filter(id=before).using_db(conn).values_list("cert_no", flat=True)
    await requeue_waiting(binding, conn)
    await audit.append(
        "directory",
        "binding.moved",
        f"binding:{binding.id}",
        {
            "channel": binding.channel,
            "address": binding.address,
            "from": was[0] if was else None,
            "to": inspector.cert_no,
        },
        now,
        connection=conn,
    )
    return [binding]


async def as_the_directory_says(channel: str, userid: str, bindings: list[ChatBinding], now, conn) -> list[ChatBinding]:
    """A WeCom member's live ``bindings`` as the directory has them now: an inspector binding acts
    only while its inspector is not retired, names no other userid and the directory gives this
    userid to nobody else; when the directory names an inspector for the userid and no inspector
    binding is left, :func:`bind_from_directory` makes (or moves) it. An inspector without a
    userid in the directory (bound by an invite on WeCom) keeps their binding. One query for the
    inspectors concerned."""
    ids = [b.inspector_id for b in bindings if b.role == Role.INSPECTOR and b.inspector_id is not None]
    rows = await (
        Inspector.annotate(wecom_key=Lower("wecom_userid"))
        .filter(Q(wecom_key=fold_userid(userid)) | Q(id__in=ids))
        .using_db(conn)
        .values("id", "wecom_userid", "status")
    )
    named = next(
        (r["id"] for r in rows if same_userid(r["wecom_userid"], userid) and r["status"] != InspectorStatus.RETIRED),
        None,
    )
    by_id = {r["id"]: r for r in rows}

    def acts(b: ChatBinding) -> bool:
        if b.role != Role.INSPECTOR or b.inspector_id is None:
            return True
        r = by_id.get(b.inspector_id)
        return (
            r is not None
            and r["status"] != InspectorStatus.RETIRED
            and (not r["wecom_userid"] or same_userid(r["wecom_userid"], userid))
            and named in (None, b.inspector_id)
        )

    kept = [b for b in bindings if acts(b)]
    if named is not None and not any(b.role == Role.INSPECTOR for b in kept):
        kept += await bind_from_directory(channel, userid, now, conn)
    return kept


async def bind_coordinator(
    channel: Channel, address: str, departments: tuple[str, ...], name: str, clock: Clock, actor: str = "cli"
) -> ChatBinding:
    """Bind a coordinator's WeCom userid directly (an administrator's act: WeCom already says who
    the member is, so no invite code travels). The userid as typed; a coordinator binding of it in
    another case is that one, updated (WeCom ignores case: :func:`bindings_of` finds it)."""
    if not departments:
        raise IdentityError("coordinator_needs_department")
    known = set(await Department.filter(code__in=list(departments)).values_list("code", flat=True))
    missing = [d for d in departments if d not in known]
    if missing:
        raise IdentityError("unknown_department", codes=missing)
    now = clock.now()
    async with db.transaction() as conn:
        q = ChatBinding.filter(channel=channel, role=Role.COORDINATOR)
        if channel.value in DIRECTORY_CHANNELS:
            q = q.annotate(key=Lower("address")).filter(key=fold_userid(address))
        else:
            q = q.filter(address=address)
        binding = await q.using_db(conn).order_by("id").first()
        fields = dict(departments=list(departments), display_name=name[:64], reachable=True, revoked_at=None)
        if binding is None:
            binding = await ChatBinding.create(
                channel=channel, address=address, role=Role.COORDINATOR, using_db=conn, **fields
            )
        else:
            await ChatBinding.filter(id=binding.id).using_db(conn).update(**fields)
        await audit.append(
            actor,
            "binding.created",
            f"binding:{binding.id}",
            {"channel": channel.value, "address": address, "role": "coordinator", "departments": list(departments)},
            now,
            connection=conn,
        )
    return binding


_BINDINGS_SQL = 'SELECT * FROM "chat_binding" WHERE channel = {} AND {} = {} AND revoked_at IS NULL ORDER BY id'


async def bindings_of(channel: str, address: str, conn=None) -> list[ChatBinding]:
    """Every live role of a chat (one chat may be an inspector and a coordinator). It runs for
    every inbound event: one raw query, its rows made models exactly as Tortoise's select does.
    A WeCom userid is compared without regard to case, as WeCom compares them: a coordinator
    bound as ``ZhangSan`` by an administrator is the member WeCom calls ``zhangsan``."""
    conn = conn or db.conn()
    channel_p, address_p = db.placeholders(2, connection=conn).split(", ")
    if channel in DIRECTORY_CHANNELS:
        sql, address = _BINDINGS_SQL.format(channel_p, "LOWER(address)", address_p), fold_userid(address)
    else:
        sql = _BINDINGS_SQL.format(channel_p, "address", address_p)
    return [ChatBinding._init_from_db(**row) for row in await conn.execute_query_dict(sql, [channel, address])]


@dataclass(frozen=True)
class GroupBinding:
    id: int
    address: str  # the group's chat id (negative on Telegram)
    role: str
    name: str  # the person of the directory it was made for (inspector, entity), else its display name


@dataclass(frozen=True)
class CoordinatorBinding:
    id: int  # what ``draw --confirmed-by`` names (``coordinator:<id>`` in the audit trail)
    name: str
    channel: str
    departments: tuple[str, ...]


async def coordinator_bindings(department: str | None = None) -> list[CoordinatorBinding]:
    """The live coordinator bindings, oldest first; with ``department``, those scoped to it."""
    rows = (
        await ChatBinding.filter(role=Role.COORDINATOR, revoked_at__isnull=True)
        .order_by("id")
        .values("id", "display_name", "channel", "departments")
    )
    found = [
        CoordinatorBinding(
            r["id"], r["display_name"], getattr(r["channel"], "value", r["channel"]), tuple(r["departments"] or ())
        )
        for r in rows
    ]
    return [c for c in found if department is None or department in c.departments]


async def group_bindings(conn=None) -> list[GroupBinding]:
    """Live bindings of a Telegram group rather than a person: made before invites were refused in
    groups (issue 13). A Telegram group's chat id is negative; a person's never is."""
    rows = await (
        ChatBinding.filter(channel=Channel.TELEGRAM, address__startswith="-", revoked_at__isnull=True)
        .using_db(conn or db.conn())
        .order_by("id")
        .values("id", "address", "role", "display_name", "inspector__name", "entity__name")
    )
    return [
        GroupBinding(
            r["id"],
            r["address"],
            getattr(r["role"], "value", r["role"]),
            r["inspector__name"] or r["entity__name"] or r["display_name"],
        )
        for r in rows
    ]


async def revoke_group_bindings(clock: Clock, actor: str = "cli") -> list[GroupBinding]:
    """Revoke every live group binding (:func:`group_bindings`), each with an audit record, in one
    transaction; return what was revoked. The people bound redeem a new invite in a private chat."""
    now = clock.now()
    async with db.transaction() as conn:
        found = await group_bindings(conn)
        for b in found:
            n = await ChatBinding.filter(id=b.id, revoked_at__isnull=True).using_db(conn).update(revoked_at=now)
            if n:
                await audit.append(
                    actor,
                    "binding.revoked",
                    f"binding:{b.id}",
                    {"address": b.address, "role": b.role, "name": b.name, "reason": "group_chat"},
                    now,
                    connection=conn,
                )
    return found


async def inspectors_with_chat(inspector_ids, conn=None) -> set[int]:
    """Which of these inspectors have a live chat binding (what is sent to them can arrive), so
    that a text saying "told" or "notified" is true."""
    ids = sorted(set(inspector_ids))
    if not ids:
        return set()
    q = ChatBinding.filter(inspector_id__in=ids, role=Role.INSPECTOR, revoked_at=None)
    if conn is not None:
        q = q.using_db(conn)
    return set(await q.values_list("inspector_id", flat=True))


@dataclass
class MobileMatch:
    matched: int = 0  # inspectors given the WeCom userid their mobile number has
    not_found: int = 0  # no member of the corp has their number
    taken: int = 0  # the userid found is already another inspector's: left alone, for a person to look at
    shared: int = 0  # inspectors whose number another inspector has too: it names nobody, left alone


async def match_wecom_by_mobile(lookup: Callable[[str], Awaitable[str | None]], clock: Clock) -> MobileMatch:
    """Give each inspector with a mobile number but no WeCom userid the userid WeCom's contacts
    hold for that number (``lookup``: the channel's ``user/getuserid``), so they are bound on
    their first event like a userid imported with the directory. Each match is audited; a number
    WeCom does not know leaves the inspector as they were (their events are refused politely)."""
    outcome = MobileMatch()
    todo = await (
        Inspector.filter(wecom_userid=None, mobile__not_isnull=True)
        .exclude(status=InspectorStatus.RETIRED)
        .order_by("id")
        .values_list("id", "cert_no", "mobile")
    )
    # A number two inspectors have (one of them mistyped) names neither: matched by id order, the
    # first would be given the other's WeCom account and act as them.
    numbers = Counter(
        await Inspector.filter(mobile__not_isnull=True)
        .exclude(status=InspectorStatus.RETIRED)
        .values_list("mobile", flat=True)
    )
    for inspector_id, cert_no, mobile in todo:
        if not mobile:
            continue
        if numbers[mobile] > 1:
            outcome.shared += 1
            continue
        userid = await lookup(mobile)  # a SendError (no permission, limits) ends the run: retried next time
        if userid is None:
            outcome.not_found += 1
            continue
        async with db.transaction() as conn:
            if await named_by_userid(userid).using_db(conn).exists():  # in any case: WeCom's is one member
                outcome.taken += 1
                continue
            await Inspector.filter(id=inspector_id, wecom_userid=None).using_db(conn).update(wecom_userid=userid)
            await audit.append(
                "directory",
                "inspector.wecom_matched",
                f"inspector:{inspector_id}",
                {"cert_no": cert_no, "userid": userid, "by": "mobile"},
                clock.now(),
                connection=conn,
            )
            outcome.matched += 1
    return outcome
