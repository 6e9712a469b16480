"""Benchmark: the public pages' queries on a Qingdao-scale database (SQLite or PostgreSQL).

    uv run python benchmarks/bench_public.py [--entities 1081742] [--database-url URL] [--repeat 5]

Fills a migrated database directly (``core.db.bulk_insert``; not what we measure) with N
entities named like real firms (``青岛<district><trade><n>号<suffix>``, one name containing
``独一无二`` at the highest id), one draw of 50,000 inspections (every fifth with a submitted
result), and 500,000 outbox rows; then times, through the service functions the pages call
(median of ``--repeat`` runs): a credit-code lookup, an entity page, name searches from the
commonest fragment to one that matches nothing (the worst case: the whole name column is read
once), a page of a draw's entities, the draws list, the monthly report and the /metrics
snapshot. Prints one JSON line per query. Results are written down in docs/public-pages.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core import db  # noqa: E402
from core.settings import Settings  # noqa: E402

ZONE = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 20, 2, 0, tzinfo=UTC)
DISTRICTS = ["市南区", "市北区", "李沧区", "崂山区", "城阳区", "黄岛区", "即墨区", "胶州市", "平度市", "莱西市"]
TRADES = ["海鲜", "餐饮", "食品", "贸易", "科技", "物流", "建材", "酒店", "医药", "服装", "五金", "家电"]
SUFFIXES = ["有限公司", "商行", "经营部", "股份有限公司", "餐馆"]
INSPECTIONS = 50_000
OUTBOX = 500_000


def uscc(n: int) -> str:
    return f"91370200{n:09d}X"


async def fill(n: int) -> None:
    rnd = random.Random(7)
    t = time.perf_counter()
    await db.conn().execute_query(
        "INSERT INTO department (code, name, level, division_code) VALUES ('SCJG', '市场监督管理局', 'city', '')"
    )
    await db.conn().execute_query(
        "INSERT INTO item (code, name, department_id, legal_basis, target_kinds, method, "
        "qualifications, content_hash) VALUES ('SCJG-SP-01', '食品经营许可情况检查', 1, '', "
        "'[]', '', '[]', '')"
    )

    def entities():
        for i in range(1, n + 1):
            name = f"青岛{rnd.choice(DISTRICTS)}{rnd.choice(TRADES)}{i}号{rnd.choice(SUFFIXES)}"
            if i == n:
                name = f"青岛独一无二{i}号有限公司"
            yield (
                uscc(i),
                name,
                "enterprise",
                "370202",
                f"青岛市测试路{i}号",
                "餐饮",
                "ABCDE"[i % 5],
                "+8613900000000",
                "active",
                "",
                NOW,
            )

    await db.bulk_insert(
        "entity",
        (
            "uscc",
            "name",
            "kind",
            "division_code",
            "address",
            "industry",
            "risk_class",
            "mobile",
            "status",
            "content_hash",
            "updated_at",
        ),
        entities(),
    )
    spec = json.dumps({"items": ["SCJG-SP-01"], "ratios": {"A": "0.03"}, "team": {"size": 2}})
    await db.conn().execute_query(
        f"INSERT INTO plan (code, name, departments, flight, spec, active, source, created_at, updated_at) "
        f"VALUES ('QD', '青岛市双随机抽查', '[\"SCJG\"]', FALSE, {db.placeholders(1)}, TRUE, '', "
        f"{db.placeholders(2, start=2)})",
        [spec, NOW, NOW],
    )
    await db.bulk_insert(
        "firing",
        ("draw_ref", "plan_id", "fire_at", "commitment", "params", "status", "announced_at"),
        [("QD/2026-12-01", 1, NOW, "0" * 64, {}, "drawn", NOW)],
    )
    await db.bulk_insert(
        "draw",
        (
            "draw_ref",
            "firing_id",
            "plan_id",
            "drawn_at",
            "beacon",
            "pool_digest",
            "inspectors_digest",
            "inspections_digest",
            "strata",
            "notes",
            "flight",
            "window_start",
            "window_end",
            "pool_size",
            "inspector_count",
            "inspection_count",
            "unstaffable_count",
        ),
        [
            (
                "QD/2026-12-01",
                1,
                1,
                NOW - timedelta(days=19),
                "",
                "0" * 64,
                "0" * 64,
                "0" * 64,
                {"A": {"pool": n, "ratio": "0.03", "drawn": INSPECTIONS}},
                [],
                False,
                NOW,
                NOW,
                n,
                0,
                INSPECTIONS,
                0,
            )
        ],
    )
    chosen = rnd.sample(range(1, n + 1), min(INSPECTIONS, n))
    await db.bulk_insert(
        "inspection",
        ("draw_id", "no", "entity_id", "entity_key", "division", "stratum", "rank", "status", "unstaffable_reason"),
        (
            (1, k + 1, e, uscc(e), "370202", "ABCDE"[e % 5], "0" * 16, "done" if k % 5 == 0 else "staffed", "")
            for k, e in enumerate(chosen)
        ),
    )
    await db.bulk_insert(
        "department", ("code", "name", "level", "division_code"), [("X", "x", "city", "")], ignore_conflicts=True
    )
    await db.conn().execute_query("INSERT INTO unit (department_id, name, jurisdiction) VALUES (1, 'u', '3702')")
    await db.conn().execute_query(
        "INSERT INTO inspector (cert_no, name, department_id, unit_id, qualifications, expertise, status, "
        f"content_hash, updated_at) VALUES ('S1', '检查员', 1, 1, '[]', '', 'active', '', {db.placeholders(1)})",
        [NOW],
    )
    results = [(k + 1, "submitted", "summary", 0, 1, 1, NOW, NOW, NOW) for k in range(0, len(chosen), 5)]
    await db.bulk_insert(
        "result",
        (
            "inspection_id",
            "status",
            "step",
            "cursor",
            "created_by_id",
            "submitted_by_id",
            "submitted_at",
            "created_at",
            "updated_at",
        ),
        results,
    )
    await db.bulk_insert(
        "finding",
        ("result_id", "position", "item_code", "verdict", "note"),
        ((r + 1, 0, "SCJG-SP-01", "fail" if r % 3 == 0 else "pass", "") for r in range(len(results))),
    )
    await db.bulk_insert(
        "outbox",
        (
            "dedupe_key",
            "channel",
            "recipient_kind",
            "recipient_id",
            "template",
            "context",
            "locale",
            "status",
            "priority",
            "attempts",
            "next_attempt_at",
            "last_error",
            "created_at",
        ),
        (
            (
                f"b:{i}",
                "telegram",
                "inspector",
                1,
                "assignment.j2",
                {},
                "zh-CN",
                "sent" if i % 10 else "pending",
                0,
                1,
                NOW,
                "",
                NOW,
            )
            for i in range(OUTBOX)
        ),
    )
    print(json.dumps({"phase": "fill", "entities": n, "seconds": round(time.perf_counter() - t, 1)}), flush=True)


async def timed(label: str, repeat: int, fn) -> None:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = await fn()
        times.append(time.perf_counter() - t)
    print(
        json.dumps(
            {
                "query": label,
                "median_ms": round(statistics.median(times) * 1000, 1),
                "max_ms": round(max(times) * 1000, 1),
                "result": out,
            },
            ensure_ascii=False,
        ),
        flush=True,
    )


async def measure(n: int, repeat: int, data_dir: Path) -> None:
    from services import metrics, public, reports

    code = uscc(n // 2)
    await timed("entity by credit code", repeat, lambda: _n(public.entity_by_code(code)))
    some = (await db.conn().execute_query_dict("SELECT entity_key FROM inspection WHERE no = 1"))[0]["entity_key"]
    await timed(
        "entity page (inspections + findings)",
        repeat,
        lambda: _rows(public.entity_page(some, NOW), lambda p: p.inspections.rows),
    )
    for q in ("青岛", "海鲜", "崂山区海鲜", "独一无二", "不存在的名字"):
        await timed(f"name search {q!r}", repeat, lambda q=q: _rows(public.search_entities(q), lambda p: p.rows))
    await timed(
        "draw page, entities 501-550",
        repeat,
        lambda: _rows(public.draw_page("QD/2026-12-01", NOW, 11), lambda p: p.inspections.rows),
    )
    await timed("draws list", repeat, lambda: _rows(public.draws(NOW), lambda p: p.rows))
    await timed("home", repeat, lambda: _n(public.home(NOW)))
    await timed(
        "monthly report (public, no chart)",
        repeat,
        lambda: _n(
            reports.monthly_report("2026-12", None, NOW, data_dir=data_dir, zone=ZONE, personal=False, chart=False)
        ),
    )
    await timed("/metrics snapshot (500k outbox rows)", repeat, lambda: _n(metrics.snapshot(NOW)))


async def _n(coro) -> int:
    return int(bool(await coro))


async def _rows(coro, get) -> int:
    return len(get(await coro))


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entities", type=int, default=1_081_742)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_public_"))
    settings = Settings(data_dir=tmp, database_url=args.database_url or f"sqlite://{tmp / 'bench.sqlite3'}")
    async with db.opened(settings):
        print(json.dumps({"dialect": db.dialect()}), flush=True)
        await fill(args.entities)
        if db.dialect() == "postgres":
            await db.conn().execute_script("ANALYZE")
        await measure(args.entities, args.repeat, tmp)


if __name__ == "__main__":
    asyncio.run(main())
