package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/onevault/readiness/bench/internal/benchkit"
	"github.com/onevault/readiness/gen/client"
	"github.com/onevault/readiness/internal/app"
	"github.com/onevault/readiness/internal/auth"
	"github.com/onevault/readiness/internal/backup"
	svcconfig "github.com/onevault/readiness/internal/config"
	"github.com/onevault/readiness/internal/pgcluster"
	"github.com/onevault/readiness/internal/storage"
	"github.com/onevault/readiness/internal/vault"
	"github.com/onevault/readiness/internal/wal"
)

// Databases on the source cluster.
const (
	managedDB = "one_vault" // the managed One Vault database, filled with demodata
	serviceDB = "readiness" // the service's own database, as `readiness dev` keeps it
	pgbenchDB = "pgbench"   // pgbench's tables and the probe's marker rows
)

// markerTable holds the probe's marker rows, in pgbenchDB.
const markerTable = "bench_marker"

// timeline is the source cluster's timeline: it never changes.
const timeline = 1

// bench is one run of the benchmark.
type bench struct {
	cfg       config
	w         *benchkit.Work
	src       *pgcluster.Cluster
	pgbr      *benchkit.PgBackRest
	key       string     // the repositories' age identity (ENCRYPTION_KEY)
	walCfg    wal.Config // our archive, in the service's repository
	streamCfg wal.Config // the archive wal.Stream fills, for the streaming RPO only
	segSize   int64
	// restoreCommand is our restore_command (wal-fetch from the service's repository).
	restoreCommand string
	svc            *service
	r              results
}

// service is the readiness service running in this process.
type service struct {
	app    *app.App
	http   *http.Server
	url    string
	client *client.ClientWithResponses
	token  string
	dbURL  string
	log    *os.File
}

func (b *bench) logf(format string, args ...any) { b.w.Logf(format, args...) }

func (b *bench) run(ctx context.Context) error {
	r := &b.r
	b.logf("bench-recovery: size %s, pgbench %d s (scale %d, %d clients), %d run(s), work directory %s, %d CPUs",
		b.cfg.sizeText, b.cfg.walSeconds, b.cfg.scale, b.cfg.clients, b.cfg.runs, b.w.Dir, runtime.NumCPU())
	if err := b.setup(ctx); err != nil {
		return err
	}
	defer b.stopService()

	// The FULL backups both recoveries start from, taken at the same point.
	if err := b.settle(ctx, "before our FULL backup"); err != nil {
		return err
	}
	if err := b.oursBackup(ctx); err != nil {
		return err
	}
	if err := b.settle(ctx, "before the pgBackRest full backup"); err != nil {
		return err
	}
	b.logf("pgBackRest full backup (zstd 3, process-max 2) ...")
	wall, _, err := b.pgbr.Run(ctx, "--type=full", "backup")
	if err != nil {
		return err
	}
	last, err := b.pgbr.LastBackup(ctx)
	if err != nil {
		return err
	}
	r.pgbrBackup, r.pgbrLabel = wall, last.Label
	b.logf("pgBackRest full %s: %s", last.Label, benchkit.FmtDur(wall))

	// The stretch of WAL, with the RPO measured during it.
	if err := b.settle(ctx, "before the pgbench run"); err != nil {
		return err
	}
	if err := b.stretch(ctx); err != nil {
		return err
	}

	// The recoveries, alternating.
	for round := range b.cfg.runs {
		ours := func() error {
			if err := b.settleCold(ctx, "before our recovery"); err != nil {
				return err
			}
			run, err := b.oursRecovery(ctx, round)
			if err != nil {
				return err
			}
			r.ours = append(r.ours, run)
			return nil
		}
		theirs := func() error {
			if err := b.settleCold(ctx, "before the pgBackRest recovery"); err != nil {
				return err
			}
			run, err := b.pgbrRecovery(ctx, round)
			if err != nil {
				return err
			}
			r.pgbr = append(r.pgbr, run)
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

	// What each restore_command costs per segment, by itself.
	if r.fetchOurs, r.fetchPgbr, err = b.fetchCosts(ctx); err != nil {
		return err
	}
	b.logf("restore_command per segment (median of %d): ours %s, pgBackRest %s", len(r.fetchOurs),
		benchkit.FmtDur(benchkit.Median(r.fetchOurs)), benchkit.FmtDur(benchkit.Median(r.fetchPgbr)))

	b.report()
	return r.checkRows()
}

// setup starts the source cluster archiving into both repositories, fills it, and starts
// the service on it.
func (b *bench) setup(ctx context.Context) error {
	r := &b.r
	bin, err := benchkit.EnsurePgBackRest(ctx, b.logf)
	if err != nil {
		return err
	}
	if out, err := exec.CommandContext(ctx, bin, "version").Output(); err == nil {
		r.pgbrVersion = strings.TrimSpace(string(out))
	}
	if b.key, err = storage.GenerateKey(); err != nil {
		return err
	}
	key, err := storage.ParseKey(b.key)
	if err != nil {
		return err
	}

	// PostgreSQL (as postgres) runs a copy of this program as `wal-push` and `wal-fetch`,
	// with its own copy of the key, as `readiness dev` sets it up.
	repo, walBin, keyFile := b.w.Path("repo"), b.w.Path("bin", "readiness"), b.w.Path("wal-key", "age.key")
	oursArchive, oursRestore := wal.Commands(walBin, repo, keyFile)
	b.restoreCommand = oursRestore
	b.pgbr = benchkit.NewPgBackRest(bin, b.w.Path("pgbackrest"))
	r.archiveTimeout = b.cfg.archiveTimeout
	if b.src, err = b.w.NewSource(map[string]string{
		"archive_command": oursArchive + " && " + b.pgbr.ArchiveCommand(),
		"archive_timeout": strconv.Itoa(int(b.cfg.archiveTimeout.Seconds())) + "s",
	}); err != nil {
		return err
	}
	if _, err := wal.Install(b.src, wal.InstallOptions{Bin: walBin, RepoPath: repo, KeyFile: keyFile, Key: b.key}); err != nil {
		return err
	}
	b.walCfg = wal.Config{RepoPath: repo, Key: key, BinDir: b.src.BinDir()}
	b.streamCfg = wal.Config{RepoPath: b.w.Path("stream-repo"), Key: key, BinDir: b.src.BinDir()}
	if err := os.MkdirAll(b.streamCfg.RepoPath, 0o700); err != nil {
		return err
	}
	if err := b.src.Start(ctx); err != nil {
		return err
	}
	admin := b.src.URL("postgres")
	if err := benchkit.QueryOne(ctx, admin, "SELECT current_setting('server_version')", &r.pgVersion); err != nil {
		return err
	}
	if err := benchkit.QueryOne(ctx, admin, "SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'", &b.segSize); err != nil {
		return err
	}
	b.logf("source cluster: PostgreSQL %s on port %d, %s; archive_command = wal-push into ours && pgbackrest archive-push; archive_timeout %s",
		r.pgVersion, b.src.Port(), b.src.DataDir(), b.cfg.archiveTimeout)
	if err := b.pgbr.Setup(b.src, b.w.SockDir); err != nil {
		return err
	}
	if _, _, err := b.pgbr.Run(ctx, "stanza-create"); err != nil {
		return err
	}
	if _, _, err := b.pgbr.Run(ctx, "check"); err != nil { // switches WAL: both archive commands work
		return err
	}
	b.logf("pgBackRest: stanza %s created and checked (archiving into both repositories works)", benchkit.Stanza)

	for _, name := range []string{managedDB, serviceDB, pgbenchDB} {
		if err := b.src.CreateDatabase(ctx, name); err != nil {
			return err
		}
	}
	if r.gen, err = benchkit.Generate(ctx, b.src.URL(managedDB), b.src.DataDir(), b.cfg.size, b.cfg.tenants, b.w); err != nil {
		return err
	}
	// pgbench's tables are part of both base backups; the stretch of WAL is its run alone.
	b.logf("pgbench -i -s %d (database %s) ...", b.cfg.scale, pgbenchDB)
	start := time.Now()
	if _, err := b.pgbench(ctx, "-i", "-s", strconv.Itoa(b.cfg.scale), "-q"); err != nil {
		return err
	}
	if err := benchkit.QueryOne(ctx, b.src.URL(pgbenchDB), "SELECT pg_database_size(current_database())", &r.pgbenchSize); err != nil {
		return err
	}
	if err := benchkit.ExecSQL(ctx, b.src.URL(pgbenchDB), "CREATE TABLE "+markerTable+
		" (id bigserial PRIMARY KEY, committed_at timestamptz NOT NULL DEFAULT clock_timestamp())"); err != nil {
		return err
	}
	if r.dataDirSize, err = benchkit.DataDirBytes(b.src.DataDir()); err != nil {
		return err
	}
	b.logf("pgbench database: %s in %s; the data directory is %s without pg_wal", benchkit.FormatBytes(r.pgbenchSize),
		benchkit.FmtDur(time.Since(start)), benchkit.FormatBytes(r.dataDirSize))

	return b.startService(ctx, oursRestore)
}

// startService runs the service in this process on a free port, as `readiness dev` runs it:
// its database on the source cluster, the one_vault database managed, the repository that
// archive_command fills, recovered instances made under the work directory.
func (b *bench) startService(ctx context.Context, restoreCommand string) error {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return err
	}
	s := &service{dbURL: b.src.URL(serviceDB)}
	if err := vault.Migrate(ctx, s.dbURL); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	cfg := svcconfig.Defaults()
	cfg.ListenAddr = ln.Addr().String()
	cfg.DatabaseURL = s.dbURL
	cfg.ManagedDatabaseURL = b.src.URL(managedDB)
	cfg.JWTSecret = []byte(hex.EncodeToString(secret))
	cfg.EncryptionKey = b.key
	cfg.StoragePath = b.walCfg.RepoPath
	cfg.RecoveryDataPath = b.w.Path("recoveries")
	cfg.RestoreCommand = restoreCommand
	cfg.SchedulerEnabled = false
	// The benchmark polls a recovery's status every 100 ms, 600 requests a minute: more than
	// API_RATE_LIMIT's default allows a tenant.
	cfg.RateLimit = 1_000_000
	// Streaming is measured by running wal.Stream here, into an archive of its own (see
	// stretch), so that the service's archive holds what archive_command put there alone.
	cfg.WALStream = false
	if s.log, err = os.Create(b.w.Path("service.log")); err != nil {
		ln.Close()
		return err
	}
	if s.app, err = app.New(ctx, cfg, slog.New(slog.NewJSONHandler(s.log, nil))); err != nil {
		ln.Close()
		return err
	}
	if err := s.app.Start(ctx); err != nil {
		ln.Close()
		s.app.Stop(context.WithoutCancel(ctx))
		return err
	}
	s.http = &http.Server{Handler: s.app.HTTP, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.http.Serve(ln) }()
	s.url = "http://" + ln.Addr().String()
	if s.client, err = client.NewClientWithResponses(s.url, client.WithHTTPClient(&http.Client{Timeout: time.Minute})); err != nil {
		return err
	}
	if s.token, err = auth.Sign(cfg.JWTSecret, auth.Claims{Subject: "bench-recovery", Tenants: []string{backup.PlatformTenant},
		Roles: []string{auth.RolePlatformAdmin}, TTL: 24 * time.Hour}); err != nil {
		return err
	}
	b.svc = s
	b.logf("service: listening on %s (database %s, managed %s, repository %s, log %s)", s.url, serviceDB, managedDB,
		cfg.StoragePath, s.log.Name())
	return nil
}

// stopService stops the HTTP server and the service's workers, before the clusters stop.
func (b *bench) stopService() {
	s := b.svc
	if s == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = s.http.Shutdown(ctx)
	s.app.Stop(ctx)
	s.log.Close()
	b.svc = nil
}

// as adds the platform_admin token to a request of the generated client.
func (s *service) as(_ context.Context, req *http.Request) error {
	req.Header.Set("Authorization", "Bearer "+s.token)
	return nil
}

// oursBackup takes the SYSTEM FULL backup through the API and waits for it.
func (b *bench) oursBackup(ctx context.Context) error {
	s := b.svc
	b.logf("our SYSTEM FULL backup: POST /api/v1/backup/create ...")
	start := time.Now()
	resp, err := s.client.CreateBackupWithResponse(ctx, &client.CreateBackupParams{XTenantID: backup.PlatformTenant},
		client.BackupCreateRequest{BackupType: client.BackupTypeFULL, BackupScope: client.BackupScopeSYSTEM}, s.as)
	if err != nil {
		return err
	}
	if resp.JSON202 == nil {
		return fmt.Errorf("POST /api/v1/backup/create answered %d: %s", resp.StatusCode(), resp.Body)
	}
	id := resp.JSON202.Data.BackupId
	for {
		g, err := s.client.GetBackupStatusWithResponse(ctx, id, &client.GetBackupStatusParams{XTenantID: backup.PlatformTenant}, s.as)
		if err != nil {
			return err
		}
		if g.JSON200 == nil {
			return fmt.Errorf("GET /api/v1/backup/%s/status answered %d: %s", id, g.StatusCode(), g.Body)
		}
		switch d := g.JSON200.Data; d.Status {
		case client.BackupExecutionStatusCOMPLETED, client.BackupExecutionStatusVERIFIED:
			b.r.oursBackup = time.Since(start)
			b.r.oursBackupID = uuid.UUID(id)
			if b.r.oursBackupBytes, err = benchkit.DirBytes(filepath.Join(b.walCfg.RepoPath, id.String())); err != nil {
				return err
			}
			b.logf("our FULL %s: %s (request to COMPLETED), %s stored", id, benchkit.FmtDur(b.r.oursBackup),
				benchkit.FormatBytes(b.r.oursBackupBytes))
			return nil
		case client.BackupExecutionStatusFAILED:
			msg := ""
			if d.ErrorMessage != nil {
				msg = *d.ErrorMessage
			}
			return fmt.Errorf("our FULL backup %s failed: %s", id, msg)
		}
		if time.Since(start) > time.Hour {
			return fmt.Errorf("our FULL backup %s is still %s after an hour", id, g.JSON200.Data.Status)
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

// settle makes each measurement start from the same state (benchkit.Settle).
func (b *bench) settle(ctx context.Context, what string) error {
	return benchkit.Settle(ctx, b.src.URL("postgres"), what, filepath.Join(b.pgbr.Dir, "log"), b.logf)
}

// settleCold settles, then with --cold drops the page cache, so that each recovery reads its
// backup and WAL from the disk and writes into memory that is free, as on a host that recovers
// after a loss. With a full page cache, this machine's kernel spends several times the CPU in
// write() (seen: 11 s of system time for a 2 GB restore instead of 2 s), whichever engine writes.
func (b *bench) settleCold(ctx context.Context, what string) error {
	if err := b.settle(ctx, what); err != nil {
		return err
	}
	if !b.cfg.cold {
		return nil
	}
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0); err != nil {
		b.logf("cannot drop the page cache (%v): this recovery starts with a warm cache", err)
	}
	return nil
}

// pgbench runs the PostgreSQL installation's pgbench on the pgbench database and returns its
// standard output.
func (b *bench) pgbench(ctx context.Context, args ...string) (string, error) {
	all := append([]string{"-h", "127.0.0.1", "-p", strconv.Itoa(b.src.Port()), "-U", "postgres"}, args...)
	cmd := exec.CommandContext(ctx, filepath.Join(b.src.BinDir(), "pgbench"), append(all, pgbenchDB)...)
	benchkit.TerminateOnCancel(cmd)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("pgbench %s: %w\n%s", strings.Join(args, " "), err, lastLines(stderr.String(), 10))
	}
	return string(out), nil
}

var tpsLine = regexp.MustCompile(`(?m)^tps = ([0-9.]+) \(without initial connection time\)`)

// pgbenchTPS reads the tps pgbench printed.
func pgbenchTPS(out string) float64 {
	m := tpsLine.FindStringSubmatch(out)
	if m == nil {
		return 0
	}
	tps, _ := strconv.ParseFloat(m[1], 64)
	return tps
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
