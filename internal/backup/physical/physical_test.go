package physical_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/onevault/readiness/internal/backup/physical"
)

func TestFullBackupRestoresWithTheWritesMadeDuringIt(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	src := startCluster(t, nil)
	require.NoError(t, src.CreateDatabase(ctx, "app"))
	app := src.URL("app")
	execSQL(t, app,
		`CREATE TABLE t1 (id int PRIMARY KEY, v text NOT NULL)`,
		`INSERT INTO t1 SELECT g, md5(g::text) FROM generate_series(1, 200000) g`,
		`CREATE INDEX t1_v ON t1 (v)`,
		`CREATE TABLE t2 (id int PRIMARY KEY, n int NOT NULL DEFAULT 0, v text NOT NULL)`,
		`INSERT INTO t2 SELECT g, 0, repeat(md5(g::text), 4) FROM generate_series(1, 50000) g`,
		// Rows of about 6 kB: TOASTed.
		`CREATE TABLE t3 (id int PRIMARY KEY, doc text NOT NULL)`,
		`INSERT INTO t3 SELECT g, (SELECT string_agg(md5((g * 1000 + i)::text), '') FROM generate_series(1, 200) i) FROM generate_series(1, 500) g`,
		`CREATE UNLOGGED TABLE u (id int PRIMARY KEY)`,
		`INSERT INTO u SELECT generate_series(1, 1000)`,
		`CREATE TABLE live (id int PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())`,
		`VACUUM ANALYZE`,
	)
	static := tableStates(t, app, "t1", "t3")

	// A writer commits, in a loop, a row into live and an increment of one row of t2,
	// so that a restored state has k rows in live and k or k-1 increments in t2.
	var iterations atomic.Int64
	stopWriter := make(chan struct{})
	writerErr := make(chan error, 1)
	go func() {
		conn, err := pgx.Connect(ctx, app)
		if err != nil {
			writerErr <- err
			return
		}
		defer conn.Close(context.Background())
		for i := int64(1); ; i++ {
			select {
			case <-stopWriter:
				writerErr <- nil
				return
			default:
			}
			if _, err := conn.Exec(ctx, "INSERT INTO live (id) VALUES ($1)", i); err != nil {
				writerErr <- err
				return
			}
			if _, err := conn.Exec(ctx, "UPDATE t2 SET n = n + 1 WHERE id = $1", (i*7919)%50000+1); err != nil {
				writerErr <- err
				return
			}
			iterations.Store(i)
		}
	}()
	require.Eventually(t, func() bool { return iterations.Load() >= 100 }, time.Minute, 10*time.Millisecond)

	store := newDirStore(t)
	store.writeDelay = 2 * time.Millisecond // a backup of a few seconds, with the writer running
	var atStop int64 = -1
	var phases []string
	var copyTotal, copyDone int64
	var mu sync.Mutex
	m, err := physical.Backup(ctx, store, physical.Options{
		ConnString: src.URL("postgres"),
		Label:      "full test",
		Progress: func(p physical.Progress) {
			mu.Lock()
			defer mu.Unlock()
			if p.Phase == physical.PhaseCopy {
				copyTotal, copyDone = p.BytesTotal, max(copyDone, p.BytesDone)
			}
			if p.Phase == physical.PhaseStop && atStop < 0 {
				atStop = iterations.Load()
			}
			if len(phases) == 0 || phases[len(phases)-1] != p.Phase {
				phases = append(phases, p.Phase)
			}
		},
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil)),
	})
	require.NoError(t, err)
	close(stopWriter)
	require.NoError(t, <-writerErr)
	final := iterations.Load()
	t.Logf("writer: %d iterations when pg_backup_stop was called, %d in all", atStop, final)

	t.Run("the manifest describes a FULL backup with its WAL", func(t *testing.T) {
		require.Equal(t, physical.KindFull, m.Kind)
		require.GreaterOrEqual(t, m.PGVersion, 150000)
		require.NotEmpty(t, m.SystemID)
		require.Equal(t, 1, m.Timeline)
		require.Contains(t, m.BackupLabel, "LABEL: full test")
		require.NotEmpty(t, m.WAL)
		require.Equal(t, int64(16<<20), m.WALSegmentSize)
		require.Equal(t, []string{physical.PhaseStart, physical.PhaseCopy, physical.PhaseStop, physical.PhaseWAL, physical.PhaseDone}, phases)
		require.Greater(t, copyTotal, int64(30<<20))
		require.Positive(t, copyDone, "progress was reported while copying")
		require.Greater(t, m.BytesScanned, int64(30<<20))
		require.Greater(t, m.BytesWritten, int64(30<<20))
		paths := map[string]physical.File{}
		for _, f := range m.Files {
			paths[f.Path] = f
			require.NotEmpty(t, f.Object, f.Path)
			require.False(t, f.Delta)
		}
		for _, p := range []string{"PG_VERSION", "global/pg_control", "postgresql.conf", "pg_xact/0000"} {
			require.Contains(t, paths, p)
		}
		for p := range paths {
			require.False(t, strings.HasPrefix(p, "pg_wal/") || strings.HasPrefix(p, "log/") || p == "postmaster.pid", p)
		}
		require.Contains(t, m.Dirs, "pg_wal")
		require.Contains(t, m.Dirs, "pg_twophase")
	})

	restored := restoreAndStart(t, []*physical.Manifest{m}, []*dirStore{store})
	rapp := restored.URL("app")

	t.Run("the restored instance is a consistent primary", func(t *testing.T) {
		var inRecovery bool
		queryRow(t, rapp, "SELECT pg_is_in_recovery()", &inRecovery)
		require.False(t, inRecovery)
	})
	t.Run("tables not written during the backup match the source", func(t *testing.T) {
		requireIndexesAgree(t, rapp, "t1", "t2", "t3", "live")
		require.Equal(t, static, tableStates(t, rapp, "t1", "t3"))
	})
	t.Run("every write committed before pg_backup_stop is there, in order", func(t *testing.T) {
		var k, lo, hi, increments, t2rows int64
		queryRow(t, rapp, "SELECT count(*), coalesce(min(id), 0), coalesce(max(id), 0) FROM live", &k, &lo, &hi)
		queryRow(t, rapp, "SELECT sum(n), count(*) FROM t2", &increments, &t2rows)
		require.GreaterOrEqual(t, k, atStop)
		require.LessOrEqual(t, k, final)
		require.Equal(t, int64(1), lo)
		require.Equal(t, k, hi, "live holds a prefix of the writer's rows")
		require.Contains(t, []int64{k - 1, k}, increments)
		require.Equal(t, int64(50000), t2rows)
	})
	t.Run("an unlogged table comes back empty", func(t *testing.T) {
		var n int64
		queryRow(t, rapp, "SELECT count(*) FROM u", &n)
		require.Zero(t, n)
	})
	t.Run("VACUUM, CHECKPOINT and new writes succeed", func(t *testing.T) {
		execSQL(t, rapp, "VACUUM ANALYZE", "INSERT INTO live (id) SELECT max(id) + 1 FROM live", "CHECKPOINT")
	})
}

// chainStep is a backup of the chain test and the source's tables right after it.
type chainStep struct {
	m      *physical.Manifest
	store  *dirStore
	tables map[string]string
}

var chainTables = []string{"a", "b", "c", "d", "e", "f", "g", "h"}

func TestDeltaChainRestores(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	// No autovacuum: the visibility map changes only where the test says.
	src := startCluster(t, map[string]string{"autovacuum": "off"})
	require.NoError(t, src.CreateDatabase(ctx, "app"))
	app := src.URL("app")
	execSQL(t, app,
		`CREATE TABLE a (id int PRIMARY KEY, n int NOT NULL, v text NOT NULL)`,
		`INSERT INTO a SELECT g, 0, md5(g::text) FROM generate_series(1, 40000) g`,
		`CREATE TABLE b (id int PRIMARY KEY, n int NOT NULL, v text NOT NULL)`,
		`INSERT INTO b SELECT g, g % 100, md5(g::text) FROM generate_series(1, 40000) g`,
		`CREATE TABLE c (id int PRIMARY KEY, v text NOT NULL)`,
		`INSERT INTO c SELECT g, md5(g::text) FROM generate_series(1, 40000) g`,
		`CREATE TABLE d (id int PRIMARY KEY, v text NOT NULL)`,
		`INSERT INTO d SELECT g, md5(g::text) FROM generate_series(1, 10000) g`,
		`CREATE TABLE f (id int PRIMARY KEY, v text NOT NULL)`,
		`INSERT INTO f SELECT g, md5(g::text) FROM generate_series(1, 10000) g`,
		`CREATE TABLE g (id int PRIMARY KEY, v text NOT NULL)`,
		`INSERT INTO g SELECT g, md5(g::text) FROM generate_series(1, 40000) g`,
		`VACUUM ANALYZE`, // sets the visibility map: every page all-visible
	)

	var steps []chainStep
	backup := func(parent *chainStep) {
		t.Helper()
		store := newDirStore(t)
		opts := physical.Options{ConnString: src.URL("postgres"), Concurrency: 3, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))}
		if parent != nil {
			opts.Parent = parent.m
		}
		m, err := physical.Backup(ctx, store, opts)
		require.NoError(t, err)
		steps = append(steps, chainStep{m: m, store: store, tables: tableStates(t, app, chainTables...)})
	}

	backup(nil) // FULL
	execSQL(t, app,
		`UPDATE a SET n = n + 1 WHERE id % 50 = 0`,
		`INSERT INTO b SELECT g, g % 100, md5(g::text) FROM generate_series(40001, 41000) g`,
		`DELETE FROM c WHERE id % 40 = 0`, // clears visibility map bits without a new map page LSN
		`DROP TABLE d`,
		`CREATE TABLE e (id int PRIMARY KEY, v text NOT NULL)`,
		`INSERT INTO e SELECT g, md5(g::text) FROM generate_series(1, 5000) g`,
		`TRUNCATE f`,
		`INSERT INTO f SELECT g, 'after truncate' FROM generate_series(1, 100) g`,
		`DELETE FROM g WHERE id % 3 = 0`,
		`VACUUM FULL g`, // a new relfilenode
	)
	backup(&steps[0]) // DIFFERENTIAL
	execSQL(t, app,
		`UPDATE a SET v = v || 'x' WHERE id BETWEEN 1000 AND 1400`,
		`DELETE FROM c WHERE id > 39000`,
		`VACUUM c`, // truncates c's heap
		`INSERT INTO e SELECT g, md5(g::text) FROM generate_series(5001, 6000) g`,
		`CREATE INDEX b_n ON b (n)`,
		`CREATE TABLE h (id int PRIMARY KEY, v text NOT NULL)`,
		`INSERT INTO h SELECT g, md5(g::text) FROM generate_series(1, 3000) g`,
	)
	backup(&steps[1]) // INCREMENTAL
	execSQL(t, app,
		`UPDATE b SET v = upper(v) WHERE id % 30 = 0`,
		`TRUNCATE e`,
		`INSERT INTO e SELECT g, 'again' FROM generate_series(1, 10) g`,
		`VACUUM FULL a`,
		`DELETE FROM c WHERE id % 7 = 0`,
		`ALTER TABLE f ADD COLUMN w int DEFAULT 7`,
		`UPDATE h SET v = 'changed' WHERE id <= 30`,
	)
	backup(&steps[2]) // INCREMENTAL

	full, diff, inc1, inc2 := steps[0].m, steps[1].m, steps[2].m, steps[3].m
	t.Run("each DELTA is relative to its parent's start", func(t *testing.T) {
		require.Equal(t, physical.KindFull, full.Kind)
		for i, m := range []*physical.Manifest{diff, inc1, inc2} {
			require.Equal(t, physical.KindDelta, m.Kind)
			require.Equal(t, steps[i].m.StartLSN, m.ParentStartLSN)
		}
	})
	t.Run("a DELTA stores changed blocks and leaves unchanged files out", func(t *testing.T) {
		for _, m := range []*physical.Manifest{diff, inc1, inc2} {
			var deltas, unchanged, whole int
			for _, f := range m.Files {
				switch {
				case f.Delta:
					deltas++
					require.Positive(t, f.Blocks)
				case f.Object == "":
					unchanged++
				default:
					whole++
				}
			}
			require.Positive(t, deltas)
			require.Greater(t, unchanged, whole, "most files are unchanged")
			require.Less(t, m.BytesWritten, full.BytesWritten/4)
		}
	})

	t.Run("FULL+DIFFERENTIAL+INCREMENTAL+INCREMENTAL restores the last state", func(t *testing.T) {
		restored := restoreAndStart(t, []*physical.Manifest{full, diff, inc1, inc2},
			[]*dirStore{steps[0].store, steps[1].store, steps[2].store, steps[3].store})
		url := restored.URL("app")
		// Index-only scans first: a scan that visits the heap marks dead index entries,
		// which would hide a stale visibility map.
		requireIndexesAgree(t, url, "a", "b", "c", "e", "f", "g", "h")
		require.Equal(t, steps[3].tables, tableStates(t, url, chainTables...))
		execSQL(t, url, "VACUUM ANALYZE")
	})
	t.Run("FULL+DIFFERENTIAL restores the differential's state", func(t *testing.T) {
		restored := restoreAndStart(t, []*physical.Manifest{full, diff}, []*dirStore{steps[0].store, steps[1].store})
		url := restored.URL("app")
		requireIndexesAgree(t, url, "a", "b", "c", "e", "f", "g")
		require.Equal(t, steps[1].tables, tableStates(t, url, chainTables...))
	})
	t.Run("Restore refuses a chain that skips a backup", func(t *testing.T) {
		err := physical.Restore(ctx, []*physical.Manifest{full, inc1}, []physical.Source{steps[0].store, steps[2].store},
			filepath.Join(t.TempDir(), "x"), nil)
		require.ErrorIs(t, err, physical.ErrInvalidChain)
	})
	t.Run("a DELTA against a parent of another cluster is refused", func(t *testing.T) {
		other := *full
		other.SystemID = "42"
		_, err := physical.Backup(ctx, newDirStore(t), physical.Options{ConnString: src.URL("postgres"), Parent: &other})
		require.ErrorIs(t, err, physical.ErrParentMismatch)
	})
}

func TestIncrementalOfOnePercentIsSmall(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	src := startCluster(t, nil)
	require.NoError(t, src.CreateDatabase(ctx, "app"))
	app := src.URL("app")
	execSQL(t, app,
		`CREATE TABLE big (id int PRIMARY KEY, v text NOT NULL)`,
		`INSERT INTO big SELECT g, md5(g::text) || repeat(md5((g * 3)::text), 5) FROM generate_series(1, 250000) g`,
		`VACUUM ANALYZE big`,
	)
	var tableBytes int64
	queryRow(t, app, "SELECT pg_table_size('big')", &tableBytes)
	require.Greater(t, tableBytes, int64(45<<20))

	fullStore := newDirStore(t)
	full, err := physical.Backup(ctx, fullStore, physical.Options{ConnString: src.URL("postgres")})
	require.NoError(t, err)
	execSQL(t, app, `UPDATE big SET v = upper(v) WHERE id BETWEEN 100001 AND 102500`) // 1%, in one region
	incStore := newDirStore(t)
	inc, err := physical.Backup(ctx, incStore, physical.Options{ConnString: src.URL("postgres"), Parent: full})
	require.NoError(t, err)
	want := tableStates(t, app, "big")

	t.Logf("table %d bytes; FULL wrote %d bytes, INCREMENTAL %d (%.2f%%)", tableBytes, full.BytesWritten,
		inc.BytesWritten, 100*float64(inc.BytesWritten)/float64(full.BytesWritten))
	t.Run("the INCREMENTAL writes under 5% of the FULL's bytes", func(t *testing.T) {
		require.Less(t, inc.BytesWritten*20, full.BytesWritten)
	})
	t.Run("and restores the updated rows", func(t *testing.T) {
		restored := restoreAndStart(t, []*physical.Manifest{full, inc}, []*dirStore{fullStore, incStore})
		require.Equal(t, want, tableStates(t, restored.URL("app"), "big"))
	})
}

func TestBackupRefusesWhatItCannotBackUp(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	src := startCluster(t, nil)

	t.Run("a data directory of another cluster", func(t *testing.T) {
		other := t.TempDir()
		require.NoError(t, os.MkdirAll(filepath.Join(other, "global"), 0o700))
		require.NoError(t, os.WriteFile(filepath.Join(other, "global", "pg_control"), make([]byte, 8192), 0o600))
		_, err := physical.Backup(ctx, newDirStore(t), physical.Options{ConnString: src.URL("postgres"), DataDir: other})
		require.ErrorContains(t, err, "belongs to system")
	})
	t.Run("a cluster with a tablespace, naming it", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "ts")
		require.NoError(t, src.MkdirOwned(dir))
		execSQL(t, src.URL("postgres"), fmt.Sprintf("CREATE TABLESPACE extra LOCATION '%s'", dir))
		defer execSQL(t, src.URL("postgres"), "DROP TABLESPACE extra")
		_, err := physical.Backup(ctx, newDirStore(t), physical.Options{ConnString: src.URL("postgres")})
		require.ErrorIs(t, err, physical.ErrUnsupported)
		require.ErrorContains(t, err, "extra")
	})
	t.Run("a failed backup leaves no replication slot behind", func(t *testing.T) {
		_, err := physical.Backup(ctx, failingSink{}, physical.Options{ConnString: src.URL("postgres")})
		require.ErrorContains(t, err, "disk full")
		require.Eventually(t, func() bool {
			var slots int
			queryRow(t, src.URL("postgres"), "SELECT count(*) FROM pg_replication_slots", &slots)
			return slots == 0
		}, 10*time.Second, 50*time.Millisecond)
		_, err = physical.Backup(ctx, newDirStore(t), physical.Options{ConnString: src.URL("postgres")})
		require.NoError(t, err, "the next backup runs")
	})
}

// failingSink refuses every object.
type failingSink struct{}

func (failingSink) Create(string) (io.WriteCloser, error) { return nil, errors.New("disk full") }

func TestRestoreRefusesABadChainOrTarget(t *testing.T) {
	t.Parallel()
	full := &physical.Manifest{Kind: physical.KindFull, PGVersion: 150000, SystemID: "1", Timeline: 1,
		StartLSN: "0/2000028", StopLSN: "0/2000138", BackupLabel: "x", WAL: []string{"wal/000000010000000000000002"},
		WALSegmentSize: 16 << 20}
	delta := &physical.Manifest{Kind: physical.KindDelta, PGVersion: 150000, SystemID: "1", Timeline: 1,
		StartLSN: "0/4000028", StopLSN: "0/4000138", ParentStartLSN: "0/2000028", BackupLabel: "x",
		WAL: []string{"wal/000000010000000000000004"}, WALSegmentSize: 16 << 20}
	src := &dirStore{root: t.TempDir()}
	target := func() string { return filepath.Join(t.TempDir(), "target") }

	t.Run("a chain that does not start with a FULL", func(t *testing.T) {
		err := physical.Restore(t.Context(), []*physical.Manifest{delta}, []physical.Source{src}, target(), nil)
		require.ErrorIs(t, err, physical.ErrInvalidChain)
		require.ErrorContains(t, err, "must be FULL")
	})
	t.Run("a DELTA whose parent is not the backup before it", func(t *testing.T) {
		other := *delta
		other.ParentStartLSN = "0/3000028"
		err := physical.Restore(t.Context(), []*physical.Manifest{full, &other}, []physical.Source{src, src}, target(), nil)
		require.ErrorIs(t, err, physical.ErrInvalidChain)
	})
	t.Run("a DELTA that starts before its parent stopped", func(t *testing.T) {
		other := *delta
		other.StartLSN = "0/2000100"
		err := physical.Restore(t.Context(), []*physical.Manifest{full, &other}, []physical.Source{src, src}, target(), nil)
		require.ErrorIs(t, err, physical.ErrInvalidChain)
	})
	t.Run("a chain of another cluster's backups", func(t *testing.T) {
		other := *delta
		other.SystemID = "2"
		err := physical.Restore(t.Context(), []*physical.Manifest{full, &other}, []physical.Source{src, src}, target(), nil)
		require.ErrorIs(t, err, physical.ErrInvalidChain)
	})
	t.Run("a target directory that is not empty", func(t *testing.T) {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, "x"), nil, 0o600))
		err := physical.Restore(t.Context(), []*physical.Manifest{full}, []physical.Source{src}, dir, nil)
		require.ErrorIs(t, err, physical.ErrTargetNotEmpty)
	})
}
