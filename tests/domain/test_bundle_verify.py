"""verify re-derives a bundle, and any tampering fails on the line that names what was changed."""

from __future__ import annotations

import json
from dataclasses import replace as dc_replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain import bundle
from domain.draw import quota, replacement, run_draw
from tests.domain.draw_cases import example_inputs


def _bundle(with_recusal: bool = True) -> dict[str, bytes]:
    inputs = example_inputs()
    outcome = run_draw(inputs)
    log = []
    if with_recusal:
        first = outcome.inspections[0]
        result = replacement(
            inputs, outcome.seed, first, 0, list(first.team), first.team[0], frozenset({(first.team[0], first.entity)})
        )
        log.append(bundle.recusal_record(first, 0, first.team[0], result))
    return bundle.build_bundle(inputs, outcome, log)


def _edit(files: dict[str, bytes], change) -> dict[str, bytes]:
    doc = json.loads(files["draw.json"])
    change(doc)
    return {**files, "draw.json": bundle.canonical_json(doc) + b"\n"}


def _first_failure(files) -> bundle.CheckLine:
    lines = bundle.verify(files)
    failed = [line for line in lines if not line.ok]
    assert failed, "tampering went unnoticed"
    return failed[0]


def test_an_untouched_bundle_verifies_line_by_line():
    lines = bundle.verify(_bundle())
    assert all(line.ok for line in lines)
    whats = [line.what for line in lines]
    assert whats == [
        "commitment",
        "pool_digest",
        "inspectors_digest",
        "seed",
        "beacon_unplanned",
        "stratum",
        "stratum",
        "stratum",
        "stratum",
        "selection",
        "ranks",
        "teams",
        "exclusions",
        "notes",
        "inspections_digest",
        "recusals",
    ]


def test_a_changed_pool_line_fails_on_pool_digest():
    files = _bundle()
    pool = files["pool.tsv"].replace(b"913702007180000077\tC", b"913702007180000077\tA")
    failure = _first_failure({**files, "pool.tsv": pool})
    assert failure.what == "pool_digest"


def test_a_removed_pool_line_fails_on_pool_digest():
    files = _bundle()
    pool = files["pool.tsv"].replace(b"913702007180000033\tA\n", b"")
    assert _first_failure({**files, "pool.tsv": pool}).what == "pool_digest"


def test_an_unsorted_pool_fails_on_its_format_naming_the_line():
    files = _bundle()
    lines = files["pool.tsv"].splitlines(keepends=True)
    lines[2], lines[3] = lines[3], lines[2]
    failure = _first_failure({**files, "pool.tsv": b"".join(lines)})
    assert (failure.what, failure.detail, failure.params["line"]) == ("pool_format", "tsv_unsorted", 4)
    assert bundle.verify({**files, "pool.tsv": b"".join(lines)})[-1].what == "skipped"


def test_a_changed_secret_fails_on_commitment():
    def change(doc):
        doc["secret"] = "ff" + doc["secret"][2:]

    assert _first_failure(_edit(_bundle(), change)).what == "commitment"


def test_a_changed_beacon_fails_on_seed():
    def change(doc):
        doc["beacon"] = doc["beacon"] + "1"

    failure = _first_failure(_edit(_bundle(), change))
    assert failure.what == "seed" and failure.detail == "mismatch"


def test_a_changed_team_member_fails_on_teams():
    def change(doc):
        doc["inspections"][3]["team"][1] = "370200007"

    failure = _first_failure(_edit(_bundle(), change))
    assert (failure.what, failure.params["no"]) == ("teams", 4)


def test_a_swapped_entity_fails_on_selection():
    def change(doc):
        doc["inspections"][1]["entity"] = "913702007180000099"

    failure = _first_failure(_edit(_bundle(), change))
    assert (failure.what, failure.params["no"]) == ("selection", 2)


def test_a_changed_rank_fails_on_ranks():
    def change(doc):
        doc["inspections"][0]["rank"] = "0000000000000001"

    assert _first_failure(_edit(_bundle(), change)).what == "ranks"


def test_a_changed_stratum_count_fails_on_that_stratum():
    def change(doc):
        doc["strata"]["A"]["drawn"] = 3

    failure = _first_failure(_edit(_bundle(), change))
    assert (failure.what, failure.params["stratum"]) == ("stratum", "A")


def test_a_changed_ratio_fails_on_that_stratum():
    def change(doc):
        doc["strata"]["A"]["ratio"] = "0.2"  # ceil(4 × 0.2) = 1, not the 2 listed

    failure = _first_failure(_edit(_bundle(), change))
    assert (failure.what, failure.params["stratum"]) == ("stratum", "A")


def test_a_hidden_exclusion_fails_on_teams_and_a_padded_one_on_exclusions():
    def hide(doc):
        doc["excluded_pairs"] = []

    assert _first_failure(_edit(_bundle(), hide)).what == "teams"

    def pad(doc):
        doc["excluded_pairs"] = sorted(doc["excluded_pairs"] + ["ab" * 32])

    failure = _first_failure(_edit(_bundle(), pad))
    assert (failure.what, failure.params["unused"]) == ("exclusions", 1)


def test_a_moved_unit_fails_on_teams():
    def change(doc):
        doc["units"]["U-SN"]["jurisdiction"] = "370203"

    assert _first_failure(_edit(_bundle(), change)).what == "teams"


def test_a_changed_inspections_digest_fails_on_it():
    def change(doc):
        doc["inspections_digest"] = "0" * 64

    assert _first_failure(_edit(_bundle(), change)).what == "inspections_digest"


def test_a_changed_replacement_fails_on_recusals():
    files = _bundle()
    log = files["recusals.tsv"].decode().split("\t")
    assert log[3] == "370200001"
    log[3] = "370200002"
    failure = _first_failure({**files, "recusals.tsv": "\t".join(log).encode()})
    assert (failure.what, failure.detail, failure.params["line"]) == ("recusals", "replacement_differs", 1)


def test_a_recusal_by_someone_not_on_the_seat_fails_on_recusals():
    files = _bundle()
    log = files["recusals.tsv"].decode().split("\t")
    log[1] = "2"
    failure = _first_failure({**files, "recusals.tsv": "\t".join(log).encode()})
    assert (failure.what, failure.detail) == ("recusals", "not_on_seat")


@pytest.mark.parametrize(
    "files, code",
    [
        (lambda f: {k: v for k, v in f.items() if k != "draw.json"}, "bundle_missing_file"),
        (lambda f: {k: v for k, v in f.items() if k != "inspectors.tsv"}, "bundle_missing_file"),
        (lambda f: {**f, "draw.json": b"{not json"}, "draw_json_unreadable"),
        (lambda f: {**f, "draw.json": b"\xff\xfe"}, "draw_json_unreadable"),
        (lambda f: {**f, "draw.json": b"[]"}, "draw_json_field"),
        (lambda f: _edit(f, lambda d: d.update(protocol="other/v9")), "draw_json_protocol"),
        (lambda f: _edit(f, lambda d: d.pop("seed")), "draw_json_field"),
        (lambda f: _edit(f, lambda d: d.update(secret="xyz")), "draw_json_field"),
        (lambda f: _edit(f, lambda d: d["inspections"][0].update(no="1")), "draw_json_field"),
        (lambda f: _edit(f, lambda d: d["team"].update(size=True)), "draw_json_field"),
    ],
)
def test_an_unreadable_bundle_raises_with_the_reason(files, code):
    with pytest.raises(bundle.BundleError) as err:
        bundle.verify(files(_bundle()))
    assert err.value.code == code


def test_bundle_without_recusals_has_no_log_file_and_still_verifies():
    files = _bundle(with_recusal=False)
    assert set(files) == {"draw.json", "pool.tsv", "inspectors.tsv"}
    assert [line.what for line in bundle.verify(files)][-1] == "inspections_digest"


def test_draw_json_is_canonical_and_carries_the_protocol_fields():
    files = _bundle()
    raw = files["draw.json"]
    doc = json.loads(raw)
    assert raw == bundle.canonical_json(doc) + b"\n"
    for name in (
        "protocol",
        "draw_ref",
        "commitment",
        "secret",
        "beacon",
        "pool_digest",
        "inspectors_digest",
        "seed",
        "strata",
        "inspections",
    ):
        assert name in doc
    assert doc["inspections"][0] == {
        "no": 1,
        "entity": "913702007180000088",
        "stratum": "A",
        "rank": "3d6696858833d2c0",
        "division": "370211003",
        "team": ["370200005", "370200002"],
        "unstaffable": None,
    }
    assert set(doc["units"]) == {"U-CITY", "U-SN", "U-HEALTH"}


def test_flight_digest_is_what_a_flight_plan_publishes_first():
    inputs = example_inputs()
    outcome = run_draw(inputs)
    sealed = bundle.inspections_digest(outcome.inspections)
    files = bundle.build_bundle(inputs, outcome, flight=True)
    doc = json.loads(files["draw.json"])
    assert doc["flight"] is True and doc["inspections_digest"] == sealed
    # a different team would have given a different digest
    changed = dc_replace(outcome.inspections[0], team=("370200001", "370200002"))
    assert bundle.inspections_digest((changed, *outcome.inspections[1:])) != sealed


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.text(max_size=5) | st.sampled_from(["0.5", "ab" * 32]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)


def _seats(team) -> list | None:
    """Each seat's (department, qualifications) as docs §7.1 reads a team spec; None if malformed."""
    try:
        size, slots, req, sq = team["size"], team["slots"], team["required_quals"], team["slot_quals"]
        return [
            ((slots[s] if s < len(slots) else None), sorted(set(req) | set(sq[s] if s < len(sq) else [])))
            for s in range(size)
        ]
    except Exception:
        return None


def _same_decimal(a, b) -> bool:
    from decimal import Decimal, InvalidOperation

    try:
        return isinstance(a, str) and Decimal(a) == Decimal(b)
    except (InvalidOperation, ValueError):
        return False


def _same_quota(pool, a, b) -> bool:
    """Two ratios that draw as many entities from ``pool`` (docs/draw-protocol.md §4: n = ceil(N × p))."""
    try:
        return isinstance(a, str) and isinstance(pool, int) and quota(pool, a) == quota(pool, b)
    except (ArithmeticError, ValueError, TypeError):
        return False


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_a_garbled_bundle_is_refused_or_fails_a_line_but_never_crashes(data):
    files = _bundle()
    doc = json.loads(files["draw.json"])
    target = data.draw(st.sampled_from(["top", "stratum", "inspection", "team", "unit", "recusal", "pool"]))
    if target == "top":
        name = data.draw(st.sampled_from(sorted(doc)))
        before = doc[name]
        doc[name] = data.draw(JSON_VALUES)
        if (
            name == "notes"
            and isinstance(doc[name], list)
            and all(n in before for n in doc[name])
            and all(n.get("code") == "stratum_without_ratio" for n in before if n not in doc[name])
        ):
            return  # a stratum without a ratio draws as one with ratio "0": dropping that note changes no draw
        if name == "flight" and isinstance(doc[name], bool):
            return  # a plan's flight flag is not derived from anything: nothing to check it against
    elif target == "stratum":
        field = data.draw(st.sampled_from(["pool", "ratio", "drawn"]))
        value = data.draw(JSON_VALUES)
        if field == "ratio" and _same_decimal(value, doc["strata"]["A"]["ratio"]):
            return  # "0.4" for "0.40" is the same ratio and the same draw: nothing was changed
        if field == "ratio" and _same_quota(doc["strata"]["A"]["pool"], value, doc["strata"]["A"]["ratio"]):
            return  # "0.4" for "0.5" of 4 entities: ceil(1.6) = ceil(2) = 2, the same draw (ratios are not committed)
        doc["strata"]["A"][field] = value
    elif target == "inspection":
        entry = doc["inspections"][data.draw(st.integers(0, 5))]
        entry[data.draw(st.sampled_from(sorted(entry)))] = data.draw(JSON_VALUES)
    elif target == "team":
        before = _seats(doc["team"])
        doc["team"][data.draw(st.sampled_from(sorted(doc["team"])))] = data.draw(JSON_VALUES)
        if before == _seats(doc["team"]):
            return  # e.g. slots [null] for []: the same seats (docs §7.1), the same draw
    elif target == "unit":
        doc["units"]["U-SN"] = data.draw(JSON_VALUES)
    elif target == "recusal":
        files["recusals.tsv"] = data.draw(st.binary(min_size=1, max_size=40))  # (b"" is a valid, empty log)
    else:
        raw = bytearray(files["pool.tsv"])
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
        files["pool.tsv"] = bytes(raw)
    garbled = {**files, "draw.json": bundle.canonical_json(doc) + b"\n"}
    original = _bundle()
    if doc == json.loads(original["draw.json"]) and {k: v for k, v in garbled.items() if k != "draw.json"} == {
        k: v for k, v in original.items() if k != "draw.json"
    }:
        return  # the draw happened to write the value that was there
    try:
        lines = bundle.verify(garbled)
    except bundle.BundleError:
        return
    assert any(not line.ok for line in lines)
