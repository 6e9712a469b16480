"""Properties of the draw core, over many small random draws (hypothesis).

Each draw is also re-run in the independent reference implementation (tests/domain/
draw_reference.py, written from docs/draw-protocol.md alone): agreement on every inspection,
team, note and published exclusion is what makes the document exact.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import replace as dc_replace
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain import bundle, teams
from domain.draw import (
    DrawInputs,
    InspectorLine,
    PoolLine,
    RatioError,
    TeamSpec,
    TeamSpecError,
    TsvFormatError,
    UnitInfo,
    inspectors_tsv,
    parse_inspectors_tsv,
    parse_pool_tsv,
    parse_ratio,
    pool_tsv,
    quota,
    replacement,
    run_draw,
    select,
)
from tests.domain import draw_reference as ref
from tests.domain.draw_cases import draw_inputs, example_inputs, reference_args

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
THOROUGH = settings(SETTINGS, max_examples=150)


@THOROUGH
@given(draw_inputs())
def test_agrees_with_the_reference_implementation(inputs):
    outcome = run_draw(inputs)
    expected = ref.draw(**reference_args(inputs))
    assert outcome.seed == expected["seed"]
    assert {k: (c.pool, c.ratio, c.drawn) for k, c in outcome.strata.items()} == expected["strata"]
    got = [(i.no, i.entity, i.stratum, i.rank, i.team, i.unstaffable) for i in outcome.inspections]
    assert got == expected["inspections"]
    assert [json.loads(n) for n in outcome.notes] == expected["notes"]
    assert list(outcome.excluded_pairs) == expected["excluded_pairs"]


@SETTINGS
@given(draw_inputs(), st.randoms(use_true_random=False))
def test_same_inputs_give_a_byte_identical_bundle_that_verifies(inputs, rnd):
    def shuffled(mapping):
        items = list(mapping.items())
        rnd.shuffle(items)
        return dict(items)

    again = dc_replace(
        inputs,
        pool=[PoolLine(p.key, p.stratum) for p in inputs.pool],
        ratios=shuffled(inputs.ratios),
        units=shuffled(inputs.units),
        divisions=shuffled(inputs.divisions),
        conflicts=frozenset(list(inputs.conflicts)),
    )
    first = bundle.build_bundle(inputs, run_draw(inputs), flight=True)
    second = bundle.build_bundle(again, run_draw(again), flight=True)
    assert first == second
    assert [line for line in bundle.verify(first) if not line.ok] == []


@SETTINGS
@given(draw_inputs())
def test_quotas_are_exactly_ceil_n_times_p(inputs):
    outcome = run_draw(inputs)
    sizes = Counter(p.stratum for p in inputs.pool)
    drawn = Counter(i.stratum for i in outcome.inspections)
    for label in set(sizes) | set(inputs.ratios):
        p = Fraction(inputs.ratios.get(label, "0"))
        n = min(sizes[label], math.ceil(sizes[label] * p))
        assert outcome.strata[label].drawn == drawn[label] == n
    assert [i.no for i in outcome.inspections] == list(range(1, len(outcome.inspections) + 1))
    assert [(i.rank, i.entity) for i in outcome.inspections] == sorted((i.rank, i.entity) for i in outcome.inspections)


@SETTINGS
@given(draw_inputs())
def test_no_conflicted_duplicated_unqualified_or_out_of_jurisdiction_member(inputs):
    outcome = run_draw(inputs)
    seats = teams.seats(inputs.team)
    by_key = {i.key: i for i in inputs.inspectors}
    for ins in outcome.inspections:
        if ins.unstaffable:
            assert ins.team == () and ins.unstaffable in (teams.NO_POOL, teams.ALL_EXCLUDED)
            continue
        assert len(ins.team) == inputs.team.size >= 2
        assert len(set(ins.team)) == len(ins.team)
        for seat, key in zip(seats, ins.team):
            unit = inputs.units[by_key[key].unit]
            assert (key, ins.entity) not in inputs.conflicts | inputs.recent
            assert set(seat.quals) <= set(by_key[key].quals)
            assert seat.department in ("", unit.department)
            assert ins.division.startswith(unit.jurisdiction)


@SETTINGS
@given(draw_inputs())
def test_loads_within_a_pool_differ_by_at_most_one_or_the_draw_says_so(inputs):
    outcome = run_draw(inputs)
    seats = teams.seats(inputs.team)
    flagged = {
        (n["department"], tuple(n["quals"]), n["jurisdiction"])
        for n in map(json.loads, outcome.notes)
        if n["code"] == "imbalanced_pool"
    }
    for kind in set(seats):
        members: dict[str, list[str]] = {}
        for ins in inputs.inspectors:
            unit = inputs.units[ins.unit]
            if kind.department in ("", unit.department) and set(kind.quals) <= set(ins.quals):
                members.setdefault(unit.jurisdiction, []).append(ins.key)
        load = Counter(key for i in outcome.inspections for seat, key in zip(seats, i.team) if seat == kind)
        for jurisdiction, keys in members.items():
            loads = [load[k] for k in keys]
            imbalanced = max(loads) - min(loads) > 1
            assert imbalanced == ((kind.department, kind.quals, jurisdiction) in flagged)


def test_balance_holds_exactly_without_exclusions():
    inspectors = [InspectorLine(f"I{i:02d}", "U", ()) for i in range(7)]
    inputs = DrawInputs(
        draw_ref="B/1",
        secret=bytes(32),
        beacon="",
        pool=[PoolLine(f"E{i:03d}", "A") for i in range(100)],
        ratios={"A": "1"},
        inspectors=inspectors,
        units={"U": UnitInfo("D", "37")},
        divisions={f"E{i:03d}": "370202001" for i in range(100)},
        team=TeamSpec(3),
    )
    outcome = run_draw(inputs)
    loads = Counter(k for i in outcome.inspections for k in i.team)
    assert sum(loads.values()) == 300 and max(loads.values()) - min(loads.values()) <= 1
    assert outcome.notes == ()


@SETTINGS
@given(draw_inputs(), st.data())
def test_replacement_never_returns_the_recusing_a_member_or_a_conflicted_inspector(inputs, data):
    outcome = run_draw(inputs)
    staffed = [i for i in outcome.inspections if i.team]
    if not staffed:
        return
    ins = data.draw(st.sampled_from(staffed))
    recusing = data.draw(st.sampled_from(ins.team))
    ordinal = data.draw(st.integers(0, 3))
    extra = frozenset({(recusing, ins.entity)}) | frozenset(
        (k, ins.entity) for k in data.draw(st.sets(st.sampled_from([i.key for i in inputs.inspectors])))
    )
    got = replacement(inputs, outcome.seed, ins, ordinal, list(ins.team), recusing, extra)
    known = inputs.conflicts | inputs.recent | extra
    if got.inspector is None:
        assert got.reason in (teams.NO_POOL, teams.ALL_EXCLUDED)
    else:
        assert got.inspector != recusing and got.inspector not in ins.team
        assert (got.inspector, ins.entity) not in known
    assert got.seat == ins.team.index(recusing) + 1
    # and exactly what the reference implementation derives, published exclusions included
    args = reference_args(inputs, extra)
    r = ref.Reference(outcome.seed, args["inspectors"], args["units"], args["team"], args["excluded_pairs"])
    assert r.replace(ins.no, ins.entity, ins.division, list(ins.team), got.seat, ordinal) == (got.inspector, got.reason)
    assert sorted(ref.pair_hash(outcome.seed, w, e) for w, e in r.consulted_hits) == list(got.exclusions)


def test_recusal_log_replays_in_verify_and_a_changed_replacement_fails():
    inputs = example_inputs()
    outcome = run_draw(inputs)
    log = []
    for ins in outcome.inspections[:3]:
        team = list(ins.team)
        result = replacement(inputs, outcome.seed, ins, 0, team, team[1], frozenset({(team[1], ins.entity)}))
        log.append(bundle.recusal_record(ins, 0, team[1], result))
    files = bundle.build_bundle(inputs, outcome, list(reversed(log)))  # written sorted whatever the order given
    assert all(line.ok for line in bundle.verify(files))
    lines = files["recusals.tsv"].decode().splitlines()
    assert [int(line.split("\t")[0]) for line in lines] == [1, 2, 3]


@settings(SETTINGS, max_examples=30)
@given(draw_inputs(max_pool=60))
def test_the_exact_fallback_of_selection_gives_the_same_draw(inputs):
    """The threshold shortcut never decides anything: forcing every stratum onto the slow,
    plainly exact path (a threshold of 0) changes nothing."""
    columns = parse_pool_tsv(pool_tsv(inputs.pool))
    seed = bytes(32)
    fast = select(seed, columns, inputs.ratios)
    slow = select(seed, columns, inputs.ratios, sigmas=-(10**9))
    assert fast == slow


# --------------------------------------------------------------------------- input validation


def test_ratios_are_plain_decimals_between_zero_and_one():
    for good, value in [("0", 0), ("1", 1), ("0.05", Fraction(1, 20)), ("1.000", 1), ("0.3333", Fraction(3333, 10000))]:
        assert parse_ratio(good) == value
    for bad in ["", ".5", "5.", "5e-2", "01", "-0.1", "0,5", " 0.5", "1.5", "2", "0x1", "½", "NaN", "inf"]:
        with pytest.raises(RatioError):
            parse_ratio(bad)
    assert quota(120_000, "0.03") == 3600
    assert quota(7, "0.3") == 3  # ceil(2.1)
    assert quota(3, "1.0") == 3
    assert quota(10, "0.1") == 1  # exactly 1, where binary floats give 1.0000000000000002


def test_a_bad_plan_ratio_is_refused_before_anything_is_drawn():
    inputs = dc_replace(example_inputs(), ratios={"A": "0.5", "B": "1.01"})
    with pytest.raises(RatioError) as err:
        run_draw(inputs)
    assert err.value.params == {"value": "1.01"}


@pytest.mark.parametrize(
    "lines, code, line",
    [
        ([("B", "A"), ("A", "A")], "tsv_unsorted", 2),
        ([("A", "A"), ("A", "B")], "tsv_duplicate_key", 2),
        ([("A", "A"), ("B\tX", "A")], "tsv_bad_field", 2),
        ([("A", "A"), ("B", "A"), ("C", "x\ny")], "tsv_bad_field", 3),
        ([("", "A")], "tsv_bad_field", 1),
        ([("A", "")], "tsv_bad_field", 1),
        ([("A", "A"), ("\udc80", "A")], "tsv_not_utf8", 2),
    ],
)
def test_a_bad_pool_names_its_line(lines, code, line):
    with pytest.raises(TsvFormatError) as err:
        pool_tsv([PoolLine(k, s) for k, s in lines])
    assert isinstance(err.value, ValueError)
    assert (err.value.code, err.value.params["line"]) == (code, line)


@pytest.mark.parametrize(
    "data, code, line",
    [
        (b"A\tX\nB\tX", "tsv_no_final_newline", 2),
        (b"A\tX\nB\tX\tY\n", "tsv_field_count", 2),
        (b"A\tX\nC\tX\nB\tX\n", "tsv_unsorted", 3),
        (b"A\tX\nA\tX\n", "tsv_duplicate_key", 2),
        (b"A\tX\n\tX\n", "tsv_bad_field", 2),
        (b"A\tX\nB\t\xff\n", "tsv_not_utf8", 2),
    ],
)
def test_a_bad_pool_file_names_its_line(data, code, line):
    with pytest.raises(TsvFormatError) as err:
        parse_pool_tsv(data)
    assert (err.value.code, err.value.params["line"]) == (code, line)


def test_pool_file_round_trips_with_non_ascii_keys_in_byte_order():
    pool = [PoolLine(k, "A") for k in sorted(["a", "Z", "é", "甲", "\U0001f600", "9"])]
    data = pool_tsv(pool)
    assert [k.encode() for k in (p.key for p in pool)] == sorted(k.encode() for k in (p.key for p in pool))
    columns = parse_pool_tsv(data)
    assert columns.keys == [p.key for p in pool] and columns.strata == ["A"] * 6
    assert columns.keys_b == [p.key.encode() for p in pool]


def test_a_bad_inspectors_line_is_named():
    good = [InspectorLine("I1", "U", ("A", "B")), InspectorLine("I2", "U", ())]
    assert parse_inspectors_tsv(inspectors_tsv(good)) == good
    assert inspectors_tsv(good) == b"I1\tU\tA,B\nI2\tU\t\n"
    for bad, code in [
        ([InspectorLine("I1", "U", ("B", "A"))], "tsv_quals_unsorted"),
        ([InspectorLine("I1", "U", ("A", "A"))], "tsv_quals_unsorted"),
        ([InspectorLine("I1", "U", ("A,B",))], "tsv_bad_field"),
        ([InspectorLine("I2", "U", ()), InspectorLine("I1", "U", ())], "tsv_unsorted"),
        ([InspectorLine("I1", "", ())], "tsv_bad_field"),
    ]:
        with pytest.raises(TsvFormatError) as err:
            inspectors_tsv(bad)
        assert err.value.code == code


def test_bad_team_specs_and_missing_data_are_refused_clearly():
    base = example_inputs()
    for team, code in [
        (TeamSpec(1), "team_too_small"),
        (TeamSpec(2, slots=("MSA", "MSA", "MSA")), "team_slots_exceed_size"),
        (TeamSpec(2, required_quals=("A,B",)), "team_bad_code"),
    ]:
        with pytest.raises(TeamSpecError) as err:
            run_draw(dc_replace(base, team=team))
        assert err.value.code == code
    with pytest.raises(TeamSpecError) as err:
        run_draw(dc_replace(base, units={"U-CITY": UnitInfo("MSA", "3702")}))
    assert err.value.code == "unknown_unit"
    with pytest.raises(TeamSpecError) as err:
        run_draw(dc_replace(base, divisions={}))
    assert err.value.code == "missing_division"
    with pytest.raises(ValueError) as err:
        run_draw(dc_replace(base, secret=b"short"))
    assert "short" not in str(err.value)  # a secret never appears in an error


def test_joint_plan_gives_one_seat_per_department():
    units = {"M": UnitInfo("MSA", "3702"), "H": UnitInfo("HEALTH", "3702")}
    inspectors = [
        InspectorLine(f"I{i:02d}", "M" if i % 2 else "H", ("FOOD",) if i % 3 else ("HYG",)) for i in range(24)
    ]
    inputs = DrawInputs(
        draw_ref="J/1",
        secret=bytes(range(32)),
        beacon="",
        pool=[PoolLine(f"E{i:02d}", "D") for i in range(40)],
        ratios={"D": "1"},
        inspectors=inspectors,
        units=units,
        divisions={f"E{i:02d}": "370202001" for i in range(40)},
        team=TeamSpec(2, slots=("MSA", "HEALTH"), slot_quals=(("FOOD",), ("HYG",))),
    )
    outcome = run_draw(inputs)
    by_key = {i.key: i for i in inspectors}
    for ins in outcome.inspections:
        first, second = (by_key[k] for k in ins.team)
        assert (units[first.unit].department, units[second.unit].department) == ("MSA", "HEALTH")
        assert "FOOD" in first.quals and "HYG" in second.quals


def test_pool_of_one_falls_back_to_the_broader_pool_for_the_second_seat():
    units = {"TOWN": UnitInfo("D", "370202001"), "CITY": UnitInfo("D", "3702")}
    inspectors = [
        InspectorLine("A-town", "TOWN", ()),
        InspectorLine("B-city", "CITY", ()),
        InspectorLine("C-city", "CITY", ()),
    ]
    inputs = DrawInputs(
        draw_ref="F/1",
        secret=bytes(32),
        beacon="",
        pool=[PoolLine("E1", "D"), PoolLine("E2", "D")],
        ratios={"D": "1"},
        inspectors=inspectors,
        units=units,
        divisions={"E1": "370202001", "E2": "370203001"},
        team=TeamSpec(2),
    )
    by_entity = {i.entity: i for i in run_draw(inputs).inspections}
    assert by_entity["E1"].team[0] == "A-town" and by_entity["E1"].team[1] in ("B-city", "C-city")
    assert set(by_entity["E2"].team) == {"B-city", "C-city"}


def test_unstaffable_is_explained_and_gives_its_member_back():
    units = {"U": UnitInfo("D", "3702")}
    inspectors = [InspectorLine("I1", "U", ()), InspectorLine("I2", "U", ())]
    inputs = DrawInputs(
        draw_ref="U/1",
        secret=bytes(32),
        beacon="",
        pool=[PoolLine(f"E{i}", "D") for i in range(4)] + [PoolLine("X", "D")],
        ratios={"D": "1"},
        inspectors=inspectors,
        units=units,
        divisions={**{f"E{i}": "370202001" for i in range(4)}, "X": "110101001"},
        team=TeamSpec(2),
        conflicts=frozenset({("I2", "E1")}),
    )
    outcome = run_draw(inputs)
    reasons = {i.entity: i.unstaffable for i in outcome.inspections}
    assert reasons["X"] == teams.NO_POOL  # Beijing: no unit covers it
    assert reasons["E1"] == teams.ALL_EXCLUDED  # one of two inspectors conflicted
    assert all(i.team == () for i in outcome.inspections if i.unstaffable)
    staffed = [i for i in outcome.inspections if not i.unstaffable]
    assert len(staffed) == 3 and all(len(i.team) == 2 for i in staffed)


def test_deal_order_changes_from_round_to_round():
    pool = teams.Pool(bytes(32), teams.Seat("", ()), "37", [f"I{i:02d}" for i in range(20)])
    orders = {tuple(pool.round_order(r)) for r in range(10)}
    assert len(orders) == 10 and all(sorted(o) == pool.members for o in orders)
