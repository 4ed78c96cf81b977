package api

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/google/uuid"
	openapi_types "github.com/oapi-codegen/runtime/types"

	oapi "github.com/onevault/readiness/gen/api"
	"github.com/onevault/readiness/internal/audit"
	"github.com/onevault/readiness/internal/auth"
	"github.com/onevault/readiness/internal/recovery"
)

// CreatePointInTimeRecovery checks a recovery request (preflight) and records it: 202 with
// PENDING_APPROVAL, or QUEUED when no approval is required.
func (h *Handlers) CreatePointInTimeRecovery(ctx context.Context, req oapi.CreatePointInTimeRecoveryRequestObject) (oapi.CreatePointInTimeRecoveryResponseObject, error) {
	t, err := tenant(ctx)
	if err != nil {
		return nil, err
	}
	b := req.Body
	r := recovery.Request{TargetTime: b.TargetTimestamp, Target: b.RecoveryTarget, ApprovalRequired: true,
		RequestedBy: subject(ctx)}
	if b.ApprovalRequired != nil {
		r.ApprovalRequired = *b.ApprovalRequired
	}
	if b.SourceBackupId != nil {
		id := uuid.UUID(*b.SourceBackupId)
		r.SourceBackupID = &id
	}
	if strings.HasPrefix(r.Target, "instance:") {
		if p, ok := auth.PrincipalFrom(ctx); !ok || !p.HasScope(auth.ScopeSystemBackup) {
			return nil, &Error{Status: http.StatusForbidden, Code: CodeForbidden,
				Message: "recoveryTarget instance:<name> needs the platform_admin role"}
		}
	}
	op, err := h.recoveries.Create(ctx, t, r)
	if err != nil {
		return nil, recoveryError(err)
	}
	audit.SetResourceID(ctx, op.RecoveryBk.String())
	return oapi.CreatePointInTimeRecovery202JSONResponse{Success: true, Data: toRecovery(op)}, nil
}

// GetRecoveryStatus answers a recovery: its phase, replay position, chosen backups, and when
// done its connection string and measured RTO.
func (h *Handlers) GetRecoveryStatus(ctx context.Context, req oapi.GetRecoveryStatusRequestObject) (oapi.GetRecoveryStatusResponseObject, error) {
	t, err := tenant(ctx)
	if err != nil {
		return nil, err
	}
	op, err := h.recoveries.Get(ctx, t.HK, uuid.UUID(req.RecoveryId))
	if err != nil {
		return nil, recoveryError(err)
	}
	return oapi.GetRecoveryStatus200JSONResponse{Success: true, Data: toRecovery(op)}, nil
}

// ApproveRecovery lets someone other than the requester start a pending recovery.
func (h *Handlers) ApproveRecovery(ctx context.Context, req oapi.ApproveRecoveryRequestObject) (oapi.ApproveRecoveryResponseObject, error) {
	t, err := tenant(ctx)
	if err != nil {
		return nil, err
	}
	op, err := h.recoveries.Decide(ctx, t, uuid.UUID(req.RecoveryId), subject(ctx), true, req.Body.ApprovalNotes)
	if err != nil {
		return nil, recoveryError(err)
	}
	return oapi.ApproveRecovery200JSONResponse{Success: true, Data: toRecovery(op)}, nil
}

// RejectRecovery lets someone other than the requester refuse a pending recovery.
func (h *Handlers) RejectRecovery(ctx context.Context, req oapi.RejectRecoveryRequestObject) (oapi.RejectRecoveryResponseObject, error) {
	t, err := tenant(ctx)
	if err != nil {
		return nil, err
	}
	op, err := h.recoveries.Decide(ctx, t, uuid.UUID(req.RecoveryId), subject(ctx), false, req.Body.RejectionReason)
	if err != nil {
		return nil, recoveryError(err)
	}
	return oapi.RejectRecovery200JSONResponse{Success: true, Data: toRecovery(op)}, nil
}

func recoveryError(err error) error {
	var refusal *recovery.Refusal
	if errors.As(err, &refusal) {
		details := []Detail{{Field: refusal.Field, Message: refusal.Message}}
		switch {
		case errors.Is(err, recovery.ErrSourceNotFound):
			return &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: refusal.Message, Details: details}
		case errors.Is(err, recovery.ErrTargetExists):
			return &Error{Status: http.StatusConflict, Code: CodeConflict, Message: refusal.Message, Details: details}
		default:
			return Unprocessable(refusal.Message, details...)
		}
	}
	switch {
	case errors.Is(err, recovery.ErrSelfApproval):
		return &Error{Status: http.StatusForbidden, Code: CodeForbidden, Message: err.Error()}
	case errors.Is(err, recovery.ErrState):
		return Conflict(err.Error())
	}
	return domainError(err, "recovery")
}

func toRecovery(op recovery.Operation) oapi.RecoveryOperation {
	out := oapi.RecoveryOperation{RecoveryId: openapi_types.UUID(op.RecoveryBk), Status: oapi.RecoveryStatus(op.Status),
		TargetTimestamp: op.TargetTimestamp, RecoveryTarget: op.RecoveryTarget, ApprovalRequired: op.ApprovalRequired,
		RequestedBy: op.RequestedBy, CreatedAt: op.CreatedAt, ConnectionString: op.ConnectionString,
		ErrorMessage: op.ErrorMessage, SourceBackupIds: []openapi_types.UUID{},
		RecoveryMethod: oapi.RecoveryMethod(op.RecoveryMethod), RestoredTo: op.RestoredTo}
	for _, b := range op.SourceBackups {
		out.SourceBackupIds = append(out.SourceBackupIds, openapi_types.UUID(b))
	}
	if n := len(op.SourceBackups); n > 0 {
		used := openapi_types.UUID(op.SourceBackups[n-1])
		out.BackupUsed = &used
	}
	if op.Decision != nil {
		switch *op.Decision {
		case "APPROVED":
			out.ApprovedBy, out.ApprovedAt, out.ApprovalNotes = op.DecidedBy, op.DecidedAt, op.DecisionNotes
		case "REJECTED":
			out.RejectedBy, out.RejectedAt, out.RejectionReason = op.DecidedBy, op.DecidedAt, op.DecisionNotes
		}
	}
	if op.RtoSeconds != nil {
		rto := int64(*op.RtoSeconds + 0.5)
		out.RtoSeconds = &rto
	}
	if op.ReplayLsn != nil || op.ReplayTimestamp != nil {
		out.Progress = &oapi.RecoveryProgress{ReplayLsn: op.ReplayLsn, ReplayTimestamp: op.ReplayTimestamp}
	}
	return out
}
