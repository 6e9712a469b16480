"""Imports every handler module so their routes register (the router imports this once)."""

from handlers import start  # noqa: F401
