package pgcluster_test

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/onevault/readiness/internal/pgcluster"
)

func TestClusterStartsRestartsAndStops(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	// A nested directory checks that Start creates missing parents the postgres user can use.
	dataDir := filepath.Join(t.TempDir(), "nested", "data")

	c := newCluster(t, pgcluster.Options{DataDir: dataDir, Settings: map[string]string{"wal_level": "replica"}})
	require.NoError(t, c.Start(ctx))
	require.NotZero(t, c.Port())
	require.Equal(t, dataDir, c.DataDir())
	require.FileExists(t, filepath.Join(c.BinDir(), "pg_ctl"))

	t.Run("the server answers queries", func(t *testing.T) {
		require.Equal(t, "1", query(t, c.URL("postgres"), "select 1::text"))
	})
	t.Run("settings apply and fsync stays on without Fast", func(t *testing.T) {
		require.Equal(t, "replica", query(t, c.URL("postgres"), "show wal_level"))
		require.Equal(t, "on", query(t, c.URL("postgres"), "show fsync"))
	})

	port := c.Port()
	require.NoError(t, c.Stop(ctx))
	require.NoError(t, c.Stop(ctx), "a second Stop does nothing")
	require.NoFileExists(t, filepath.Join(dataDir, "postmaster.pid"))

	t.Run("a restart on the same directory reuses the port and applies new settings", func(t *testing.T) {
		again := newCluster(t, pgcluster.Options{DataDir: dataDir, Settings: map[string]string{"wal_level": "logical"}})
		require.NoError(t, again.Start(ctx))
		require.Equal(t, port, again.Port())
		require.Equal(t, "logical", query(t, again.URL("postgres"), "show wal_level"))
		require.NoError(t, again.Stop(ctx))
	})
}

func TestStartSurvivesAStalePIDFile(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := newCluster(t, pgcluster.Options{DataDir: filepath.Join(t.TempDir(), "data"), Fast: true})
	require.NoError(t, c.Start(ctx))

	t.Run("after the server was killed", func(t *testing.T) {
		pid := postmasterPID(t, c)
		require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
		waitUntilNoServerProcess(t, c.DataDir())
		require.FileExists(t, filepath.Join(c.DataDir(), "postmaster.pid"))

		require.NoError(t, c.Start(ctx))
		require.Equal(t, "1", query(t, c.URL("postgres"), "select 1::text"))
	})

	t.Run("whose process ID now belongs to another process of the postgres user", func(t *testing.T) {
		require.NoError(t, c.Stop(ctx))
		// PostgreSQL itself takes any live process it may signal for a running server.
		sleep := exec.Command("sleep", "300")
		sleep.Dir = "/"
		c.RunAsOwner(sleep)
		require.NoError(t, sleep.Start())
		t.Cleanup(func() {
			_ = sleep.Process.Kill()
			_ = sleep.Wait()
		})
		writeOwnedFile(t, c, filepath.Join(c.DataDir(), "postmaster.pid"), strconv.Itoa(sleep.Process.Pid)+"\n")

		require.NoError(t, c.Start(ctx))
		require.Equal(t, "1", query(t, c.URL("postgres"), "select 1::text"))
	})

	t.Run("a Start on a running server restarts it", func(t *testing.T) {
		before := postmasterPID(t, c)
		require.NoError(t, c.Start(ctx))
		require.NotEqual(t, before, postmasterPID(t, c))
		require.Equal(t, "1", query(t, c.URL("postgres"), "select 1::text"))
	})
}

func TestCreateDatabase(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := newCluster(t, pgcluster.Options{DataDir: filepath.Join(t.TempDir(), "data"), Fast: true})
	require.NoError(t, c.Start(ctx))

	const name = `odd "name"-1`
	require.NoError(t, c.CreateDatabase(ctx, name))
	require.NoError(t, c.CreateDatabase(ctx, name), "creating an existing database does nothing")
	require.Equal(t, name, query(t, c.URL(name), "select current_database()::text"))
}

func TestFastSettings(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := newCluster(t, pgcluster.Options{DataDir: filepath.Join(t.TempDir(), "data"), Fast: true,
		Settings: map[string]string{"application_name": "it's quoted"}})
	require.NoError(t, c.Start(ctx))

	url := c.URL("postgres")
	require.Equal(t, "off", query(t, url, "show fsync"))
	require.Equal(t, "off", query(t, url, "show synchronous_commit"))
	require.Equal(t, "off", query(t, url, "show full_page_writes"))
	require.Equal(t, "it's quoted", query(t, url, "select setting from pg_settings where name = 'application_name'"))
}

func TestStartFailureIncludesTheServerLog(t *testing.T) {
	t.Parallel()
	c := newCluster(t, pgcluster.Options{DataDir: filepath.Join(t.TempDir(), "data"), Fast: true,
		Settings: map[string]string{"shared_buffers": "not a size"}})
	err := c.Start(t.Context())
	require.Error(t, err)
	require.Contains(t, err.Error(), `invalid value for parameter "shared_buffers"`)
}

func TestNewRejectsSettingsItManages(t *testing.T) {
	_, err := pgcluster.New(pgcluster.Options{DataDir: t.TempDir(), Settings: map[string]string{"port": "1"}})
	require.ErrorContains(t, err, "Options.Port")

	_, err = pgcluster.New(pgcluster.Options{DataDir: t.TempDir(), Settings: map[string]string{"x = 1\nfsync": "off"}})
	require.ErrorContains(t, err, "invalid setting name")
}

func TestMkdirOwnedMakesADirectoryTheServerCanWrite(t *testing.T) {
	c := newCluster(t, pgcluster.Options{DataDir: filepath.Join(t.TempDir(), "data")})
	archive := filepath.Join(t.TempDir(), "wal", "archive")
	require.NoError(t, c.MkdirOwned(archive))

	touch := exec.Command("touch", filepath.Join(archive, "000000010000000000000001"))
	touch.Dir = "/"
	c.RunAsOwner(touch)
	out, err := touch.CombinedOutput()
	require.NoError(t, err, string(out))
	require.FileExists(t, filepath.Join(archive, "000000010000000000000001"))
}

func TestBinDirHoldsTheServerBinaries(t *testing.T) {
	dir, err := pgcluster.BinDir()
	require.NoError(t, err)
	for _, name := range []string{"pg_ctl", "initdb", "postgres"} {
		require.FileExists(t, filepath.Join(dir, name))
	}
}

// newCluster returns a cluster that is stopped when the test ends.
func newCluster(t *testing.T, opts pgcluster.Options) *pgcluster.Cluster {
	t.Helper()
	opts.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	c, err := pgcluster.New(opts)
	require.NoError(t, err)
	t.Cleanup(func() {
		require.NoError(t, c.Stop(context.Background()))
	})
	return c
}

// query returns the single text value that sql selects.
func query(t *testing.T, url, sql string) string {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var s string
	require.NoError(t, conn.QueryRow(t.Context(), sql).Scan(&s))
	return s
}

func postmasterPID(t *testing.T, c *pgcluster.Cluster) int {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(c.DataDir(), "postmaster.pid"))
	require.NoError(t, err)
	pid, err := strconv.Atoi(strings.SplitN(string(data), "\n", 2)[0])
	require.NoError(t, err)
	return pid
}

// waitUntilNoServerProcess waits until no process works in dataDir, as every PostgreSQL
// process of the cluster does, so that its shared memory is released.
func waitUntilNoServerProcess(t *testing.T, dataDir string) {
	t.Helper()
	require.Eventually(t, func() bool {
		procs, err := filepath.Glob("/proc/[0-9]*/cwd")
		require.NoError(t, err)
		for _, p := range procs {
			if cwd, err := os.Readlink(p); err == nil && cwd == dataDir {
				return false
			}
		}
		return true
	}, 30*time.Second, 50*time.Millisecond)
}

// writeOwnedFile writes a file in the data directory that the postgres user may remove.
func writeOwnedFile(t *testing.T, c *pgcluster.Cluster, path, content string) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	fi, err := os.Stat(c.DataDir())
	require.NoError(t, err)
	st := fi.Sys().(*syscall.Stat_t)
	require.NoError(t, os.Chown(path, int(st.Uid), int(st.Gid)))
}
