// Package monitor measures the backup system: backup metrics over a time range (counts,
// durations, sizes, freshness, schedule adherence), the backup part of system health (database
// reachability, freshness against each schedule, failed backups and jobs), and the same
// figures for Prometheus, labelled by tenant.
//
// Backups are read from the point-in-time table pit_backup_execution, which carries each
// backup's current status and figures, so that every figure is an aggregate over one narrow
// table (see migrations/00004_metrics.sql). The words used throughout:
//
//   - done: the backup's run completed (COMPLETED, VERIFIED, VERIFY_FAILED, and EXPIRED, whose
//     row keeps its figures); durations and sizes are those of done backups.
//   - good: the backup can be restored (COMPLETED or VERIFIED); freshness and the recovery
//     point are those of good backups.
//   - finished: done or failed and not expired (COMPLETED, VERIFIED, FAILED, VERIFY_FAILED);
//     the success rate is good over finished.
package monitor

import (
	"log/slog"
	"time"

	"github.com/onevault/readiness/internal/backup"
	"github.com/onevault/readiness/internal/vault"
)

// Scopes and types of backups, in the order figures list them.
var (
	scopes = []string{backup.ScopeSystem, backup.ScopeTenant, backup.ScopeSchema}
	types  = []string{backup.TypeFull, backup.TypeDifferential, backup.TypeIncremental}
)

// LateAfter is how long after its due time a schedule fire may queue its backup before it
// counts as late.
const LateAfter = 60 * time.Second

// DefaultManagedTimeout bounds the reachability check of the managed database.
const DefaultManagedTimeout = 2 * time.Second

// Options configure the service.
type Options struct {
	// ManagedURL is the managed database whose reachability health reports; empty leaves the
	// check out.
	ManagedURL string
	// ManagedTimeout bounds connecting to the managed database and asking it SELECT 1
	// (DefaultManagedTimeout when 0). The service database's ping has the same bound.
	ManagedTimeout time.Duration
	// FreshnessTarget is how old the newest good backup of a tenant without enabled schedules
	// may be before it is WARNING (CRITICAL past StaleIntervals of it), and how long a tenant
	// may have had no good backup at all, since its registration, before that is CRITICAL
	// (DefaultFreshnessTarget when 0).
	FreshnessTarget time.Duration
	// NoBackupGrace is how long after its registration a tenant may have no good backup before
	// that is WARNING (DefaultNoBackupGrace when 0; at most FreshnessTarget).
	NoBackupGrace time.Duration
	Logger        *slog.Logger
	// Now is the clock of every age and range; time.Now unless a test sets it.
	Now func() time.Time
}

// Service computes backup metrics and health for one tenant at a time.
type Service struct {
	store *vault.Store
	opts  Options
}

// NewService returns the service on the store.
func NewService(store *vault.Store, opts Options) *Service {
	if opts.ManagedTimeout <= 0 {
		opts.ManagedTimeout = DefaultManagedTimeout
	}
	if opts.FreshnessTarget <= 0 {
		opts.FreshnessTarget = DefaultFreshnessTarget
	}
	if opts.NoBackupGrace <= 0 {
		opts.NoBackupGrace = DefaultNoBackupGrace
	}
	opts.NoBackupGrace = min(opts.NoBackupGrace, opts.FreshnessTarget)
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Service{store: store, opts: opts}
}

// isGood reports whether a backup of this status can be restored.
func isGood(status string) bool {
	return status == backup.StatusCompleted || status == backup.StatusVerified
}

// isFinished reports whether a backup of this status counts in the success rate.
func isFinished(status string) bool {
	return isGood(status) || status == backup.StatusFailed || status == backup.StatusVerifyFailed
}

// ratio is a/b, or nil when b is 0.
func ratio(a, b int64) *float64 {
	if b == 0 {
		return nil
	}
	r := float64(a) / float64(b)
	return &r
}
