from datetime import UTC, datetime, timedelta

from models.audit import AuditRecord
from services import audit

NOW = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)


async def test_appended_chain_verifies_and_tampering_is_named(db):
    for i in range(7):
        await audit.append(
            "system", "assignment.sent", f"assignment:{i}", {"i": i, "名": "张伟"}, NOW + timedelta(seconds=i)
        )
    assert await audit.verify(batch=3) == (7, None)
    await AuditRecord.filter(seq=4).update(data={"i": 99})
    count, broken = await audit.verify(batch=3)
    assert (count, broken.seq, broken.reason) == (3, 4, "hash")


async def test_deleted_record_breaks_the_link(db):
    for i in range(5):
        await audit.append("system", "a", f"s:{i}", {}, NOW)
    await AuditRecord.filter(seq=3).delete()
    count, broken = await audit.verify()
    assert (count, broken.seq, broken.reason) == (2, 3, "order")
