"""drand: the BLS check of a round's signature, a relay client, and a local test chain's signer.

The scheme is drand's ``bls-unchained-g1-rfc9380`` (quicknet): the public key is a point of G2
(96 bytes compressed), a round's signature a point of G1 (48 bytes) on the message
``SHA-256(round as 8 bytes big-endian)`` hashed to G1 per RFC 9380 with the DST below; it holds
when ``e(signature, g2) = e(H(message), public key)``. Pairings are py-arkworks-bls12381's
(Rust arkworks bindings; see docs/draw-protocol.md §3.3 for the choice and its cost).

The round arithmetic and the beacon string are pure (``domain.beacon``); this module holds only
what needs the pairing library or the network.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from hashlib import sha256

import aiohttp
from py_arkworks_bls12381 import GT, G1Point, G2Point, Scalar

from domain.beacon import SCHEME, Chain

log = logging.getLogger(__name__)

DST = b"BLS_SIG_BLS12381G1_XMD:SHA-256_SSWU_RO_NUL_"
#: The order of BLS12-381's prime-order subgroups.
ORDER = 0x73EDA753299D7D483339D80809A1D80553BDA402FFFE5BFEFFFFFFFF00000001
FETCH_TIMEOUT = 10.0
_HEX = re.compile(r"[0-9a-f]+")


def message(number: int) -> bytes:
    """What a round's signature signs: SHA-256 of the round number, 8 bytes big-endian."""
    return sha256(number.to_bytes(8, "big")).digest()


def verify_signature(public_key_hex: str, number: int, signature_hex: str) -> bool:
    """The round's BLS signature holds under the chain's public key (points are checked to be
    on the curve and in their subgroup); any malformed input is simply not valid."""
    try:
        if not 0 <= number < 2**64 or not _HEX.fullmatch(signature_hex) or not _HEX.fullmatch(public_key_hex):
            return False
        sig = G1Point.from_compressed_bytes(bytes.fromhex(signature_hex))
        pk = G2Point.from_compressed_bytes(bytes.fromhex(public_key_hex))
        hashed = G1Point.hash_to_curve(message(number), DST)
        return bool(GT.pairing_check([sig, -hashed], [G2Point(), pk]))
    except ValueError:  # not a point, not on the curve, not in the subgroup
        return False


# --------------------------------------------------------------------------- a local test chain


@dataclass(frozen=True)
class TestChain:
    """A chain of our own (same scheme, our own key): for the demo and for deployments without
    the public network. A verifier flags it: its rounds prove nothing about who chose them."""

    chain: Chain
    secret_key: int

    def sign(self, number: int) -> str:
        """The round's signature, hex."""
        point = G1Point.hash_to_curve(message(number), DST) * Scalar(self.secret_key)
        return point.to_compressed_bytes().hex()


def test_chain(genesis_time: int, period: int = 3, *, secret_key: int | None = None) -> TestChain:
    """A fresh test chain (a random key unless one is given)."""
    sk = secret_key if secret_key is not None else secrets.randbelow(ORDER - 1) + 1
    pk = (G2Point() * Scalar(sk)).to_compressed_bytes().hex()
    info = f"{pk}:{genesis_time}:{period}:{SCHEME}:inspectbot-test".encode()
    return TestChain(Chain(sha256(info).hexdigest(), pk, genesis_time, period, "inspectbot-test"), sk)


# --------------------------------------------------------------------------- relays

#: ``(chain, round) -> signature hex or None``: how a draw gets its round (tests pass their own).
Fetch = Callable[[Chain, int], Awaitable[str | None]]


def relay_fetcher(relays: Sequence[str], *, timeout: float = FETCH_TIMEOUT) -> Fetch:
    """Fetch a round from the first relay that has it: ``GET <relay>/<chain hash>/public/<round>``.
    A relay that fails, times out, answers for another round or with a signature that does not
    verify is skipped (logged); None when no relay had it."""

    async def fetch(chain: Chain, number: int) -> str | None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
            for relay in relays:
                url = f"{relay.rstrip('/')}/{chain.hash}/public/{number}"
                try:
                    async with session.get(url) as response:
                        if response.status != 200:
                            log.info("drand relay %s: HTTP %s for round %s", relay, response.status, number)
                            continue
                        body = json.loads(await response.text())
                except (TimeoutError, aiohttp.ClientError, ValueError, UnicodeDecodeError) as exc:
                    log.info("drand relay %s: %s for round %s", relay, exc.__class__.__name__, number)
                    continue
                sig = body.get("signature") if isinstance(body, dict) else None
                if not isinstance(body, dict) or body.get("round") != number or not isinstance(sig, str):
                    log.warning("drand relay %s: no round %s in its answer", relay, number)
                    continue
                if not verify_signature(chain.public_key, number, sig.lower()):
                    log.warning("drand relay %s: round %s's signature does not verify", relay, number)
                    continue
                return sig.lower()
        return None

    return fetch
