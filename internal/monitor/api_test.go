package monitor_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/onevault/readiness/gen/client"
	"github.com/onevault/readiness/internal/apitest"
	"github.com/onevault/readiness/internal/auth"
)

// TestMonitoringAPI calls the two endpoints and /metrics of a whole service, the way a user
// does; the client validates every response against the contract.
func TestMonitoringAPI(t *testing.T) {
	svc := apitest.Start(t, apitest.Options{})
	ctx := context.Background()
	f := fixtureOn(t, svc.App.Store, "acme", "globex")
	sc := writeMetricsScenario(f)
	viewer := apitest.As(apitest.Token(t, "vera", []string{"acme"}, auth.RoleViewer))

	t.Run("backup metrics of the last day, all sections", func(t *testing.T) {
		resp, err := svc.Client.GetBackupMetricsWithResponse(ctx, &client.GetBackupMetricsParams{XTenantID: "acme"}, viewer)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode(), string(resp.Body))
		m := resp.JSON200.Data
		require.Equal(t, client.BackupMetricsTimeRangeOneDay, m.TimeRange)
		require.Equal(t, client.BackupMetricTypeALL, m.MetricType)

		require.NotNil(t, m.Counts)
		require.Equal(t, client.BackupCountMetrics{Total: 8, Queued: 1, Running: 1, Completed: 2, Failed: 1, Verified: 1,
			VerifyFailed: 1, SuccessRate: ptr(0.6)}, *m.Counts)
		require.NotNil(t, m.Duration)
		require.InDelta(t, 30000, *m.Duration.AverageMs, 1e-6)
		require.InDelta(t, 48000, *m.Duration.P95Ms, 1e-6)
		require.EqualValues(t, 50000, *m.Duration.MaxMs)
		require.NotNil(t, m.Size)
		require.EqualValues(t, 15000, m.Size.TotalBytes)
		require.EqualValues(t, 6000, m.Size.StoredBytes)
		require.InDelta(t, 3000, *m.Size.AverageBytes, 1e-9)
		require.InDelta(t, 0.4, *m.Size.CompressionRatio, 1e-9)
		require.NotNil(t, m.Freshness)
		require.WithinDuration(t, sc.newest.completed, *m.Freshness.LastSuccessfulBackupAt, time.Millisecond)
		require.WithinDuration(t, sc.newest.completed, *m.Freshness.LastFullBackupAt, time.Millisecond)
		require.InDelta(t, time.Since(sc.newest.completed).Seconds(), float64(*m.Freshness.AgeSeconds), 5)
		require.Nil(t, m.Freshness.LastArchivedWalAt, "WAL archiving does not exist yet")
		require.NotNil(t, m.Schedules)
		require.Equal(t, 2, m.Schedules.TotalSchedules)
		require.Equal(t, 1, m.Schedules.EnabledSchedules)
		require.EqualValues(t, 2, m.Schedules.FiredRuns)
		require.EqualValues(t, 2, m.Schedules.SkippedRuns, "one outside the window, one missed")
		require.EqualValues(t, 2, m.Schedules.FailedRuns)
		require.NotNil(t, m.Schedules.NextRunAt)
	})

	t.Run("metricType selects one section", func(t *testing.T) {
		week, duration := client.BackupMetricsTimeRangeSevenDays, client.BackupMetricTypeDURATION
		resp, err := svc.Client.GetBackupMetricsWithResponse(ctx, &client.GetBackupMetricsParams{XTenantID: "acme",
			TimeRange: &week, MetricType: &duration}, viewer)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode(), string(resp.Body))
		m := resp.JSON200.Data
		require.NotNil(t, m.Duration)
		require.EqualValues(t, 100000, *m.Duration.MaxMs, "a week holds the backup of two days ago")
		require.Nil(t, m.Counts)
		require.Nil(t, m.Size)
		require.Nil(t, m.Freshness)
		require.Nil(t, m.Schedules)
		require.NotContains(t, string(resp.Body), `"counts"`)
	})

	t.Run("another tenant's token cannot read acme's metrics", func(t *testing.T) {
		gary := apitest.As(apitest.Token(t, "gary", []string{"globex"}, auth.RoleViewer))
		resp, err := svc.Client.GetBackupMetricsWithResponse(ctx, &client.GetBackupMetricsParams{XTenantID: "acme"}, gary)
		require.NoError(t, err)
		require.Equal(t, http.StatusForbidden, resp.StatusCode())
	})

	t.Run("system health rates the backup metrics and counts them", func(t *testing.T) {
		resp, err := svc.Client.GetSystemHealthWithResponse(ctx, &client.GetSystemHealthParams{XTenantID: "acme"}, viewer)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode(), string(resp.Body))
		h := resp.JSON200.Data
		byName := map[string]client.SystemHealthMetric{}
		counts := map[client.MetricStatus]int{}
		for _, m := range h.Metrics {
			require.Equal(t, client.MonitoringCategoryBACKUP, m.Category)
			byName[m.MetricName] = m
			counts[m.Status]++
		}
		require.Equal(t, client.MetricStatusNORMAL, byName["service_database_ping_ms"].Status)
		require.Equal(t, client.MetricStatusNORMAL, byName["managed_database_ping_ms"].Status, "the test service's managed database answers")
		require.Equal(t, client.MetricStatusCRITICAL, byName["backup_age_seconds"].Status,
			"the hourly schedule's newest good backup completed five hours ago: %s", *byName["backup_age_seconds"].Details)
		require.Equal(t, client.MetricStatusCRITICAL, byName["failed_backups_24h"].Status, "the last TENANT backup failed")
		require.Equal(t, client.MetricStatusNORMAL, byName["failed_jobs_24h"].Status)
		require.Equal(t, client.HealthSummary{TotalMetrics: len(h.Metrics), CriticalCount: counts[client.MetricStatusCRITICAL],
			WarningCount: counts[client.MetricStatusWARNING], NormalCount: counts[client.MetricStatusNORMAL]}, h.Summary)
	})

	t.Run("categories that are not measured yet answer no metrics", func(t *testing.T) {
		cats := []client.MonitoringCategory{client.MonitoringCategoryPERFORMANCE, client.MonitoringCategoryCAPACITY}
		resp, err := svc.Client.GetSystemHealthWithResponse(ctx, &client.GetSystemHealthParams{XTenantID: "acme",
			MetricCategories: &cats}, viewer)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode(), string(resp.Body))
		require.Empty(t, resp.JSON200.Data.Metrics)
		require.Equal(t, client.HealthSummary{}, resp.JSON200.Data.Summary)
	})

	t.Run("an end before the start is refused", func(t *testing.T) {
		start := time.Now()
		end := start.Add(-time.Hour)
		resp, err := svc.Client.GetSystemHealthWithResponse(ctx, &client.GetSystemHealthParams{XTenantID: "acme",
			StartTime: &start, EndTime: &end}, viewer)
		require.NoError(t, err)
		require.Equal(t, http.StatusBadRequest, resp.StatusCode(), string(resp.Body))
	})

	t.Run("/metrics exposes the backup figures labelled by tenant", func(t *testing.T) {
		resp, err := http.Get(svc.URL + "/metrics")
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		text := string(body)
		for _, line := range []string{
			`readiness_backups{status="COMPLETED",tenant="acme",type="FULL"} 3`,
			`readiness_backups{status="COMPLETED",tenant="globex",type="FULL"} 1`,
			`readiness_backup_storage_bytes{tenant="acme"} 9000`,
			`readiness_backup_success_ratio{tenant="acme"} 0.6`,
			`readiness_schedule_fires_late_total{tenant="acme"} 1`,
		} {
			require.True(t, strings.Contains(text, line+"\n"), "missing %s", line)
		}
	})
}
