"""Imports every handler module so their routes register (the router imports this once)."""

from handlers import conflicts, coordinator, inspector, onsite, start, surveys  # noqa: F401
