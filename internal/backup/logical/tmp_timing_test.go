package logical_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/onevault/readiness/internal/backup/logical"
	"github.com/onevault/readiness/internal/pgtest"
)

func TestTmpTiming(t *testing.T) {
	url := pgtest.Server(t).NewDatabase(t)
	execSQL(t, url, schemaSQL)
	for _, tenant := range []string{"acme", "globex"} {
		execSQL(t, url, `
INSERT INTO healthcare.hub_patient
SELECT sha256(convert_to($1 || ':patient:' || i, 'UTF8')), $1 || '-P' || i, $2, '2025-01-01'::timestamptz + i * interval '1 second', 'EHR'
FROM generate_series(1, 35000) i`, tenant, tenantKey(tenant))
		execSQL(t, url, `
INSERT INTO healthcare.sat_patient_details
SELECT sha256(convert_to($1 || ':patient:' || i, 'UTF8')), '2025-01-01'::timestamptz + (i + v) * interval '1 second',
       sha256(convert_to($1 || i || v, 'UTF8')), $2, 'Patient ' || i,
       (SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 12) WHERE i IS NOT NULL),
       'ACTIVE', 'EHR'
FROM generate_series(1, 35000) i, generate_series(0, 1) v`, tenant, tenantKey(tenant))
	}
	execSQL(t, url, "ANALYZE")
	for range 3 {
		start := time.Now()
		phase := ""
		_, err := logical.BackupTenant(t.Context(), discardSink{}, logical.TenantOptions{ConnString: url, TenantKey: acme, Progress: func(p logical.Progress) {
			if p.Phase != phase {
				fmt.Println(time.Since(start), p.Phase, p.BytesDone, p.BytesTotal)
				phase = p.Phase
			}
		}})
		require.NoError(t, err)
		fmt.Println(time.Since(start))
		start = time.Now()
		conn := url
		execSQL(t, conn, "COPY (SELECT * FROM healthcare.sat_patient_details WHERE tenant_hk = decode('"+fmt.Sprintf("%x", acme)+"','hex')) TO '/dev/null'")
		fmt.Println("server-side copy", time.Since(start))
	}
}
