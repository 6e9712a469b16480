"""Actor strings read: who the audit chain says did something."""

from __future__ import annotations

import pytest

from domain.actors import Actor, binding_id, parse


@pytest.mark.parametrize(
    ("actor", "read"),
    [
        ("coordinator:12", Actor("coordinator", 12)),
        ("admin:3", Actor("admin", 3)),
        ("inspector:37", Actor("inspector", 37)),
        ("system", Actor("system")),
        ("cli", Actor("cli")),
        ("scheduler:risk_mix", Actor("scheduler", detail="risk_mix")),
        ("张三", Actor("named", detail="张三")),
        ("coordinator:", Actor("named", detail="coordinator:")),
        ("coordinator:x", Actor("named", detail="coordinator:x")),
        ("coordinator:１２", Actor("named", detail="coordinator:１２")),  # full-width digits: not an id we made
        ("system:x", Actor("named", detail="system:x")),
        ("coordinator:2147483647", Actor("coordinator", 2**31 - 1)),
        ("coordinator:2147483648", Actor("named", detail="coordinator:2147483648")),  # no 32-bit id: no query
        ("coordinator:" + "9" * 30, Actor("named", detail="coordinator:" + "9" * 30)),
        ("", Actor("named", detail="")),
    ],
)
def test_every_form(actor, read):
    assert parse(actor) == read


def test_binding_id_only_of_chat_bindings():
    assert binding_id("coordinator:12") == 12
    assert binding_id("admin:3") == 3
    assert binding_id("inspector:37") is None
    assert binding_id("system") is None
    assert binding_id("12") is None
