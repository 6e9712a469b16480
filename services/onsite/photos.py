"""Photos: :func:`photo` records a photo at once (``pending``, ``photo.received`` on the audit
chain); :func:`fetch_pending`, called by the scheduler's ``photos`` sweep outside any inbound
transaction with the channel's fetch function, downloads it and stores it by SHA-256 under the
data directory (``photo.stored``), or gives up after retries (``photo.failed``, the inspector
told)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path

from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from core.channel import SendError
from core.clock import utc as _utc
from core.db import transaction as _transaction
from domain.onsite import image_extension, image_kind, photo_path
from models.draws import Assignment, Inspection
from models.messaging import RecipientKind
from models.onsite import CheckIn, Photo, PhotoStatus
from services import audit
from services.onsite.shared import Choice, OnsiteError, Reinspecting, _choice, current, reinspections_under_way
from services.outbox import Message, enqueue

FETCH_BATCH = 50


MAX_FETCH_ATTEMPTS = 8


async def photo(
    inspector_id: int,
    file_id: str,
    *,
    now: datetime,
    caption: str = "",
    assignment_id: int | None = None,
    inspection_id: int | None = None,
    rectification_id: int | None = None,
    conn=None,
) -> dict | Choice:
    """Record a photo (fetch pending) on the inspection or re-inspection (复查) under way: the one
    named, else the only one, else the one last checked in to; otherwise a :class:`Choice`. Sent in
    a re-inspection's findings conversation (``inspection_id`` its inspection), it is filed to the
    inspection its re-inspector is assigned to re-inspect."""
    if not file_id:
        raise OnsiteError("bad_photo")
    now = _utc(now)
    async with _transaction(conn) as c:
        asg: Assignment | Reinspecting | Choice | None = None
        if rectification_id is not None:
            named = await reinspections_under_way(inspector_id, c, rectification_id=rectification_id)
            if not named:
                raise OnsiteError("not_under_way")
            asg = named[0]
        elif inspection_id is not None and assignment_id is None:
            asg = await _reinspecting(inspector_id, inspection_id, c)
        if asg is None:
            asg = await _photo_target(inspector_id, now, assignment_id, inspection_id, c)
        if isinstance(asg, Choice):
            return asg
        row = await Photo.create(
            inspection_id=asg.inspection_id,
            inspector_id=inspector_id,
            file_id=file_id[:255],
            caption=caption[:1024],
            status=PhotoStatus.PENDING,
            next_attempt_at=now,
            received_at=now,
            using_db=c,
        )
        await audit.append(
            f"inspector:{inspector_id}",
            "photo.received",
            f"inspection:{asg.inspection_id}",
            {"photo": row.id, "assignment": asg.id, "rectification": getattr(asg, "rectification_id", None)},
            now,
            connection=c,
        )
        return {
            **_choice(asg),
            "photo": row.id,
            "count": await Photo.filter(inspection_id=asg.inspection_id).using_db(c).count(),
        }


async def _reinspecting(inspector_id: int, inspection_id: int, conn) -> Reinspecting | None:
    """The inspection's re-inspection, if one is assigned to the inspector and under way."""
    found = await reinspections_under_way(inspector_id, conn, inspection_id=inspection_id)
    return found[0] if found else None


async def _photo_target(
    inspector_id: int, now: datetime, assignment_id: int | None, inspection_id: int | None, conn
) -> Assignment | Reinspecting | Choice:
    """Among the inspections under way (then the re-inspections under way, as a check-in offers
    them): the named one, the only one, the one last checked in to, or a :class:`Choice`."""
    assigned = await current(inspector_id, now, conn)
    if assignment_id is not None or inspection_id is not None:
        found = next((a for a in assigned if a.id == assignment_id or a.inspection_id == inspection_id), None)
        if found is not None:
            return found
        if assignment_id is not None:
            raise OnsiteError("not_under_way")
    rows: list[Assignment | Reinspecting] = [*assigned, *await reinspections_under_way(inspector_id, conn)]
    if not rows:
        raise OnsiteError("no_current_inspection")
    if len(rows) == 1:
        return rows[0]
    last = await (
        CheckIn.filter(
            Q(assignment_id__in=[a.id for a in assigned])
            | Q(rectification_id__in=[a.rectification_id for a in rows if isinstance(a, Reinspecting)]),
            inspector_id=inspector_id,
        )
        .using_db(conn)
        .order_by("-at", "-id")
        .first()
    )
    if last is not None:
        return next(a for a in rows if _checked_in_to(a, last))
    return Choice([_choice(a) for a in rows])


def _checked_in_to(target: Assignment | Reinspecting, row: CheckIn) -> bool:
    if isinstance(target, Reinspecting):
        return row.rectification_id == target.rectification_id
    return row.assignment_id == target.id


def _store_file(path: Path, data: bytes) -> None:
    """Write once, atomically: a reader never sees half a photo; the same content is stored once."""
    if path.exists() and path.stat().st_size == len(data):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(30 * 2**attempts, 3600))


async def fetch_pending(
    fetch: Callable[[str], Awaitable[bytes]],
    data_dir: Path,
    now: datetime,
    *,
    limit: int = FETCH_BATCH,
    locale: str = "zh-CN",
) -> dict[str, int]:
    """Download pending photos and store them by SHA-256. The download happens outside any
    transaction; each photo's row is then updated in its own short one, guarded by its status
    (two instances never store one photo twice)."""
    now = _utc(now)
    done = {"stored": 0, "retry": 0, "failed": 0}
    rows = await (
        Photo.filter(status=PhotoStatus.PENDING, next_attempt_at__lte=now)
        .order_by("id")
        .limit(limit)
        .values("id", "file_id", "attempts", "inspection_id", "inspector_id")
    )
    for r in rows:
        try:
            data = await fetch(r["file_id"])
            if not image_kind(data):  # a proxy's error page, a cut-off download: never the evidence
                raise SendError("not_an_image", retryable=True, detail=f"{len(data)} bytes")
        except Exception as exc:  # SendError from the channel; anything else is treated as transient
            retryable = exc.retryable if isinstance(exc, SendError) else True
            kind = exc.kind if isinstance(exc, SendError) else exc.__class__.__name__
            outcome = await _fetch_failed(r, kind[:64], retryable, now, locale)
            done[outcome] += 1
            continue
        digest = hashlib.sha256(data).hexdigest()
        rel = photo_path(digest, image_extension(data))
        await asyncio.to_thread(_store_file, Path(data_dir) / rel, data)
        async with in_transaction() as conn:
            n = (
                await Photo.filter(id=r["id"], status=PhotoStatus.PENDING)
                .using_db(conn)
                .update(
                    status=PhotoStatus.STORED,
                    sha256=digest,
                    size=len(data),
                    path=rel,
                    fetched_at=now,
                    attempts=r["attempts"] + 1,
                    last_error="",
                )
            )
            if n:
                await audit.append(
                    "system",
                    "photo.stored",
                    f"photo:{r['id']}",
                    {"inspection": r["inspection_id"], "sha256": digest, "size": len(data), "path": rel},
                    now,
                    connection=conn,
                )
                done["stored"] += 1
    return done


async def _fetch_failed(r: dict, kind: str, retryable: bool, now: datetime, locale: str) -> str:
    attempts = r["attempts"] + 1
    give_up = not retryable or attempts >= MAX_FETCH_ATTEMPTS
    async with in_transaction() as conn:
        n = (
            await Photo.filter(id=r["id"], status=PhotoStatus.PENDING)
            .using_db(conn)
            .update(
                attempts=attempts,
                last_error=kind,
                next_attempt_at=now + _backoff(attempts),
                **({"status": PhotoStatus.FAILED} if give_up else {}),
            )
        )
        if not n or not give_up:
            return "retry"
        await audit.append(
            "system",
            "photo.failed",
            f"photo:{r['id']}",
            {"inspection": r["inspection_id"], "error": kind, "attempts": attempts},
            now,
            connection=conn,
        )
        insp = await Inspection.filter(id=r["inspection_id"]).using_db(conn).prefetch_related("draw").first()
        await enqueue(
            [
                Message(
                    dedupe_key=f"photo:{r['id']}:failed",
                    recipient_kind=RecipientKind.INSPECTOR,
                    recipient_id=r["inspector_id"],
                    template="photo_failed.j2",
                    context={
                        "no": insp.no if insp else 0,
                        "draw_ref": insp.draw.draw_ref if insp else "",
                    },
                    locale=locale,
                )
            ],
            now,
            connection=conn,
        )
    return "failed"
