"""Who did something, as a person reads it: the name behind an actor string.

The audit chain, the database, bundles and ``verify`` keep the actor string
(``coordinator:12``, :mod:`domain.actors`); a chat message or a CLI text that tells a person who
asked, confirmed, proposed or withdrew something shows what :func:`who` / :func:`whos` return,
rendered by the ``who`` text macro (``templates/<locale>/texts/people.j2``) in the reader's
locale. The name is looked up when the message is composed and stored in the outbox row's
context, so a binding renamed or removed later does not change a message already written.

A *who* is a small dict, JSON for an outbox context: ``{"kind", "id", "name"}``:

- ``coordinator:<id>`` / ``admin:<id>``: the chat binding's display name (for a binding of an
  inspector, the inspector's name), revoked or not; empty when the binding has none or is gone
  (the macro then says 「协调员（#12）」 / "coordinator #12");
- ``inspector:<id>``: the inspector's name;
- ``system``, ``scheduler:<job>``, ``cli``: no name (the macro says 「系统」, 「定时任务」, 「命令行操作员」);
- anything else (a CLI ``--by`` name): that name as written.

Public pages and bundles are not for this: they show the pseudonymous ``coordinator:N`` of
draw.json on purpose (no names in public).
"""

from __future__ import annotations

from collections.abc import Iterable

from core import db
from domain.actors import BINDING_KINDS, parse
from models.directory import Inspector
from models.messaging import ChatBinding


def _who(actor: str, bindings: dict[int, str], inspectors: dict[int, str]) -> dict:
    a = parse(actor)
    if a.kind in BINDING_KINDS:
        name = bindings.get(a.id or 0, "")
    elif a.kind == "inspector":
        name = inspectors.get(a.id or 0, "")
    elif a.kind == "named":
        name = a.detail
    else:
        name = ""
    return {"kind": a.kind, "id": a.id, "name": name}


async def whos(actors: Iterable[str], conn=None) -> dict[str, dict]:
    """Each of ``actors`` → its *who*; two queries at most, whatever the number."""
    wanted = set(actors)
    parsed = [parse(a) for a in wanted]
    binding_ids = {a.id for a in parsed if a.kind in BINDING_KINDS}
    inspector_ids = {a.id for a in parsed if a.kind == "inspector"}
    conn = conn or db.conn()
    bindings: dict[int, str] = {}
    if binding_ids:
        rows = (
            await ChatBinding.filter(id__in=binding_ids)
            .using_db(conn)
            .values_list("id", "display_name", "inspector__name", "entity__name")
        )
        bindings = {i: (insp or ent or shown or "").strip() for i, shown, insp, ent in rows}
    inspectors: dict[int, str] = {}
    if inspector_ids:
        rows2 = await Inspector.filter(id__in=inspector_ids).using_db(conn).values_list("id", "name")
        inspectors = {i: name for i, name in rows2}
    return {a: _who(a, bindings, inspectors) for a in wanted}


async def who(actor: str, conn=None) -> dict:
    """One actor's *who* (see :func:`whos`)."""
    return (await whos([actor], conn))[actor]
