"""The pure on-site core: distances, photo paths, and the findings state machine."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.onsite import (
    APPLIED,
    NOTE_LIMIT,
    Approve,
    Confirm,
    Edit,
    Findings,
    Note,
    Pick,
    Reject,
    ResultStatus,
    Skip,
    Step,
    Submit,
    Supersede,
    Verdict,
    apply,
    checkin_flagged,
    consistent,
    haversine_m,
    image_extension,
    image_kind,
    photo_path,
    valid_position,
)

# --- distances ---------------------------------------------------------------------------------

DEGREE_M = 6_371_008.8 * math.pi / 180  # one degree of a great circle on the mean sphere


@pytest.mark.parametrize(
    "a, b, metres, tolerance",
    [
        ((0.0, 0.0), (0.0, 0.0), 0.0, 1e-6),
        ((0.0, 0.0), (1.0, 0.0), DEGREE_M, 1e-6),  # along a meridian
        ((0.0, 0.0), (0.0, 1.0), DEGREE_M, 1e-6),  # along the equator
        ((0.0, 0.0), (0.0, 180.0), math.pi * 6_371_008.8, 1e-3),  # antipodes
        ((90.0, 0.0), (-90.0, 0.0), math.pi * 6_371_008.8, 1e-3),  # pole to pole
        (
            (60.0, 0.0),
            (60.0, 1.0),
            55_597.0,
            1.0,
        ),  # a degree of longitude at 60°N ≈ half (great circle, not the parallel)
        ((51.5074, -0.1278), (48.8566, 2.3522), 343_560.0, 500.0),  # London – Paris ≈ 343.6 km
        ((36.0671, 120.3826), (39.9042, 116.4074), 550_000.0, 10_000.0),  # Qingdao – Beijing ≈ 550 km
    ],
)
def test_haversine_known_distances(a, b, metres, tolerance):
    assert haversine_m(*a, *b) == pytest.approx(metres, abs=tolerance)


LAT = st.floats(-90, 90, allow_nan=False)
LON = st.floats(-180, 180, allow_nan=False)


@given(LAT, LON, LAT, LON)
def test_haversine_symmetric_and_bounded(lat1, lon1, lat2, lon2):
    d = haversine_m(lat1, lon1, lat2, lon2)
    assert d == pytest.approx(haversine_m(lat2, lon2, lat1, lon1), abs=1e-6)
    assert 0.0 <= d <= math.pi * 6_371_008.8 + 1e-6


@given(LAT, LON, LAT, LON, LAT, LON)
def test_haversine_triangle_inequality(la, lo, lb, lob, lc, loc):
    assert haversine_m(la, lo, lc, loc) <= haversine_m(la, lo, lb, lob) + haversine_m(lb, lob, lc, loc) + 1e-3


def test_checkin_flag_and_positions():
    assert checkin_flagged(501.0, 500) and not checkin_flagged(500.0, 500)
    assert not checkin_flagged(None, 500)  # no coordinates on record: nothing to judge
    assert valid_position(36.0, 120.0) and valid_position(-90, 180)
    assert not valid_position(91, 0) and not valid_position(0, 181) and not valid_position(None, 0)
    assert not valid_position(float("nan"), 0) and not valid_position(0, float("inf"))


def test_photo_paths():
    digest = "ab" + "0" * 62
    assert photo_path(digest) == f"photos/ab/{digest}.jpg"
    assert photo_path(digest, "png") == f"photos/ab/{digest}.png"
    with pytest.raises(ValueError):
        photo_path("../../etc/passwd")
    with pytest.raises(ValueError):
        photo_path("AB" + "0" * 62)
    assert image_extension(b"\xff\xd8\xff\xe0rest") == "jpg"
    assert image_extension(b"\x89PNG\r\n\x1a\n....") == "png"
    assert image_extension(b"GIF89a...") == "gif"
    assert image_extension(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "webp"


# --- findings: a walk through ------------------------------------------------------------------

ITEMS = ("SP-01", "SP-02")


def run(state, *events):
    codes = []
    for e in events:
        out = apply(state, e)
        assert consistent(out.state), (e, out)
        codes.append(out.code)
        state = out.state
    return state, codes


def test_findings_walk_through_submit_and_confirm():
    s, codes = run(
        Findings.new(ITEMS),
        Pick(0, Verdict.PASS),
        Skip(0),
        Pick(1, Verdict.FAIL),
        Note("  灭火器过期  "),
        Submit(by_lead=True),
        Confirm(by_lead=False),
    )
    assert codes == ["recorded", "skipped", "recorded", "noted", "submitted", "confirmed"]
    assert s.verdicts == (Verdict.PASS, Verdict.FAIL) and s.notes == ("", "灭火器过期")
    assert s.status == ResultStatus.CONFIRMED


def test_stale_double_and_out_of_order_presses_change_nothing():
    s = Findings.new(ITEMS)
    s, _ = run(s, Pick(0, Verdict.PASS))
    for event, code in [
        (Pick(0, Verdict.PASS), "same"),  # double tap
        (Pick(1, Verdict.NA), "stale_item"),  # a later item's button before its turn
        (Skip(1), "stale_item"),
        (Edit(0), "same"),
        (Submit(by_lead=True), "incomplete"),
        (Confirm(by_lead=False), "not_submitted"),
        (Note("   "), "empty_note"),
        (Note("x" * (NOTE_LIMIT + 1)), "note_too_long"),
        (Pick(7, Verdict.PASS), "bad_item"),
    ]:
        out = apply(s, event)
        assert (out.code, out.changed, out.state) == (code, False, s)
    s, _ = run(s, Skip(0))
    assert apply(s, Pick(0, Verdict.PASS)).code == "already"  # the first item's old message, same verdict
    assert apply(s, Pick(0, Verdict.FAIL)).code == "stale_item"  # … another verdict: use Edit
    assert apply(s, Note("早到的文字")).code == "no_note_expected"


def test_edit_from_summary_and_who_may_do_what():
    s, _ = run(Findings.new(ITEMS), Pick(0, Verdict.PASS), Skip(0), Pick(1, Verdict.PASS), Skip(1))
    assert s.step == Step.SUMMARY
    s, codes = run(s, Edit(1), Pick(1, Verdict.NA), Pick(1, Verdict.FAIL), Note("改"))
    assert codes == ["editing", "changed", "changed", "noted"] and s.step == Step.SUMMARY
    assert apply(s, Submit(by_lead=False)).code == "not_lead"
    s, codes = run(s, Submit(by_lead=True), Submit(by_lead=True), Confirm(by_lead=True), Pick(0, Verdict.FAIL))
    assert codes == ["submitted", "already_submitted", "lead_cannot_confirm", "already_submitted"]


def test_correction_lifecycle():
    original, _ = run(
        Findings.new(ITEMS), Pick(0, Verdict.PASS), Skip(0), Pick(1, Verdict.PASS), Skip(1), Submit(by_lead=True)
    )
    draft = Findings.new(ITEMS, prefill=original)
    assert draft.correction and draft.step == Step.SUMMARY and draft.verdicts == original.verdicts
    draft, codes = run(draft, Edit(0), Pick(0, Verdict.FAIL), Skip(0), Submit(by_lead=True))
    assert codes[-1] == "sent_for_approval" and draft.status == ResultStatus.PENDING
    assert apply(draft, Confirm(by_lead=False)).code == "not_submitted"
    approved, codes = run(draft, Approve(), Approve(), Confirm(by_lead=False))
    assert codes == ["approved", "not_pending", "confirmed"]
    superseded, codes = run(original, Supersede(), Supersede(), Confirm(by_lead=False))
    assert codes == ["superseded", "not_effective", "closed"]
    rejected, codes = run(draft, Reject(), Approve())
    assert codes == ["rejected", "not_pending"] and rejected.status == ResultStatus.WITHDRAWN
    with pytest.raises(ValueError):
        Findings.new(("other",), prefill=original)
    with pytest.raises(ValueError):
        Findings.new(())


# --- findings: any sequence of presses --------------------------------------------------------

INDEX = st.integers(-1, 4)
EVENTS = st.one_of(
    st.builds(Pick, INDEX, st.sampled_from(Verdict)),
    st.builds(Note, st.sampled_from(["", "  ", "门口无标识", " 过期 ", "x" * (NOTE_LIMIT + 1)])),
    st.builds(Skip, INDEX),
    st.builds(Edit, INDEX),
    st.builds(Submit, st.booleans()),
    st.builds(Confirm, st.booleans()),
    st.just(Approve()),
    st.just(Reject()),
    st.just(Supersede()),
)


@settings(max_examples=400, deadline=None)
@given(n=st.integers(1, 4), correction=st.booleans(), events=st.lists(EVENTS, max_size=40))
def test_any_sequence_of_presses_keeps_the_findings_consistent(n, correction, events):
    items = tuple(f"IT-{i}" for i in range(n))
    state = Findings.new(items)
    if correction:  # start as a correction of a complete result
        done = Findings(items, (Verdict.PASS,) * n, ("",) * n, n, Step.SUMMARY, ResultStatus.SUBMITTED)
        state = Findings.new(items, prefill=done)
    assert consistent(state)
    for event in events:
        out = apply(state, event)
        assert consistent(out.state), (state, event, out)
        assert out.changed == (out.code in APPLIED)
        if not out.changed:
            assert out.state == state  # a refused press leaves everything as it was
        if state.status != ResultStatus.DRAFT:
            # on record: verdicts and notes never change again
            assert (out.state.verdicts, out.state.notes) == (state.verdicts, state.notes)
        if out.state.status != ResultStatus.DRAFT:
            assert out.state.complete
        if out.state.status in (ResultStatus.SUBMITTED, ResultStatus.CONFIRMED) and state.status == ResultStatus.DRAFT:
            assert isinstance(event, Submit) and event.by_lead and not state.correction
        if out.state.status == ResultStatus.CONFIRMED and state.status != ResultStatus.CONFIRMED:
            assert isinstance(event, Confirm) and not event.by_lead
        state = out.state


def test_image_kind_says_when_it_is_no_picture():
    assert image_kind(b"\xff\xd8\xff\xe0rest") == "jpg" and image_kind(b"GIF87a") == "gif"
    assert image_kind(b"<html><body>502 Bad Gateway</body></html>") == "" and image_kind(b"") == ""
