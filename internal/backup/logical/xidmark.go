package logical

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// XidRange is an inclusive range of 64-bit transaction ids (xid8), written in JSON as
// [first, last].
type XidRange [2]uint64

// xidSnapshot is a pg_snapshot: every transaction id below xmin had ended when it was taken,
// none from xmax on had started, and xip were running in between. Like pg_current_snapshot()
// it holds no subtransaction ids, which is why the visibility of an id between xmin and xmax
// is not read from it (see visibleXids).
type xidSnapshot struct {
	xmin, xmax uint64
	xip        []uint64
}

// mayReadOldRowsAsNew reports whether a row read in this snapshot may carry an xmin whose
// low 32 bits are those of an id below the snapshot's xmax but which was assigned 2^32 ids
// or more before it: a frozen row, whose xmin PostgreSQL keeps as it was. That takes a
// cluster that has used more than 2^32 ids (the first normal id is 3).
func (s xidSnapshot) mayReadOldRowsAsNew() bool { return s.xmax > 1<<32+3 }

// parseXidSnapshot reads the text form of a pg_snapshot, "xmin:xmax:xip,xip,...".
func parseXidSnapshot(s string) (xidSnapshot, error) {
	var snap xidSnapshot
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return snap, fmt.Errorf("logical: invalid snapshot %q", s)
	}
	var err error
	if snap.xmin, err = strconv.ParseUint(parts[0], 10, 64); err != nil {
		return snap, fmt.Errorf("logical: invalid snapshot %q: %w", s, err)
	}
	if snap.xmax, err = strconv.ParseUint(parts[1], 10, 64); err != nil {
		return snap, fmt.Errorf("logical: invalid snapshot %q: %w", s, err)
	}
	if snap.xmin > snap.xmax {
		return snap, fmt.Errorf("logical: invalid snapshot %q: xmin after xmax", s)
	}
	if parts[2] != "" {
		for _, p := range strings.Split(parts[2], ",") {
			x, err := strconv.ParseUint(p, 10, 64)
			if err != nil {
				return snap, fmt.Errorf("logical: invalid snapshot %q: %w", s, err)
			}
			snap.xip = append(snap.xip, x)
		}
	}
	return snap, nil
}

// xidSet collects the transaction ids of the rows a backup reads that are at or after its
// snapshot's xmin: the ids between xmin and xmax that the snapshot sees, since every row it
// reads is visible to it.
type xidSet map[uint64]struct{}

// ranges returns the set as sorted, merged ranges, which is compact for the runs of
// consecutive ids that a busy loader leaves.
func (s xidSet) ranges() []XidRange {
	ids := make([]uint64, 0, len(s))
	for x := range s {
		ids = append(ids, x)
	}
	slices.Sort(ids)
	var out []XidRange
	for _, x := range ids {
		if n := len(out); n > 0 && out[n-1][1]+1 == x {
			out[n-1][1] = x
			continue
		}
		out = append(out, XidRange{x, x})
	}
	return out
}

// containsXid reports whether x is in the sorted ranges.
func containsXid(ranges []XidRange, x uint64) bool {
	i, _ := slices.BinarySearchFunc(ranges, x, func(r XidRange, x uint64) int {
		switch {
		case r[1] < x:
			return -1
		case r[0] > x:
			return 1
		}
		return 0
	})
	return i < len(ranges) && ranges[i][0] <= x && x <= ranges[i][1]
}

// parentMark is what a DIFFERENTIAL or INCREMENTAL needs of its parent to take the rows the
// parent did not see: the parent's snapshot and the ids in it that the parent saw.
type parentMark struct {
	snap    xidSnapshot
	visible []XidRange
}

// sawXid reports whether the parent saw the rows of transaction x (which a row that the
// child reads committed). Below the parent's xmin every transaction had ended, so a row
// that is there now was there then; from xmax on none had started. In between, the
// transaction was seen exactly when the parent read a row of it: a transaction's rows are
// visible together, and the parent read every row of the tenant that it could see (this
// holds for subtransactions too, which pg_visible_in_snapshot cannot tell).
func (p *parentMark) sawXid(x uint64) bool {
	switch {
	case x < p.snap.xmin:
		return true
	case x >= p.snap.xmax:
		return false
	}
	return containsXid(p.visible, x)
}

// rowXidExpr is the SQL expression of a row's xmin as a 64-bit transaction id, or 0 for the
// permanent ids (1 bootstrap, 2 frozen) that PostgreSQL before 9.4 wrote into frozen rows.
// xmin is the low 32 bits only; the row was committed before the backup's snapshot, so its
// full id is the latest one below the snapshot's xmax with those low bits: xmax - d with
// d = (low(xmax) - xmin) mod 2^32 in 1..2^32. It is exact for every row not frozen, whose
// xmin PostgreSQL keeps within 2^31 of the next id; see the package documentation for the
// frozen rows.
func rowXidExpr(xmax uint64) string {
	return fmt.Sprintf("(CASE WHEN xmin::text::bigint < 3 THEN 0 ELSE %d - ((%d - xmin::text::bigint + 4294967295) %% 4294967296 + 1) END)",
		xmax, xmax&0xffffffff)
}

// clusterIdentity names the cluster and the WAL timeline that a snapshot's transaction ids
// belong to. Ids are comparable only along one history: a point-in-time recovery or a
// failover (a new timeline) may give the same ids to other transactions, and another
// cluster (a dump restored elsewhere) numbers its own. On a primary the timeline is the one
// WAL is written on (the first 8 digits of its file name); a standby, where that cannot be
// asked, answers its last restartpoint's.
func clusterIdentity(ctx context.Context, tx pgx.Tx) (systemID string, timeline int, err error) {
	err = tx.QueryRow(ctx, `SELECT (SELECT system_identifier::text FROM pg_control_system()),
		CASE WHEN pg_is_in_recovery() THEN (SELECT timeline_id FROM pg_control_checkpoint())
		     ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END`).Scan(&systemID, &timeline)
	if err != nil {
		return "", 0, fmt.Errorf("logical: reading the cluster's identity: %w", err)
	}
	return systemID, timeline, nil
}

// tableStorage returns, for each table, its storage identity: the oid and relfilenode of it
// and of every partition, in oid order. A rewrite (VACUUM FULL, CLUSTER, TRUNCATE, an ALTER
// TABLE that rewrites) gives a table a new relfilenode and can give its rows new xmins; a
// partition attached or detached changes which rows the table has. Either way the table's
// rows no longer follow from the parent's by transaction id, so a changed identity makes the
// next backup take the table whole.
func tableStorage(ctx context.Context, tx pgx.Tx, tables []tenantTable) (map[[2]string]string, error) {
	names := make([]string, len(tables))
	for i, t := range tables {
		names[i] = quoteQualified(t.schema, t.name)
	}
	rows, err := tx.Query(ctx, `
SELECT n, (SELECT string_agg(r::oid::text || ':' || coalesce(pg_relation_filenode(r)::text, '-'), ',' ORDER BY r::oid)
           FROM (SELECT n::regclass UNION SELECT relid FROM pg_partition_tree(n::regclass)) t(r))
FROM unnest($1::text[]) n`, names)
	if err != nil {
		return nil, fmt.Errorf("logical: reading the tables' storage: %w", err)
	}
	byName := map[string]string{}
	for rows.Next() {
		var name, id string
		if err := rows.Scan(&name, &id); err != nil {
			rows.Close()
			return nil, fmt.Errorf("logical: reading the tables' storage: %w", err)
		}
		byName[name] = id
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("logical: reading the tables' storage: %w", err)
	}
	out := make(map[[2]string]string, len(tables))
	for i, t := range tables {
		out[[2]string{t.schema, t.name}] = byName[names[i]]
	}
	return out, nil
}

// chainBreak says why the parent's transaction ids cannot be compared with this backup's,
// or "" when they can.
func chainBreak(parent *TenantManifest, systemID string, timeline int) string {
	switch {
	case parent.XidSnapshot == "":
		return "the parent backup was made before backups recorded their snapshot: every table is taken whole, and the next backup continues from this one"
	case parent.SystemID != systemID:
		return "the parent backup is of another cluster (system identifier " + parent.SystemID + "): every table is taken whole"
	case parent.Timeline != timeline:
		return fmt.Sprintf("the cluster changed timeline since the parent backup (%d, now %d: a point-in-time recovery or a failover): every table is taken whole",
			parent.Timeline, timeline)
	}
	return ""
}

// splitRowXid cuts the transaction id that the backup's query appends to every row off its
// COPY text line.
func splitRowXid(line []byte) (data []byte, xid uint64, err error) {
	i := bytes.LastIndexByte(line, '\t')
	if i < 0 {
		return nil, 0, errors.New("a row without its transaction id")
	}
	xid, err = strconv.ParseUint(string(line[i+1:]), 10, 64)
	if err != nil {
		return nil, 0, fmt.Errorf("a row with transaction id %q: %w", line[i+1:], err)
	}
	return line[:i], xid, nil
}
