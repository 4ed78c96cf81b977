-- name: AuditChainLock :exec
-- AuditChainLock serialises writers of the audit chain until the transaction ends.
SELECT pg_advisory_xact_lock(7283190455);

-- name: AuditLast :one
SELECT seq, record_hash FROM audit_log ORDER BY seq DESC LIMIT 1;

-- name: AuditInsert :exec
INSERT INTO audit_log (seq, occurred_at, tenant_bk, subject, operation, method, path, resource_id,
                       outcome, request_id, body, prev_hash, record_hash)
VALUES (@seq, @occurred_at, sqlc.narg(tenant_bk), sqlc.narg(subject), @operation, @method, @path,
        sqlc.narg(resource_id), @outcome, @request_id, @body, @prev_hash, @record_hash);

-- name: AuditList :many
-- AuditList reads the chain in order, a page at a time, for verification.
SELECT * FROM audit_log WHERE seq > @after_seq ORDER BY seq LIMIT @page_size;
