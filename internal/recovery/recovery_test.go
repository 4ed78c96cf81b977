package recovery_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	openapi_types "github.com/oapi-codegen/runtime/types"
	"github.com/stretchr/testify/require"

	"github.com/onevault/readiness/gen/client"
	"github.com/onevault/readiness/internal/apitest"
	"github.com/onevault/readiness/internal/auth"
	"github.com/onevault/readiness/internal/pgcluster"
	"github.com/onevault/readiness/internal/pgtest"
	"github.com/onevault/readiness/internal/storage"
	"github.com/onevault/readiness/internal/vault"
	"github.com/onevault/readiness/internal/wal"
)

func TestMain(m *testing.M) {
	// PostgreSQL runs this test binary as `readiness wal-push` and `wal-fetch`.
	wal.RunIfAsked()
	pgtest.Main(m)
}

// archivingCluster starts a managed cluster that archives its WAL into repo with wal-push.
func archivingCluster(t *testing.T, repo, key string) (*pgcluster.Cluster, string) {
	return managedCluster(t, repo, key, true)
}

// managedCluster starts a managed cluster whose recovered instances fetch WAL from repo; with
// archiving it archives its WAL there with wal-push, else only the service's receiver can.
func managedCluster(t *testing.T, repo, key string, archiving bool) (*pgcluster.Cluster, string) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	bin, keyFile := filepath.Join(dir, "bin", "readiness"), filepath.Join(dir, "key", "age.key")
	archive, restore := wal.Commands(bin, repo, keyFile)
	settings := map[string]string{"wal_level": "replica", "max_wal_senders": "10"}
	if archiving {
		settings["archive_mode"], settings["archive_command"] = "on", archive
	}
	c, err := pgcluster.New(pgcluster.Options{DataDir: filepath.Join(dir, "data"), Settings: settings})
	require.NoError(t, err)
	_, err = wal.Install(c, wal.InstallOptions{Bin: bin, RepoPath: repo, KeyFile: keyFile, Key: key})
	require.NoError(t, err)
	require.NoError(t, c.Start(ctx))
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	return c, restore
}

func TestPointInTimeRecovery(t *testing.T) {
	ctx := context.Background()
	key, err := storage.GenerateKey()
	require.NoError(t, err)
	repo := t.TempDir()
	c, restore := archivingCluster(t, repo, key)
	svc := apitest.Start(t, apitest.Options{Workers: 1, ManagedURL: c.URL("postgres"), StoragePath: repo,
		EncryptionKey: key, RestoreCommand: restore})
	pat := apitest.As(apitest.Token(t, "pat", []string{"acme"}, auth.RolePlatformAdmin))
	quinn := apitest.As(apitest.Token(t, "quinn", []string{"acme"}, auth.RolePlatformAdmin))

	managed, err := pgx.Connect(ctx, c.URL("postgres"))
	require.NoError(t, err)
	defer managed.Close(ctx)
	_, err = managed.Exec(ctx, "CREATE TABLE marker (id int PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())")
	require.NoError(t, err)
	// A One Vault-like tenant table: each marker is also a row of acme and a row of globex.
	_, err = managed.Exec(ctx, `CREATE TABLE visit (tenant_hk bytea NOT NULL, id int NOT NULL,
		load_date timestamptz NOT NULL DEFAULT clock_timestamp(), PRIMARY KEY (tenant_hk, id))`)
	require.NoError(t, err)

	// SYSTEM backups between markers committed at T1 < T2 < target < T3: a FULL, T1, a
	// DIFFERENTIAL, T2, an INCREMENTAL, the target, T3.
	backupNow := func(typ client.BackupType) openapi_types.UUID {
		b, err := svc.Client.CreateBackupWithResponse(ctx, &client.CreateBackupParams{XTenantID: "platform"},
			client.BackupCreateRequest{BackupType: typ, BackupScope: client.BackupScopeSYSTEM}, pat)
		require.NoError(t, err)
		require.Equal(t, http.StatusAccepted, b.StatusCode(), string(b.Body))
		id := b.JSON202.Data.BackupId
		require.Eventually(t, func() bool {
			r, err := svc.Client.GetBackupStatusWithResponse(ctx, id, &client.GetBackupStatusParams{XTenantID: "platform"}, pat)
			return err == nil && r.JSON200 != nil && r.JSON200.Data.Status == client.BackupExecutionStatusCOMPLETED
		}, 2*time.Minute, 200*time.Millisecond)
		return id
	}
	full := backupNow(client.BackupTypeFULL)
	insert := func(id int) {
		_, err := managed.Exec(ctx, "INSERT INTO marker (id) VALUES ($1)", id)
		require.NoError(t, err)
		for _, tenant := range []string{"acme", "globex"} {
			_, err := managed.Exec(ctx, "INSERT INTO visit (tenant_hk, id) VALUES ($1, $2)", vault.HashKey(tenant), id)
			require.NoError(t, err)
		}
		time.Sleep(1100 * time.Millisecond)
	}
	insert(1)
	diff := backupNow(client.BackupTypeDIFFERENTIAL)
	insert(2)
	incr := backupNow(client.BackupTypeINCREMENTAL)
	target := time.Now()
	time.Sleep(1100 * time.Millisecond)
	insert(3)
	_, err = managed.Exec(ctx, "SELECT pg_switch_wal()")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		commit, err := wal.LatestCommit(ctx, wal.Config{RepoPath: repo, KeyFile: filepath.Join(t.TempDir(), "none"),
			Key: mustKey(t, key)}, 1, 8)
		return err == nil && commit.Time.After(target)
	}, time.Minute, 500*time.Millisecond, "the commit after the target never reached the archive")

	walCfg := wal.Config{RepoPath: repo, Key: mustKey(t, key)}
	segs, err := wal.Segments(ctx, walCfg, 1)
	require.NoError(t, err)
	t3Segment := segs[len(segs)-1] // holds the commit after the target, closed by the switch

	ask := func(body client.PointInTimeRecoveryRequest, as client.RequestEditorFn) *client.CreatePointInTimeRecoveryResponse {
		r, err := svc.Client.CreatePointInTimeRecoveryWithResponse(ctx, &client.CreatePointInTimeRecoveryParams{XTenantID: "platform"}, body, as)
		require.NoError(t, err)
		return r
	}

	t.Run("preflight refuses a target in the future", func(t *testing.T) {
		r := ask(client.PointInTimeRecoveryRequest{TargetTimestamp: time.Now().Add(time.Hour), RecoveryTarget: "instance:later"}, pat)
		require.Equal(t, http.StatusUnprocessableEntity, r.StatusCode(), string(r.Body))
		require.Contains(t, r.JSON422.Error.Message, "future")
		require.Equal(t, "targetTimestamp", apitest.RequireEnvelope(t, r.Body).Error.Details[0].Field)
	})
	t.Run("preflight refuses a target before the backup's consistent point", func(t *testing.T) {
		r := ask(client.PointInTimeRecoveryRequest{TargetTimestamp: target.Add(-time.Hour), RecoveryTarget: "instance:early",
			SourceBackupId: &full}, pat)
		require.Equal(t, http.StatusUnprocessableEntity, r.StatusCode(), string(r.Body))
		require.Contains(t, r.JSON422.Error.Message, "consistent point")
	})
	t.Run("preflight refuses a target after the archived WAL", func(t *testing.T) {
		r := ask(client.PointInTimeRecoveryRequest{TargetTimestamp: time.Now().Add(-100 * time.Millisecond), RecoveryTarget: "instance:edge"}, pat)
		require.Equal(t, http.StatusUnprocessableEntity, r.StatusCode(), string(r.Body))
		require.Contains(t, r.JSON422.Error.Message, "outside the archived WAL")
	})

	r := ask(client.PointInTimeRecoveryRequest{TargetTimestamp: target, RecoveryTarget: "instance:restored"}, pat)
	require.Equal(t, http.StatusAccepted, r.StatusCode(), string(r.Body))
	rec := r.JSON202.Data
	require.Equal(t, client.RecoveryStatusPENDINGAPPROVAL, rec.Status)
	require.Equal(t, []openapi_types.UUID{full, diff, incr}, rec.SourceBackupIds, "the newest chain before the target")
	require.Equal(t, client.RecoveryMethodWALREPLAY, rec.RecoveryMethod)
	require.Equal(t, incr, *rec.BackupUsed)
	require.WithinDuration(t, target, *rec.RestoredTo, time.Microsecond, "WAL replay reaches the target itself")

	approve := func(as client.RequestEditorFn, tenant string) *client.ApproveRecoveryResponse {
		r, err := svc.Client.ApproveRecoveryWithResponse(ctx, rec.RecoveryId, &client.ApproveRecoveryParams{XTenantID: tenant},
			client.RecoveryApprovalRequest{ApprovalNotes: "checked with the incident lead"}, as)
		require.NoError(t, err)
		return r
	}
	t.Run("the requester cannot approve their own recovery", func(t *testing.T) {
		require.Equal(t, http.StatusForbidden, approve(pat, "platform").StatusCode())
	})
	t.Run("another tenant's approver does not find it", func(t *testing.T) {
		globex := apitest.As(apitest.Token(t, "gail", []string{"globex"}, auth.RoleAdmin))
		require.Equal(t, http.StatusNotFound, approve(globex, "globex").StatusCode())
	})
	t.Run("another approver approves it, once", func(t *testing.T) {
		a := approve(quinn, "platform")
		require.Equal(t, http.StatusOK, a.StatusCode(), string(a.Body))
		require.Equal(t, "quinn", *a.JSON200.Data.ApprovedBy)
		require.Equal(t, http.StatusConflict, approve(quinn, "platform").StatusCode())
	})

	done := awaitRecovery(t, svc, rec.RecoveryId, "platform", pat)
	require.Equal(t, client.RecoveryStatusCOMPLETED, done.Status, "error: %v", done.ErrorMessage)

	markers := func(t *testing.T, op client.RecoveryOperation) []int {
		require.NotNil(t, op.ConnectionString)
		conn, err := pgx.Connect(ctx, *op.ConnectionString)
		require.NoError(t, err)
		defer conn.Close(ctx)
		rows, err := conn.Query(ctx, "SELECT id FROM marker ORDER BY id")
		require.NoError(t, err)
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int])
		require.NoError(t, err)
		var inRecovery bool
		require.NoError(t, conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery))
		require.False(t, inRecovery, "the instance is promoted")
		return ids
	}
	t.Run("recovered from the FULL+DIFF+INCR chain, the instance holds exactly the rows committed up to the target", func(t *testing.T) {
		require.Equal(t, []int{1, 2}, markers(t, done))
		require.NotNil(t, done.RtoSeconds)
		stopInstance(t, *done.ConnectionString)
	})

	t.Run("recovered from the FULL alone, the instance holds exactly the same rows", func(t *testing.T) {
		r := ask(client.PointInTimeRecoveryRequest{TargetTimestamp: target, RecoveryTarget: "instance:fromfull",
			SourceBackupId: &full, ApprovalRequired: ptr(false)}, pat)
		require.Equal(t, http.StatusAccepted, r.StatusCode(), string(r.Body))
		require.Equal(t, []openapi_types.UUID{full}, r.JSON202.Data.SourceBackupIds)
		op := awaitRecovery(t, svc, r.JSON202.Data.RecoveryId, "platform", pat)
		require.Equal(t, client.RecoveryStatusCOMPLETED, op.Status, "error: %v", op.ErrorMessage)
		require.Equal(t, []int{1, 2}, markers(t, op))
		stopInstance(t, *op.ConnectionString)
	})

	t.Run("a pending recovery can be rejected by another approver", func(t *testing.T) {
		p := ask(client.PointInTimeRecoveryRequest{TargetTimestamp: target, RecoveryTarget: "instance:other"}, pat)
		require.Equal(t, http.StatusAccepted, p.StatusCode(), string(p.Body))
		j, err := svc.Client.RejectRecoveryWithResponse(ctx, p.JSON202.Data.RecoveryId, &client.RejectRecoveryParams{XTenantID: "platform"},
			client.RecoveryRejectionRequest{RejectionReason: "wrong target"}, quinn)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, j.StatusCode(), string(j.Body))
		require.Equal(t, client.RecoveryStatusREJECTED, j.JSON200.Data.Status)
		require.Equal(t, "wrong target", *j.JSON200.Data.RejectionReason)
	})

	t.Run("a tenant's rows as of the target are recovered into a new database, without another tenant's", func(t *testing.T) {
		acme := apitest.As(apitest.Token(t, "alice", []string{"acme"}, auth.RoleAdmin))
		r, err := svc.Client.CreatePointInTimeRecoveryWithResponse(ctx, &client.CreatePointInTimeRecoveryParams{XTenantID: "acme"},
			client.PointInTimeRecoveryRequest{TargetTimestamp: target, RecoveryTarget: "database:acme_at_target",
				ApprovalRequired: ptr(false)}, acme)
		require.NoError(t, err)
		require.Equal(t, http.StatusAccepted, r.StatusCode(), string(r.Body))
		op := awaitRecovery(t, svc, r.JSON202.Data.RecoveryId, "acme", acme)
		require.Equal(t, client.RecoveryStatusCOMPLETED, op.Status, "error: %v", op.ErrorMessage)
		conn, err := pgx.Connect(ctx, *op.ConnectionString)
		require.NoError(t, err)
		defer conn.Close(ctx)
		rows, err := conn.Query(ctx, "SELECT id FROM visit WHERE tenant_hk = $1 ORDER BY id", vault.HashKey("acme"))
		require.NoError(t, err)
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int])
		require.NoError(t, err)
		require.Equal(t, []int{1, 2}, ids, "acme's rows committed up to the target")
		var others int
		require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM visit WHERE tenant_hk <> $1", vault.HashKey("acme")).Scan(&others))
		require.Zero(t, others, "no row of another tenant")
		matches, _ := filepath.Glob(filepath.Join(svc.Config.RecoveryDataPath, "acme_at_target-*"))
		require.Empty(t, matches, "the temporary instance is gone")
	})

	t.Run("preflight refuses a target that archived WAL follows without a commit", func(t *testing.T) {
		idle := time.Now()
		time.Sleep(200 * time.Millisecond)
		// A checkpoint writes WAL but commits nothing; the switch sends it to the archive.
		_, err := managed.Exec(ctx, "CHECKPOINT")
		require.NoError(t, err)
		_, err = managed.Exec(ctx, "SELECT pg_switch_wal()")
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			now, err := wal.Segments(ctx, walCfg, 1)
			return err == nil && len(now) > len(segs)
		}, time.Minute, 200*time.Millisecond)
		r := ask(client.PointInTimeRecoveryRequest{TargetTimestamp: idle, RecoveryTarget: "instance:idle", SourceBackupId: &full}, pat)
		require.Equal(t, http.StatusUnprocessableEntity, r.StatusCode(), string(r.Body))
		require.Contains(t, r.JSON422.Error.Message, "no commit follows")
	})

	t.Run("preflight refuses a target beyond a segment missing from the archive", func(t *testing.T) {
		record := filepath.Join(repo, "wal", "00000001", t3Segment+".json")
		require.NoError(t, os.Rename(record, record+".away"))
		defer func() { require.NoError(t, os.Rename(record+".away", record)) }()
		r := ask(client.PointInTimeRecoveryRequest{TargetTimestamp: target, RecoveryTarget: "instance:gap", SourceBackupId: &full}, pat)
		require.Equal(t, http.StatusUnprocessableEntity, r.StatusCode(), string(r.Body))
		require.Contains(t, r.JSON422.Error.Message, "outside the archived WAL")
		require.Contains(t, r.JSON422.Error.Message, t3Segment+" is missing")
	})

	t.Run("a recovery whose instance cannot start ends FAILED with PostgreSQL's reason and leaves nothing running", func(t *testing.T) {
		p := ask(client.PointInTimeRecoveryRequest{TargetTimestamp: target, RecoveryTarget: "instance:broken"}, pat)
		require.Equal(t, http.StatusAccepted, p.StatusCode(), string(p.Body))
		// The archive is lost between the request and its approval: replay cannot reach the target.
		require.NoError(t, os.RemoveAll(filepath.Join(repo, "wal")))
		id := p.JSON202.Data.RecoveryId
		a, err := svc.Client.ApproveRecoveryWithResponse(ctx, id, &client.ApproveRecoveryParams{XTenantID: "platform"},
			client.RecoveryApprovalRequest{ApprovalNotes: "go"}, quinn)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, a.StatusCode(), string(a.Body))
		op := awaitRecovery(t, svc, id, "platform", pat)
		require.Equal(t, client.RecoveryStatusFAILED, op.Status)
		require.NotNil(t, op.ErrorMessage)
		require.Contains(t, *op.ErrorMessage, "recovery", "PostgreSQL's reason is in the message")
		matches, _ := filepath.Glob(filepath.Join(svc.Config.RecoveryDataPath, "broken-*", "postmaster.pid"))
		require.Empty(t, matches, "no instance is left running")
	})
}

// TestPointInTimeRecoveryFromStreamedWAL recovers to a target whose following commit is only in
// the segment the service's WAL receiver is streaming: no archive_command, no segment switch.
func TestPointInTimeRecoveryFromStreamedWAL(t *testing.T) {
	ctx := context.Background()
	key, err := storage.GenerateKey()
	require.NoError(t, err)
	repo := t.TempDir()
	c, restore := managedCluster(t, repo, key, false)
	svc := apitest.Start(t, apitest.Options{Workers: 1, ManagedURL: c.URL("postgres"), StoragePath: repo,
		EncryptionKey: key, RestoreCommand: restore, WALStream: true})
	pat := apitest.As(apitest.Token(t, "pat", []string{"acme"}, auth.RolePlatformAdmin))

	managed, err := pgx.Connect(ctx, c.URL("postgres"))
	require.NoError(t, err)
	defer managed.Close(ctx)
	_, err = managed.Exec(ctx, "CREATE TABLE marker (id int PRIMARY KEY)")
	require.NoError(t, err)
	b, err := svc.Client.CreateBackupWithResponse(ctx, &client.CreateBackupParams{XTenantID: "platform"},
		client.BackupCreateRequest{BackupType: client.BackupTypeFULL, BackupScope: client.BackupScopeSYSTEM}, pat)
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, b.StatusCode(), string(b.Body))
	require.Eventually(t, func() bool {
		r, err := svc.Client.GetBackupStatusWithResponse(ctx, b.JSON202.Data.BackupId, &client.GetBackupStatusParams{XTenantID: "platform"}, pat)
		return err == nil && r.JSON200 != nil && r.JSON200.Data.Status == client.BackupExecutionStatusCOMPLETED
	}, 2*time.Minute, 200*time.Millisecond)

	insert := func(id int) {
		_, err := managed.Exec(ctx, "INSERT INTO marker (id) VALUES ($1)", id)
		require.NoError(t, err)
		time.Sleep(1100 * time.Millisecond)
	}
	insert(1)
	insert(2)
	target := time.Now()
	time.Sleep(1100 * time.Millisecond)
	insert(3)
	walCfg := wal.Config{RepoPath: repo, Key: mustKey(t, key)}
	require.Eventually(t, func() bool {
		commit, err := wal.LatestCommit(ctx, walCfg, 1, 4)
		return err == nil && commit.Time.After(target)
	}, 30*time.Second, 200*time.Millisecond, "the commit after the target never reached the archive by streaming")
	st, err := wal.Check(ctx, walCfg, "")
	require.NoError(t, err)
	require.NotNil(t, st.Timelines[0].Streamed, "the newest WAL is in the streamed partial")

	r, err := svc.Client.CreatePointInTimeRecoveryWithResponse(ctx, &client.CreatePointInTimeRecoveryParams{XTenantID: "platform"},
		client.PointInTimeRecoveryRequest{TargetTimestamp: target, RecoveryTarget: "instance:streamed", ApprovalRequired: ptr(false)}, pat)
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, r.StatusCode(), string(r.Body))
	done := awaitRecovery(t, svc, r.JSON202.Data.RecoveryId, "platform", pat)
	require.Equal(t, client.RecoveryStatusCOMPLETED, done.Status, "error: %v", done.ErrorMessage)
	conn, err := pgx.Connect(ctx, *done.ConnectionString)
	require.NoError(t, err)
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT id FROM marker ORDER BY id")
	require.NoError(t, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int])
	require.NoError(t, err)
	require.Equal(t, []int{1, 2}, ids)
	stopInstance(t, *done.ConnectionString)
}

// awaitRecovery polls a recovery's status until it has ended, COMPLETED or FAILED.
func awaitRecovery(t *testing.T, svc *apitest.Service, id openapi_types.UUID, tenant string, as client.RequestEditorFn) client.RecoveryOperation {
	t.Helper()
	var op client.RecoveryOperation
	require.Eventually(t, func() bool {
		g, err := svc.Client.GetRecoveryStatusWithResponse(context.Background(), id, &client.GetRecoveryStatusParams{XTenantID: tenant}, as)
		if err != nil || g.JSON200 == nil {
			return false
		}
		op = g.JSON200.Data
		return op.Status == client.RecoveryStatusCOMPLETED || op.Status == client.RecoveryStatusFAILED
	}, 4*time.Minute, 200*time.Millisecond)
	return op
}

func ptr[T any](v T) *T { return &v }

func mustKey(t *testing.T, s string) *storage.Key {
	k, err := storage.ParseKey(s)
	require.NoError(t, err)
	return k
}

// stopInstance stops the recovered instance the test made, found by its data directory.
func stopInstance(t *testing.T, connString string) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, connString)
	require.NoError(t, err)
	var dir string
	require.NoError(t, conn.QueryRow(ctx, "SHOW data_directory").Scan(&dir))
	conn.Close(ctx)
	c, err := pgcluster.New(pgcluster.Options{DataDir: dir})
	require.NoError(t, err)
	require.NoError(t, c.Stop(ctx))
}
