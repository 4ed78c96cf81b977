package logical_test

import (
	"context"
	"crypto/md5"
	"fmt"
	"io"
	"os/exec"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/onevault/readiness/internal/pgtest"
)

type md5w struct{}

func (md5w) Write(p []byte) (int, error) { md5.Sum(p); return len(p), nil }

func TestTmpCopy(t *testing.T) {
	url := pgtest.Server(t).NewDatabase(t)
	execSQL(t, url, schemaSQL)
	execSQL(t, url, "ALTER TABLE healthcare.sat_patient_details DROP CONSTRAINT sat_patient_details_patient_hk_fkey")
	for _, tenant := range []string{"acme", "globex"} {
		execSQL(t, url, `
INSERT INTO healthcare.sat_patient_details
SELECT sha256(convert_to($1 || ':patient:' || i, 'UTF8')), '2025-01-01'::timestamptz + (i + v) * interval '1 second',
       sha256(convert_to($1 || i || v, 'UTF8')), $2, 'Patient ' || i,
       (SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 12) WHERE i IS NOT NULL),
       'ACTIVE', 'EHR'
FROM generate_series(1, 35000) i, generate_series(0, 1) v`, tenant, tenantKey(tenant))
	}
	execSQL(t, url, "VACUUM ANALYZE")
	conn, err := pgx.Connect(context.Background(), url)
	require.NoError(t, err)
	q := "COPY (SELECT * FROM healthcare.sat_patient_details WHERE tenant_hk = decode('" + fmt.Sprintf("%x", acme) + "','hex')) TO STDOUT"
	for range 3 {
		for _, w := range []io.Writer{io.Discard, md5w{}} {
			start := time.Now()
			_, err := conn.PgConn().CopyTo(context.Background(), w, q)
			require.NoError(t, err)
			fmt.Printf("%T %v\n", w, time.Since(start))
		}
		start := time.Now()
		execSQL(t, url, "COPY (SELECT * FROM healthcare.sat_patient_details WHERE tenant_hk = decode('"+fmt.Sprintf("%x", acme)+"','hex')) TO '/dev/null'")
		fmt.Println("server-side", time.Since(start))
		start = time.Now()
		out, err := exec.Command("/usr/lib/postgresql/15/bin/psql", "-X", "-d", url, "-c", "\\copy (SELECT * FROM healthcare.sat_patient_details WHERE tenant_hk = decode('"+fmt.Sprintf("%x", acme)+"','hex')) to '/dev/null'").CombinedOutput()
		require.NoError(t, err, string(out))
		fmt.Println("psql", time.Since(start), string(out))
		start = time.Now()
		out, err = exec.Command("/usr/lib/postgresql/15/bin/pg_dump", "--section=pre-data", "-t", "healthcare.sat_patient_details", "-d", url).CombinedOutput()
		require.NoError(t, err, string(out))
		fmt.Println("pg_dump", time.Since(start))
	}
}
