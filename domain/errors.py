"""One base for every refusal a use case makes.

A service refuses with ``raise XError(code, **params)``; ``code`` names a text in the feature's
template (never a sentence in Python), ``params`` fill it. Handlers and the CLI catch
:class:`ServiceError` once and render the code in the reader's locale.
"""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """A refused request: ``code`` names the reason, ``params`` are the text's values."""

    def __init__(self, code: str, **params: Any) -> None:
        super().__init__(f"{code} {params}" if params else code)
        self.code = code
        self.params = params
