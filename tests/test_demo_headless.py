"""`inspectbot demo --headless` runs the whole cycle on a fresh data directory and exits 0; the
story always has its complaint and alert, and nothing is left queued when it says it is done."""

from __future__ import annotations

import socket

import pytest

from bot.demo import PREVIOUS, Demo
from core.settings import Settings


async def test_headless_demo_runs_the_cycle(tmp_path):
    settings = Settings(data_dir=tmp_path, locale="en")
    lines: list[str] = []
    demo = Demo(settings, headless=True, out=lines.append)
    assert await demo.run() == 0
    story = "\n".join(lines)
    for step in (
        "[City]",
        "[Announce]",
        "[Draw]",
        "[Chat]",
        "[Recusal]",
        "[Replacement]",
        "[Survey]",
        "[Review]",
        "[Follow-up]",
        "[Re-inspection]",
        "[Done]",
    ):
        assert step in story, story
    # on Telegram the inspectors bound the bot with their invite links (on WeCom: the directory)
    assert "inspectors bound the bot with their invite links" in story, story
    # the draw took its beacon from the demo's local test chain, and says so
    assert "Beacon: drand/inspectbot-test/" in story and "not the public drand network" in story
    # the progress lines ("  … drawing (4 s so far)") are said, not part of the story
    told = [line for line in lines if not line.lstrip().startswith("…")]
    assert "commitment" in story and demo.summary.lines == told
    # deterministic: the scripted complaint always happens, and the coordinator is alerted
    assert "检查人员暗示请吃饭" in story, story
    assert "nothing left in the queue" in told[-1] and " 0 alerts" not in told[-1], told[-1]
    # the rectification order through to its re-inspection, as the page and the export show it
    assert "rectified (re-inspected)" in story and "后续处理 reads 已整改（复查合格）" in story, story
    from core import db
    from models.draws import FiringSecret
    from models.messaging import Outbox, OutboxStatus
    from models.onsite import Result
    from models.publication import Rectification, RectificationStatus, Review, ReviewStatus

    await db.init(demo.settings)
    try:
        secrets = [bytes(r.secret).hex() for r in await FiringSecret.all()]
        queued = await Outbox.filter(status__in=[OutboxStatus.PENDING, OutboxStatus.SENDING]).count()
        [order] = await Rectification.all()
        again = await Result.get(reinspection_id=order.id)
        review = await Review.get(result_id=again.id)
    finally:
        await db.close()
    assert queued == 0  # everything due was sent before "[Done]"
    # decided by the re-inspection the scheduler's sweep assigned and a coordinator approved
    assert order.status == RectificationStatus.RECTIFIED and order.inspector_id == again.submitted_by_id
    assert order.assigned_at is not None and order.note  # the re-inspector's note went to the order
    assert review.status == ReviewStatus.APPROVED and review.decided_by_id is not None
    assert secrets and not any(s in story for s in secrets)
    assert demo.settings.telegram_token not in story


def test_a_rerun_starts_a_fresh_world_and_says_so(tmp_path):
    (tmp_path / "city").mkdir()
    (tmp_path / "city" / "entities.csv").write_text("kept")
    (tmp_path / "inspectbot.sqlite3").write_text("old world")
    (tmp_path / "reports").mkdir()
    lines: list[str] = []
    Demo(Settings(data_dir=tmp_path, locale="en"), headless=True, out=lines.append).fresh_world()
    assert not (tmp_path / "inspectbot.sqlite3").exists()
    assert (tmp_path / PREVIOUS / "inspectbot.sqlite3").read_text() == "old world"
    assert (tmp_path / PREVIOUS / "reports").is_dir()
    assert (tmp_path / "city" / "entities.csv").read_text() == "kept"  # same seed, same files
    assert len(lines) == 1 and "[Fresh start]" in lines[0] and str(tmp_path / PREVIOUS) in lines[0]


@pytest.mark.parametrize(
    ("channel", "setting", "variable"),
    [
        ("telegram", "demo_sim_port", "INSPECTBOT_DEMO_SIM_PORT"),
        ("wecom", "demo_wecom_port", "INSPECTBOT_DEMO_WECOM_PORT"),
    ],
)
async def test_a_busy_port_is_one_line_naming_it_and_its_variable(tmp_path, channel, setting, variable):
    from bot.demo_wecom import WecomDemo

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = Settings(data_dir=tmp_path, locale="en", web_port=0, metrics_port=0, **{setting: port})
        lines: list[str] = []
        demo = (WecomDemo if channel == "wecom" else Demo)(settings, headless=False, out=lines.append)
        assert await demo.run() == 2
    assert lines == [lines[0]] and str(port) in lines[0] and variable in lines[0]
    assert not (tmp_path / "inspectbot.sqlite3").exists()  # nothing started, nothing written
