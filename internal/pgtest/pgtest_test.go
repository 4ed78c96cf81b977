package pgtest_test

import (
	"context"
	"crypto/rand"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/onevault/readiness/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestNewDatabaseGivesEachCallAnIsolatedDatabase(t *testing.T) {
	t.Parallel()
	srv := pgtest.Server(t)

	first := srv.NewDatabase(t)
	second := srv.NewDatabase(t)
	require.NotEqual(t, first, second)

	exec(t, first, "CREATE TABLE only_here (id int)")
	require.True(t, queryBool(t, first, "SELECT to_regclass('only_here') IS NOT NULL"))
	require.False(t, queryBool(t, second, "SELECT to_regclass('only_here') IS NOT NULL"),
		"a table made in one database must not appear in the other")
}

func TestNewDatabaseIsDroppedWhenTheTestEnds(t *testing.T) {
	t.Parallel()
	srv := pgtest.Server(t)

	var name string
	outer := t
	t.Run("a test that uses a database", func(t *testing.T) {
		url := srv.NewDatabase(t)
		name = queryString(t, url, "SELECT current_database()::text")
		// A connection still open when the test ends must not keep the database from
		// being dropped; it is closed only after the subtest's cleanup.
		conn, err := pgx.Connect(context.Background(), url)
		require.NoError(t, err)
		outer.Cleanup(func() { _ = conn.Close(context.Background()) })
	})

	require.NotEmpty(t, name)
	require.False(t, queryBool(t, srv.AdminURL(), "SELECT EXISTS (SELECT FROM pg_database WHERE datname = '"+name+"')"))
}

func TestNewDatabaseFromPreparesOnceAndClones(t *testing.T) {
	t.Parallel()
	srv := pgtest.Server(t)

	// Templates live as long as the process, so a key of its own keeps -count=N honest.
	key := "widgets " + rand.Text()
	var prepared atomic.Int32
	prepare := func(ctx context.Context, url string) error {
		prepared.Add(1)
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return err
		}
		// Left open on purpose: NewDatabaseFrom must cope with it.
		_, err = conn.Exec(ctx, "CREATE TABLE widget (name text); INSERT INTO widget VALUES ('from the template')")
		return err
	}

	var urls [3]string
	t.Run("clones", func(t *testing.T) {
		for i := range urls {
			t.Run("clone", func(t *testing.T) {
				t.Parallel()
				urls[i] = srv.NewDatabaseFrom(t, key, prepare)
				require.Equal(t, "from the template", queryString(t, urls[i], "SELECT name FROM widget"))
				// Each clone is its own database.
				exec(t, urls[i], "INSERT INTO widget VALUES ('local')")
				require.Equal(t, "2", queryString(t, urls[i], "SELECT count(*)::text FROM widget"))
			})
		}
	})

	require.Equal(t, int32(1), prepared.Load(), "prepare runs once per key")
	require.NotEqual(t, urls[0], urls[1])
	require.NotEqual(t, urls[1], urls[2])
}

func TestNewDatabaseFromPreparesEachKey(t *testing.T) {
	t.Parallel()
	srv := pgtest.Server(t)

	a := srv.NewDatabaseFrom(t, "key a", func(ctx context.Context, url string) error { return execCtx(ctx, url, "CREATE TABLE a ()") })
	b := srv.NewDatabaseFrom(t, "key b", func(ctx context.Context, url string) error { return execCtx(ctx, url, "CREATE TABLE b ()") })
	require.True(t, queryBool(t, a, "SELECT to_regclass('a') IS NOT NULL AND to_regclass('b') IS NULL"))
	require.True(t, queryBool(t, b, "SELECT to_regclass('b') IS NOT NULL AND to_regclass('a') IS NULL"))
}

func TestServerIsConfiguredForTheService(t *testing.T) {
	srv := pgtest.Server(t)
	// With DATABASE_URL or TEST_DATABASE_URL set, the server is someone else's and its settings
	// are theirs to choose; CI sets neither, so there this test runs on pgtest's own cluster.
	if srv.Cluster() == nil {
		t.Skip("the server comes from the environment; its settings are its own")
	}
	url := srv.NewDatabase(t)
	require.Equal(t, "replica", queryString(t, url, "SHOW wal_level"))
	require.Equal(t, "10", queryString(t, url, "SHOW max_wal_senders"))
	require.Equal(t, "pg_stat_statements", queryString(t, url, "SHOW shared_preload_libraries"))
	require.Equal(t, srv.Cluster().URL("postgres"), srv.AdminURL())
}

func exec(t *testing.T, url, sql string) {
	t.Helper()
	require.NoError(t, execCtx(t.Context(), url, sql))
}

func execCtx(ctx context.Context, url, sql string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

func queryString(t *testing.T, url, sql string) string {
	t.Helper()
	var s string
	queryRow(t, url, sql, &s)
	return s
}

func queryBool(t *testing.T, url, sql string) bool {
	t.Helper()
	var b bool
	queryRow(t, url, sql, &b)
	return b
}

func queryRow(t *testing.T, url, sql string, dest any) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	require.NoError(t, conn.QueryRow(t.Context(), sql).Scan(dest))
}
