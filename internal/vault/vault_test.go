package vault_test

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/onevault/readiness/gen/db"
	"github.com/onevault/readiness/internal/pgtest"
	"github.com/onevault/readiness/internal/vault"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestRowLevelSecurity(t *testing.T) {
	ctx := context.Background()
	url := pgtest.Server(t).NewDatabaseFrom(t, "migrated", vault.Migrate)
	s, err := vault.Open(ctx, url)
	require.NoError(t, err)
	t.Cleanup(s.Close)

	for _, tenant := range []string{"acme", "globex"} {
		_, err := s.Queries().TenantCreate(ctx, db.TenantCreateParams{TenantBk: tenant, DisplayName: tenant,
			ChangedBy: "test", RecordSource: "test"})
		require.NoError(t, err)
	}
	acme, err := s.TenantHK(ctx, "acme")
	require.NoError(t, err)
	globex, err := s.TenantHK(ctx, "globex")
	require.NoError(t, err)

	id := uuid.New()
	require.NoError(t, s.InTenant(ctx, acme, func(q *db.Queries) error {
		if err := q.ScheduleHubInsert(ctx, db.ScheduleHubInsertParams{ScheduleBk: id, TenantHk: acme, RecordSource: "test"}); err != nil {
			return err
		}
		return q.ScheduleDefinitionInsert(ctx, db.ScheduleDefinitionInsertParams{TenantHk: acme, Version: 1,
			Change: "CREATED", ChangedBy: "t", RecordSource: "test", ScheduleBk: id, ScheduleName: "n",
			BackupType: "FULL", BackupScope: "TENANT", CronExpression: "0 1 * * *", Timezone: "UTC",
			RetentionPeriod: "P1D", Recipients: []string{}, Enabled: true})
	}))

	t.Run("a query with another tenant's filter inside a tenant transaction sees nothing", func(t *testing.T) {
		require.NoError(t, s.InTenant(ctx, globex, func(q *db.Queries) error {
			rows, err := q.ScheduleHistory(ctx, db.ScheduleHistoryParams{TenantHk: acme, ScheduleBk: id})
			require.Empty(t, rows)
			return err
		}))
	})

	t.Run("the owning tenant sees its row", func(t *testing.T) {
		require.NoError(t, s.InTenant(ctx, acme, func(q *db.Queries) error {
			rows, err := q.ScheduleHistory(ctx, db.ScheduleHistoryParams{TenantHk: acme, ScheduleBk: id})
			require.Len(t, rows, 1)
			return err
		}))
	})

	t.Run("a tenant transaction cannot write another tenant's row", func(t *testing.T) {
		err := s.InTenant(ctx, globex, func(q *db.Queries) error {
			return q.ScheduleHubInsert(ctx, db.ScheduleHubInsertParams{ScheduleBk: uuid.New(), TenantHk: acme, RecordSource: "test"})
		})
		require.ErrorContains(t, err, "row-level security")
	})

	t.Run("an unknown tenant is not registered", func(t *testing.T) {
		_, err := s.TenantHK(ctx, "initech")
		require.ErrorIs(t, err, vault.ErrTenantNotRegistered)
	})
}
