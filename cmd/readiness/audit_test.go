package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/onevault/readiness/internal/audit"
	"github.com/onevault/readiness/internal/pgtest"
	"github.com/onevault/readiness/internal/vault"
)

// TestAuditVerifyFindsTheNewestRecordsDeleted runs `readiness audit verify` as an operator
// would, against a chain whose head the service anchored, before and after its newest records
// are deleted.
func TestAuditVerifyFindsTheNewestRecordsDeleted(t *testing.T) {
	ctx := context.Background()
	url := pgtest.Server(t).NewDatabaseFrom(t, "migrated", vault.Migrate)
	store, err := vault.Open(ctx, url)
	require.NoError(t, err)
	defer store.Close()
	for i := range 5 {
		require.NoError(t, audit.Append(ctx, store.Pool, audit.Record{OccurredAt: time.Now(), Operation: "createBackup",
			Method: "POST", Path: "/api/v1/backup/create", Outcome: 202, RequestID: fmt.Sprint(i)}))
	}
	repo := t.TempDir()
	var logs bytes.Buffer
	an := &audit.Anchorer{Queries: store.Queries(), RepoRoot: repo, Logger: slog.New(slog.NewJSONHandler(&logs, nil))}
	_, err = an.AnchorOnce(ctx)
	require.NoError(t, err)
	var line struct {
		Seq  int64
		Hash string
	}
	require.NoError(t, json.Unmarshal(logs.Bytes(), &line))
	logged := fmt.Sprintf("%d:%s", line.Seq, line.Hash)
	env := []string{"DATABASE_URL=" + url}

	code, stdout, stderr := runReadinessEnv(t, t.TempDir(), env, "audit", "verify", "--repo", repo, "--anchor", logged)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "audit chain intact: 5 records, head "+logged)
	require.Contains(t, stdout, "extends the anchor "+logged+" ("+repo)

	_, err = store.Pool.Exec(ctx, "DELETE FROM audit_log WHERE seq > 3")
	require.NoError(t, err)
	code, stdout, _ = runReadinessEnv(t, t.TempDir(), env, "audit", "verify")
	require.Equal(t, 0, code, "without an anchor the shorter chain looks intact")
	require.Contains(t, stdout, "no anchor found")

	code, _, stderr = runReadinessEnv(t, t.TempDir(), append(env, "BACKUP_STORAGE_PATH="+repo), "audit", "verify")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "audit chain broken at record 4: the table ends at record 3 but the anchor in "+repo+"/audit-anchor.json holds record 5: the newest 2 records were deleted")

	code, _, stderr = runReadinessEnv(t, t.TempDir(), env, "audit", "verify", "--anchor", logged)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "the anchor in --anchor "+logged+" holds record 5")

	code, _, stderr = runReadinessEnv(t, t.TempDir(), env, "audit", "verify", "--anchor", "5:nothex")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "HASH must be the record's SHA-256 in hex")
}
