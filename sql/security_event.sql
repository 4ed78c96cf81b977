-- name: SecurityEventInsert :exec
INSERT INTO security_event (tenant_bk, kind, severity, subject, source_addr, operation, detail, request_id)
VALUES (sqlc.narg(tenant_bk), @kind, @severity, sqlc.narg(subject), sqlc.narg(source_addr),
        sqlc.narg(operation), @detail, sqlc.narg(request_id));

-- name: SecurityEventListByTenant :many
SELECT * FROM security_event WHERE tenant_bk = @tenant_bk ORDER BY occurred_at DESC LIMIT @page_size;
