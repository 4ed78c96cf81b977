// Package demodata fills the managed One Vault database with a One Vault-like Data Vault 2.0
// dataset: hubs, links and satellites in schema healthcare, each row carrying its tenant's
// hash key and a load_date, plus a mutable settings table and shared reference data in
// schema ref. As in One Vault, tenant tables use objects of other schemas: the patient
// profile satellite has an enum column, a domain whose CHECK calls a function, a visit
// number drawn from a sequence that a reference table owns, a CHECK and a default that call
// functions, and a generated column computed by an immutable function, all in schema ref,
// which is what a TENANT or SCHEMA backup must carry for its restore to work in an empty
// database. `readiness dev` uses it for a small demo dataset and `readiness demo-data` for
// benchmark datasets of several gigabytes.
//
// The rows are made by the server itself (INSERT ... SELECT over generate_series), several
// batches at a time on parallel connections, because shipping gigabytes through the client
// would be the bottleneck. Payloads are random bytes encoded as base64 text, so that a
// backup's compression ratio on this data is close to what real clinical notes give, not
// the 100x that repeated strings would flatter it with.
package demodata

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// RecordSource is the record_source of every row this package writes.
const RecordSource = "demodata"

// Options configure Generate.
type Options struct {
	// Tenants are the tenant business keys, e.g. acme, globex, or tenant001..tenantNNN for
	// benchmarks. Rows are spread evenly across them.
	Tenants []string
	// Size is the number of bytes of table data (heap, TOAST and indexes, as
	// pg_total_relation_size counts them) that Generate adds; it is met within about 10%.
	Size int64
	// Logger, when set, receives progress lines; nil logs nothing.
	Logger *slog.Logger
	// Workers is the number of batches inserted at the same time, each on its own
	// connection; 0 means one per CPU of this machine, at least 2 and at most 8.
	Workers int
}

// Stats describe what Generate did.
type Stats struct {
	Tables   int           // tables of the dataset
	Rows     int64         // rows inserted
	Bytes    int64         // growth of the dataset's tables, in bytes
	Duration time.Duration // wall time of the call
}

// Dataset tables, schema-qualified.
const (
	HubPatient             = "healthcare.hub_patient"
	SatPatientDemographics = "healthcare.sat_patient_demographics"
	HubEncounter           = "healthcare.hub_encounter"
	LinkPatientEncounter   = "healthcare.link_patient_encounter"
	SatEncounterClinical   = "healthcare.sat_encounter_clinical"
	SatPatientProfile      = "healthcare.sat_patient_profile"
	TenantSetting          = "healthcare.tenant_setting"
	RefDiagnosisCode       = "ref.diagnosis_code"
	RefCareSite            = "ref.care_site"
)

// Tables returns every table of the dataset, schema-qualified: the tenant tables, then the
// reference tables.
func Tables() []string {
	return append(TenantTables(), RefDiagnosisCode, RefCareSite)
}

// TenantTables returns the tables of the dataset that carry tenant_hk, schema-qualified.
// All but healthcare.tenant_setting are insert-only Data Vault tables with load_date.
func TenantTables() []string {
	return []string{
		HubPatient, SatPatientDemographics, SatPatientProfile, HubEncounter, LinkPatientEncounter,
		SatEncounterClinical, TenantSetting,
	}
}

// loadDateTables are the insert-only tables, with (tenant_hk, load_date) indexes.
var loadDateTables = []string{HubPatient, SatPatientDemographics, SatPatientProfile, HubEncounter, LinkPatientEncounter, SatEncounterClinical}

// diagnosisCodes is the number of rows of ref.diagnosis_code.
const diagnosisCodes = 1000

// careSites is the number of rows of ref.care_site.
const careSites = 8

// ensureLock is the advisory lock key that serialises concurrent Ensure calls, whose
// CREATE ... IF NOT EXISTS statements could otherwise collide in the catalog.
const ensureLock = 0x6465_6d6f_6461_7461 // "demodata"

// schemaDDL creates the dataset's schemas, tables and indexes; every statement is idempotent.
const schemaDDL = `
CREATE SCHEMA IF NOT EXISTS healthcare;
CREATE SCHEMA IF NOT EXISTS ref;

CREATE TABLE IF NOT EXISTS healthcare.hub_patient (
    patient_hk    bytea       PRIMARY KEY,
    patient_bk    text        NOT NULL,
    tenant_hk     bytea       NOT NULL,
    load_date     timestamptz NOT NULL,
    record_source text        NOT NULL
);
CREATE INDEX IF NOT EXISTS hub_patient_tenant_load_idx ON healthcare.hub_patient (tenant_hk, load_date);

CREATE TABLE IF NOT EXISTS healthcare.sat_patient_demographics (
    patient_hk    bytea       NOT NULL,
    load_date     timestamptz NOT NULL,
    hash_diff     bytea       NOT NULL,
    tenant_hk     bytea       NOT NULL,
    first_name    text,
    last_name     text,
    birth_date    date,
    address       text,
    payload       text,
    record_source text        NOT NULL,
    PRIMARY KEY (patient_hk, load_date)
);
CREATE INDEX IF NOT EXISTS sat_patient_demographics_tenant_load_idx ON healthcare.sat_patient_demographics (tenant_hk, load_date);

CREATE TABLE IF NOT EXISTS ref.care_site (
    site_code         text PRIMARY KEY,
    name              text NOT NULL,
    last_visit_number bigint
);
-- Visit numbers are handed out across tenants from one sequence that belongs to the
-- reference data, not to the tenant table that draws from it.
CREATE SEQUENCE IF NOT EXISTS ref.visit_number_seq START 100000 OWNED BY ref.care_site.last_visit_number;
DO $$ BEGIN
    CREATE TYPE ref.patient_status AS ENUM ('ACTIVE', 'INACTIVE', 'TRANSFERRED', 'DECEASED');
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;
CREATE OR REPLACE FUNCTION ref.is_valid_mrn(mrn text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN mrn ~ '^MRN-[0-9A-F]{12}$';
DO $$ BEGIN
    CREATE DOMAIN ref.mrn AS text CHECK (ref.is_valid_mrn(VALUE));
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;
CREATE OR REPLACE FUNCTION ref.plausible_weight(kg numeric) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT kg > 0 AND kg < 700 $$;
CREATE OR REPLACE FUNCTION ref.name_key(name text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN upper(regexp_replace(btrim(name), '\s+', ' ', 'g'));
CREATE OR REPLACE FUNCTION ref.default_record_source() RETURNS text
    LANGUAGE plpgsql STABLE
    AS $$ BEGIN RETURN coalesce(nullif(current_setting('application_name', true), ''), 'unknown'); END $$;

CREATE TABLE IF NOT EXISTS healthcare.sat_patient_profile (
    patient_hk    bytea              NOT NULL,
    load_date     timestamptz        NOT NULL,
    hash_diff     bytea              NOT NULL,
    tenant_hk     bytea              NOT NULL,
    status        ref.patient_status NOT NULL DEFAULT 'ACTIVE',
    mrn           ref.mrn            NOT NULL,
    visit_number  bigint             NOT NULL DEFAULT nextval('ref.visit_number_seq'),
    weight_kg     numeric(5, 1)      CHECK (ref.plausible_weight(weight_kg)),
    display_name  text,
    name_key      text               GENERATED ALWAYS AS (ref.name_key(display_name)) STORED,
    record_source text               NOT NULL DEFAULT ref.default_record_source(),
    PRIMARY KEY (patient_hk, load_date)
);
CREATE INDEX IF NOT EXISTS sat_patient_profile_tenant_load_idx ON healthcare.sat_patient_profile (tenant_hk, load_date);

CREATE TABLE IF NOT EXISTS healthcare.hub_encounter (
    encounter_hk  bytea       PRIMARY KEY,
    encounter_bk  text        NOT NULL,
    tenant_hk     bytea       NOT NULL,
    load_date     timestamptz NOT NULL,
    record_source text        NOT NULL
);
CREATE INDEX IF NOT EXISTS hub_encounter_tenant_load_idx ON healthcare.hub_encounter (tenant_hk, load_date);

CREATE TABLE IF NOT EXISTS healthcare.link_patient_encounter (
    link_hk       bytea       PRIMARY KEY,
    patient_hk    bytea       NOT NULL,
    encounter_hk  bytea       NOT NULL,
    tenant_hk     bytea       NOT NULL,
    load_date     timestamptz NOT NULL,
    record_source text        NOT NULL
);
CREATE INDEX IF NOT EXISTS link_patient_encounter_tenant_load_idx ON healthcare.link_patient_encounter (tenant_hk, load_date);

CREATE TABLE IF NOT EXISTS healthcare.sat_encounter_clinical (
    encounter_hk   bytea       NOT NULL,
    load_date      timestamptz NOT NULL,
    hash_diff      bytea       NOT NULL,
    tenant_hk      bytea       NOT NULL,
    diagnosis_code text,
    notes          text,
    record_source  text        NOT NULL,
    PRIMARY KEY (encounter_hk, load_date)
);
CREATE INDEX IF NOT EXISTS sat_encounter_clinical_tenant_load_idx ON healthcare.sat_encounter_clinical (tenant_hk, load_date);

CREATE TABLE IF NOT EXISTS healthcare.tenant_setting (
    tenant_hk     bytea       NOT NULL,
    setting_key   text        NOT NULL,
    setting_value text,
    updated_at    timestamptz NOT NULL,
    PRIMARY KEY (tenant_hk, setting_key)
);

CREATE TABLE IF NOT EXISTS ref.diagnosis_code (
    code        text PRIMARY KEY,
    description text NOT NULL
);
`

// Ensure creates the dataset's schemas, tables, indexes and reference data when they are
// missing, and the pgcrypto extension when it can (Generate falls back to slower payloads
// without it). It is idempotent and safe to call concurrently.
func Ensure(ctx context.Context, connString string) error {
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		return fmt.Errorf("demodata: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return ensure(ctx, conn)
}

// ensure is Ensure on an open connection.
func ensure(ctx context.Context, conn *pgx.Conn) error {
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(ensureLock)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, schemaDDL); err != nil {
			return err
		}
		// pgcrypto is optional: without the privilege to create it, payloads come from
		// random() through sha512.
		sp, err := tx.Begin(ctx)
		if err != nil {
			return err
		}
		if _, err := sp.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pgcrypto"); err != nil {
			if rbErr := sp.Rollback(ctx); rbErr != nil {
				return rbErr
			}
		} else if err := sp.Commit(ctx); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, fmt.Sprintf(`
INSERT INTO ref.diagnosis_code (code, description)
SELECT %s, 'Diagnosis ' || c || ': ' || md5(c::text) || md5(md5(c::text))
FROM generate_series(0, %d) AS c
ON CONFLICT (code) DO NOTHING`, diagnosisCodeSQL("c"), diagnosisCodes-1))
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `
INSERT INTO ref.care_site (site_code, name)
SELECT 'SITE-' || lpad(i::text, 2, '0'), 'Care site ' || i FROM generate_series(1, `+fmt.Sprint(careSites)+`) AS i
ON CONFLICT (site_code) DO NOTHING`)
		return err
	})
	if err != nil {
		return fmt.Errorf("demodata: ensure schema: %w", err)
	}
	return nil
}

// diagnosisCodeSQL is the SQL expression of diagnosis code number c (0..diagnosisCodes-1),
// ICD-10-like: a letter, two digits, a dot and a digit.
func diagnosisCodeSQL(c string) string {
	return fmt.Sprintf("chr(65 + (%[1]s) %% 26) || lpad(((%[1]s) / 26 %% 100)::text, 2, '0') || '.' || ((%[1]s) / 2600)::text", c)
}

// forceNoPgcrypto makes payloads come from random() even when pgcrypto is there; tests
// set it to cover the fallback.
var forceNoPgcrypto = false

// payloadSource says how random payload text is made on the server.
type payloadSource struct {
	pgcrypto string // schema of gen_random_bytes, empty without pgcrypto
}

// detectPayloadSource finds pgcrypto's gen_random_bytes, in whatever schema it was installed.
func detectPayloadSource(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (payloadSource, error) {
	if forceNoPgcrypto {
		return payloadSource{}, nil
	}
	var schema string
	err := q.QueryRow(ctx, `
SELECT n.nspname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE p.proname = 'gen_random_bytes' ORDER BY n.nspname = 'public' DESC LIMIT 1`).Scan(&schema)
	if errors.Is(err, pgx.ErrNoRows) {
		return payloadSource{}, nil
	}
	if err != nil {
		return payloadSource{}, err
	}
	return payloadSource{pgcrypto: pgx.Identifier{schema}.Sanitize()}, nil
}

// text returns an SQL expression, evaluated once per row, of random text of about minChars
// to maxChars characters: base64 of random bytes with pgcrypto (newlines every 76
// characters, as encode writes it), else hex SHA-512 digests of random() (the same idea as
// md5(random()::text) concatenations, with four times fewer hash calls). Either
// compresses poorly, as a real note or scan does.
func (p payloadSource) text(minChars, maxChars int) string {
	if maxChars < minChars {
		maxChars = minChars
	}
	if p.pgcrypto != "" {
		// gen_random_bytes returns at most 1024 bytes a call: the fixed part and the
		// variable part are split into calls of at most that.
		minBytes, varBytes := minChars*3/4, (maxChars-minChars)*3/4
		var parts []string
		for minBytes > 0 {
			n := min(minBytes, 1024)
			parts = append(parts, fmt.Sprintf("%s.gen_random_bytes(%d)", p.pgcrypto, n))
			minBytes -= n
		}
		for varBytes > 0 {
			n := min(varBytes, 1024)
			parts = append(parts, fmt.Sprintf("%s.gen_random_bytes(1 + floor(random() * %d)::int)", p.pgcrypto, n))
			varBytes -= n
		}
		if len(parts) == 0 {
			parts = append(parts, p.pgcrypto+".gen_random_bytes(1)")
		}
		return "encode(" + strings.Join(parts, " || ") + ", 'base64')"
	}
	n := (maxChars + 127) / 128
	parts := make([]string, n)
	for i := range parts {
		parts[i] = "encode(sha512(random()::text::bytea), 'hex')"
	}
	return fmt.Sprintf("substr(%s, 1, %d + floor(random() * %d)::int)", strings.Join(parts, " || "), minChars, maxChars-minChars+1)
}

// openPool connects with one connection per worker plus one for the coordinator. Commits
// do not wait for the WAL flush: this is generated data, and losing the last batches of
// it in a crash is harmless.
func openPool(ctx context.Context, connString string, conns int) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("demodata: parse connection string: %w", err)
	}
	cfg.MaxConns = int32(conns)
	cfg.ConnConfig.RuntimeParams["synchronous_commit"] = "off"
	cfg.ConnConfig.RuntimeParams["application_name"] = "readiness-demodata"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("demodata: connect: %w", err)
	}
	return pool, nil
}

// datasetSize is the sum of pg_total_relation_size over the dataset's tables.
func datasetSize(ctx context.Context, pool *pgxpool.Pool) (int64, error) {
	var n int64
	err := pool.QueryRow(ctx, `SELECT sum(pg_total_relation_size(t::regclass))::bigint FROM unnest($1::text[]) AS t`, Tables()).Scan(&n)
	return n, err
}

// maxLoadDate is the newest load_date in the dataset, or the zero time when it is empty.
// It walks the (tenant_hk, load_date) indexes tenant by tenant (a loose index scan), which
// stays fast on gigabytes where max(load_date) would read every row.
func maxLoadDate(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (time.Time, error) {
	var newest time.Time
	for _, t := range loadDateTables {
		var ts *time.Time
		err := q.QueryRow(ctx, fmt.Sprintf(`
WITH RECURSIVE tenants(hk) AS (
    (SELECT tenant_hk FROM %[1]s ORDER BY tenant_hk LIMIT 1)
    UNION ALL
    SELECT (SELECT t.tenant_hk FROM %[1]s AS t WHERE t.tenant_hk > tenants.hk ORDER BY t.tenant_hk LIMIT 1)
    FROM tenants WHERE tenants.hk IS NOT NULL
)
SELECT max((SELECT max(load_date) FROM %[1]s WHERE tenant_hk = tenants.hk)) FROM tenants WHERE hk IS NOT NULL`, t)).Scan(&ts)
		if err != nil {
			return time.Time{}, fmt.Errorf("newest load_date of %s: %w", t, err)
		}
		if ts != nil && ts.After(newest) {
			newest = *ts
		}
	}
	return newest, nil
}
