"""Thin handlers: unpack a normalised inbound event, call one service, reply from a template.

Handlers register themselves with :mod:`handlers.router` by command name or button prefix.
They hold no business rules and no user-facing strings. Importing the package imports every
handler module (:mod:`handlers.features`), so the router's tables are complete whichever
module of ours is imported first.
"""

from handlers import features  # noqa: F401  (registers every route)
