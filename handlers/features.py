"""Imports every handler module, so their routes register (``handlers/__init__.py`` imports this)."""

from handlers import conflicts, coordinator, inspector, membership, onsite, review, risk, start, surveys  # noqa: F401
