package logical_test

import (
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onevault/readiness/internal/backup/logical"
	"github.com/onevault/readiness/internal/pgtest"
)

// discardSink throws the objects away, so that the benchmark measures the backup itself
// rather than the disk.
type discardSink struct{}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

func (discardSink) Create(string) (io.WriteCloser, error) { return nopWriteCloser{io.Discard}, nil }

// BenchmarkTenantBackup takes a FULL backup of a tenant with about 50 MB of rows (COPY
// text) in a database that holds another tenant's rows too; MB/s is of the backup's bytes.
func BenchmarkTenantBackup(b *testing.B) {
	url := pgtest.Server(b).NewDatabase(b)
	execSQL(b, url, schemaSQL)
	// Satellites carry the payload: 384 hexadecimal characters of notes a row, which do not
	// compress to nothing.
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
	execSQL(b, url, "ANALYZE")

	b.ReportAllocs()
	var bytes int64
	for b.Loop() {
		m, err := logical.BackupTenant(b.Context(), discardSink{}, logical.TenantOptions{ConnString: url, TenantKey: acme})
		require.NoError(b, err)
		bytes = m.Bytes
	}
	b.SetBytes(bytes)
	b.ReportMetric(float64(bytes)/1e6, "MB/backup")
}
