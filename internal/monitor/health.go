package monitor

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/onevault/readiness/gen/db"
	"github.com/onevault/readiness/internal/vault"
)

// Metric statuses: a metric rated against its thresholds.
const (
	StatusNormal   = "NORMAL"
	StatusWarning  = "WARNING"
	StatusCritical = "CRITICAL"
)

// CategoryBackup is the category of every metric this package measures.
const CategoryBackup = "BACKUP"

// Names of the health metrics.
const (
	MetricServiceDatabase = "service_database_ping_ms"
	MetricManagedDatabase = "managed_database_ping_ms"
	MetricBackupAge       = "backup_age_seconds"
	MetricFailedBackups   = "failed_backups_24h"
	MetricFailedJobs      = "failed_jobs_24h"
)

// Freshness ratings: against a schedule, a good backup is fresh while younger than
// FreshIntervals of its interval and stale (WARNING) while younger than StaleIntervals; older
// is CRITICAL. Without enabled schedules the newest good backup is rated against the freshness
// target (Options.FreshnessTarget): WARNING past it, CRITICAL past StaleIntervals of it.
//
// A tenant that has never had a good backup, whatever its schedules, has had none of its data
// in a backup since it was registered: it is rated by the time since then, NORMAL during its
// grace period (Options.NoBackupGrace), WARNING after it, and CRITICAL past the freshness
// target. A schedule whose first fire is still to come does not make that NORMAL.
const (
	FreshIntervals = 1.5
	StaleIntervals = 3
	// DefaultFreshnessTarget is how old the newest good backup of a tenant without schedules may
	// be before it is not fresh, and how long a tenant may have no good backup at all before
	// that is CRITICAL.
	DefaultFreshnessTarget = 24 * time.Hour
	// DefaultNoBackupGrace is how long after its registration a tenant may have no good backup
	// before that is a WARNING: time for its first backup to be asked for and taken.
	DefaultNoBackupGrace = time.Hour
)

// FailureWindow is how far back failed backups and failed jobs are counted.
const FailureWindow = 24 * time.Hour

// Metric is one health metric, rated against its threshold.
type Metric struct {
	Name     string
	Category string
	Value    float64
	Unit     string
	Status   string
	// Threshold is the warning threshold Value is rated against; nil when there is none.
	Threshold  *float64
	MeasuredAt time.Time
	Details    string
}

// Summary counts metrics by status.
type Summary struct {
	Total, Critical, Warning, Normal int
}

// Summarize counts the metrics by status.
func Summarize(metrics []Metric) Summary {
	s := Summary{Total: len(metrics)}
	for _, m := range metrics {
		switch m.Status {
		case StatusCritical:
			s.Critical++
		case StatusWarning:
			s.Warning++
		case StatusNormal:
			s.Normal++
		}
	}
	return s
}

// BackupHealth measures the backup part of the tenant's health: the reachability of the service
// database and of the managed database, the freshness of backups against each enabled schedule
// (or against a day when there is none), and the backups and jobs that failed in the last
// FailureWindow. When the service database cannot be reached, only the reachability metrics
// are returned.
func (s *Service) BackupHealth(ctx context.Context, tenant vault.TenantRef) ([]Metric, error) {
	managed := make(chan Metric, 1)
	if s.opts.ManagedURL != "" {
		go func() { managed <- s.managedReachability(ctx) }()
	} else {
		close(managed)
	}
	service := s.serviceReachability(ctx)
	metrics := []Metric{service}
	if m, ok := <-managed; ok {
		metrics = append(metrics, m)
	}
	if service.Status == StatusCritical {
		return metrics, nil
	}

	now := s.opts.Now()
	err := s.store.InTenant(ctx, tenant.HK, func(q *db.Queries) error {
		fresh, err := s.freshness(ctx, q, tenant.HK, now)
		if err != nil {
			return err
		}
		metrics = append(metrics, fresh...)
		rows, err := q.MetricsBackupFailures(ctx, db.MetricsBackupFailuresParams{TenantHk: tenant.HK, Since: now.Add(-FailureWindow)})
		if err != nil {
			return err
		}
		metrics = append(metrics, failedBackups(rows, now))
		return nil
	})
	if err != nil {
		return nil, err
	}
	jobs, err := s.failedJobs(ctx, tenant.ID, now)
	if err != nil {
		return nil, err
	}
	return append(metrics, jobs), nil
}

// elapsedMs is the time since start in milliseconds.
func elapsedMs(start time.Time) float64 {
	return float64(time.Since(start).Microseconds()) / 1000
}

func (s *Service) serviceReachability(ctx context.Context) Metric {
	ctx, cancel := context.WithTimeout(ctx, s.opts.ManagedTimeout)
	defer cancel()
	start := time.Now()
	err := s.store.Pool.Ping(ctx)
	m := Metric{Name: MetricServiceDatabase, Category: CategoryBackup, Value: elapsedMs(start), Unit: "milliseconds",
		Status: StatusNormal, MeasuredAt: s.opts.Now(), Details: "the service database (backup records, schedules, jobs) answers"}
	if err != nil {
		s.opts.Logger.Error("health: service database unreachable", "error", err.Error())
		m.Status, m.Details = StatusCritical, "the service database is unreachable: "+reason(ctx, err, s.opts.ManagedTimeout)
	}
	return m
}

func (s *Service) managedReachability(ctx context.Context) Metric {
	ctx, cancel := context.WithTimeout(ctx, s.opts.ManagedTimeout)
	defer cancel()
	start := time.Now()
	err := ping(ctx, s.opts.ManagedURL, s.opts.ManagedTimeout)
	m := Metric{Name: MetricManagedDatabase, Category: CategoryBackup, Value: elapsedMs(start), Unit: "milliseconds",
		Status: StatusNormal, MeasuredAt: s.opts.Now(), Details: "the managed database (the one backed up) accepts a connection and answers SELECT 1"}
	if err != nil {
		// The error names hosts and users: it goes to the log, not to the tenant.
		s.opts.Logger.Error("health: managed database unreachable", "error", err.Error())
		m.Status, m.Details = StatusCritical, "the managed database is unreachable: "+reason(ctx, err, s.opts.ManagedTimeout)
	}
	return m
}

// ping connects to url and asks SELECT 1, within timeout.
func ping(ctx context.Context, url string, timeout time.Duration) error {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return err
	}
	cfg.ConnectTimeout = timeout
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var one int
	return conn.QueryRow(ctx, "SELECT 1").Scan(&one)
}

// reason says why a check failed without the error's internals.
func reason(ctx context.Context, err error, timeout time.Duration) string {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Sprintf("no answer within %s", timeout)
	}
	return "the connection or the query failed (see the service log)"
}

// freshness rates the newest good backup of each enabled schedule against the schedule's
// interval, or, without enabled schedules, the newest good backup of the tenant against the
// freshness target; and a tenant without any good backup by how long it has been registered.
func (s *Service) freshness(ctx context.Context, q *db.Queries, tenantHK []byte, now time.Time) ([]Metric, error) {
	rows, err := q.MetricsSchedules(ctx, tenantHK)
	if err != nil {
		return nil, err
	}
	newest, err := q.MetricsScheduleNewestGood(ctx, tenantHK)
	if err != nil {
		return nil, err
	}
	tenantNewest, err := q.MetricsBackupNewest(ctx, db.MetricsBackupNewestParams{Scopes: scopes, Types: types, TenantHk: tenantHK})
	if err != nil {
		return nil, err
	}
	f := freshness(tenantNewest, now)
	var out []Metric
	if f.LastGoodAt == nil {
		registered, err := q.MetricsTenantRegisteredAt(ctx, tenantHK)
		if err != nil {
			return nil, err
		}
		out = append(out, s.rateNoBackup(registered, now))
	}
	good := make(map[uuid.UUID]time.Time, len(newest))
	for _, n := range newest {
		good[n.ScheduleBk] = n.CompletedAt
	}
	enabled := 0
	for _, r := range rows {
		if !r.Enabled {
			continue
		}
		enabled++
		sc, err := parseSchedule(r)
		if err != nil {
			out = append(out, Metric{Name: MetricBackupAge, Category: CategoryBackup, Unit: "seconds",
				Status: StatusWarning, MeasuredAt: now, Details: fmt.Sprintf("schedule %q (%s): %v", r.ScheduleName, r.ScheduleBk, err)})
			continue
		}
		var at *time.Time
		if t, ok := good[r.ScheduleBk]; ok {
			at = &t
		}
		out = append(out, rateSchedule(sc, at, now))
	}
	if enabled == 0 && f.LastGoodAt != nil {
		out = append(out, s.rateUnscheduled(*f.LastGoodAt, now))
	}
	return out, nil
}

// rateNoBackup rates a tenant that has never had a good backup, registered at registered.
func (s *Service) rateNoBackup(registered, now time.Time) Metric {
	grace, target := s.opts.NoBackupGrace, s.opts.FreshnessTarget
	warn := grace.Seconds()
	age := max(now.Sub(registered), 0)
	return Metric{Name: MetricBackupAge, Category: CategoryBackup, Unit: "seconds", MeasuredAt: now, Threshold: &warn,
		Value: age.Seconds(), Status: rate(age, grace, target),
		Details: fmt.Sprintf("the tenant has no good backup; value: seconds since it was registered at %s "+
			"(WARNING after a grace period of %s, CRITICAL past the freshness target of %s)",
			registered.UTC().Format(time.RFC3339), grace, target)}
}

// rateUnscheduled rates the newest good backup of a tenant without enabled schedules against
// the freshness target.
func (s *Service) rateUnscheduled(newest, now time.Time) Metric {
	target := s.opts.FreshnessTarget
	warn := target.Seconds()
	age := max(now.Sub(newest), 0)
	return Metric{Name: MetricBackupAge, Category: CategoryBackup, Unit: "seconds", MeasuredAt: now, Threshold: &warn,
		Value: age.Seconds(), Status: rate(age, target, StaleIntervals*target),
		Details: fmt.Sprintf("no enabled schedule; newest good backup (any scope) completed at %s (freshness target %s)",
			newest.UTC().Format(time.RFC3339), target)}
}

// rateSchedule rates a schedule's newest good backup (nil: none) at now.
func rateSchedule(sc scheduleSpec, newest *time.Time, now time.Time) Metric {
	m := Metric{Name: MetricBackupAge, Category: CategoryBackup, Unit: "seconds", MeasuredAt: now}
	who := fmt.Sprintf("schedule %q (%s)", sc.name, sc.id)
	c, err := sc.cadenceAt(now)
	if err != nil {
		m.Status, m.Details = StatusWarning, fmt.Sprintf("%s: its fire times cannot be computed: %v", who, err)
		return m
	}
	warn := FreshIntervals * c.interval.Seconds()
	m.Threshold = &warn
	every := "fires every " + c.interval.String()
	if newest == nil {
		if now.Before(c.first) {
			m.Status, m.Details = StatusNormal, fmt.Sprintf("%s: no backup yet, first fire due at %s; %s",
				who, c.first.UTC().Format(time.RFC3339), every)
			return m
		}
		m.Value = now.Sub(c.first).Seconds()
		m.Status, m.Details = StatusCritical, fmt.Sprintf("%s: no good backup since its first fire at %s (value: seconds since then); %s",
			who, c.first.UTC().Format(time.RFC3339), every)
		return m
	}
	age := max(now.Sub(*newest), 0)
	m.Value = age.Seconds()
	m.Status = rate(age, time.Duration(FreshIntervals*float64(c.interval)), time.Duration(StaleIntervals*float64(c.interval)))
	m.Details = fmt.Sprintf("%s: newest good backup completed at %s; %s", who, newest.UTC().Format(time.RFC3339), every)
	return m
}

// rate is NORMAL under warn, WARNING under critical, CRITICAL beyond.
func rate(v, warn, critical time.Duration) string {
	switch {
	case v < warn:
		return StatusNormal
	case v < critical:
		return StatusWarning
	}
	return StatusCritical
}

// failedBackups rates the backups that failed (or failed verification) in the window: WARNING if
// any, CRITICAL if one of them is the last finished backup of its scope.
func failedBackups(rows []db.MetricsBackupFailuresRow, now time.Time) Metric {
	one := 1.0
	m := Metric{Name: MetricFailedBackups, Category: CategoryBackup, Unit: "count", MeasuredAt: now, Threshold: &one,
		Status: StatusNormal, Details: "no backup failed in the last 24h"}
	var last []string
	for _, r := range rows {
		m.Value += float64(r.Failures)
		if r.LastFailed {
			scope := r.BackupScope
			if r.SchemaName != nil {
				scope += " " + *r.SchemaName
			}
			last = append(last, scope)
		}
	}
	switch {
	case len(last) > 0:
		m.Status = StatusCritical
		m.Details = fmt.Sprintf("%d backups failed in the last 24h; the last backup of %s failed", int64(m.Value), strings.Join(last, ", "))
	case m.Value > 0:
		m.Status = StatusWarning
		m.Details = fmt.Sprintf("%d backups failed in the last 24h; a later backup of each scope succeeded", int64(m.Value))
	}
	return m
}

// failedJobsSQL counts the tenant's jobs that river discarded (failed every attempt) in the
// window, by kind. The job tables are river's, not the service's Data Vault (sqlc does not see
// them), and not tenant tables: the tenant is in the job's arguments.
const failedJobsSQL = `SELECT kind, count(*) FROM river_job
WHERE state = 'discarded' AND finalized_at >= $1 AND args->>'tenant' = $2
GROUP BY kind ORDER BY kind`

func (s *Service) failedJobs(ctx context.Context, tenant string, now time.Time) (Metric, error) {
	one := 1.0
	m := Metric{Name: MetricFailedJobs, Category: CategoryBackup, Unit: "count", MeasuredAt: now, Threshold: &one,
		Status: StatusNormal, Details: "no job failed in the last 24h"}
	rows, err := s.store.Pool.Query(ctx, failedJobsSQL, now.Add(-FailureWindow), tenant)
	if err != nil {
		return m, err
	}
	var kinds []string
	for rows.Next() {
		var kind string
		var n int64
		if err := rows.Scan(&kind, &n); err != nil {
			rows.Close()
			return m, err
		}
		m.Value += float64(n)
		kinds = append(kinds, fmt.Sprintf("%s: %d", kind, n))
	}
	if err := rows.Err(); err != nil {
		return m, err
	}
	if m.Value > 0 {
		m.Status = StatusWarning
		m.Details = fmt.Sprintf("%d jobs failed every attempt in the last 24h (%s)", int64(m.Value), strings.Join(kinds, ", "))
	}
	return m, nil
}
