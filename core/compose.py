"""Turn an outbox row into a rendered :class:`Outgoing` for one address.

The message body is ``templates/<locale>/messages/<template>``; buttons and poll options are
text codes in the row's context (``buttons: [[{"label": code, "data": "asg:accept:12"}]]``, or
a named keyboard ``keyboard: ["assignment_offer", 12]`` built by :mod:`core.keyboards`,
``poll: {"question": code, "options": [code, …]}``), so every word a person reads comes from
templates, in the recipient's locale.

``channel`` is where the row goes (the dispatcher's ``row.channel``, rewritten to where the person
is bound): the body template sees it as ``channel``, so one template says what to tap on Telegram
and on WeCom (``{% if channel == "wecom" %}…{% else %}…{% endif %}``) instead of one copy per
channel. It wins over a ``channel`` kept in an older row's context.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.channel import Button, Outgoing, Poll
from core.keyboards import keyboard
from core.render import render, text


def compose(
    template: str,
    context: dict[str, Any],
    locale: str,
    address: str,
    *,
    edit_message_id: str | None = None,
    data_dir: Path | None = None,
    key: str = "",
    channel: str = "",
) -> Outgoing:
    params = context.get("params", {})
    values = {**context, "channel": channel} if channel else context
    body = render(f"messages/{template}", locale, **values) if template else ""
    buttons = tuple(
        tuple(Button(text(b["label"], locale, **b.get("params", {})), b["data"]) for b in row)
        for row in (keyboard(*context["keyboard"]) if "keyboard" in context else context.get("buttons", ()))
    )
    poll = None
    if "poll" in context:
        spec = context["poll"]
        poll = Poll(
            question=text(spec["question"], locale, **params),
            options=tuple(text(o, locale, **params) for o in spec["options"]),
        )
    photo = None
    if context.get("photo_path") and data_dir is not None:
        photo = (data_dir / context["photo_path"]).read_bytes()
    return Outgoing(
        address=address,
        text=body,
        buttons=buttons,
        poll=poll,
        photo=photo,
        edit_message_id=edit_message_id,
        key=key,
    )
