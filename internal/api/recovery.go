package api

import (
	"context"

	oapi "github.com/onevault/readiness/gen/api"
)

// The recovery operations are routed, authenticated and validated; they answer 501 until
// the recovery issue builds them.

// CreatePointInTimeRecovery answers 501 until it is built.
func (h *Handlers) CreatePointInTimeRecovery(_ context.Context, _ oapi.CreatePointInTimeRecoveryRequestObject) (oapi.CreatePointInTimeRecoveryResponseObject, error) {
	return nil, notImplemented("createPointInTimeRecovery")
}

// GetRecoveryStatus answers 501 until it is built.
func (h *Handlers) GetRecoveryStatus(_ context.Context, _ oapi.GetRecoveryStatusRequestObject) (oapi.GetRecoveryStatusResponseObject, error) {
	return nil, notImplemented("getRecoveryStatus")
}

// ApproveRecovery answers 501 until it is built.
func (h *Handlers) ApproveRecovery(_ context.Context, _ oapi.ApproveRecoveryRequestObject) (oapi.ApproveRecoveryResponseObject, error) {
	return nil, notImplemented("approveRecovery")
}

// RejectRecovery answers 501 until it is built.
func (h *Handlers) RejectRecovery(_ context.Context, _ oapi.RejectRecoveryRequestObject) (oapi.RejectRecoveryResponseObject, error) {
	return nil, notImplemented("rejectRecovery")
}
