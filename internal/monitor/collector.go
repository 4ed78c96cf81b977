package monitor

import (
	"context"
	"math"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/onevault/readiness/gen/db"
	"github.com/onevault/readiness/internal/vault"
)

// ScrapeTimeout bounds the queries of one Prometheus scrape.
const ScrapeTimeout = 10 * time.Second

// RecentWindow is the window of the figures Prometheus gets as rates over recent backups: the
// duration quantiles and the success ratio.
const RecentWindow = 24 * time.Hour

// The metric families, labelled by tenant (its business key, as in X-Tenant-ID).
var (
	descBackups = prometheus.NewDesc("readiness_backups",
		"Backups by current status and type (a backup moves between statuses, so this is a gauge).",
		[]string{"tenant", "status", "type"}, nil)
	descDuration = prometheus.NewDesc("readiness_backup_duration_seconds",
		"Run time of done backups (COMPLETED, VERIFIED, VERIFY_FAILED, EXPIRED): count and sum of all of them, "+
			"quantiles of those created in the last 24h.",
		[]string{"tenant"}, nil)
	descSize = prometheus.NewDesc("readiness_backup_size_bytes_total",
		"Data size (before compression) of every done backup.",
		[]string{"tenant"}, nil)
	descStorage = prometheus.NewDesc("readiness_backup_storage_bytes",
		"Bytes in storage of the backups still kept (not EXPIRED or FAILED).",
		[]string{"tenant"}, nil)
	descRecoveryPoint = prometheus.NewDesc("readiness_backup_recovery_point_age_seconds",
		"Seconds since the newest good (COMPLETED or VERIFIED) backup of the scope completed; absent when there is none.",
		[]string{"tenant", "scope"}, nil)
	descSuccess = prometheus.NewDesc("readiness_backup_success_ratio",
		"Good over finished backups (COMPLETED and VERIFIED over those and FAILED and VERIFY_FAILED) created in the last 24h; "+
			"absent when none finished.",
		[]string{"tenant"}, nil)
	descMissed = prometheus.NewDesc("readiness_schedule_fires_missed_total",
		"Schedule fires that queued no backup: MISSED while no replica ran, or SKIPPED_OUTSIDE_WINDOW.",
		[]string{"tenant"}, nil)
	descLate = prometheus.NewDesc("readiness_schedule_fires_late_total",
		"Schedule fires that queued their backup more than 60s after their due time.",
		[]string{"tenant"}, nil)
)

// collector reads the backup figures of every tenant at scrape time.
type collector struct {
	store *vault.Store
	now   func() time.Time
}

// NewCollector returns a Prometheus collector of the backup figures of every tenant, read from
// the store at each scrape with a few queries grouped by tenant (not one per tenant). A failed
// read makes the scrape fail rather than report stale or partial figures.
func NewCollector(store *vault.Store) prometheus.Collector {
	return &collector{store: store, now: time.Now}
}

// Describe sends the descriptors of every family.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descBackups, descDuration, descSize, descStorage, descRecoveryPoint,
		descSuccess, descMissed, descLate} {
		ch <- d
	}
}

// tenantFigures are one tenant's figures for a scrape.
type tenantFigures struct {
	timed                 int64
	durationMs, sizeBytes int64
	storedBytes           int64
	p50Ms, p95Ms          float64
	recentTimed           int64
	finished, succeeded   int64
	missed, late          int64
	newestGood            map[string]time.Time // by scope
	backups               []db.MetricsAllBackupTotalsRow
}

// Collect reads the figures and sends them.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), ScrapeTimeout)
	defer cancel()
	now := c.now()
	tenants, err := c.read(ctx, now)
	if err != nil {
		for _, d := range []*prometheus.Desc{descBackups, descDuration, descSize, descStorage, descRecoveryPoint,
			descSuccess, descMissed, descLate} {
			ch <- prometheus.NewInvalidMetric(d, err)
		}
		return
	}
	names := make([]string, 0, len(tenants))
	for t := range tenants {
		names = append(names, t)
	}
	sort.Strings(names)
	for _, t := range names {
		f := tenants[t]
		for _, r := range f.backups {
			ch <- prometheus.MustNewConstMetric(descBackups, prometheus.GaugeValue, float64(r.Backups), t, r.Status, r.BackupType)
		}
		quantiles := map[float64]float64{0.5: math.NaN(), 0.95: math.NaN()}
		if f.recentTimed > 0 {
			quantiles = map[float64]float64{0.5: f.p50Ms / 1000, 0.95: f.p95Ms / 1000}
		}
		ch <- prometheus.MustNewConstSummary(descDuration, uint64(f.timed), float64(f.durationMs)/1000, quantiles, t)
		ch <- prometheus.MustNewConstMetric(descSize, prometheus.CounterValue, float64(f.sizeBytes), t)
		ch <- prometheus.MustNewConstMetric(descStorage, prometheus.GaugeValue, float64(f.storedBytes), t)
		for _, scope := range scopes {
			if at, ok := f.newestGood[scope]; ok {
				ch <- prometheus.MustNewConstMetric(descRecoveryPoint, prometheus.GaugeValue, max(now.Sub(at), 0).Seconds(), t, scope)
			}
		}
		if r := ratio(f.succeeded, f.finished); r != nil {
			ch <- prometheus.MustNewConstMetric(descSuccess, prometheus.GaugeValue, *r, t)
		}
		ch <- prometheus.MustNewConstMetric(descMissed, prometheus.CounterValue, float64(f.missed), t)
		ch <- prometheus.MustNewConstMetric(descLate, prometheus.CounterValue, float64(f.late), t)
	}
}

// read runs the scrape's queries in one read-only snapshot, as the service (every tenant).
func (c *collector) read(ctx context.Context, now time.Time) (map[string]*tenantFigures, error) {
	tenants := map[string]*tenantFigures{}
	get := func(t string) *tenantFigures {
		f, ok := tenants[t]
		if !ok {
			f = &tenantFigures{newestGood: map[string]time.Time{}}
			tenants[t] = f
		}
		return f
	}
	err := pgx.BeginTxFunc(ctx, c.store.Pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly},
		func(tx pgx.Tx) error {
			q := db.New(tx)
			recent, err := q.MetricsAllRecent(ctx, now.Add(-RecentWindow))
			if err != nil {
				return err
			}
			for _, r := range recent {
				f := get(r.TenantBk)
				f.recentTimed, f.p50Ms, f.p95Ms = r.Timed, r.DurationP50Ms, r.DurationP95Ms
				f.finished, f.succeeded = r.Finished, r.Succeeded
			}
			totals, err := q.MetricsAllBackupTotals(ctx)
			if err != nil {
				return err
			}
			for _, r := range totals {
				f := get(r.TenantBk)
				f.backups = append(f.backups, r)
				f.timed += r.Timed
				f.durationMs += r.DurationMs
				f.sizeBytes += r.SizeBytes
				f.storedBytes += r.StoredBytes
				if r.Good > 0 {
					if cur, ok := f.newestGood[r.BackupScope]; !ok || r.NewestGoodAt.After(cur) {
						f.newestGood[r.BackupScope] = r.NewestGoodAt
					}
				}
			}
			fires, err := q.MetricsAllScheduleFires(ctx, LateAfter.Seconds())
			if err != nil {
				return err
			}
			for _, r := range fires {
				f := get(r.TenantBk)
				f.missed, f.late = r.Missed, r.Late
			}
			return nil
		})
	if err != nil {
		return nil, err
	}
	// Several rows of one tenant, status and type (one per scope) are one series.
	for _, f := range tenants {
		f.backups = mergeByStatusType(f.backups)
	}
	return tenants, nil
}

// mergeByStatusType adds up rows that differ only by scope.
func mergeByStatusType(rows []db.MetricsAllBackupTotalsRow) []db.MetricsAllBackupTotalsRow {
	type key struct{ status, typ string }
	idx := map[key]int{}
	var out []db.MetricsAllBackupTotalsRow
	for _, r := range rows {
		k := key{r.Status, r.BackupType}
		if i, ok := idx[k]; ok {
			out[i].Backups += r.Backups
			continue
		}
		idx[k] = len(out)
		out = append(out, r)
	}
	return out
}
