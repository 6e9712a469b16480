"""A draw's inputs as stored at draw time, and the ``DrawInputs`` rebuilt from them.

The pool and inspector lists (TSV) and the parameters (JSON, no secret) are written with the
draw (:func:`blobs`, compressed) so that an export or a replacement re-derives exactly what was
drawn, whatever the directory has become since (:func:`stored_inputs`).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence

from domain import draw as engine
from domain.plans import PlanSpec
from models.draws import Draw, DrawInput
from services.draws.common import fetch_rows
from services.draws.gather import Gathered, team_spec


def _tsv_pool(keys: Sequence[str], strata: Sequence[str]) -> bytes:
    return "".join(f"{k}\t{s}\n" for k, s in zip(keys, strata)).encode()


def _tsv_inspectors(lines: Sequence[engine.InspectorLine]) -> bytes:
    return "".join(f"{x.key}\t{x.unit}\t{','.join(x.quals)}\n" for x in lines).encode()


def _params_blob(spec: PlanSpec, g: Gathered, outcome: engine.DrawOutcome) -> bytes:
    """What, beside the two TSVs and the inspection rows (which keep each drawn entity's
    division), re-creates the DrawInputs later. No secret in it."""
    data = {
        "ratios": spec.ratio_map,
        "team": _team_json(team_spec(spec, g.quals_by_department)),
        "units": {k: [u.department, u.jurisdiction] for k, u in sorted(g.units.items())},
        "conflicts": sorted(g.conflicts),
        "recent": sorted(g.recent),
    }
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def _team_json(team: engine.TeamSpec) -> dict:
    return {
        "size": team.size,
        "slots": list(team.slots),
        "required_quals": list(team.required_quals),
        "slot_quals": [list(q) for q in team.slot_quals],
    }


def _pack(data: bytes) -> bytes:
    return zlib.compress(data, 1)


def blobs(spec: PlanSpec, g: Gathered, outcome: engine.DrawOutcome) -> list[tuple[str, bytes]]:
    """The ``draw_input`` rows the draw writes: ``(name, compressed bytes)``."""
    return [
        ("pool.tsv", _pack(_tsv_pool(g.pool_keys, g.pool_strata))),
        ("inspectors.tsv", _pack(_tsv_inspectors(g.inspectors))),
        ("params.json", _pack(_params_blob(spec, g, outcome))),
    ]


async def _stored(draw_id: int, *names: str) -> dict[str, bytes]:
    rows = await DrawInput.filter(draw_id=draw_id, name__in=list(names)).values_list("name", "data")
    return {name: zlib.decompress(bytes(data)) for name, data in rows}


def _pool_lines(data: bytes) -> list[engine.PoolLine]:
    columns = engine.parse_pool_tsv(data)
    with engine.gc_paused():
        return [engine.PoolLine(k, s) for k, s in zip(columns.keys, columns.strata)]


async def stored_inputs(
    draw_row: Draw, secret: bytes, *, with_pool: bool = True, salt_key: bytes | None = None
) -> engine.DrawInputs:
    """The DrawInputs exactly as drawn, rebuilt from what the draw stored (not from today's
    directory, which may have changed since); ``salt_key`` the firing's, for a v2 draw."""
    names = ("inspectors.tsv", "params.json") + (("pool.tsv",) if with_pool else ())
    parts = await _stored(draw_row.id, *names)
    params = json.loads(parts["params.json"])
    team = params["team"]
    return engine.DrawInputs(
        draw_ref=draw_row.draw_ref,
        secret=secret,
        beacon=draw_row.beacon,
        pool=_pool_lines(parts["pool.tsv"]) if with_pool else [],
        ratios=params["ratios"],
        inspectors=engine.parse_inspectors_tsv(parts["inspectors.tsv"]),
        units={k: engine.UnitInfo(department=d, jurisdiction=j) for k, (d, j) in params["units"].items()},
        divisions=dict(
            await fetch_rows("SELECT entity_key, division FROM inspection WHERE draw_id = ?", [draw_row.id])
        ),
        team=engine.TeamSpec(
            size=team["size"],
            slots=tuple(team["slots"]),
            required_quals=tuple(team["required_quals"]),
            slot_quals=tuple(tuple(q) for q in team["slot_quals"]),
        ),
        conflicts=frozenset(tuple(p) for p in params["conflicts"]),
        recent=frozenset(tuple(p) for p in params["recent"]),
        salt_key=salt_key,
    )
