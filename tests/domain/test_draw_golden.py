"""Golden vectors: the worked example of docs/draw-protocol.md §13.

The expected values are literals. One test recomputes the exact parts (digests, seed, ranks,
quotas, selection) from the protocol text with nothing but hashlib and fractions; another runs
the independent reference implementation for teams and replacements; a third checks that our
code gives the same literals; a last one that the document itself shows them.
"""

from __future__ import annotations

import hashlib
import json
import math
from fractions import Fraction
from pathlib import Path

from domain import bundle
from domain.draw import commitment, replacement, run_draw
from tests.domain import draw_reference as ref
from tests.domain.draw_cases import (
    EXAMPLE_BEACON,
    EXAMPLE_CONFLICTS,
    EXAMPLE_INSPECTORS,
    EXAMPLE_POOL,
    EXAMPLE_RATIOS,
    EXAMPLE_REF,
    EXAMPLE_SECRET,
    EXAMPLE_TEAM,
    EXAMPLE_UNITS,
    example_inputs,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "draw-protocol.md"

COMMITMENT = "630dcd2966c4336691125448bbb25b4ff412a49c732db2c8abc1b8581bd710dd"
POOL_DIGEST = "af66a9a718a9fb58a4c9976b6f366666b5aa930a782a814344d361c0ae6f1a19"
INSPECTORS_DIGEST = "3edb6d5faf965fa878176019486ae5a800439198e6b07ed0ffed5d0edf0aea18"
SEED = "403ebf0fb7e16d269e85958f0a415ab4fe8a0a8249b388ad3290e9630dcb8d89"
RANKS = {
    "913702007180000011": "d907555b45128618",
    "913702007180000022": "e3fd5b0ec4019439",
    "913702007180000033": "e0e3304aafff85e9",
    "913702007180000044": "9f48c2d5800a9ac9",
    "913702007180000055": "56a4fdcd26b14912",
    "913702007180000066": "a11e8537bf5c4437",
    "913702007180000077": "1616aab86f660561",
    "913702007180000088": "3d6696858833d2c0",
    "913702007180000099": "feed552d63693a6b",
    "91370200718000010X": "9c0cf3926bc298f8",
}
QUOTAS = {"A": (4, "0.3", 2), "B": (3, "0.5", 2), "C": (1, "0", 0), "E": (2, "1", 2)}
INSPECTIONS = [  # no, entity, stratum, team
    (1, "913702007180000088", "A", ("370200005", "370200002")),
    (2, "913702007180000055", "B", ("370200004", "370200007")),
    (3, "91370200718000010X", "E", ("370200003", "370200007")),
    (4, "913702007180000044", "E", ("370200001", "370200005")),
    (5, "913702007180000066", "A", ("370200001", "370200002")),
    (6, "913702007180000022", "B", ("370200005", "370200002")),
]
EXCLUDED_PAIRS = ["224c44896e9fc34ca9e9ea8879d479c7659d2e2c68448ba30cd0c761726aaf6c"]
INSPECTIONS_DIGEST = "cd4bab9fcdc5ebcf05eb2a6297f790ce7ecacb2862fe89035fe38e3951a9c308"
DECK_P3702 = [["370200005", "370200002", "370200001"], ["370200005", "370200001", "370200002"]]
DECK_P370202 = [["370200004", "370200007", "370200003"], ["370200004", "370200003", "370200007"]]
RECUSALS_TSV = (
    b"1\t1\t370200005\t370200001\t0\t\n"
    b"1\t1\t370200001\t\t1\te5d32521947a1ffa262a11b075fe21b5d8130b03984804d056ca22e020484b15\n"
)


def test_exact_parts_follow_from_the_protocol_text_alone():
    pool_file = b"".join(f"{k}\t{s}\n".encode() for k, s, _ in EXAMPLE_POOL)
    inspectors_file = b"".join(f"{k}\t{u}\t{','.join(q)}\n".encode() for k, u, q in EXAMPLE_INSPECTORS)
    assert hashlib.sha256(EXAMPLE_SECRET).hexdigest() == COMMITMENT
    assert hashlib.sha256(pool_file).hexdigest() == POOL_DIGEST
    assert hashlib.sha256(inspectors_file).hexdigest() == INSPECTORS_DIGEST
    seed = hashlib.sha256(
        b"inspectbot/draw/v1\x00"
        + EXAMPLE_SECRET
        + b"\x00"
        + EXAMPLE_BEACON.encode()
        + b"\x00"
        + hashlib.sha256(pool_file).digest()
        + b"\x00"
        + hashlib.sha256(inspectors_file).digest()
        + b"\x00"
        + EXAMPLE_REF.encode()
    ).digest()
    assert seed.hex() == SEED
    ranks = {k: hashlib.sha256(seed + b"entity\x00" + k.encode()).digest()[:8].hex() for k, _, _ in EXAMPLE_POOL}
    assert ranks == RANKS
    drawn = []
    for label, (size, ratio, n) in QUOTAS.items():
        members = [k for k, s, _ in EXAMPLE_POOL if s == label]
        assert len(members) == size
        assert min(size, math.ceil(size * Fraction(ratio))) == n
        drawn += sorted(members, key=lambda k: (int(ranks[k], 16), k))[:n]
    numbered = sorted(drawn, key=lambda k: (int(ranks[k], 16), k))
    assert numbered == [entity for _, entity, _, _ in INSPECTIONS]


def test_reference_implementation_gives_the_golden_teams_and_replacements():
    out = ref.draw(
        EXAMPLE_SECRET,
        EXAMPLE_BEACON,
        EXAMPLE_REF,
        [(k, s) for k, s, _ in EXAMPLE_POOL],
        EXAMPLE_RATIOS,
        EXAMPLE_INSPECTORS,
        EXAMPLE_UNITS,
        {k: d for k, _, d in EXAMPLE_POOL},
        EXAMPLE_TEAM,
        EXAMPLE_CONFLICTS,
    )
    assert [(no, k, s, m) for no, k, s, _, m, _ in out["inspections"]] == INSPECTIONS
    assert out["excluded_pairs"] == EXCLUDED_PAIRS
    kind = ("", ("MKT",))
    decks = {j: [out["reference"].pools[(kind, j)].round(r) for r in (0, 1)] for j in ("3702", "370202")}
    assert decks == {"3702": DECK_P3702, "370202": DECK_P370202}
    # the two recusals of §13, replayed by hand
    first = INSPECTIONS[0]
    r = ref.Reference(out["seed"], EXAMPLE_INSPECTORS, EXAMPLE_UNITS, EXAMPLE_TEAM, {("370200005", first[1])})
    assert r.replace(1, first[1], "370211003", list(first[3]), 1, 0) == ("370200001", None)
    assert r.consulted_hits == set()
    both = {("370200005", first[1]), ("370200001", first[1])}
    r = ref.Reference(out["seed"], EXAMPLE_INSPECTORS, EXAMPLE_UNITS, EXAMPLE_TEAM, both)
    assert r.replace(1, first[1], "370211003", ["370200001", "370200002"], 1, 1) == (None, ref.ALL_EXCLUDED)
    assert {ref.pair_hash(out["seed"], w, e) for w, e in r.consulted_hits} == {
        RECUSALS_TSV.decode().split("\t")[-1].strip()
    }


def test_our_code_gives_the_golden_values():
    inputs = example_inputs()
    assert commitment(inputs.secret) == COMMITMENT
    outcome = run_draw(inputs)
    assert (outcome.pool_digest.hex(), outcome.inspectors_digest.hex(), outcome.seed.hex()) == (
        POOL_DIGEST,
        INSPECTORS_DIGEST,
        SEED,
    )
    assert {k: (c.pool, c.ratio, c.drawn) for k, c in outcome.strata.items()} == QUOTAS
    assert [(i.no, i.entity, i.stratum, i.team) for i in outcome.inspections] == INSPECTIONS
    assert all(f"{i.rank:016x}" == RANKS[i.entity] and i.unstaffable is None for i in outcome.inspections)
    assert list(outcome.excluded_pairs) == EXCLUDED_PAIRS
    assert [json.loads(n) for n in outcome.notes] == [{"code": "stratum_without_ratio", "pool": 1, "stratum": "C"}]
    assert bundle.inspections_digest(outcome.inspections) == INSPECTIONS_DIGEST

    first = outcome.inspections[0]
    one = replacement(
        inputs, outcome.seed, first, 0, list(first.team), "370200005", frozenset({("370200005", first.entity)})
    )
    assert (one.inspector, one.reason, one.seat, one.exclusions) == ("370200001", None, 1, ())
    known = frozenset({("370200005", first.entity), ("370200001", first.entity)})
    two = replacement(inputs, outcome.seed, first, 1, ["370200001", "370200002"], "370200001", known)
    assert (two.inspector, two.reason) == (None, "all_candidates_excluded")
    log = [bundle.recusal_record(first, 0, "370200005", one), bundle.recusal_record(first, 1, "370200001", two)]
    assert bundle.recusals_tsv(log) == RECUSALS_TSV

    files = bundle.build_bundle(inputs, outcome, log)
    doc = json.loads(files["draw.json"])
    assert doc["inspections_digest"] == INSPECTIONS_DIGEST and doc["seed"] == SEED
    assert all(line.ok for line in bundle.verify(files))


def test_the_document_shows_the_golden_values():
    text = DOC.read_text(encoding="utf-8")
    for value in [
        COMMITMENT,
        POOL_DIGEST,
        INSPECTORS_DIGEST,
        SEED,
        INSPECTIONS_DIGEST,
        *EXCLUDED_PAIRS,
        *RANKS.values(),
    ]:
        assert value in text, value
    for line in RECUSALS_TSV.decode().splitlines():
        assert line in text
    for no, entity, stratum, team in INSPECTIONS:
        assert f"| {no} | {entity} | {stratum} | {RANKS[entity]} |" in text
        assert ", ".join(team) in text
