package recovery_test

import (
	"context"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/onevault/readiness/gen/client"
	"github.com/onevault/readiness/gen/db"
	"github.com/onevault/readiness/internal/apitest"
	"github.com/onevault/readiness/internal/auth"
	"github.com/onevault/readiness/internal/backup"
	"github.com/onevault/readiness/internal/recovery"
	"github.com/onevault/readiness/internal/vault"
)

// TestRecoveryInterrupted cancels a recovery job's context while it opens its backup chain, as a
// job timeout or a shutdown does, and checks that the recovery still ends with its FAILED row,
// saying it was interrupted, rather than staying RESTORING.
func TestRecoveryInterrupted(t *testing.T) {
	ctx := context.Background()
	svc := apitest.Start(t, apitest.Options{}) // no worker: the test does the job's work itself
	pat := apitest.As(apitest.Token(t, "pat", []string{"acme"}, auth.RolePlatformAdmin))
	platform, err := svc.App.Store.TenantHK(ctx, backup.PlatformTenant)
	require.NoError(t, err)

	// A SYSTEM backup recorded COMPLETED, whose manifest the test holds while the job reads it.
	b, err := svc.Client.CreateBackupWithResponse(ctx, &client.CreateBackupParams{XTenantID: backup.PlatformTenant},
		client.BackupCreateRequest{BackupType: client.BackupTypeFULL, BackupScope: client.BackupScopeSYSTEM}, pat)
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, b.StatusCode(), string(b.Body))
	backupID := uuid.UUID(b.JSON202.Data.BackupId)
	cur, err := svc.App.Backups.Get(ctx, platform, backupID)
	require.NoError(t, err)
	dir := svc.App.Repo.Path(cur.StorageLocation, backupID.String())
	require.NotEmpty(t, dir)
	require.NoError(t, os.MkdirAll(dir, 0o700))
	manifest := dir + "/manifest.json"
	require.NoError(t, os.WriteFile(manifest, []byte("{}"), 0o600))
	recoveryID := uuid.New()
	done := time.Now().UTC()
	require.NoError(t, svc.App.Store.InTenant(ctx, platform, func(q *db.Queries) error {
		if err := q.BackupStatusInsert(ctx, db.BackupStatusInsertParams{BackupBk: backupID, TenantHk: platform,
			Status: backup.StatusCompleted, Attempt: 1, StartedAt: &done, CompletedAt: &done, Location: &cur.StorageLocation,
			RecordSource: vault.RecordSource}); err != nil {
			return err
		}
		// The recovery as Create records it once approved: QUEUED, its source backup linked.
		if err := q.RecoveryHubInsert(ctx, db.RecoveryHubInsertParams{RecoveryBk: recoveryID, TenantHk: platform,
			RecordSource: vault.RecordSource}); err != nil {
			return err
		}
		if err := q.RecoveryRequestInsert(ctx, db.RecoveryRequestInsertParams{RecoveryBk: recoveryID, TenantHk: platform,
			TargetTimestamp: done, RecoveryTarget: "instance:interrupted", RequestedBy: "pat",
			SourceBackups: []uuid.UUID{backupID}, RecoveryMethod: "WAL_REPLAY", RestoredTo: done,
			RecordSource: vault.RecordSource}); err != nil {
			return err
		}
		if err := q.RecoveryBackupLinkInsert(ctx, db.RecoveryBackupLinkInsertParams{RecoveryBk: recoveryID, BackupBk: backupID,
			TenantHk: platform, RecordSource: vault.RecordSource}); err != nil {
			return err
		}
		return q.RecoveryStatusInsert(ctx, db.RecoveryStatusInsertParams{RecoveryBk: recoveryID, TenantHk: platform,
			Status: recovery.StatusQueued, RecordSource: vault.RecordSource})
	}))

	h := apitest.HoldFile(t, manifest)
	jctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ended, errc := make(chan struct{}), make(chan error, 1)
	go func() {
		defer close(ended)
		errc <- svc.App.Recoveries.RunJob(jctx, backup.PlatformTenant, recoveryID)
	}()
	// The job has recorded RESTORING and waits for the manifest: cancel it there, then let the
	// read end with nothing, as an interrupted read would.
	h.WhileRead(ended, true, cancel)
	<-ended
	require.NoError(t, <-errc, "the FAILED row is written although the job's context was cancelled")

	r, err := svc.Client.GetRecoveryStatusWithResponse(ctx, recoveryID, &client.GetRecoveryStatusParams{XTenantID: backup.PlatformTenant}, pat)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, r.StatusCode(), string(r.Body))
	op := r.JSON200.Data
	require.Equal(t, client.RecoveryStatusFAILED, op.Status)
	require.NotNil(t, op.ErrorMessage)
	require.Contains(t, *op.ErrorMessage, "interrupted (a job timeout or a shutdown")
	require.Contains(t, *op.ErrorMessage, "context canceled")
}
