-- name: ScheduleRunnable :many
-- ScheduleRunnable lists every enabled schedule of every tenant, for the scheduler (which runs
-- as the service, outside any tenant).
SELECT c.*, t.tenant_bk FROM current_backup_schedule c
JOIN hub_tenant t ON t.tenant_hk = c.tenant_hk
WHERE c.enabled AND NOT c.is_deleted;

-- name: ScheduleFireClaim :one
-- ScheduleFireClaim records a fire; no row comes back when the due time was claimed already
-- (by another replica, or an earlier catch-up).
INSERT INTO backup_schedule_fire (schedule_hk, due_at, tenant_hk, outcome, backup_bk, detail)
VALUES (hash_key(sqlc.arg(schedule_bk)::uuid::text), @due_at::timestamptz, @tenant_hk, @outcome::text,
        sqlc.narg(backup_bk)::uuid, sqlc.narg(detail)::text)
ON CONFLICT DO NOTHING
RETURNING due_at;

-- name: ScheduleFireLatest :one
-- ScheduleFireLatest is the newest due time a schedule has a fire row for (the epoch if none).
SELECT coalesce(max(due_at), 'epoch'::timestamptz)::timestamptz AS due_at FROM backup_schedule_fire
WHERE schedule_hk = hash_key(sqlc.arg(schedule_bk)::uuid::text);

-- name: BackupScheduleOf :one
-- BackupScheduleOf is the schedule that enqueued a backup, with its notification settings.
SELECT c.schedule_bk, c.schedule_name, c.notify_on_success, c.notify_on_failure, c.recipients
FROM link_backup_schedule l
JOIN hub_backup_schedule h ON h.schedule_hk = l.schedule_hk
JOIN current_backup_schedule c ON c.schedule_bk = h.schedule_bk
WHERE l.backup_hk = hash_key(sqlc.arg(backup_bk)::uuid::text) AND l.tenant_hk = @tenant_hk;
