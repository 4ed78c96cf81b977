package recovery_test

import (
	"bytes"
	"context"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/onevault/readiness/gen/client"
	"github.com/onevault/readiness/internal/apitest"
	"github.com/onevault/readiness/internal/auth"
	"github.com/onevault/readiness/internal/backup"
	"github.com/onevault/readiness/internal/pgcluster"
	"github.com/onevault/readiness/internal/storage"
	"github.com/onevault/readiness/internal/wal"
)

// TestRestoreSystemBackupWithoutTheService restores a SYSTEM backup with `readiness restore`
// from the repository alone into a data directory, which recovers through the archived WAL
// when PostgreSQL starts on it, as a pgBackRest restore does.
func TestRestoreSystemBackupWithoutTheService(t *testing.T) {
	ctx := context.Background()
	key, err := storage.GenerateKey()
	require.NoError(t, err)
	repo := t.TempDir()
	c, restore := archivingCluster(t, repo, key)
	svc := apitest.Start(t, apitest.Options{Workers: 1, ManagedURL: c.URL("postgres"), StoragePath: repo,
		EncryptionKey: key, RestoreCommand: restore})
	pat := apitest.As(apitest.Token(t, "pat", []string{"acme"}, auth.RolePlatformAdmin))
	managed, err := pgx.Connect(ctx, c.URL("postgres"))
	require.NoError(t, err)
	defer managed.Close(ctx)
	_, err = managed.Exec(ctx, "CREATE TABLE marker (id int PRIMARY KEY); INSERT INTO marker VALUES (1)")
	require.NoError(t, err)

	b, err := svc.Client.CreateBackupWithResponse(ctx, &client.CreateBackupParams{XTenantID: "platform"},
		client.BackupCreateRequest{BackupType: client.BackupTypeFULL, BackupScope: client.BackupScopeSYSTEM}, pat)
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, b.StatusCode(), string(b.Body))
	id := b.JSON202.Data.BackupId
	require.Eventually(t, func() bool {
		r, err := svc.Client.GetBackupStatusWithResponse(ctx, id, &client.GetBackupStatusParams{XTenantID: "platform"}, pat)
		return err == nil && r.JSON200 != nil && r.JSON200.Data.Status == client.BackupExecutionStatusCOMPLETED
	}, 2*time.Minute, 200*time.Millisecond)
	// Rows committed after the backup are in the archived WAL only.
	committed := time.Now()
	_, err = managed.Exec(ctx, "INSERT INTO marker VALUES (2), (3)")
	require.NoError(t, err)
	_, err = managed.Exec(ctx, "SELECT pg_switch_wal()")
	require.NoError(t, err)
	walCfg := wal.Config{RepoPath: repo, Key: mustKey(t, key)}
	require.Eventually(t, func() bool {
		commit, err := wal.LatestCommit(ctx, walCfg, 1, 8)
		return err == nil && commit.Time.After(committed)
	}, time.Minute, 200*time.Millisecond, "the commit after the backup never reached the archive")
	svc.App.Stop(ctx) // the service is gone: only the repository is left

	// The restored instance runs as the postgres OS user when this test runs as root: the
	// program and the key file are installed where that user may read them.
	dir := t.TempDir()
	data := filepath.Join(dir, "restored")
	restored, err := pgcluster.New(pgcluster.Options{DataDir: data})
	require.NoError(t, err)
	bin, keyFile := filepath.Join(dir, "bin", "readiness"), filepath.Join(dir, "key", "age.key")
	bin, err = wal.Install(restored, wal.InstallOptions{Bin: bin, RepoPath: repo, KeyFile: keyFile, Key: key})
	require.NoError(t, err)

	var out bytes.Buffer
	require.NoError(t, backup.Command(ctx, []string{"restore", "--repo", repo, "--key-file", keyFile, "--backup", id.String(),
		"--to", data, "--readiness-bin", bin}, func(string) string { return "" }, &out))
	require.Contains(t, out.String(), "restored SYSTEM backup "+id.String())

	require.NoError(t, restored.Start(ctx))
	t.Cleanup(func() { _ = restored.Stop(context.Background()) })
	conn, err := pgx.Connect(ctx, restored.URL("postgres"))
	require.NoError(t, err)
	defer conn.Close(ctx)
	require.Eventually(t, func() bool {
		var inRecovery bool
		return conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery) == nil && !inRecovery
	}, time.Minute, 100*time.Millisecond, "the instance replays the archived WAL and is promoted")
	rows, err := conn.Query(ctx, "SELECT id FROM marker ORDER BY id")
	require.NoError(t, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int])
	require.NoError(t, err)
	require.Equal(t, []int{1, 2, 3}, ids, "the backup's row and those of the archived WAL after it")
}
