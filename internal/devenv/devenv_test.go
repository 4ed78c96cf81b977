package devenv_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/onevault/readiness/internal/auth"
	"github.com/onevault/readiness/internal/devenv"
	"github.com/onevault/readiness/internal/storage"
	"github.com/onevault/readiness/internal/wal"
)

func TestMain(m *testing.M) {
	// The dev cluster's archive_command runs this binary as `readiness wal-push`.
	wal.RunIfAsked()
	os.Exit(m.Run())
}

// TestPrepare starts the embedded default the way `readiness dev` does, twice on one data
// directory, and checks what a user relies on: dev.json, both databases reachable, the demo
// tenants, tokens the service accepts, and a secret kept across restarts.
func TestPrepare(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	noEnv := func(string) string { return "" }

	env, err := devenv.Prepare(ctx, devenv.Options{DataDir: dir, Addr: "127.0.0.1:0", Getenv: noEnv})
	require.NoError(t, err)
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			env.Stop(ctx)
		}
	})

	t.Run("dev.json holds the addresses, the secret and three tokens", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join(dir, "dev.json"))
		require.NoError(t, err)
		var got map[string]any
		require.NoError(t, json.Unmarshal(b, &got))
		for _, k := range []string{"addr", "database_url", "managed_database_url", "jwt_secret", "tokens"} {
			require.Contains(t, got, k)
		}
		require.Len(t, env.Tokens, 3)
	})

	t.Run("a second readiness dev on the same directory is refused and leaves the first running", func(t *testing.T) {
		_, err := devenv.Prepare(ctx, devenv.Options{DataDir: dir, Addr: "127.0.0.1:0", Getenv: noEnv})
		require.ErrorContains(t, err, "another readiness dev is running")
		conn, err := pgx.Connect(ctx, env.ManagedDatabaseURL)
		require.NoError(t, err)
		conn.Close(ctx)
	})

	t.Run("both databases are reachable and the tenants are registered", func(t *testing.T) {
		conn, err := pgx.Connect(ctx, env.DatabaseURL)
		require.NoError(t, err)
		defer conn.Close(ctx)
		var tenants []string
		rows, err := conn.Query(ctx, "SELECT tenant_bk FROM hub_tenant ORDER BY 1")
		require.NoError(t, err)
		for rows.Next() {
			var s string
			require.NoError(t, rows.Scan(&s))
			tenants = append(tenants, s)
		}
		require.Equal(t, []string{"acme", "globex", "platform"}, tenants, "platform owns SYSTEM backups")

		managed, err := pgx.Connect(ctx, env.ManagedDatabaseURL)
		require.NoError(t, err)
		defer managed.Close(ctx)
		var archive, statements string
		require.NoError(t, managed.QueryRow(ctx, "SHOW archive_mode").Scan(&archive))
		require.Equal(t, "on", archive)
		require.NoError(t, managed.QueryRow(ctx, "SELECT extname FROM pg_extension WHERE extname = 'pg_stat_statements'").Scan(&statements))
		var patients int
		require.NoError(t, managed.QueryRow(ctx, "SELECT count(DISTINCT tenant_hk) FROM healthcare.hub_patient").Scan(&patients))
		require.Equal(t, 2, patients, "the demo data holds both tenants' rows")
	})

	t.Run("the printed tokens are accepted with their roles and tenants", func(t *testing.T) {
		v, err := auth.NewVerifier(ctx, auth.Config{Secret: []byte(env.JWTSecret)})
		require.NoError(t, err)
		p, err := v.Verify(ctx, env.Tokens["acme_admin"])
		require.NoError(t, err)
		require.True(t, p.HasRole(auth.RoleAdmin))
		require.True(t, p.MayAccessTenant("acme"))
		require.False(t, p.MayAccessTenant("globex"))
		p, err = v.Verify(ctx, env.Tokens["platform_admin"])
		require.NoError(t, err)
		require.True(t, p.HasRole(auth.RolePlatformAdmin))
	})

	t.Run("the managed cluster archives its WAL into the backup repository, encrypted", func(t *testing.T) {
		managed, err := pgx.Connect(ctx, env.ManagedDatabaseURL)
		require.NoError(t, err)
		defer managed.Close(ctx)
		var segment string
		require.NoError(t, managed.QueryRow(ctx, "SELECT pg_walfile_name(pg_switch_wal())").Scan(&segment))
		key, err := storage.ParseKey(env.EncryptionKey)
		require.NoError(t, err)
		cfg := wal.Config{RepoPath: filepath.Join(dir, "backups"), Key: key}
		require.Eventually(t, func() bool {
			segs, err := wal.Segments(ctx, cfg, 1)
			require.NoError(t, err)
			return slices.Contains(segs, segment)
		}, 30*time.Second, 100*time.Millisecond)
		st, err := wal.Check(ctx, cfg, env.ManagedDatabaseURL)
		require.NoError(t, err)
		require.Empty(t, st.Problems())
		require.Equal(t, segment, st.Server.LastArchivedWAL)
		require.NoError(t, wal.Fetch(ctx, cfg, segment, filepath.Join(t.TempDir(), segment)))
	})

	t.Run("wal-status beside readiness dev needs no flags: dev.json gives the repository, key and server", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		code := wal.Run(ctx, []string{"wal-status"}, devenv.Getenv(dir, noEnv), &stdout, &stderr)
		require.Equal(t, wal.ExitOK, code, stderr.String())
		var st wal.Status
		require.NoError(t, json.Unmarshal(stdout.Bytes(), &st))
		require.NotEmpty(t, st.Timelines, "the archive in %s/backups is read", dir)
		require.NotNil(t, st.Server, "the managed database of dev.json is asked")
		require.NotEmpty(t, st.Server.LastArchivedWAL)

		// A variable that is set wins over the dev environment: this repository is empty.
		other := t.TempDir()
		stdout.Reset()
		code = wal.Run(ctx, []string{"wal-status"}, devenv.Getenv(dir, func(name string) string {
			if name == wal.EnvStoragePath {
				return other
			}
			return ""
		}), &stdout, &stderr)
		require.Equal(t, wal.ExitOK, code, stderr.String())
		st = wal.Status{}
		require.NoError(t, json.Unmarshal(stdout.Bytes(), &st))
		require.Empty(t, st.Timelines, "the archive of %s is read, not the dev one", other)
	})

	t.Run("a second start on the same directory keeps the secret and the data", func(t *testing.T) {
		env.Stop(ctx)
		stopped = true
		again, err := devenv.Prepare(ctx, devenv.Options{DataDir: dir, Addr: "127.0.0.1:0", Getenv: noEnv})
		require.NoError(t, err)
		defer again.Stop(ctx)
		require.Equal(t, env.JWTSecret, again.JWTSecret)
		conn, err := pgx.Connect(ctx, again.DatabaseURL)
		require.NoError(t, err)
		defer conn.Close(ctx)
		var n int
		require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM hub_tenant").Scan(&n))
		require.Equal(t, 3, n)
	})
}
