"""/pending says which unanswered tasks never reached their inspector (templates/*/messages/coord_pending.j2)."""

from __future__ import annotations

import pytest

from core.render import render

ITEM = {"name": "王五", "draw_ref": "P1/2026-12-01", "no": 3, "deadline": "2026-12-04 17:00", "overdue": True}


@pytest.mark.parametrize(
    ("locale", "untold", "reminded", "footer"),
    [
        ("zh-CN", "任务通知未送达", "已提醒", "请绑定（邀请码）或电话通知"),
        ("en", "task message not delivered", "reminded", "bind them (invite code) or call them"),
    ],
)
def test_pending_marks_the_tasks_never_delivered(locale, untold, reminded, footer) -> None:
    def shown(**item) -> str:
        return render("messages/coord_pending.j2", locale, items=[{**ITEM, **item}], total=1, page=1, pages=1)

    told = shown(told=True, reminded=True)
    assert reminded in told and untold not in told and footer not in told
    never = shown(told=False, reminded=True)  # its reminder did not reach anyone either
    assert untold in never and reminded not in never and footer in never
    near = shown(told=False, reminded=False, overdue=False)
    assert untold in near and footer in near
    queued_before = shown(reminded=True)  # a /pending reply composed before "told" existed
    assert reminded in queued_before and untold not in queued_before and footer not in queued_before
