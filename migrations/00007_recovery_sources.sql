-- +goose Up
-- The backups a recovery restores from are part of its request. A tenant's database recovery
-- restores from the platform's SYSTEM backups, which row-level security hides from that
-- tenant, so the view cannot read them through link_recovery_backup's hub join.
ALTER TABLE sat_recovery_operation_request ADD COLUMN source_backups uuid[] NOT NULL DEFAULT '{}';
UPDATE sat_recovery_operation_request r SET source_backups = coalesce((
    SELECT array_agg(b.backup_bk ORDER BY b.load_date)
    FROM link_recovery_backup l JOIN hub_backup_execution b ON b.backup_hk = l.backup_hk
    WHERE l.recovery_hk = r.recovery_hk), '{}');

CREATE OR REPLACE VIEW current_recovery_operation WITH (security_invoker = true) AS
SELECT h.recovery_hk, h.recovery_bk, h.tenant_hk, h.load_date AS created_at,
       r.target_timestamp, r.recovery_target, r.approval_required, r.requested_by,
       s.status, s.replay_lsn, s.replay_timestamp, s.connection_string, s.rto_seconds, s.error_message,
       s.data_dir, s.load_date AS status_date,
       a.decision, a.decided_by, a.notes AS decision_notes, a.load_date AS decided_at,
       r.source_backups
FROM hub_recovery_operation h
JOIN sat_recovery_operation_request r ON r.recovery_hk = h.recovery_hk
CROSS JOIN LATERAL (
    SELECT * FROM sat_recovery_operation_status st WHERE st.recovery_hk = h.recovery_hk
    ORDER BY st.load_date DESC LIMIT 1
) s
LEFT JOIN LATERAL (
    SELECT * FROM sat_recovery_operation_approval ap WHERE ap.recovery_hk = h.recovery_hk
    ORDER BY ap.load_date DESC LIMIT 1
) a ON true;

-- +goose Down
CREATE OR REPLACE VIEW current_recovery_operation WITH (security_invoker = true) AS
SELECT h.recovery_hk, h.recovery_bk, h.tenant_hk, h.load_date AS created_at,
       r.target_timestamp, r.recovery_target, r.approval_required, r.requested_by,
       s.status, s.replay_lsn, s.replay_timestamp, s.connection_string, s.rto_seconds, s.error_message,
       s.data_dir, s.load_date AS status_date,
       a.decision, a.decided_by, a.notes AS decision_notes, a.load_date AS decided_at,
       coalesce((SELECT array_agg(b.backup_bk ORDER BY b.load_date)
                 FROM link_recovery_backup l JOIN hub_backup_execution b ON b.backup_hk = l.backup_hk
                 WHERE l.recovery_hk = h.recovery_hk), '{}')::uuid[] AS source_backups
FROM hub_recovery_operation h
JOIN sat_recovery_operation_request r ON r.recovery_hk = h.recovery_hk
CROSS JOIN LATERAL (
    SELECT * FROM sat_recovery_operation_status st WHERE st.recovery_hk = h.recovery_hk
    ORDER BY st.load_date DESC LIMIT 1
) s
LEFT JOIN LATERAL (
    SELECT * FROM sat_recovery_operation_approval ap WHERE ap.recovery_hk = h.recovery_hk
    ORDER BY ap.load_date DESC LIMIT 1
) a ON true;
ALTER TABLE sat_recovery_operation_request DROP COLUMN source_backups;
