-- name: ScheduleHubInsert :exec
INSERT INTO hub_backup_schedule (schedule_hk, schedule_bk, tenant_hk, record_source)
VALUES (hash_key(sqlc.arg(schedule_bk)::uuid::text), @schedule_bk::uuid, @tenant_hk, @record_source::text);

-- name: ScheduleDefinitionInsert :exec
-- ScheduleDefinitionInsert appends one version of a schedule; hash_diff is the hash of the
-- definition's fields. The unique (schedule_hk, version) refuses a concurrent writer that read
-- the same previous version.
INSERT INTO sat_backup_schedule_definition (
    schedule_hk, hash_diff, tenant_hk, version, change, schedule_name, backup_type, backup_scope,
    schema_name, cron_expression, timezone, retention_period, window_start, window_end,
    notify_on_success, notify_on_failure, recipients, enabled, is_deleted, changed_by, record_source)
SELECT hash_key(v.schedule_bk::text), hash_key(v::text), @tenant_hk, @version::integer, @change::text,
       v.schedule_name, v.backup_type, v.backup_scope, v.schema_name, v.cron_expression, v.timezone,
       v.retention_period, v.window_start, v.window_end, v.notify_on_success, v.notify_on_failure,
       v.recipients, v.enabled, v.is_deleted, @changed_by::text, @record_source::text
FROM (SELECT sqlc.arg(schedule_bk)::uuid AS schedule_bk, @schedule_name::text AS schedule_name,
             @backup_type::text AS backup_type, @backup_scope::text AS backup_scope,
             sqlc.narg(schema_name)::text AS schema_name, @cron_expression::text AS cron_expression,
             @timezone::text AS timezone, @retention_period::text AS retention_period,
             sqlc.narg(window_start)::text AS window_start, sqlc.narg(window_end)::text AS window_end,
             @notify_on_success::boolean AS notify_on_success, @notify_on_failure::boolean AS notify_on_failure,
             @recipients::text[] AS recipients, @enabled::boolean AS enabled, @is_deleted::boolean AS is_deleted) v;

-- name: ScheduleGetByID :one
SELECT * FROM current_backup_schedule
WHERE tenant_hk = @tenant_hk AND schedule_bk = @schedule_bk::uuid AND NOT is_deleted;

-- name: ScheduleList :many
SELECT * FROM current_backup_schedule
WHERE tenant_hk = @tenant_hk AND NOT is_deleted
  AND (sqlc.narg(enabled)::boolean IS NULL OR enabled = sqlc.narg(enabled)::boolean)
ORDER BY created_at, schedule_bk
LIMIT @page_size::integer OFFSET @page_offset::integer;

-- name: ScheduleCount :one
SELECT count(*) FROM current_backup_schedule
WHERE tenant_hk = @tenant_hk AND NOT is_deleted
  AND (sqlc.narg(enabled)::boolean IS NULL OR enabled = sqlc.narg(enabled)::boolean);

-- name: ScheduleHistory :many
SELECT s.version, s.change, s.load_date AS changed_at, s.changed_by, s.schedule_name, s.backup_type,
       s.backup_scope, s.schema_name, s.cron_expression, s.timezone, s.retention_period, s.window_start,
       s.window_end, s.notify_on_success, s.notify_on_failure, s.recipients, s.enabled
FROM hub_backup_schedule h
JOIN sat_backup_schedule_definition s USING (schedule_hk)
WHERE h.tenant_hk = @tenant_hk AND h.schedule_bk = @schedule_bk::uuid
ORDER BY s.version;
