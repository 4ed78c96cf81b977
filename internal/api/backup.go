package api

import (
	"context"

	oapi "github.com/onevault/readiness/gen/api"
)

// The backup operations are routed, authenticated and validated; they answer 501 until
// the backups issue builds them.

// CreateBackup answers 501 until it is built.
func (h *Handlers) CreateBackup(_ context.Context, _ oapi.CreateBackupRequestObject) (oapi.CreateBackupResponseObject, error) {
	return nil, notImplemented("createBackup")
}

// ListBackups answers 501 until it is built.
func (h *Handlers) ListBackups(_ context.Context, _ oapi.ListBackupsRequestObject) (oapi.ListBackupsResponseObject, error) {
	return nil, notImplemented("listBackups")
}

// GetBackupStatus answers 501 until it is built.
func (h *Handlers) GetBackupStatus(_ context.Context, _ oapi.GetBackupStatusRequestObject) (oapi.GetBackupStatusResponseObject, error) {
	return nil, notImplemented("getBackupStatus")
}

// VerifyBackup answers 501 until it is built.
func (h *Handlers) VerifyBackup(_ context.Context, _ oapi.VerifyBackupRequestObject) (oapi.VerifyBackupResponseObject, error) {
	return nil, notImplemented("verifyBackup")
}
