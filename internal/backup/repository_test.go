package backup_test

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/onevault/readiness/gen/client"
	"github.com/onevault/readiness/internal/apitest"
	"github.com/onevault/readiness/internal/auth"
	"github.com/onevault/readiness/internal/backup"
	"github.com/onevault/readiness/internal/demodata"
	"github.com/onevault/readiness/internal/pgtest"
	"github.com/onevault/readiness/internal/storage"
	"github.com/onevault/readiness/internal/vault"
)

// noEnv is an empty environment: the commands get everything from their flags.
func noEnv(string) string { return "" }

// run runs a repository command as `readiness <args>` does, and answers what it printed.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := backup.Command(context.Background(), args, noEnv, &out)
	return out.String(), err
}

// dropDatabase drops the database of url on its server, as an operator who lost it would find it.
func dropDatabase(t *testing.T, dbURL string) {
	t.Helper()
	ctx := context.Background()
	u, err := url.Parse(dbURL)
	require.NoError(t, err)
	name := strings.TrimPrefix(u.Path, "/")
	conn, err := pgx.Connect(ctx, pgtest.Server(t).AdminURL())
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "DROP DATABASE "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	require.NoError(t, err)
}

// TestRestoreFromRepositoryAlone restores TENANT and SCHEMA backups with `readiness restore`
// after the service database is gone, and rebuilds the catalogue with `readiness repo reindex`.
func TestRestoreFromRepositoryAlone(t *testing.T) {
	ctx := context.Background()
	_, managed := managedDB(t, 2<<20)
	svc := apitest.Start(t, apitest.Options{Workers: 1, ManagedURL: managed})
	x := &tester{t: t, svc: svc}
	acme := apitest.Token(t, "alice", []string{"acme"}, auth.RoleAdmin)
	grow := func() {
		_, err := demodata.Generate(ctx, managed, demodata.Options{Tenants: []string{"acme", "globex"}, Size: 512 << 10})
		require.NoError(t, err)
		_, err = demodata.Change(ctx, managed, 0.02)
		require.NoError(t, err)
	}
	full := x.completed("acme", acme, tenantBody(client.BackupTypeFULL))
	grow()
	incr1 := x.completed("acme", acme, tenantBody(client.BackupTypeINCREMENTAL))
	grow()
	incr2 := x.completed("acme", acme, tenantBody(client.BackupTypeINCREMENTAL))
	atIncr2 := tableSums(t, managed, "acme")
	schema := x.completed("acme", acme, client.BackupCreateRequest{BackupType: client.BackupTypeFULL,
		BackupScope: client.BackupScopeSCHEMA, SchemaName: ptr("healthcare")})
	atSchema := tableSums(t, managed, "")
	grow() // the source moves on: only the backups hold the states compared below

	repo := svc.Config.StoragePath
	keyFile := filepath.Join(t.TempDir(), "age.key")
	require.NoError(t, os.WriteFile(keyFile, []byte(svc.Config.EncryptionKey), 0o600))

	// The day the service database is lost.
	svc.App.Stop(ctx)
	dropDatabase(t, svc.Config.DatabaseURL)

	t.Run("restore loads FULL + INCR + INCR, found from the manifests, into a database it makes", func(t *testing.T) {
		target := pgtest.Server(t).NewDatabase(t)
		dropDatabase(t, target)
		out, err := run(t, "restore", "--repo", repo, "--key-file", keyFile, "--backup", incr2.BackupId.String(), "--to", target)
		require.NoError(t, err)
		require.Contains(t, out, "FULL "+full.BackupId.String()+", INCREMENTAL "+incr1.BackupId.String()+", INCREMENTAL "+incr2.BackupId.String())
		require.NotContains(t, out, svc.Config.EncryptionKey)
		require.Equal(t, atIncr2, tableSums(t, target, ""), "acme's rows at the last INCR")
	})
	t.Run("restore loads a SCHEMA backup into an empty database", func(t *testing.T) {
		target := pgtest.Server(t).NewDatabase(t)
		_, err := run(t, "restore", "--repo", repo, "--key-file", keyFile, "--backup", schema.BackupId.String(), "--to", target)
		require.NoError(t, err)
		require.Equal(t, atSchema, tableSums(t, target, ""))
	})
	t.Run("restore refuses what cannot work, saying why", func(t *testing.T) {
		_, err := run(t, "restore", "--repo", repo, "--key-file", keyFile, "--backup", incr2.BackupId.String(), "--to", t.TempDir())
		require.ErrorContains(t, err, "postgres:// URL")
		_, err = run(t, "restore", "--repo", repo, "--key-file", keyFile, "--backup", uuid.NewString(), "--to", managed)
		require.ErrorContains(t, err, "not in the repository")
		_, err = run(t, "restore", "--repo", repo, "--key", "AGE-SECRET-KEY-1", "--backup", incr2.BackupId.String(), "--to", managed)
		require.ErrorContains(t, err, "--key-file")
		away := filepath.Join(t.TempDir(), "away")
		require.NoError(t, os.Rename(filepath.Join(repo, incr1.BackupId.String()), away))
		_, err = run(t, "restore", "--repo", repo, "--key-file", keyFile, "--backup", incr2.BackupId.String(), "--to", pgtest.Server(t).NewDatabase(t))
		require.NoError(t, os.Rename(away, filepath.Join(repo, incr1.BackupId.String())))
		require.ErrorContains(t, err, "backup "+incr1.BackupId.String()+" of the chain of "+incr2.BackupId.String()+" is not in the repository")
		wrong := filepath.Join(t.TempDir(), "other.key")
		require.NoError(t, os.WriteFile(wrong, []byte("another passphrase entirely"), 0o600))
		_, err = run(t, "restore", "--repo", repo, "--key-file", wrong, "--backup", incr2.BackupId.String(), "--to", pgtest.Server(t).NewDatabase(t))
		require.ErrorIs(t, err, storage.ErrIntegrity, "a wrong key cannot decrypt the backup")
	})

	t.Run("repo reindex rebuilds the catalogue in a new service database, once", func(t *testing.T) {
		fresh := pgtest.Server(t).NewDatabaseFrom(t, "migrated", vault.Migrate)
		out, err := run(t, "repo", "reindex", "--repo", repo, "--key-file", keyFile, "--database-url", fresh)
		require.NoError(t, err)
		require.Contains(t, out, "4 inserted, 0 already in the catalogue, 1 tenants registered")
		out, err = run(t, "repo", "reindex", "--repo", repo, "--database-url", fresh)
		require.NoError(t, err)
		require.Contains(t, out, "0 inserted, 4 already in the catalogue", "a second run, without the key, changes nothing")

		cfg := svc.Config
		cfg.DatabaseURL, cfg.BackupWorkers = fresh, 0
		again := apitest.StartWith(t, cfg)
		r, err := again.Client.ListBackupsWithResponse(ctx, &client.ListBackupsParams{XTenantID: "acme"}, apitest.As(acme))
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, r.StatusCode(), string(r.Body))
		got := map[string]client.BackupExecution{}
		for _, b := range r.JSON200.Data.Backups {
			got[b.BackupId.String()] = b
			require.Equal(t, client.BackupExecutionStatusCOMPLETED, b.Status)
		}
		require.Len(t, got, 4)
		require.Equal(t, client.BackupTypeINCREMENTAL, got[incr2.BackupId.String()].BackupType)
		require.Equal(t, client.BackupScopeSCHEMA, got[schema.BackupId.String()].BackupScope)
		st := (&tester{t: t, svc: again}).status("acme", acme, incr2.BackupId)
		require.Equal(t, incr1.BackupId, *st.Result.ParentBackupId, "the chain is linked again")
		require.Equal(t, *incr2.Result.RowCount, *st.Result.RowCount)
		require.Equal(t, incr2.CompletedAt.UTC(), st.CompletedAt.UTC())
		require.Equal(t, atIncr2, tableSums(t, restoreLogical(t, again, "acme", incr2.BackupId), ""),
			"the chain restores through the rebuilt catalogue")
	})
}
