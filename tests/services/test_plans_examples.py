"""The example plans in examples/plans/ load and draw against the generated city, and their
bundles verify."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.clock import FakeClock
from domain import bundle
from importers import city
from importers.run import import_file
from services import plans
from services.draws.export import export
from tests.builders import scheduled_draw
from tests.services.draw_world import ZONE

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples" / "plans").iterdir())


@pytest.fixture(scope="module")
def city_files(tmp_path_factory) -> city.CityFiles:
    return city.generate(tmp_path_factory.mktemp("city"), entities=1500, inspectors=400, seed=2026)


def test_there_are_three_examples_one_joint_one_flight():
    specs = [plans.load_plan_file(p) for p in EXAMPLES]
    assert len(specs) == 3
    assert sum(s.joint for s in specs) == 1 and sum(s.flight for s in specs) == 1
    assert {p.suffix for p in EXAMPLES} == {".toml", ".yaml"}


async def test_examples_draw_against_the_generated_city(db, tmp_path, city_files):
    clock = FakeClock(datetime(2026, 12, 1, 2, 0, tzinfo=UTC))
    for kind, path in city_files.in_import_order():
        assert (await import_file(kind, path, now=clock.now())).ok
    for path in EXAMPLES:
        added = await plans.add_plan(path, clock)
        result = await scheduled_draw(added.spec.code, clock=clock, zone=ZONE)
        assert result.inspections > 0 and result.assignments > 0, path.name
        assert result.unstaffable < result.inspections, path.name
        out = tmp_path / path.stem
        await export(result.draw_ref, out, clock=clock, force=True)
        files = {p.name: p.read_bytes() for p in out.iterdir()}
        assert all(line.ok for line in bundle.verify(files)), path.name
