package backup_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/onevault/readiness/gen/client"
	"github.com/onevault/readiness/internal/apitest"
	"github.com/onevault/readiness/internal/auth"
	"github.com/onevault/readiness/internal/demodata"
	"github.com/onevault/readiness/internal/vault"
)

// openLoader begins a One Vault load of n acme patients named prefix-1..n: load_date is
// now() of the transaction, the rows are inserted (the satellite rows in a savepoint), and
// the transaction stays open. Rows stamped later are then committed in another session, so
// that a backup taken meanwhile has a load_date mark past the open rows. It returns the
// function that commits.
func openLoader(t *testing.T, url, prefix string, n int) (commit func()) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	key := vault.HashKey("acme")
	for _, sql := range []string{
		`INSERT INTO healthcare.hub_patient
		 SELECT sha256(convert_to($2 || i, 'UTF8')), $2 || i, $1, now(), 'LATE' FROM generate_series(1, $3::int) i`,
		`SAVEPOINT sat`,
		`INSERT INTO healthcare.sat_patient_demographics (patient_hk, load_date, hash_diff, tenant_hk, first_name, record_source)
		 SELECT sha256(convert_to($2 || i, 'UTF8')), now(), md5($2 || i)::bytea, $1, 'Late', 'LATE' FROM generate_series(1, $3::int) i`,
		`RELEASE SAVEPOINT sat`,
	} {
		if sql[0] == 'S' || sql[0] == 'R' {
			_, err = tx.Exec(ctx, sql)
		} else {
			_, err = tx.Exec(ctx, sql, key, prefix+"-", n)
		}
		require.NoError(t, err)
	}
	time.Sleep(10 * time.Millisecond)
	other, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer other.Close(ctx)
	_, err = other.Exec(ctx, `INSERT INTO healthcare.hub_patient
		SELECT sha256(convert_to($2 || i, 'UTF8')), $2 || i, $1, now(), 'ON-TIME' FROM generate_series(1, 3) i`, key, prefix+"-on-time-")
	require.NoError(t, err)
	return func() { require.NoError(t, tx.Commit(ctx)) }
}

// lateCount is the number of acme hub rows loaded by openLoader's transactions of prefix.
func lateCount(t *testing.T, url, prefix string) int64 {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var n int64
	require.NoError(t, conn.QueryRow(context.Background(), `SELECT count(*) FROM healthcare.hub_patient
		WHERE record_source = 'LATE' AND patient_bk LIKE $1 || '-%'`, prefix).Scan(&n))
	return n
}

func TestTenantBackupsTakeLateCommits(t *testing.T) {
	_, managed := managedDB(t, 1<<20)
	// tenant_setting has no load_date: every backup takes it whole.
	var settings int64
	conn, err := pgx.Connect(context.Background(), managed)
	require.NoError(t, err)
	require.NoError(t, conn.QueryRow(context.Background(), `SELECT count(*) FROM healthcare.tenant_setting WHERE tenant_hk = $1`,
		vault.HashKey("acme")).Scan(&settings))
	require.NoError(t, conn.Close(context.Background()))
	require.Positive(t, settings)
	x := &tester{t: t, svc: apitest.Start(t, apitest.Options{Workers: 2, ManagedURL: managed})}
	acme := apitest.Token(t, "alice", []string{"acme"}, auth.RoleAdmin)

	// A begins and inserts; a FULL completes; A commits.
	commitA := openLoader(t, managed, "a", 25)
	full := x.completed("acme", acme, tenantBody(client.BackupTypeFULL))
	commitA()
	incr := x.completed("acme", acme, tenantBody(client.BackupTypeINCREMENTAL))
	t.Run("the INCREMENTAL after the FULL restores the rows committed after it", func(t *testing.T) {
		require.Equal(t, full.BackupId, *incr.Result.ParentBackupId)
		require.Equal(t, settings+25+25, *incr.Result.RowCount, "A's hub and satellite rows, nothing the FULL had")
		target := restoreLogical(t, x.svc, "acme", incr.BackupId)
		require.Equal(t, int64(25), lateCount(t, target, "a"))
		require.Equal(t, tableSums(t, managed, "acme"), tableSums(t, target, ""))
	})

	// B begins and inserts; an INCREMENTAL completes; B commits.
	commitB := openLoader(t, managed, "b", 7)
	incr2 := x.completed("acme", acme, tenantBody(client.BackupTypeINCREMENTAL))
	commitB()
	incr3 := x.completed("acme", acme, tenantBody(client.BackupTypeINCREMENTAL))
	t.Run("an INCREMENTAL raced by a load leaves its rows to the next one, and the chain restores them", func(t *testing.T) {
		require.Equal(t, settings+3, *incr2.Result.RowCount, "the rows committed while B was open")
		require.Equal(t, settings+7+7, *incr3.Result.RowCount)
		target := restoreLogical(t, x.svc, "acme", incr3.BackupId)
		require.Equal(t, int64(7), lateCount(t, target, "b"))
		require.Equal(t, tableSums(t, managed, "acme"), tableSums(t, target, ""))
	})

	// C begins and inserts; a DIFFERENTIAL completes; C commits.
	commitC := openLoader(t, managed, "c", 4)
	diff := x.completed("acme", acme, tenantBody(client.BackupTypeDIFFERENTIAL))
	commitC()
	diff2 := x.completed("acme", acme, tenantBody(client.BackupTypeDIFFERENTIAL))
	t.Run("a DIFFERENTIAL raced by a load leaves its rows to the next one, and FULL + DIFFERENTIAL restores them", func(t *testing.T) {
		require.Equal(t, full.BackupId, *diff.Result.ParentBackupId)
		require.Equal(t, full.BackupId, *diff2.Result.ParentBackupId)
		require.Equal(t, *diff.Result.RowCount+4+4, *diff2.Result.RowCount)
		target := restoreLogical(t, x.svc, "acme", diff2.BackupId)
		require.Equal(t, int64(4), lateCount(t, target, "c"))
		require.Equal(t, tableSums(t, managed, "acme"), tableSums(t, target, ""))
	})
}

func TestTenantChainMadeBeforeSnapshots(t *testing.T) {
	ctx := context.Background()
	_, managed := managedDB(t, 1<<20)
	x := &tester{t: t, svc: apitest.Start(t, apitest.Options{Workers: 2, ManagedURL: managed})}
	acme := apitest.Token(t, "alice", []string{"acme"}, auth.RoleAdmin)

	full := x.completed("acme", acme, tenantBody(client.BackupTypeFULL))
	// Make its manifest what a FULL taken before backups recorded their snapshot holds.
	path := filepath.Join(x.svc.App.Repo.Path("", full.BackupId.String()), "manifest.json")
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(data, &m))
	tenant := m["tenantData"].(map[string]any)
	require.NotEmpty(t, tenant["xidSnapshot"])
	for _, k := range []string{"xidSnapshot", "visibleXids", "systemId", "timeline"} {
		delete(tenant, k)
	}
	data, err = json.Marshal(m)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, data, 0o600))

	_, err = demodata.Generate(ctx, managed, demodata.Options{Tenants: []string{"acme"}, Size: 256 << 10})
	require.NoError(t, err)
	incr := x.completed("acme", acme, tenantBody(client.BackupTypeINCREMENTAL))
	t.Run("the next INCREMENTAL stays in the chain and holds every row", func(t *testing.T) {
		require.Equal(t, full.BackupId, *incr.Result.ParentBackupId)
		var rows int64
		for _, sum := range tableSums(t, managed, "acme") {
			n, err := strconv.ParseInt(strings.SplitN(sum, ":", 2)[0], 10, 64)
			require.NoError(t, err)
			rows += n
		}
		require.Equal(t, rows, *incr.Result.RowCount)
	})
	t.Run("the old chain restores", func(t *testing.T) {
		target := restoreLogical(t, x.svc, "acme", incr.BackupId)
		require.Equal(t, tableSums(t, managed, "acme"), tableSums(t, target, ""))
	})
	_, err = demodata.Generate(ctx, managed, demodata.Options{Tenants: []string{"acme"}, Size: 64 << 10})
	require.NoError(t, err)
	incr2 := x.completed("acme", acme, tenantBody(client.BackupTypeINCREMENTAL))
	t.Run("the INCREMENTAL after it takes only what is new again", func(t *testing.T) {
		require.Equal(t, incr.BackupId, *incr2.Result.ParentBackupId)
		require.Less(t, *incr2.Result.RowCount, *incr.Result.RowCount/2)
		target := restoreLogical(t, x.svc, "acme", incr2.BackupId)
		require.Equal(t, tableSums(t, managed, "acme"), tableSums(t, target, ""))
	})
}
