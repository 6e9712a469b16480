"""Thin handlers: unpack a normalised inbound event, call one service, reply from a template.

Handlers register themselves with :mod:`handlers.router` by command name or button prefix.
They hold no business rules and no user-facing strings.
"""
