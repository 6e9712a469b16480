"""Properties of protocol v2 (confidential strata, docs/draw-protocol.md §15) over many small random
draws (hypothesis): a class changed after the announcement never verifies, and every entity's own
check says exactly what the auditor's full check says about that entity.
"""

from __future__ import annotations

import json
from dataclasses import replace as dc_replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain import bundle
from domain import confidential as v2
from domain.draw import DrawInputs, PoolLine, run_draw
from tests.domain.draw_cases import draw_inputs

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def confidential_inputs(draw) -> DrawInputs:
    inputs = draw(draw_inputs())
    # a disclosure is TAB-separated lines: a draw_ref (plan code/date) never holds TAB or LF
    draw_ref = inputs.draw_ref.replace("\t", " ").replace("\n", " ")
    return dc_replace(inputs, draw_ref=draw_ref, salt_key=draw(st.binary(min_size=32, max_size=32)))


def _bundle(inputs: DrawInputs) -> dict[str, bytes]:
    return bundle.build_bundle(inputs, run_draw(inputs))


def _failed(lines: list[bundle.CheckLine]) -> set[str]:
    return {line.what for line in lines if not line.ok}


def _entity_line(files: dict[str, bytes], inputs: DrawInputs, key: str, stratum: str | None = None) -> bundle.CheckLine:
    own = v2.entity_disclosure_bytes(
        inputs.draw_ref,
        inputs.salt_key or b"",
        key,
        stratum if stratum is not None else next(p.stratum for p in inputs.pool if p.key == key),
    )
    line = bundle.verify(files, own)[-1]
    assert line.what == "entity"
    return line


@SETTINGS
@given(confidential_inputs(), st.data())
def test_honest_v2_bundles_verify_three_ways(inputs, data):
    files = _bundle(inputs)
    assert _failed(bundle.verify(files)) == set()
    assert _failed(bundle.verify(files, bundle.audit_disclosure(inputs))) == set()
    doc = json.loads(files["draw.json"])
    assert all("stratum" not in e for e in doc["inspections"])
    if inputs.pool:
        key = data.draw(st.sampled_from([p.key for p in inputs.pool]))
        assert _entity_line(files, inputs, key).ok


@SETTINGS
@given(confidential_inputs(), st.data())
def test_any_class_changed_after_announce_fails(inputs, data):
    """The bundle was announced with its pool digest; the classes disclosed later (to the auditor
    or to one entity) differ in one entity's class. Either the commitment no longer opens, or —
    had the operator re-made pool.tsv with the new class — the pool digest is not the announced one."""
    if not inputs.pool:
        return
    files = _bundle(inputs)
    announced = json.loads(files["draw.json"])["pool_digest"]
    i = data.draw(st.integers(0, len(inputs.pool) - 1))
    key, old = inputs.pool[i]
    new = data.draw(st.sampled_from([s for s in "ABCDE" if s != old]))

    strata = [p.stratum for p in inputs.pool]
    strata[i] = new
    keys = [p.key for p in inputs.pool]
    lie = v2.audit_disclosure_bytes(inputs.draw_ref, inputs.salt_key or b"", keys, strata)
    assert "classes" in _failed(bundle.verify(files, lie))
    assert not _entity_line(files, inputs, key, new).ok

    changed = dc_replace(inputs, pool=[PoolLine(k, s) for k, s in zip(keys, strata)])
    remade = _bundle(changed)
    assert json.loads(remade["draw.json"])["pool_digest"] != announced
    assert "pool_digest" in _failed(bundle.verify({**files, "pool.tsv": remade["pool.tsv"]}))


@SETTINGS
@given(confidential_inputs(), st.data())
def test_an_entity_check_agrees_with_the_auditor(inputs, data):
    """For every entity: its own check passes exactly when the list gives it the fate the auditor
    derives, whether the list is honest or one drawn entity was swapped for one not drawn."""
    files = _bundle(inputs)
    outcome = run_draw(inputs)
    drawn = {i.entity for i in outcome.inspections}
    undrawn = [p.key for p in inputs.pool if p.key not in drawn]
    listed = set(drawn)
    if drawn and undrawn and data.draw(st.booleans()):
        doc = json.loads(files["draw.json"])
        k = data.draw(st.integers(0, len(doc["inspections"]) - 1))
        out, into = doc["inspections"][k]["entity"], data.draw(st.sampled_from(undrawn))
        doc["inspections"][k]["entity"] = into
        files = {**files, "draw.json": bundle.canonical_json(doc) + b"\n"}
        listed = (drawn - {out}) | {into}
        assert "selection" in _failed(bundle.verify(files, bundle.audit_disclosure(inputs)))
    for line in inputs.pool:
        own = _entity_line(files, inputs, line.key)
        auditor_says_right = (line.key in drawn) == (line.key in listed)
        assert own.ok == auditor_says_right, (line.key, own)
        if own.ok:
            assert own.params["selected"] == (line.key in drawn)
