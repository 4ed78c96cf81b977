package api

import (
	"context"
	"slices"
	"time"

	oapi "github.com/onevault/readiness/gen/api"
	"github.com/onevault/readiness/internal/backup"
	"github.com/onevault/readiness/internal/monitor"
)

// The monitoring operations are routed, authenticated and validated. Backup metrics and the
// backup part of system health are built (internal/monitor); the others answer 501 until the
// monitoring issues build them.

// GetSystemHealth answers the health metrics of the categories asked for (all by default), each
// rated, with their summary. Only BACKUP is measured so far (the reachability of the service and
// managed databases, backup freshness against each schedule or the freshness target, a tenant
// that never had a good backup, failed backups and jobs); the other
// categories answer no metrics rather than made-up ones. startTime, endTime and granularity
// select stored samples, which the backup checks do not use: they measure the current state.
func (h *Handlers) GetSystemHealth(ctx context.Context, req oapi.GetSystemHealthRequestObject) (oapi.GetSystemHealthResponseObject, error) {
	t, err := tenant(ctx)
	if err != nil {
		return nil, err
	}
	p := req.Params
	if p.StartTime != nil && p.EndTime != nil && p.EndTime.Before(*p.StartTime) {
		return nil, BadRequest("endTime is before startTime", Detail{Field: "endTime", Message: "must not be before startTime"})
	}
	var measured []monitor.Metric
	if p.MetricCategories == nil || slices.Contains(*p.MetricCategories, oapi.MonitoringCategoryBACKUP) {
		if measured, err = h.monitor.BackupHealth(ctx, t); err != nil {
			return nil, err
		}
	}
	metrics := make([]oapi.SystemHealthMetric, len(measured))
	for i, m := range measured {
		metrics[i] = oapi.SystemHealthMetric{MetricName: m.Name, Category: oapi.MonitoringCategory(m.Category),
			Value: m.Value, Unit: m.Unit, Status: oapi.MetricStatus(m.Status), Threshold: m.Threshold,
			MeasuredAt: m.MeasuredAt.UTC(), Details: optionalString(m.Details)}
	}
	sum := monitor.Summarize(measured)
	return oapi.GetSystemHealth200JSONResponse{Success: true, Data: oapi.SystemHealth{Metrics: metrics,
		Summary: oapi.HealthSummary{TotalMetrics: sum.Total, CriticalCount: sum.Critical,
			WarningCount: sum.Warning, NormalCount: sum.Normal},
		Timestamp: h.now().UTC()}}, nil
}

// backupMetricRanges are the time ranges of getBackupMetrics.
var backupMetricRanges = map[oapi.BackupMetricsTimeRange]time.Duration{
	oapi.BackupMetricsTimeRangeOneHour:    time.Hour,
	oapi.BackupMetricsTimeRangeOneDay:     24 * time.Hour,
	oapi.BackupMetricsTimeRangeSevenDays:  7 * 24 * time.Hour,
	oapi.BackupMetricsTimeRangeThirtyDays: 30 * 24 * time.Hour,
}

// backupMetricSections are the sections each metricType selects.
var backupMetricSections = map[oapi.BackupMetricType]monitor.Sections{
	oapi.BackupMetricTypeCOUNTS:    monitor.SectionCounts,
	oapi.BackupMetricTypeDURATION:  monitor.SectionDuration,
	oapi.BackupMetricTypeSIZE:      monitor.SectionSize | monitor.SectionStorage,
	oapi.BackupMetricTypeFRESHNESS: monitor.SectionFreshness,
	oapi.BackupMetricTypeSCHEDULES: monitor.SectionSchedules,
	oapi.BackupMetricTypeALL:       monitor.SectionAll,
}

// GetBackupMetrics answers the tenant's backup figures over the time range (24h by default),
// only the sections metricType selects (all by default).
func (h *Handlers) GetBackupMetrics(ctx context.Context, req oapi.GetBackupMetricsRequestObject) (oapi.GetBackupMetricsResponseObject, error) {
	t, err := tenant(ctx)
	if err != nil {
		return nil, err
	}
	rng, typ := oapi.BackupMetricsTimeRangeOneDay, oapi.BackupMetricTypeALL
	if req.Params.TimeRange != nil {
		rng = *req.Params.TimeRange
	}
	if req.Params.MetricType != nil {
		typ = *req.Params.MetricType
	}
	d, ok := backupMetricRanges[rng]
	if !ok {
		return nil, BadRequest("invalid timeRange", Detail{Field: "timeRange", Message: "must be 1h, 24h, 7d or 30d"})
	}
	sections, ok := backupMetricSections[typ]
	if !ok {
		return nil, BadRequest("invalid metricType", Detail{Field: "metricType",
			Message: "must be COUNTS, DURATION, SIZE, FRESHNESS, SCHEDULES or ALL"})
	}
	m, err := h.monitor.BackupMetrics(ctx, t.HK, monitor.Query{Range: d, Sections: sections})
	if err != nil {
		return nil, err
	}
	out := oapi.BackupMetrics{TimeRange: rng, MetricType: typ, GeneratedAt: m.Until.UTC()}
	if c := m.Counts; c != nil {
		out.Counts = &oapi.BackupCountMetrics{Total: c.Total, Queued: c.ByStatus[backup.StatusQueued],
			Running: c.ByStatus[backup.StatusRunning], Completed: c.ByStatus[backup.StatusCompleted],
			Failed: c.ByStatus[backup.StatusFailed], Verified: c.ByStatus[backup.StatusVerified],
			VerifyFailed: c.ByStatus[backup.StatusVerifyFailed], Expired: c.ByStatus[backup.StatusExpired],
			ByType: oapi.BackupTypeCounts{Full: c.ByType[backup.TypeFull], Differential: c.ByType[backup.TypeDifferential],
				Incremental: c.ByType[backup.TypeIncremental]},
			SuccessRate: c.SuccessRate}
	}
	if d := m.Duration; d != nil {
		out.Duration = &oapi.BackupDurationMetrics{AverageMs: d.AverageMs, P95Ms: d.P95Ms, MaxMs: d.MaxMs}
	}
	if z := m.Size; z != nil {
		out.Size = &oapi.BackupSizeMetrics{TotalBytes: z.TotalBytes, StoredBytes: z.StoredBytes,
			AverageBytes: z.AverageBytes, CompressionRatio: z.CompressionRatio, ThroughputBytesPerSec: z.ThroughputBytesPerSec}
		if m.StorageUsedBytes != nil {
			out.Size.StorageUsedBytes = *m.StorageUsedBytes
		}
	}
	if f := m.Freshness; f != nil {
		byScope := make([]oapi.BackupScopeFreshness, len(f.ByScope))
		for i, b := range f.ByScope {
			byScope[i] = oapi.BackupScopeFreshness{Scope: oapi.BackupScope(b.Scope), BackupId: b.BackupID,
				BackupType: oapi.BackupType(b.Type), SchemaName: b.SchemaName, CompletedAt: b.CompletedAt.UTC(),
				AgeSeconds: b.AgeSeconds}
		}
		out.Freshness = &oapi.BackupFreshnessMetrics{LastSuccessfulBackupAt: utc(f.LastGoodAt),
			LastFullBackupAt: utc(f.LastFullAt), AgeSeconds: f.RecoveryPointAgeSeconds, ByScope: byScope}
	}
	if a := m.Schedules; a != nil {
		out.Schedules = &oapi.ScheduleAdherenceMetrics{TotalSchedules: a.Schedules, EnabledSchedules: a.Enabled,
			FiredRuns: a.Enqueued, LateRuns: a.Late, SkippedRuns: a.SkippedOutsideWindow + a.Missed,
			OutsideWindowRuns: a.SkippedOutsideWindow, MissedRuns: a.Missed, FailedRuns: a.Failed,
			NextRunAt: utc(a.NextRunAt)}
	}
	return oapi.GetBackupMetrics200JSONResponse{Success: true, Data: out}, nil
}

// utc is t in UTC, or nil.
func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// GetPerformanceAnalytics answers 501 until it is built.
func (h *Handlers) GetPerformanceAnalytics(_ context.Context, _ oapi.GetPerformanceAnalyticsRequestObject) (oapi.GetPerformanceAnalyticsResponseObject, error) {
	return nil, notImplemented("getPerformanceAnalytics")
}

// GetSecurityEvents answers 501 until it is built.
func (h *Handlers) GetSecurityEvents(_ context.Context, _ oapi.GetSecurityEventsRequestObject) (oapi.GetSecurityEventsResponseObject, error) {
	return nil, notImplemented("getSecurityEvents")
}

// GetComplianceStatus answers 501 until it is built.
func (h *Handlers) GetComplianceStatus(_ context.Context, _ oapi.GetComplianceStatusRequestObject) (oapi.GetComplianceStatusResponseObject, error) {
	return nil, notImplemented("getComplianceStatus")
}
