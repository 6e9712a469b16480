"""The published draw bundle (protocol §6, docs/draw-protocol.md §9–§11): build it, verify it.

Pure: stdlib only, bytes in and bytes out; reading and writing the files is the caller's job.
``verify`` re-derives every part of a bundle from the bundle alone and returns one
:class:`CheckLine` per check; the CLI (``inspectbot verify``) renders them through templates.
"""

from __future__ import annotations

import json
import re
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from hashlib import sha256
from typing import Any

from domain import beacon as beacons
from domain import confidential as v2
from domain import teams
from domain.draw import (
    PROTOCOL,
    DrawInputs,
    DrawOutcome,
    Inspection,
    PoolColumns,
    Replacement,
    Selection,
    derive_seed,
    gc_paused,
    inspectors_tsv,
    parse_inspectors_tsv,
    parse_pool_tsv,
    parse_ratio,
    published_pool_tsv,
    quota,
    rank,
    select,
)
from domain.protocol import DrawInputError, InspectorLine, TeamSpec, TsvFormatError, UnitInfo, note, note_fields

DRAW_FILE = "draw.json"
POOL_FILE = "pool.tsv"
INSPECTORS_FILE = "inspectors.tsv"
RECUSALS_FILE = "recusals.tsv"
REQUIRED_FILES = (DRAW_FILE, POOL_FILE, INSPECTORS_FILE)

_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX16 = re.compile(r"[0-9a-f]{16}")


def canonical_json(value: Any) -> bytes:
    """The one byte form of a JSON value we publish (docs §9.1): UTF-8, keys sorted by code
    point, no insignificant white space, non-ASCII characters as themselves."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False).encode("utf-8")


# --------------------------------------------------------------------------- building


def inspection_entry(ins: Inspection, confidential: bool = False) -> dict[str, Any]:
    """One element of draw.json "inspections" (v2, ``confidential``: without the stratum)."""
    entry = {
        "no": ins.no,
        "entity": ins.entity,
        "stratum": ins.stratum,
        "rank": f"{ins.rank:016x}",
        "division": ins.division,
        "team": list(ins.team),
        "unstaffable": ins.unstaffable,
    }
    if confidential:
        del entry["stratum"]
    return entry


def inspections_digest(inspections: Sequence[Inspection], confidential: bool = False) -> str:
    """What a flight plan publishes at draw time (docs §9.3): hex H(canonical inspections list)."""
    return _entries_digest([inspection_entry(i, confidential) for i in inspections])


def _entries_digest(entries: list[dict[str, Any]]) -> str:
    return sha256(canonical_json(entries)).hexdigest()


def team_entry(spec: TeamSpec) -> dict[str, Any]:
    return {
        "size": spec.size,
        "slots": list(spec.slots),
        "required_quals": sorted(set(spec.required_quals)),
        "slot_quals": [sorted(set(q)) for q in spec.slot_quals],
    }


def draw_document(
    inputs: DrawInputs,
    outcome: DrawOutcome,
    *,
    flight: bool = False,
    off_schedule: Mapping[str, Any] | None = None,
    beacon_source: Mapping[str, Any] | None = None,
    audit_head: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """draw.json as a value (docs §9.2); ``off_schedule`` only for an off-schedule draw (§9.2),
    ``beacon_source`` only when the beacon was planned at announce time (§3.3). ``audit_head``
    (``{"seq", "hash"}``: the audit chain's head just after the draw) is informative, an anchor
    for ``inspectbot audit verify --bundle``; the draw's checks do not read it."""
    confidential = outcome.protocol == v2.PROTOCOL_V2
    entries = [inspection_entry(i, confidential) for i in outcome.inspections]
    named_units = {ins.unit for ins in inputs.inspectors}
    extra: dict[str, Any] = {"off_schedule": dict(off_schedule)} if off_schedule is not None else {}
    if beacon_source is not None:
        extra["beacon_source"] = dict(beacon_source)
    if audit_head is not None:
        extra["audit_head"] = dict(audit_head)
    return {
        **extra,
        "protocol": outcome.protocol,
        "draw_ref": inputs.draw_ref,
        "commitment": sha256(inputs.secret).hexdigest(),
        "secret": inputs.secret.hex(),
        "beacon": inputs.beacon,
        "pool_digest": outcome.pool_digest.hex(),
        "inspectors_digest": outcome.inspectors_digest.hex(),
        "seed": outcome.seed.hex(),
        "strata": {
            label: {
                "pool": c.pool,
                "ratio": c.ratio,
                "drawn": c.drawn,
                **({"cut": outcome.cuts.get(label)} if confidential else {}),
            }
            for label, c in outcome.strata.items()
        },
        "team": team_entry(inputs.team),
        "units": {
            key: {"department": inputs.units[key].department, "jurisdiction": inputs.units[key].jurisdiction}
            for key in sorted(named_units)
        },
        "excluded_pairs": sorted(outcome.excluded_pairs),
        "notes": [note_fields(n) for n in outcome.notes],
        "flight": flight,
        "inspections": entries,
        "inspections_digest": _entries_digest(entries),
    }


@dataclass(frozen=True)
class RecusalRecord:
    """One line of recusals.tsv (docs §10): who left which seat, who the draw put there."""

    no: int
    seat: int  # 1-based
    recusing: str
    replacement: str | None
    ordinal: int  # earlier lines for the same inspection
    exclusions: tuple[str, ...] = ()  # hex pair hashes consulted and found


def recusal_record(inspection: Inspection, ordinal: int, recusing: str, result: Replacement) -> RecusalRecord:
    """The log line for a replacement made by :func:`domain.draw.replacement`."""
    return RecusalRecord(
        no=inspection.no,
        seat=result.seat,
        recusing=recusing,
        replacement=result.inspector,
        ordinal=ordinal,
        exclusions=tuple(sorted(result.exclusions)),
    )


def recusals_tsv(records: Sequence[RecusalRecord]) -> bytes:
    """recusals.tsv bytes, lines sorted by (inspection no, ordinal) (docs §10)."""
    out = []
    for r in sorted(records, key=lambda r: (r.no, r.ordinal)):
        out.append(f"{r.no}\t{r.seat}\t{r.recusing}\t{r.replacement or ''}\t{r.ordinal}\t{','.join(r.exclusions)}\n")
    return "".join(out).encode("utf-8")


def parse_recusals_tsv(data: bytes) -> list[RecusalRecord]:
    """recusals.tsv bytes → records; a malformed line raises :class:`TsvFormatError`."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise TsvFormatError("tsv_not_utf8", file=RECUSALS_FILE, line=0, field="") from None
    if not text:
        return []
    if not text.endswith("\n"):
        raise TsvFormatError("tsv_no_final_newline", file=RECUSALS_FILE, line=text.count("\n") + 1)
    out = []
    for i, line in enumerate(text[:-1].split("\n"), 1):
        fields = line.split("\t")
        if len(fields) != 6:
            raise TsvFormatError("tsv_field_count", file=RECUSALS_FILE, line=i, expected=6, found=len(fields))
        no, seat, recusing, replacement, ordinal, exclusions = fields
        hashes = tuple(exclusions.split(",")) if exclusions else ()
        if not (_is_count(no) and _is_count(seat) and _is_count(ordinal, zero=True) and recusing) or not all(
            _HEX64.fullmatch(h) for h in hashes
        ):
            raise TsvFormatError("tsv_bad_field", file=RECUSALS_FILE, line=i, field="", value=line)
        out.append(RecusalRecord(int(no), int(seat), recusing, replacement or None, int(ordinal), hashes))
    return out


def _is_count(text: str, zero: bool = False) -> bool:
    return bool(re.fullmatch(r"0|[1-9][0-9]*", text)) and (zero or text != "0")


def build_bundle(
    inputs: DrawInputs,
    outcome: DrawOutcome,
    recusals: Sequence[RecusalRecord] = (),
    *,
    flight: bool = False,
    off_schedule: Mapping[str, Any] | None = None,
    beacon_source: Mapping[str, Any] | None = None,
    audit_head: Mapping[str, Any] | None = None,
) -> dict[str, bytes]:
    """Every file of the bundle, as bytes: identical inputs give identical bytes."""
    with gc_paused():
        document = draw_document(
            inputs,
            outcome,
            flight=flight,
            off_schedule=off_schedule,
            beacon_source=beacon_source,
            audit_head=audit_head,
        )
        files = {
            DRAW_FILE: canonical_json(document) + b"\n",
            POOL_FILE: published_pool_tsv(inputs.pool, inputs.salt_key),
            INSPECTORS_FILE: inspectors_tsv(inputs.inspectors),
        }
    if recusals:
        files[RECUSALS_FILE] = recusals_tsv(recusals)
    return files


# --------------------------------------------------------------------------- verifying


@dataclass(frozen=True)
class CheckLine:
    """One line of a verification: ``what`` was checked (a text code, ``verify_<what>``), whether
    it holds, and when not, ``detail`` (a text code, ``verify_detail_<detail>``); ``params``
    carries the values both texts show."""

    ok: bool
    what: str
    detail: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)


class BundleError(ValueError):
    """The bundle cannot be read at all (a file missing, draw.json not JSON or missing a field)."""

    def __init__(self, code: str, **params: Any) -> None:
        self.code = code
        self.params = params
        super().__init__(f"{code}: " + ", ".join(f"{k}={v!r}" for k, v in params.items()))


@dataclass
class _Doc:
    """draw.json, its types checked."""

    raw: dict[str, Any]
    secret: bytes
    strata: dict[str, dict[str, Any]]
    team: TeamSpec
    units: dict[str, UnitInfo]
    entries: list[dict[str, Any]]
    excluded_pairs: list[str]
    notes: list[dict[str, Any]]


def verify(
    files: Mapping[str, bytes],
    disclosure: bytes | None = None,
    *,
    check_signature: beacons.SignatureCheck | None = None,
) -> list[CheckLine]:
    """Re-derive everything in a bundle; one CheckLine per check, in the order of docs §11 (v1)
    or §15.8 (v2). A v2 bundle is checked as far as the public can, or, with ``disclosure``
    (the auditor's or one entity's, docs §15.7), also every class it opens. ``check_signature``
    checks a drand round's BLS signature (``core.drand.verify_signature``); without it a drand
    beacon's signature line fails as unchecked."""
    for name in REQUIRED_FILES:
        if name not in files:
            raise BundleError("bundle_missing_file", file=name)
    doc = _read_doc(files[DRAW_FILE])
    opened = None
    if disclosure is not None:
        if doc.raw["protocol"] != v2.PROTOCOL_V2:
            raise BundleError("disclosure_needs_v2", found=doc.raw["protocol"])
        try:
            opened = v2.parse_disclosure(disclosure)
        except v2.DisclosureError as exc:
            raise BundleError(exc.code, **exc.params) from None
    with gc_paused():
        if doc.raw["protocol"] == v2.PROTOCOL_V2:
            return _verify_v2(doc, files, opened, check_signature)
        return _verify(doc, files, check_signature)


def audit_disclosure(inputs: DrawInputs) -> bytes:
    """The auditor's disclosure of a v2 draw (docs §15.7): the salt key and every class."""
    if inputs.salt_key is None:
        raise DrawInputError("not_confidential", draw_ref=inputs.draw_ref)
    return v2.audit_disclosure_bytes(
        inputs.draw_ref, inputs.salt_key, [p.key for p in inputs.pool], [p.stratum for p in inputs.pool]
    )


def entity_disclosure(inputs: DrawInputs, key: str) -> bytes:
    """One entity's disclosure line of a v2 draw (docs §15.7): its class and its salt only."""
    if inputs.salt_key is None:
        raise DrawInputError("not_confidential", draw_ref=inputs.draw_ref)
    for line in inputs.pool:  # a disclosure is rare: a plain scan of the pool is enough
        if line.key == key:
            return v2.entity_disclosure_bytes(inputs.draw_ref, inputs.salt_key, key, line.stratum)
    raise DrawInputError("entity_not_in_pool", entity=key)


def _check_beacon(raw: Mapping[str, Any], check_signature: beacons.SignatureCheck | None) -> list[CheckLine]:
    """Which beacon entered the seed, and (when it was planned) that it is the one it claims
    to be (docs §3.3, §11 step 6a)."""
    if "beacon_source" not in raw:
        what = "beacon_none" if raw["beacon"] == "" else "beacon_unplanned"
        return [CheckLine(True, what, "", {"beacon": raw["beacon"]})]
    findings = beacons.check_source(raw["beacon"], raw["beacon_source"], check_signature)
    return [CheckLine(f.ok, f.what, "" if f.ok else f.what, f.params) for f in findings]


def _check_inputs(
    doc: _Doc,
    files: Mapping[str, bytes],
    parse_pool: Callable[[bytes], PoolColumns],
    check_signature: beacons.SignatureCheck | None,
    protocol: str = PROTOCOL,
) -> tuple[list[CheckLine], bytes, PoolColumns | None, list[InspectorLine] | None]:
    """The checks every protocol begins with (docs §11 steps 1–6a): the commitment, the input
    files (their format and digests), the seed and the beacon. Returns the lines, the derived
    seed, and the pool and inspectors (None where a file did not parse)."""
    raw = doc.raw
    out: list[CheckLine] = []
    derived_commitment = sha256(doc.secret).hexdigest()
    out.append(
        _line(
            derived_commitment == raw["commitment"], "commitment", found=raw["commitment"], derived=derived_commitment
        )
    )
    pool_bytes, ins_bytes = files[POOL_FILE], files[INSPECTORS_FILE]
    pool_digest = sha256(pool_bytes).digest()
    ins_digest = sha256(ins_bytes).digest()
    pool = inspectors = None
    try:
        pool = parse_pool(pool_bytes)
    except TsvFormatError as exc:
        out.append(CheckLine(False, "pool_format", exc.code, dict(exc.params)))
    out.append(
        _line(
            pool_digest.hex() == raw["pool_digest"], "pool_digest", found=raw["pool_digest"], derived=pool_digest.hex()
        )
    )
    try:
        inspectors = parse_inspectors_tsv(ins_bytes)
    except TsvFormatError as exc:
        out.append(CheckLine(False, "inspectors_format", exc.code, dict(exc.params)))
    out.append(
        _line(
            ins_digest.hex() == raw["inspectors_digest"],
            "inspectors_digest",
            found=raw["inspectors_digest"],
            derived=ins_digest.hex(),
        )
    )
    seed = derive_seed(doc.secret, raw["beacon"], pool_digest, ins_digest, raw["draw_ref"], protocol)
    out.append(_line(seed.hex() == raw["seed"], "seed", found=raw["seed"], derived=seed.hex()))
    out.extend(_check_beacon(raw, check_signature))
    if pool is None or inspectors is None:
        out.append(CheckLine(False, "skipped", "malformed_input", {}))
    return out, seed, pool, inspectors


def _check_from_teams(
    doc: _Doc,
    files: Mapping[str, bytes],
    seed: bytes,
    inspectors: list[InspectorLine],
    targets: list[tuple[int, str, str]],
    selection_notes: Sequence[str],
    *,
    older_notes: bool = False,
) -> tuple[list[CheckLine], bool]:
    """The checks every protocol ends with, once the drawn list is known (docs §11 steps 9–12):
    the teams, the exclusions, the notes, the off-schedule fields, the inspections digest and
    the recusals. ``older_notes``: a bundle written before the unstaffable notes (docs §7.6), with
    none, still verifies. Returns the lines, and False when the teams could not be formed."""
    raw = doc.raw
    out: list[CheckLine] = []
    excluded = teams.HashedExclusions(seed, doc.excluded_pairs)
    try:
        formed = teams.form_teams(seed, inspectors, doc.units, doc.team, targets, excluded.check)
    except DrawInputError as exc:
        out.append(CheckLine(False, "teams", exc.code, dict(exc.params)))
        out.append(CheckLine(False, "skipped", "teams_not_derivable", {}))
        return out, False
    out.append(_check_teams(doc, targets, formed))
    unused = len(set(doc.excluded_pairs) - excluded.hits)
    out.append(_line(unused == 0, "exclusions", "unused", count=len(doc.excluded_pairs), unused=unused))
    derived_notes = [note_fields(n) for n in [*selection_notes, *formed.notes]]
    accepted = [derived_notes]
    if older_notes:
        accepted.append([n for n in derived_notes if n.get("code") != "unstaffable"])
    out.append(_line(doc.notes in accepted, "notes", count=len(doc.notes), derived=len(derived_notes)))
    out.extend(_check_off_schedule(raw))
    digest = _entries_digest(doc.entries)
    out.append(
        _line(
            digest == raw["inspections_digest"], "inspections_digest", found=raw["inspections_digest"], derived=digest
        )
    )
    if RECUSALS_FILE in files:
        out.append(_check_recusals(files[RECUSALS_FILE], seed, inspectors, doc, targets, formed))
    return out, True


def _verify(
    doc: _Doc, files: Mapping[str, bytes], check_signature: beacons.SignatureCheck | None = None
) -> list[CheckLine]:
    out, seed, pool, inspectors = _check_inputs(doc, files, parse_pool_tsv, check_signature)
    if pool is None or inspectors is None:
        return out

    selection, ratio_lines = _derive_selection(doc, seed, pool)
    out.extend(ratio_lines)
    if selection is None:
        out.append(CheckLine(False, "skipped", "bad_ratio", {}))
        return out
    out.extend(_check_strata(doc, selection))
    out.append(_check_selection(doc, selection))
    out.append(_check_ranks(doc, seed, selection))

    division_of = {e["entity"]: e["division"] for e in doc.entries}
    targets = [(no, key, division_of.get(key, "")) for no, (_, key, _) in enumerate(selection.drawn, 1)]
    rest, _ = _check_from_teams(doc, files, seed, inspectors, targets, selection.notes, older_notes=True)
    return out + rest


def _verify_v2(
    doc: _Doc,
    files: Mapping[str, bytes],
    opened: v2.AuditDisclosure | v2.EntityDisclosure | None,
    check_signature: beacons.SignatureCheck | None = None,
) -> list[CheckLine]:
    """docs §15.8: every v1 check that needs no class, on the public bundle; with the auditor's
    disclosure also the classes, the exact selection and the cuts; with an entity's, its fate."""
    raw = doc.raw
    out, seed, pool, inspectors = _check_inputs(doc, files, _parse_public_pool, check_signature, v2.PROTOCOL_V2)
    if pool is None or inspectors is None:
        return out

    classes = None
    if isinstance(opened, v2.AuditDisclosure):
        line, classes = _check_classes(raw["draw_ref"], opened, pool)
        out.append(line)
    if classes is not None:  # the auditor's path: every v1 check of the selection, and the cuts
        selection, ratio_lines = _derive_selection(doc, seed, classes)
        out.extend(ratio_lines)
        if selection is None:
            out.append(CheckLine(False, "skipped", "bad_ratio", {}))
            return out
        stratum_of = dict(zip(classes.keys, classes.strata))
        out.extend(_check_strata(doc, selection, [stratum_of.get(e["entity"], "") for e in doc.entries]))
        out.append(_check_selection(doc, selection, with_stratum=False))
        out.append(_check_cuts(doc, selection))
        selection_notes = selection.notes
    else:  # the public's path: counts, quotas and the order of the list
        strata_lines = _check_strata_public(doc, len(pool.keys))
        out.extend(strata_lines)
        if not all(line.ok for line in strata_lines):
            out.append(CheckLine(False, "skipped", "bad_ratio", {}))
            return out
        out.append(_check_list_public(doc, seed, pool))
        selection_notes = _selection_notes_public(doc)
    out.append(_check_ranks(doc, seed, None))

    targets = [(e["no"], e["entity"], e["division"]) for e in doc.entries]
    rest, formed = _check_from_teams(doc, files, seed, inspectors, targets, selection_notes)
    out.extend(rest)
    if formed and isinstance(opened, v2.EntityDisclosure):
        out.append(_check_entity(doc, seed, pool, opened))
    return out


def _parse_public_pool(data: bytes) -> PoolColumns:
    """v2's pool.tsv (docs §15.2): the v1 rules, the second field a class commitment (64 hex)."""
    pool = parse_pool_tsv(data)
    for i, commitment in enumerate(pool.strata, 1):
        if not v2.is_commitment(commitment):
            raise TsvFormatError("tsv_bad_field", file=POOL_FILE, line=i, field="class_commitment", value=commitment)
    return pool


def _check_classes(
    draw_ref: str, opened: v2.AuditDisclosure, pool: PoolColumns
) -> tuple[CheckLine, PoolColumns | None]:
    """The auditor's disclosure opens every commitment of pool.tsv: same draw, same keys in the
    same order, and each class with its salt gives the published commitment."""
    n = len(pool.keys)
    if opened.draw_ref != draw_ref:
        return CheckLine(False, "classes", "disclosure_other_draw", {"found": opened.draw_ref, "count": n}), None
    if opened.keys != pool.keys:
        return CheckLine(False, "classes", "disclosure_keys_differ", {"count": n}), None
    salt_key = opened.salt_key
    for i, (key_b, stratum, published) in enumerate(zip(pool.keys_b, opened.strata, pool.strata), 1):
        if v2.class_commitment(v2.entity_salt(salt_key, key_b), key_b, stratum.encode()) != published:
            params = {"line": i, "key": pool.keys[i - 1], "count": n}
            return CheckLine(False, "classes", "class_commitment_differs", params), None
    line = CheckLine(True, "classes", "", {"count": len(pool.keys)})
    return line, PoolColumns(keys=pool.keys, keys_b=pool.keys_b, strata=opened.strata)


def _check_cuts(doc: _Doc, selection: Selection) -> CheckLine:
    for label in sorted(doc.strata):
        found, derived = doc.strata[label].get("cut"), selection.cuts.get(label)
        if found != derived:
            return CheckLine(
                False,
                "cuts",
                "cut_differs",
                {"stratum": label, "found": found or "-", "derived": derived or "-", "count": len(doc.strata)},
            )
    return CheckLine(True, "cuts", "", {"count": len(doc.strata)})


def _check_strata_public(doc: _Doc, pool_lines: int) -> list[CheckLine]:
    """What the public checks of the strata without a class: each ratio and quota, the cut's shape
    (none when nothing is drawn, all when everything is), the counts adding up to pool.tsv and
    to the list."""
    out = []
    total_pool = total_drawn = 0
    for label in sorted(doc.strata):
        entry = doc.strata[label]
        try:
            n = quota(entry["pool"], entry["ratio"])
        except DrawInputError:
            out.append(CheckLine(False, "stratum", "bad_ratio", {"stratum": label, "ratio": str(entry["ratio"])}))
            continue
        cut_value = entry["cut"]
        cut_ok = (cut_value is None) == (n == 0) and (cut_value == v2.ALL_RANKS) == (0 < n == entry["pool"])
        ok = entry["drawn"] == n and entry["pool"] >= 0 and cut_ok
        total_pool += entry["pool"]
        total_drawn += entry["drawn"]
        out.append(
            _line(
                ok,
                "stratum",
                "stratum_quota",
                stratum=label,
                ratio=entry["ratio"],
                pool=entry["pool"],
                drawn=n,
                found_drawn=entry["drawn"],
            )
        )
    listed = len(doc.entries)
    ok = total_pool == pool_lines and total_drawn == listed
    out.append(
        _line(ok, "strata_total", "strata_total", pool=total_pool, lines=pool_lines, drawn=total_drawn, listed=listed)
    )
    return out


def _check_list_public(doc: _Doc, seed: bytes, pool: PoolColumns) -> CheckLine:
    """Without the classes: every listed entity is in pool.tsv, once, numbered 1, 2, … in
    ascending (rank, key), and no listed rank lies above every cut."""
    known = set(pool.keys)
    cuts = [int(e["cut"], 16) for e in doc.strata.values() if e["cut"] is not None]
    top = max(cuts, default=-1)
    previous: tuple[int, str] | None = None
    seen: set[str] = set()
    for i, entry in enumerate(doc.entries, 1):
        key = entry["entity"]
        r = rank(seed, key)
        problem = None
        if entry["no"] != i:
            problem = "numbering"
        elif key not in known:
            problem = "not_in_pool"
        elif key in seen:
            problem = "listed_twice"
        elif previous is not None and not previous < (r, key):
            problem = "out_of_order"
        elif r > top:
            problem = "above_every_cut"
        if problem:
            return CheckLine(False, "list", problem, {"no": entry["no"], "entity": key})
        seen.add(key)
        previous = (r, key)
    return CheckLine(True, "list", "", {"count": len(doc.entries)})


def _selection_notes_public(doc: _Doc) -> list[str]:
    """The selection notes as the published strata imply them (a stratum noted without a ratio
    has ratio "0"; its pool count is the published one)."""
    unratioed = {n.get("stratum") for n in doc.notes if n.get("code") == "stratum_without_ratio"}
    return [
        note("stratum_without_ratio", stratum=label, pool=doc.strata[label]["pool"])
        for label in sorted(doc.strata)
        if label in unratioed and doc.strata[label]["ratio"] == "0"
    ]


def _check_entity(doc: _Doc, seed: bytes, pool: PoolColumns, opened: v2.EntityDisclosure) -> CheckLine:
    """One entity's own check (docs §15.6): its line opens its commitment in pool.tsv, and it is
    listed exactly when its rank is at most its stratum's cut."""
    params: dict[str, Any] = {"entity": opened.key, "stratum": opened.stratum}
    if opened.draw_ref != doc.raw["draw_ref"]:
        return CheckLine(False, "entity", "disclosure_other_draw", {**params, "found": opened.draw_ref})
    key_b = opened.key.encode("utf-8")
    i = bisect_left(pool.keys_b, key_b)
    if i == len(pool.keys_b) or pool.keys_b[i] != key_b:
        return CheckLine(False, "entity", "not_in_pool", params)
    if v2.class_commitment(opened.salt, key_b, opened.stratum.encode("utf-8")) != pool.strata[i]:
        return CheckLine(False, "entity", "class_commitment_differs", {**params, "line": i + 1})
    entry = doc.strata.get(opened.stratum)
    if entry is None:
        return CheckLine(False, "entity", "stratum_missing", params)
    r = rank(seed, opened.key)
    listed = any(e["entity"] == opened.key for e in doc.entries)
    should = v2.drawn_by_cut(r, entry["cut"])
    params.update(rank=f"{r:016x}", cut=entry["cut"] or "-", selected=listed)
    return _line(listed == should, "entity", "fate_differs", **params)


OFF_SCHEDULE_FIELDS = frozenset({"reason", "confirmed_by", "requested_by", "redraw_of"})


def _check_off_schedule(raw: Mapping[str, Any]) -> list[CheckLine]:
    """An off-schedule draw (docs §9.2) says why, who confirmed it, and which draw it redoes."""
    if "off_schedule" not in raw:
        return []
    off = raw["off_schedule"]
    ok = (
        isinstance(off, dict)
        and set(off) == OFF_SCHEDULE_FIELDS
        and all(isinstance(off[k], str) and off[k].strip() for k in ("reason", "confirmed_by", "requested_by"))
        and off["confirmed_by"] != off["requested_by"]
        and (off["redraw_of"] is None or (isinstance(off["redraw_of"], str) and off["redraw_of"] != raw["draw_ref"]))
    )
    shown = off if isinstance(off, dict) else {}
    return [
        _line(
            ok,
            "off_schedule",
            "off_schedule_malformed",
            reason=str(shown.get("reason", "")),
            confirmed_by=str(shown.get("confirmed_by", "")),
            redraw_of=str(shown.get("redraw_of") or ""),
        )
    ]


def _line(ok: bool, what: str, detail: str = "mismatch", **params: Any) -> CheckLine:
    return CheckLine(ok, what, "" if ok else detail, params)


def _derive_selection(doc: _Doc, seed: bytes, pool: PoolColumns) -> tuple[Selection | None, list[CheckLine]]:
    """Re-run protocol §4 with the published ratios."""
    lines: list[CheckLine] = []
    unratioed = {n.get("stratum") for n in doc.notes if n.get("code") == "stratum_without_ratio"}
    ratios = {}
    for label, entry in doc.strata.items():
        try:
            parse_ratio(entry["ratio"])
        except DrawInputError:
            lines.append(CheckLine(False, "stratum", "bad_ratio", {"stratum": label, "ratio": str(entry["ratio"])}))
            continue
        if label not in unratioed:
            ratios[label] = entry["ratio"]
    if lines:
        return None, lines
    return select(seed, pool, ratios), lines


def _check_strata(doc: _Doc, selection: Selection, listed_strata: Sequence[str] | None = None) -> list[CheckLine]:
    """Per stratum: pool count, quota, drawn and listed agree; ``listed_strata`` the class of each
    listed inspection when draw.json does not say it (v2, from the auditor's disclosure)."""
    published = Counter(listed_strata if listed_strata is not None else (e["stratum"] for e in doc.entries))
    out = []
    for label in sorted(set(doc.strata) | set(selection.strata)):
        mine = selection.strata.get(label)
        theirs = doc.strata.get(label)
        if theirs is None or mine is None:
            out.append(CheckLine(False, "stratum", "stratum_missing", {"stratum": label}))
            continue
        ok = theirs["pool"] == mine.pool and theirs["drawn"] == mine.drawn and published[label] == mine.drawn
        out.append(
            _line(
                ok,
                "stratum",
                "stratum_counts",
                stratum=label,
                ratio=mine.ratio,
                pool=mine.pool,
                drawn=mine.drawn,
                found_pool=theirs["pool"],
                found_drawn=theirs["drawn"],
                listed=published[label],
            )
        )
    return out


def _check_selection(doc: _Doc, selection: Selection, with_stratum: bool = True) -> CheckLine:
    derived = selection.drawn
    for i, (entry, (_, key, label)) in enumerate(zip(doc.entries, derived)):
        if entry["no"] != i + 1 or entry["entity"] != key or (with_stratum and entry["stratum"] != label):
            return CheckLine(
                False, "selection", "entity_differs", {"no": i + 1, "derived": key, "found": entry["entity"]}
            )
    if len(doc.entries) != len(derived):
        return CheckLine(False, "selection", "count_differs", {"derived": len(derived), "found": len(doc.entries)})
    return CheckLine(True, "selection", "", {"count": len(derived)})


def _check_ranks(doc: _Doc, seed: bytes, selection: Selection | None) -> CheckLine:
    """Each listed rank is r(entity); the selection already ranked the drawn entities, so only a
    listed entity that the seed did not draw is hashed again."""
    derived = {key: r for r, key, _ in selection.drawn} if selection is not None else {}
    for entry in doc.entries:
        r = derived.get(entry["entity"])
        if r is None:
            r = rank(seed, entry["entity"])
        if entry["rank"] != f"{r:016x}":
            return CheckLine(
                False, "ranks", "rank_differs", {"no": entry["no"], "derived": f"{r:016x}", "found": entry["rank"]}
            )
    return CheckLine(True, "ranks", "", {"count": len(doc.entries)})


def _check_teams(doc: _Doc, targets: Sequence[tuple[int, str, str]], formed: teams.Formed) -> CheckLine:
    by_no = {e["no"]: e for e in doc.entries}
    staffed = 0
    for (no, _, _), (team, reason) in zip(targets, formed.teams):
        entry = by_no.get(no)
        if entry is None or entry["team"] != list(team) or entry["unstaffable"] != reason:
            return CheckLine(
                False,
                "teams",
                "team_differs",
                {
                    "no": no,
                    "derived": ", ".join(team) or (reason or ""),
                    "found": ", ".join(entry["team"]) or (entry["unstaffable"] or "") if entry else "",
                },
            )
        staffed += reason is None
    return CheckLine(True, "teams", "", {"count": len(targets), "staffed": staffed})


def _check_recusals(
    data: bytes,
    seed: bytes,
    inspectors: Sequence[InspectorLine],
    doc: _Doc,
    targets: Sequence[tuple[int, str, str]],
    formed: teams.Formed,
) -> CheckLine:
    """Replay recusals.tsv in order (docs §10) against the derived teams."""
    try:
        records = parse_recusals_tsv(data)
    except TsvFormatError as exc:
        return CheckLine(False, "recusals", exc.code, dict(exc.params))
    pools = teams.Pools(seed, inspectors, doc.units, doc.team)
    current = {no: list(team) for (no, _, _), (team, _) in zip(targets, formed.teams)}
    where = {no: (entity, division) for no, entity, division in targets}
    ordinals: Counter[int] = Counter()
    previous = 0
    for line, rec in enumerate(records, 1):
        team = current.get(rec.no)
        problem = None
        if rec.no < previous:
            problem = "unsorted"
        elif team is None:
            problem = "unknown_inspection"
        elif rec.ordinal != ordinals[rec.no]:
            problem = "wrong_ordinal"
        elif not 1 <= rec.seat <= len(team) or team[rec.seat - 1] != rec.recusing:
            problem = "not_on_seat"
        if problem:
            return CheckLine(False, "recusals", problem, {"line": line, "no": rec.no})
        assert team is not None  # else problem is "unknown_inspection"
        entity, division = where[rec.no]
        excluded = teams.HashedExclusions(seed, rec.exclusions)
        who, _reason = pools.replace(rec.no, entity, division, rec.ordinal, team, rec.recusing, excluded.check)
        if who != rec.replacement:
            return CheckLine(
                False,
                "recusals",
                "replacement_differs",
                {"line": line, "no": rec.no, "derived": who or "", "found": rec.replacement or ""},
            )
        if excluded.hits != set(rec.exclusions):
            return CheckLine(False, "recusals", "unused_exclusions", {"line": line, "no": rec.no})
        team[rec.seat - 1] = who or ""
        ordinals[rec.no] += 1
        previous = rec.no
    return CheckLine(True, "recusals", "", {"count": len(records)})


# --------------------------------------------------------------------------- reading draw.json


def _read_doc(data: bytes) -> _Doc:
    """Parse draw.json and check every field's type; BundleError names the first bad field."""
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise BundleError("draw_json_unreadable", file=DRAW_FILE) from None
    if not isinstance(raw, dict):
        raise BundleError("draw_json_field", field="(top)")
    if raw.get("protocol") not in (PROTOCOL, v2.PROTOCOL_V2):
        raise BundleError("draw_json_protocol", found=str(raw.get("protocol")))
    confidential = raw["protocol"] == v2.PROTOCOL_V2
    for name in ("draw_ref", "beacon"):
        _want(raw, name, str)
    _want(raw, "flight", bool)
    for name in ("commitment", "secret", "pool_digest", "inspectors_digest", "seed", "inspections_digest"):
        if not _HEX64.fullmatch(_want(raw, name, str)):
            raise BundleError("draw_json_field", field=name)
    strata = _want(raw, "strata", dict)
    for label, entry in strata.items():
        if not isinstance(entry, dict) or not all(
            isinstance(entry.get(k), t) and not isinstance(entry.get(k), bool)
            for k, t in (("pool", int), ("ratio", str), ("drawn", int))
        ):
            raise BundleError("draw_json_field", field=f"strata.{label}")
        if confidential and not (
            "cut" in entry
            and (entry["cut"] is None or (isinstance(entry["cut"], str) and _HEX16.fullmatch(entry["cut"])))
        ):
            raise BundleError("draw_json_field", field=f"strata.{label}.cut")
    team = _read_team(_want(raw, "team", dict))
    units = {}
    for key, entry in _want(raw, "units", dict).items():
        if not isinstance(entry, dict) or not all(
            isinstance(entry.get(k), str) for k in ("department", "jurisdiction")
        ):
            raise BundleError("draw_json_field", field=f"units.{key}")
        units[key] = UnitInfo(entry["department"], entry["jurisdiction"])
    entries = _want(raw, "inspections", list)
    for i, entry in enumerate(entries):
        if not _entry_ok(entry, confidential):
            raise BundleError("draw_json_field", field=f"inspections[{i}]")
    excluded = _want(raw, "excluded_pairs", list)
    if not all(isinstance(h, str) and _HEX64.fullmatch(h) for h in excluded):
        raise BundleError("draw_json_field", field="excluded_pairs")
    notes = _want(raw, "notes", list)
    if not all(isinstance(n, dict) for n in notes):
        raise BundleError("draw_json_field", field="notes")
    return _Doc(raw, bytes.fromhex(raw["secret"]), strata, team, units, entries, excluded, notes)


def _want(raw: dict[str, Any], name: str, kind: type) -> Any:
    value = raw.get(name)
    if not isinstance(value, kind):
        raise BundleError("draw_json_field", field=name)
    return value


def _read_team(entry: dict[str, Any]) -> TeamSpec:
    # JSON values, checked just below
    size: Any = entry.get("size")
    slots: Any = entry.get("slots")
    required: Any = entry.get("required_quals")
    slot_quals: Any = entry.get("slot_quals")
    ok = (
        isinstance(size, int)
        and not isinstance(size, bool)
        and isinstance(slots, list)
        and all(s is None or isinstance(s, str) for s in slots)
        and isinstance(required, list)
        and all(isinstance(q, str) for q in required)
        and isinstance(slot_quals, list)
        and all(isinstance(qs, list) and all(isinstance(q, str) for q in qs) for qs in slot_quals)
        # docs §7.1: k ≥ 2, len(slots) ≤ k, len(slot_quals) ≤ k
        and size >= 2
        and len(slots) <= size
        and len(slot_quals) <= size
    )
    if not ok:
        raise BundleError("draw_json_field", field="team")
    return TeamSpec(
        size=size, slots=tuple(slots), required_quals=tuple(required), slot_quals=tuple(tuple(q) for q in slot_quals)
    )


def _entry_ok(entry: object, confidential: bool = False) -> bool:
    """One inspection of draw.json has every field, of the right type (a hundred thousand of them:
    plain type tests, no generator per entry); v2 (``confidential``) has no stratum."""
    if type(entry) is not dict:
        return False
    if confidential and "stratum" in entry:
        return False
    team = entry.get("team")
    unstaffable = entry.get("unstaffable")
    rank_hex = entry.get("rank")
    if not (
        type(entry.get("no")) is int
        and type(entry.get("entity")) is str
        and (confidential or type(entry.get("stratum")) is str)
        and type(entry.get("division")) is str
        and type(rank_hex) is str
        and type(team) is list
        and (unstaffable is None or type(unstaffable) is str)
    ):
        return False
    for member in team:
        if type(member) is not str:
            return False
    return _HEX16.fullmatch(rank_hex) is not None
