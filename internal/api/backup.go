package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/google/uuid"
	openapi_types "github.com/oapi-codegen/runtime/types"

	oapi "github.com/onevault/readiness/gen/api"
	"github.com/onevault/readiness/internal/audit"
	"github.com/onevault/readiness/internal/auth"
	"github.com/onevault/readiness/internal/backup"
	"github.com/onevault/readiness/internal/retention"
	"github.com/onevault/readiness/internal/storage"
)

// CreateBackup records a backup and queues it, answering 202 with its id and status QUEUED.
func (h *Handlers) CreateBackup(ctx context.Context, req oapi.CreateBackupRequestObject) (oapi.CreateBackupResponseObject, error) {
	t, err := tenant(ctx)
	if err != nil {
		return nil, err
	}
	b := req.Body
	r := backup.Request{Type: string(b.BackupType), Scope: string(b.BackupScope), Compression: true,
		Priority: 5, RequestedBy: subject(ctx)}
	if b.SchemaName != nil {
		r.SchemaName = *b.SchemaName
	}
	if b.CompressionEnabled != nil {
		r.Compression = *b.CompressionEnabled
	}
	if b.VerifyBackup != nil {
		r.Verify = *b.VerifyBackup
	}
	if b.StorageLocation != nil {
		r.Location = *b.StorageLocation
	}
	if b.RetentionPeriod != nil {
		if _, err := retention.ParsePeriod(*b.RetentionPeriod); err != nil {
			return nil, BadRequest("invalid retentionPeriod", Detail{Field: "retentionPeriod", Message: err.Error()})
		}
		r.Retention = *b.RetentionPeriod
	}
	if b.Priority != nil {
		r.Priority = *b.Priority
	}
	if b.Tags != nil {
		r.Tags = *b.Tags
	}
	if r.Scope == backup.ScopeSystem {
		if p, ok := auth.PrincipalFrom(ctx); !ok || !p.HasScope(auth.ScopeSystemBackup) {
			return nil, &Error{Status: http.StatusForbidden, Code: CodeForbidden,
				Message: "backupScope SYSTEM needs the platform_admin role"}
		}
	}
	e, err := h.backups.Create(ctx, t, r)
	if err != nil {
		return nil, backupError(err)
	}
	audit.SetResourceID(ctx, e.BackupBk.String())
	return oapi.CreateBackup202JSONResponse{Success: true, Data: toExecution(e)}, nil
}

// GetBackupStatus answers a backup's state: while it runs its phase, bytes, percent,
// throughput and ETA; when done its sizes, duration, LSN range or rows, parent and verification.
func (h *Handlers) GetBackupStatus(ctx context.Context, req oapi.GetBackupStatusRequestObject) (oapi.GetBackupStatusResponseObject, error) {
	t, err := tenant(ctx)
	if err != nil {
		return nil, err
	}
	e, err := h.backups.Get(ctx, t.HK, uuid.UUID(req.BackupId))
	if err != nil {
		return nil, backupError(err)
	}
	return oapi.GetBackupStatus200JSONResponse{Success: true, Data: h.toStatus(e)}, nil
}

// ListBackups answers a page of the tenant's backups, newest first, filtered.
func (h *Handlers) ListBackups(ctx context.Context, req oapi.ListBackupsRequestObject) (oapi.ListBackupsResponseObject, error) {
	t, err := tenant(ctx)
	if err != nil {
		return nil, err
	}
	p := req.Params
	page, size, offset := pageBounds(p.Page, p.PageSize)
	f := backup.Filter{Start: p.StartDate, End: p.EndDate, Offset: offset, PageSize: size}
	if p.BackupType != nil {
		v := string(*p.BackupType)
		f.Type = &v
	}
	if p.Status != nil {
		v := string(*p.Status)
		f.Status = &v
	}
	if f.Start != nil && f.End != nil && f.End.Before(*f.Start) {
		return nil, BadRequest("endDate is before startDate", Detail{Field: "endDate", Message: "must not be before startDate"})
	}
	items, total, err := h.backups.List(ctx, t.HK, f)
	if err != nil {
		return nil, err
	}
	out := make([]oapi.BackupExecution, len(items))
	for i, e := range items {
		out[i] = toExecution(e)
	}
	return oapi.ListBackups200JSONResponse{Success: true,
		Data: oapi.BackupList{Backups: out, Pagination: pagination(page, size, total)}}, nil
}

// VerifyBackup queues a verification of a completed backup, answering 202.
func (h *Handlers) VerifyBackup(ctx context.Context, req oapi.VerifyBackupRequestObject) (oapi.VerifyBackupResponseObject, error) {
	t, err := tenant(ctx)
	if err != nil {
		return nil, err
	}
	at, err := h.backups.RequestVerify(ctx, t, uuid.UUID(req.BackupId))
	if err != nil {
		return nil, backupError(err)
	}
	return oapi.VerifyBackup202JSONResponse{Success: true, Data: oapi.BackupVerificationJob{
		BackupId: req.BackupId, QueuedAt: at, VerificationStatus: oapi.VerificationStatusQUEUED}}, nil
}

// backupError maps the backup domain's errors to answers.
func backupError(err error) error {
	var refused *backup.Refusal
	switch {
	case errors.Is(err, storage.ErrReservedForWAL):
		return BadRequest("storageLocation is not a folder of the backup repository that backups may use",
			Detail{Field: "storageLocation", Message: "the folder " + storage.ReservedWAL + " is reserved for the WAL archive"})
	case errors.Is(err, storage.ErrOutsideRepository):
		return BadRequest("storageLocation is not a folder of the backup repository that backups may use",
			Detail{Field: "storageLocation", Message: "must be a relative folder inside the repository, without '..'"})
	case errors.As(err, &refused) && errors.Is(refused.Kind, backup.ErrState):
		return Conflict(refused.Reason)
	case errors.As(err, &refused) && refused.Field != "":
		return Unprocessable(refused.Reason, Detail{Field: refused.Field, Message: refused.Reason})
	case errors.As(err, &refused):
		return Unprocessable(refused.Reason)
	}
	return domainError(err, "backup")
}

func toExecution(e backup.Execution) oapi.BackupExecution {
	return oapi.BackupExecution{
		BackupId: openapi_types.UUID(e.BackupBk), BackupType: oapi.BackupType(e.BackupType),
		BackupScope: oapi.BackupScope(e.BackupScope), SchemaName: e.SchemaName,
		Status: oapi.BackupExecutionStatus(e.Status), Priority: int(e.Priority),
		CompressionEnabled: e.CompressionEnabled, StorageLocation: e.StorageLocation,
		RetentionPeriod: e.RetentionPeriod, ExpiresAt: e.ExpiresAt, Tags: e.Tags, RequestedBy: e.RequestedBy,
		CreatedAt: e.CreatedAt, StartedAt: e.StartedAt, CompletedAt: e.CompletedAt, ErrorMessage: e.ErrorMessage,
	}
}

func (h *Handlers) toStatus(e backup.Execution) oapi.BackupStatus {
	x := toExecution(e)
	s := oapi.BackupStatus{BackupId: x.BackupId, BackupType: x.BackupType, BackupScope: x.BackupScope,
		SchemaName: x.SchemaName, Status: x.Status, Priority: x.Priority, CompressionEnabled: x.CompressionEnabled,
		StorageLocation: x.StorageLocation, RetentionPeriod: x.RetentionPeriod, ExpiresAt: x.ExpiresAt, Tags: x.Tags,
		RequestedBy: x.RequestedBy, CreatedAt: x.CreatedAt, StartedAt: x.StartedAt, CompletedAt: x.CompletedAt,
		ErrorMessage: x.ErrorMessage}
	if f := e.FiguresAt(h.now()); f != nil {
		s.Progress = &oapi.BackupProgress{Phase: f.Phase, BytesDone: f.BytesDone, BytesTotal: f.BytesTotal,
			Percent: f.Percent, ThroughputBytesPerSec: f.ThroughputBytesPerSec, EtaSeconds: f.EtaSeconds}
	}
	if e.SizeBytes != nil {
		r := oapi.BackupResult{SizeBytes: *e.SizeBytes, StartLsn: e.StartLsn, EndLsn: e.EndLsn, RowCount: e.RowCount}
		if e.StoredSizeBytes != nil {
			r.StoredSizeBytes = *e.StoredSizeBytes
		}
		if e.DurationMs != nil {
			r.DurationMs = *e.DurationMs
		}
		if e.ParentBackupBk != nil {
			id := openapi_types.UUID(*e.ParentBackupBk)
			r.ParentBackupId = &id
		}
		s.Result = &r
	}
	if v := e.Verification; v != nil {
		out := oapi.BackupVerification{Status: oapi.VerificationStatus(v.Status), Findings: []oapi.BackupVerificationFinding{}}
		if v.Status == "PASSED" || v.Status == "FAILED" {
			at := v.At.UTC().Truncate(time.Millisecond)
			out.VerifiedAt = &at
		}
		for _, f := range v.Findings {
			out.Findings = append(out.Findings, oapi.BackupVerificationFinding{Object: f.Object, Message: f.Message})
		}
		s.Verification = &out
	}
	return s
}
