-- +goose Up
-- A recovery either replays WAL on SYSTEM backups to its target (WAL_REPLAY) or loads a tenant's
-- logical backup chain (LOGICAL_BACKUP), which can only restore the moment of the backup's
-- snapshot: restored_to records that moment, so the answer never claims the target itself.
ALTER TABLE sat_recovery_operation_request
    ADD COLUMN recovery_method text NOT NULL DEFAULT 'WAL_REPLAY'
        CHECK (recovery_method IN ('WAL_REPLAY', 'LOGICAL_BACKUP')),
    ADD COLUMN restored_to timestamptz;
UPDATE sat_recovery_operation_request SET restored_to = target_timestamp WHERE restored_to IS NULL;

CREATE OR REPLACE VIEW current_recovery_operation WITH (security_invoker = true) AS
SELECT h.recovery_hk, h.recovery_bk, h.tenant_hk, h.load_date AS created_at,
       r.target_timestamp, r.recovery_target, r.approval_required, r.requested_by,
       s.status, s.replay_lsn, s.replay_timestamp, s.connection_string, s.rto_seconds, s.error_message,
       s.data_dir, s.load_date AS status_date,
       a.decision, a.decided_by, a.notes AS decision_notes, a.load_date AS decided_at,
       r.source_backups, r.recovery_method, r.restored_to
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
DROP VIEW current_recovery_operation;
CREATE VIEW current_recovery_operation WITH (security_invoker = true) AS
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
GRANT SELECT ON current_recovery_operation TO readiness_app;
ALTER TABLE sat_recovery_operation_request DROP COLUMN recovery_method, DROP COLUMN restored_to;
