"""Export a draw's public bundle: ``draw.json``, ``pool.tsv``, ``inspectors.tsv`` and, after a
recusal, ``recusals.tsv``, rebuilt from the inputs stored at draw time.

A flight draw stays sealed (``sealed.json``: the digest only) until its reveal.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from core import db
from core.clock import Clock
from domain import bundle
from domain import draw as engine
from domain.sealing import draw_is_sealed
from models.draws import Draw, Firing, FiringSecret
from services.draws.common import DrawError, fetch_rows
from services.draws.stored import stored_inputs

SEALED_FILE = "sealed.json"


@dataclass(frozen=True)
class Exported:
    draw_ref: str
    directory: Path
    files: tuple[str, ...]
    sealed: bool  # a flight draw before its reveal: only the sealed record with the digest
    forced: bool = False  # a flight draw exported in full before its reveal (administrator)


def sealed_record(draw_row: Draw, commitment: str, firing_pool_digest: str | None = None) -> dict:
    """What a flight draw publishes at draw time (docs/draw-protocol.md §9.3): never the secret,
    the seed or the list, only the digest that binds the list."""
    return {
        "protocol": engine.PROTOCOL if firing_pool_digest is None else engine.PROTOCOL_V2,
        "draw_ref": draw_row.draw_ref,
        "commitment": commitment,
        "beacon": draw_row.beacon,
        "pool_digest": draw_row.pool_digest,
        "inspectors_digest": draw_row.inspectors_digest,
        "strata": _public_strata(draw_row.strata),
        "flight": True,
        "inspections_digest": draw_row.inspections_digest,
        "reveal_at": draw_row.reveal_at.isoformat() if draw_row.reveal_at else None,
        **({"off_schedule": draw_row.off_schedule} if draw_row.off_schedule is not None else {}),
        **({"beacon_source": draw_row.beacon_source} if draw_row.beacon_source is not None else {}),
        **({"audit_head": audit_head(draw_row)} if draw_row.audit_seq is not None else {}),
    }


def audit_head(draw_row: Draw) -> dict | None:
    """The audit chain's head just after the draw, as draw.json carries it (additive field)."""
    if draw_row.audit_seq is None:
        return None
    return {"seq": draw_row.audit_seq, "hash": draw_row.audit_head}


def _public_strata(strata: dict) -> dict:
    """The per-stratum counts as a sealed record shows them (never a cut: it would help guess
    the targets before the reveal)."""
    return {label: {k: v for k, v in entry.items() if k != "cut"} for label, entry in strata.items()}


async def export(draw_ref: str, directory: Path, *, clock: Clock, force: bool = False) -> Exported:
    """Write the draw's public bundle into ``directory``: ``draw.json``, ``pool.tsv``,
    ``inspectors.tsv`` and, after a recusal, ``recusals.tsv``.

    The bundle is rebuilt from the inputs stored at draw time (the directories may have changed
    since) by re-running the draw, and must reproduce the digest stored then. A flight draw
    before its reveal gets only ``sealed.json`` unless ``force`` (an administrator's decision,
    reported as such).
    """
    draw_row = await Draw.get_or_none(draw_ref=draw_ref)
    if draw_row is None:
        if await Firing.filter(draw_ref=draw_ref).exists():
            raise DrawError("not_drawn", draw_ref=draw_ref)
        raise DrawError("draw_ref_not_found", draw_ref=draw_ref)
    firing = await Firing.get(id=draw_row.firing_id)
    directory = Path(directory)
    sealed = draw_is_sealed(draw_row, clock.now())
    if sealed and not force:
        record = sealed_record(draw_row, firing.commitment, firing.pool_digest)
        files = {SEALED_FILE: bundle.canonical_json(record) + b"\n"}
    else:
        files = await _full_bundle(draw_row, firing)
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (directory / name).write_bytes(data)
    return Exported(draw_ref, directory, tuple(sorted(files)), sealed=sealed and not force, forced=sealed and force)


async def _full_bundle(draw_row: Draw, firing: Firing) -> dict[str, bytes]:
    """Re-run the draw on its stored inputs; it must reproduce the digest stored at draw time."""
    secret_row = await FiringSecret.get(firing_id=firing.id)
    salt_key = bytes(secret_row.salt_key) if secret_row.salt_key is not None else None
    with engine.gc_paused():
        inputs = await stored_inputs(draw_row, bytes(secret_row.secret), salt_key=salt_key)
        outcome = await asyncio.to_thread(engine.run_draw, inputs)
        confidential = outcome.protocol == engine.PROTOCOL_V2
        if bundle.inspections_digest(outcome.inspections, confidential) != draw_row.inspections_digest:
            raise DrawError("stored_inputs_differ", draw_ref=draw_row.draw_ref)
        records = await recusal_log(draw_row.id)
        return await asyncio.to_thread(
            bundle.build_bundle,
            inputs,
            outcome,
            records,
            flight=draw_row.flight,
            off_schedule=draw_row.off_schedule,
            beacon_source=draw_row.beacon_source,
            audit_head=audit_head(draw_row),
        )


async def recusal_log(draw_id: int) -> list[bundle.RecusalRecord]:
    """The draw's recusal log as published (recusals.tsv): per inspection, in order."""
    rows = await fetch_rows(
        "SELECT i.no, r.seat, p.cert_no, q.cert_no, r.ordinal, r.exclusions FROM recusal r "
        "JOIN inspection i ON i.id = r.inspection_id JOIN inspector p ON p.id = r.recusing_id "
        "LEFT JOIN inspector q ON q.id = r.replacement_id WHERE i.draw_id = ? ORDER BY i.no, r.ordinal",
        [draw_id],
    )
    return [
        bundle.RecusalRecord(
            no=no,
            seat=seat,
            recusing=recusing,
            replacement=repl,
            ordinal=ordinal,
            exclusions=tuple(sorted(db.decoded(exclusions, []))),
        )
        for no, seat, recusing, repl, ordinal, exclusions in rows
    ]
