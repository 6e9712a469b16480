"""A drand HTTP relay on loopback, for tests and the demo: ``GET /<chain hash>/info``,
``GET /<chain hash>/public/<round>`` and ``GET /<chain hash>/public/latest``, as drand's relays
answer them (``{"round", "randomness", "signature"}``).

Two chains, never mixed up:

- **quicknet, recorded**: the League of Entropy's real rounds from :data:`QUICKNET_RECORDED`
  (drand's and drand-verify's published test vectors). Their signatures verify against the
  real quicknet key. Only these rounds exist here: the simulator cannot make up a quicknet round
  (the signature binds the round number).
- **a local test chain**: a key pair of our own (``core.drand.test_chain``), same scheme; the
  simulator signs every round whose time has come by its clock. A deployment that uses it sets
  ``INSPECTBOT_DRAND_CHAIN`` to :meth:`DrandSimulator.chain_info_json`; every verifier flags its
  draws as "test chain, not the public drand network".

``outage`` makes every request fail with 503 (a relay down); ``withhold`` hides some rounds;
``corrupt`` answers a round with the next round's signature (a relay that lies).
Standalone: ``python -m simulators.drand --port 8091`` (prints the test chain's info).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable

from aiohttp import web

from core.drand import TestChain, test_chain
from domain import beacon as beacons

#: Real quicknet rounds: round -> signature (randomness = SHA-256(signature)).
QUICKNET_RECORDED: dict[int, str] = {
    1000: "b44679b9a59af2ec876b1a6b1ad52ea9b1615fc3982b19576350f93447cb1125e342b73a8dd2bacbe47e4b6b63ed5e39",
    657413: "b713718a38ae728dfd477991af2822e08d2f305e47718cef9f7848ce4050e7be41076862b98fad56e91a6b85b89cd97b",
    1000000: "83ad29e4c409f9470fc2ef02f90214df49e02b441a1a241a82d622d9f608ef98fd8b11a029f1bee9d9e83b45088abe72",
}


class DrandSimulator:
    def __init__(self, *, now: Callable[[], float] = time.time, chain: TestChain | None = None) -> None:
        self.now = now
        self.test = chain or test_chain(genesis_time=int(now()) - 3600, period=3)
        self.outage = False
        self.withhold: set[int] = set()
        self.corrupt = False  # answer each round with the next round's signature (a lying relay)
        self.requests: list[str] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    def chain_info_json(self) -> str:
        """The test chain's info, as ``INSPECTBOT_DRAND_CHAIN`` takes it."""
        return json.dumps(self.test.chain.to_dict(), sort_keys=True)

    def _round(self, chain_hash: str, number: int) -> str | None:
        if number in self.withhold:
            return None
        if chain_hash == beacons.QUICKNET_HASH:
            return QUICKNET_RECORDED.get(number)
        if chain_hash == self.test.chain.hash and 1 <= number:
            if beacons.round_time(self.test.chain, number) <= self.now():
                return self.test.sign(number)
        return None

    def _latest(self, chain_hash: str) -> int | None:
        if chain_hash == beacons.QUICKNET_HASH:
            return max(QUICKNET_RECORDED)
        if chain_hash == self.test.chain.hash:
            return max(1, beacons.round_at(self.test.chain, int(self.now()) + 1) - 1)
        return None

    async def _info(self, request: web.Request) -> web.Response:
        self.requests.append(request.path)
        if self.outage:
            return web.Response(status=503)
        h = request.match_info["chain"]
        chain = {beacons.QUICKNET_HASH: beacons.QUICKNET, self.test.chain.hash: self.test.chain}.get(h)
        if chain is None:
            return web.Response(status=404)
        info = chain.to_dict()
        return web.json_response(
            {
                "public_key": info["public_key"],
                "period": info["period"],
                "genesis_time": info["genesis_time"],
                "hash": info["hash"],
                "schemeID": info["scheme"],
                "metadata": {"beaconID": info["beacon_id"]},
            }
        )

    async def _public(self, request: web.Request) -> web.Response:
        self.requests.append(request.path)
        if self.outage:
            return web.Response(status=503)
        h, which = request.match_info["chain"], request.match_info["round"]
        number = self._latest(h) if which == "latest" else (int(which) if which.isdigit() and len(which) < 20 else None)
        sig = self._round(h, number + 1 if self.corrupt else number) if number is not None else None
        if number is None or sig is None:
            return web.Response(status=404)
        return web.json_response({"round": number, "randomness": beacons.randomness(sig), "signature": sig})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/{chain}/info", self._info)
        app.router.add_get("/{chain}/public/{round}", self._public)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (0 = any free port); return the base URL."""
        self._runner = web.AppRunner(self.app())
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        self.url = f"http://{host}:{self._runner.addresses[0][1]}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> DrandSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def _serve(port: int) -> None:
    sim = DrandSimulator()
    print(await sim.start(port=port))
    print(sim.chain_info_json())
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="a drand relay on loopback (recorded quicknet rounds, a test chain)")
    parser.add_argument("--port", type=int, default=8091)
    asyncio.run(_serve(parser.parse_args().port))
