package logical

import (
	"context"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/onevault/readiness/internal/pgtest"
)

func TestParseXidSnapshot(t *testing.T) {
	s, err := parseXidSnapshot("4294967300:4294967310:4294967301,4294967305")
	require.NoError(t, err)
	require.Equal(t, xidSnapshot{xmin: 4294967300, xmax: 4294967310, xip: []uint64{4294967301, 4294967305}}, s)
	s, err = parseXidSnapshot("750:750:")
	require.NoError(t, err)
	require.Equal(t, xidSnapshot{xmin: 750, xmax: 750}, s)
	for _, bad := range []string{"", "1:2", "3:2:", "a:2:", "1:2:x", "1:2:3:4"} {
		_, err := parseXidSnapshot(bad)
		require.Error(t, err, bad)
	}
}

func TestXidRanges(t *testing.T) {
	set := xidSet{}
	for _, x := range []uint64{12, 10, 11, 20, 1 << 33, 1<<33 + 1, 15} {
		set[x] = struct{}{}
	}
	ranges := set.ranges()
	require.Equal(t, []XidRange{{10, 12}, {15, 15}, {20, 20}, {1 << 33, 1<<33 + 1}}, ranges)
	for x, want := range map[uint64]bool{9: false, 10: true, 11: true, 12: true, 13: false, 15: true, 16: false,
		20: true, 21: false, 1 << 33: true, 1<<33 + 1: true, 1<<33 + 2: false} {
		require.Equal(t, want, containsXid(ranges, x), "%d", x)
	}
	require.False(t, containsXid(nil, 10))
	require.Empty(t, xidSet{}.ranges())
}

func TestParentSawXid(t *testing.T) {
	// xmin 100, xmax 110; 100 and 105 were running (and 107, a subtransaction of 100 that
	// the snapshot does not list); the parent read rows of 101-103 and 108.
	p := parentMark{snap: xidSnapshot{xmin: 100, xmax: 110, xip: []uint64{100, 105}}, visible: []XidRange{{101, 103}, {108, 108}}}
	for x, want := range map[uint64]bool{3: true, 99: true, 100: false, 101: true, 103: true, 104: false, 105: false,
		107: false, 108: true, 109: false, 110: false, 1 << 40: false} {
		require.Equal(t, want, p.sawXid(x), "%d", x)
	}
}

func TestRowXidExpr(t *testing.T) {
	url := pgtest.Server(t).NewDatabase(t)
	conn, err := pgx.Connect(t.Context(), url)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	full := func(xmax uint64, xmin uint32) uint64 {
		t.Helper()
		var got uint64
		require.NoError(t, conn.QueryRow(t.Context(), "SELECT "+rowXidExpr(xmax)+" FROM (SELECT $1::text::xid AS xmin) r",
			strconv.FormatUint(uint64(xmin), 10)).Scan(&got))
		return got
	}
	const epoch = 1 << 32
	t.Run("in the first epoch an id is itself", func(t *testing.T) {
		require.Equal(t, uint64(3), full(1000, 3))
		require.Equal(t, uint64(999), full(1000, 999))
	})
	t.Run("just after the counter went round, ids on both sides of the turn", func(t *testing.T) {
		require.Equal(t, uint64(epoch+5), full(epoch+10, 5))
		require.Equal(t, uint64(epoch+9), full(epoch+10, 9))
		require.Equal(t, uint64(4294967290), full(epoch+10, 4294967290), "the previous epoch's last ids")
		require.Equal(t, uint64(10), full(epoch+10, 10), "the low bits of xmax itself are 2^32 back")
	})
	t.Run("in a later epoch, within 2^31 either side of the low bits", func(t *testing.T) {
		xmax := uint64(3*epoch + 1<<31)
		require.Equal(t, uint64(3*epoch+1<<31-1), full(xmax, 1<<31-1))
		require.Equal(t, uint64(2*epoch+1<<31+5), full(xmax, 1<<31+5))
	})
	t.Run("the permanent ids of rows frozen before 9.4 are before every snapshot", func(t *testing.T) {
		require.Zero(t, full(epoch+10, 1))
		require.Zero(t, full(epoch+10, 2))
	})
	t.Run("a row's id is the one its transaction had", func(t *testing.T) {
		var inserted uint64
		var snap string
		_, err := conn.Exec(t.Context(), "CREATE TABLE r AS SELECT pg_current_xact_id()::text::bigint AS x")
		require.NoError(t, err)
		require.NoError(t, conn.QueryRow(t.Context(), "SELECT x, pg_current_snapshot()::text FROM r").Scan(&inserted, &snap))
		s, err := parseXidSnapshot(snap)
		require.NoError(t, err)
		var got uint64
		require.NoError(t, conn.QueryRow(t.Context(), "SELECT "+rowXidExpr(s.xmax)+" FROM r").Scan(&got))
		require.Equal(t, inserted, got)
	})
}
