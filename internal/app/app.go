// Package app assembles the service from its parts (store, backup repository, backup service,
// job queue, HTTP server), for `readiness serve`, `readiness dev` and the end-to-end tests.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/riverqueue/river"

	"github.com/onevault/readiness/internal/api"
	"github.com/onevault/readiness/internal/audit"
	"github.com/onevault/readiness/internal/auth"
	"github.com/onevault/readiness/internal/backup"
	"github.com/onevault/readiness/internal/config"
	"github.com/onevault/readiness/internal/jobs"
	"github.com/onevault/readiness/internal/monitor"
	"github.com/onevault/readiness/internal/notify"
	"github.com/onevault/readiness/internal/pgcluster"
	"github.com/onevault/readiness/internal/recovery"
	"github.com/onevault/readiness/internal/retention"
	"github.com/onevault/readiness/internal/schedule"
	"github.com/onevault/readiness/internal/server"
	"github.com/onevault/readiness/internal/storage"
	"github.com/onevault/readiness/internal/vault"
	"github.com/onevault/readiness/internal/wal"
)

// App is the running service.
type App struct {
	Store      *vault.Store
	Repo       *storage.Repository
	Backups    *backup.Service
	Recoveries *recovery.Service
	Jobs       *jobs.Client
	Runner     *schedule.Runner // nil when SCHEDULER_ENABLED is false
	HTTP       *echo.Echo
	cfg        config.Config
	walCfg     wal.Config
	logger     *slog.Logger
	stopStream context.CancelFunc // ends the WAL receiver; nil when WAL_STREAM is off
	streamDone chan struct{}
	stopAnchor context.CancelFunc // ends the audit anchorer; nil before Start
	anchorDone chan struct{}
}

// New connects to the store and builds every part; Start runs the job workers.
func New(ctx context.Context, cfg config.Config, logger *slog.Logger) (*App, error) {
	if logger == nil {
		logger = slog.Default()
	}
	store, err := vault.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	a := &App{Store: store, cfg: cfg, logger: logger}
	if err := a.build(ctx); err != nil {
		store.Close()
		return nil, err
	}
	return a, nil
}

func (a *App) build(ctx context.Context) error {
	cfg := a.cfg
	key, err := storage.ParseKey(cfg.EncryptionKey)
	if err != nil {
		return fmt.Errorf("ENCRYPTION_KEY: %w", err)
	}
	if a.Repo, err = storage.Open(cfg.StoragePath, key); err != nil {
		return err
	}
	binDir, err := pgcluster.BinDir()
	if err != nil {
		a.logger.Warn("no PostgreSQL binaries found: SCHEMA backups and restores need pg_dump and pg_restore", "error", err.Error())
	}
	notes := &schedule.Notifications{Store: a.Store, Logger: a.logger, Queue: func() jobs.Inserter { return a.Jobs }}
	a.Backups = backup.New(a.Store, a.Repo, backup.Config{ManagedURL: cfg.ManagedDatabaseURL, BinDir: binDir,
		TenantKeyColumn: cfg.TenantKeyColumn, DefaultRetention: retention.Years(cfg.RetentionYears),
		MaxAttempts: cfg.BackupMaxAttempts, OnFinished: notes.BackupFinished, Logger: a.logger})
	if cfg.SchedulerEnabled {
		if a.Runner, err = schedule.NewRunner(a.Store, a.Backups, schedule.RunnerOptions{SyncEvery: cfg.ScheduleSyncEvery,
			Logger: a.logger}); err != nil {
			return err
		}
	}
	a.walCfg = wal.Config{RepoPath: cfg.StoragePath, Key: key, BinDir: binDir}
	a.Recoveries = recovery.New(a.Store, a.Backups, recovery.Config{DataPath: cfg.RecoveryDataPath,
		WAL: a.walCfg, RestoreCommand: cfg.RestoreCommand,
		ManagedURL: cfg.ManagedDatabaseURL, BinDir: binDir, TenantKeyCol: cfg.TenantKeyColumn, Logger: a.logger})
	workers := river.NewWorkers()
	a.Backups.Register(workers)
	a.Recoveries.Register(workers)
	river.AddWorker(workers, &notify.EmailWorker{Mailer: notify.NewMailer(cfg.SMTP), Logger: a.logger})
	if a.Jobs, err = jobs.New(a.Store.Pool, workers, jobs.Options{Concurrency: cfg.BackupWorkers,
		Timeout: cfg.JobTimeout, Periodic: append(a.Backups.PeriodicJobs(time.Hour, cfg.RescueAfter), a.Recoveries.PeriodicJobs(10*time.Minute)...),
		Logger: a.logger}); err != nil {
		return err
	}
	a.Backups.SetQueue(a.Jobs)
	a.Recoveries.SetQueue(a.Jobs)
	verifier, err := auth.NewVerifier(ctx, auth.Config{Secret: cfg.JWTSecret, JWKSURL: cfg.JWKSURL,
		Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience})
	if err != nil {
		return err
	}
	// Each App has its own registry: the process's Go metrics and the backup figures, labelled by
	// tenant and read at scrape time.
	metrics := prometheus.NewRegistry()
	metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		monitor.NewCollector(a.Store))
	a.HTTP, err = server.New(server.Options{Store: a.Store, Verifier: verifier, RateLimit: cfg.RateLimit, Logger: a.logger,
		Metrics: metrics,
		Handlers: api.NewHandlers(api.Deps{Store: a.Store, Backups: a.Backups, Recoveries: a.Recoveries,
			Monitor: monitor.NewService(a.Store, monitor.Options{ManagedURL: cfg.ManagedDatabaseURL, Logger: a.logger})},
			api.Settings{RetentionYears: cfg.RetentionYears})})

	return err
}

// Start runs the audit anchorer, the job workers (unless BackupWorkers is 0), the WAL receiver
// (when WAL_STREAM is on) and the scheduler (unless disabled).
func (a *App) Start(ctx context.Context) error {
	a.startAnchor(ctx)
	if a.cfg.WALStream {
		a.startStream(ctx)
	}
	if a.cfg.BackupWorkers > 0 {
		if err := a.Jobs.Start(ctx); err != nil {
			return err
		}
	}
	if a.Runner != nil {
		return a.Runner.Start(context.WithoutCancel(ctx))
	}
	return nil
}

// Serve runs the HTTP server on cfg.ListenAddr until ctx ends, then shuts everything down.
func (a *App) Serve(ctx context.Context) error {
	if err := a.Start(ctx); err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() { errc <- a.HTTP.Start(a.cfg.ListenAddr) }()
	var serveErr error
	select {
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			serveErr = err
		}
	case <-ctx.Done():
	}
	a.logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := a.HTTP.Shutdown(sctx); err != nil && serveErr == nil {
		serveErr = err
	}
	a.Stop(sctx)
	return serveErr
}

// startStream runs the WAL receiver until Stop. Every replica runs one; the replication slot
// admits one connection at a time, so one of them streams and the others wait their turn.
func (a *App) startStream(ctx context.Context) {
	conn := a.cfg.WALStreamConn
	if conn == "" {
		conn = a.cfg.ManagedDatabaseURL
	}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a.stopStream, a.streamDone = cancel, make(chan struct{})
	log := a.logger.With("component", "wal-stream")
	go func() {
		defer close(a.streamDone)
		err := wal.Stream(sctx, a.walCfg, wal.StreamOptions{Conn: conn, Slot: a.cfg.WALStreamSlot,
			Logger: log})
		if err != nil {
			log.Error("WAL streaming stopped", "error", err.Error())
		}
	}()
}

// startAnchor anchors the audit chain's head in the backup repository and the log until Stop
// (see internal/audit's package doc).
func (a *App) startAnchor(ctx context.Context) {
	actx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a.stopAnchor, a.anchorDone = cancel, make(chan struct{})
	an := &audit.Anchorer{Queries: a.Store.Queries(), RepoRoot: a.Repo.Root(), Logger: a.logger.With("component", "audit")}
	go func() {
		defer close(a.anchorDone)
		an.Run(actx)
	}()
}

// Stop stops the workers (letting running jobs finish until ctx ends) and closes the store.
func (a *App) Stop(ctx context.Context) {
	if a.stopAnchor != nil {
		// The anchorer anchors once more on its way out: the requests served until now are covered.
		a.stopAnchor()
		select {
		case <-a.anchorDone:
		case <-ctx.Done():
		}
	}
	if a.stopStream != nil {
		a.stopStream()
		select {
		case <-a.streamDone:
		case <-ctx.Done():
		}
	}
	if a.Runner != nil {
		if err := a.Runner.Stop(); err != nil {
			a.logger.Warn("stop scheduler", "error", err.Error())
		}
	}
	if a.cfg.BackupWorkers > 0 {
		if err := a.Jobs.Stop(ctx); err != nil {
			a.logger.Warn("stop job workers", "error", err.Error())
		}
	}
	a.Store.Close()
}
