"""domain.held: which held message is still worth sending when its recipient is back."""

from __future__ import annotations

from datetime import timedelta

from domain import held


def test_subjects_are_read_from_the_dedupe_key():
    assert held.subject("asg:12:sent") == (held.ASSIGNMENT, 12)
    assert held.subject("asg:12:reminder") == (held.ASSIGNMENT, 12)
    assert held.subject("survey:7:invite") == (held.SURVEY, 7)
    assert held.subject("alert:3:41") == (held.ALERT, 3)
    assert held.subject("reply:telegram:700000001:0") == (held.REPLY, 0)
    # not a subject of its own: a survey's keyed by channel and sender, a team change, digits a
    # str.isdigit() would take but int() refuses
    assert held.subject("survey:sms:+8613800138000:which:A1") == (held.NOTICE, 0)
    assert held.subject("team:5:9") == (held.NOTICE, 0)
    assert held.subject("asg:²:sent") == (held.NOTICE, 0)


def test_what_is_sent_and_what_is_dropped():
    fresh, old = timedelta(hours=1), held.HOLD_WINDOW + timedelta(seconds=1)
    assert held.drop_reason(held.ASSIGNMENT, True, old) == ""  # an open task, however old
    assert held.drop_reason(held.ASSIGNMENT, False, fresh) == "task_closed"
    assert held.drop_reason(held.SURVEY, False, fresh) == "survey_closed"
    assert held.drop_reason(held.ALERT, False, fresh) == "alert_acknowledged"
    assert held.drop_reason(held.REPLY, True, fresh) == "stale_reply"
    assert held.drop_reason(held.NOTICE, False, held.HOLD_WINDOW) == ""
    assert held.drop_reason(held.NOTICE, False, old) == "expired"
