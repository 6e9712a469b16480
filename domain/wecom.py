"""WeCom userids as WeCom compares them.

WeCom's user/create (成员UserID): 1-64 bytes of digits, letters and ``_-@.``, the first a digit or
a letter, and "系统进行唯一性检查时会忽略大小写" — ``ZhangSan`` and ``zhangsan`` are one member. We
keep a userid as it was written (the directory's spelling for display, the callback's
``FromUserName`` as the address we send to) and compare the folded forms.
"""

from __future__ import annotations

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def fold_userid(userid: str) -> str:
    """The form two userids are compared in: ASCII letters lower-cased, nothing else touched —
    what SQL ``LOWER()`` gives for a userid on SQLite and on PostgreSQL alike (a userid is ASCII;
    SQLite's ``LOWER`` folds nothing else, so neither do we)."""
    return userid.translate(_ASCII_LOWER)


def same_userid(a: str | None, b: str | None) -> bool:
    """Whether two userids name one member (neither None nor empty)."""
    return bool(a and b and fold_userid(a) == fold_userid(b))
