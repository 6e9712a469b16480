"""Protocol v2 (confidential strata): the pool a firing fixes when it is announced, and the
disclosures that open its classes.

At announcement (:func:`fix_pool`) the plan's pool is read as of then, a fresh 32-byte salt key
is drawn from the OS CSPRNG, and the digest of the public pool file — every line
``key TAB class commitment`` — is published with the commitment. The draw then uses exactly that
pool (:func:`fixed_pool`): the classes were fixed before the beacon and so before anyone could
know the seed (docs/draw-protocol.md §15.4). The classes themselves stay in
:class:`models.draws.FiringPool`, the salt key beside the secret; only :func:`disclose` exports
them, on the audit chain.
"""

from __future__ import annotations

import asyncio
import secrets
import zlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from core.clock import Clock
from domain import bundle
from domain import confidential as v2
from domain import draw as engine
from domain.plans import PlanSpec
from models.draws import Draw, Firing, FiringPool, FiringSecret
from services import audit
from services.draws.common import DrawError
from services.draws.common import fixed_pool as fixed_pool  # re-exported: the draw reads it from here
from services.draws.gather import eligible_pool
from services.draws.stored import stored_inputs

MAX_REASON = 500


@dataclass(frozen=True)
class FixedPool:
    """What an announcement of a v2 firing stores: the private pool, the salt key, the public digest."""

    salt_key: bytes
    data: bytes  # zlib of the private pool.tsv (key TAB class)
    pool_digest: str  # hex H(public pool.tsv), published
    size: int


def _fix(keys: list[str], strata: list[str], salt_key: bytes) -> FixedPool:
    with engine.gc_paused():
        pool = [engine.PoolLine(k, s) for k, s in zip(keys, strata)]
        private = engine.pool_tsv(pool)
        public = engine.published_pool_tsv(pool, salt_key)
        return FixedPool(salt_key, zlib.compress(private, 1), engine.H(public).hex(), len(keys))


async def fix_pool(spec: PlanSpec, now: datetime) -> FixedPool:
    """The plan's pool as of ``now``, with a fresh salt key and its public digest."""
    keys, strata = await eligible_pool(spec, now)
    return await asyncio.to_thread(_fix, keys, strata, secrets.token_bytes(v2.SALT_KEY_BYTES))


async def store(firing: Firing, fixed: FixedPool, connection) -> None:
    """Keep the fixed pool with the firing (inside the announcement's transaction)."""
    await FiringPool.create(firing=firing, data=fixed.data, using_db=connection)


@dataclass(frozen=True)
class Disclosed:
    draw_ref: str
    path: Path | None  # None: not written (the caller shows ``data``)
    entity: str | None  # None: the auditor's disclosure (every class)
    lines: int
    data: bytes


async def disclose(
    draw_ref: str, out: Path | None, *, entity: str | None, actor: str, reason: str, clock: Clock
) -> Disclosed:
    """A v2 draw's disclosure, written to ``out`` when given: the auditor's (every class and the
    salt key; a typed reason required) or, with ``entity``, that entity's own line. Refused
    before the draw and for a v1 draw; always on the audit chain, with the reason."""
    reason = reason.strip()
    if not reason and entity is None:
        raise DrawError("reason_required")
    if len(reason) > MAX_REASON:
        raise DrawError("reason_too_long", limit=MAX_REASON)
    draw_row = await Draw.get_or_none(draw_ref=draw_ref)
    if draw_row is None:
        if await Firing.filter(draw_ref=draw_ref).exists():
            raise DrawError("not_drawn", draw_ref=draw_ref)
        raise DrawError("draw_ref_not_found", draw_ref=draw_ref)
    secret_row = await FiringSecret.get(firing_id=draw_row.firing_id)
    if secret_row.salt_key is None:
        raise DrawError("not_confidential", draw_ref=draw_ref)
    inputs = await stored_inputs(draw_row, bytes(secret_row.secret), salt_key=bytes(secret_row.salt_key))
    try:
        data = bundle.entity_disclosure(inputs, entity) if entity else bundle.audit_disclosure(inputs)
    except engine.DrawInputError as exc:
        raise DrawError(exc.code, draw_ref=draw_ref, **exc.params) from None
    now = clock.now()
    await audit.append(
        actor,
        "draw.disclosed",
        f"draw:{draw_ref}",
        {"scope": f"entity:{entity}" if entity else "audit", "reason": reason, "sha256": engine.H(data).hex()},
        now,
    )
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
    return Disclosed(draw_ref, out, entity, data.count(b"\n"), data)
