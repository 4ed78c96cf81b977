package vault_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/onevault/readiness/internal/pgtest"
	"github.com/onevault/readiness/internal/vault"
)

func TestHashKey(t *testing.T) {
	ctx := context.Background()
	url := pgtest.Server(t).NewDatabaseFrom(t, "migrated", vault.Migrate)
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(ctx) })

	t.Run("is what the hash_key SQL function computes, for one part and for several", func(t *testing.T) {
		for _, parts := range [][]string{{"acme"}, {"  Globex "}, {"tenant001"}, {"ACME"}, {"acme", "patient-7"}, {" a ", "B", ""}} {
			var want []byte
			require.NoError(t, conn.QueryRow(ctx, "SELECT hash_key(VARIADIC $1::text[])", parts).Scan(&want))
			require.Equal(t, want, vault.HashKey(parts...), "%q", parts)
		}
	})
	t.Run("ignores surrounding spaces and case, and tells keys apart", func(t *testing.T) {
		require.Equal(t, vault.HashKey("acme"), vault.HashKey(" ACME "))
		require.NotEqual(t, vault.HashKey("acme"), vault.HashKey("globex"))
		require.NotEqual(t, vault.HashKey("a", "b"), vault.HashKey("a||b", ""), "the separator is part of the key")
	})
}
