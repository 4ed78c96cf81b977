package pgstat_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/onevault/readiness/internal/pgstat"
	"github.com/onevault/readiness/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func connect(t *testing.T) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), pgtest.Server(t).NewDatabase(t))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestReadArchiver(t *testing.T) {
	ctx := context.Background()
	conn := connect(t)
	a, err := pgstat.ReadArchiver(ctx, conn)
	require.NoError(t, err)

	var mode string
	var segSize int64
	require.NoError(t, conn.QueryRow(ctx, "SELECT current_setting('archive_mode'), setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'").Scan(&mode, &segSize))
	require.Equal(t, mode, a.ArchiveMode)
	require.Equal(t, segSize, a.SegmentSize)
	require.False(t, a.InRecovery)
	require.GreaterOrEqual(t, a.ArchivedCount, int64(0))
	if a.ArchivedCount == 0 {
		require.Empty(t, a.LastArchivedWAL, "NULL is read as empty")
		require.Nil(t, a.SecondsSinceArchive)
	}

	pos, err := pgstat.ReadWALPosition(ctx, conn)
	require.NoError(t, err)
	require.Regexp(t, `^[0-9A-F]+/[0-9A-F]+$`, pos.InsertLSN)
	require.Regexp(t, `^[0-9A-F]{24}$`, pos.WALFile)
}

func TestReadPhysicalSlots(t *testing.T) {
	ctx := context.Background()
	conn := connect(t)
	const name = "pgstat_test_slot"
	_, err := conn.Exec(ctx, "SELECT pg_create_physical_replication_slot($1, true)", name)
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = conn.Exec(context.Background(), "SELECT pg_drop_replication_slot($1)", name) })

	slots, err := pgstat.ReadPhysicalSlots(ctx, conn)
	require.NoError(t, err)
	var found *pgstat.Slot
	for i := range slots {
		if slots[i].Name == name {
			found = &slots[i]
		}
	}
	require.NotNil(t, found, "the slot is listed: %+v", slots)
	require.False(t, found.Active)
	require.NotEmpty(t, found.RestartLSN, "a slot made with immediately_reserve keeps WAL from now")
	require.NotNil(t, found.BehindBytes)
	require.GreaterOrEqual(t, *found.BehindBytes, int64(0))
}
