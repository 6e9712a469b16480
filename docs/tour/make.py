"""Screenshots for docs/tour.md, from the real demo in headless Chromium.

    uv run python docs/tour/make.py

Runs ``inspectbot demo``'s story in this process (a fresh data folder under a temporary
directory, every port chosen free), then walks it as the test ``tests/web/test_demo_browser.py``
does and saves each screen as ``docs/tour/<name>.png``: the coordinator's chat and an
inspector's on the simulators' page, a surveyed firm's SMS thread, the public draw page, the
monthly report, and /plans at a phone's width. Then it tells the same story on WeCom
(``inspectbot demo --channel wecom``) and saves ``docs/tour/wecom-*.png``: an inspector's
conversation (an assignment card, one after the press, the check-in, the findings) and the
coordinator's (a review card). Re-run it when a screen changes; the pictures then stay true. Needs Debian's chromium (/usr/bin/chromium) and the dev dependencies (playwright).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # run as a file: the project's packages are importable

from tests.web.demo_tour import launch, running_demo, walk, walk_wecom  # noqa: E402

HERE = Path(__file__).resolve().parent


async def main() -> int:
    from playwright.async_api import async_playwright

    shots: list[Path] = []
    for channel, walker in (("telegram", walk), ("wecom", walk_wecom)):
        with tempfile.TemporaryDirectory() as tmp:
            async with running_demo(Path(tmp) / "data", out=print, channel=channel) as demo, async_playwright() as pw:
                browser = await launch(pw, Path(tmp) / "browser")
                try:
                    shots += (await walker(demo, browser, shots=HERE)).shots
                finally:
                    await browser.close()
    for path in shots:
        print(path.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
