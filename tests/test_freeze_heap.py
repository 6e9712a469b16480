"""``freeze_heap`` (called by ``inspectbot serve`` once started): what exists then is left out
of later garbage-collector passes, and a cycle made afterwards is still collected."""

from __future__ import annotations

import gc
import weakref

from bot.app import freeze_heap


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def test_freeze_heap_leaves_out_what_exists_and_still_collects_later_cycles() -> None:
    gc.unfreeze()
    try:
        before = Node()
        freeze_heap()
        assert gc.get_freeze_count() > 0
        assert not any(o is before for o in gc.get_objects())  # in the permanent generation

        a, b = Node(), Node()
        a.other, b.other = b, a  # a cycle: only the collector frees it
        gone = weakref.ref(a)
        del a, b
        gc.collect()
        assert gone() is None
    finally:
        gc.unfreeze()  # the rest of the test process as before
