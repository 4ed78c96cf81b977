package logical_test

import (
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/onevault/readiness/internal/backup/logical"
	"github.com/onevault/readiness/internal/pgtest"
)

// TestTenantChainAfterTheXidCounterWrapped runs a chain on a cluster whose 32-bit
// transaction counter has gone round once, with frozen rows from the previous round: the
// rows were loaded, frozen, and pg_resetwal then set the counter to epoch 1, a little before
// their ids' low 32 bits. Between the FULL and the INCREMENTAL the counter passes those bits
// again, so the old rows read as new ones; a loader also races the FULL.
func TestTenantChainAfterTheXidCounterWrapped(t *testing.T) {
	ctx := t.Context()
	c := pgtest.Local(t, "wrapped", nil)
	require.NoError(t, c.CreateDatabase(ctx, "vault"))
	source := c.URL("vault")
	fillSourceDatabase(t, source)
	var oldest, next uint64
	queryRow(t, source, `SELECT min(xmin::text::bigint) FROM healthcare.hub_patient`, nil, &oldest)
	for _, db := range []string{"vault", "postgres", "template1"} {
		execSQL(t, c.URL(db), "VACUUM (FREEZE)")
	}
	queryRow(t, source, `SELECT pg_current_xact_id()::text::bigint`, nil, &next)
	require.Less(t, next, uint64(1<<32), "a fresh cluster is in epoch 0")

	require.NoError(t, c.Stop(ctx))
	restart := oldest - 20
	cmd := exec.CommandContext(ctx, filepath.Join(c.BinDir(), "pg_resetwal"), "-e", "1", "-x", strconv.FormatUint(restart, 10), c.DataDir())
	cmd.Dir = "/"
	c.RunAsOwner(cmd)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	require.NoError(t, c.Start(ctx))
	// The relfrozenxid values are now ahead of the counter; a VACUUM sets them right, as
	// they would be on a cluster that really went round.
	for _, db := range []string{"vault", "postgres", "template1"} {
		execSQL(t, c.URL(db), "VACUUM")
	}

	a := startLateLoader(t, source, 301, 310)
	full, fullStore := backupTenant(t, source, acme, nil)
	a.commit(t)
	var fullXmax uint64
	queryRow(t, source, `SELECT pg_snapshot_xmax($1::pg_snapshot)::text::bigint`, []any{full.XidSnapshot}, &fullXmax)
	require.Greater(t, fullXmax, uint64(1<<32), "the FULL ran in epoch 1")
	require.Less(t, fullXmax&0xffffffff, oldest, "the old rows' ids are ahead of the counter's low bits")

	// Move the counter past the old rows' low bits.
	for range next - restart + 10 {
		execSQL(t, source, "SELECT pg_current_xact_id()")
	}
	seedPatients(t, source, "acme", 121, 125, time.Now().UTC())
	incr, incrStore := backupTenant(t, source, acme, full)

	t.Run("the incremental holds the late rows and new ones, and may repeat frozen rows", func(t *testing.T) {
		hub := entry(t, incr, "hub_patient")
		require.True(t, hub.Incremental)
		require.True(t, hub.MayRepeat)
		require.GreaterOrEqual(t, hub.Rows, int64(10+5+5), "A's, those committed while A was open, and the new ones")
		require.Greater(t, hub.Rows, int64(10+5+5), "old frozen rows read as new: the case the restore must handle")
		t.Logf("hub_patient: %d rows in the incremental, %d in the source", hub.Rows, tableContent(t, source, "hub_patient", acme).Rows)
	})
	t.Run("FULL + INCREMENTAL restores every row once", func(t *testing.T) {
		target := restoreChain(t, source, []*logical.TenantManifest{full, incr}, []dirStore{fullStore, incrStore})
		require.Equal(t, int64(10), lateRows(t, target, "sat_patient_details"))
	})
}
