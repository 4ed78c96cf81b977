package physical_test

import (
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/stretchr/testify/require"

	"github.com/onevault/readiness/internal/backup/physical"
)

func TestDebugVM(t *testing.T) {
	ctx := t.Context()
	src := startCluster(t, map[string]string{"autovacuum": "off"})
	require.NoError(t, src.CreateDatabase(ctx, "app"))
	app := src.URL("app")
	exec(t, app, `CREATE EXTENSION pg_visibility`,
		`CREATE TABLE c (id int PRIMARY KEY, v text NOT NULL)`,
		`INSERT INTO c SELECT g, md5(g::text) FROM generate_series(1, 40000) g`, `VACUUM ANALYZE`)
	vis := func(url string) (n int64, lsnv string) {
		queryRow(t, url, `SELECT count(*) FILTER (WHERE all_visible) FROM pg_visibility_map('c')`, &n)
		queryRow(t, url, `SELECT (page_header(get_raw_page('c', 'vm', 0))).lsn::text`, &lsnv)
		return
	}
	exec(t, app, `CREATE EXTENSION pageinspect`)
	n, l := vis(app)
	t.Logf("source before FULL: %d all-visible, vm lsn %s", n, l)
	s1 := newDirStore(t)
	full, err := physical.Backup(ctx, s1, physical.Options{ConnString: src.URL("postgres")})
	require.NoError(t, err)
	exec(t, app, `DELETE FROM c WHERE id % 40 = 0`)
	n, l = vis(app)
	t.Logf("source after delete: %d all-visible, vm lsn %s", n, l)
	s2 := newDirStore(t)
	diff, err := physical.Backup(ctx, s2, physical.Options{ConnString: src.URL("postgres"), Parent: full})
	require.NoError(t, err)
	for _, f := range diff.Files {
		if f.Delta || f.Object != "" {
			t.Logf("diff: %+v", f)
		}
	}
	r := restoreAndStart(t, []*physical.Manifest{full, diff}, []*dirStore{s1, s2})
	n, l = vis(r.URL("app"))
	t.Logf("restored: %d all-visible, vm lsn %s", n, l)
	var a, b int64
	queryRow(t, r.URL("app"), "SELECT count(*) FROM c", &a)
	exec(t, r.URL("app"), "SET enable_seqscan = off")
	conn, err := pgx.Connect(ctx, r.URL("app"))
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "SET enable_seqscan = off; SET enable_bitmapscan = off")
	require.NoError(t, err)
	rows, err := conn.Query(ctx, "EXPLAIN (ANALYZE) SELECT count(*) FROM c WHERE id >= 0")
	require.NoError(t, err)
	for rows.Next() {
		var line string
		require.NoError(t, rows.Scan(&line))
		t.Log(line)
	}
	require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM c WHERE id >= 0").Scan(&b))
	t.Logf("seq %d, index only %d", a, b)
}
