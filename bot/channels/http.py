"""The HTTP-session lifecycle shared by channels that speak to a provider over HTTP."""

from __future__ import annotations

import aiohttp


class HttpSession:
    """An aiohttp session opened on :meth:`start` and closed on :meth:`stop` — unless the caller
    passed one in, which then stays the caller's to close."""

    def _use_session(self, session: aiohttp.ClientSession | None, timeout: float) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session = session
        self._own_session = session is None

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()

    async def stop(self) -> None:
        if self._session is not None and self._own_session:
            await self._session.close()
            self._session = None
