-- name: RecoveryHubInsert :exec
INSERT INTO hub_recovery_operation (recovery_hk, recovery_bk, tenant_hk, record_source)
VALUES (hash_key(sqlc.arg(recovery_bk)::uuid::text), sqlc.arg(recovery_bk)::uuid, @tenant_hk, @record_source::text);

-- name: RecoveryRequestInsert :exec
INSERT INTO sat_recovery_operation_request (recovery_hk, hash_diff, tenant_hk, target_timestamp, recovery_target,
    approval_required, requested_by, source_backups, recovery_method, restored_to, record_source)
SELECT hash_key(v.recovery_bk::text), hash_key(v::text), @tenant_hk, v.target_timestamp, v.recovery_target,
       v.approval_required, v.requested_by, v.source_backups, v.recovery_method, v.restored_to, @record_source::text
FROM (SELECT sqlc.arg(recovery_bk)::uuid AS recovery_bk, @target_timestamp::timestamptz AS target_timestamp,
             @recovery_target::text AS recovery_target, @approval_required::boolean AS approval_required,
             @requested_by::text AS requested_by, @source_backups::uuid[] AS source_backups,
             @recovery_method::text AS recovery_method, @restored_to::timestamptz AS restored_to) v;

-- name: RecoveryStatusInsert :exec
INSERT INTO sat_recovery_operation_status (recovery_hk, tenant_hk, status, replay_lsn, replay_timestamp,
    connection_string, rto_seconds, error_message, data_dir, record_source)
VALUES (hash_key(sqlc.arg(recovery_bk)::uuid::text), @tenant_hk, @status::text, sqlc.narg(replay_lsn)::text,
        sqlc.narg(replay_timestamp)::timestamptz, sqlc.narg(connection_string)::text, sqlc.narg(rto_seconds)::float8,
        sqlc.narg(error_message)::text, sqlc.narg(data_dir)::text, @record_source::text);

-- name: RecoveryDecisionInsert :exec
INSERT INTO sat_recovery_operation_approval (recovery_hk, tenant_hk, decision, decided_by, notes, record_source)
VALUES (hash_key(sqlc.arg(recovery_bk)::uuid::text), @tenant_hk, @decision::text, @decided_by::text,
        sqlc.narg(notes)::text, @record_source::text);

-- name: RecoveryBackupLinkInsert :exec
INSERT INTO link_recovery_backup (link_hk, recovery_hk, backup_hk, tenant_hk, record_source)
VALUES (hash_key(sqlc.arg(recovery_bk)::uuid::text, sqlc.arg(backup_bk)::uuid::text),
        hash_key(sqlc.arg(recovery_bk)::uuid::text), hash_key(sqlc.arg(backup_bk)::uuid::text),
        @tenant_hk, @record_source::text)
ON CONFLICT DO NOTHING;

-- name: RecoveryGetByID :one
SELECT * FROM current_recovery_operation WHERE tenant_hk = @tenant_hk AND recovery_bk = @recovery_bk::uuid;

-- name: RecoveryDecisionLock :exec
-- RecoveryDecisionLock serialises decisions on one recovery until the transaction ends, so two
-- approvers cannot both win.
SELECT pg_advisory_xact_lock(hashtextextended('recovery:' || sqlc.arg(recovery_bk)::uuid::text, 0));

-- name: RecoveryPendingOlderThan :many
-- RecoveryPendingOlderThan lists requests still waiting for approval since before a time. Across tenants.
SELECT c.recovery_bk, c.tenant_hk FROM current_recovery_operation c
WHERE c.status = 'PENDING_APPROVAL' AND c.created_at < @before::timestamptz;

-- name: BackupSystemBefore :one
-- BackupSystemBefore is the newest restorable SYSTEM backup that completed at or before a time.
SELECT c.* FROM pit_backup_execution p
JOIN current_backup_execution c ON c.backup_hk = p.backup_hk
WHERE p.tenant_hk = @tenant_hk AND p.backup_scope = 'SYSTEM' AND p.status IN ('COMPLETED', 'VERIFIED')
  AND c.completed_at <= @before::timestamptz
ORDER BY c.completed_at DESC
LIMIT 1;

-- name: BackupTenantBefore :one
-- BackupTenantBefore is the tenant's newest restorable TENANT backup that completed at or before
-- a time: the logical backup a database recovery without a SYSTEM backup restores.
SELECT c.* FROM pit_backup_execution p
JOIN current_backup_execution c ON c.backup_hk = p.backup_hk
WHERE p.tenant_hk = @tenant_hk AND p.backup_scope = 'TENANT' AND p.status IN ('COMPLETED', 'VERIFIED')
  AND c.completed_at <= @before::timestamptz
ORDER BY c.completed_at DESC
LIMIT 1;
