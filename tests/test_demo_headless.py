"""`inspectbot demo --headless` runs the whole cycle on a fresh data directory and exits 0."""

from __future__ import annotations

from bot.demo import Demo
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
        "[Review]",
        "[Follow-up]",
        "[Done]",
    ):
        assert step in story, story
    assert "commitment" in story and len(demo.summary.lines) == len(lines)
    # the secret never appears in what the demo prints before or after the draw
    from core import db
    from models.draws import FiringSecret

    await db.init(demo.settings)
    try:
        secrets = [bytes(r.secret).hex() for r in await FiringSecret.all()]
    finally:
        await db.close()
    assert secrets and not any(s in story for s in secrets)
    assert demo.settings.telegram_token not in story
