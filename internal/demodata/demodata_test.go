package demodata_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"

	"github.com/onevault/readiness/internal/demodata"
	"github.com/onevault/readiness/internal/pgtest"
	"github.com/onevault/readiness/internal/vault"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// connect opens a connection to url, closed when the test ends.
func connect(t testing.TB, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// tenantTables lists the tables of the database that have a tenant_hk column.
func tenantTables(t testing.TB, conn *pgx.Conn) []string {
	t.Helper()
	rows, err := conn.Query(t.Context(), `
SELECT table_schema || '.' || table_name FROM information_schema.columns
WHERE column_name = 'tenant_hk' AND table_schema NOT IN ('pg_catalog', 'information_schema')
ORDER BY 1`)
	require.NoError(t, err)
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return tables
}

// tableSize is the sum of pg_total_relation_size of the dataset's tables.
func tableSize(t testing.TB, conn *pgx.Conn) int64 {
	t.Helper()
	var n int64
	require.NoError(t, conn.QueryRow(t.Context(),
		`SELECT sum(pg_total_relation_size(t::regclass))::bigint FROM unnest($1::text[]) AS t`, demodata.Tables()).Scan(&n))
	return n
}

// maxLoadDate is the newest load_date of a table.
func maxLoadDate(t testing.TB, conn *pgx.Conn, table string) time.Time {
	t.Helper()
	var ts time.Time
	require.NoError(t, conn.QueryRow(t.Context(), "SELECT max(load_date) FROM "+table).Scan(&ts))
	return ts
}

// loadDateTables are the dataset's tables with load_date.
var loadDateTables = []string{
	demodata.HubPatient, demodata.SatPatientDemographics, demodata.SatPatientProfile, demodata.HubEncounter,
	demodata.LinkPatientEncounter, demodata.SatEncounterClinical,
}

// signature is a table's row count and an order-independent checksum of its rows' text.
type signature struct {
	Rows int64
	Sum  string
}

func signatures(t testing.TB, conn *pgx.Conn) map[string]signature {
	t.Helper()
	out := map[string]signature{}
	for _, table := range demodata.Tables() {
		var s signature
		require.NoError(t, conn.QueryRow(t.Context(),
			"SELECT count(*), coalesce(sum(hashtextextended(r::text, 0)::numeric), 0)::text FROM "+table+" AS r").Scan(&s.Rows, &s.Sum))
		out[table] = s
	}
	return out
}

// settings returns every row of tenant_setting, by tenant and key.
func settings(t testing.TB, conn *pgx.Conn) map[string]string {
	t.Helper()
	rows, err := conn.Query(t.Context(), "SELECT encode(tenant_hk, 'hex') || '/' || setting_key, setting_value || '@' || updated_at FROM healthcare.tenant_setting")
	require.NoError(t, err)
	out := map[string]string{}
	for rows.Next() {
		var k, v string
		require.NoError(t, rows.Scan(&k, &v))
		out[k] = v
	}
	require.NoError(t, rows.Err())
	return out
}

// zstdRatio copies tables out in COPY text format and returns their zstd level 3 size
// over their raw size.
func zstdRatio(t testing.TB, conn *pgx.Conn, tables ...string) (ratio float64, raw int) {
	t.Helper()
	var buf bytes.Buffer
	for _, table := range tables {
		_, err := conn.PgConn().CopyTo(t.Context(), &buf, "COPY "+table+" TO STDOUT")
		require.NoError(t, err)
	}
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(3)))
	require.NoError(t, err)
	compressed := enc.EncodeAll(buf.Bytes(), nil)
	require.NoError(t, enc.Close())
	return float64(len(compressed)) / float64(buf.Len()), buf.Len()
}

func TestEnsure(t *testing.T) {
	url := pgtest.Server(t).NewDatabase(t)
	ctx := t.Context()

	t.Run("creates the schema and is idempotent", func(t *testing.T) {
		require.NoError(t, demodata.Ensure(ctx, url))
		require.NoError(t, demodata.Ensure(ctx, url))
		conn := connect(t, url)
		for _, table := range demodata.Tables() {
			var exists bool
			require.NoError(t, conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", table).Scan(&exists))
			require.True(t, exists, table)
		}
		var codes int
		require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM ref.diagnosis_code").Scan(&codes))
		require.Equal(t, 1000, codes)
		require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM ref.care_site").Scan(&codes))
		require.Equal(t, 8, codes)
	})

	t.Run("the patient profile uses objects of schema ref", func(t *testing.T) {
		conn := connect(t, url)
		types := map[string]string{}
		rows, err := conn.Query(ctx, `SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) || coalesce(' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid), '')
			FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
			WHERE a.attrelid = $1::regclass AND a.attnum > 0`, demodata.SatPatientProfile)
		require.NoError(t, err)
		for rows.Next() {
			var name, typ string
			require.NoError(t, rows.Scan(&name, &typ))
			types[name] = typ
		}
		require.NoError(t, rows.Err())
		require.Equal(t, "ref.patient_status DEFAULT 'ACTIVE'::ref.patient_status", types["status"], "an enum")
		require.Equal(t, "ref.mrn", types["mrn"], "a domain")
		require.Equal(t, "bigint DEFAULT nextval('ref.visit_number_seq'::regclass)", types["visit_number"], "a sequence default")
		require.Equal(t, "text DEFAULT ref.default_record_source()", types["record_source"], "a function default")
		require.Equal(t, "text DEFAULT ref.name_key(display_name)", types["name_key"], "a generated column")
		var owner *string
		require.NoError(t, conn.QueryRow(ctx, "SELECT pg_get_serial_sequence('ref.care_site', 'last_visit_number')").Scan(&owner))
		require.NotNil(t, owner)
		require.Equal(t, "ref.visit_number_seq", *owner, "the sequence belongs to another table")

		hub := `INSERT INTO healthcare.sat_patient_profile (patient_hk, load_date, hash_diff, tenant_hk, mrn, weight_kg)
			VALUES ('\x00', now(), '\x00', '\x00', $1, $2)`
		_, err = conn.Exec(ctx, hub, "not-an-mrn", 70)
		require.ErrorContains(t, err, "mrn_check", "the domain's CHECK calls ref.is_valid_mrn")
		_, err = conn.Exec(ctx, hub, "MRN-0123456789AB", 900)
		require.ErrorContains(t, err, "weight_kg_check", "the table's CHECK calls ref.plausible_weight")
	})

	t.Run("runs concurrently without errors", func(t *testing.T) {
		url := pgtest.Server(t).NewDatabase(t)
		errs := make(chan error, 4)
		for range 4 {
			go func() { errs <- demodata.Ensure(ctx, url) }()
		}
		for range 4 {
			require.NoError(t, <-errs)
		}
	})
}

func TestGenerate(t *testing.T) {
	url := pgtest.Server(t).NewDatabase(t)
	ctx := t.Context()
	conn := connect(t, url)
	tenants := []string{"acme", "globex"}
	const size = 20 << 20

	began := time.Now()
	stats, err := demodata.Generate(ctx, url, demodata.Options{Tenants: tenants, Size: size, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	require.NoError(t, err)
	t.Logf("first Generate: %+v, %.1f MB/s", stats, float64(stats.Bytes)/1e6/stats.Duration.Seconds())

	t.Run("produces the requested size", func(t *testing.T) {
		total := tableSize(t, conn)
		require.InDelta(t, size, total, 0.2*size, "pg_total_relation_size of the tables: %d", total)
		require.InDelta(t, size, stats.Bytes, 0.1*size, "stats.Bytes")
		require.Equal(t, 9, stats.Tables)
		require.Positive(t, stats.Rows)
		require.Positive(t, stats.Duration)
	})

	t.Run("every tenant table has rows of both tenants and no others", func(t *testing.T) {
		tables := tenantTables(t, conn)
		require.ElementsMatch(t, []string{
			demodata.HubPatient, demodata.SatPatientDemographics, demodata.SatPatientProfile, demodata.HubEncounter,
			demodata.LinkPatientEncounter, demodata.SatEncounterClinical, demodata.TenantSetting,
		}, tables)
		require.ElementsMatch(t, demodata.TenantTables(), tables)
		for _, table := range tables {
			rows, err := conn.Query(ctx, "SELECT tenant_hk, count(*) FROM "+table+" GROUP BY 1 ORDER BY 1")
			require.NoError(t, err)
			counts := map[string]int64{}
			for rows.Next() {
				var hk []byte
				var n int64
				require.NoError(t, rows.Scan(&hk, &n))
				counts[string(hk)] = n
			}
			require.NoError(t, rows.Err())
			require.Len(t, counts, 2, table)
			a, g := counts[string(vault.HashKey("acme"))], counts[string(vault.HashKey("globex"))]
			require.Positive(t, a, table)
			require.Positive(t, g, table)
			require.InDelta(t, 1, float64(a)/float64(g), 0.25, "%s is spread evenly: acme %d, globex %d", table, a, g)
		}
	})

	t.Run("reference data has no tenant_hk", func(t *testing.T) {
		var n int
		require.NoError(t, conn.QueryRow(ctx, `
SELECT count(*) FROM information_schema.columns
WHERE table_schema = 'ref' AND column_name = 'tenant_hk'`).Scan(&n))
		require.Zero(t, n)
		require.NoError(t, conn.QueryRow(ctx, `
SELECT count(*) FROM healthcare.sat_encounter_clinical s
WHERE NOT EXISTS (SELECT 1 FROM ref.diagnosis_code c WHERE c.code = s.diagnosis_code)`).Scan(&n))
		require.Zero(t, n, "every diagnosis code is in ref.diagnosis_code")
	})

	t.Run("every tenant table with load_date has a (tenant_hk, load_date) index", func(t *testing.T) {
		for _, table := range loadDateTables {
			var n int
			require.NoError(t, conn.QueryRow(ctx, `
SELECT count(*) FROM pg_index i
WHERE i.indrelid = $1::regclass
  AND (SELECT array_agg(a.attname::text ORDER BY k.ord) FROM unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
       JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum) = ARRAY['tenant_hk', 'load_date']`,
				table).Scan(&n))
			require.Equal(t, 1, n, table)
		}
	})

	t.Run("the Data Vault keys are consistent", func(t *testing.T) {
		var n int
		// Every link points at hubs of its own tenant.
		require.NoError(t, conn.QueryRow(ctx, `
SELECT count(*) FROM healthcare.link_patient_encounter l
LEFT JOIN healthcare.hub_patient p ON p.patient_hk = l.patient_hk AND p.tenant_hk = l.tenant_hk
LEFT JOIN healthcare.hub_encounter e ON e.encounter_hk = l.encounter_hk AND e.tenant_hk = l.tenant_hk
WHERE p.patient_hk IS NULL OR e.encounter_hk IS NULL`).Scan(&n))
		require.Zero(t, n, "links without their hubs")
		// Every satellite row has its hub, and hubs have their satellites.
		require.NoError(t, conn.QueryRow(ctx, `
SELECT (SELECT count(*) FROM healthcare.sat_patient_demographics s
        WHERE NOT EXISTS (SELECT 1 FROM healthcare.hub_patient h WHERE h.patient_hk = s.patient_hk))
     + (SELECT count(*) FROM healthcare.hub_encounter h
        WHERE NOT EXISTS (SELECT 1 FROM healthcare.sat_encounter_clinical s WHERE s.encounter_hk = h.encounter_hk))`).Scan(&n))
		require.Zero(t, n)
		// Hash keys follow hash_key(tenant, business key).
		require.NoError(t, conn.QueryRow(ctx, `
SELECT count(*) FROM healthcare.hub_patient h
WHERE h.patient_hk <> sha256(convert_to(CASE WHEN h.tenant_hk = $1 THEN 'ACME' ELSE 'GLOBEX' END || '||' || upper(h.patient_bk), 'UTF8'))`,
			vault.HashKey("acme")).Scan(&n))
		require.Zero(t, n)
		// Every hub has one profile, loaded with it.
		require.NoError(t, conn.QueryRow(ctx, `
SELECT (SELECT count(*) FROM healthcare.hub_patient h
        WHERE NOT EXISTS (SELECT 1 FROM healthcare.sat_patient_profile s
                          WHERE s.patient_hk = h.patient_hk AND s.load_date = h.load_date AND s.tenant_hk = h.tenant_hk))
     + (SELECT count(*) FROM healthcare.sat_patient_profile s
        WHERE NOT EXISTS (SELECT 1 FROM healthcare.hub_patient h WHERE h.patient_hk = s.patient_hk))`).Scan(&n))
		require.Zero(t, n)
		// Its generated column and defaults did their work.
		var visits, distinctVisits, badKeys int64
		require.NoError(t, conn.QueryRow(ctx, `
SELECT count(*), count(DISTINCT visit_number), count(*) FILTER (WHERE name_key <> upper(display_name) OR visit_number < 100000)
FROM healthcare.sat_patient_profile`).Scan(&visits, &distinctVisits, &badKeys))
		require.Positive(t, visits)
		require.Equal(t, visits, distinctVisits, "visit numbers come from one sequence")
		require.Zero(t, badKeys)
		// hash_diff is the hash of the row's own values: each random value was computed once.
		require.NoError(t, conn.QueryRow(ctx, `
SELECT (SELECT count(*) FROM healthcare.sat_encounter_clinical
        WHERE hash_diff <> sha256(convert_to(diagnosis_code || '|' || notes, 'UTF8')))
     + (SELECT count(*) FROM healthcare.sat_patient_demographics
        WHERE hash_diff <> sha256(convert_to(concat_ws('|', first_name, last_name, birth_date, address, payload), 'UTF8')))
     + (SELECT count(*) FROM healthcare.sat_patient_profile
        WHERE hash_diff <> sha256(convert_to(concat_ws('|', status, mrn, weight_kg, display_name), 'UTF8')))`).Scan(&n))
		require.Zero(t, n)
	})

	t.Run("load_dates spread over the past 30 days", func(t *testing.T) {
		var oldest, newest time.Time
		require.NoError(t, conn.QueryRow(ctx, "SELECT min(load_date), max(load_date) FROM healthcare.sat_encounter_clinical").Scan(&oldest, &newest))
		require.WithinDuration(t, began.Add(-30*24*time.Hour), oldest, 24*time.Hour)
		require.WithinDuration(t, time.Now(), newest, 24*time.Hour)
		var distinctDays int
		require.NoError(t, conn.QueryRow(ctx, "SELECT count(DISTINCT date_trunc('day', load_date)) FROM healthcare.hub_patient").Scan(&distinctDays))
		require.GreaterOrEqual(t, distinctDays, 25)
	})

	t.Run("most bytes are in the satellites' payloads", func(t *testing.T) {
		var sats int64
		require.NoError(t, conn.QueryRow(ctx, `SELECT pg_total_relation_size('healthcare.sat_encounter_clinical')
			+ pg_total_relation_size('healthcare.sat_patient_demographics')`).Scan(&sats))
		require.Greater(t, float64(sats), 0.6*float64(tableSize(t, conn)))
		var avgNotes, avgPayload float64
		require.NoError(t, conn.QueryRow(ctx, `SELECT (SELECT avg(length(notes)) FROM healthcare.sat_encounter_clinical),
			(SELECT avg(length(payload)) FROM healthcare.sat_patient_demographics)`).Scan(&avgNotes, &avgPayload))
		require.InDelta(t, 3890, avgNotes, 300)
		require.InDelta(t, 450, avgPayload, 100)
	})

	t.Run("the data compresses no better than 2.5x with zstd level 3", func(t *testing.T) {
		for _, table := range []string{demodata.SatEncounterClinical, demodata.SatPatientDemographics} {
			ratio, raw := zstdRatio(t, conn, table)
			t.Logf("%s: %d bytes in COPY text, zstd -3 to %.0f%%", table, raw, 100*ratio)
			require.GreaterOrEqual(t, ratio, 0.4, table)
		}
		// Hubs and links are keys and repeated tenant keys, and compress better; the
		// dataset as a whole still does not.
		ratio, raw := zstdRatio(t, conn, demodata.Tables()...)
		t.Logf("all tables: %d bytes in COPY text, zstd -3 to %.0f%%", raw, 100*ratio)
		require.GreaterOrEqual(t, ratio, 0.4)
	})

	var beforeChange map[string]signature
	t.Run("a second Generate adds rows with load_dates newer than every earlier one", func(t *testing.T) {
		before := signatures(t, conn)
		newest := map[string]time.Time{}
		for _, table := range loadDateTables {
			newest[table] = maxLoadDate(t, conn, table)
		}
		var globalNewest time.Time
		for _, ts := range newest {
			if ts.After(globalNewest) {
				globalNewest = ts
			}
		}
		stats, err := demodata.Generate(ctx, url, demodata.Options{Tenants: tenants, Size: 4 << 20})
		require.NoError(t, err)
		require.InDelta(t, 4<<20, stats.Bytes, 0.25*(4<<20))
		after := signatures(t, conn)
		for _, table := range loadDateTables {
			require.Greater(t, after[table].Rows, before[table].Rows, table)
			var older int64
			require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM "+table+" WHERE load_date > $1", newest[table]).Scan(&older))
			require.Equal(t, after[table].Rows-before[table].Rows, older, "%s: every new row is newer than every old one", table)
			var oldestNew time.Time
			require.NoError(t, conn.QueryRow(ctx, "SELECT min(load_date) FROM "+table+" WHERE load_date > $1", newest[table]).Scan(&oldestNew))
			require.True(t, oldestNew.After(globalNewest), "%s: %s is after %s", table, oldestNew, globalNewest)
		}
		require.Equal(t, before[demodata.TenantSetting], after[demodata.TenantSetting], "settings are created once")
		require.Equal(t, before[demodata.RefDiagnosisCode], after[demodata.RefDiagnosisCode])
		beforeChange = after
	})

	t.Run("Change touches about 1% of the rows, only in the tables it names", func(t *testing.T) {
		require.NotNil(t, beforeChange)
		var total int64
		for _, s := range beforeChange {
			total += s.Rows
		}
		newest := maxLoadDate(t, conn, demodata.SatEncounterClinical)
		settingsBefore := settings(t, conn)
		touched, err := demodata.Change(ctx, url, 0.01)
		require.NoError(t, err)
		require.InDelta(t, 0.01*float64(total), touched, 0.001*float64(total)+2)

		after := signatures(t, conn)
		var inserted int64
		for _, table := range demodata.Tables() {
			changed := false
			for _, c := range demodata.ChangedTables() {
				changed = changed || c == table
			}
			if !changed {
				require.Equal(t, beforeChange[table], after[table], "%s is not touched", table)
				continue
			}
			require.NotEqual(t, beforeChange[table], after[table], "%s is changed", table)
			inserted += after[table].Rows - beforeChange[table].Rows
		}
		require.Equal(t, beforeChange[demodata.TenantSetting].Rows, after[demodata.TenantSetting].Rows, "settings are updated, not inserted")
		var updated int64
		for k, v := range settings(t, conn) {
			if settingsBefore[k] != v {
				updated++
			}
		}
		require.Positive(t, updated)
		require.Equal(t, touched, inserted+updated)

		for _, table := range []string{demodata.SatEncounterClinical, demodata.SatPatientDemographics} {
			var n int64
			require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM "+table+" WHERE load_date > $1", newest).Scan(&n))
			require.Equal(t, after[table].Rows-beforeChange[table].Rows, n, "%s: every changed row is newer than the rest", table)
			require.Positive(t, n, table)
		}
	})
}

func TestGenerateSpreadsRowsEvenlyAcrossManyTenants(t *testing.T) {
	url := pgtest.Server(t).NewDatabase(t)
	conn := connect(t, url)
	var tenants []string
	for i := 1; i <= 12; i++ {
		tenants = append(tenants, fmt.Sprintf("tenant%03d", i))
	}
	const size = 12 << 20
	stats, err := demodata.Generate(t.Context(), url, demodata.Options{Tenants: tenants, Size: size})
	require.NoError(t, err)
	require.InDelta(t, size, stats.Bytes, 0.15*size)

	rows, err := conn.Query(t.Context(), "SELECT tenant_hk, count(*) FROM healthcare.sat_encounter_clinical GROUP BY 1")
	require.NoError(t, err)
	counts := map[string]int64{}
	var total int64
	for rows.Next() {
		var hk []byte
		var n int64
		require.NoError(t, rows.Scan(&hk, &n))
		counts[string(hk)] = n
		total += n
	}
	require.NoError(t, rows.Err())
	require.Len(t, counts, len(tenants))
	mean := float64(total) / float64(len(tenants))
	for _, tenant := range tenants {
		n := counts[string(vault.HashKey(tenant))]
		require.InDelta(t, mean, n, 0.2*mean, "%s has %d encounters, the mean is %.0f", tenant, n, mean)
	}
}

func TestGenerateWithoutPgcrypto(t *testing.T) {
	defer demodata.SetForceNoPgcrypto(true)()
	url := pgtest.Server(t).NewDatabase(t)
	conn := connect(t, url)
	const size = 6 << 20
	stats, err := demodata.Generate(t.Context(), url, demodata.Options{Tenants: []string{"acme", "globex"}, Size: size})
	require.NoError(t, err)
	t.Logf("payloads without pgcrypto: %+v, %.1f MB/s", stats, float64(stats.Bytes)/1e6/stats.Duration.Seconds())

	t.Run("produces the requested size of incompressible hex payloads", func(t *testing.T) {
		require.InDelta(t, size, stats.Bytes, 0.15*size)
		var hex int64
		require.NoError(t, conn.QueryRow(t.Context(), `SELECT count(*) FROM healthcare.sat_encounter_clinical WHERE notes ~ '^[0-9a-f]+$'`).Scan(&hex))
		require.Positive(t, hex)
		ratio, _ := zstdRatio(t, conn, demodata.SatEncounterClinical)
		require.GreaterOrEqual(t, ratio, 0.4)
	})

	t.Run("Change works without pgcrypto", func(t *testing.T) {
		touched, err := demodata.Change(t.Context(), url, 0.01)
		require.NoError(t, err)
		require.Positive(t, touched)
	})
}

func TestGenerateRefusesBadOptions(t *testing.T) {
	url := pgtest.Server(t).NewDatabase(t)
	for name, opts := range map[string]demodata.Options{
		"no tenants":     {Size: 1 << 20},
		"a blank tenant": {Tenants: []string{"acme", "  "}, Size: 1 << 20},
		"a duplicate":    {Tenants: []string{"acme", "ACME"}, Size: 1 << 20},
		"no size":        {Tenants: []string{"acme"}},
	} {
		t.Run("refuses "+name, func(t *testing.T) {
			_, err := demodata.Generate(t.Context(), url, opts)
			require.Error(t, err)
		})
	}
	t.Run("Change refuses a fraction outside (0, 1]", func(t *testing.T) {
		for _, f := range []float64{0, -0.1, 1.5} {
			_, err := demodata.Change(t.Context(), url, f)
			require.Error(t, err, f)
		}
	})
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"2GB", 2_000_000_000},
		{"500MB", 500_000_000},
		{"64MiB", 64 << 20},
		{"1.5G", 3 << 29},
		{"1.5GiB", 3 << 29},
		{"20 mb", 20_000_000},
		{"4096", 4096},
		{"100B", 100},
		{"10k", 10240},
		{"10KB", 10000},
		{"1T", 1 << 40},
		{"2tb", 2_000_000_000_000},
		{" 3M ", 3 << 20},
	} {
		t.Run(fmt.Sprintf("reads %q", tc.in), func(t *testing.T) {
			got, err := demodata.ParseSize(tc.in)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
	for _, in := range []string{"", "GB", "-1GB", "0", "1.2.3GB", "10XB", "abc", "1e3", "99999999999TB"} {
		t.Run(fmt.Sprintf("refuses %q", in), func(t *testing.T) {
			_, err := demodata.ParseSize(in)
			require.ErrorIs(t, err, demodata.ErrInvalidSize)
		})
	}
}

// BenchmarkGenerate measures Generate's throughput on the test cluster: each iteration
// adds 200 MB for 4 tenants (run with -benchtime 1x). Besides MB/s it reports MB per CPU
// second of the PostgreSQL server, which says what the generator costs on a machine that
// other work shares (2 free cores give at most twice that in MB/s).
func BenchmarkGenerate(b *testing.B) {
	server := pgtest.Server(b)
	url := server.NewDatabase(b)
	require.NoError(b, demodata.Ensure(b.Context(), url))
	const size = 200_000_000
	b.SetBytes(size)
	var total demodata.Stats
	var cpu float64
	for b.Loop() {
		cpu0 := serverCPU(b, server)
		stats, err := demodata.Generate(b.Context(), url, demodata.Options{
			Tenants: []string{"tenant001", "tenant002", "tenant003", "tenant004"}, Size: size,
		})
		require.NoError(b, err)
		cpu += serverCPU(b, server) - cpu0
		total.Bytes += stats.Bytes
		total.Rows += stats.Rows
		total.Duration += stats.Duration
	}
	b.ReportMetric(float64(total.Bytes)/1e6/total.Duration.Seconds(), "MB/s")
	b.ReportMetric(float64(total.Rows)/total.Duration.Seconds(), "rows/s")
	if cpu > 0 {
		b.ReportMetric(float64(total.Bytes)/1e6/cpu, "MB/server-cpu-s")
	}
}

// serverCPU returns the CPU seconds that the throwaway cluster's processes have used, read
// from /proc: the postmaster's own and its reaped children's (ended backends), plus its
// live children's. It returns 0 when that cannot be read (no throwaway cluster, not Linux).
func serverCPU(b *testing.B, server *pgtest.Postgres) float64 {
	b.Helper()
	if server.Cluster() == nil {
		return 0
	}
	pidFile, err := os.ReadFile(filepath.Join(server.Cluster().DataDir(), "postmaster.pid"))
	if err != nil {
		return 0
	}
	postmaster := strings.SplitN(string(pidFile), "\n", 2)[0]
	// stat returns the fields of /proc/pid/stat after the command name, from field 3 on.
	stat := func(pid string) []string {
		s, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil {
			return nil
		}
		i := bytes.LastIndexByte(s, ')')
		if i < 0 || i+2 > len(s) {
			return nil
		}
		return strings.Fields(string(s[i+2:]))
	}
	ticks := func(fields []string, from, to int) float64 {
		var sum float64
		for n := from; n <= to; n++ {
			v, _ := strconv.ParseFloat(fields[n-3], 64)
			sum += v
		}
		return sum
	}
	pm := stat(postmaster)
	if len(pm) < 15 {
		return 0
	}
	total := ticks(pm, 14, 17) // utime, stime, cutime, cstime
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if f := stat(e.Name()); len(f) >= 15 && f[4-3] == postmaster {
			total += ticks(f, 14, 15)
		}
	}
	return total / 100 // USER_HZ
}
