package logical_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/onevault/readiness/internal/backup/logical"
	"github.com/onevault/readiness/internal/pgtest"
)

// BenchmarkTenantIncremental takes an INCREMENTAL of a tenant that has 35,000 patients (about
// 50 MB of rows, in a database that holds another tenant's as many) after 100 new ones were
// loaded: what an incremental costs when little changed, which is its usual case.
func BenchmarkTenantIncremental(b *testing.B) {
	url := pgtest.Server(b).NewDatabase(b)
	execSQL(b, url, schemaSQL)
	for _, tenant := range []string{"acme", "globex"} {
		execSQL(b, url, `
INSERT INTO healthcare.hub_patient
SELECT sha256(convert_to($1 || ':patient:' || i, 'UTF8')), $1 || '-P' || i, $2, '2025-01-01'::timestamptz + i * interval '1 second', 'EHR'
FROM generate_series(1, 35000) i`, tenant, tenantKey(tenant))
		execSQL(b, url, `
INSERT INTO healthcare.sat_patient_details
SELECT sha256(convert_to($1 || ':patient:' || i, 'UTF8')), '2025-01-01'::timestamptz + (i + v) * interval '1 second',
       sha256(convert_to($1 || i || v, 'UTF8')), $2, 'Patient ' || i,
       (SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 12) WHERE i IS NOT NULL),
       'ACTIVE', 'EHR'
FROM generate_series(1, 35000) i, generate_series(0, 1) v`, tenant, tenantKey(tenant))
	}
	execSQL(b, url, "VACUUM ANALYZE")
	full, err := logical.BackupTenant(b.Context(), discardSink{}, logical.TenantOptions{ConnString: url, TenantKey: acme})
	require.NoError(b, err)
	seedPatients(b, url, "acme", 40001, 40100, time.Now().UTC())
	execSQL(b, url, "VACUUM ANALYZE")

	b.ReportAllocs()
	var rows int64
	for b.Loop() {
		m, err := logical.BackupTenant(b.Context(), discardSink{}, logical.TenantOptions{ConnString: url, TenantKey: acme, Parent: full})
		require.NoError(b, err)
		rows = m.Rows
	}
	b.ReportMetric(float64(rows), "rows/backup")
}
