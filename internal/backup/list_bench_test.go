package backup_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/onevault/readiness/internal/backup"
	"github.com/onevault/readiness/internal/pgtest"
	"github.com/onevault/readiness/internal/retention"
	"github.com/onevault/readiness/internal/storage"
	"github.com/onevault/readiness/internal/vault"
)

// BenchmarkBackupList measures listing a tenant's backups when it has a million of them (and
// another tenant a hundred thousand): the first page, a filtered page, a deep page, and the
// count the pagination needs. Run with: go test -run '^$' -bench BackupList ./internal/backup/
func BenchmarkBackupList(b *testing.B) {
	ctx := context.Background()
	url := pgtest.Server(b).NewDatabaseFrom(b, "million-backups", func(ctx context.Context, url string) error {
		if err := vault.Migrate(ctx, url); err != nil {
			return err
		}
		s, err := vault.Open(ctx, url)
		if err != nil {
			return err
		}
		defer s.Close()
		if _, err = s.Pool.Exec(ctx, millionBackups); err != nil {
			return err
		}
		_, err = s.Pool.Exec(ctx, "VACUUM ANALYZE") // the steady state autovacuum keeps
		return err
	})
	store, err := vault.Open(ctx, url)
	require.NoError(b, err)
	defer store.Close()
	_, err = store.Pool.Exec(ctx, `INSERT INTO hub_tenant (tenant_hk, tenant_bk, record_source) VALUES (hash_key('acme'), 'acme', 'bench')
		ON CONFLICT DO NOTHING`)
	require.NoError(b, err)
	key, err := storage.GenerateKey()
	require.NoError(b, err)
	k, err := storage.ParseKey(key)
	require.NoError(b, err)
	repo, err := storage.Open(b.TempDir(), k)
	require.NoError(b, err)
	svc := backup.New(store, repo, backup.Config{DefaultRetention: retention.Years(7)})
	hk, err := store.TenantHK(ctx, "acme")
	require.NoError(b, err)
	completed, incremental := backup.StatusCompleted, backup.TypeIncremental
	since := time.Now().Add(-24 * time.Hour)

	cases := []struct {
		name string
		f    backup.Filter
	}{
		{"first page", backup.Filter{PageSize: 20}},
		{"status filter", backup.Filter{Status: &completed, PageSize: 20}},
		{"type and date filter", backup.Filter{Type: &incremental, Start: &since, PageSize: 20}},
		{"page 500", backup.Filter{Offset: 500 * 20, PageSize: 20}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				items, total, err := svc.List(ctx, hk, c.f)
				if err != nil || len(items) == 0 || total == 0 {
					b.Fatalf("list: %d items of %d, %v", len(items), total, err)
				}
			}
		})
	}
}

// millionBackups writes a million backups of acme and a hundred thousand of globex, straight
// into the tables (the point-in-time rows too, as the trigger would).
const millionBackups = `
INSERT INTO hub_tenant (tenant_hk, tenant_bk, record_source) VALUES
    (hash_key('acme'), 'acme', 'bench'), (hash_key('globex'), 'globex', 'bench') ON CONFLICT DO NOTHING;
INSERT INTO sat_tenant_profile (tenant_hk, hash_diff, display_name, changed_by, record_source)
    SELECT tenant_hk, tenant_hk, tenant_bk, 'bench', 'bench' FROM hub_tenant WHERE tenant_bk IN ('acme', 'globex');
CREATE TEMP TABLE gen AS
    SELECT gen_random_uuid() AS backup_bk,
           CASE WHEN i <= 1000000 THEN hash_key('acme') ELSE hash_key('globex') END AS tenant_hk,
           now() - make_interval(secs => i * 3) AS created_at,
           (ARRAY['FULL', 'INCREMENTAL', 'DIFFERENTIAL'])[1 + i % 3] AS backup_type,
           (ARRAY['COMPLETED', 'VERIFIED', 'FAILED', 'EXPIRED'])[1 + (i / 7) % 4] AS status
    FROM generate_series(1, 1100000) AS i;
ALTER TABLE gen ADD COLUMN backup_hk bytea;
UPDATE gen SET backup_hk = sha256(convert_to(upper(backup_bk::text), 'UTF8'));
SET session_replication_role = replica;
INSERT INTO hub_backup_execution (backup_hk, backup_bk, tenant_hk, load_date, record_source)
    SELECT backup_hk, backup_bk, tenant_hk, created_at, 'bench' FROM gen;
INSERT INTO sat_backup_execution_request (backup_hk, load_date, hash_diff, tenant_hk, backup_type, backup_scope,
        compression_enabled, verify_backup, storage_location, retention_period, priority, requested_by, record_source)
    SELECT backup_hk, created_at, backup_hk, tenant_hk, backup_type, 'TENANT', true, false, '', 'P7Y', 5, 'bench', 'bench' FROM gen;
INSERT INTO sat_backup_execution_status (backup_hk, load_date, tenant_hk, status, attempt, started_at, completed_at,
        size_bytes, stored_size_bytes, record_source)
    SELECT backup_hk, created_at + interval '1 minute', tenant_hk, status, 1, created_at, created_at + interval '1 minute',
           1000000, 500000, 'bench' FROM gen;
INSERT INTO pit_backup_execution (backup_hk, backup_bk, tenant_hk, created_at, backup_type, backup_scope, status, status_date)
    SELECT backup_hk, backup_bk, tenant_hk, created_at, backup_type, 'TENANT', status, created_at + interval '1 minute' FROM gen;
INSERT INTO pit_backup_count (tenant_hk, backup_type, status, n)
    SELECT tenant_hk, backup_type, status, count(*) FROM pit_backup_execution GROUP BY 1, 2, 3;
SET session_replication_role = origin;
`
