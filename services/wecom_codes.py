"""WeCom card response codes kept in the database (models.messaging.WecomResponseCode).

A press on a WeCom template card carries a ``ResponseCode`` that allows one
``update_template_card`` of that card within 72 hours. Kept here, any instance (or the same one
after a restart) can update the card; :meth:`DbResponseCodes.take` deletes the code as it reads
it, so two instances never both use it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core import db

#: WeCom: a response code is valid for 72 hours and can be used once.
TTL = timedelta(hours=72)

_REMEMBER = (
    'INSERT INTO "wecom_response_code" ("task_id", "userid", "code", "expires_at") VALUES (?, ?, ?, ?) '
    'ON CONFLICT ("task_id") DO UPDATE SET "userid"=excluded."userid", "code"=excluded."code", '
    '"expires_at"=excluded."expires_at"'
)
_TAKE = 'DELETE FROM "wecom_response_code" WHERE "task_id"=? AND "userid"=? AND "expires_at">? RETURNING "code"'
_EXPIRED = 'DELETE FROM "wecom_response_code" WHERE "expires_at"<=?'


def _at(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


class DbResponseCodes:
    """The last press's code of each card, in the database (the production store)."""

    async def remember(self, task_id: str, userid: str, code: str, now: float) -> None:
        conn = db.conn()
        expires = db.encode(_at(now) + TTL)
        await conn.execute_query(db.sql(_EXPIRED), [db.encode(_at(now))])  # the table stays small
        await conn.execute_query(db.sql(_REMEMBER), [task_id, userid, code, expires])

    async def take(self, task_id: str, userid: str, now: float) -> str | None:
        rows = await db.conn().execute_query_dict(db.sql(_TAKE), [task_id, userid, db.encode(_at(now))])
        return str(rows[0]["code"]) if rows else None
