"""Read and write a chat's conversation state (one open flow per chat)."""

from __future__ import annotations

from datetime import datetime

from models.chat import ChatState


async def get(channel: str, address: str, conn=None) -> ChatState | None:
    q = ChatState.filter(channel=channel, address=address)
    if conn is not None:
        q = q.using_db(conn)
    return await q.first()


async def put(channel: str, address: str, flow: str, step: str, data: dict, now: datetime, conn=None) -> None:
    q = ChatState.filter(channel=channel, address=address)
    if conn is not None:
        q = q.using_db(conn)
    n = await q.update(flow=flow, step=step, data=data, updated_at=now)
    if not n:
        await ChatState.create(
            channel=channel, address=address, flow=flow, step=step, data=data, updated_at=now, using_db=conn
        )


async def clear(channel: str, address: str, conn=None) -> None:
    q = ChatState.filter(channel=channel, address=address)
    if conn is not None:
        q = q.using_db(conn)
    await q.delete()
