package logical_test

import (
	"context"
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/onevault/readiness/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// dirStore is a Sink and Source on a directory: one file per object.
type dirStore struct{ dir string }

func newDirStore(t testing.TB) dirStore { return dirStore{dir: t.TempDir()} }

func (d dirStore) Create(name string) (io.WriteCloser, error) {
	return os.Create(filepath.Join(d.dir, name))
}

func (d dirStore) Open(name string) (io.ReadCloser, error) {
	return os.Open(filepath.Join(d.dir, name))
}

// objects returns the content of every object in the store.
func (d dirStore) objects(t *testing.T) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(d.dir)
	require.NoError(t, err)
	out := map[string][]byte{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(d.dir, e.Name()))
		require.NoError(t, err)
		out[e.Name()] = b
	}
	return out
}

// tenantKey is One Vault's tenant hash key: SHA-256 of the upper-cased business key.
func tenantKey(name string) []byte {
	sum := sha256.Sum256([]byte(strings.ToUpper(name)))
	return sum[:]
}

var (
	acme   = tenantKey("acme")
	globex = tenantKey("globex")
)

// schemaSQL is a small One Vault: hubs, satellites and a link with tenant_hk and load_date;
// a tenant table without load_date; a reference table without tenant_hk; a partitioned
// satellite; a table with identity and generated columns; a view; indexes and foreign keys
// (one to the reference table, which a tenant backup does not hold); and a schema of the
// service's own, which tenant backups exclude.
const schemaSQL = `
CREATE SCHEMA healthcare;
CREATE TABLE healthcare.ref_code (code text PRIMARY KEY, label text NOT NULL);
INSERT INTO healthcare.ref_code VALUES ('ACTIVE', 'Active'), ('INACTIVE', 'Inactive');

CREATE TABLE healthcare.hub_patient (
    patient_hk bytea PRIMARY KEY,
    patient_bk text NOT NULL,
    tenant_hk bytea NOT NULL,
    load_date timestamptz NOT NULL,
    record_source text NOT NULL
);
CREATE INDEX hub_patient_tenant_load_idx ON healthcare.hub_patient (tenant_hk, load_date);

CREATE TABLE healthcare.sat_patient_details (
    patient_hk bytea NOT NULL REFERENCES healthcare.hub_patient (patient_hk),
    load_date timestamptz NOT NULL,
    hash_diff bytea NOT NULL,
    tenant_hk bytea NOT NULL,
    name text,
    notes text,
    status_code text REFERENCES healthcare.ref_code (code),
    record_source text NOT NULL,
    PRIMARY KEY (patient_hk, load_date)
);

CREATE TABLE healthcare.link_patient_encounter (
    link_hk bytea PRIMARY KEY,
    patient_hk bytea NOT NULL,
    encounter_hk bytea NOT NULL,
    tenant_hk bytea NOT NULL,
    load_date timestamptz NOT NULL,
    record_source text NOT NULL
);

CREATE TABLE healthcare.tenant_setting (
    tenant_hk bytea,
    key text,
    value text,
    PRIMARY KEY (tenant_hk, key)
);

CREATE TABLE healthcare.sat_patient_vitals (
    patient_hk bytea NOT NULL,
    load_date timestamptz NOT NULL,
    tenant_hk bytea NOT NULL,
    pulse int,
    temperature numeric(4, 1),
    measured_at timestamp,
    PRIMARY KEY (patient_hk, load_date)
) PARTITION BY RANGE (load_date);
CREATE TABLE healthcare.sat_patient_vitals_2024 PARTITION OF healthcare.sat_patient_vitals
    FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE healthcare.sat_patient_vitals_rest PARTITION OF healthcare.sat_patient_vitals DEFAULT;

CREATE TABLE healthcare.event_log (
    event_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_hk bytea NOT NULL,
    message text,
    message_length int GENERATED ALWAYS AS (length(message)) STORED
);

CREATE VIEW healthcare.current_patient AS
    SELECT DISTINCT ON (h.patient_hk) h.tenant_hk, h.patient_bk, s.name
    FROM healthcare.hub_patient h JOIN healthcare.sat_patient_details s USING (patient_hk)
    ORDER BY h.patient_hk, s.load_date DESC;

CREATE SCHEMA readiness;
CREATE TABLE readiness.backup_execution (
    backup_hk bytea PRIMARY KEY,
    tenant_hk bytea NOT NULL,
    load_date timestamptz NOT NULL
);
`

// tenantTables are the tables of schemaSQL that a tenant backup holds.
var tenantTables = []string{"event_log", "hub_patient", "link_patient_encounter", "sat_patient_details", "sat_patient_vitals", "tenant_setting"}

// newSourceDatabase creates a database with schemaSQL and the rows of two tenants.
func newSourceDatabase(t *testing.T) string {
	t.Helper()
	url := pgtest.Server(t).NewDatabase(t)
	fillSourceDatabase(t, url)
	return url
}

// fillSourceDatabase creates schemaSQL and the rows of two tenants in the database at url.
func fillSourceDatabase(t *testing.T, url string) {
	t.Helper()
	execSQL(t, url, schemaSQL)
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	seedPatients(t, url, "acme", 1, 120, base)
	seedPatients(t, url, "globex", 1, 80, base)
	for _, tenant := range []string{"acme", "globex"} {
		execSQL(t, url, `
INSERT INTO healthcare.sat_patient_vitals
SELECT sha256(convert_to($1 || ':patient:' || i, 'UTF8')), '2024-06-01'::timestamptz + i * interval '1 minute', $2,
       60 + i % 40, 36.5 + (i % 10) / 10.0, '2024-06-01'::timestamp + i * interval '1 minute'
FROM generate_series(1, 50) i`, tenant, tenantKey(tenant))
		execSQL(t, url, `INSERT INTO healthcare.tenant_setting VALUES ($1, 'timezone', 'UTC'), ($1, 'retention', 'P7Y'), ($1, 'locale', $2)`,
			tenantKey(tenant), tenant+"-locale")
		execSQL(t, url, `INSERT INTO readiness.backup_execution VALUES (sha256(convert_to($1, 'UTF8')), $2, now())`, tenant, tenantKey(tenant))
	}
}

// seedPatients inserts patients first..last of a tenant with a hub, a satellite, a link, a
// vitals row and an event each, loaded one second apart from base.
func seedPatients(t testing.TB, url, tenant string, first, last int, base time.Time) {
	t.Helper()
	key := tenantKey(tenant)
	execSQL(t, url, `
INSERT INTO healthcare.hub_patient
SELECT sha256(convert_to($1 || ':patient:' || i, 'UTF8')), $1 || '-P' || i, $2, $3::timestamptz + i * interval '1 second', 'EHR'
FROM generate_series($4::int, $5::int) i`, tenant, key, base, first, last)
	execSQL(t, url, `
INSERT INTO healthcare.sat_patient_details
SELECT sha256(convert_to($1 || ':patient:' || i, 'UTF8')), $3::timestamptz + i * interval '1 second',
       md5($1 || i)::bytea, $2, 'Patient ' || i,
       CASE WHEN i % 7 = 0 THEN NULL
            ELSE E'line one\nline two\twith a tab, a backslash \\ and ünïcödé ' || i END,
       CASE WHEN i % 2 = 0 THEN 'ACTIVE' ELSE 'INACTIVE' END, 'EHR'
FROM generate_series($4::int, $5::int) i`, tenant, key, base, first, last)
	execSQL(t, url, `
INSERT INTO healthcare.link_patient_encounter
SELECT sha256(convert_to($1 || ':link:' || i, 'UTF8')), sha256(convert_to($1 || ':patient:' || i, 'UTF8')),
       sha256(convert_to($1 || ':encounter:' || i, 'UTF8')), $2, $3::timestamptz + i * interval '1 second', 'EHR'
FROM generate_series($4::int, $5::int) i`, tenant, key, base, first, last)
	execSQL(t, url, `
INSERT INTO healthcare.sat_patient_vitals
SELECT sha256(convert_to($1 || ':patient:' || i, 'UTF8')), $3::timestamptz + i * interval '1 second', $2,
       70 + i % 30, 36.6, ($3::timestamptz AT TIME ZONE 'UTC') + i * interval '1 second'
FROM generate_series($4::int, $5::int) i`, tenant, key, base, first, last)
	execSQL(t, url, `INSERT INTO healthcare.event_log (tenant_hk, message) SELECT $1, 'patient ' || i || ' admitted' FROM generate_series($2::int, $3::int) i`,
		key, first, last)
}

// content is the row count and an ordered digest of a table's rows, computed by the server
// independently of the package's checksums.
type content struct {
	Rows int64
	MD5  string
}

// tableContent returns the content of healthcare.<table>, of one tenant when key is set.
func tableContent(t *testing.T, url, table string, key []byte) content {
	t.Helper()
	sql := "SELECT count(*), coalesce(md5(string_agg(r::text, E'\\n' ORDER BY r::text)), '') FROM " +
		pgx.Identifier{"healthcare", table}.Sanitize() + " r"
	var args []any
	if key != nil {
		sql += " WHERE tenant_hk = $1"
		args = append(args, key)
	}
	var c content
	queryRow(t, url, sql, args, &c.Rows, &c.MD5)
	return c
}

func execSQL(t testing.TB, url, sql string, args ...any) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	_, err = conn.Exec(context.Background(), sql, args...)
	require.NoError(t, err)
}

func queryRow(t *testing.T, url, sql string, args []any, dest ...any) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	require.NoError(t, conn.QueryRow(t.Context(), sql, args...).Scan(dest...))
}

func queryBool(t *testing.T, url, sql string, args ...any) bool {
	t.Helper()
	var b bool
	queryRow(t, url, sql, args, &b)
	return b
}
