package backup_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/onevault/readiness/gen/client"
	"github.com/onevault/readiness/internal/apitest"
	"github.com/onevault/readiness/internal/auth"
	"github.com/onevault/readiness/internal/backup"
)

// TestVerifyInterrupted cancels a verification job's context while it reads an object, as a job
// timeout or a shutdown does, and checks that the verification still ends with a final row: the
// result when every object was read, FAILED naming the interruption otherwise.
func TestVerifyInterrupted(t *testing.T) {
	ctx := context.Background()
	_, managed := managedDB(t, 2<<20)
	x := &tester{t: t, svc: apitest.Start(t, apitest.Options{Workers: 1, ManagedURL: managed})}
	acme := apitest.Token(t, "alice", []string{"acme"}, auth.RoleAdmin)
	s := x.completed("acme", acme, tenantBody(client.BackupTypeFULL))
	id := uuid.UUID(s.BackupId)

	dir := filepath.Join(x.svc.Config.StoragePath, id.String())
	raw, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	require.NoError(t, err)
	var m backup.Manifest
	require.NoError(t, json.Unmarshal(raw, &m))
	require.GreaterOrEqual(t, len(m.Objects), 2, "the test needs objects after the one it holds")
	object := func(i int) string { return filepath.Join(dir, filepath.FromSlash(m.Objects[i].File)) }

	// verifyCancelledWhileReading runs the job's work and cancels its context while the job
	// reads the file held, then answers what the work returned.
	verifyCancelledWhileReading := func(held string) error {
		h := apitest.HoldFile(t, held)
		jctx, cancel := context.WithCancel(ctx)
		defer cancel()
		ended, errc := make(chan struct{}), make(chan error, 1)
		go func() {
			defer close(ended)
			errc <- x.svc.App.Backups.VerifyJob(jctx, "acme", id)
		}()
		h.WhileRead(ended, false, cancel)
		<-ended
		return <-errc
	}

	t.Run("a cancel before the last object ends the verification FAILED, naming the interruption", func(t *testing.T) {
		err := verifyCancelledWhileReading(object(0))
		require.ErrorIs(t, err, context.Canceled, "the job fails, so that river tries it again")
		st := x.status("acme", acme, s.BackupId)
		require.Equal(t, client.BackupExecutionStatusCOMPLETED, st.Status, "the objects not read are not known bad")
		require.NotNil(t, st.Verification)
		require.Equal(t, client.VerificationStatusFAILED, st.Verification.Status)
		require.Len(t, st.Verification.Findings, 1)
		require.Equal(t, "verification", st.Verification.Findings[0].Object)
		require.Contains(t, st.Verification.Findings[0].Message, "interrupted after 1 of")
		require.Contains(t, st.Verification.Findings[0].Message, "context canceled")
	})

	t.Run("a cancel while the last object is read still records the result", func(t *testing.T) {
		require.NoError(t, verifyCancelledWhileReading(object(len(m.Objects)-1)))
		st := x.status("acme", acme, s.BackupId)
		require.Equal(t, client.BackupExecutionStatusVERIFIED, st.Status)
		require.NotNil(t, st.Verification)
		require.Equal(t, client.VerificationStatusPASSED, st.Verification.Status)
		require.Empty(t, st.Verification.Findings)
	})
}
