"""The two-person rule: what one coordinator asks for in chat, a second one releases by button.

Three things go this way: an off-schedule draw (:mod:`services.draws.offschedule`), beacon values
typed in chat (:mod:`services.draws.beacon_entry`) and a regulator's risk-class override
(:mod:`services.risk.overrides`, which may also be proposed at the CLI: no requester binding). This module is the one place for what they
share; what is asked, what a confirmation does and what each step audits stay in their modules
(the hooks given to :meth:`Rule.decide`):

- who may confirm: a live (not revoked) coordinator of the departments other than the requester
  (:func:`confirmers`, asked at the request); a press by the requester is refused, and a requester
  whose binding was revoked (or moved to other departments) meanwhile cannot be confirmed;
- the request to them and the outcome to the requester: outbox rows in the caller's transaction
  (:meth:`Rule.ask`, :meth:`Rule.tell`);
- first press wins: every step out of ``pending`` is one conditional UPDATE (:meth:`Rule.claim`),
  so of two presses at once one acts and the other finds the request decided;
- a confirmation refused by the work it releases ends the request ``failed`` (the presser refused
  as a confirmer leaves it waiting);
- with a time to live (``Rule.expires``), a request nobody decided in time ends ``expired``, at a
  press or by the sweep (:meth:`Rule.due`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from tortoise.models import Model
from tortoise.transactions import in_transaction

from models.messaging import ChatBinding, Role
from services import people
from services.draws.common import DrawError
from services.outbox import enqueue, enqueue_to_people, to_person

# refusals of the presser, not of the request: it still waits for someone who may confirm
MAY_NOT_CONFIRM = ("confirmer_not_coordinator", "confirmer_is_requester")

Hook = Callable[[Any], Awaitable[Any]]  # called with the transaction's connection


async def live_coordinator(binding: int | None, departments: Iterable[str], conn) -> ChatBinding | None:
    """The binding if it is a live coordinator of any of ``departments``."""
    b = await ChatBinding.get_or_none(id=binding, role=Role.COORDINATOR, revoked_at__isnull=True).using_db(conn)
    return b if b is not None and set(b.departments or ()) & set(departments) else None


async def confirmers(departments: Iterable[str], requester: int | None, conn) -> list[ChatBinding]:
    """Who may confirm: the live coordinators of any of ``departments`` other than the requester."""
    found = await ChatBinding.filter(role=Role.COORDINATOR, revoked_at__isnull=True).using_db(conn).order_by("id")
    wanted = set(departments)
    return [b for b in found if b.id != requester and wanted & set(b.departments or ())]


@dataclass(frozen=True)
class Rule:
    """One use of the rule: its table, and the names its texts and keys use."""

    model: type[Model]  # rows with status, decided_by, decided_at, failure
    statuses: type[Enum]  # its PENDING, CONFIRMED, DECLINED, FAILED (and EXPIRED with ``expires``)
    requester: str  # the row's field with the requester's actor
    requester_binding: str  # the row's field with the requester's binding id
    key: str  # outbox keys: ``<key>:<row id>:ask:<binding id>``, ``<key>:<row id>:<outcome>``
    request_template: str  # to the confirmers, with the buttons
    outcome_template: str  # to the requester
    decided_code: str  # the refusal of a press on a request no longer pending
    named: Callable[[Any], dict]  # a row -> what names it in that refusal's text
    failure_code: str | None = None  # a refused confirmation is raised as this (error=its code), or as it is
    expires: str | None = None  # the row's field with its end, if nobody deciding ends it

    async def ask(self, row_id: int, bindings: Iterable[ChatBinding], context: dict, now: datetime, conn) -> None:
        await enqueue_to_people(
            bindings, f"{self.key}:{row_id}:ask", self.request_template, context, now, connection=conn
        )

    async def tell(self, row: Model, outcome: str, context: dict, now: datetime, conn) -> None:
        """The requester is told the outcome (unless their binding was revoked, or they have none)."""
        if getattr(row, self.requester_binding) is None:
            return
        found = await ChatBinding.get_or_none(
            id=getattr(row, self.requester_binding), revoked_at__isnull=True
        ).using_db(conn)
        if found is not None:
            message = to_person(found, f"{self.key}:{row.pk}:{outcome}", self.outcome_template, context)
            await enqueue([message], now, connection=conn)

    async def claim(self, row_id: int, status: Enum, actor: str, now: datetime, conn, **data: Any) -> bool:
        """Move a pending row to ``status``; False when it was no longer pending."""
        n = await (
            self.model.filter(id=row_id, status=self.statuses["PENDING"])
            .using_db(conn)
            .update(status=status, decided_by=actor, decided_at=now, **data)
        )
        return bool(n)

    async def decided(self, row: Model, status: str = "", by: str = "") -> DrawError:
        """The refusal of a press on a row no longer pending, naming (as people read it) who decided it."""
        return DrawError(self.decided_code, **self.named(row), status=status, by=await people.who(by) if by else "")

    async def expire(self, row: Model, now: datetime, expired: Hook) -> bool:
        """End a pending row as expired (by ``system``), then ``expired(conn)``; False if it was not pending."""
        async with in_transaction() as conn:
            if not await self.claim(row.pk, self.statuses["EXPIRED"], "system", now, conn):
                return False
            await expired(conn)
        return True

    async def due(self, now: datetime) -> list:
        """The pending rows whose time is up (for the sweep)."""
        assert self.expires is not None
        filters = {"status": self.statuses["PENDING"], f"{self.expires}__lte": now}
        return list(await self.model.filter(**filters).order_by("id"))

    async def decide(
        self,
        row: Model,
        actor: str,
        confirm: bool,
        now: datetime,
        *,
        departments: Iterable[str],
        confirmed: Hook,
        declined: Hook,
        failed: Callable[[Any, DrawError], Awaitable[Any]],
        expired: Hook | None = None,
    ) -> Any:
        """A press of Confirm or Decline by ``actor`` on ``row`` (already found in their scope).

        Declined: the row is claimed ``declined``, then ``declined(conn)``; returns None.
        Confirmed: the row is claimed ``confirmed``, the requester checked still a live coordinator
        of ``departments``, then ``confirmed(conn)`` does the work (its result is returned), all in
        one transaction. A refusal from there (other than the presser's own) ends the row
        ``failed`` in a new transaction, then ``failed(conn, refusal)``, and is raised."""
        statuses = self.statuses
        if row.status is not statuses["PENDING"]:
            raise await self.decided(row, row.status.value, row.decided_by or "")
        if self.expires is not None and now >= getattr(row, self.expires):
            assert expired is not None
            await self.expire(row, now, expired)
            raise await self.decided(row, "expired")
        if actor == getattr(row, self.requester):
            raise DrawError("confirmer_is_requester", confirmer=await people.who(actor))
        if not confirm:
            async with in_transaction() as conn:
                if not await self.claim(row.pk, statuses["DECLINED"], actor, now, conn):
                    raise await self.decided(row)
                await declined(conn)
            return None
        try:
            async with in_transaction() as conn:
                # claimed first: of two coordinators pressing Confirm at once, one goes on, the
                # other finds the row decided (PostgreSQL: the row's lock; SQLite: one writer)
                if not await self.claim(row.pk, statuses["CONFIRMED"], actor, now, conn):
                    raise await self.decided(row)
                # a requester without a chat binding (an operator at the CLI) has none to revoke
                binding = getattr(row, self.requester_binding)
                if binding is not None and await live_coordinator(binding, departments, conn) is None:
                    raise DrawError("requester_revoked", requester=await people.who(getattr(row, self.requester), conn))
                return await confirmed(conn)
        except DrawError as exc:
            if exc.code == self.decided_code:
                fresh = await self.model.get(id=row.pk)
                raise await self.decided(row, fresh.status.value, fresh.decided_by or "") from None
            if exc.code in MAY_NOT_CONFIRM:
                raise
            async with in_transaction() as conn:  # refused: the row ends, saying why
                if await self.claim(row.pk, statuses["FAILED"], actor, now, conn, failure=exc.code[:64]):
                    await failed(conn, exc)
            if self.failure_code is None:
                raise
            raise DrawError(self.failure_code, error=exc.code, **exc.params) from None
