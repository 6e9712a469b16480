"""Whose eyes: a coordinator's scope (their departments, or everything for an admin) and the
pages (ten items each) their lists are shown in.

Something outside the scope is reported exactly like something missing, so a refusal leaks nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from core import db
from models.messaging import ChatBinding, Role
from models.plans import Plan

PAGE_SIZE = 10


@dataclass(frozen=True)
class Scope:
    """Whose eyes: the departments a coordinator is scoped to, or everything (an admin)."""

    departments: frozenset[str]
    everything: bool = False
    actor: str = ""  # as the audit chain names them: "coordinator:<binding id>"

    @classmethod
    def of(cls, bindings: Iterable[ChatBinding]) -> Scope | None:
        """The scope of a chat's live bindings; None when none of them is a coordinator or admin."""
        bindings = list(bindings)
        admin = next((b for b in bindings if b.role == Role.ADMIN), None)
        if admin is not None:
            return cls(frozenset(), everything=True, actor=f"admin:{admin.id}")
        coordinator = next((b for b in bindings if b.role == Role.COORDINATOR), None)
        if coordinator is None:
            return None
        return cls(frozenset(coordinator.departments or ()), actor=f"coordinator:{coordinator.id}")

    def covers(self, departments: Iterable[str]) -> bool:
        return self.everything or bool(self.departments & set(departments or ()))


@dataclass(frozen=True)
class Page:
    """One page of a list (1-based); ``items`` are what the template shows."""

    items: list
    page: int
    pages: int
    total: int

    @property
    def first(self) -> int:
        """The list number of the page's first item."""
        return (self.page - 1) * PAGE_SIZE + 1


def clamp(page: int, total: int) -> tuple[int, int, int]:
    """(page, pages, offset) with ``page`` brought into range: a stale page button still shows something."""
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(max(1, page), pages)
    return page, pages, (page - 1) * PAGE_SIZE


def overlap_sql(scope: Scope, table: str) -> tuple[str, list]:
    """A WHERE clause on ``<table>.departments`` (a JSON list) meeting the scope's departments, and
    its parameters (the departments' codes: on PostgreSQL ``$1``, so put it first)."""
    if scope.everything:
        return "1=1", []
    codes = sorted(scope.departments)
    if not codes:
        return "1=0", []
    if db.dialect() == "postgres":
        return f'"{table}".departments ?| $1::text[]', [codes]
    marks = ", ".join("?" * len(codes))
    return f'EXISTS (SELECT 1 FROM json_each("{table}".departments) j WHERE j.value IN ({marks}))', codes


def page_of(rows: list, page: int) -> Page:
    page, pages, offset = clamp(page, len(rows))
    return Page(rows[offset : offset + PAGE_SIZE], page, pages, len(rows))


async def plans_in_scope(scope: Scope, conn=None) -> list[Plan]:
    """The plans a scope may see (plans are few: hundreds, not millions), by code."""
    q = Plan.all().order_by("code")
    if conn is not None:
        q = q.using_db(conn)
    return [p for p in await q if scope.covers(p.departments)]


async def plan_ids(scope: Scope) -> list[int]:
    return [p.id for p in await plans_in_scope(scope)]
