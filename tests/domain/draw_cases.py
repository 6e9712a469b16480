"""Draw inputs for the tests: the worked example of docs/draw-protocol.md §13, and a hypothesis
strategy for small random draws that reach every rule (fallback chains, exclusions, joint seats,
unstaffable inspections, strata without ratio, non-ASCII keys)."""

from __future__ import annotations

from hypothesis import strategies as st

from domain.draw import DrawInputs, InspectorLine, PoolLine, TeamSpec, UnitInfo

# --------------------------------------------------------------------------- the worked example

EXAMPLE_SECRET = bytes(range(32))
EXAMPLE_BEACON = "drand/quicknet/12345678"
EXAMPLE_REF = "P0042/2026-12-01"
EXAMPLE_POOL = [
    ("913702007180000011", "A", "370202001"),
    ("913702007180000022", "B", "370203002"),
    ("913702007180000033", "A", "370202001"),
    ("913702007180000044", "E", "370211003"),
    ("913702007180000055", "B", "370202004"),
    ("913702007180000066", "A", "370203002"),
    ("913702007180000077", "C", "370202001"),
    ("913702007180000088", "A", "370211003"),
    ("913702007180000099", "B", "370202004"),
    ("91370200718000010X", "E", "370202001"),
]
EXAMPLE_RATIOS = {"A": "0.3", "B": "0.5", "E": "1"}
EXAMPLE_UNITS = {"U-CITY": ("MSA", "3702"), "U-SN": ("MSA", "370202"), "U-HEALTH": ("HEALTH", "3702")}
EXAMPLE_INSPECTORS = [
    ("370200001", "U-CITY", ("FOOD", "MKT")),
    ("370200002", "U-CITY", ("MKT",)),
    ("370200003", "U-SN", ("FOOD", "MKT")),
    ("370200004", "U-SN", ("MKT",)),
    ("370200005", "U-CITY", ("MKT",)),
    ("370200006", "U-HEALTH", ("HYG",)),
    ("370200007", "U-SN", ("MKT",)),
]
EXAMPLE_TEAM = {"size": 2, "slots": [], "required_quals": ["MKT"], "slot_quals": []}
EXAMPLE_CONFLICTS = {("370200004", "91370200718000010X"), ("370200003", "913702007180000099")}


def example_inputs() -> DrawInputs:
    return DrawInputs(
        draw_ref=EXAMPLE_REF,
        secret=EXAMPLE_SECRET,
        beacon=EXAMPLE_BEACON,
        pool=[PoolLine(k, s) for k, s, _ in EXAMPLE_POOL],
        ratios=dict(EXAMPLE_RATIOS),
        inspectors=[InspectorLine(k, u, q) for k, u, q in EXAMPLE_INSPECTORS],
        units={k: UnitInfo(d, j) for k, (d, j) in EXAMPLE_UNITS.items()},
        divisions={k: d for k, _, d in EXAMPLE_POOL},
        team=TeamSpec(size=2, required_quals=("MKT",)),
        conflicts=frozenset(EXAMPLE_CONFLICTS),
    )


# --------------------------------------------------------------------------- random small draws

UNITS = {
    "U1": ("D1", ""),
    "U2": ("D1", "37"),
    "U3": ("D2", "3702"),
    "U4": ("D1", "370202"),
    "U5": ("D2", "370202"),
    "U6": ("D1", "370203001"),
}
DIVISIONS = ["370202001", "370202002", "370203001", "370211001", "3702", "440300001", ""]
RATIOS = ["0", "0.05", "0.1", "0.25", "0.333", "0.5", "0.9", "1", "1.0"]
KEY_ALPHABET = "0123456789AXé甲"  # non-ASCII: byte order must be honoured


@st.composite
def draw_inputs(draw, max_pool: int = 30, max_inspectors: int = 12) -> DrawInputs:
    keys = sorted(draw(st.lists(st.text(KEY_ALPHABET, min_size=1, max_size=4), max_size=max_pool, unique=True)))
    strata = draw(st.lists(st.sampled_from("ABC"), min_size=len(keys), max_size=len(keys)))
    ratios = draw(st.dictionaries(st.sampled_from("ABCD"), st.sampled_from(RATIOS), min_size=2))
    n_inspectors = draw(st.integers(0, max_inspectors))
    inspectors = [
        InspectorLine(
            f"I{i:02d}",
            draw(st.sampled_from(sorted(UNITS))),
            tuple(sorted(draw(st.sets(st.sampled_from(["Q1", "Q2"]))))),
        )
        for i in range(n_inspectors)
    ]
    size = draw(st.integers(2, 3))
    team = TeamSpec(
        size=size,
        slots=tuple(draw(st.lists(st.sampled_from([None, "D1", "D2"]), max_size=size))),
        required_quals=tuple(sorted(draw(st.sets(st.sampled_from(["Q1"]))))),
        slot_quals=tuple(tuple(sorted(q)) for q in draw(st.lists(st.sets(st.sampled_from(["Q2"])), max_size=size))),
    )
    conflicts = recent = frozenset()
    if inspectors and keys:
        pairs = st.tuples(st.sampled_from([i.key for i in inspectors]), st.sampled_from(keys))
        conflicts = frozenset(draw(st.lists(pairs, max_size=25)))
        recent = frozenset(draw(st.lists(pairs, max_size=10)))
    return DrawInputs(
        draw_ref=draw(st.text(min_size=1, max_size=12)),
        secret=draw(st.binary(min_size=32, max_size=32)),
        beacon=draw(st.text(max_size=8)),
        pool=[PoolLine(k, s) for k, s in zip(keys, strata)],
        ratios=ratios,
        inspectors=inspectors,
        units={k: UnitInfo(d, j) for k, (d, j) in UNITS.items()},
        divisions={k: draw(st.sampled_from(DIVISIONS)) for k in keys},
        team=team,
        conflicts=conflicts,
        recent=recent,
    )


def reference_args(inputs: DrawInputs, extra_excluded=frozenset()) -> dict:
    """The same draw in the reference implementation's plain terms."""
    return dict(
        secret=inputs.secret,
        beacon=inputs.beacon,
        draw_ref=inputs.draw_ref,
        pool=[(p.key, p.stratum) for p in inputs.pool],
        ratios=dict(inputs.ratios),
        inspectors=[(i.key, i.unit, tuple(i.quals)) for i in inputs.inspectors],
        units={k: (u.department, u.jurisdiction) for k, u in inputs.units.items()},
        divisions=dict(inputs.divisions),
        team={
            "size": inputs.team.size,
            "slots": list(inputs.team.slots),
            "required_quals": list(inputs.team.required_quals),
            "slot_quals": [list(q) for q in inputs.team.slot_quals],
        },
        excluded_pairs=set(inputs.conflicts | inputs.recent | extra_excluded),
    )
