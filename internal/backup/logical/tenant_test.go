package logical_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/onevault/readiness/internal/backup/logical"
	"github.com/onevault/readiness/internal/pgtest"
)

// backupTenant takes a backup of one tenant of url into a new store.
func backupTenant(t *testing.T, url string, key []byte, parent *logical.TenantManifest) (*logical.TenantManifest, dirStore) {
	t.Helper()
	store := newDirStore(t)
	m, err := logical.BackupTenant(t.Context(), store, logical.TenantOptions{
		ConnString:     url,
		TenantKey:      key,
		Parent:         parent,
		ExcludeSchemas: []string{"readiness"},
	})
	require.NoError(t, err)
	// The manifest is stored as JSON: what the restore gets is what survives it.
	b, err := json.Marshal(m)
	require.NoError(t, err)
	var back logical.TenantManifest
	require.NoError(t, json.Unmarshal(b, &back))
	return &back, store
}

// requireTenantRestored checks that every tenant table of target holds exactly acme's rows
// of source.
func requireTenantRestored(t *testing.T, source, target string) {
	t.Helper()
	for _, table := range tenantTables {
		want := tableContent(t, source, table, acme)
		require.NotZero(t, want.Rows, "the source has acme rows in %s", table)
		require.Equal(t, want, tableContent(t, target, table, nil), "the restored %s holds exactly acme's rows", table)
		require.Zero(t, tableContent(t, target, table, globex).Rows, "the restored %s holds no globex row", table)
	}
}

func entry(t *testing.T, m *logical.TenantManifest, name string) logical.TenantTable {
	t.Helper()
	i := slices.IndexFunc(m.Tables, func(e logical.TenantTable) bool { return e.Name == name })
	require.GreaterOrEqual(t, i, 0, "the manifest has %s", name)
	return m.Tables[i]
}

func TestTenantBackup(t *testing.T) {
	t.Parallel()
	source := newSourceDatabase(t)

	var phases []string
	var last logical.Progress
	store := newDirStore(t)
	m, err := logical.BackupTenant(t.Context(), store, logical.TenantOptions{
		ConnString:     source,
		TenantKey:      acme,
		ExcludeSchemas: []string{"readiness"},
		Progress: func(p logical.Progress) {
			if len(phases) == 0 || phases[len(phases)-1] != p.Phase {
				phases = append(phases, p.Phase)
			}
			require.LessOrEqual(t, p.BytesDone, p.BytesTotal)
			last = p
		},
	})
	require.NoError(t, err)

	t.Run("it holds every table with the tenant key column and no other", func(t *testing.T) {
		var names []string
		for _, e := range m.Tables {
			require.Equal(t, "healthcare", e.Schema)
			names = append(names, e.Name)
		}
		require.Equal(t, tenantTables, names, "no view, no partition, no table without tenant_hk, no excluded schema")
	})

	t.Run("the insert-only tables are marked by load_date and the others are not", func(t *testing.T) {
		for _, name := range []string{"hub_patient", "sat_patient_details", "link_patient_encounter", "sat_patient_vitals"} {
			e := entry(t, m, name)
			require.Equal(t, "load_date", e.LoadDateColumn, name)
			require.NotNil(t, e.HighWaterMark, name)
			require.False(t, e.Incremental, "a FULL takes %s whole", name)
		}
		require.Equal(t, time.Date(2025, 1, 1, 0, 2, 0, 0, time.UTC), entry(t, m, "hub_patient").HighWaterMark.UTC(),
			"the mark is acme's last load_date, not globex's")
		for _, name := range []string{"tenant_setting", "event_log"} {
			require.Empty(t, entry(t, m, name).LoadDateColumn, name)
			require.Nil(t, entry(t, m, name).HighWaterMark, name)
		}
		require.NotContains(t, entry(t, m, "event_log").Columns, "message_length", "generated columns are not copied")
	})

	t.Run("its row counts are the tenant's", func(t *testing.T) {
		var total int64
		for _, e := range m.Tables {
			require.Equal(t, tableContent(t, source, e.Name, acme).Rows, e.Rows, e.Name)
			total += e.Rows
		}
		require.Equal(t, total, m.Rows)
	})

	t.Run("no object holds another tenant's key", func(t *testing.T) {
		var size int64
		for name, b := range store.objects(t) {
			require.False(t, bytes.Contains(b, []byte(hex.EncodeToString(globex))), "object %s holds globex's key", name)
			require.False(t, bytes.Contains(b, []byte("globex")), "object %s holds a globex value", name)
			size += int64(len(b))
		}
		require.Equal(t, m.Bytes, size)
		require.Contains(t, string(store.objects(t)[entry(t, m, "hub_patient").Object]), hex.EncodeToString(acme))
	})

	t.Run("its definitions create the schema and hold the tables only", func(t *testing.T) {
		ddl := string(store.objects(t)[m.DDLObject])
		require.Contains(t, ddl, `CREATE SCHEMA IF NOT EXISTS "healthcare";`)
		require.Contains(t, ddl, "CREATE TABLE healthcare.sat_patient_vitals_2024")
		require.NotContains(t, ddl, "ref_code (")
		require.NotContains(t, ddl, "current_patient")
		require.Contains(t, string(store.objects(t)[m.PostDDLObject]), "hub_patient_tenant_load_idx")
	})

	t.Run("progress goes through every phase and ends complete", func(t *testing.T) {
		require.Equal(t, []string{logical.PhasePrepare, logical.PhaseData, logical.PhaseDDL, logical.PhaseDone}, phases)
		require.Equal(t, logical.Progress{Phase: logical.PhaseDone, BytesDone: m.Bytes, BytesTotal: m.Bytes}, last)
	})

	t.Run("restored into an empty database it gives back exactly the tenant's rows", func(t *testing.T) {
		target := pgtest.Server(t).NewDatabase(t)
		report, err := logical.RestoreTenant(t.Context(), []*logical.TenantManifest{m}, []logical.Source{store}, target, "")
		require.NoError(t, err)
		require.Equal(t, len(tenantTables), report.Tables)
		require.Equal(t, m.Rows, report.Rows)
		requireTenantRestored(t, source, target)

		require.True(t, queryBool(t, target, "SELECT to_regclass('healthcare.ref_code') IS NULL"), "the table without tenant_hk is not restored")
		require.True(t, queryBool(t, target, "SELECT to_regclass('healthcare.current_patient') IS NULL"), "the view is not restored")
		require.True(t, queryBool(t, target, "SELECT to_regclass('readiness.backup_execution') IS NULL"), "the excluded schema is not restored")
		require.True(t, queryBool(t, target, "SELECT to_regclass('healthcare.hub_patient_tenant_load_idx') IS NOT NULL"), "the index is restored")
		require.True(t, queryBool(t, target, "SELECT to_regclass('healthcare.sat_patient_details_pkey') IS NOT NULL"), "the primary key is restored")
		require.True(t, queryBool(t, target, `SELECT EXISTS (SELECT FROM pg_constraint WHERE contype = 'f'
			AND conrelid = 'healthcare.sat_patient_details'::regclass AND confrelid = 'healthcare.hub_patient'::regclass)`),
			"the foreign key between two restored tables is restored")
		require.Len(t, report.SkippedStatements, 1, "only the foreign key to ref_code fails: %v", report.SkippedStatements)
		require.Contains(t, report.SkippedStatements[0], "REFERENCES healthcare.ref_code")

		require.Equal(t, tableContent(t, source, "sat_patient_vitals_2024", acme), tableContent(t, target, "sat_patient_vitals_2024", nil),
			"rows of a partitioned table land in their partitions")
		var restoredMax, next int64
		queryRow(t, target, "SELECT max(event_id) FROM healthcare.event_log", nil, &restoredMax)
		queryRow(t, target, "INSERT INTO healthcare.event_log (tenant_hk, message) VALUES ($1, 'after the restore') RETURNING event_id",
			[]any{acme}, &next)
		require.Greater(t, next, restoredMax, "the identity sequence continues after the restored rows")
	})

	t.Run("a corrupted object fails the restore and leaves the target empty", func(t *testing.T) {
		corrupt := newDirStore(t)
		for name, b := range store.objects(t) {
			if name == entry(t, m, "sat_patient_details").Object {
				b[len(b)/2] ^= 0x01
			}
			require.NoError(t, os.WriteFile(filepath.Join(corrupt.dir, name), b, 0o600))
		}
		target := pgtest.Server(t).NewDatabase(t)
		_, err := logical.RestoreTenant(t.Context(), []*logical.TenantManifest{m}, []logical.Source{corrupt}, target, "")
		require.ErrorIs(t, err, logical.ErrVerifyFailed)
		require.Contains(t, err.Error(), entry(t, m, "sat_patient_details").Object)
		require.True(t, queryBool(t, target, "SELECT to_regclass('healthcare.hub_patient') IS NULL"), "nothing is committed")
	})

	t.Run("a target that already has the tables is refused", func(t *testing.T) {
		target := pgtest.Server(t).NewDatabase(t)
		execSQL(t, target, "CREATE SCHEMA healthcare; CREATE TABLE healthcare.hub_patient (x int)")
		_, err := logical.RestoreTenant(t.Context(), []*logical.TenantManifest{m}, []logical.Source{store}, target, "")
		require.ErrorIs(t, err, logical.ErrTargetNotEmpty)
	})
}

func TestTenantBackupChains(t *testing.T) {
	t.Parallel()
	source := newSourceDatabase(t)
	full, fullStore := backupTenant(t, source, acme, nil)

	// First change: new acme patients, new satellite versions, settings changed; globex
	// loads rows too, which no acme backup may hold.
	now := time.Now().UTC().Truncate(time.Second)
	seedPatients(t, source, "acme", 121, 150, now)
	seedPatients(t, source, "globex", 81, 100, now)
	execSQL(t, source, `INSERT INTO healthcare.sat_patient_details
SELECT patient_hk, $2::timestamptz + interval '1 hour', hash_diff, tenant_hk, name || ' (renamed)', NULL, 'ACTIVE', 'EHR'
FROM healthcare.sat_patient_details WHERE tenant_hk = $1 AND load_date < '2025-01-01 00:00:11+00'`, acme, now)
	execSQL(t, source, `UPDATE healthcare.tenant_setting SET value = 'Europe/Oslo' WHERE tenant_hk = $1 AND key = 'timezone'`, acme)
	execSQL(t, source, `INSERT INTO healthcare.tenant_setting VALUES ($1, 'mfa', 'required')`, acme)
	execSQL(t, source, `DELETE FROM healthcare.tenant_setting WHERE tenant_hk = $1 AND key = 'locale'`, acme)
	incr1, incr1Store := backupTenant(t, source, acme, full)

	// Second change.
	later := now.Add(2 * time.Hour)
	seedPatients(t, source, "acme", 151, 160, later)
	execSQL(t, source, `UPDATE healthcare.tenant_setting SET value = 'P10Y' WHERE tenant_hk = $1 AND key = 'retention'`, acme)
	incr2, incr2Store := backupTenant(t, source, acme, incr1)
	diff, diffStore := backupTenant(t, source, acme, full)

	t.Run("an incremental holds only the rows loaded after its parent and the small tables whole", func(t *testing.T) {
		require.Equal(t, full.Snapshot, *incr1.ParentSnapshot)
		for name, rows := range map[string]int64{"hub_patient": 30, "sat_patient_details": 40, "link_patient_encounter": 30, "sat_patient_vitals": 30} {
			e := entry(t, incr1, name)
			require.True(t, e.Incremental, name)
			require.Equal(t, rows, e.Rows, name)
		}
		for name, rows := range map[string]int64{"hub_patient": 10, "sat_patient_details": 10, "link_patient_encounter": 10, "sat_patient_vitals": 10} {
			require.Equal(t, rows, entry(t, incr2, name).Rows, name)
		}
		setting := entry(t, incr1, "tenant_setting")
		require.False(t, setting.Incremental, "a table without load_date is taken whole")
		require.Equal(t, int64(3), setting.Rows)
		require.False(t, entry(t, incr1, "event_log").Incremental)
		require.Equal(t, int64(150), entry(t, incr1, "event_log").Rows)
	})

	t.Run("a differential holds every row loaded after the full", func(t *testing.T) {
		require.Equal(t, full.Snapshot, *diff.ParentSnapshot)
		for name, rows := range map[string]int64{"hub_patient": 40, "sat_patient_details": 50, "link_patient_encounter": 40, "sat_patient_vitals": 40} {
			e := entry(t, diff, name)
			require.True(t, e.Incremental, name)
			require.Equal(t, rows, e.Rows, name)
		}
	})

	t.Run("the high-water mark advances with new rows and carries over without them", func(t *testing.T) {
		require.True(t, entry(t, incr1, "hub_patient").HighWaterMark.Equal(now.Add(150*time.Second)))
		require.True(t, entry(t, incr2, "hub_patient").HighWaterMark.Equal(later.Add(160*time.Second)))
		empty, _ := backupTenant(t, source, acme, incr2)
		e := entry(t, empty, "hub_patient")
		require.Zero(t, e.Rows)
		require.True(t, e.HighWaterMark.Equal(*entry(t, incr2, "hub_patient").HighWaterMark))
	})

	t.Run("no backup of the chain holds another tenant's row", func(t *testing.T) {
		for _, s := range []dirStore{fullStore, incr1Store, incr2Store, diffStore} {
			for name, b := range s.objects(t) {
				require.False(t, bytes.Contains(b, []byte(hex.EncodeToString(globex))), "object %s holds globex's key", name)
			}
		}
	})

	t.Run("full, incremental, incremental restores to the tenant's rows", func(t *testing.T) {
		target := pgtest.Server(t).NewDatabase(t)
		report, err := logical.RestoreTenant(t.Context(), []*logical.TenantManifest{full, incr1, incr2},
			[]logical.Source{fullStore, incr1Store, incr2Store}, target, "")
		require.NoError(t, err)
		requireTenantRestored(t, source, target)
		var rows int64
		for _, table := range tenantTables {
			rows += tableContent(t, source, table, acme).Rows
		}
		require.Equal(t, rows, report.Rows)
	})

	t.Run("full, differential restores to the tenant's rows", func(t *testing.T) {
		target := pgtest.Server(t).NewDatabase(t)
		_, err := logical.RestoreTenant(t.Context(), []*logical.TenantManifest{full, diff},
			[]logical.Source{fullStore, diffStore}, target, "")
		require.NoError(t, err)
		requireTenantRestored(t, source, target)
	})

	t.Run("a chain with a gap is refused", func(t *testing.T) {
		target := pgtest.Server(t).NewDatabase(t)
		_, err := logical.RestoreTenant(t.Context(), []*logical.TenantManifest{full, incr2},
			[]logical.Source{fullStore, incr2Store}, target, "")
		require.ErrorIs(t, err, logical.ErrBrokenChain)
		_, err = logical.RestoreTenant(t.Context(), []*logical.TenantManifest{incr1},
			[]logical.Source{incr1Store}, target, "")
		require.ErrorIs(t, err, logical.ErrBrokenChain, "a chain starts with a FULL")
	})

	t.Run("a parent of another tenant is refused", func(t *testing.T) {
		_, err := logical.BackupTenant(t.Context(), newDirStore(t), logical.TenantOptions{
			ConnString: source, TenantKey: globex, Parent: full,
		})
		require.ErrorIs(t, err, logical.ErrParentMismatch)
	})
}

func TestTenantBackupRefusesADatabaseWithoutTheKeyColumn(t *testing.T) {
	t.Parallel()
	source := newSourceDatabase(t)
	_, err := logical.BackupTenant(t.Context(), newDirStore(t), logical.TenantOptions{
		ConnString: source, TenantKey: acme, TenantKeyColumn: "customer_hk",
	})
	require.ErrorIs(t, err, logical.ErrNoTenantTables)
	require.True(t, strings.Contains(err.Error(), "customer_hk"))
}

func TestTenantChainAcrossDefinitionChanges(t *testing.T) {
	t.Parallel()
	source := newSourceDatabase(t)
	// A satellite whose load_date has no time zone.
	execSQL(t, source, `CREATE TABLE healthcare.sat_patient_notes (
		patient_hk bytea NOT NULL, tenant_hk bytea NOT NULL, load_date timestamp NOT NULL, note text)`)
	execSQL(t, source, `INSERT INTO healthcare.sat_patient_notes
		SELECT sha256(convert_to(t || i, 'UTF8')), sha256(convert_to(upper(t), 'UTF8')), '2025-03-01'::timestamp + i * interval '1 minute', 'note ' || i
		FROM unnest(ARRAY['acme', 'globex']) t, generate_series(1, 20) i`)
	full, fullStore := backupTenant(t, source, acme, nil)
	require.Equal(t, time.Date(2025, 3, 1, 0, 20, 0, 0, time.UTC), entry(t, full, "sat_patient_notes").HighWaterMark.UTC())

	// A column is added between the FULL and the INCREMENTAL, and rows are loaded with it.
	execSQL(t, source, `ALTER TABLE healthcare.hub_patient ADD COLUMN region text`)
	seedPatients(t, source, "acme", 121, 125, time.Now().UTC())
	// Insert-only: only the new rows get a region.
	execSQL(t, source, `UPDATE healthcare.hub_patient SET region = 'north' WHERE tenant_hk = $1 AND load_date > '2025-06-01'`, acme)
	execSQL(t, source, `INSERT INTO healthcare.sat_patient_notes
		SELECT sha256(convert_to('acme' || i, 'UTF8')), $1, '2025-03-02'::timestamp + i * interval '1 minute', 'later note ' || i
		FROM generate_series(1, 4) i`, acme)
	incr, incrStore := backupTenant(t, source, acme, full)

	t.Run("the incremental takes the rows after the mark of a timestamp load_date", func(t *testing.T) {
		notes := entry(t, incr, "sat_patient_notes")
		require.True(t, notes.Incremental)
		require.Equal(t, int64(4), notes.Rows)
		require.Equal(t, int64(5), entry(t, incr, "hub_patient").Rows)
		require.Contains(t, entry(t, incr, "hub_patient").Columns, "region")
	})

	t.Run("the chain restores with the last definitions", func(t *testing.T) {
		target := pgtest.Server(t).NewDatabase(t)
		_, err := logical.RestoreTenant(t.Context(), []*logical.TenantManifest{full, incr},
			[]logical.Source{fullStore, incrStore}, target, "")
		require.NoError(t, err)
		requireTenantRestored(t, source, target)
		require.Equal(t, tableContent(t, source, "sat_patient_notes", acme), tableContent(t, target, "sat_patient_notes", nil))
	})
}
