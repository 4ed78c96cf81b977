-- name: BackupHubInsert :exec
INSERT INTO hub_backup_execution (backup_hk, backup_bk, tenant_hk, record_source)
VALUES (hash_key(sqlc.arg(backup_bk)::uuid::text), sqlc.arg(backup_bk)::uuid, @tenant_hk, @record_source::text);

-- name: BackupRequestInsert :exec
INSERT INTO sat_backup_execution_request (
    backup_hk, hash_diff, tenant_hk, backup_type, backup_scope, schema_name, compression_enabled,
    verify_backup, storage_location, retention_period, priority, tags, requested_by, record_source)
SELECT hash_key(v.backup_bk::text), hash_key(v::text), @tenant_hk, v.backup_type, v.backup_scope, v.schema_name,
       v.compression_enabled, v.verify_backup, v.storage_location, v.retention_period, v.priority, v.tags,
       v.requested_by, @record_source::text
FROM (SELECT sqlc.arg(backup_bk)::uuid AS backup_bk, @backup_type::text AS backup_type,
             @backup_scope::text AS backup_scope, sqlc.narg(schema_name)::text AS schema_name,
             @compression_enabled::boolean AS compression_enabled, @verify_backup::boolean AS verify_backup,
             @storage_location::text AS storage_location, @retention_period::text AS retention_period,
             @priority::integer AS priority, @tags::jsonb AS tags, @requested_by::text AS requested_by) v;

-- name: BackupStatusInsert :exec
-- BackupStatusInsert appends a status row; the pit_backup_execution trigger follows it.
INSERT INTO sat_backup_execution_status (
    backup_hk, tenant_hk, status, phase, attempt, started_at, completed_at, expires_at, size_bytes,
    stored_size_bytes, start_lsn, end_lsn, row_count, location, duration_ms, error_message, record_source)
VALUES (hash_key(sqlc.arg(backup_bk)::uuid::text), @tenant_hk, @status::text, sqlc.narg(phase)::text,
        @attempt::integer, sqlc.narg(started_at)::timestamptz, sqlc.narg(completed_at)::timestamptz,
        sqlc.narg(expires_at)::timestamptz, sqlc.narg(size_bytes)::bigint, sqlc.narg(stored_size_bytes)::bigint,
        sqlc.narg(start_lsn)::text, sqlc.narg(end_lsn)::text, sqlc.narg(row_count)::bigint,
        sqlc.narg(location)::text, sqlc.narg(duration_ms)::bigint, sqlc.narg(error_message)::text,
        @record_source::text);

-- name: BackupParentLinkInsert :exec
INSERT INTO link_backup_parent (link_hk, backup_hk, parent_backup_hk, tenant_hk, record_source)
VALUES (hash_key(sqlc.arg(backup_bk)::uuid::text, sqlc.arg(parent_bk)::uuid::text),
        hash_key(sqlc.arg(backup_bk)::uuid::text), hash_key(sqlc.arg(parent_bk)::uuid::text),
        @tenant_hk, @record_source::text)
ON CONFLICT DO NOTHING;

-- name: BackupScheduleLinkInsert :exec
INSERT INTO link_backup_schedule (link_hk, backup_hk, schedule_hk, tenant_hk, record_source)
VALUES (hash_key(sqlc.arg(backup_bk)::uuid::text, sqlc.arg(schedule_bk)::uuid::text),
        hash_key(sqlc.arg(backup_bk)::uuid::text), hash_key(sqlc.arg(schedule_bk)::uuid::text),
        @tenant_hk, @record_source::text)
ON CONFLICT DO NOTHING;

-- name: BackupGetByID :one
SELECT * FROM current_backup_execution WHERE tenant_hk = @tenant_hk AND backup_bk = @backup_bk::uuid;

-- name: BackupList :many
-- BackupList reads one page of the point-in-time table (an index range scan) and joins the
-- current rows of only that page.
SELECT c.* FROM (
    SELECT p.backup_hk FROM pit_backup_execution p
    WHERE p.tenant_hk = @tenant_hk
      AND (sqlc.narg(backup_type)::text IS NULL OR p.backup_type = sqlc.narg(backup_type)::text)
      AND (sqlc.narg(status)::text IS NULL OR p.status = sqlc.narg(status)::text)
      AND (sqlc.narg(start_date)::timestamptz IS NULL OR p.created_at >= sqlc.narg(start_date)::timestamptz)
      AND (sqlc.narg(end_date)::timestamptz IS NULL OR p.created_at <= sqlc.narg(end_date)::timestamptz)
    ORDER BY p.created_at DESC, p.backup_bk DESC
    LIMIT @page_size::integer OFFSET @page_offset::integer
) page
JOIN current_backup_execution c ON c.backup_hk = page.backup_hk
ORDER BY c.created_at DESC, c.backup_bk DESC;

-- name: BackupCount :one
SELECT count(*) FROM pit_backup_execution p
WHERE p.tenant_hk = @tenant_hk
  AND (sqlc.narg(backup_type)::text IS NULL OR p.backup_type = sqlc.narg(backup_type)::text)
  AND (sqlc.narg(status)::text IS NULL OR p.status = sqlc.narg(status)::text)
  AND (sqlc.narg(start_date)::timestamptz IS NULL OR p.created_at >= sqlc.narg(start_date)::timestamptz)
  AND (sqlc.narg(end_date)::timestamptz IS NULL OR p.created_at <= sqlc.narg(end_date)::timestamptz);

-- name: BackupLatestUsable :one
-- BackupLatestUsable is the newest completed (or verified) backup of a chain key, the parent of
-- the next INCREMENTAL (any type) or DIFFERENTIAL (full_only).
SELECT c.* FROM pit_backup_execution p
JOIN current_backup_execution c ON c.backup_hk = p.backup_hk
WHERE p.tenant_hk = @tenant_hk AND p.backup_scope = @backup_scope::text
  AND p.schema_name IS NOT DISTINCT FROM sqlc.narg(schema_name)::text
  AND p.status IN ('COMPLETED', 'VERIFIED')
  AND (NOT @full_only::boolean OR p.backup_type = 'FULL')
  AND p.backup_bk <> sqlc.arg(exclude_bk)::uuid
ORDER BY c.completed_at DESC NULLS LAST
LIMIT 1;

-- name: BackupChain :many
-- BackupChain is a backup and its ancestors, the FULL first.
WITH RECURSIVE chain AS (
    SELECT l.backup_hk, l.parent_backup_hk, 0 AS depth
    FROM hub_backup_execution h LEFT JOIN link_backup_parent l ON l.backup_hk = h.backup_hk
    WHERE h.tenant_hk = @tenant_hk AND h.backup_bk = @backup_bk::uuid
    UNION ALL
    SELECT l.backup_hk, l.parent_backup_hk, chain.depth + 1
    FROM chain JOIN link_backup_parent l ON l.backup_hk = chain.parent_backup_hk
)
SELECT c.* FROM current_backup_execution c
WHERE c.tenant_hk = @tenant_hk
  AND (c.backup_bk = @backup_bk::uuid OR c.backup_hk IN (SELECT parent_backup_hk FROM chain))
ORDER BY c.created_at;

-- name: BackupProgressUpsert :exec
INSERT INTO backup_progress (backup_hk, tenant_hk, phase, bytes_done, bytes_total, updated_at)
VALUES (hash_key(sqlc.arg(backup_bk)::uuid::text), @tenant_hk, @phase::text, @bytes_done::bigint,
        @bytes_total::bigint, clock_timestamp())
ON CONFLICT (backup_hk) DO UPDATE SET phase = EXCLUDED.phase, bytes_done = EXCLUDED.bytes_done,
    bytes_total = EXCLUDED.bytes_total, updated_at = EXCLUDED.updated_at;

-- name: BackupProgressGet :one
SELECT phase, bytes_done, bytes_total, updated_at FROM backup_progress
WHERE tenant_hk = @tenant_hk AND backup_hk = hash_key(sqlc.arg(backup_bk)::uuid::text);

-- name: BackupVerificationInsert :exec
INSERT INTO sat_backup_execution_verification (backup_hk, tenant_hk, status, objects_checked, bytes_checked, findings, record_source)
VALUES (hash_key(sqlc.arg(backup_bk)::uuid::text), @tenant_hk, @status::text, @objects_checked::integer,
        @bytes_checked::bigint, @findings::jsonb, @record_source::text);

-- name: BackupVerificationLatest :one
SELECT status, objects_checked, bytes_checked, findings, load_date FROM sat_backup_execution_verification
WHERE tenant_hk = @tenant_hk AND backup_hk = hash_key(sqlc.arg(backup_bk)::uuid::text)
ORDER BY load_date DESC LIMIT 1;

-- name: BackupExpiredUnneeded :many
-- BackupExpiredUnneeded lists backups past their expiry that no retained backup depends on,
-- directly or through a chain: those whose data the retention job may delete. Across tenants.
WITH RECURSIVE retained AS (
    SELECT p.backup_hk FROM pit_backup_execution p
    JOIN current_backup_execution c ON c.backup_hk = p.backup_hk
    WHERE p.status IN ('COMPLETED', 'VERIFIED', 'VERIFY_FAILED', 'QUEUED', 'RUNNING')
      AND (c.expires_at IS NULL OR c.expires_at > @now::timestamptz)
), needed AS (
    SELECT l.parent_backup_hk AS backup_hk FROM link_backup_parent l JOIN retained r ON r.backup_hk = l.backup_hk
    UNION
    SELECT l.parent_backup_hk FROM link_backup_parent l JOIN needed n ON n.backup_hk = l.backup_hk
)
SELECT c.* FROM current_backup_execution c
JOIN pit_backup_execution p ON p.backup_hk = c.backup_hk
WHERE p.status IN ('COMPLETED', 'VERIFIED', 'VERIFY_FAILED')
  AND c.expires_at IS NOT NULL AND c.expires_at <= @now::timestamptz
  AND c.backup_hk NOT IN (SELECT backup_hk FROM needed);

-- name: BackupLockTry :one
-- BackupLockTry takes a session advisory lock for one backup: held by the process running it,
-- released when that process's connection ends, so a killed worker's backup can be taken over.
SELECT pg_try_advisory_lock(hashtextextended('backup:' || sqlc.arg(backup_bk)::uuid::text, 0));

-- name: BackupLockRelease :exec
SELECT pg_advisory_unlock(hashtextextended('backup:' || sqlc.arg(backup_bk)::uuid::text, 0));

-- name: BackupStaleRunning :many
-- BackupStaleRunning lists RUNNING backups whose progress has not moved since before: their
-- worker is likely dead (a live one reports every second). Across tenants.
SELECT c.backup_bk, t.tenant_bk, c.attempt
FROM pit_backup_execution p
JOIN current_backup_execution c ON c.backup_hk = p.backup_hk
JOIN hub_tenant t ON t.tenant_hk = p.tenant_hk
LEFT JOIN backup_progress g ON g.backup_hk = p.backup_hk
WHERE p.status = 'RUNNING' AND coalesce(g.updated_at, c.status_date) < @before::timestamptz;

-- name: BackupCountByKind :one
-- BackupCountByKind is BackupCount without date filters, read from the kept counts.
SELECT coalesce(sum(n), 0)::bigint FROM pit_backup_count
WHERE tenant_hk = @tenant_hk
  AND (sqlc.narg(backup_type)::text IS NULL OR backup_type = sqlc.narg(backup_type)::text)
  AND (sqlc.narg(status)::text IS NULL OR status = sqlc.narg(status)::text);
