"""The processes the kill -9 trials kill (tests/reliability/test_kill9.py).

``python -m tests.reliability.child`` is a fork server: it imports the service's code once, says
``ready``, then reads one JSON command per line on stdin and forks a fresh process for each. A
forked process is a real process of its own (its own database connections, its own event loop,
its own pid to ``kill -9``) that runs our real code:

- ``{"op": "fire", "url": …, "when": …}`` — the scheduler as the service runs it:
  ``Scheduler(Runtime(settings, clock)).run_due()`` at ``when`` (the draw fire, or after a
  restart its catch-up). Prints ``start <pid>`` before it opens the database, ``phase <pid>
  <name>`` as the draw reaches each phase (``inputs read``, ``drawn``, …, ``outbox written``), and
  ``done <pid> <json: the keys it ran>`` when it has closed the database.
- ``{"op": "dispatch", "url": …, "sim": …, "token": …, "lease": s, "concurrency": n}`` — the
  service (``bot.app.Service``: database, Telegram channel, the dispatcher's production loop)
  without web or scheduler, against the Telegram simulator at ``sim``; rate limits off (the
  simulator's flood control is off too), the outbox lease ``lease`` seconds. Prints ``ready
  <pid>`` once the service runs, and runs until it is killed.

Forking (rather than starting ``sys.executable`` per trial) saves each trial the second of CPU
that importing the service costs, so that 20 trials per database fit in a test run. The fork
server reports ``forked <pid> <tag>`` and, when a process ends (killed or not), ``exit <pid>
<status>``. Every process dies with its parent (``PR_SET_PDEATHSIG``), so a failed test leaves
none behind.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback


def _say(*words) -> None:
    """One line on stdout, unbuffered (also from the SIGCHLD handler)."""
    os.write(1, (" ".join(str(w) for w in words) + "\n").encode())


def _die_with_parent() -> None:
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # not Linux: the test kills what it started
        pass


def _reap(*_args) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _say("exit", pid, os.waitstatus_to_exitcode(status))


def _report_draw_phases() -> None:
    """Print ``phase <pid> <name>`` as the draw reaches each of its phases (its debug timings), so
    the test can tell where a kill landed."""
    import logging
    import re

    class Phases(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            found = re.match(r"[^:]+: (.+) [0-9.]+s$", record.getMessage())
            if found:
                _say("phase", os.getpid(), found.group(1))

    logger = logging.getLogger("services.draws")
    logger.addHandler(Phases(logging.DEBUG))
    logger.setLevel(logging.DEBUG)


async def fire(cmd: dict) -> list[str]:
    from datetime import datetime

    from bot.runtime import Runtime
    from core import db
    from core.clock import FakeClock
    from core.settings import Settings
    from scheduler import Scheduler

    _say("start", os.getpid())
    _report_draw_phases()
    settings = Settings(database_url=cmd["url"], data_dir=cmd["data_dir"])
    await db.init(settings)
    try:
        clock = FakeClock(datetime.fromisoformat(cmd["when"]))
        return await Scheduler(Runtime(settings=settings, clock=clock)).run_due()
    finally:
        await db.close()


async def dispatch(cmd: dict) -> None:
    import asyncio
    from datetime import timedelta

    from bot.app import Service
    from bot.channels.telegram import TelegramChannel
    from core.ratelimit import RateLimiter
    from core.settings import Settings

    settings = Settings(
        database_url=cmd["url"], data_dir=cmd["data_dir"], telegram_token=cmd["token"], telegram_api_url=cmd["sim"]
    )
    options = {
        "limits": {"telegram": RateLimiter(None, None)},
        "lease": timedelta(seconds=cmd["lease"]),
        "concurrency": cmd["concurrency"],
        "batch": cmd["batch"],
    }
    service = Service(settings, web_enabled=False, scheduler_enabled=False, dispatcher_options=options)
    channel = TelegramChannel(settings.telegram_token, api_url=settings.telegram_api_url, mode="send-only")
    await service.start(channels={"telegram": channel})
    _say("ready", os.getpid())
    await asyncio.Event().wait()  # until killed


async def dispatch_wecom(cmd: dict) -> None:
    """The service's dispatcher loop through the WeCom channel, against the WeCom simulator."""
    import asyncio
    from datetime import timedelta

    from bot.app import Service
    from bot.channels.wecom import WecomChannel
    from core.ratelimit import RateLimiter
    from core.settings import Settings
    from tests.e2e.wecom_harness import wecom_settings

    settings = wecom_settings(Settings(database_url=cmd["url"], data_dir=cmd["data_dir"]), cmd["sim"])
    options = {
        "limits": {"wecom": RateLimiter(None, None)},
        "lease": timedelta(seconds=cmd["lease"]),
        "concurrency": cmd["concurrency"],
        "batch": cmd["batch"],
    }
    service = Service(settings, web_enabled=False, scheduler_enabled=False, dispatcher_options=options)
    await service.start(channels={"wecom": WecomChannel(settings)})
    _say("ready", os.getpid())
    await asyncio.Event().wait()  # until killed


OPS = {"fire": fire, "dispatch": dispatch, "dispatch_wecom": dispatch_wecom}
# What those import, besides the models: a forked process would otherwise import
# (and, without bytecode caches, compile) them again, at each trial.
WARM = [
    "scheduler",  # and, through it, every sweep's service
    "bot.app",
    "bot.runtime",
    "bot.channels.telegram",
    "bot.channels.wecom",
    "core.compose",
    "core.render",
    "services.draws.write",
    "services.plans",
    "services.assignments",
    "tortoise.backends.sqlite",
    "tortoise.backends.asyncpg",
    "tortoise.context",
    "concurrent.futures.thread",
    "aerich",
    "aerich.migrate",
    "yaml",
    "numpy",
]


def _child(cmd: dict) -> None:
    """The forked process: never returns."""
    import asyncio

    code = 0
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        _die_with_parent()
        fd = os.open(os.devnull, os.O_RDONLY)
        os.dup2(fd, 0)
        import scheduler

        scheduler.INSTANCE = f"{scheduler.socket.gethostname()}:{os.getpid()}"
        result = asyncio.run(OPS[cmd["op"]](cmd))
        _say("done", os.getpid(), json.dumps(result))
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        sys.stderr.flush()
        os._exit(code)


def main() -> None:
    _die_with_parent()
    # Everything the children run, imported once here (nothing connects or starts a thread).
    import importlib

    from core import db

    for name in [*db.MODEL_MODULES, *WARM]:
        importlib.import_module(name)
    signal.signal(signal.SIGCHLD, _reap)
    _say("ready", os.getpid())
    for line in sys.stdin:
        if not line.strip():
            continue
        cmd = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(cmd)
        _say("forked", pid, cmd.get("tag", "-"))
    # stdin closed: the test is over; the children die with this process (PR_SET_PDEATHSIG).


if __name__ == "__main__":
    main()
