"""scheduler.py: plan rows become announce and draw fires; each fire runs once; missed fires
within the grace period run once (coalesced), older ones are reported, never run late."""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.runtime import Runtime
from core.clock import FakeClock
from models.alerts import Alert
from models.draws import Draw, Firing
from models.scheduling import Fire
from scheduler import Scheduler, plan_fires
from services import plans
from tests.services import draw_world as world

ZONE = world.ZONE
# The test plan fires at 09:00 Beijing time on the 1st of each month ("0 9 1 * *").
DEC_1_0900 = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)


def plan_keys(keys: list[str]) -> list[str]:
    """The plan fires among the keys a run ran (sweeps such as the monthly report fire too)."""
    return [k for k in keys if k.startswith(("announce:", "draw:"))]


def at(dt: datetime) -> FakeClock:
    return FakeClock(dt)


async def setup(db, tmp_path, clock):
    """The plan was added on 20 November; the clock then jumps to the test's moment."""
    await world.build(n_entities=10, n_scjg=4, n_wsj=0)
    when = clock.now()
    clock.set(datetime(2026, 11, 20, tzinfo=UTC))
    await plans.add_plan(world.plan_file(tmp_path, "P1"), clock)
    clock.set(when)
    return Scheduler(Runtime(settings=db, clock=clock), grace=timedelta(hours=6))


async def test_plan_fires_announce_a_day_ahead_then_draw(db, tmp_path):
    clock = at(datetime(2026, 11, 25, tzinfo=UTC))
    sched = await setup(db, tmp_path, clock)
    [(plan, spec)] = await sched.plan_specs()
    fires = plan_fires(spec, ZONE, clock.now(), datetime(2026, 12, 2, tzinfo=UTC))
    assert [(f.kind, f.at) for f in fires] == [("announce", DEC_1_0900 - timedelta(days=1)), ("draw", DEC_1_0900)]
    assert fires[1].key == "draw:P1:2026-12-01T09:00:00+08:00"


async def test_announce_then_draw_each_once(db, tmp_path):
    clock = at(DEC_1_0900 - timedelta(days=1) + timedelta(minutes=1))
    sched = await setup(db, tmp_path, clock)
    assert plan_keys(await sched.run_due()) == ["announce:P1:2026-12-01T09:00:00+08:00"]
    firing = await Firing.get(plan__code="P1")
    assert firing.fire_at == DEC_1_0900 and await Draw.all().count() == 0
    assert plan_keys(await sched.run_due()) == []  # the key is taken
    clock.set(DEC_1_0900 + timedelta(minutes=1))
    assert plan_keys(await sched.run_due()) == ["draw:P1:2026-12-01T09:00:00+08:00"]
    assert (await Draw.get(firing_id=firing.id)).draw_ref == firing.draw_ref
    assert plan_keys(await sched.run_due()) == []
    assert await Draw.all().count() == 1


async def test_draw_without_announcement_is_refused_and_reported(db, tmp_path):
    clock = at(DEC_1_0900 + timedelta(minutes=5))  # the service was down when the announce was due
    sched = await setup(db, tmp_path, clock)
    # the announce fire is older than the grace period: recorded missed; the draw has no commitment
    ran = plan_keys(await sched.run_due())
    assert ran == ["draw:P1:2026-12-01T09:00:00+08:00"]
    assert await Draw.all().count() == 0
    outcome = await Fire.get(key="draw:P1:2026-12-01T09:00:00+08:00").values_list("outcome", flat=True)
    assert outcome == "not_announced"
    assert await Fire.get(key="announce:P1:2026-12-01T09:00:00+08:00").values_list("outcome", flat=True) == "missed"
    assert await Alert.filter(kind="scheduler_missed").count() >= 1


async def test_missed_within_grace_runs_once_older_is_reported(db, tmp_path):
    clock = at(DEC_1_0900 - timedelta(days=1) + timedelta(minutes=1))
    sched = await setup(db, tmp_path, clock)
    await sched.run_due()  # announced on time
    clock.set(DEC_1_0900 + timedelta(hours=2))  # down over the draw time, back within grace
    assert plan_keys(await sched.run_due()) == ["draw:P1:2026-12-01T09:00:00+08:00"]
    # down for two months: January's fires are far older than the grace period
    clock.set(datetime(2027, 2, 1, 3, 0, tzinfo=UTC))  # Feb 1 11:00 local: Feb's draw in grace
    ran = await sched.run_due()
    missed = await Fire.filter(outcome="missed").values_list("key", flat=True)
    assert "draw:P1:2027-01-01T09:00:00+08:00" in missed and "announce:P1:2027-01-01T09:00:00+08:00" in missed
    assert "draw:P1:2027-01-01T09:00:00+08:00" not in ran
    assert await Draw.all().count() == 1  # January never drawn late; February not announced in time
    assert await Alert.filter(kind="scheduler_missed").count() >= 2


TWO_INSTANCES = textwrap.dedent("""
    import asyncio, sys
    from datetime import datetime, timezone
    from core import db
    from core.clock import FakeClock
    from bot.runtime import Runtime
    from core.settings import Settings
    from scheduler import Scheduler

    async def main(url, when):
        settings = Settings(database_url=url)
        await db.init(settings)
        clock = FakeClock(datetime.fromisoformat(when))
        ran = await Scheduler(Runtime(settings=settings, clock=clock)).run_due()
        print(",".join(k for k in ran if k.startswith(("announce:", "draw:"))))
        await db.close()

    asyncio.run(main(sys.argv[1], sys.argv[2]))
""")


async def test_two_instances_on_one_postgresql_fire_once(tmp_path):
    from core import db as dbmod
    from core.settings import Settings
    from tests.conftest import postgres_url_or_skip

    url = postgres_url_or_skip()
    settings = Settings(database_url=url, data_dir=tmp_path)
    await dbmod.init(settings)
    try:
        from tests.conftest import _truncate_all

        await _truncate_all()
        clock = at(DEC_1_0900 - timedelta(days=1) + timedelta(minutes=1))
        await setup(settings, tmp_path, clock)
        await Scheduler(Runtime(settings=settings, clock=clock)).run_due()  # announce
        script = tmp_path / "instance.py"
        script.write_text(TWO_INSTANCES)
        when = (DEC_1_0900 + timedelta(minutes=1)).isoformat()
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable, str(script), url, when, env=env, stdout=asyncio.subprocess.PIPE
            )
            for _ in range(2)
        ]
        outs = [(await p.communicate())[0].decode().strip() for p in procs]
        assert all(p.returncode == 0 for p in procs)
        assert sorted(outs) == ["", "draw:P1:2026-12-01T09:00:00+08:00"]
        assert await Draw.all().count() == 1
    finally:
        await dbmod.close()
