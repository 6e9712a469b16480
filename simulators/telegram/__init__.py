"""A Telegram Bot API simulator on loopback that the real python-telegram-bot talks to unchanged.

Validates every request against the Bot API 10.0 spec (``simulators/spec/``), carries out
the methods inspectbot uses, enforces flood limits, injects faults on request, and lets virtual
users write, press buttons, share locations and photos, and vote. See docs/simulators.md.
"""

from simulators.telegram.errors import ApiError
from simulators.telegram.faults import Fault
from simulators.telegram.flood import FloodLimits
from simulators.telegram.simulator import DEFAULT_TOKEN, ApiCall, TelegramSimulator
from simulators.telegram.world import ChatMessage, SimulatorError, VirtualUser

__all__ = [
    "DEFAULT_TOKEN",
    "ApiCall",
    "ApiError",
    "ChatMessage",
    "Fault",
    "FloodLimits",
    "SimulatorError",
    "TelegramSimulator",
    "VirtualUser",
]
