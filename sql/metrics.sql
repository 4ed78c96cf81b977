-- name: MetricsBackupCounts :many
-- MetricsBackupCounts counts a tenant's backups created in [since, until] by status and type.
SELECT status, backup_type, count(*) AS backups
FROM pit_backup_execution
WHERE tenant_hk = @tenant_hk AND created_at >= @since::timestamptz AND created_at <= @until::timestamptz
GROUP BY status, backup_type;

-- name: MetricsBackupFigures :one
-- MetricsBackupFigures aggregates the durations and sizes of a tenant's done backups (whose run
-- completed: COMPLETED, VERIFIED, VERIFY_FAILED, and EXPIRED, which keeps its figures) created in
-- [since, until]. Averages and percentiles are 0 when timed or sized is 0.
SELECT count(duration_ms)::bigint AS timed,
       coalesce(avg(duration_ms), 0)::float8 AS duration_avg_ms,
       coalesce(percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms), 0)::float8 AS duration_p95_ms,
       coalesce(max(duration_ms), 0)::bigint AS duration_max_ms,
       count(size_bytes)::bigint AS sized,
       coalesce(sum(size_bytes), 0)::bigint AS size_bytes,
       coalesce(sum(stored_size_bytes), 0)::bigint AS stored_bytes,
       coalesce(sum(size_bytes) FILTER (WHERE duration_ms > 0), 0)::bigint AS throughput_bytes,
       coalesce(sum(duration_ms) FILTER (WHERE size_bytes IS NOT NULL AND duration_ms > 0), 0)::bigint AS throughput_ms
FROM pit_backup_execution
WHERE tenant_hk = @tenant_hk AND created_at >= @since::timestamptz AND created_at <= @until::timestamptz
  AND status IN ('COMPLETED', 'VERIFIED', 'VERIFY_FAILED', 'EXPIRED');

-- name: MetricsBackupStorage :one
-- MetricsBackupStorage is what a tenant's backups occupy in storage now: every backup whose data
-- is kept (not EXPIRED, not FAILED), whenever it was taken.
SELECT coalesce(sum(stored_size_bytes), 0)::bigint AS stored_bytes
FROM pit_backup_execution
WHERE tenant_hk = @tenant_hk AND status NOT IN ('EXPIRED', 'FAILED');

-- name: MetricsBackupNewest :many
-- MetricsBackupNewest is the newest good backup of each scope and type of a tenant (one index
-- probe each), whenever it was taken.
SELECT k.backup_scope::text AS backup_scope, k.backup_type::text AS backup_type, n.backup_bk, n.schema_name,
       n.completed_at::timestamptz AS completed_at
FROM (SELECT s AS backup_scope, t AS backup_type
      FROM unnest(@scopes::text[]) AS s CROSS JOIN unnest(@types::text[]) AS t) k
CROSS JOIN LATERAL (
    SELECT p.backup_bk, p.schema_name, p.completed_at FROM pit_backup_execution p
    WHERE p.tenant_hk = @tenant_hk AND p.backup_scope = k.backup_scope AND p.backup_type = k.backup_type
      AND p.status IN ('COMPLETED', 'VERIFIED') AND p.completed_at IS NOT NULL
    ORDER BY p.completed_at DESC
    LIMIT 1
) n;

-- name: MetricsScheduleFires :one
-- MetricsScheduleFires counts a tenant's schedule fires recorded in [since, until] by outcome; a
-- fire that queued its backup more than late_seconds after its due time is late. Failed fires are
-- those that could not queue their backup (outcome FAILED) and those whose backup failed (or
-- failed verification).
SELECT count(*) FILTER (WHERE f.outcome = 'ENQUEUED') AS enqueued,
       count(*) FILTER (WHERE f.outcome = 'SKIPPED_OUTSIDE_WINDOW') AS skipped_outside_window,
       count(*) FILTER (WHERE f.outcome = 'MISSED') AS missed,
       count(*) FILTER (WHERE f.outcome = 'ENQUEUED'
                          AND f.fired_at - f.due_at > make_interval(secs => @late_seconds::float8)) AS late,
       count(*) FILTER (WHERE f.outcome = 'FAILED') AS not_enqueued,
       count(*) FILTER (WHERE f.outcome = 'ENQUEUED' AND p.status IN ('FAILED', 'VERIFY_FAILED')) AS backup_failed
FROM backup_schedule_fire f
LEFT JOIN pit_backup_execution p ON p.backup_hk = hash_key(f.backup_bk::text)
WHERE f.tenant_hk = @tenant_hk AND f.fired_at >= @since::timestamptz AND f.fired_at <= @until::timestamptz;

-- name: MetricsSchedules :many
-- MetricsSchedules lists a tenant's schedules (not deleted) with what their fire times and
-- freshness need.
SELECT schedule_bk, schedule_name, cron_expression, timezone, window_start, window_end, enabled, created_at
FROM current_backup_schedule
WHERE tenant_hk = @tenant_hk AND NOT is_deleted
ORDER BY created_at, schedule_bk;

-- name: MetricsScheduleNewestGood :many
-- MetricsScheduleNewestGood is, for each schedule of a tenant that has one, its newest good
-- backup: the newest linked backup that is good (walking the links newest first).
SELECT h.schedule_bk, n.backup_bk, n.completed_at::timestamptz AS completed_at
FROM hub_backup_schedule h
CROSS JOIN LATERAL (
    SELECT p.backup_bk, p.completed_at FROM link_backup_schedule l
    JOIN pit_backup_execution p ON p.backup_hk = l.backup_hk
    WHERE l.schedule_hk = h.schedule_hk AND p.status IN ('COMPLETED', 'VERIFIED') AND p.completed_at IS NOT NULL
    ORDER BY l.load_date DESC
    LIMIT 1
) n
WHERE h.tenant_hk = @tenant_hk;

-- name: MetricsBackupFailures :many
-- MetricsBackupFailures groups a tenant's backups that failed (or failed verification) since
-- `since` by scope and schema: how many, and whether the newest of them is still the last
-- finished backup of its scope (no good backup was created after it).
WITH failed AS (
    SELECT f.backup_scope, f.schema_name, count(*) AS failures, max(f.created_at) AS newest_created_at
    FROM pit_backup_execution f
    WHERE f.tenant_hk = @tenant_hk AND f.status IN ('FAILED', 'VERIFY_FAILED') AND f.status_date >= @since::timestamptz
    GROUP BY f.backup_scope, f.schema_name
)
SELECT failed.backup_scope, failed.schema_name, failed.failures::bigint AS failures,
       NOT EXISTS (
           SELECT 1 FROM pit_backup_execution g
           WHERE g.tenant_hk = @tenant_hk AND g.status IN ('COMPLETED', 'VERIFIED')
             AND g.created_at > failed.newest_created_at AND g.backup_scope = failed.backup_scope
             AND g.schema_name IS NOT DISTINCT FROM failed.schema_name
       ) AS last_failed
FROM failed
ORDER BY failed.backup_scope, failed.schema_name;

-- name: MetricsTenantRegisteredAt :one
-- MetricsTenantRegisteredAt is when a tenant was registered: the start of its data, for the age
-- of its recovery point when it has no backup yet.
SELECT load_date FROM hub_tenant WHERE tenant_hk = @tenant_hk;

-- name: MetricsAllBackupTotals :many
-- MetricsAllBackupTotals aggregates every backup of every tenant by status, type and scope, for
-- the Prometheus scrape (as the service, outside any tenant): counts, durations and sizes of done
-- ones, stored bytes of kept ones, and the newest good one (newest_good_at is meaningful when
-- good > 0).
SELECT t.tenant_bk, p.status, p.backup_type, p.backup_scope, count(*) AS backups,
       count(p.duration_ms) FILTER (WHERE p.status IN ('COMPLETED', 'VERIFIED', 'VERIFY_FAILED', 'EXPIRED')) AS timed,
       coalesce(sum(p.duration_ms) FILTER (WHERE p.status IN ('COMPLETED', 'VERIFIED', 'VERIFY_FAILED', 'EXPIRED')), 0)::bigint AS duration_ms,
       coalesce(sum(p.size_bytes) FILTER (WHERE p.status IN ('COMPLETED', 'VERIFIED', 'VERIFY_FAILED', 'EXPIRED')), 0)::bigint AS size_bytes,
       coalesce(sum(p.stored_size_bytes) FILTER (WHERE p.status NOT IN ('EXPIRED', 'FAILED')), 0)::bigint AS stored_bytes,
       count(p.completed_at) FILTER (WHERE p.status IN ('COMPLETED', 'VERIFIED')) AS good,
       coalesce(max(p.completed_at) FILTER (WHERE p.status IN ('COMPLETED', 'VERIFIED')), 'epoch')::timestamptz AS newest_good_at
FROM pit_backup_execution p
JOIN hub_tenant t ON t.tenant_hk = p.tenant_hk
GROUP BY t.tenant_bk, p.status, p.backup_type, p.backup_scope;

-- name: MetricsAllRecent :many
-- MetricsAllRecent is, for every registered tenant (for the Prometheus scrape), the figures of
-- its backups created since `since`: the median and 95th percentile duration of done ones, and
-- how many finished and succeeded.
SELECT t.tenant_bk, r.timed, r.duration_p50_ms, r.duration_p95_ms, r.finished, r.succeeded
FROM hub_tenant t
CROSS JOIN LATERAL (
    SELECT count(p.duration_ms) FILTER (WHERE p.status IN ('COMPLETED', 'VERIFIED', 'VERIFY_FAILED', 'EXPIRED'))::bigint AS timed,
           coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY p.duration_ms)
               FILTER (WHERE p.status IN ('COMPLETED', 'VERIFIED', 'VERIFY_FAILED', 'EXPIRED')), 0)::float8 AS duration_p50_ms,
           coalesce(percentile_cont(0.95) WITHIN GROUP (ORDER BY p.duration_ms)
               FILTER (WHERE p.status IN ('COMPLETED', 'VERIFIED', 'VERIFY_FAILED', 'EXPIRED')), 0)::float8 AS duration_p95_ms,
           count(*) FILTER (WHERE p.status IN ('COMPLETED', 'VERIFIED', 'FAILED', 'VERIFY_FAILED'))::bigint AS finished,
           count(*) FILTER (WHERE p.status IN ('COMPLETED', 'VERIFIED'))::bigint AS succeeded
    FROM pit_backup_execution p
    WHERE p.tenant_hk = t.tenant_hk AND p.created_at >= @since::timestamptz
) r
ORDER BY t.tenant_bk;

-- name: MetricsAllScheduleFires :many
-- MetricsAllScheduleFires counts every tenant's missed (MISSED or SKIPPED_OUTSIDE_WINDOW) and
-- late schedule fires, ever.
SELECT t.tenant_bk,
       count(*) FILTER (WHERE f.outcome IN ('MISSED', 'SKIPPED_OUTSIDE_WINDOW')) AS missed,
       count(*) FILTER (WHERE f.outcome = 'ENQUEUED'
                          AND f.fired_at - f.due_at > make_interval(secs => @late_seconds::float8)) AS late
FROM backup_schedule_fire f
JOIN hub_tenant t ON t.tenant_hk = f.tenant_hk
GROUP BY t.tenant_bk;
