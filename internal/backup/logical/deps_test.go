package logical_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/onevault/readiness/internal/backup/logical"
	"github.com/onevault/readiness/internal/pgtest"
)

// dependencySQL is a One Vault whose tenant tables need objects that pg_dump -t leaves
// out, all in other schemas than the tables: an extension's type (citext, installed in a
// schema of its own), an enum, an enum used only in an array column, a domain whose CHECK
// calls a function, a composite type, a range type, a sequence that another (non-tenant) table owns, a plpgsql function and an
// SQL function in defaults, a function in a CHECK, an immutable function in a generated
// column (whose SQL-standard body calls another function), a trigger function, and an
// index whose operator class comes from an extension installed in the tables' schema.
const dependencySQL = `
CREATE SCHEMA ext;
CREATE EXTENSION citext WITH SCHEMA ext;
CREATE SCHEMA vault_types;
CREATE TYPE vault_types.patient_status AS ENUM ('ACTIVE', 'INACTIVE', 'DECEASED');
CREATE TYPE vault_types.visit_tag AS ENUM ('URGENT', 'FOLLOW_UP', 'REMOTE');
COMMENT ON TYPE vault_types.patient_status IS 'the life cycle of a patient record';
CREATE FUNCTION vault_types.is_valid_mrn(text) RETURNS boolean
    LANGUAGE sql IMMUTABLE AS $$ SELECT $1 ~ '^MRN-[0-9]{4,}$' $$;
CREATE DOMAIN vault_types.mrn AS text CHECK (vault_types.is_valid_mrn(VALUE));
CREATE TYPE vault_types.dose AS (amount numeric, unit text);
CREATE TYPE vault_types.score_range AS RANGE (subtype = int4);
CREATE TABLE vault_types.visit_counter (block_start bigint);
CREATE SEQUENCE vault_types.visit_no_seq START 1000 OWNED BY vault_types.visit_counter.block_start;
CREATE FUNCTION vault_types.default_source() RETURNS text
    LANGUAGE plpgsql STABLE AS $$ BEGIN RETURN 'EHR-' || upper('onevault'); END $$;
CREATE FUNCTION vault_types.visit_code(bigint) RETURNS text
    LANGUAGE sql IMMUTABLE RETURN 'V-' || lpad($1::text, 8, '0');
CREATE FUNCTION vault_types.plausible_weight(numeric) RETURNS boolean
    LANGUAGE sql IMMUTABLE AS $$ SELECT $1 > 0 AND $1 < 500 $$;
CREATE FUNCTION vault_types.squash_spaces(text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN regexp_replace(btrim($1), '\s+', ' ', 'g');
CREATE FUNCTION vault_types.normalize_name(text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN upper(vault_types.squash_spaces($1));
CREATE FUNCTION vault_types.touch_record_source() RETURNS trigger
    LANGUAGE plpgsql AS $$ BEGIN NEW.record_source := NEW.record_source; RETURN NEW; END $$;

CREATE SCHEMA healthcare;
CREATE TABLE healthcare.hub_visit (
    visit_hk      bytea       PRIMARY KEY,
    tenant_hk     bytea       NOT NULL,
    load_date     timestamptz NOT NULL,
    visit_no      bigint      NOT NULL DEFAULT nextval('vault_types.visit_no_seq'),
    visit_code    text        GENERATED ALWAYS AS (vault_types.visit_code(visit_no)) STORED,
    record_source text        NOT NULL DEFAULT vault_types.default_source()
);
CREATE TABLE healthcare.sat_visit_profile (
    visit_hk      bytea       NOT NULL REFERENCES healthcare.hub_visit (visit_hk),
    load_date     timestamptz NOT NULL,
    tenant_hk     bytea       NOT NULL,
    status        vault_types.patient_status NOT NULL DEFAULT 'ACTIVE',
    mrn           vault_types.mrn,
    email         ext.citext,
    weight        numeric     CHECK (vault_types.plausible_weight(weight)),
    dose          vault_types.dose,
    scores        vault_types.score_range,
    tags          vault_types.visit_tag[],
    name          text,
    name_key      text        GENERATED ALWAYS AS (vault_types.normalize_name(name)) STORED,
    record_source text        NOT NULL DEFAULT vault_types.default_source(),
    PRIMARY KEY (visit_hk, load_date)
);
CREATE INDEX sat_visit_profile_tenant_load_idx ON healthcare.sat_visit_profile (tenant_hk, load_date);
CREATE EXTENSION pg_trgm WITH SCHEMA healthcare;
CREATE INDEX sat_visit_profile_name_trgm_idx ON healthcare.sat_visit_profile USING gin (name healthcare.gin_trgm_ops);
CREATE TRIGGER sat_visit_profile_touch BEFORE INSERT ON healthcare.sat_visit_profile
    FOR EACH ROW EXECUTE FUNCTION vault_types.touch_record_source();
`

// dependencyTables are the tenant tables of dependencySQL.
var dependencyTables = []string{"hub_visit", "sat_visit_profile"}

// seedVisits inserts visits first..last of a tenant, loaded one second apart from base,
// letting the defaults draw the visit number and the record source.
func seedVisits(t *testing.T, url, tenant string, first, last int, base time.Time) {
	t.Helper()
	key := tenantKey(tenant)
	execSQL(t, url, `
INSERT INTO healthcare.hub_visit (visit_hk, tenant_hk, load_date)
SELECT sha256(convert_to($1 || ':visit:' || i, 'UTF8')), $2, $3::timestamptz + i * interval '1 second'
FROM generate_series($4::int, $5::int) i`, tenant, key, base, first, last)
	execSQL(t, url, `
INSERT INTO healthcare.sat_visit_profile (visit_hk, load_date, tenant_hk, status, mrn, email, weight, dose, scores, tags, name)
SELECT sha256(convert_to($1 || ':visit:' || i, 'UTF8')), $3::timestamptz + i * interval '1 second', $2,
       (ARRAY['ACTIVE', 'INACTIVE', 'DECEASED']::vault_types.patient_status[])[1 + i % 3],
       'MRN-' || lpad(i::text, 6, '0'), 'Patient.' || i || '@Example.org', 40 + i % 90,
       ROW(i % 5 + 0.5, 'mg')::vault_types.dose, vault_types.score_range(i % 10, i % 10 + 5),
       (ARRAY['URGENT', 'FOLLOW_UP', 'REMOTE']::vault_types.visit_tag[])[1:1 + i % 3],
       '  patient ' || $1 || ' ' || i || ' '
FROM generate_series($4::int, $5::int) i`, tenant, key, base, first, last)
}

// newDependencySource creates a database with dependencySQL and the rows of two tenants.
func newDependencySource(t *testing.T) string {
	t.Helper()
	url := pgtest.Server(t).NewDatabase(t)
	execSQL(t, url, dependencySQL)
	base := time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC)
	seedVisits(t, url, "acme", 1, 60, base)
	seedVisits(t, url, "globex", 1, 40, base)
	return url
}

// emptyDatabase returns a new database without even the public schema, so that a restore
// must create every schema it uses.
func emptyDatabase(t *testing.T) string {
	t.Helper()
	url := pgtest.Server(t).NewDatabase(t)
	execSQL(t, url, "DROP SCHEMA public")
	require.False(t, queryBool(t, url, "SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname !~ '^pg_' AND nspname <> 'information_schema')"))
	require.False(t, queryBool(t, url, "SELECT EXISTS (SELECT FROM pg_extension WHERE extname <> 'plpgsql')"))
	return url
}

func querySlice(t *testing.T, url, sql string) []string {
	t.Helper()
	var out []string
	queryRow(t, url, "SELECT coalesce(array_agg(x ORDER BY x), '{}') FROM ("+sql+") AS q(x)", nil, &out)
	return out
}

func TestTenantBackupCarriesTheObjectsItsTablesNeed(t *testing.T) {
	t.Parallel()
	source := newDependencySource(t)
	full, fullStore := backupTenant(t, source, acme, nil)
	seedVisits(t, source, "acme", 61, 80, time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC))
	seedVisits(t, source, "globex", 41, 50, time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC))
	incr, incrStore := backupTenant(t, source, acme, full)
	var sourceSeq int64
	queryRow(t, source, "SELECT last_value FROM vault_types.visit_no_seq", nil, &sourceSeq)

	t.Run("the incremental holds only the new rows", func(t *testing.T) {
		for _, name := range dependencyTables {
			e := entry(t, incr, name)
			require.True(t, e.Incremental, name)
			require.Equal(t, int64(20), e.Rows, name)
		}
	})

	t.Run("its definitions hold the dependencies and no other table", func(t *testing.T) {
		ddl := string(incrStore.objects(t)[incr.DDLObject])
		for _, want := range []string{
			`CREATE SCHEMA IF NOT EXISTS "ext";`, `CREATE SCHEMA IF NOT EXISTS "vault_types";`,
			"CREATE EXTENSION IF NOT EXISTS citext WITH SCHEMA ext;",
			"CREATE TYPE vault_types.patient_status AS ENUM", "COMMENT ON TYPE vault_types.patient_status",
			"CREATE TYPE vault_types.visit_tag AS ENUM",
			"CREATE DOMAIN vault_types.mrn", "CREATE FUNCTION vault_types.is_valid_mrn(text)",
			"CREATE TYPE vault_types.dose AS", "CREATE TYPE vault_types.score_range AS RANGE",
			"CREATE SEQUENCE vault_types.visit_no_seq", "CREATE FUNCTION vault_types.default_source()",
			"CREATE FUNCTION vault_types.visit_code(bigint)", "CREATE FUNCTION vault_types.plausible_weight(numeric)",
			"CREATE FUNCTION vault_types.normalize_name(text)", "CREATE FUNCTION vault_types.squash_spaces(text)",
			"CREATE FUNCTION vault_types.touch_record_source()",
			"SELECT pg_catalog.setval('vault_types.visit_no_seq', ",
		} {
			require.Contains(t, ddl, want)
		}
		require.NotContains(t, ddl, "visit_counter", "the table that owns the sequence is not the tenant's")
		require.NotContains(t, ddl, "OWNED BY vault_types", "nor is its ownership of the sequence")
		require.NotContains(t, ddl, "COMMENT ON EXTENSION")
		require.Less(t, strings.Index(ddl, "CREATE FUNCTION vault_types.is_valid_mrn"), strings.Index(ddl, "CREATE DOMAIN vault_types.mrn"),
			"in dependency order")
		require.Contains(t, ddl, "CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA healthcare;")
		post := string(incrStore.objects(t)[incr.PostDDLObject])
		require.Contains(t, post, "CREATE TRIGGER sat_visit_profile_touch")
		require.Contains(t, post, "sat_visit_profile_name_trgm_idx")
	})

	t.Run("FULL + INCR restores into an empty database with the tenant's rows", func(t *testing.T) {
		target := emptyDatabase(t)
		report, err := logical.RestoreTenant(t.Context(), []*logical.TenantManifest{full, incr},
			[]logical.Source{fullStore, incrStore}, target, "")
		require.NoError(t, err)
		require.Len(t, report.SkippedStatements, 0, "every index, trigger and key is restored: %v", report.SkippedStatements)
		var rows int64
		for _, table := range dependencyTables {
			want := tableContent(t, source, table, acme)
			require.Equal(t, int64(80), want.Rows, table)
			require.Equal(t, want, tableContent(t, target, table, nil), "the restored %s holds exactly acme's rows, generated columns included", table)
			rows += want.Rows
		}
		require.Equal(t, rows, report.Rows)
		require.Equal(t, 2, report.Tables)

		var labels []string
		queryRow(t, target, "SELECT array_agg(enumlabel::text ORDER BY enumsortorder) FROM pg_enum WHERE enumtypid = 'vault_types.patient_status'::regtype",
			nil, &labels)
		require.Equal(t, []string{"ACTIVE", "INACTIVE", "DECEASED"}, labels, "the enum keeps its labels in order")
		require.True(t, queryBool(t, target, "SELECT 'MiXeD@Example.org'::ext.citext OPERATOR(ext.=) 'mixed@example.org'::ext.citext"), "the extension is installed")
		require.Equal(t, []string{"ext", "healthcare", "vault_types"},
			querySlice(t, target, "SELECT nspname::text FROM pg_namespace WHERE nspname !~ '^pg_' AND nspname <> 'information_schema'"))

		var visitNo int64
		var visitCode, recordSource string
		queryRow(t, target, `INSERT INTO healthcare.hub_visit (visit_hk, tenant_hk, load_date) VALUES ('\x01', $1, now())
			RETURNING visit_no, visit_code, record_source`, []any{acme}, &visitNo, &visitCode, &recordSource)
		require.Greater(t, visitNo, sourceSeq, "the sequence owned elsewhere continues after the source's value")
		require.Equal(t, fmt.Sprintf("V-%08d", visitNo), visitCode, "the generated column calls its function")
		require.Equal(t, "EHR-ONEVAULT", recordSource, "the default calls its function")

		err = execErr(t, target, `INSERT INTO healthcare.sat_visit_profile (visit_hk, load_date, tenant_hk, mrn) VALUES ('\x01', now(), $1, 'not an mrn')`, acme)
		require.ErrorContains(t, err, "mrn_check", "the domain's check is restored")
		err = execErr(t, target, `INSERT INTO healthcare.sat_visit_profile (visit_hk, load_date, tenant_hk, weight) VALUES ('\x01', now(), $1, 900)`, acme)
		require.ErrorContains(t, err, "sat_visit_profile_weight_check", "the table's check is restored")
		execSQL(t, target, `INSERT INTO healthcare.sat_visit_profile (visit_hk, load_date, tenant_hk, mrn, weight, name)
			VALUES ('\x01', now(), $1, 'MRN-0001', 70, ' new ')`, acme)
	})
}

// execErr runs sql on url and returns its error, for statements that must fail.
func execErr(t *testing.T, url, sql string, args ...any) error {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	_, err = conn.Exec(t.Context(), sql, args...)
	return err
}

func TestSchemaBackupCarriesTheObjectsOfOtherSchemasItNeeds(t *testing.T) {
	t.Parallel()
	source := newDependencySource(t)
	store := newDirStore(t)
	m, err := logical.BackupSchema(t.Context(), store, logical.SchemaOptions{ConnString: source, Schema: "healthcare"})
	require.NoError(t, err)

	t.Run("it carries the definitions from other schemas in an object of their own", func(t *testing.T) {
		require.NotEmpty(t, m.DependenciesObject)
		objects := store.objects(t)
		deps := string(objects[m.DependenciesObject])
		require.Contains(t, deps, "CREATE EXTENSION IF NOT EXISTS citext WITH SCHEMA ext;")
		require.Contains(t, deps, "CREATE DOMAIN vault_types.mrn")
		require.Contains(t, deps, "SELECT pg_catalog.setval('vault_types.visit_no_seq', ")
		require.NotContains(t, deps, "CREATE TABLE", "no table of another schema")
		require.NotContains(t, deps, "pg_trgm", "the extension in the schema is in the archive")
		require.Equal(t, int64(len(objects[m.Object])+len(objects[m.DependenciesObject])), m.Bytes)
	})

	t.Run("it restores into an empty database", func(t *testing.T) {
		target := emptyDatabase(t)
		require.NoError(t, logical.RestoreSchema(t.Context(), m, store, target, ""))
		for _, table := range dependencyTables {
			want := tableContent(t, source, table, nil)
			require.Equal(t, int64(100), want.Rows, table)
			require.Equal(t, want, tableContent(t, target, table, nil), "the restored %s equals the source, both tenants", table)
		}
		require.True(t, queryBool(t, target, "SELECT to_regclass('healthcare.sat_visit_profile_name_trgm_idx') IS NOT NULL"))
		require.True(t, queryBool(t, target, "SELECT to_regclass('vault_types.visit_counter') IS NULL"), "no table of another schema")
		var visitNo int64
		var sourceSeq int64
		queryRow(t, source, "SELECT last_value FROM vault_types.visit_no_seq", nil, &sourceSeq)
		queryRow(t, target, `INSERT INTO healthcare.hub_visit (visit_hk, tenant_hk, load_date) VALUES ('\\x01', $1, now()) RETURNING visit_no`,
			[]any{acme}, &visitNo)
		require.Greater(t, visitNo, sourceSeq)
	})
}

func TestTenantBackupDoesNotWaitForTheTablesOfOtherSchemas(t *testing.T) {
	t.Parallel()
	source := newSourceDatabase(t)
	// A migration of the service's own schema holds its table locked for the whole backup.
	conn, err := pgx.Connect(t.Context(), source)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	tx, err := conn.Begin(t.Context())
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(context.Background()) }()
	_, err = tx.Exec(t.Context(), "LOCK TABLE readiness.backup_execution IN ACCESS EXCLUSIVE MODE")
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	m, err := logical.BackupTenant(ctx, newDirStore(t), logical.TenantOptions{
		ConnString: source, TenantKey: acme, ExcludeSchemas: []string{"readiness"},
	})
	require.NoError(t, err, "the definitions are read from the tenant tables' schemas only")
	require.Len(t, m.Tables, len(tenantTables))
}
