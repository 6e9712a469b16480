-- The monthly report's deadline figures on PostgreSQL: a join of the task messages' outbox rows
-- against a correlated EXISTS (services/reports.py, _deadlines). Synthetic tables in their own
-- schema: 100,000 assignments with deadlines in December 2026 (20,000 in its first six days), their
-- task messages (70 % sent) and 900,000 other outbox rows.
--
--     psql "$DATABASE_URL" -q -f benchmarks/report_deadlines.sql
--
-- Figures (2 cores, PostgreSQL 15, jit off): docs/public-pages.md, "The monthly report".
DROP SCHEMA IF EXISTS report_deadlines_bench CASCADE;
CREATE SCHEMA report_deadlines_bench;
SET search_path = report_deadlines_bench;
CREATE TABLE draw (id int primary key, plan_id int, drawn_at timestamptz);
CREATE TABLE assignment (id bigserial primary key, draw_id int, inspector_id int, deadline timestamptz, responded_at timestamptz, status varchar(16), created_at timestamptz);
CREATE TABLE outbox (id bigserial primary key, dedupe_key varchar(200) unique, status varchar(16), sent_at timestamptz);
CREATE INDEX ON assignment (deadline);
INSERT INTO draw SELECT g, g % 20, '2026-12-01' FROM generate_series(1, 200) g;
-- 100,000 assignments with deadlines in December (a city's month), 20% answered
INSERT INTO assignment (draw_id, inspector_id, deadline, responded_at, status, created_at)
SELECT 1 + g % 200, g % 26520, '2026-12-01'::timestamptz + (g % 28) * interval '1 day',
       CASE WHEN g % 5 = 0 THEN '2026-12-01'::timestamptz + (g % 28) * interval '1 day' - interval '1 hour' END,
       'sent', '2026-12-01' FROM generate_series(1, 100000) g;
-- their task messages (70% sent) and 900,000 other outbox rows
INSERT INTO outbox (dedupe_key, status, sent_at)
SELECT 'asg:' || id || ':sent', CASE WHEN id % 10 < 7 THEN 'sent' ELSE 'no_address' END,
       CASE WHEN id % 10 < 7 THEN created_at END FROM assignment;
INSERT INTO outbox (dedupe_key, status, sent_at) SELECT 'other:' || g, 'sent', '2026-12-01' FROM generate_series(1, 900000) g;
ANALYZE;
SET jit = off;
\timing on
-- joined: PostgreSQL hashes the whole outbox
PREPARE joined AS SELECT COUNT(*) AS due, SUM(CASE WHEN o.id IS NOT NULL THEN 1 ELSE 0 END) AS told FROM assignment a JOIN draw d ON d.id = a.draw_id LEFT JOIN outbox o ON o.dedupe_key = 'asg:' || CAST(a.id AS TEXT) || ':sent' AND o.status IN ('sent', 'delivered') AND o.sent_at <= a.deadline WHERE a.deadline >= $1 AND a.deadline < $2 AND a.status <> 'cancelled';
-- looked up: one index probe per assignment of the month (what _deadlines does)
PREPARE looked_up AS SELECT EXISTS (SELECT 1 FROM outbox o WHERE o.dedupe_key = 'asg:' || CAST(a.id AS TEXT) || ':sent' AND o.status IN ('sent', 'delivered') AND o.sent_at <= a.deadline) AS told, (a.responded_at IS NULL OR a.responded_at > a.deadline) AS late, COUNT(*) AS n, COUNT(DISTINCT a.inspector_id) AS inspectors FROM assignment a JOIN draw d ON d.id = a.draw_id WHERE a.deadline >= $1 AND a.deadline < $2 AND a.status <> 'cancelled' GROUP BY 1, 2;
EXECUTE joined('2026-11-30 16:00+00', '2026-12-31 16:00+00');
EXECUTE joined('2026-11-30 16:00+00', '2026-12-31 16:00+00');
EXECUTE looked_up('2026-11-30 16:00+00', '2026-12-31 16:00+00');
EXECUTE looked_up('2026-11-30 16:00+00', '2026-12-31 16:00+00');
EXECUTE joined('2026-11-30 16:00+00', '2026-12-06 16:00+00');
EXECUTE joined('2026-11-30 16:00+00', '2026-12-06 16:00+00');
EXECUTE looked_up('2026-11-30 16:00+00', '2026-12-06 16:00+00');
EXECUTE looked_up('2026-11-30 16:00+00', '2026-12-06 16:00+00');
DROP SCHEMA report_deadlines_bench CASCADE;
