package backup_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	openapi_types "github.com/oapi-codegen/runtime/types"
	"github.com/stretchr/testify/require"

	"github.com/onevault/readiness/gen/client"
	"github.com/onevault/readiness/internal/apitest"
	"github.com/onevault/readiness/internal/auth"
	"github.com/onevault/readiness/internal/demodata"
	"github.com/onevault/readiness/internal/pgcluster"
	"github.com/onevault/readiness/internal/pgtest"
	"github.com/onevault/readiness/internal/vault"
)

func TestMain(m *testing.M) {
	apitest.RunReplicaIfAsked() // the worker of TestKilledWorker, killed by the test
	pgtest.Main(m)
}

// managedSettings make the managed cluster one that physical backups can copy.
var managedSettings = map[string]string{"wal_level": "replica", "max_wal_senders": "10", "archive_mode": "off"}

// managedDB creates a fresh One Vault-like database with both tenants' rows on the package's
// local managed cluster.
func managedDB(t *testing.T, size int64) (*pgcluster.Cluster, string) {
	t.Helper()
	ctx := context.Background()
	c := pgtest.Local(t, "managed", managedSettings)
	name := "one_vault_" + strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	require.NoError(t, c.CreateDatabase(ctx, name))
	url := c.URL(name)
	require.NoError(t, demodata.Ensure(ctx, url))
	_, err := demodata.Generate(ctx, url, demodata.Options{Tenants: []string{"acme", "globex"}, Size: size})
	require.NoError(t, err)
	return c, url
}

type tester struct {
	t   *testing.T
	svc *apitest.Service
}

func (x *tester) create(tenant, tok string, body client.BackupCreateRequest) client.BackupExecution {
	x.t.Helper()
	r, err := x.svc.Client.CreateBackupWithResponse(context.Background(), &client.CreateBackupParams{XTenantID: tenant}, body, apitest.As(tok))
	require.NoError(x.t, err)
	require.Equal(x.t, http.StatusAccepted, r.StatusCode(), string(r.Body))
	require.Equal(x.t, client.BackupExecutionStatusQUEUED, r.JSON202.Data.Status)
	return r.JSON202.Data
}

func (x *tester) status(tenant, tok string, id openapi_types.UUID) client.BackupStatus {
	x.t.Helper()
	r, err := x.svc.Client.GetBackupStatusWithResponse(context.Background(), id, &client.GetBackupStatusParams{XTenantID: tenant}, apitest.As(tok))
	require.NoError(x.t, err)
	require.Equal(x.t, http.StatusOK, r.StatusCode(), string(r.Body))
	return r.JSON200.Data
}

// wait polls until the backup reaches one of the statuses.
func (x *tester) wait(tenant, tok string, id openapi_types.UUID, want ...client.BackupExecutionStatus) client.BackupStatus {
	x.t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		s := x.status(tenant, tok, id)
		for _, w := range want {
			if s.Status == w {
				return s
			}
		}
		if time.Now().After(deadline) {
			x.t.Fatalf("backup %s is %s after 3 minutes (error %v), want %v", id, s.Status, s.ErrorMessage, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (x *tester) completed(tenant, tok string, body client.BackupCreateRequest) client.BackupStatus {
	x.t.Helper()
	e := x.create(tenant, tok, body)
	s := x.wait(tenant, tok, e.BackupId, client.BackupExecutionStatusCOMPLETED, client.BackupExecutionStatusFAILED)
	require.Equal(x.t, client.BackupExecutionStatusCOMPLETED, s.Status, "error: %v", s.ErrorMessage)
	return s
}

// tableSums is each tenant table's row count and content checksum for one tenant (or all rows
// when tenant is empty).
func tableSums(t *testing.T, url, tenant string) map[string]string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(ctx)
	out := map[string]string{}
	for _, table := range demodata.TenantTables() {
		q := fmt.Sprintf("SELECT count(*)::text || ':' || coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '') FROM %s t", table)
		args := []any{}
		if tenant != "" {
			q += " WHERE tenant_hk = $1"
			args = append(args, vault.HashKey(tenant))
		}
		var sum string
		require.NoError(t, conn.QueryRow(ctx, q, args...).Scan(&sum))
		out[table] = sum
	}
	return out
}

func tenantBody(typ client.BackupType) client.BackupCreateRequest {
	return client.BackupCreateRequest{BackupType: typ, BackupScope: client.BackupScopeTENANT}
}

func restoreLogical(t *testing.T, svc *apitest.Service, tenant string, id openapi_types.UUID) string {
	t.Helper()
	ctx := context.Background()
	hk, err := svc.App.Store.TenantHK(ctx, tenant)
	require.NoError(t, err)
	chain, err := svc.App.Backups.OpenChain(ctx, hk, uuid.UUID(id))
	require.NoError(t, err)
	target := pgtest.Server(t).NewDatabase(t)
	_, err = svc.App.Backups.RestoreLogical(ctx, chain, target)
	require.NoError(t, err)
	return target
}

func TestTenantBackupChain(t *testing.T) {
	ctx := context.Background()
	_, managed := managedDB(t, 4<<20)
	x := &tester{t: t, svc: apitest.Start(t, apitest.Options{Workers: 2, ManagedURL: managed})}
	acme := apitest.Token(t, "alice", []string{"acme"}, auth.RoleAdmin)

	full := x.completed("acme", acme, tenantBody(client.BackupTypeFULL))
	t.Run("a completed FULL shows its size, stored size, duration and rows", func(t *testing.T) {
		require.NotNil(t, full.Result)
		require.Positive(t, full.Result.SizeBytes)
		require.Positive(t, full.Result.StoredSizeBytes)
		require.Positive(t, *full.Result.RowCount)
		require.Nil(t, full.Result.ParentBackupId)
		require.NotNil(t, full.ExpiresAt)
	})
	t.Run("the FULL restores exactly acme's rows and none of globex's", func(t *testing.T) {
		target := restoreLogical(t, x.svc, "acme", full.BackupId)
		require.Equal(t, tableSums(t, managed, "acme"), tableSums(t, target, ""))
		for table, sum := range tableSums(t, target, "globex") {
			require.True(t, strings.HasPrefix(sum, "0:"), "%s holds globex rows: %s", table, sum)
		}
	})

	_, err := demodata.Generate(ctx, managed, demodata.Options{Tenants: []string{"acme", "globex"}, Size: 1 << 20})
	require.NoError(t, err)
	_, err = demodata.Change(ctx, managed, 0.02)
	require.NoError(t, err)
	incr := x.completed("acme", acme, tenantBody(client.BackupTypeINCREMENTAL))
	t.Run("an INCREMENTAL builds on the FULL and takes fewer rows", func(t *testing.T) {
		require.Equal(t, full.BackupId, *incr.Result.ParentBackupId)
		require.Less(t, *incr.Result.RowCount, *full.Result.RowCount)
	})

	_, err = demodata.Generate(ctx, managed, demodata.Options{Tenants: []string{"acme", "globex"}, Size: 1 << 20})
	require.NoError(t, err)
	incr2 := x.completed("acme", acme, tenantBody(client.BackupTypeINCREMENTAL))
	require.Equal(t, incr.BackupId, *incr2.Result.ParentBackupId)
	t.Run("FULL + INCREMENTAL + INCREMENTAL restores to the source's acme rows", func(t *testing.T) {
		target := restoreLogical(t, x.svc, "acme", incr2.BackupId)
		require.Equal(t, tableSums(t, managed, "acme"), tableSums(t, target, ""))
	})

	diff := x.completed("acme", acme, tenantBody(client.BackupTypeDIFFERENTIAL))
	t.Run("a DIFFERENTIAL builds on the FULL and FULL + DIFFERENTIAL restores", func(t *testing.T) {
		require.Equal(t, full.BackupId, *diff.Result.ParentBackupId)
		target := restoreLogical(t, x.svc, "acme", diff.BackupId)
		require.Equal(t, tableSums(t, managed, "acme"), tableSums(t, target, ""))
	})

	t.Run("the list filters by type and pages newest first", func(t *testing.T) {
		typ := client.BackupTypeINCREMENTAL
		r, err := x.svc.Client.ListBackupsWithResponse(ctx, &client.ListBackupsParams{XTenantID: "acme", BackupType: &typ}, apitest.As(acme))
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, r.StatusCode())
		require.Len(t, r.JSON200.Data.Backups, 2)
		require.Equal(t, incr2.BackupId, r.JSON200.Data.Backups[0].BackupId)
		size := 1
		r, err = x.svc.Client.ListBackupsWithResponse(ctx, &client.ListBackupsParams{XTenantID: "acme", PageSize: &size, Page: ptr(4)}, apitest.As(acme))
		require.NoError(t, err)
		require.Equal(t, full.BackupId, r.JSON200.Data.Backups[0].BackupId)
		require.Equal(t, 4, r.JSON200.Data.Pagination.TotalItems)
	})

	t.Run("globex cannot see acme's backups", func(t *testing.T) {
		globex := apitest.Token(t, "gary", []string{"globex"}, auth.RoleAdmin)
		r, err := x.svc.Client.GetBackupStatusWithResponse(ctx, full.BackupId, &client.GetBackupStatusParams{XTenantID: "globex"}, apitest.As(globex))
		require.NoError(t, err)
		require.Equal(t, http.StatusNotFound, r.StatusCode())
		v, err := x.svc.Client.VerifyBackupWithResponse(ctx, full.BackupId, &client.VerifyBackupParams{XTenantID: "globex"}, apitest.As(globex))
		require.NoError(t, err)
		require.Equal(t, http.StatusNotFound, v.StatusCode())
	})
}

func ptr[T any](v T) *T { return &v }

func TestSchemaBackup(t *testing.T) {
	_, managed := managedDB(t, 2<<20)
	x := &tester{t: t, svc: apitest.Start(t, apitest.Options{Workers: 2, ManagedURL: managed})}
	acme := apitest.Token(t, "alice", []string{"acme"}, auth.RoleAdmin)
	s := x.completed("acme", acme, client.BackupCreateRequest{BackupType: client.BackupTypeFULL,
		BackupScope: client.BackupScopeSCHEMA, SchemaName: ptr("healthcare")})
	t.Run("a SCHEMA backup restores every row of the schema", func(t *testing.T) {
		target := restoreLogical(t, x.svc, "acme", s.BackupId)
		require.Equal(t, tableSums(t, managed, ""), tableSums(t, target, ""))
	})
	t.Run("a schema that does not exist fails with the reason", func(t *testing.T) {
		e := x.create("acme", acme, client.BackupCreateRequest{BackupType: client.BackupTypeFULL,
			BackupScope: client.BackupScopeSCHEMA, SchemaName: ptr("nothing_here")})
		st := x.wait("acme", acme, e.BackupId, client.BackupExecutionStatusFAILED, client.BackupExecutionStatusCOMPLETED)
		require.Equal(t, client.BackupExecutionStatusFAILED, st.Status)
		require.Contains(t, *st.ErrorMessage, "nothing_here")
	})
}

func TestSystemBackupChain(t *testing.T) {
	ctx := context.Background()
	_, managed := managedDB(t, 8<<20)
	x := &tester{t: t, svc: apitest.Start(t, apitest.Options{Workers: 2, ManagedURL: managed})}
	admin := apitest.Token(t, "pat", []string{"acme"}, auth.RolePlatformAdmin)
	body := func(typ client.BackupType) client.BackupCreateRequest {
		return client.BackupCreateRequest{BackupType: typ, BackupScope: client.BackupScopeSYSTEM}
	}
	full := x.completed("platform", admin, body(client.BackupTypeFULL))
	require.NotNil(t, full.Result.StartLsn)
	require.NotNil(t, full.Result.EndLsn)

	_, err := demodata.Change(ctx, managed, 0.01)
	require.NoError(t, err)
	diff := x.completed("platform", admin, body(client.BackupTypeDIFFERENTIAL))
	_, err = demodata.Generate(ctx, managed, demodata.Options{Tenants: []string{"acme"}, Size: 1 << 20})
	require.NoError(t, err)
	incr := x.completed("platform", admin, body(client.BackupTypeINCREMENTAL))
	require.Equal(t, diff.BackupId, *incr.Result.ParentBackupId)
	want := tableSums(t, managed, "")

	t.Run("a delta stores far less than the FULL", func(t *testing.T) {
		require.Less(t, diff.Result.StoredSizeBytes, full.Result.StoredSizeBytes/2)
	})

	t.Run("FULL + DIFFERENTIAL + INCREMENTAL restores into a new instance that holds the source's rows", func(t *testing.T) {
		hk, err := x.svc.App.Store.TenantHK(ctx, "platform")
		require.NoError(t, err)
		chain, err := x.svc.App.Backups.OpenChain(ctx, hk, uuid.UUID(incr.BackupId))
		require.NoError(t, err)
		require.Len(t, chain.Manifests, 3)
		dir := filepath.Join(t.TempDir(), "restored")
		require.NoError(t, x.svc.App.Backups.RestoreSystem(ctx, chain, dir, nil))
		c, err := pgcluster.New(pgcluster.Options{DataDir: dir, Settings: managedSettings})
		require.NoError(t, err)
		require.NoError(t, c.Start(ctx))
		defer c.Stop(context.Background())
		dbName := managed[strings.LastIndex(managed, "/")+1 : strings.Index(managed, "?")]
		require.Equal(t, want, tableSums(t, c.URL(dbName), ""))
	})

	t.Run("a SYSTEM backup needs platform_admin and the platform tenant", func(t *testing.T) {
		acmeAdmin := apitest.Token(t, "alice", []string{"acme"}, auth.RoleAdmin)
		r, err := x.svc.Client.CreateBackupWithResponse(ctx, &client.CreateBackupParams{XTenantID: "acme"}, body(client.BackupTypeFULL), apitest.As(acmeAdmin))
		require.NoError(t, err)
		require.Equal(t, http.StatusForbidden, r.StatusCode())
		r, err = x.svc.Client.CreateBackupWithResponse(ctx, &client.CreateBackupParams{XTenantID: "acme"}, body(client.BackupTypeFULL), apitest.As(admin))
		require.NoError(t, err)
		require.Equal(t, http.StatusUnprocessableEntity, r.StatusCode(), string(r.Body))
		require.Contains(t, r.JSON422.Error.Message, "platform")
	})
}

func TestVerifyDetectsCorruption(t *testing.T) {
	ctx := context.Background()
	_, managed := managedDB(t, 2<<20)
	x := &tester{t: t, svc: apitest.Start(t, apitest.Options{Workers: 2, ManagedURL: managed})}
	acme := apitest.Token(t, "alice", []string{"acme"}, auth.RoleAdmin)
	body := tenantBody(client.BackupTypeFULL)
	body.VerifyBackup = ptr(true)
	e := x.create("acme", acme, body)
	s := x.wait("acme", acme, e.BackupId, client.BackupExecutionStatusVERIFIED, client.BackupExecutionStatusVERIFYFAILED, client.BackupExecutionStatusFAILED)
	t.Run("verifyBackup verifies a fresh backup and it passes", func(t *testing.T) {
		require.Equal(t, client.BackupExecutionStatusVERIFIED, s.Status)
		require.Equal(t, client.VerificationStatusPASSED, s.Verification.Status)
		require.Empty(t, s.Verification.Findings)
	})

	// Flip one byte in the middle of the largest object.
	dir := filepath.Join(x.svc.Config.StoragePath, e.BackupId.String())
	var victim string
	var biggest int64
	require.NoError(t, filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && strings.HasSuffix(p, ".age") && info.Size() > biggest {
			victim, biggest = p, info.Size()
		}
		return err
	}))
	require.NotEmpty(t, victim)
	f, err := os.OpenFile(victim, os.O_RDWR, 0)
	require.NoError(t, err)
	b := make([]byte, 1)
	_, err = f.ReadAt(b, biggest/2)
	require.NoError(t, err)
	b[0] ^= 0x01
	_, err = f.WriteAt(b, biggest/2)
	require.NoError(t, err)
	require.NoError(t, f.Close())

	t.Run("a single flipped byte fails verification naming the object", func(t *testing.T) {
		v, err := x.svc.Client.VerifyBackupWithResponse(ctx, e.BackupId, &client.VerifyBackupParams{XTenantID: "acme"}, apitest.As(acme))
		require.NoError(t, err)
		require.Equal(t, http.StatusAccepted, v.StatusCode(), string(v.Body))
		s := x.wait("acme", acme, e.BackupId, client.BackupExecutionStatusVERIFYFAILED)
		require.Equal(t, client.VerificationStatusFAILED, s.Verification.Status)
		require.Len(t, s.Verification.Findings, 1)
		rel, _ := filepath.Rel(dir, victim)
		require.True(t, strings.HasPrefix(rel, s.Verification.Findings[0].Object), "finding %+v, file %s", s.Verification.Findings[0], rel)
	})
}

func TestBackupRefusals(t *testing.T) {
	ctx := context.Background()
	x := &tester{t: t, svc: apitest.Start(t, apitest.Options{})}
	acme := apitest.Token(t, "alice", []string{"acme"}, auth.RoleAdmin)
	try := func(body client.BackupCreateRequest) *client.CreateBackupResponse {
		r, err := x.svc.Client.CreateBackupWithResponse(ctx, &client.CreateBackupParams{XTenantID: "acme"}, body, apitest.As(acme))
		require.NoError(t, err)
		return r
	}
	t.Run("SCHEMA scope refuses DIFFERENTIAL and says what is supported", func(t *testing.T) {
		r := try(client.BackupCreateRequest{BackupType: client.BackupTypeDIFFERENTIAL, BackupScope: client.BackupScopeSCHEMA, SchemaName: ptr("healthcare")})
		require.Equal(t, http.StatusUnprocessableEntity, r.StatusCode(), string(r.Body))
		require.Contains(t, r.JSON422.Error.Message, "FULL only")
	})
	t.Run("an INCREMENTAL with nothing to build on is refused", func(t *testing.T) {
		r := try(tenantBody(client.BackupTypeINCREMENTAL))
		require.Equal(t, http.StatusUnprocessableEntity, r.StatusCode(), string(r.Body))
		require.Contains(t, r.JSON422.Error.Message, "FULL first")
	})
	t.Run("a storage location that leaves the repository is refused", func(t *testing.T) {
		for _, loc := range []string{"../elsewhere", "/etc", "a/../../b", "wal", "wal/000000010000000000000001"} {
			body := tenantBody(client.BackupTypeFULL)
			body.StorageLocation = &loc
			r := try(body)
			require.Equal(t, http.StatusBadRequest, r.StatusCode(), "%s: %s", loc, r.Body)
			require.Equal(t, "storageLocation", *(*r.JSON400.Error.Details)[0].Field)
		}
	})
	t.Run("nothing was recorded by a refused request", func(t *testing.T) {
		var n int
		require.NoError(t, x.svc.App.Store.Pool.QueryRow(ctx, "SELECT count(*) FROM hub_backup_execution").Scan(&n))
		require.Zero(t, n)
	})
}

func TestManyBackupsComplete(t *testing.T) {
	_, managed := managedDB(t, 1<<20)
	x := &tester{t: t, svc: apitest.Start(t, apitest.Options{Workers: 4, ManagedURL: managed})}
	toks := map[string]string{
		"acme":   apitest.Token(t, "alice", []string{"acme"}, auth.RoleAdmin),
		"globex": apitest.Token(t, "gary", []string{"globex"}, auth.RoleAdmin),
	}
	var mu sync.Mutex
	var ids []struct {
		tenant string
		id     openapi_types.UUID
	}
	var wg sync.WaitGroup
	for i := range 100 {
		tenant := []string{"acme", "globex"}[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := x.create(tenant, toks[tenant], tenantBody(client.BackupTypeFULL))
			mu.Lock()
			ids = append(ids, struct {
				tenant string
				id     openapi_types.UUID
			}{tenant, e.BackupId})
			mu.Unlock()
		}()
	}
	wg.Wait()
	t.Run("100 TENANT backups requested at once all complete", func(t *testing.T) {
		require.Len(t, ids, 100)
		for _, b := range ids {
			s := x.wait(b.tenant, toks[b.tenant], b.id, client.BackupExecutionStatusCOMPLETED, client.BackupExecutionStatusFAILED)
			require.Equal(t, client.BackupExecutionStatusCOMPLETED, s.Status, "%v", s.ErrorMessage)
		}
	})
}

func TestRetention(t *testing.T) {
	ctx := context.Background()
	_, managed := managedDB(t, 1<<20)
	x := &tester{t: t, svc: apitest.Start(t, apitest.Options{Workers: 2, ManagedURL: managed})}
	acme := apitest.Token(t, "alice", []string{"acme"}, auth.RoleAdmin)
	short := tenantBody(client.BackupTypeFULL)
	short.RetentionPeriod = ptr("PT1S")
	lone := x.completed("acme", acme, short)
	base := x.completed("acme", acme, short)
	long := tenantBody(client.BackupTypeINCREMENTAL)
	long.RetentionPeriod = ptr("P30D")
	child := x.completed("acme", acme, long)
	require.Equal(t, base.BackupId, *child.Result.ParentBackupId)
	time.Sleep(1500 * time.Millisecond)
	_, err := x.svc.App.Backups.Expire(ctx)
	require.NoError(t, err)

	t.Run("an expired backup nothing depends on is deleted and shows EXPIRED with its history", func(t *testing.T) {
		s := x.status("acme", acme, lone.BackupId)
		require.Equal(t, client.BackupExecutionStatusEXPIRED, s.Status)
		require.Equal(t, lone.Result.SizeBytes, s.Result.SizeBytes)
		_, err := os.Stat(filepath.Join(x.svc.Config.StoragePath, lone.BackupId.String()))
		require.True(t, os.IsNotExist(err))
	})
	t.Run("an expired FULL that a retained INCREMENTAL builds on is kept", func(t *testing.T) {
		s := x.status("acme", acme, base.BackupId)
		require.Equal(t, client.BackupExecutionStatusCOMPLETED, s.Status)
		_, err := os.Stat(filepath.Join(x.svc.Config.StoragePath, base.BackupId.String()))
		require.NoError(t, err)
		target := restoreLogical(t, x.svc, "acme", child.BackupId)
		require.NotEmpty(t, tableSums(t, target, ""))
	})
}

// TestKilledWorker kills the process running a backup (SIGKILL, mid-backup) and checks that the
// backup is never reported COMPLETED by that attempt, that it is recorded FAILED, and that its
// retry by another process completes into a restorable backup.
func TestKilledWorker(t *testing.T) {
	ctx := context.Background()
	_, managed := managedDB(t, 48<<20)
	x := &tester{t: t, svc: apitest.Start(t, apitest.Options{ManagedURL: managed})} // the API only
	admin := apitest.Token(t, "pat", []string{"acme"}, auth.RolePlatformAdmin)

	cfg := x.svc.Config
	cfg.BackupWorkers = 1
	worker := apitest.StartReplica(t, cfg)

	e := x.create("platform", admin, client.BackupCreateRequest{BackupType: client.BackupTypeFULL, BackupScope: client.BackupScopeSYSTEM})
	deadline := time.Now().Add(2 * time.Minute)
	for {
		s := x.status("platform", admin, e.BackupId)
		if s.Status == client.BackupExecutionStatusRUNNING && s.Progress != nil && s.Progress.BytesDone > 0 {
			break
		}
		require.NotEqual(t, client.BackupExecutionStatusCOMPLETED, s.Status, "the backup finished before it could be killed")
		require.True(t, time.Now().Before(deadline), "the worker never started the backup")
		time.Sleep(10 * time.Millisecond)
	}
	require.NoError(t, worker.Process.Kill())
	_ = worker.Wait()

	t.Run("the killed attempt is not reported completed and left nothing that looks complete", func(t *testing.T) {
		time.Sleep(time.Second)
		s := x.status("platform", admin, e.BackupId)
		require.Equal(t, client.BackupExecutionStatusRUNNING, s.Status)
		_, err := os.Stat(filepath.Join(cfg.StoragePath, e.BackupId.String(), "manifest.json"))
		require.True(t, os.IsNotExist(err), "a killed backup must not look complete")
	})

	// Another process takes the job over once it is taken for dead.
	cfg.RescueAfter = 2 * time.Second
	retry := apitest.StartWith(t, cfg)
	_ = retry
	s := x.wait("platform", admin, e.BackupId, client.BackupExecutionStatusCOMPLETED)

	t.Run("the interrupted attempt is recorded FAILED and the retry completes", func(t *testing.T) {
		require.Equal(t, client.BackupExecutionStatusCOMPLETED, s.Status)
		rows, err := x.svc.App.Store.Pool.Query(ctx, `SELECT s.status, s.attempt, coalesce(s.error_message, '')
			FROM sat_backup_execution_status s JOIN hub_backup_execution h USING (backup_hk)
			WHERE h.backup_bk = $1 ORDER BY s.load_date`, uuid.UUID(e.BackupId))
		require.NoError(t, err)
		var history []string
		for rows.Next() {
			var status, msg string
			var attempt int
			require.NoError(t, rows.Scan(&status, &attempt, &msg))
			history = append(history, fmt.Sprintf("%s/%d", status, attempt))
			if status == "FAILED" {
				require.Contains(t, msg, "interrupted")
			}
		}
		require.Equal(t, []string{"QUEUED/0", "RUNNING/1", "FAILED/1", "RUNNING/2", "COMPLETED/2"}, history)
	})
	t.Run("the retried backup restores", func(t *testing.T) {
		hk, err := x.svc.App.Store.TenantHK(ctx, "platform")
		require.NoError(t, err)
		chain, err := x.svc.App.Backups.OpenChain(ctx, hk, uuid.UUID(e.BackupId))
		require.NoError(t, err)
		require.NoError(t, x.svc.App.Backups.RestoreSystem(ctx, chain, filepath.Join(t.TempDir(), "r"), nil))
	})
}
