package monitor_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/onevault/readiness/internal/monitor"
	"github.com/onevault/readiness/internal/pgtest"
	"github.com/onevault/readiness/internal/vault"
)

// BenchmarkMetrics measures the metrics endpoint's figures, health and a Prometheus scrape when
// acme has a million backups over the last 35 days and globex a hundred thousand. Run with:
// go test -run '^$' -bench Metrics ./internal/monitor/
func BenchmarkMetrics(b *testing.B) {
	ctx := context.Background()
	url := pgtest.Server(b).NewDatabaseFrom(b, "million-measured-backups", func(ctx context.Context, url string) error {
		if err := vault.Migrate(ctx, url); err != nil {
			return err
		}
		s, err := vault.Open(ctx, url)
		if err != nil {
			return err
		}
		defer s.Close()
		_, err = s.Pool.Exec(ctx, millionMeasuredBackups)
		return err
	})
	store, err := vault.Open(ctx, url)
	require.NoError(b, err)
	defer store.Close()
	hk, err := store.TenantHK(ctx, "acme")
	require.NoError(b, err)
	svc := monitor.NewService(store, monitor.Options{})

	for _, c := range []struct {
		name string
		q    monitor.Query
	}{
		{"as the API asks for all, 24h", monitor.Query{Range: 24 * time.Hour, Sections: monitor.SectionAll &^ monitor.SectionStorage}},
		{"as the API asks for all, 30d", monitor.Query{Range: 30 * 24 * time.Hour, Sections: monitor.SectionAll &^ monitor.SectionStorage}},
		{"freshness", monitor.Query{Range: 24 * time.Hour, Sections: monitor.SectionFreshness}},
		{"storage used", monitor.Query{Range: 24 * time.Hour, Sections: monitor.SectionStorage}},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				m, err := svc.BackupMetrics(ctx, hk, c.q)
				if err != nil || (m.Counts != nil && m.Counts.Total == 0) {
					b.Fatalf("metrics: %+v, %v", m.Counts, err)
				}
			}
		})
	}
	b.Run("health", func(b *testing.B) {
		for b.Loop() {
			if _, err := svc.BackupHealth(ctx, vault.TenantRef{ID: "acme", HK: hk}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("prometheus scrape", func(b *testing.B) {
		reg := prometheus.NewRegistry()
		reg.MustRegister(monitor.NewCollector(store))
		for b.Loop() {
			if _, err := reg.Gather(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// millionMeasuredBackups writes a million backups of acme and a hundred thousand of globex,
// one every 3 seconds back from now, straight into the hub and the point-in-time table (with
// the figures the triggers would copy there).
const millionMeasuredBackups = `
INSERT INTO hub_tenant (tenant_hk, tenant_bk, record_source) VALUES
    (hash_key('acme'), 'acme', 'bench'), (hash_key('globex'), 'globex', 'bench') ON CONFLICT DO NOTHING;
INSERT INTO sat_tenant_profile (tenant_hk, hash_diff, display_name, changed_by, record_source)
    SELECT tenant_hk, tenant_hk, tenant_bk, 'bench', 'bench' FROM hub_tenant WHERE tenant_bk IN ('acme', 'globex');
CREATE TEMP TABLE gen AS
    SELECT gen_random_uuid() AS backup_bk,
           CASE WHEN i <= 1000000 THEN hash_key('acme') ELSE hash_key('globex') END AS tenant_hk,
           now() - make_interval(secs => (i % 1000000) * 3) AS created_at,
           (ARRAY['FULL', 'INCREMENTAL', 'DIFFERENTIAL'])[1 + i % 3] AS backup_type,
           (ARRAY['TENANT', 'TENANT', 'SCHEMA'])[1 + i % 3] AS backup_scope,
           (ARRAY['COMPLETED', 'VERIFIED', 'FAILED', 'EXPIRED', 'VERIFY_FAILED', 'COMPLETED', 'VERIFIED'])[1 + (i / 7) % 7] AS status,
           1000 + i % 5000 AS duration_ms
    FROM generate_series(1, 1100000) AS i;
ALTER TABLE gen ADD COLUMN backup_hk bytea;
UPDATE gen SET backup_hk = sha256(convert_to(upper(backup_bk::text), 'UTF8'));
SET session_replication_role = replica;
INSERT INTO hub_backup_execution (backup_hk, backup_bk, tenant_hk, load_date, record_source)
    SELECT backup_hk, backup_bk, tenant_hk, created_at, 'bench' FROM gen;
INSERT INTO pit_backup_execution (backup_hk, backup_bk, tenant_hk, created_at, backup_type, backup_scope, schema_name,
        status, status_date, completed_at, duration_ms, size_bytes, stored_size_bytes)
    SELECT backup_hk, backup_bk, tenant_hk, created_at, backup_type, backup_scope,
           CASE WHEN backup_scope = 'SCHEMA' THEN 'sales' END, status, created_at + interval '1 minute',
           CASE WHEN status <> 'FAILED' THEN created_at + make_interval(secs => duration_ms / 1000.0) END,
           duration_ms, CASE WHEN status <> 'FAILED' THEN 1000000 END, CASE WHEN status <> 'FAILED' THEN 400000 END
    FROM gen;
SET session_replication_role = origin;
ANALYZE;
`
