"""Long polling (the default Telegram mode) across a database outage and a crash in the middle of it.

In polling mode an update is confirmed to Telegram by the next ``getUpdates`` offset. The
service asks for the next updates only once each update of the batch is stored (committed), so
while the database is down the updates it fetched stay unconfirmed: Telegram keeps them, and a
service killed meanwhile (``kill -9``) loses none — the next one is delivered them again and
stores each once. (python-telegram-bot's own ``Updater`` confirms a batch as soon as it has
fetched it; with it this test finds the updates confirmed during the outage and lost with the
process.) A real ``inspectbot serve`` process, the Telegram Bot API simulator, and a private
PostgreSQL server stopped as a crash would stop it (the shared server on 5432 is never touched).
"""

from __future__ import annotations

from core import db as dbmod
from core.settings import Settings
from models.messaging import InboundEvent
from simulators.telegram.flood import FloodLimits
from simulators.telegram.simulator import TelegramSimulator
from tests.reliability.procs import ServiceProcess, wait_for


async def test_polled_updates_stay_unconfirmed_until_stored_so_a_crash_in_an_outage_loses_none(cluster, tmp_path):
    url = await cluster.create_database("polling")
    settings = Settings(database_url=url, data_dir=tmp_path)
    async with dbmod.opened(settings):  # migrated, as a deployment would be
        pass
    tg = TelegramSimulator(flood=FloodLimits.off())
    await tg.start()
    env = {"DATABASE_URL": url, "TELEGRAM_TOKEN": tg.token, "TELEGRAM_API_URL": tg.url}  # polling: the default
    first, second = ServiceProcess("first", dict(env), tmp_path), ServiceProcess("second", dict(env), tmp_path)
    try:
        await first.start()
        ann = tg.create_user("Ann")
        tg.send_text(ann, "你好")
        assert (await tg.wait_for_message(ann, timeout=15)).text  # polled, stored, answered
        await wait_for(lambda: tg.pending_update_count == 0, 20, "Ann's update to be confirmed")

        cluster.stop("immediate")
        users = [tg.create_user(name) for name in ("Bob", "Carol", "Dan")]
        updates = [tg.send_text(user, f"数据库停了吗 {i}") for i, user in enumerate(users)]
        # fetched, and the first tried again and again; none of them confirmed meanwhile
        await wait_for(
            lambda: first.log().count("not stored; retrying") >= 3,
            30,
            "the service to fail to store the first update three times",
        )
        assert first.alive and tg.pending_update_count == len(updates)
        first.proc.kill()  # a crash in the middle of the outage
        await first.proc.wait()
        assert tg.pending_update_count == len(updates)

        cluster.start()
        await second.start(timeout=60)
        await wait_for(lambda: tg.pending_update_count == 0, 30, "the updates to be delivered again and confirmed")
        for user in users:
            assert (await tg.wait_for_message(user, timeout=30)).text
        await dbmod.init(settings)
        try:
            for update in updates:
                assert await InboundEvent.filter(channel="telegram", external_id=str(update["update_id"])).count() == 1
            assert await InboundEvent.filter(channel="telegram").count() == 1 + len(updates)
        finally:
            await dbmod.close()
        assert [len(tg.messages(user)) for user in users] == [1] * len(users)  # each answered once
        await second.stop()  # a clean stop confirms what it stored: nothing is delivered again
        assert tg.pending_update_count == 0
    finally:
        await first.stop()
        await second.stop()
        await tg.stop()
