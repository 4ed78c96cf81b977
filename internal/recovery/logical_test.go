package recovery_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
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
	"github.com/onevault/readiness/internal/pgtest"
	"github.com/onevault/readiness/internal/vault"
)

// tenantSums is each One Vault table's row count and content checksum for one tenant (all rows
// when tenant is ""): what a user compares to trust a restore.
func tenantSums(t *testing.T, url, tenant string) map[string]string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(ctx)
	out := map[string]string{}
	for _, table := range demodata.TenantTables() { // reference data has no tenant column: not in a TENANT backup
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

// dbName is a database name no other test of the server uses.
func dbName(prefix string) string {
	return prefix + "_" + strings.ReplaceAll(uuid.NewString()[:8], "-", "")
}

// TestTenantBackupRecovery restores a tenant's own TENANT backups through the API: no SYSTEM
// backup exists, as for a tenant whose platform takes none.
func TestTenantBackupRecovery(t *testing.T) {
	ctx := context.Background()
	srv := pgtest.Server(t)
	managed := srv.NewDatabase(t)
	require.NoError(t, demodata.Ensure(ctx, managed))
	_, err := demodata.Generate(ctx, managed, demodata.Options{Tenants: []string{"acme", "globex"}, Size: 2 << 20})
	require.NoError(t, err)
	svc := apitest.Start(t, apitest.Options{Workers: 1, ManagedURL: managed})
	alice := apitest.As(apitest.Token(t, "alice", []string{"acme"}, auth.RoleAdmin))
	quinn := apitest.As(apitest.Token(t, "quinn", []string{"acme"}, auth.RoleApprover))
	gail := apitest.As(apitest.Token(t, "gail", []string{"globex"}, auth.RoleAdmin))

	backupNow := func(typ client.BackupType) client.BackupStatus {
		t.Helper()
		b, err := svc.Client.CreateBackupWithResponse(ctx, &client.CreateBackupParams{XTenantID: "acme"},
			client.BackupCreateRequest{BackupType: typ, BackupScope: client.BackupScopeTENANT}, alice)
		require.NoError(t, err)
		require.Equal(t, http.StatusAccepted, b.StatusCode(), string(b.Body))
		var st client.BackupStatus
		require.Eventually(t, func() bool {
			r, err := svc.Client.GetBackupStatusWithResponse(ctx, b.JSON202.Data.BackupId, &client.GetBackupStatusParams{XTenantID: "acme"}, alice)
			if err != nil || r.JSON200 == nil {
				return false
			}
			st = r.JSON200.Data
			return st.Status == client.BackupExecutionStatusCOMPLETED || st.Status == client.BackupExecutionStatusFAILED
		}, 2*time.Minute, 100*time.Millisecond)
		require.Equal(t, client.BackupExecutionStatusCOMPLETED, st.Status, "error: %v", st.ErrorMessage)
		return st
	}
	grow := func() {
		t.Helper()
		_, err := demodata.Generate(ctx, managed, demodata.Options{Tenants: []string{"acme", "globex"}, Size: 512 << 10})
		require.NoError(t, err)
		_, err = demodata.Change(ctx, managed, 0.02)
		require.NoError(t, err)
	}

	full := backupNow(client.BackupTypeFULL)
	grow()
	incr1 := backupNow(client.BackupTypeINCREMENTAL)
	atIncr1 := tenantSums(t, managed, "acme")
	time.Sleep(50 * time.Millisecond)
	between := time.Now()
	time.Sleep(50 * time.Millisecond)
	grow()
	incr2 := backupNow(client.BackupTypeINCREMENTAL)
	require.Equal(t, incr1.BackupId, *incr2.Result.ParentBackupId)
	atIncr2 := tenantSums(t, managed, "acme")
	sb, err := svc.Client.CreateBackupWithResponse(ctx, &client.CreateBackupParams{XTenantID: "acme"},
		client.BackupCreateRequest{BackupType: client.BackupTypeFULL, BackupScope: client.BackupScopeSCHEMA, SchemaName: ptr("healthcare")}, alice)
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, sb.StatusCode(), string(sb.Body))
	schema := sb.JSON202.Data.BackupId
	require.Eventually(t, func() bool {
		r, err := svc.Client.GetBackupStatusWithResponse(ctx, schema, &client.GetBackupStatusParams{XTenantID: "acme"}, alice)
		return err == nil && r.JSON200 != nil && r.JSON200.Data.Status == client.BackupExecutionStatusCOMPLETED
	}, 2*time.Minute, 100*time.Millisecond)
	grow() // the source moves on after the last backup
	require.NotEqual(t, atIncr2, tenantSums(t, managed, "acme"))

	ask := func(tenant string, body client.PointInTimeRecoveryRequest, as client.RequestEditorFn) *client.CreatePointInTimeRecoveryResponse {
		t.Helper()
		r, err := svc.Client.CreatePointInTimeRecoveryWithResponse(ctx, &client.CreatePointInTimeRecoveryParams{XTenantID: tenant}, body, as)
		require.NoError(t, err)
		return r
	}

	first := dbName("acme_incr2")
	t.Run("FULL + INCR + INCR named by the last INCR is restored, after approval, into a new database holding acme's rows at that INCR", func(t *testing.T) {
		r := ask("acme", client.PointInTimeRecoveryRequest{TargetTimestamp: time.Now(), RecoveryTarget: "database:" + first,
			SourceBackupId: &incr2.BackupId}, alice)
		require.Equal(t, http.StatusAccepted, r.StatusCode(), string(r.Body))
		op := r.JSON202.Data
		require.Equal(t, client.RecoveryStatusPENDINGAPPROVAL, op.Status)
		require.Equal(t, client.RecoveryMethodLOGICALBACKUP, op.RecoveryMethod)
		require.Equal(t, []openapi_types.UUID{full.BackupId, incr1.BackupId, incr2.BackupId}, op.SourceBackupIds)
		require.Equal(t, incr2.BackupId, *op.BackupUsed)
		require.NotNil(t, op.RestoredTo)
		require.False(t, op.RestoredTo.After(*incr2.CompletedAt), "the snapshot is taken before the backup completes")
		require.True(t, op.RestoredTo.After(*incr1.CompletedAt))

		self, err := svc.Client.ApproveRecoveryWithResponse(ctx, op.RecoveryId, &client.ApproveRecoveryParams{XTenantID: "acme"},
			client.RecoveryApprovalRequest{ApprovalNotes: "mine"}, alice)
		require.NoError(t, err)
		require.Equal(t, http.StatusForbidden, self.StatusCode(), "the requester cannot approve")
		a, err := svc.Client.ApproveRecoveryWithResponse(ctx, op.RecoveryId, &client.ApproveRecoveryParams{XTenantID: "acme"},
			client.RecoveryApprovalRequest{ApprovalNotes: "restore for the audit"}, quinn)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, a.StatusCode(), string(a.Body))

		done := awaitRecovery(t, svc, op.RecoveryId, "acme", alice)
		require.Equal(t, client.RecoveryStatusCOMPLETED, done.Status, "error: %v", done.ErrorMessage)
		require.Equal(t, op.RestoredTo.UTC(), done.RestoredTo.UTC())
		require.NotNil(t, done.RtoSeconds)
		require.NotNil(t, done.ConnectionString)
		require.Contains(t, *done.ConnectionString, "/"+first)
		require.Equal(t, atIncr2, tenantSums(t, *done.ConnectionString, ""), "acme's rows at the INCR, and nobody else's")

		rows, err := svc.App.Store.Pool.Query(ctx, `SELECT operation || ' ' || subject || ' ' || outcome FROM audit_log
			WHERE tenant_bk = 'acme' AND (resource_id = $1 OR path LIKE '%' || $1 || '%') ORDER BY seq`, op.RecoveryId.String())
		require.NoError(t, err)
		audited, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		require.Equal(t, []string{"createPointInTimeRecovery alice 202", "approveRecovery alice 403", "approveRecovery quinn 200"}, audited,
			"the request and every decision are in the audit log")
	})

	t.Run("a target between two backups without sourceBackupId restores the older one and answers it, never the target", func(t *testing.T) {
		name := dbName("acme_between")
		r := ask("acme", client.PointInTimeRecoveryRequest{TargetTimestamp: between, RecoveryTarget: "database:" + name,
			ApprovalRequired: ptr(false)}, alice)
		require.Equal(t, http.StatusAccepted, r.StatusCode(), string(r.Body))
		op := r.JSON202.Data
		require.Equal(t, client.RecoveryStatusQUEUED, op.Status)
		require.Equal(t, client.RecoveryMethodLOGICALBACKUP, op.RecoveryMethod)
		require.Equal(t, []openapi_types.UUID{full.BackupId, incr1.BackupId}, op.SourceBackupIds)
		require.Equal(t, incr1.BackupId, *op.BackupUsed)
		require.True(t, op.RestoredTo.Before(between), "restoredTo %s is the backup's snapshot, before the target %s", op.RestoredTo, between)
		require.WithinDuration(t, between, op.TargetTimestamp, time.Microsecond, "the target asked for is kept as asked")

		done := awaitRecovery(t, svc, op.RecoveryId, "acme", alice)
		require.Equal(t, client.RecoveryStatusCOMPLETED, done.Status, "error: %v", done.ErrorMessage)
		require.Equal(t, incr1.BackupId, *done.BackupUsed)
		require.True(t, done.RestoredTo.Equal(*op.RestoredTo))
		require.Equal(t, atIncr1, tenantSums(t, *done.ConnectionString, ""))
	})

	t.Run("a SCHEMA backup is restored with acme's rows of the schema only, though it holds every tenant's", func(t *testing.T) {
		r := ask("acme", client.PointInTimeRecoveryRequest{TargetTimestamp: time.Now(), RecoveryTarget: "database:" + dbName("acme_schema"),
			SourceBackupId: &schema, ApprovalRequired: ptr(false)}, alice)
		require.Equal(t, http.StatusAccepted, r.StatusCode(), string(r.Body))
		require.Equal(t, []openapi_types.UUID{schema}, r.JSON202.Data.SourceBackupIds)
		done := awaitRecovery(t, svc, r.JSON202.Data.RecoveryId, "acme", alice)
		require.Equal(t, client.RecoveryStatusCOMPLETED, done.Status, "error: %v", done.ErrorMessage)
		require.Equal(t, atIncr2, tenantSums(t, *done.ConnectionString, ""), "acme's rows at the SCHEMA backup, and nobody else's")
	})

	t.Run("an existing database name is refused with 409 naming recoveryTarget", func(t *testing.T) {
		r := ask("acme", client.PointInTimeRecoveryRequest{TargetTimestamp: time.Now(), RecoveryTarget: "database:" + first,
			SourceBackupId: &incr2.BackupId}, alice)
		require.Equal(t, http.StatusConflict, r.StatusCode(), string(r.Body))
		e := apitest.RequireEnvelope(t, r.Body)
		require.Equal(t, "recoveryTarget", e.Error.Details[0].Field)
		require.Contains(t, e.Error.Message, first)
	})

	t.Run("another tenant's backup is not found: 404 naming sourceBackupId, without its details", func(t *testing.T) {
		r := ask("globex", client.PointInTimeRecoveryRequest{TargetTimestamp: time.Now(), RecoveryTarget: "database:" + dbName("stolen"),
			SourceBackupId: &incr2.BackupId}, gail)
		require.Equal(t, http.StatusNotFound, r.StatusCode(), string(r.Body))
		e := apitest.RequireEnvelope(t, r.Body)
		require.Equal(t, "sourceBackupId", e.Error.Details[0].Field)
		require.NotContains(t, string(r.Body), "acme")
		unknown := openapi_types.UUID(uuid.New())
		r = ask("acme", client.PointInTimeRecoveryRequest{TargetTimestamp: time.Now(), RecoveryTarget: "database:" + dbName("nothing"),
			SourceBackupId: &unknown}, alice)
		require.Equal(t, http.StatusNotFound, r.StatusCode(), string(r.Body))
	})

	t.Run("a target before the named backup's snapshot is refused with 422 naming targetTimestamp", func(t *testing.T) {
		r := ask("acme", client.PointInTimeRecoveryRequest{TargetTimestamp: between, RecoveryTarget: "database:" + dbName("early"),
			SourceBackupId: &incr2.BackupId}, alice)
		require.Equal(t, http.StatusUnprocessableEntity, r.StatusCode(), string(r.Body))
		e := apitest.RequireEnvelope(t, r.Body)
		require.Equal(t, "targetTimestamp", e.Error.Details[0].Field)
		require.Contains(t, e.Error.Message, "snapshot")
	})

	t.Run("a target before every backup is refused with 422 naming targetTimestamp", func(t *testing.T) {
		r := ask("acme", client.PointInTimeRecoveryRequest{TargetTimestamp: full.CreatedAt.Add(-time.Hour), RecoveryTarget: "database:" + dbName("before")}, alice)
		require.Equal(t, http.StatusUnprocessableEntity, r.StatusCode(), string(r.Body))
		e := apitest.RequireEnvelope(t, r.Body)
		require.Equal(t, "targetTimestamp", e.Error.Details[0].Field)
	})
}
