// Package jobs runs the service's durable work on river, a PostgreSQL job queue: a job is
// inserted in the same transaction as the record that asks for it, retried with backoff, and
// rescued when the process running it dies.
package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"

	"github.com/onevault/readiness/gen/db"
)

// Migrate applies river's own migrations (its job tables) to the service database.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	m, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		return err
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("apply job queue migrations: %w", err)
	}
	return nil
}

// Options configure the queue.
type Options struct {
	// Concurrency is how many jobs this process works at once; 0 makes an insert-only client
	// (a replica that serves the API but runs no jobs).
	Concurrency int
	// Timeout is the longest a job may run; its context is cancelled then, and a job whose
	// process died is rescued by river after it (the backup service finds dead workers of
	// backups much sooner by their stale progress).
	Timeout time.Duration
	// Periodic jobs to run on this client.
	Periodic []*river.PeriodicJob
	Logger   *slog.Logger
}

// Client is the river client of the service.
type Client = river.Client[pgx.Tx]

// New builds a client with the given workers. Start it with Start, stop it with Stop.
func New(pool *pgxpool.Pool, workers *river.Workers, opts Options) (*Client, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = 12 * time.Hour
	}
	cfg := &river.Config{
		Logger:               opts.Logger,
		MaxAttempts:          3,
		JobTimeout:           opts.Timeout,
		RescueStuckJobsAfter: opts.Timeout + time.Minute,
		PeriodicJobs:         opts.Periodic,
	}
	if opts.Concurrency > 0 {
		cfg.Queues = map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: opts.Concurrency}}
		cfg.Workers = workers
		cfg.FetchPollInterval = 200 * time.Millisecond
	} else {
		cfg.PeriodicJobs = nil
	}
	return river.NewClient(riverpgxv5.New(pool), cfg)
}

// Priority maps the API's priority, 1 (lowest) to 10 (highest), onto river's 4 (last) to 1
// (first): river orders by priority, then by when the job was queued.
func Priority(p int) int {
	switch {
	case p >= 9:
		return 1
	case p >= 6:
		return 2
	case p >= 3:
		return 3
	}
	return 4
}

// Inserter queues jobs; *Client is one. The domain services take it (set once the client
// exists: the client's workers need the services first).
type Inserter interface {
	Insert(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
	InsertTx(ctx context.Context, tx pgx.Tx, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
}

// InsertTx inserts a job in tx, a tenant-scoped transaction of the store (vault.InTenantTx),
// as its last step: the job tables are not tenant tables, so the transaction is returned to
// the service's own role first. A record and the job that acts on it commit together, or
// neither does.
func InsertTx(ctx context.Context, ins Inserter, tx pgx.Tx, args river.JobArgs, opts *river.InsertOpts) error {
	if err := db.New(tx).TenantRoleReset(ctx); err != nil {
		return err
	}
	_, err := ins.InsertTx(ctx, tx, args, opts)
	return err
}
