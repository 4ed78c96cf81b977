package logical_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onevault/readiness/internal/backup/logical"
	"github.com/onevault/readiness/internal/pgtest"
)

func TestSchemaBackup(t *testing.T) {
	t.Parallel()
	source := newSourceDatabase(t)
	store := newDirStore(t)
	var last logical.Progress
	m, err := logical.BackupSchema(t.Context(), store, logical.SchemaOptions{
		ConnString: source,
		Schema:     "healthcare",
		Progress:   func(p logical.Progress) { last = p },
	})
	require.NoError(t, err)

	t.Run("it is one custom-format archive with every table's rows", func(t *testing.T) {
		objects := store.objects(t)
		require.Len(t, objects, 1)
		archive := objects[m.Object]
		require.Equal(t, "PGDMP", string(archive[:5]), "pg_dump custom format")
		require.Equal(t, int64(len(archive)), m.Bytes)
		require.Equal(t, logical.Progress{Phase: logical.PhaseDone, BytesDone: m.Bytes, BytesTotal: m.Bytes}, last)

		rows := map[string]int64{}
		for _, table := range m.Tables {
			rows[table.Name] = table.Rows
		}
		require.Equal(t, map[string]int64{
			"event_log": 200, "hub_patient": 200, "link_patient_encounter": 200, "ref_code": 2,
			"sat_patient_details": 200, "sat_patient_vitals_2024": 100, "sat_patient_vitals_rest": 200, "tenant_setting": 6,
		}, rows)
	})

	t.Run("restored into a new database every table equals the source", func(t *testing.T) {
		target := pgtest.Server(t).NewDatabase(t)
		require.NoError(t, logical.RestoreSchema(t.Context(), m, store, target, ""))
		for _, table := range append([]string{"ref_code", "sat_patient_vitals_2024", "sat_patient_vitals_rest"}, tenantTables...) {
			want := tableContent(t, source, table, nil)
			require.NotZero(t, want.Rows, table)
			require.Equal(t, want, tableContent(t, target, table, nil), "the restored %s equals the source, both tenants", table)
		}
		require.True(t, queryBool(t, target, "SELECT to_regclass('healthcare.current_patient') IS NOT NULL"), "the view is restored")
		require.True(t, queryBool(t, target, "SELECT to_regclass('readiness.backup_execution') IS NULL"), "other schemas are not")
	})

	t.Run("a restore whose tables differ from the manifest is reported", func(t *testing.T) {
		tampered := *m
		tampered.Tables = append([]logical.SchemaTable(nil), m.Tables...)
		tampered.Tables[0].Rows++
		target := pgtest.Server(t).NewDatabase(t)
		err := logical.RestoreSchema(t.Context(), &tampered, store, target, "")
		require.ErrorIs(t, err, logical.ErrVerifyFailed)
	})
}

func TestSchemaBackupRefusesAMissingSchema(t *testing.T) {
	t.Parallel()
	source := pgtest.Server(t).NewDatabase(t)
	store := newDirStore(t)
	_, err := logical.BackupSchema(t.Context(), store, logical.SchemaOptions{ConnString: source, Schema: "no_such_schema"})
	require.ErrorIs(t, err, logical.ErrSchemaNotFound)
	require.Contains(t, err.Error(), "no_such_schema")
}
