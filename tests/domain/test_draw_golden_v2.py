"""Golden vectors of protocol v2 (docs/draw-protocol.md §15.10).

``tests/domain/golden_v2.py`` computes the example from the protocol text with hashlib, hmac and
the reference implementation only; here: the main values are pinned as literals, our code gives
every one of them, and the document shows exactly what the script prints.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from domain import bundle
from domain.draw import run_draw
from tests.domain import golden_v2
from tests.domain.draw_cases import EXAMPLE_POOL, example_inputs

DOC = Path(__file__).resolve().parents[2] / "docs" / "draw-protocol.md"

POOL_DIGEST = "8b15b1fb00d769ccbdc19ef3bb80dcb2bb9e16888dcd6ef1201bc4ab05a0e37f"
SEED = "3ce85aa251939ddd67cef6aa722ee16173995d05c3bd44da0a4e8c95fbac50f0"
INSPECTIONS_DIGEST = "e0f9989936df0568a945bbd504bc8599f3a3e71fa0264c01d13896fbad5647fc"
CUTS = {"A": "46f11954ec97b878", "B": "d4c034f979a523f5", "C": None, "E": "ffffffffffffffff"}
DRAWN = [
    "91370200718000010X",
    "913702007180000066",
    "913702007180000088",
    "913702007180000044",
    "913702007180000055",
    "913702007180000022",
]
COMMITMENT_011 = "d648ffd92804e1bd050889f9af0c2e507768b19ed5a07da71916a9ee4884f83c"


def _inputs():
    return dataclasses.replace(example_inputs(), salt_key=golden_v2.SALT_KEY)


def test_the_script_gives_the_pinned_values():
    v = golden_v2.vectors()
    assert (v["pool_digest"], v["seed"], v["inspections_digest"]) == (POOL_DIGEST, SEED, INSPECTIONS_DIGEST)
    assert {k: t["cut"] for k, t in v["strata"].items()} == CUTS
    assert [i["entity"] for i in v["inspections"]] == DRAWN
    assert v["commitments"]["913702007180000011"] == COMMITMENT_011


def test_our_code_gives_the_golden_values():
    v = golden_v2.vectors()
    inputs = _inputs()
    outcome = run_draw(inputs)
    assert (outcome.pool_digest.hex(), outcome.seed.hex()) == (POOL_DIGEST, SEED)
    assert dict(outcome.cuts) == CUTS
    # the draw service passes the digest announced with the commitment: the same draw
    announced = dataclasses.replace(inputs, announced_pool_digest=bytes.fromhex(POOL_DIGEST))
    assert run_draw(announced) == outcome
    files = bundle.build_bundle(inputs, outcome)
    assert files["pool.tsv"].decode() == v["pool_file"]
    doc = json.loads(files["draw.json"])
    assert doc["protocol"] == "inspectbot/draw/v2" and doc["inspections_digest"] == INSPECTIONS_DIGEST
    assert doc["inspections"] == v["inspections"]
    assert doc["excluded_pairs"] == v["excluded_pairs"]
    assert {k: t["cut"] for k, t in doc["strata"].items()} == CUTS
    audit = bundle.audit_disclosure(inputs).decode()
    assert audit == v["audit_head"] + "\n" + "".join(f"{k}\t{s}\n" for k, s, _ in EXAMPLE_POOL)
    assert bundle.entity_disclosure(inputs, golden_v2.SINGLE).decode() == v["entity_line"] + "\n"
    assert all(line.ok for line in bundle.verify(files, audit.encode()))
    own = bundle.verify(files, (v["entity_line"] + "\n").encode())[-1]
    assert own.ok and own.params["selected"] is False and own.params["cut"] == CUTS["A"]


def test_the_document_shows_exactly_the_script_output():
    text = DOC.read_text(encoding="utf-8")
    assert golden_v2.markdown() in text
