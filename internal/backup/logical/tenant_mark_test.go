package logical_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/onevault/readiness/internal/backup/logical"
	"github.com/onevault/readiness/internal/pgtest"
)

// lateLoader is a One Vault loader caught in the race that incrementals must survive: its
// transaction stamps load_date = now() when it starts, inserts, and commits only after a
// backup has taken its snapshot.
type lateLoader struct {
	conn *pgx.Conn
	tx   pgx.Tx
	// loadDate is the load_date its rows carry; subXid and topXid tell that the rows it
	// inserted in a savepoint carry a subtransaction's id.
	loadDate       time.Time
	topXid, subXid uint64
}

// startLateLoader begins a transaction that inserts patients first..last of acme (hub,
// vitals, and the details in a subtransaction, as a PL/pgSQL exception block or a driver's
// nested transaction makes one), then commits rows of its own in another session with a
// later load_date, so that the backup's high-water mark is past the open transaction's rows.
func startLateLoader(t *testing.T, url string, first, last int) *lateLoader {
	t.Helper()
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	l := &lateLoader{conn: conn, tx: tx}
	_, err = tx.Exec(ctx, `
INSERT INTO healthcare.hub_patient
SELECT sha256(convert_to('acme:patient:' || i, 'UTF8')), 'acme-P' || i, $1, now(), 'LATE'
FROM generate_series($2::int, $3::int) i`, acme, first, last)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `
INSERT INTO healthcare.sat_patient_vitals
SELECT sha256(convert_to('acme:patient:' || i, 'UTF8')), now(), $1, 80, 37.0, now() AT TIME ZONE 'UTC'
FROM generate_series($2::int, $3::int) i`, acme, first, last)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "SAVEPOINT details")
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `
INSERT INTO healthcare.sat_patient_details
SELECT sha256(convert_to('acme:patient:' || i, 'UTF8')), now(), md5('late' || i)::bytea, $1, 'Late ' || i, NULL, 'ACTIVE', 'LATE'
FROM generate_series($2::int, $3::int) i`, acme, first, last)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "RELEASE SAVEPOINT details")
	require.NoError(t, err)
	require.NoError(t, tx.QueryRow(ctx, `SELECT now(), pg_current_xact_id()::text::bigint,
		(SELECT xmin::text::bigint FROM healthcare.sat_patient_details WHERE record_source = 'LATE' LIMIT 1)`).
		Scan(&l.loadDate, &l.topXid, &l.subXid))
	l.loadDate = l.loadDate.UTC()

	// Rows committed meanwhile, stamped later: the backup's mark is past the open rows.
	time.Sleep(10 * time.Millisecond)
	seedPatients(t, url, "acme", first+1000, first+1004, time.Now().UTC())
	return l
}

func (l *lateLoader) commit(t *testing.T) {
	t.Helper()
	require.NoError(t, l.tx.Commit(t.Context()))
}

// lateRows is the number of rows of table that belong to patients a lateLoader inserted.
func lateRows(t *testing.T, url, table string) int64 {
	t.Helper()
	var n int64
	queryRow(t, url, "SELECT count(*) FROM "+pgx.Identifier{"healthcare", table}.Sanitize()+
		" WHERE patient_hk IN (SELECT patient_hk FROM healthcare.hub_patient WHERE record_source = 'LATE')", nil, &n)
	return n
}

// restoreChain restores a chain into a new database and checks it holds exactly acme's rows.
func restoreChain(t *testing.T, source string, chain []*logical.TenantManifest, stores []dirStore) string {
	t.Helper()
	sources := make([]logical.Source, len(stores))
	for i, s := range stores {
		sources[i] = s
	}
	target := pgtest.Server(t).NewDatabase(t)
	report, err := logical.RestoreTenant(t.Context(), chain, sources, target, "")
	require.NoError(t, err)
	requireTenantRestored(t, source, target)
	var rows int64
	for _, table := range tenantTables {
		rows += tableContent(t, source, table, acme).Rows
	}
	require.Equal(t, rows, report.Rows, "the restore holds each row once")
	return target
}

func TestTenantIncrementalsTakeLateCommits(t *testing.T) {
	t.Parallel()
	source := newSourceDatabase(t)

	// A begins and inserts, a FULL completes, then A commits.
	a := startLateLoader(t, source, 301, 310)
	full, fullStore := backupTenant(t, source, acme, nil)
	a.commit(t)

	t.Run("the race is real: the open rows were stamped before the FULL's mark, in a subtransaction", func(t *testing.T) {
		require.True(t, a.loadDate.Before(*entry(t, full, "hub_patient").HighWaterMark),
			"a load_date mark would miss them: %s is before %s", a.loadDate, entry(t, full, "hub_patient").HighWaterMark)
		require.NotEqual(t, a.topXid, a.subXid, "the details carry a subtransaction's id")
		require.Equal(t, int64(0), entry(t, full, "hub_patient").Rows-tableContent(t, source, "hub_patient", acme).Rows+10,
			"the FULL holds every acme patient but the 10 open ones")
		require.NotEmpty(t, full.XidSnapshot)
		require.NotEmpty(t, full.SystemID)
		require.Positive(t, full.Timeline)
	})

	incr1, incr1Store := backupTenant(t, source, acme, full)
	t.Run("the next INCREMENTAL holds the rows committed after the FULL", func(t *testing.T) {
		require.Empty(t, incr1.FullReason)
		for _, name := range []string{"hub_patient", "sat_patient_details", "sat_patient_vitals"} {
			e := entry(t, incr1, name)
			require.True(t, e.Incremental, name)
			require.Equal(t, int64(10), e.Rows, "%s: the late rows and nothing the FULL had", name)
			require.Equal(t, int64(10), lateRows(t, source, name), name)
		}
	})
	t.Run("FULL + INCREMENTAL restores them, each row once", func(t *testing.T) {
		target := restoreChain(t, source, []*logical.TenantManifest{full, incr1}, []dirStore{fullStore, incr1Store})
		require.Equal(t, int64(10), lateRows(t, target, "sat_patient_details"))
	})

	// B begins and inserts, rows are committed meanwhile, an INCREMENTAL completes, then B
	// commits.
	b := startLateLoader(t, source, 401, 405)
	incr2, incr2Store := backupTenant(t, source, acme, incr1)
	b.commit(t)
	incr3, incr3Store := backupTenant(t, source, acme, incr2)
	t.Run("an INCREMENTAL raced by a loader leaves its rows to the next one", func(t *testing.T) {
		require.True(t, b.loadDate.Before(*entry(t, incr2, "hub_patient").HighWaterMark))
		require.Equal(t, int64(5), entry(t, incr2, "hub_patient").Rows, "the rows committed meanwhile")
		require.Equal(t, int64(5), entry(t, incr3, "hub_patient").Rows, "B's rows")
		require.Equal(t, int64(5), entry(t, incr3, "sat_patient_details").Rows, "B's rows from its subtransaction")
		require.Equal(t, int64(5), entry(t, incr3, "sat_patient_vitals").Rows, "B's rows in the partitioned table")
	})
	t.Run("FULL + INCREMENTAL x3 restores every row once", func(t *testing.T) {
		restoreChain(t, source, []*logical.TenantManifest{full, incr1, incr2, incr3},
			[]dirStore{fullStore, incr1Store, incr2Store, incr3Store})
	})
	t.Run("an INCREMENTAL with nothing new holds no row", func(t *testing.T) {
		empty, _ := backupTenant(t, source, acme, incr3)
		for _, name := range []string{"hub_patient", "sat_patient_details", "sat_patient_vitals", "link_patient_encounter"} {
			require.Zero(t, entry(t, empty, name).Rows, name)
		}
	})
}

func TestTenantDifferentialTakesLateCommits(t *testing.T) {
	t.Parallel()
	source := newSourceDatabase(t)
	a := startLateLoader(t, source, 301, 310)
	full, fullStore := backupTenant(t, source, acme, nil)
	a.commit(t)

	// C begins during a first DIFFERENTIAL and commits after it.
	c := startLateLoader(t, source, 501, 503)
	diff1, diff1Store := backupTenant(t, source, acme, full)
	c.commit(t)
	diff2, diff2Store := backupTenant(t, source, acme, full)

	t.Run("a DIFFERENTIAL holds the rows committed after the FULL", func(t *testing.T) {
		require.True(t, a.loadDate.Before(*entry(t, full, "hub_patient").HighWaterMark))
		// The rows committed while A was open were in the FULL.
		require.Equal(t, int64(10+5), entry(t, diff1, "hub_patient").Rows, "A's and those committed while C was open")
		require.Equal(t, int64(10+5+3), entry(t, diff2, "hub_patient").Rows, "and C's")
		require.Equal(t, int64(10+5+3), entry(t, diff2, "sat_patient_details").Rows, "with the subtransactions' rows")
		require.Equal(t, int64(10+5+3), entry(t, diff2, "sat_patient_vitals").Rows, "and the partitioned table's")
	})
	t.Run("FULL + each DIFFERENTIAL restores every row once", func(t *testing.T) {
		target := pgtest.Server(t).NewDatabase(t)
		_, err := logical.RestoreTenant(t.Context(), []*logical.TenantManifest{full, diff1}, []logical.Source{fullStore, diff1Store}, target, "")
		require.NoError(t, err)
		require.Equal(t, int64(10), lateRows(t, target, "hub_patient"), "A's rows without C's, which committed later")
		restoreChain(t, source, []*logical.TenantManifest{full, diff2}, []dirStore{fullStore, diff2Store})
	})
}

func TestTenantChainWithoutSnapshot(t *testing.T) {
	t.Parallel()
	source := newSourceDatabase(t)
	full, fullStore := backupTenant(t, source, acme, nil)
	// A FULL made before backups recorded their snapshot: its manifest, as stored then,
	// has none of the fields.
	var legacy map[string]any
	b, err := json.Marshal(full)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &legacy))
	for _, k := range []string{"xidSnapshot", "visibleXids", "systemId", "timeline"} {
		delete(legacy, k)
	}
	for _, e := range legacy["tables"].([]any) {
		delete(e.(map[string]any), "storageId")
	}
	b, err = json.Marshal(legacy)
	require.NoError(t, err)
	var old logical.TenantManifest
	require.NoError(t, json.Unmarshal(b, &old))

	seedPatients(t, source, "acme", 121, 130, time.Now().UTC())
	incr, incrStore := backupTenant(t, source, acme, &old)
	seedPatients(t, source, "acme", 131, 135, time.Now().UTC())
	incr2, incr2Store := backupTenant(t, source, acme, incr)

	t.Run("its next backup takes every table whole and says why", func(t *testing.T) {
		require.Contains(t, incr.FullReason, "made before backups recorded their snapshot")
		for _, e := range incr.Tables {
			require.False(t, e.Incremental, e.Name)
			require.Equal(t, tableContent(t, source, e.Name, acme).Rows-tableRowsAddedAfter(e.Name, 5), e.Rows, e.Name)
		}
	})
	t.Run("the backup after that is incremental again", func(t *testing.T) {
		require.Empty(t, incr2.FullReason)
		require.True(t, entry(t, incr2, "hub_patient").Incremental)
		require.Equal(t, int64(5), entry(t, incr2, "hub_patient").Rows)
	})
	t.Run("the old chain restores, with its whole tables replacing the FULL's", func(t *testing.T) {
		restoreChain(t, source, []*logical.TenantManifest{&old, incr, incr2}, []dirStore{fullStore, incrStore, incr2Store})
	})
	t.Run("a parent of another cluster or timeline is not continued", func(t *testing.T) {
		other := *incr2
		other.SystemID = "1"
		m, _ := backupTenant(t, source, acme, &other)
		require.Contains(t, m.FullReason, "another cluster")
		require.False(t, entry(t, m, "hub_patient").Incremental)
		other = *incr2
		other.Timeline++
		m, _ = backupTenant(t, source, acme, &other)
		require.Contains(t, m.FullReason, "timeline")
		require.False(t, entry(t, m, "hub_patient").Incremental)
	})
}

// tableRowsAddedAfter is how many acme rows of table the second seedPatients call of
// TestTenantChainWithoutSnapshot added (n patients: one row in each table it fills).
func tableRowsAddedAfter(table string, n int64) int64 {
	if table == "tenant_setting" {
		return 0
	}
	return n
}

func TestTenantTableRewrittenSinceTheParent(t *testing.T) {
	t.Parallel()
	source := newSourceDatabase(t)
	full, fullStore := backupTenant(t, source, acme, nil)
	// A rewrite gives every row of the table the rewriting transaction's id.
	execSQL(t, source, `ALTER TABLE healthcare.link_patient_encounter ALTER COLUMN record_source TYPE varchar(200) USING record_source || ''`)
	seedPatients(t, source, "acme", 121, 125, time.Now().UTC())
	incr, incrStore := backupTenant(t, source, acme, full)

	t.Run("the rewritten table is taken whole, the others after the parent", func(t *testing.T) {
		link := entry(t, incr, "link_patient_encounter")
		require.False(t, link.Incremental)
		require.NotEqual(t, entry(t, full, "link_patient_encounter").StorageID, link.StorageID)
		require.Equal(t, int64(125), link.Rows)
		require.True(t, entry(t, incr, "hub_patient").Incremental)
		require.Equal(t, int64(5), entry(t, incr, "hub_patient").Rows)
	})
	t.Run("the chain restores every row once", func(t *testing.T) {
		restoreChain(t, source, []*logical.TenantManifest{full, incr}, []dirStore{fullStore, incrStore})
	})
}
