"""The credit record: the month's published results in the fields of the national enterprise
credit information publicity system's random-inspection results (``inspectbot results export``).

Only published results (a reviewer approved them; services.onsite.review), and nothing
confidential: no notes, no inspector, no phone number. Each record::

    统一社会信用代码, 企业名称, 检查实施机关, 抽查计划/任务, 检查日期, 检查结果, 后续处理

docs/results.md describes every column.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import datetime, tzinfo

from core import db
from core.render import text
from domain.onsite import credit_outcome
from services.reports import month_bounds

LOCALE = "zh-CN"  # the publicity system's language, whatever the server's
FOLLOW_UP = {"open": "rectify", "reinspecting": "rectify", "rectified": "rectified", "unrectified": "referred"}
# a superseded order is followed, in id order, by the corrected result's own (or by none: "none")
COLUMNS = ("uscc", "name", "authority", "task", "date", "outcome", "follow_up")

PUBLISHED = """
SELECT i.id, i.entity_key, e.name AS entity, d.draw_ref, p.name AS plan, p.departments,
       pub.ended_on, pub.published_at, pub.result_id, pub.referred_at
FROM publication pub JOIN inspection i ON i.id = pub.inspection_id JOIN entity e ON e.id = i.entity_id
JOIN draw d ON d.id = i.draw_id JOIN plan p ON p.id = d.plan_id
WHERE pub.published_at IS NOT NULL AND pub.published_at >= ? AND pub.published_at < ?
ORDER BY pub.published_at, i.id
"""


async def _fetch(sql: str, params: Sequence = ()) -> list[dict]:
    return await db.conn().execute_query_dict(db.sql(sql), list(params))


def headers() -> list[str]:
    return [text(f"credit_col_{c}", LOCALE) for c in COLUMNS]


async def published_records(month: str, zone: tzinfo) -> list[dict]:
    """The results first published in ``month`` (local), one dict per inspection keyed by
    :data:`COLUMNS`. A bad month raises ``services.reports.ReportError``."""
    start, end = month_bounds(month, zone)
    rows = await _fetch(PUBLISHED, [start, end])
    if not rows:
        return []
    names = dict(await _fetch_pairs("SELECT code, name FROM department"))
    verdicts: dict[int, list[str | None]] = {}
    ids = [r["result_id"] for r in rows]
    marks = ", ".join("?" for _ in ids)
    for f in await _fetch(
        f"SELECT result_id, verdict FROM finding WHERE result_id IN ({marks}) ORDER BY position", ids
    ):
        verdicts.setdefault(f["result_id"], []).append(f["verdict"])
    follow: dict[int, tuple[str, str]] = {}
    insp_marks = ", ".join("?" for _ in rows)
    for f in await _fetch(
        f"SELECT inspection_id, status, due_on FROM rectification WHERE inspection_id IN ({insp_marks}) ORDER BY id",
        [r["id"] for r in rows],
    ):
        if f["status"] == "superseded":
            follow.pop(f["inspection_id"], None)
            continue
        follow[f["inspection_id"]] = (f["status"], str(f["due_on"])[:10])
    out = []
    for r in rows:
        outcome = credit_outcome(verdicts.get(r["result_id"], []))
        status, due_on = follow.get(r["id"], ("", ""))
        if r["referred_at"] is not None:
            status = "unrectified"  # a serious finding flagged for referral: 移送立案 as well
        ended = r["ended_on"]
        out.append(
            {
                "uscc": r["entity_key"],
                "name": r["entity"],
                "authority": "、".join(names.get(code, code) for code in db.decoded(r["departments"], [])),
                "task": f"{r['plan']}（{r['draw_ref']}）",
                "date": ended.isoformat() if hasattr(ended, "isoformat") else str(ended),
                "outcome": text(f"credit_outcome_{outcome}", LOCALE),
                "follow_up": text(
                    f"credit_follow_up_{FOLLOW_UP.get(status, 'rectify' if outcome == 'problems' else 'none')}",
                    LOCALE,
                    due_on=due_on,
                ),
            }
        )
    return out


async def _fetch_pairs(sql: str) -> list[tuple[str, str]]:
    return [(r["code"], r["name"]) for r in await _fetch(sql)]


def to_csv(records: list[dict]) -> bytes:
    """UTF-8 with a byte-order mark (Excel opens it as UTF-8), CRLF line ends, every field quoted
    as needed; a value starting with = + - @ is prefixed with ' so a spreadsheet never runs it."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(headers())
    for r in records:
        writer.writerow([_cell(r[c]) for c in COLUMNS])
    return b"\xef\xbb\xbf" + buffer.getvalue().encode("utf-8")


def _cell(value: str) -> str:
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def to_json(records: list[dict], month: str, now: datetime) -> bytes:
    keys = headers()
    doc = {
        "month": month,
        "generated_at": now.isoformat(timespec="seconds"),
        "fields": keys,
        "records": [{k: r[c] for k, c in zip(keys, COLUMNS)} for r in records],
    }
    return json.dumps(doc, ensure_ascii=False, indent=2).encode("utf-8") + b"\n"
