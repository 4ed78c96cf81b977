package monitor

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/onevault/readiness/gen/db"
	"github.com/onevault/readiness/internal/backup"
	"github.com/onevault/readiness/internal/schedule"
)

// Sections selects the groups of figures BackupMetrics computes.
type Sections uint8

// The groups of figures.
const (
	SectionCounts    Sections = 1 << iota // counts by status and type, success rate
	SectionDuration                       // average, p95 and longest duration
	SectionSize                           // sizes, compression, throughput
	SectionStorage                        // storage used by every kept backup (a scan of all of them)
	SectionFreshness                      // newest good backups, recovery point age
	SectionSchedules                      // schedules and their fires

	SectionAll = SectionCounts | SectionDuration | SectionSize | SectionStorage | SectionFreshness | SectionSchedules
)

// Has reports whether s includes every section of t.
func (s Sections) Has(t Sections) bool { return s&t == t }

// Query asks for backup metrics.
type Query struct {
	// Range is how far back from now the metrics look, by when backups were created (fires by
	// when they were recorded). Storage used and freshness are of all time.
	Range    time.Duration
	Sections Sections
}

// BackupMetrics are a tenant's backup figures; a section not asked for is nil.
type BackupMetrics struct {
	From, Until time.Time // the range, Until being when they were computed
	Counts      *Counts
	Duration    *Durations
	Size        *Sizes
	// StorageUsedBytes is what every backup still kept (not EXPIRED or FAILED) occupies in
	// storage now, whenever it was taken.
	StorageUsedBytes *int64
	Freshness        *Freshness
	Schedules        *Adherence
}

// Counts are the backups created in the range.
type Counts struct {
	Total    int64
	ByStatus map[string]int64 // every status, 0 included
	ByType   map[string]int64 // every type, 0 included
	// SuccessRate is good over finished backups, 0..1; nil when none finished.
	SuccessRate *float64
}

// Durations are of the done backups created in the range; nil when none has a duration.
type Durations struct {
	AverageMs *float64
	P95Ms     *float64 // continuous 95th percentile (percentile_cont)
	MaxMs     *int64
}

// Sizes are of the done backups created in the range.
type Sizes struct {
	TotalBytes   int64    // data before compression
	StoredBytes  int64    // in storage
	AverageBytes *float64 // mean data size; nil when none is sized
	// CompressionRatio is StoredBytes / TotalBytes; nil when TotalBytes is 0.
	CompressionRatio *float64
	// ThroughputBytesPerSec is the data size over the run time of the backups that have both;
	// nil when none has.
	ThroughputBytesPerSec *float64
}

// Freshness is about the newest good backups, whenever they were taken.
type Freshness struct {
	LastGoodAt *time.Time // completion of the newest good backup; nil if none
	LastFullAt *time.Time // completion of the newest good FULL backup; nil if none
	// RecoveryPointAgeSeconds is how old the newest good backup is; nil if none.
	RecoveryPointAgeSeconds *int64
	// ByScope is the newest good backup of each scope that has one, in the order SYSTEM,
	// TENANT, SCHEMA.
	ByScope []ScopeBackup
}

// ScopeBackup is the newest good backup of a scope.
type ScopeBackup struct {
	Scope       string
	BackupID    uuid.UUID
	Type        string
	SchemaName  *string
	CompletedAt time.Time
	AgeSeconds  int64 // how old it is
}

// Adherence is how the tenant's schedules fired in the range.
type Adherence struct {
	Schedules, Enabled int // schedules that exist (not deleted), and of them enabled
	Enqueued           int64
	// SkippedOutsideWindow and Missed did not queue a backup: outside the execution window, and
	// missed while no replica ran (and too old to catch up).
	SkippedOutsideWindow, Missed int64
	// Late fires queued their backup more than LateAfter after their due time (they count in
	// Enqueued too).
	Late int64
	// Failed fires could not queue their backup, or their backup failed or failed verification.
	Failed    int64
	NextRunAt *time.Time // the soonest next fire of any enabled schedule; nil if none
}

// BackupMetrics computes the sections q asks for, for the tenant, in one transaction.
func (s *Service) BackupMetrics(ctx context.Context, tenantHK []byte, q Query) (BackupMetrics, error) {
	now := s.opts.Now()
	m := BackupMetrics{From: now.Add(-q.Range), Until: now}
	err := s.store.InTenant(ctx, tenantHK, func(dq *db.Queries) error {
		if q.Sections.Has(SectionCounts) {
			rows, err := dq.MetricsBackupCounts(ctx, db.MetricsBackupCountsParams{TenantHk: tenantHK, Since: m.From, Until: now})
			if err != nil {
				return err
			}
			m.Counts = counts(rows)
		}
		if q.Sections&(SectionDuration|SectionSize) != 0 {
			f, err := dq.MetricsBackupFigures(ctx, db.MetricsBackupFiguresParams{TenantHk: tenantHK, Since: m.From, Until: now})
			if err != nil {
				return err
			}
			if q.Sections.Has(SectionDuration) {
				m.Duration = durations(f)
			}
			if q.Sections.Has(SectionSize) {
				m.Size = sizes(f)
			}
		}
		if q.Sections.Has(SectionStorage) {
			used, err := dq.MetricsBackupStorage(ctx, tenantHK)
			if err != nil {
				return err
			}
			m.StorageUsedBytes = &used
		}
		if q.Sections.Has(SectionFreshness) {
			rows, err := dq.MetricsBackupNewest(ctx, db.MetricsBackupNewestParams{Scopes: scopes, Types: types, TenantHk: tenantHK})
			if err != nil {
				return err
			}
			m.Freshness = freshness(rows, now)
		}
		if q.Sections.Has(SectionSchedules) {
			a, err := s.adherence(ctx, dq, tenantHK, m.From, now)
			if err != nil {
				return err
			}
			m.Schedules = a
		}
		return nil
	})
	return m, err
}

func counts(rows []db.MetricsBackupCountsRow) *Counts {
	c := &Counts{ByStatus: map[string]int64{}, ByType: map[string]int64{}}
	for _, st := range []string{backup.StatusQueued, backup.StatusRunning, backup.StatusCompleted, backup.StatusFailed, backup.StatusVerified,
		backup.StatusVerifyFailed, backup.StatusExpired} {
		c.ByStatus[st] = 0
	}
	for _, t := range types {
		c.ByType[t] = 0
	}
	var good, finished int64
	for _, r := range rows {
		c.Total += r.Backups
		c.ByStatus[r.Status] += r.Backups
		c.ByType[r.BackupType] += r.Backups
		if isGood(r.Status) {
			good += r.Backups
		}
		if isFinished(r.Status) {
			finished += r.Backups
		}
	}
	c.SuccessRate = ratio(good, finished)
	return c
}

func durations(f db.MetricsBackupFiguresRow) *Durations {
	d := &Durations{}
	if f.Timed > 0 {
		avg, p95, longest := f.DurationAvgMs, f.DurationP95Ms, f.DurationMaxMs
		d.AverageMs, d.P95Ms, d.MaxMs = &avg, &p95, &longest
	}
	return d
}

func sizes(f db.MetricsBackupFiguresRow) *Sizes {
	z := &Sizes{TotalBytes: f.SizeBytes, StoredBytes: f.StoredBytes, CompressionRatio: ratio(f.StoredBytes, f.SizeBytes)}
	if f.Sized > 0 {
		avg := float64(f.SizeBytes) / float64(f.Sized)
		z.AverageBytes = &avg
	}
	if f.ThroughputMs > 0 {
		tp := float64(f.ThroughputBytes) / (float64(f.ThroughputMs) / 1000)
		z.ThroughputBytesPerSec = &tp
	}
	return z
}

func freshness(rows []db.MetricsBackupNewestRow, now time.Time) *Freshness {
	f := &Freshness{}
	byScope := map[string]ScopeBackup{}
	for _, r := range rows {
		at := r.CompletedAt
		if f.LastGoodAt == nil || at.After(*f.LastGoodAt) {
			f.LastGoodAt = &at
		}
		if r.BackupType == backup.TypeFull && (f.LastFullAt == nil || at.After(*f.LastFullAt)) {
			f.LastFullAt = &at
		}
		if cur, ok := byScope[r.BackupScope]; !ok || at.After(cur.CompletedAt) {
			byScope[r.BackupScope] = ScopeBackup{Scope: r.BackupScope, BackupID: r.BackupBk, Type: r.BackupType,
				SchemaName: r.SchemaName, CompletedAt: at}
		}
	}
	for _, sc := range scopes {
		if b, ok := byScope[sc]; ok {
			b.AgeSeconds = ageSeconds(b.CompletedAt, now)
			f.ByScope = append(f.ByScope, b)
		}
	}
	if f.LastGoodAt != nil {
		age := ageSeconds(*f.LastGoodAt, now)
		f.RecoveryPointAgeSeconds = &age
	}
	return f
}

// ageSeconds is how many whole seconds before now at was, 0 for a time after now.
func ageSeconds(at, now time.Time) int64 {
	return int64(max(now.Sub(at), 0) / time.Second)
}

func (s *Service) adherence(ctx context.Context, dq *db.Queries, tenantHK []byte, from, now time.Time) (*Adherence, error) {
	fires, err := dq.MetricsScheduleFires(ctx, db.MetricsScheduleFiresParams{LateSeconds: LateAfter.Seconds(),
		TenantHk: tenantHK, Since: from, Until: now})
	if err != nil {
		return nil, err
	}
	rows, err := dq.MetricsSchedules(ctx, tenantHK)
	if err != nil {
		return nil, err
	}
	a := &Adherence{Schedules: len(rows), Enqueued: fires.Enqueued, SkippedOutsideWindow: fires.SkippedOutsideWindow,
		Missed: fires.Missed, Late: fires.Late, Failed: fires.NotEnqueued + fires.BackupFailed}
	for _, r := range rows {
		if !r.Enabled {
			continue
		}
		a.Enabled++
		sc, err := parseSchedule(r)
		if err != nil {
			s.opts.Logger.Warn("schedule cannot be evaluated", "schedule_id", r.ScheduleBk.String(), "error", err.Error())
			continue
		}
		next, err := schedule.NextRuns(sc.cron, sc.loc, sc.window, now, 1)
		if err != nil || len(next) == 0 {
			continue
		}
		if a.NextRunAt == nil || next[0].Before(*a.NextRunAt) {
			at := next[0]
			a.NextRunAt = &at
		}
	}
	return a, nil
}

// scheduleSpec is what the fire times of a stored schedule need.
type scheduleSpec struct {
	id        uuid.UUID
	name      string
	cron      string
	loc       *time.Location
	window    *schedule.Window
	createdAt time.Time
}

func parseSchedule(r db.MetricsSchedulesRow) (scheduleSpec, error) {
	loc, err := schedule.LoadLocation(r.Timezone)
	if err != nil {
		return scheduleSpec{}, err
	}
	sc := scheduleSpec{id: r.ScheduleBk, name: r.ScheduleName, cron: r.CronExpression, loc: loc, createdAt: r.CreatedAt}
	if r.WindowStart != nil && r.WindowEnd != nil {
		sc.window = &schedule.Window{Start: *r.WindowStart, End: *r.WindowEnd}
	}
	return sc, nil
}
