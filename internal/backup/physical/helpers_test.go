package physical_test

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/onevault/readiness/internal/backup/physical"
	"github.com/onevault/readiness/internal/pgcluster"
)

// dirStore is a Sink and a Source kept in a directory, one file per object.
type dirStore struct {
	root string
	// writeDelay, when set, slows every Write down, to stretch a backup in time.
	writeDelay time.Duration
	// sync makes Close fsync each object, as a real repository does.
	sync bool
}

func newDirStore(t testing.TB) *dirStore { return &dirStore{root: t.TempDir()} }

func (d *dirStore) Create(name string) (io.WriteCloser, error) {
	p := filepath.Join(d.root, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	return &dirObject{f: f, store: d}, nil
}

func (d *dirStore) Open(name string) (io.ReadCloser, error) {
	return os.Open(filepath.Join(d.root, filepath.FromSlash(name)))
}

// dirObject hides *os.File's ReaderFrom, so that nothing can copy behind the backup's back.
type dirObject struct {
	f     *os.File
	store *dirStore
}

func (o *dirObject) Write(p []byte) (int, error) {
	if o.store.writeDelay > 0 {
		time.Sleep(o.store.writeDelay)
	}
	return o.f.Write(p)
}

func (o *dirObject) Close() error {
	if o.store.sync {
		if err := o.f.Sync(); err != nil {
			o.f.Close()
			return err
		}
	}
	return o.f.Close()
}

// baseSettings are the settings of every test cluster.
var baseSettings = map[string]string{"wal_level": "replica", "max_wal_senders": "10", "archive_mode": "off"}

// startCluster starts a new cluster in a temporary directory, stopped when the test ends.
func startCluster(t testing.TB, settings map[string]string) *pgcluster.Cluster {
	t.Helper()
	return startClusterAt(t, filepath.Join(t.TempDir(), "data"), settings)
}

func startClusterAt(t testing.TB, dataDir string, settings map[string]string) *pgcluster.Cluster {
	t.Helper()
	s := maps.Clone(baseSettings)
	maps.Copy(s, settings)
	c, err := pgcluster.New(pgcluster.Options{DataDir: dataDir, Settings: s})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	require.NoError(t, c.Start(ctx))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		require.NoError(t, c.Stop(ctx))
	})
	return c
}

// restoreAndStart restores a chain into a new data directory and starts it as a new
// instance on a free port.
func restoreAndStart(t testing.TB, chain []*physical.Manifest, stores []*dirStore) *pgcluster.Cluster {
	t.Helper()
	sources := make([]physical.Source, len(stores))
	for i, s := range stores {
		sources[i] = s
	}
	target := filepath.Join(t.TempDir(), "restored")
	var phases []string
	require.NoError(t, physical.Restore(context.Background(), chain, sources, target, func(p physical.Progress) {
		if len(phases) == 0 || phases[len(phases)-1] != p.Phase {
			phases = append(phases, p.Phase)
		}
	}))
	require.Equal(t, []string{physical.PhaseRestoreData, physical.PhaseRestoreWAL, physical.PhaseRestoreSync, physical.PhaseDone}, phases)
	return startClusterAt(t, target, nil)
}

// execSQL runs each statement on its own, outside any transaction block.
func execSQL(t testing.TB, url string, stmts ...string) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	for _, s := range stmts {
		_, err := conn.Exec(context.Background(), s)
		require.NoError(t, err, s)
	}
}

// queryRow runs a query that returns one row and scans it into dest.
func queryRow(t testing.TB, url, sql string, dest ...any) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	require.NoError(t, conn.QueryRow(context.Background(), sql).Scan(dest...), sql)
}

// tableStates returns, for each table, its row count and content checksum, or "absent".
func tableStates(t testing.TB, url string, tables ...string) map[string]string {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	out := map[string]string{}
	for _, tbl := range tables {
		var exists bool
		require.NoError(t, conn.QueryRow(context.Background(), "SELECT to_regclass($1) IS NOT NULL", tbl).Scan(&exists))
		if !exists {
			out[tbl] = "absent"
			continue
		}
		var n int64
		var sum string
		q := fmt.Sprintf("SELECT count(*), coalesce(md5(string_agg(t::text, ',' ORDER BY id)), '') FROM %s t",
			pgx.Identifier{tbl}.Sanitize())
		require.NoError(t, conn.QueryRow(context.Background(), q).Scan(&n, &sum))
		out[tbl] = fmt.Sprintf("%d rows, md5 %s", n, sum)
	}
	return out
}

// requireIndexesAgree checks that an index-only scan, an index scan and a sequential
// scan count the same rows: a stale visibility map or a bad index page would differ.
func requireIndexesAgree(t testing.TB, url string, tables ...string) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	ctx := context.Background()
	count := func(tbl, settings, query, plan string) int64 {
		t.Helper()
		_, err := conn.Exec(ctx, "RESET ALL; "+settings)
		require.NoError(t, err)
		var lines []string
		// The simple protocol: a prepared statement would keep the plan made under
		// the settings of its first use.
		rows, err := conn.Query(ctx, "EXPLAIN "+query, pgx.QueryExecModeSimpleProtocol)
		require.NoError(t, err)
		for rows.Next() {
			var line string
			require.NoError(t, rows.Scan(&line))
			lines = append(lines, line)
		}
		require.NoError(t, rows.Err())
		require.Contains(t, strings.Join(lines, "\n"), plan, "%s: %s", tbl, query)
		var n int64
		require.NoError(t, conn.QueryRow(ctx, query, pgx.QueryExecModeSimpleProtocol).Scan(&n))
		return n
	}
	for _, tbl := range tables {
		name := pgx.Identifier{tbl}.Sanitize()
		seq := count(tbl, "SET enable_indexscan = off; SET enable_indexonlyscan = off; SET enable_bitmapscan = off",
			"SELECT count(*) FROM "+name+" WHERE id >= 0", "Seq Scan")
		idxOnly := count(tbl, "SET enable_seqscan = off; SET enable_bitmapscan = off",
			"SELECT count(*) FROM "+name+" WHERE id >= 0", "Index Only Scan")
		idx := count(tbl, "SET enable_seqscan = off; SET enable_bitmapscan = off; SET enable_indexonlyscan = off",
			"SELECT count(*) FROM (SELECT * FROM "+name+" WHERE id >= 0 ORDER BY id) s", "Index Scan")
		require.Equal(t, seq, idxOnly, "%s: index-only scan vs sequential scan", tbl)
		require.Equal(t, seq, idx, "%s: index scan vs sequential scan", tbl)
	}
}
