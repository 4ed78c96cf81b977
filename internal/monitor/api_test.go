package monitor_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/onevault/readiness/gen/client"
	"github.com/onevault/readiness/gen/db"
	"github.com/onevault/readiness/internal/apitest"
	"github.com/onevault/readiness/internal/auth"
	"github.com/onevault/readiness/internal/schedule"
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
			VerifyFailed: 1, Expired: 1, ByType: client.BackupTypeCounts{Full: 5, Differential: 1, Incremental: 2},
			SuccessRate: ptr(0.6)}, *m.Counts)
		require.NotNil(t, m.Duration)
		require.InDelta(t, 30000, *m.Duration.AverageMs, 1e-6)
		require.InDelta(t, 48000, *m.Duration.P95Ms, 1e-6)
		require.EqualValues(t, 50000, *m.Duration.MaxMs)
		require.NotNil(t, m.Size)
		require.EqualValues(t, 15000, m.Size.TotalBytes)
		require.EqualValues(t, 6000, m.Size.StoredBytes)
		require.InDelta(t, 3000, *m.Size.AverageBytes, 1e-9)
		require.InDelta(t, 0.4, *m.Size.CompressionRatio, 1e-9)
		require.NotNil(t, m.Size.ThroughputBytesPerSec)
		require.InDelta(t, 100, *m.Size.ThroughputBytesPerSec, 1e-9, "15000 bytes in 150 s")
		require.EqualValues(t, 400+800+1200+1600+5000, m.Size.StorageUsedBytes,
			"every backup kept, the one older than the range too; not globex's")
		require.NotNil(t, m.Freshness)
		require.WithinDuration(t, sc.newest.completed, *m.Freshness.LastSuccessfulBackupAt, time.Millisecond)
		require.WithinDuration(t, sc.newest.completed, *m.Freshness.LastFullBackupAt, time.Millisecond)
		require.InDelta(t, time.Since(sc.newest.completed).Seconds(), float64(*m.Freshness.AgeSeconds), 5)
		require.Nil(t, m.Freshness.LastArchivedWalAt, "WAL archiving does not exist yet")
		byScope := m.Freshness.ByScope
		require.Len(t, byScope, 2, "acme has good TENANT and SCHEMA backups, no SYSTEM one")
		require.Equal(t, client.BackupScopeTENANT, byScope[0].Scope)
		require.Equal(t, sc.tenantNewest.id, uuid.UUID(byScope[0].BackupId), "the VERIFIED incremental, newer than the COMPLETED FULL")
		require.Equal(t, client.BackupTypeINCREMENTAL, byScope[0].BackupType)
		require.Nil(t, byScope[0].SchemaName)
		require.WithinDuration(t, sc.tenantNewest.completed, byScope[0].CompletedAt, time.Millisecond)
		require.InDelta(t, time.Since(sc.tenantNewest.completed).Seconds(), float64(byScope[0].AgeSeconds), 5)
		require.Equal(t, client.BackupScopeSCHEMA, byScope[1].Scope)
		require.Equal(t, sc.newest.id, uuid.UUID(byScope[1].BackupId))
		require.Equal(t, client.BackupTypeFULL, byScope[1].BackupType)
		require.Equal(t, ptr("sales"), byScope[1].SchemaName)
		require.InDelta(t, time.Since(sc.newest.completed).Seconds(), float64(byScope[1].AgeSeconds), 5)
		require.NotNil(t, m.Schedules)
		require.Equal(t, 2, m.Schedules.TotalSchedules)
		require.Equal(t, 1, m.Schedules.EnabledSchedules)
		require.EqualValues(t, 2, m.Schedules.FiredRuns)
		require.EqualValues(t, 1, m.Schedules.LateRuns, "queued 5 minutes after its due time")
		require.EqualValues(t, 2, m.Schedules.SkippedRuns, "one outside the window, one missed")
		require.EqualValues(t, 1, m.Schedules.OutsideWindowRuns)
		require.EqualValues(t, 1, m.Schedules.MissedRuns, "the missed fire of 30h ago is out of the range")
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

	t.Run("metricType SIZE carries the storage used of all time", func(t *testing.T) {
		hour, size := client.BackupMetricsTimeRangeOneHour, client.BackupMetricTypeSIZE
		resp, err := svc.Client.GetBackupMetricsWithResponse(ctx, &client.GetBackupMetricsParams{XTenantID: "acme",
			TimeRange: &hour, MetricType: &size}, viewer)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode(), string(resp.Body))
		m := resp.JSON200.Data
		require.NotNil(t, m.Size)
		require.Zero(t, m.Size.TotalBytes, "no backup completed in the last hour")
		require.Nil(t, m.Size.ThroughputBytesPerSec)
		require.EqualValues(t, 9000, m.Size.StorageUsedBytes)
		require.Nil(t, m.Counts)
		require.Nil(t, m.Freshness)
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

	t.Run("a tenant that never had a good backup is normal, then warning after its grace period, then critical", func(t *testing.T) {
		// Three tenants without backups, registered just now, two hours ago and two days ago.
		registered := map[string]time.Duration{"hooli": 0, "initech": 2 * time.Hour, "umbrella": 48 * time.Hour}
		want := map[string]client.MetricStatus{"hooli": client.MetricStatusNORMAL, "initech": client.MetricStatusWARNING,
			"umbrella": client.MetricStatusCRITICAL}
		for name, ago := range registered {
			_, err := svc.App.Store.Queries().TenantCreate(ctx, db.TenantCreateParams{TenantBk: name, DisplayName: name,
				ChangedBy: "test", RecordSource: "test"})
			require.NoError(t, err)
			_, err = svc.App.Store.Pool.Exec(ctx, `UPDATE hub_tenant SET load_date = now() - make_interval(secs => $2) WHERE tenant_bk = $1`,
				name, ago.Seconds())
			require.NoError(t, err)
		}
		// initech also has a daily schedule whose first fire is hours away: it does not make the
		// tenant's missing backup normal.
		f.tenants["initech"] = fixtureOn(t, svc.App.Store, "initech").tenants["initech"]
		f.schedule("initech", schedule.Definition{Name: "daily", Cron: fmt.Sprintf("0 %d * * *", (time.Now().UTC().Hour()+6)%24),
			Enabled: true}, time.Now())
		for name, status := range want {
			tok := apitest.As(apitest.Token(t, "vera", []string{name}, auth.RoleViewer))
			resp, err := svc.Client.GetSystemHealthWithResponse(ctx, &client.GetSystemHealthParams{XTenantID: name}, tok)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, resp.StatusCode(), string(resp.Body))
			var found bool
			for _, m := range resp.JSON200.Data.Metrics {
				if m.MetricName != "backup_age_seconds" || !strings.Contains(*m.Details, "the tenant has no good backup") {
					continue
				}
				found = true
				require.Equal(t, status, m.Status, "%s: %s", name, *m.Details)
				require.InDelta(t, registered[name].Seconds(), m.Value, 60, name)
				require.NotNil(t, m.Threshold)
				require.InDelta(t, time.Hour.Seconds(), *m.Threshold, 1e-9, "the default grace period")
			}
			require.True(t, found, "%s has no rating of its missing backup: %+v", name, resp.JSON200.Data.Metrics)
		}
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
