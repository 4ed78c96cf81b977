package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/onevault/readiness/bench/internal/benchkit"
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
	cfg  config
	w    *benchkit.Work
	key  string // the repository's age identity
	src  *pgcluster.Cluster
	pgbr *benchkit.PgBackRest
	r    results
}

func (b *bench) repo() string { return b.w.Path("repo") }

// settle makes each measurement start from the same state (benchkit.Settle).
func (b *bench) settle(ctx context.Context, what string) error {
	return benchkit.Settle(ctx, b.src.URL("postgres"), what, filepath.Join(b.pgbr.Dir, "log"), b.w.Logf)
}

// results are the figures the report prints.
type results struct {
	pgVersion, pgbrVersion string
	archiving              string

	gen                benchkit.Generated
	sourceCount        int64 // rows of countTable before the change
	changedRows        int64
	changedSourceCount int64     // rows of countTable after the change
	oursFull, oursIncr *childRun // oursFull: the first FULL run
	oursFullWalls      []time.Duration
	pgbrFullWalls      []time.Duration
	oursFullTime       time.Duration // medians over the runs
	pgbrFullTime       time.Duration
	oursFullPeak       int64 // peak RSS, the largest over the runs
	pgbrFullPeak       int64
	oursFullDir        int64 // du of the backup directory (objects + manifest.json)
	oursIncrDir        int64
	pgbrFull, pgbrIncr pgbrRun // pgbrFull: the first full run
	baseWall           time.Duration
	baseRSS, baseBytes int64
	oursRestore        *childRun
	oursReady          time.Duration
	oursCount          int64
	pgbrRestoreWall    time.Duration
	pgbrRestoreRSS     int64
	pgbrReady          time.Duration
	pgbrCount          int64
	chainRestore       *childRun
	chainReady         time.Duration
	chainCount         int64
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
	b.w.Logf("bench-backup: size %s, %d tenants, work directory %s, %d CPUs", b.cfg.sizeText, b.cfg.tenants, b.w.Dir, runtime.NumCPU())

	// 1. pgBackRest, the source cluster, the stanza and the data.
	bin, err := benchkit.EnsurePgBackRest(ctx, b.w.Logf)
	if err != nil {
		return err
	}
	if out, err := exec.CommandContext(ctx, bin, "version").Output(); err == nil {
		r.pgbrVersion = strings.TrimSpace(string(out))
	}
	if b.key, err = storage.GenerateKey(); err != nil {
		return err
	}
	b.pgbr = benchkit.NewPgBackRest(bin, b.w.Path("pgbackrest"))
	if b.src, err = b.w.NewSource(map[string]string{"archive_command": b.pgbr.ArchiveCommand()}); err != nil {
		return err
	}
	if err := b.src.Start(ctx); err != nil {
		return err
	}
	if err := benchkit.QueryOne(ctx, b.src.URL("postgres"), "SELECT current_setting('server_version')", &r.pgVersion); err != nil {
		return err
	}
	r.archiving = "archive_mode=on, archive_command=pgbackrest archive-push (stanza " + benchkit.Stanza + "), so that pgBackRest's backups are valid " +
		"with its default archive-check (their WAL is in its archive); ours and pg_basebackup -X fetch carry their WAL in the backup"
	b.w.Logf("source cluster: PostgreSQL %s on port %d, %s", r.pgVersion, b.src.Port(), b.src.DataDir())
	b.w.Logf("WAL archiving: %s", r.archiving)
	if err := b.pgbr.Setup(b.src, b.w.SockDir); err != nil {
		return err
	}
	if _, _, err := b.pgbr.Run(ctx, "stanza-create"); err != nil {
		return err
	}
	if _, _, err := b.pgbr.Run(ctx, "check"); err != nil {
		return err
	}
	b.w.Logf("pgBackRest: stanza %s created and checked (archiving works), repository %s", benchkit.Stanza, b.pgbr.Repo)

	if err := b.src.CreateDatabase(ctx, database); err != nil {
		return err
	}
	url := b.src.URL(database)
	if r.gen, err = benchkit.Generate(ctx, url, b.src.DataDir(), b.cfg.size, b.cfg.tenants, b.w); err != nil {
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
			b.w.Logf("FULL SYSTEM backup by our engine (child process, concurrency 2, zstd 3 + age), run %d of %d ...", round+1, b.cfg.runs)
			run, err := b.runChild(ctx, fmt.Sprintf("full-%d", round+1), childSpec{Op: "backup", Repo: b.repo(), ConnString: url, ID: id})
			if err != nil {
				return err
			}
			stored, err := benchkit.DirBytes(filepath.Join(b.repo(), id))
			if err != nil {
				return err
			}
			b.w.Logf("ours FULL: %s, %s stored, peak RSS %s", benchkit.FmtDur(run.Wall), benchkit.FormatBytes(stored), benchkit.FormatBytes(run.PeakRSS))
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
			b.w.Logf("pgBackRest full backup (zstd 3, process-max 2), run %d of %d ...", round+1, b.cfg.runs)
			run, err := b.pgbrBackup(ctx, "full")
			if err != nil {
				return err
			}
			b.w.Logf("pgBackRest full %s: %s, %s in the backup directory + %s of archived WAL", run.label,
				benchkit.FmtDur(run.wall), benchkit.FormatBytes(run.dirBytes), benchkit.FormatBytes(run.walBytes))
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
	r.oursFullTime, r.pgbrFullTime = benchkit.Median(r.oursFullWalls), benchkit.Median(r.pgbrFullWalls)

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
	b.w.Logf("restore of our FULL (child process) ...")
	target := b.w.Path("restore-ours")
	if r.oursRestore, err = b.runChild(ctx, "restore-full", childSpec{Op: "restore", Repo: b.repo(), Chain: []string{fullID}, Target: target}); err != nil {
		return err
	}
	if r.oursReady, r.oursCount, err = b.startRestored(ctx, target); err != nil {
		return err
	}
	b.w.Logf("ours restore: %s laying files, %s to accept a query; %s has %d rows (source %d)",
		benchkit.FmtDur(r.oursRestore.Wall), benchkit.FmtDur(r.oursReady), countTable, r.oursCount, r.sourceCount)

	b.w.Logf("pgBackRest restore of %s (--type=immediate --target-action=promote) ...", r.pgbrFull.label)
	target = b.w.Path("restore-pgbackrest")
	if err := b.src.MkdirOwned(target); err != nil {
		return err
	}
	if r.pgbrRestoreWall, r.pgbrRestoreRSS, err = b.pgbr.Run(ctx, "--pg1-path="+target, "--set="+r.pgbrFull.label,
		"--type=immediate", "--target-action=promote", "--archive-mode=off", "restore"); err != nil {
		return err
	}
	if r.pgbrReady, r.pgbrCount, err = b.startRestored(ctx, target); err != nil {
		return err
	}
	b.w.Logf("pgBackRest restore: %s laying files, %s to accept a query; %s has %d rows (source %d)",
		benchkit.FmtDur(r.pgbrRestoreWall), benchkit.FmtDur(r.pgbrReady), countTable, r.pgbrCount, r.sourceCount)

	// 6. Change 1% of the rows, then INCREMENTAL backups.
	b.w.Logf("changing 1%% of the rows (demodata.Change 0.01) ...")
	if r.changedRows, err = demodata.Change(ctx, url, 0.01); err != nil {
		return err
	}
	if r.changedSourceCount, err = countRows(ctx, url); err != nil {
		return err
	}
	b.w.Logf("changed %d rows in %s", r.changedRows, strings.Join(demodata.ChangedTables(), ", "))
	if err := b.settle(ctx, "before the INCREMENTAL backups"); err != nil {
		return err
	}
	incrID := uuid.NewString()
	b.w.Logf("INCREMENTAL SYSTEM backup by our engine, parent = the FULL (child process) ...")
	if r.oursIncr, err = b.runChild(ctx, "incremental", childSpec{Op: "backup", Repo: b.repo(), ConnString: url, ID: incrID, Parent: fullID}); err != nil {
		return err
	}
	if r.oursIncrDir, err = benchkit.DirBytes(filepath.Join(b.repo(), incrID)); err != nil {
		return err
	}
	b.w.Logf("ours INCREMENTAL: %s, %s stored (%.2f%% of the FULL), peak RSS %s", benchkit.FmtDur(r.oursIncr.Wall),
		benchkit.FormatBytes(r.oursIncrDir), benchkit.Pct(r.oursIncrDir, r.oursFullDir), benchkit.FormatBytes(r.oursIncr.PeakRSS))

	if err := b.settle(ctx, "before the pgBackRest incr backup"); err != nil {
		return err
	}
	b.w.Logf("pgBackRest incr backup ...")
	if r.pgbrIncr, err = b.pgbrBackup(ctx, "incr"); err != nil {
		return err
	}
	b.w.Logf("pgBackRest incr %s: %s, %s in the backup directory + %s of archived WAL", r.pgbrIncr.label,
		benchkit.FmtDur(r.pgbrIncr.wall), benchkit.FormatBytes(r.pgbrIncr.dirBytes), benchkit.FormatBytes(r.pgbrIncr.walBytes))

	b.w.Logf("restore of our FULL + INCREMENTAL chain (child process), to check the incremental ...")
	target = b.w.Path("restore-chain")
	if r.chainRestore, err = b.runChild(ctx, "restore-chain", childSpec{Op: "restore", Repo: b.repo(), Chain: []string{fullID, incrID}, Target: target}); err != nil {
		return err
	}
	if r.chainReady, r.chainCount, err = b.startRestored(ctx, target); err != nil {
		return err
	}
	b.w.Logf("chain restore: %s laying files, %s to accept a query; %s has %d rows (source after the change %d)",
		benchkit.FmtDur(r.chainRestore.Wall), benchkit.FmtDur(r.chainReady), countTable, r.chainCount, r.changedSourceCount)

	// 7. The report; a restore that lost rows is an error, a missed target is not.
	b.report()
	return r.rowsOK()
}

// pgbrBackup runs one pgBackRest backup of the given type and measures it.
func (b *bench) pgbrBackup(ctx context.Context, typ string) (pgbrRun, error) {
	var run pgbrRun
	var err error
	if run.wall, run.rss, err = b.pgbr.Run(ctx, "--type="+typ, "backup"); err != nil {
		return run, err
	}
	last, err := b.pgbr.LastBackup(ctx)
	if err != nil {
		return run, err
	}
	run.label, run.repoDelta, run.sizeOnDisk = last.Label, last.Info.Repository.Delta, last.Info.Size
	if run.dirBytes, err = benchkit.DirBytes(b.pgbr.BackupDir(last.Label)); err != nil {
		return run, err
	}
	if run.walBytes, run.walSegs, err = b.pgbr.WALBytes(last.Archive.Start, last.Archive.Stop); err != nil {
		return run, err
	}
	return run, nil
}

// baseBackup runs pg_basebackup -X fetch -c fast into a plain, uncompressed directory.
func (b *bench) baseBackup(ctx context.Context) error {
	r := &b.r
	dir := b.w.Path("basebackup")
	if err := b.src.MkdirOwned(dir); err != nil {
		return err
	}
	b.w.Logf("pg_basebackup -X fetch -c fast (plain, no compression) ...")
	cmd := exec.CommandContext(ctx, filepath.Join(b.src.BinDir(), "pg_basebackup"), "-D", dir, "-X", "fetch", "-c", "fast",
		"-d", b.src.URL("postgres"))
	cmd.Dir = "/"
	b.src.RunAsOwner(cmd)
	benchkit.TerminateOnCancel(cmd)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	r.baseWall = time.Since(start)
	if err != nil {
		return fmt.Errorf("pg_basebackup: %w\n%s", err, strings.TrimSpace(string(out)))
	}
	r.baseRSS = benchkit.MaxRSS(cmd.ProcessState)
	if r.baseBytes, err = benchkit.DirBytes(dir); err != nil {
		return err
	}
	b.w.Logf("pg_basebackup: %s, %s", benchkit.FmtDur(r.baseWall), benchkit.FormatBytes(r.baseBytes))
	if !b.w.Keep {
		return os.RemoveAll(dir)
	}
	return nil
}

// startRestored starts a restored data directory as a new instance on a free port with
// archiving off, and returns how long it took to accept a query and the row count of
// countTable. It stops the instance afterwards and, unless --keep, removes the directory.
func (b *bench) startRestored(ctx context.Context, dir string) (time.Duration, int64, error) {
	c, err := pgcluster.New(pgcluster.Options{DataDir: dir, Settings: map[string]string{"archive_mode": "off"}, Logger: b.w.Logger()})
	if err != nil {
		return 0, 0, err
	}
	b.w.Track(c)
	start := time.Now()
	if err := c.Start(ctx); err != nil {
		return 0, 0, err
	}
	url := c.URL(database)
	for {
		var one int
		err := benchkit.QueryOne(ctx, url, "SELECT 1", &one)
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
	if !b.w.Keep {
		if err := os.RemoveAll(dir); err != nil {
			return 0, 0, err
		}
	}
	return ready, n, nil
}

func countRows(ctx context.Context, url string) (int64, error) {
	var n int64
	err := benchkit.QueryOne(ctx, url, "SELECT count(*) FROM "+countTable, &n)
	return n, err
}
