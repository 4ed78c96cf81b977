package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/onevault/readiness/internal/demodata"
	"github.com/onevault/readiness/internal/pgcluster"
	"github.com/onevault/readiness/internal/storage"
)

// database is the managed database the benchmark fills and backs up.
const database = "one_vault"

// countTable is the table whose row count a restored instance must match: one of the
// tables that demodata.Change writes to, so that the chain restore proves the incremental.
const countTable = demodata.SatEncounterClinical

// bench is one run of the benchmark.
type bench struct {
	cfg      config
	out      io.Writer
	work     string // the work directory
	sockDir  string // the source cluster's Unix socket, for pgBackRest (short: socket paths are limited)
	clusters []*pgcluster.Cluster
	key      string // the repository's age identity
	src      *pgcluster.Cluster
	pgbr     *pgBackRest
	r        results
}

// path returns a path inside the work directory.
func (b *bench) path(name string) string { return filepath.Join(b.work, name) }

func (b *bench) repo() string { return b.path("repo") }

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.out, "%s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// results are the figures the report prints.
type results struct {
	pgVersion, pgbrVersion string
	archiving              string

	genTime             time.Duration
	genBytes, genRows   int64
	dbSize, dataDirSize int64 // pg_database_size; the data directory without pg_wal
	sourceCount         int64 // rows of countTable before the change
	changedRows         int64
	changedSourceCount  int64     // rows of countTable after the change
	oursFull, oursIncr  *childRun // oursFull: the first FULL run
	oursFullWalls       []time.Duration
	pgbrFullWalls       []time.Duration
	oursFullTime        time.Duration // medians over the runs
	pgbrFullTime        time.Duration
	oursFullPeak        int64 // peak RSS, the largest over the runs
	pgbrFullPeak        int64
	oursFullDir         int64 // du of the backup directory (objects + manifest.json)
	oursIncrDir         int64
	pgbrFull, pgbrIncr  pgbrRun // pgbrFull: the first full run
	baseWall            time.Duration
	baseRSS, baseBytes  int64
	oursRestore         *childRun
	oursReady           time.Duration
	oursCount           int64
	pgbrRestoreWall     time.Duration
	pgbrRestoreRSS      int64
	pgbrReady           time.Duration
	pgbrCount           int64
	chainRestore        *childRun
	chainReady          time.Duration
	chainCount          int64
}

// pgbrRun is one pgBackRest backup.
type pgbrRun struct {
	wall       time.Duration
	rss        int64
	label      string
	dirBytes   int64 // du of repo/backup/<stanza>/<label>
	walBytes   int64 // archived WAL from the backup's start to its stop segment
	walSegs    int
	repoDelta  int64 // what pgbackrest info says the backup added to the repository
	sizeOnDisk int64 // the backup's database size according to pgbackrest info
}

func (b *bench) run(ctx context.Context) error {
	r := &b.r
	b.logf("bench-backup: size %s, %d tenants, work directory %s, %d CPUs", b.cfg.sizeText, b.cfg.tenants, b.work, runtime.NumCPU())

	// 1. pgBackRest, the source cluster, the stanza and the data.
	bin, err := b.ensurePgBackRest(ctx)
	if err != nil {
		return err
	}
	if out, err := exec.CommandContext(ctx, bin, "version").Output(); err == nil {
		r.pgbrVersion = strings.TrimSpace(string(out))
	}
	if b.key, err = storage.GenerateKey(); err != nil {
		return err
	}
	if b.sockDir, err = os.MkdirTemp("/tmp", "bbsock-"); err != nil {
		return err
	}
	b.pgbr = newPgBackRest(bin, b.path("pgbackrest"), nil)
	b.src, err = pgcluster.New(pgcluster.Options{
		DataDir: b.path("source"),
		Settings: map[string]string{
			"wal_level":               "replica",
			"max_wal_senders":         "10",
			"archive_mode":            "on",
			"archive_command":         b.pgbr.archiveCommand(),
			"unix_socket_directories": b.sockDir,
			"max_wal_size":            "2GB",
		},
		Logf: b.logf,
	})
	if err != nil {
		return err
	}
	b.pgbr.cluster = b.src
	if err := b.src.MkdirOwned(b.sockDir); err != nil {
		return err
	}
	b.clusters = append(b.clusters, b.src)
	if err := b.src.Start(ctx); err != nil {
		return err
	}
	if err := queryOne(ctx, b.src.URL("postgres"), "SELECT current_setting('server_version')", &r.pgVersion); err != nil {
		return err
	}
	r.archiving = "archive_mode=on, archive_command=pgbackrest archive-push (stanza " + stanza + "), so that pgBackRest's backups are valid " +
		"with its default archive-check (their WAL is in its archive); ours and pg_basebackup -X fetch carry their WAL in the backup"
	b.logf("source cluster: PostgreSQL %s on port %d, %s", r.pgVersion, b.src.Port(), b.src.DataDir())
	b.logf("WAL archiving: %s", r.archiving)
	if err := b.pgbr.setup(b.src.DataDir(), b.sockDir, b.src.Port()); err != nil {
		return err
	}
	if _, _, err := b.pgbr.run(ctx, "stanza-create"); err != nil {
		return err
	}
	if _, _, err := b.pgbr.run(ctx, "check"); err != nil {
		return err
	}
	b.logf("pgBackRest: stanza %s created and checked (archiving works), repository %s", stanza, b.pgbr.repo)

	if err := b.src.CreateDatabase(ctx, database); err != nil {
		return err
	}
	url := b.src.URL(database)
	if err := b.generate(ctx, url); err != nil {
		return err
	}

	// 2-4. FULL backups: ours, pgBackRest, pg_basebackup.
	// With --runs N, the FULL backups alternate (ours first in odd rounds, pgBackRest first in
	// even ones) so that load from other work on the machine falls on both alike; the times
	// are the medians. The first FULL of each is the one restored and the incrementals' parent.
	var fullID string
	for round := range b.cfg.runs {
		ours := func() error {
			id := uuid.NewString()
			if err := b.settle(ctx, "before our FULL backup"); err != nil {
				return err
			}
			b.logf("FULL SYSTEM backup by our engine (child process, concurrency 2, zstd 3 + age), run %d of %d ...", round+1, b.cfg.runs)
			run, err := b.runChild(ctx, fmt.Sprintf("full-%d", round+1), childSpec{Op: "backup", Repo: b.repo(), ConnString: url, ID: id})
			if err != nil {
				return err
			}
			stored, err := dirBytes(filepath.Join(b.repo(), id))
			if err != nil {
				return err
			}
			b.logf("ours FULL: %s, %s stored, peak RSS %s", fmtDur(run.Wall), formatBytes(stored), formatBytes(run.PeakRSS))
			if fullID == "" {
				fullID, r.oursFull, r.oursFullDir = id, run, stored
			}
			r.oursFullWalls = append(r.oursFullWalls, run.Wall)
			r.oursFullPeak = max(r.oursFullPeak, run.PeakRSS)
			return nil
		}
		theirs := func() error {
			if err := b.settle(ctx, "before the pgBackRest full backup"); err != nil {
				return err
			}
			b.logf("pgBackRest full backup (zstd 3, process-max 2), run %d of %d ...", round+1, b.cfg.runs)
			run, err := b.pgbrBackup(ctx, "full")
			if err != nil {
				return err
			}
			b.logf("pgBackRest full %s: %s, %s in the backup directory + %s of archived WAL", run.label,
				fmtDur(run.wall), formatBytes(run.dirBytes), formatBytes(run.walBytes))
			if r.pgbrFull.label == "" {
				r.pgbrFull = run
			}
			r.pgbrFullWalls = append(r.pgbrFullWalls, run.wall)
			r.pgbrFullPeak = max(r.pgbrFullPeak, run.rss)
			return nil
		}
		first, second := ours, theirs
		if round%2 == 1 {
			first, second = theirs, ours
		}
		if err := first(); err != nil {
			return err
		}
		if err := second(); err != nil {
			return err
		}
	}
	r.oursFullTime, r.pgbrFullTime = median(r.oursFullWalls), median(r.pgbrFullWalls)

	if err := b.settle(ctx, "before pg_basebackup"); err != nil {
		return err
	}
	if err := b.baseBackup(ctx); err != nil {
		return err
	}

	// 5. Restores of the FULL backups.
	if r.sourceCount, err = countRows(ctx, url); err != nil {
		return err
	}
	b.logf("restore of our FULL (child process) ...")
	target := b.path("restore-ours")
	if r.oursRestore, err = b.runChild(ctx, "restore-full", childSpec{Op: "restore", Repo: b.repo(), Chain: []string{fullID}, Target: target}); err != nil {
		return err
	}
	if r.oursReady, r.oursCount, err = b.startRestored(ctx, target); err != nil {
		return err
	}
	b.logf("ours restore: %s laying files, %s to accept a query; %s has %d rows (source %d)",
		fmtDur(r.oursRestore.Wall), fmtDur(r.oursReady), countTable, r.oursCount, r.sourceCount)

	b.logf("pgBackRest restore of %s (--type=immediate --target-action=promote) ...", r.pgbrFull.label)
	target = b.path("restore-pgbackrest")
	if err := b.src.MkdirOwned(target); err != nil {
		return err
	}
	if r.pgbrRestoreWall, r.pgbrRestoreRSS, err = b.pgbr.run(ctx, "--pg1-path="+target, "--set="+r.pgbrFull.label,
		"--type=immediate", "--target-action=promote", "--archive-mode=off", "restore"); err != nil {
		return err
	}
	if r.pgbrReady, r.pgbrCount, err = b.startRestored(ctx, target); err != nil {
		return err
	}
	b.logf("pgBackRest restore: %s laying files, %s to accept a query; %s has %d rows (source %d)",
		fmtDur(r.pgbrRestoreWall), fmtDur(r.pgbrReady), countTable, r.pgbrCount, r.sourceCount)

	// 6. Change 1% of the rows, then INCREMENTAL backups.
	b.logf("changing 1%% of the rows (demodata.Change 0.01) ...")
	if r.changedRows, err = demodata.Change(ctx, url, 0.01); err != nil {
		return err
	}
	if r.changedSourceCount, err = countRows(ctx, url); err != nil {
		return err
	}
	b.logf("changed %d rows in %s", r.changedRows, strings.Join(demodata.ChangedTables(), ", "))
	if err := b.settle(ctx, "before the INCREMENTAL backups"); err != nil {
		return err
	}
	incrID := uuid.NewString()
	b.logf("INCREMENTAL SYSTEM backup by our engine, parent = the FULL (child process) ...")
	if r.oursIncr, err = b.runChild(ctx, "incremental", childSpec{Op: "backup", Repo: b.repo(), ConnString: url, ID: incrID, Parent: fullID}); err != nil {
		return err
	}
	if r.oursIncrDir, err = dirBytes(filepath.Join(b.repo(), incrID)); err != nil {
		return err
	}
	b.logf("ours INCREMENTAL: %s, %s stored (%.2f%% of the FULL), peak RSS %s", fmtDur(r.oursIncr.Wall),
		formatBytes(r.oursIncrDir), pct(r.oursIncrDir, r.oursFullDir), formatBytes(r.oursIncr.PeakRSS))

	if err := b.settle(ctx, "before the pgBackRest incr backup"); err != nil {
		return err
	}
	b.logf("pgBackRest incr backup ...")
	if r.pgbrIncr, err = b.pgbrBackup(ctx, "incr"); err != nil {
		return err
	}
	b.logf("pgBackRest incr %s: %s, %s in the backup directory + %s of archived WAL", r.pgbrIncr.label,
		fmtDur(r.pgbrIncr.wall), formatBytes(r.pgbrIncr.dirBytes), formatBytes(r.pgbrIncr.walBytes))

	b.logf("restore of our FULL + INCREMENTAL chain (child process), to check the incremental ...")
	target = b.path("restore-chain")
	if r.chainRestore, err = b.runChild(ctx, "restore-chain", childSpec{Op: "restore", Repo: b.repo(), Chain: []string{fullID, incrID}, Target: target}); err != nil {
		return err
	}
	if r.chainReady, r.chainCount, err = b.startRestored(ctx, target); err != nil {
		return err
	}
	b.logf("chain restore: %s laying files, %s to accept a query; %s has %d rows (source after the change %d)",
		fmtDur(r.chainRestore.Wall), fmtDur(r.chainReady), countTable, r.chainCount, r.changedSourceCount)

	// 7. The report; a restore that lost rows is an error, a missed target is not.
	b.report()
	return r.rowsOK()
}

// generate fills the database with demodata until it has grown by --size.
func (b *bench) generate(ctx context.Context, url string) error {
	r := &b.r
	if err := demodata.Ensure(ctx, url); err != nil {
		return err
	}
	tenants := make([]string, b.cfg.tenants)
	for i := range tenants {
		tenants[i] = fmt.Sprintf("tenant%03d", i+1)
	}
	b.logf("generating %s of demo data for %d tenants ...", b.cfg.sizeText, len(tenants))
	start := time.Now()
	// Generate meets its target within about 10%; top up until the dataset has at least --size.
	for round := 0; r.genBytes < b.cfg.size && round < 4; round++ {
		st, err := demodata.Generate(ctx, url, demodata.Options{Tenants: tenants, Size: max(b.cfg.size-r.genBytes, 1<<20), Logf: b.logf})
		if err != nil {
			return err
		}
		r.genBytes += st.Bytes
		r.genRows += st.Rows
	}
	r.genTime = time.Since(start)
	if err := queryOne(ctx, url, "SELECT pg_database_size(current_database())", &r.dbSize); err != nil {
		return err
	}
	var err error
	if r.dataDirSize, err = dataDirBytes(b.src.DataDir()); err != nil {
		return err
	}
	b.logf("generated %s in %d rows in %s (%.1f MB/s); database %s is %s, the data directory %s without pg_wal",
		formatBytes(r.genBytes), r.genRows, fmtDur(r.genTime), float64(r.genBytes)/1e6/r.genTime.Seconds(),
		database, formatBytes(r.dbSize), formatBytes(r.dataDirSize))
	return nil
}

// settle makes each measurement start from the same state: a checkpoint (so that no backup
// pays for flushing another's dirty buffers), every finished WAL segment archived (so that
// no archive-push of earlier WAL competes for the CPUs), and the page cache's dirty pages
// written out. The data files stay in the page cache for every tool alike.
func (b *bench) settle(ctx context.Context, what string) error {
	url := b.src.URL("postgres")
	if err := execSQL(ctx, url, "CHECKPOINT"); err != nil {
		return err
	}
	deadline := time.Now().Add(20 * time.Minute)
	lastLog := time.Now()
	for {
		var ready, failed int64
		var lastFailed string
		err := queryOne(ctx, url, `SELECT (SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'),
			failed_count, coalesce(last_failed_wal, '') FROM pg_stat_archiver`, &ready, &failed, &lastFailed)
		if err != nil {
			return err
		}
		if ready == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("WAL archiving is stuck %s: %d segments not archived, %d failures (last %s); see %s",
				what, ready, failed, lastFailed, filepath.Join(b.pgbr.dir, "log"))
		}
		if time.Since(lastLog) > 30*time.Second {
			b.logf("waiting for archive-push of %d WAL segments %s (%d failures so far)", ready, what, failed)
			lastLog = time.Now()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	syscall.Sync()
	return nil
}

// pgbrBackup runs one pgBackRest backup of the given type and measures it.
func (b *bench) pgbrBackup(ctx context.Context, typ string) (pgbrRun, error) {
	var run pgbrRun
	var err error
	if run.wall, run.rss, err = b.pgbr.run(ctx, "--type="+typ, "backup"); err != nil {
		return run, err
	}
	last, err := b.pgbr.lastBackup(ctx)
	if err != nil {
		return run, err
	}
	run.label, run.repoDelta, run.sizeOnDisk = last.Label, last.Info.Repository.Delta, last.Info.Size
	if run.dirBytes, err = dirBytes(b.pgbr.backupDir(last.Label)); err != nil {
		return run, err
	}
	if run.walBytes, run.walSegs, err = b.pgbr.walBytes(last.Archive.Start, last.Archive.Stop); err != nil {
		return run, err
	}
	return run, nil
}

// baseBackup runs pg_basebackup -X fetch -c fast into a plain, uncompressed directory.
func (b *bench) baseBackup(ctx context.Context) error {
	r := &b.r
	dir := b.path("basebackup")
	if err := b.src.MkdirOwned(dir); err != nil {
		return err
	}
	b.logf("pg_basebackup -X fetch -c fast (plain, no compression) ...")
	cmd := exec.CommandContext(ctx, filepath.Join(b.src.BinDir(), "pg_basebackup"), "-D", dir, "-X", "fetch", "-c", "fast",
		"-d", b.src.URL("postgres"))
	cmd.Dir = "/"
	b.src.RunAsOwner(cmd)
	terminateOnCancel(cmd)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	r.baseWall = time.Since(start)
	if err != nil {
		return fmt.Errorf("pg_basebackup: %w\n%s", err, strings.TrimSpace(string(out)))
	}
	r.baseRSS = maxRSS(cmd.ProcessState)
	if r.baseBytes, err = dirBytes(dir); err != nil {
		return err
	}
	b.logf("pg_basebackup: %s, %s", fmtDur(r.baseWall), formatBytes(r.baseBytes))
	if !b.cfg.keep {
		return os.RemoveAll(dir)
	}
	return nil
}

// startRestored starts a restored data directory as a new instance on a free port with
// archiving off, and returns how long it took to accept a query and the row count of
// countTable. It stops the instance afterwards and, unless --keep, removes the directory.
func (b *bench) startRestored(ctx context.Context, dir string) (time.Duration, int64, error) {
	c, err := pgcluster.New(pgcluster.Options{DataDir: dir, Settings: map[string]string{"archive_mode": "off"}, Logf: b.logf})
	if err != nil {
		return 0, 0, err
	}
	b.clusters = append(b.clusters, c)
	start := time.Now()
	if err := c.Start(ctx); err != nil {
		return 0, 0, err
	}
	url := c.URL(database)
	for {
		var one int
		err := queryOne(ctx, url, "SELECT 1", &one)
		if err == nil {
			break
		}
		if time.Since(start) > 5*time.Minute || ctx.Err() != nil {
			return 0, 0, fmt.Errorf("restored instance %s does not accept queries: %w", dir, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	ready := time.Since(start)
	n, err := countRows(ctx, url)
	if err != nil {
		return 0, 0, err
	}
	if err := c.Stop(ctx); err != nil {
		return 0, 0, err
	}
	if !b.cfg.keep {
		if err := os.RemoveAll(dir); err != nil {
			return 0, 0, err
		}
	}
	return ready, n, nil
}

func countRows(ctx context.Context, url string) (int64, error) {
	var n int64
	err := queryOne(ctx, url, "SELECT count(*) FROM "+countTable, &n)
	return n, err
}

// queryOne runs a query that returns one row on a new connection.
func queryOne(ctx context.Context, url, sql string, dest ...any) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := conn.QueryRow(ctx, sql).Scan(dest...); err != nil {
		return fmt.Errorf("%s: %w", strings.Fields(sql)[0], err)
	}
	return nil
}

func execSQL(ctx context.Context, url, sql string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql)
	return err
}

// dirBytes sums the apparent sizes of the regular files under dir (du -sb).
func dirBytes(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil // a file removed under a running server
			}
			return err
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			if err != nil {
				return err
			}
			total += fi.Size()
		}
		return nil
	})
	return total, err
}

// dataDirBytes is dirBytes of a data directory without pg_wal.
func dataDirBytes(dir string) (int64, error) {
	all, err := dirBytes(dir)
	if err != nil {
		return 0, err
	}
	wal, err := dirBytes(filepath.Join(dir, "pg_wal"))
	return all - wal, err
}

// median returns the median of ds (the mean of the middle two for an even count).
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
