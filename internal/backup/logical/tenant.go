package logical

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
)

// DefaultTenantKeyColumn is the tenant key column of One Vault, used when neither
// TenantOptions.TenantKeyColumn nor the TENANT_KEY_COLUMN environment variable names one.
const DefaultTenantKeyColumn = "tenant_hk"

// loadDateColumn is the column that makes a table an insert-only Data Vault table, backed
// up incrementally, when its type is timestamptz or timestamp.
const loadDateColumn = "load_date"

// TenantOptions configures BackupTenant.
type TenantOptions struct {
	// ConnString is the managed database (One Vault), as a pgx connection string. The role
	// must be able to read every tenant table whole: row-level security is turned off for
	// the session, so a role it would apply to fails rather than back up a subset.
	ConnString string
	// TenantKeyColumn is the column that holds the tenant key. Empty means the
	// TENANT_KEY_COLUMN environment variable, or DefaultTenantKeyColumn.
	TenantKeyColumn string
	// TenantKey is the tenant's value in that column: its hash key, bytea in One Vault. For
	// a column of another type it is the value's text form.
	TenantKey []byte
	// Parent is the manifest of the backup that this one continues: nil for a FULL, the FULL
	// for a DIFFERENTIAL, the previous backup for an INCREMENTAL. Every table with a load_date
	// (an insert-only Data Vault table) then holds only the rows that the parent's snapshot
	// did not see (see the package documentation); other tables are taken whole, and so is
	// every table when the parent has no snapshot to continue from (TenantManifest.FullReason).
	Parent *TenantManifest
	// ExcludeSchemas are left out besides pg_catalog, information_schema and the other
	// pg_* schemas: the schemas of the service's own tables, when they share the database.
	ExcludeSchemas []string
	// BinDir holds pg_dump; empty means the machine's PostgreSQL binaries. pg_dump must be
	// of the server's major version or newer.
	BinDir string
	// Progress, when set, is called from BackupTenant's goroutine as the backup advances.
	Progress func(Progress)
}

// TenantManifest describes a TENANT backup: its objects and what is needed to restore and
// check them. It is meant to be stored as JSON next to the objects.
type TenantManifest struct {
	// PGVersion is the server's version number (server_version_num, e.g. 150020).
	PGVersion       int    `json:"pgVersion"`
	TenantKeyColumn string `json:"tenantKeyColumn"`
	// TenantKey is the tenant's key value (its hash key in One Vault), so that a chain of
	// backups can be checked to belong to one tenant.
	TenantKey []byte `json:"tenantKey"`
	// Snapshot is now() of the transaction that read every row: the backup is the state of
	// the tenant at that instant.
	Snapshot time.Time `json:"snapshotTime"`
	// ParentSnapshot is the Snapshot of the parent backup; nil for a FULL.
	ParentSnapshot *time.Time `json:"parentSnapshotTime,omitempty"`
	// XidSnapshot is pg_current_snapshot() of that transaction ("xmin:xmax:xip,..."), the
	// mark that the next DIFFERENTIAL or INCREMENTAL continues from. Backups made before it
	// was recorded have none, and their children take every table whole.
	XidSnapshot string `json:"xidSnapshot,omitempty"`
	// VisibleXids are the transaction ids from the snapshot's xmin up to its xmax whose rows
	// the snapshot saw, as sorted ranges: pg_snapshot holds no subtransaction ids, so which
	// of the ids in that window a backup saw is recorded rather than derived.
	VisibleXids []XidRange `json:"visibleXids,omitempty"`
	// SystemID and Timeline are the cluster's system identifier and WAL timeline at the
	// snapshot: transaction ids are compared only within one cluster and one timeline.
	SystemID string `json:"systemId,omitempty"`
	Timeline int    `json:"timeline,omitempty"`
	// FullReason says why a backup with a parent took every table whole; empty otherwise.
	FullReason string        `json:"fullReason,omitempty"`
	Tables     []TenantTable `json:"tables"`
	// DDLObject holds the pre-data definitions of every table in the backup and of every
	// object they need (extensions, types, domains, functions, sequences), from pg_dump
	// (plain SQL), preceded by CREATE SCHEMA IF NOT EXISTS for their schemas and followed by
	// the sequences' values.
	DDLObject string `json:"ddlObject"`
	// PostDDLObject holds their post-data definitions: indexes, constraints, triggers.
	PostDDLObject string `json:"postDdlObject"`
	// Rows is the number of rows in the backup, over all tables.
	Rows int64 `json:"rows"`
	// Bytes is the size of all objects, as written to the Sink (before compression).
	Bytes int64 `json:"bytes"`
}

// TenantTable is one table of a TENANT backup. A partitioned table is one entry, copied
// through its parent; its partitions have no entries of their own but are in the DDL.
type TenantTable struct {
	Schema string `json:"schema"`
	Name   string `json:"name"`
	// Object holds the rows taken, in COPY text format.
	Object string `json:"object"`
	// Columns are the columns in the object, in order. Generated columns are left out,
	// since they cannot be loaded.
	Columns []string `json:"columns"`
	Rows    int64    `json:"rows"`
	Bytes   int64    `json:"bytes"`
	// Incremental is true when the object holds only the rows that the parent's snapshot
	// did not see, to be appended on restore; false means all of the tenant's rows, which
	// replace the table's rows on restore.
	Incremental    bool   `json:"incremental"`
	LoadDateColumn string `json:"loadDateColumn,omitempty"`
	// HighWaterMark is the greatest load_date of the tenant's rows in this backup and its
	// parent (carried over when no row is new). It is nil when the table has no row yet or
	// has a load_date that cannot be ordered (NULL, infinity). It is for people reading the
	// manifest: rows are selected by transaction id, never by load_date, whose value says
	// when a transaction started, not when its rows became visible.
	HighWaterMark *time.Time `json:"highWaterMark,omitempty"`
	// StorageID is the oid and relfilenode of the table and of each of its partitions. When
	// it changed since the parent (a rewrite, a partition attached or detached), the table
	// is taken whole.
	StorageID string `json:"storageId,omitempty"`
	// MayRepeat is set on an incremental entry when the cluster has used more than 2^32
	// transaction ids: a frozen row that old may then read as new and be in the object
	// although the parent chain holds it, so the restore leaves out the rows of the object
	// that the table already holds.
	MayRepeat bool `json:"mayRepeat,omitempty"`
	// Checksum is the order-independent checksum of the rows taken (see the package
	// documentation).
	Checksum string `json:"checksum"`
}

// tenantTable is a table found in the managed database.
type tenantTable struct {
	schema, name  string
	partitioned   bool
	keyIsBytea    bool
	loadDate      string // empty when the table has no usable load_date
	loadDateTZ    bool
	columns       []string
	partitionNsp  []string // every partition, at any depth, for the DDL
	partitionName []string
}

// BackupTenant writes a logical backup of one tenant's rows to sink and returns its
// manifest. All rows are read in one REPEATABLE READ, READ ONLY transaction, and pg_dump
// reads the definitions in the same snapshot, so the backup is consistent.
//
// With a parent, the rows of an insert-only table are those whose inserting transaction the
// parent's snapshot did not see, whatever their load_date: a transaction that stamped
// load_date before the parent and committed after it is in this backup (see the package
// documentation for the method and its cost).
func BackupTenant(ctx context.Context, sink Sink, opts TenantOptions) (*TenantManifest, error) {
	column := opts.TenantKeyColumn
	if column == "" {
		column = os.Getenv("TENANT_KEY_COLUMN")
	}
	if column == "" {
		column = DefaultTenantKeyColumn
	}
	if len(opts.TenantKey) == 0 {
		return nil, errors.New("logical: TenantOptions.TenantKey is required")
	}
	if p := opts.Parent; p != nil && (p.TenantKeyColumn != column || !bytes.Equal(p.TenantKey, opts.TenantKey)) {
		return nil, fmt.Errorf("%w: it was taken for column %s and another key", ErrParentMismatch, p.TenantKeyColumn)
	}
	binDir, err := resolveBinDir(opts.BinDir)
	if err != nil {
		return nil, err
	}
	prog := &progress{fn: opts.Progress}
	prog.setPhase(PhasePrepare)

	conn, err := connect(ctx, opts.ConnString)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("logical: begin: %w", err)
	}
	// The transaction only reads; ending it either way is the same.
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()

	m := &TenantManifest{TenantKeyColumn: column, TenantKey: slices.Clone(opts.TenantKey)}
	if opts.Parent != nil {
		ps := opts.Parent.Snapshot
		m.ParentSnapshot = &ps
	}
	var snapshotID string
	// The first statement takes the transaction's snapshot, which pg_current_snapshot()
	// then describes: the rows read below are exactly the ones it sees.
	err = tx.QueryRow(ctx, "SELECT now(), pg_export_snapshot(), current_setting('server_version_num')::int, pg_current_snapshot()::text").
		Scan(&m.Snapshot, &snapshotID, &m.PGVersion, &m.XidSnapshot)
	if err != nil {
		return nil, fmt.Errorf("logical: starting the snapshot: %w", err)
	}
	m.Snapshot = m.Snapshot.UTC()
	snap, err := parseXidSnapshot(m.XidSnapshot)
	if err != nil {
		return nil, err
	}
	if m.SystemID, m.Timeline, err = clusterIdentity(ctx, tx); err != nil {
		return nil, err
	}
	var mark *parentMark
	if opts.Parent != nil {
		if m.FullReason = chainBreak(opts.Parent, m.SystemID, m.Timeline); m.FullReason == "" {
			ps, err := parseXidSnapshot(opts.Parent.XidSnapshot)
			if err != nil {
				return nil, fmt.Errorf("logical: the parent's snapshot: %w", err)
			}
			mark = &parentMark{snap: ps, visible: opts.Parent.VisibleXids}
		}
	}

	tables, err := listTenantTables(ctx, tx, column, opts.ExcludeSchemas)
	if err != nil {
		return nil, err
	}
	if len(tables) == 0 {
		return nil, fmt.Errorf("%w %q", ErrNoTenantTables, column)
	}
	// Keep the tables from being dropped or altered until the backup ends, as pg_dump does.
	var lock strings.Builder
	for i, t := range tables {
		if i > 0 {
			lock.WriteString(", ")
		}
		lock.WriteString(quoteQualified(t.schema, t.name))
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE "+lock.String()+" IN ACCESS SHARE MODE"); err != nil {
		return nil, fmt.Errorf("logical: locking the tenant tables: %w", err)
	}

	storage, err := tableStorage(ctx, tx, tables)
	if err != nil {
		return nil, err
	}
	parentTables := map[[2]string]*TenantTable{}
	if mark != nil {
		for i := range opts.Parent.Tables {
			pt := &opts.Parent.Tables[i]
			parentTables[[2]string{pt.Schema, pt.Name}] = pt
		}
	}
	plans := make([]tablePlan, len(tables))
	var estimate int64
	for i, t := range tables {
		key := [2]string{t.schema, t.name}
		plans[i] = planTable(t, column, opts.TenantKey, snap, storage[key], mark, parentTables[key])
		if err := plans[i].check(opts.TenantKey); err != nil {
			return nil, err
		}
		estimate += estimateBytes(ctx, tx, plans[i].selectSQL)
	}
	prog.setTotal(estimate)

	// pg_dump reads the definitions in the backup's snapshot while this connection copies the
	// rows, which hides its time (mostly catalog queries). Its output (definitions only) is
	// kept in memory and written to the sink after the data, so that the sink is used by one
	// goroutine only.
	deps, err := tenantDependencies(ctx, tx, tables)
	if err != nil {
		return nil, err
	}
	dumpCtx, cancelDump := context.WithCancel(ctx)
	ddl := startTenantDDL(dumpCtx, binDir, opts.ConnString, snapshotID, tables, deps)
	defer func() {
		cancelDump()
		<-ddl.done
	}()

	prog.setPhase(PhaseData)
	visible := xidSet{}
	for i, plan := range plans {
		name := fmt.Sprintf("table-%04d-%s.copy", i+1, safeObjectName(plan.t.schema+"."+plan.t.name))
		entry, err := copyTenantTable(ctx, tx.Conn(), sink, name, plan, visible, prog)
		if err != nil {
			return nil, err
		}
		m.Tables = append(m.Tables, entry)
		m.Rows += entry.Rows
		m.Bytes += entry.Bytes
	}

	m.VisibleXids = visible.ranges()

	prog.setPhase(PhaseDDL)
	<-ddl.done
	if ddl.err != nil {
		return nil, ddl.err
	}
	for _, d := range []struct {
		sql    []byte
		name   string
		object *string
	}{{ddl.pre, "pre-data.sql", &m.DDLObject}, {ddl.post, "post-data.sql", &m.PostDDLObject}} {
		obj, err := createObject(sink, d.name)
		if err != nil {
			return nil, err
		}
		if _, err := prog.writer(obj).Write(d.sql); err != nil {
			obj.abort(err)
			return nil, fmt.Errorf("logical: writing object %s: %w", d.name, err)
		}
		if err := obj.commit(); err != nil {
			return nil, err
		}
		*d.object = d.name
		m.Bytes += obj.n
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("logical: ending the snapshot: %w", err)
	}
	prog.finish()
	return m, nil
}

// listTenantTables returns the ordinary and partitioned tables that have the tenant key
// column, outside the system schemas and the excluded ones, by schema and name.
// Partitions are left out (their rows are read through their root) and so are tables that
// belong to an extension, which pg_dump would not define.
func listTenantTables(ctx context.Context, tx pgx.Tx, column string, exclude []string) ([]tenantTable, error) {
	const query = `
SELECT n.nspname, c.relname, c.relkind = 'p', k.atttypid = 'bytea'::regtype,
       coalesce(ld.attname, ''), coalesce(ld.atttypid = 'timestamptz'::regtype, false),
       ARRAY(SELECT a.attname::text FROM pg_attribute a
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
             ORDER BY a.attnum),
       ARRAY(SELECT pn.nspname::text FROM pg_partition_tree(c.oid) pt
             JOIN pg_class pc ON pc.oid = pt.relid JOIN pg_namespace pn ON pn.oid = pc.relnamespace
             WHERE pt.relid <> c.oid ORDER BY pt.level, pc.relname),
       ARRAY(SELECT pc.relname::text FROM pg_partition_tree(c.oid) pt
             JOIN pg_class pc ON pc.oid = pt.relid
             WHERE pt.relid <> c.oid ORDER BY pt.level, pc.relname)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute k ON k.attrelid = c.oid AND k.attname = $1 AND k.attnum > 0 AND NOT k.attisdropped
LEFT JOIN pg_attribute ld ON ld.attrelid = c.oid AND ld.attname = $2 AND ld.attnum > 0 AND NOT ld.attisdropped
     AND ld.atttypid IN ('timestamptz'::regtype, 'timestamp'::regtype)
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND c.relpersistence <> 't'
  AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema' AND n.nspname <> ALL ($3::text[])
  AND NOT EXISTS (SELECT FROM pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY n.nspname, c.relname`
	if exclude == nil {
		exclude = []string{}
	}
	rows, err := tx.Query(ctx, query, column, loadDateColumn, exclude)
	if err != nil {
		return nil, fmt.Errorf("logical: listing the tenant tables: %w", err)
	}
	tables, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (tenantTable, error) {
		var t tenantTable
		err := row.Scan(&t.schema, &t.name, &t.partitioned, &t.keyIsBytea, &t.loadDate, &t.loadDateTZ,
			&t.columns, &t.partitionNsp, &t.partitionName)
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("logical: listing the tenant tables: %w", err)
	}
	return tables, nil
}

// tablePlan is what BackupTenant takes of one table.
type tablePlan struct {
	t           tenantTable
	incremental bool
	storageID   string
	snap        xidSnapshot // this backup's
	mark        *parentMark // the parent's, for an incremental table
	parentHWM   *time.Time  // the parent's high-water mark, carried over
	selectSQL   string      // the table's columns, then the row's transaction id
}

// planTable decides whether the table is taken whole or after the parent's snapshot, and
// writes the query. An insert-only table (with a load_date) that the parent has, with the
// same storage, is taken after the parent (mark is nil when the parent cannot be continued).
// COPY takes no bind parameters, so the tenant key is rendered as a literal,
// decode('<hex>', 'hex'), which no quoting setting can change.
func planTable(t tenantTable, column string, key []byte, snap xidSnapshot, storageID string, mark *parentMark, parent *TenantTable) tablePlan {
	p := tablePlan{t: t, storageID: storageID, snap: snap}
	if mark != nil && t.loadDate != "" && parent != nil && parent.LoadDateColumn == t.loadDate && parent.StorageID == storageID {
		p.incremental = true
		p.mark = mark
		p.parentHWM = parent.HighWaterMark
	}
	keyLiteral := quoteLiteral(string(key))
	if t.keyIsBytea {
		keyLiteral = "decode('" + hex.EncodeToString(key) + "', 'hex')"
	}
	only := "ONLY "
	if t.partitioned {
		only = "" // the rows of a partitioned table are in its partitions
	}
	xid := rowXidExpr(snap.xmax)
	var b strings.Builder
	fmt.Fprintf(&b, "SELECT %s, %s FROM %s%s WHERE %s = %s", quoteColumns(t.columns), xid, only,
		quoteQualified(t.schema, t.name), pgx.Identifier{column}.Sanitize(), keyLiteral)
	if p.incremental {
		// Every transaction below the parent's xmin had ended at its snapshot, so their rows
		// are in the parent. The rows of the rest are read, to take those the parent did not
		// see and to note the ids this backup sees (from its own xmin, which is not below
		// the parent's), but the filter spares sending the old rows; it is no index
		// condition, so the server still reads every row of the tenant.
		fmt.Fprintf(&b, " AND %s >= %d", xid, min(p.mark.snap.xmin, snap.xmin))
	}
	p.selectSQL = b.String()
	return p
}

// check refuses a key that cannot be a text literal of a non-bytea column.
func (p tablePlan) check(key []byte) error {
	if !p.t.keyIsBytea && (!utf8.Valid(key) || bytes.IndexByte(key, 0) >= 0) {
		return fmt.Errorf("logical: the tenant key is not valid text for the non-bytea key column of %s.%s", p.t.schema, p.t.name)
	}
	return nil
}

// estimateBytes asks the planner how much the query returns, for the progress total. It is
// an estimate and never fails the backup.
func estimateBytes(ctx context.Context, tx pgx.Tx, selectSQL string) int64 {
	var plan []byte
	if err := tx.QueryRow(ctx, "EXPLAIN (FORMAT JSON) "+selectSQL).Scan(&plan); err != nil {
		return 0
	}
	var out []struct {
		Plan struct {
			Rows  float64 `json:"Plan Rows"`
			Width float64 `json:"Plan Width"`
		}
	}
	if json.Unmarshal(plan, &out) != nil || len(out) == 0 {
		return 0
	}
	return int64(out[0].Plan.Rows * out[0].Plan.Width)
}

// tableWriter receives a table's COPY text, each row followed by its transaction id: row
// by row, it notes the id, and for a row taken writes the row without it to the object,
// adds it to the checksum and follows the load_date.
type tableWriter struct {
	obj     *object
	prog    *progress
	plan    *tablePlan
	visible xidSet
	split   lineSplitter
	sum     rowSum
	mark    *markTracker
	buf     []byte
	err     error
}

func (w *tableWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	w.split.write(p)
	if w.err != nil {
		return 0, w.err
	}
	if len(w.buf) > 0 {
		n, err := w.obj.Write(w.buf)
		w.prog.add(int64(n))
		w.buf = w.buf[:0]
		if err != nil {
			w.err = err
			return 0, err
		}
	}
	return len(p), nil
}

func (w *tableWriter) row(line []byte) {
	if w.err != nil {
		return
	}
	data, xid, err := splitRowXid(line)
	if err != nil {
		w.err = err
		return
	}
	if xid >= w.plan.snap.xmin {
		w.visible[xid] = struct{}{}
	}
	if w.plan.incremental && w.plan.mark.sawXid(xid) {
		return
	}
	w.buf = append(append(w.buf, data...), '\n')
	w.sum.add(data)
	if w.mark != nil {
		w.mark.observe(data)
	}
}

// copyTenantTable streams the tenant's rows of one table into a new object.
func copyTenantTable(ctx context.Context, conn *pgx.Conn, sink Sink, name string, plan tablePlan, visible xidSet, prog *progress) (TenantTable, error) {
	t := plan.t
	entry := TenantTable{Schema: t.schema, Name: t.name, Object: name, Columns: t.columns,
		Incremental: plan.incremental, LoadDateColumn: t.loadDate, StorageID: plan.storageID,
		MayRepeat: plan.incremental && plan.snap.mayReadOldRowsAsNew()}
	obj, err := createObject(sink, name)
	if err != nil {
		return entry, err
	}
	w := &tableWriter{obj: obj, prog: prog, plan: &plan, visible: visible}
	w.split.line = w.row
	if t.loadDate != "" {
		w.mark = &markTracker{field: slices.Index(t.columns, t.loadDate), tz: t.loadDateTZ}
	}
	if _, err := conn.PgConn().CopyTo(ctx, w, "COPY ("+plan.selectSQL+") TO STDOUT"); err != nil {
		obj.abort(err)
		return entry, fmt.Errorf("logical: copying %s.%s: %w", t.schema, t.name, err)
	}
	if err := errors.Join(w.err, w.split.close()); err != nil {
		obj.abort(err)
		return entry, fmt.Errorf("logical: copying %s.%s: %w", t.schema, t.name, err)
	}
	if err := obj.commit(); err != nil {
		return entry, err
	}
	entry.Rows, entry.Bytes, entry.Checksum = w.sum.rows, obj.n, w.sum.String()
	if w.mark != nil {
		switch mark, err := w.mark.mark(); {
		case err != nil:
			return entry, err
		case w.mark.unknown:
			entry.HighWaterMark = nil
		case plan.incremental && plan.parentHWM != nil && (mark == nil || mark.Before(*plan.parentHWM)):
			entry.HighWaterMark = plan.parentHWM // no new row, or only rows stamped before the parent
		default:
			entry.HighWaterMark = mark
		}
	}
	return entry, nil
}

// unsafeObjectChars are the characters kept out of object names, which the storage may map
// to file names.
var unsafeObjectChars = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// safeObjectName makes a table name readable in an object name: the manifest, not the
// object name, says which table an object holds.
func safeObjectName(s string) string {
	s = unsafeObjectChars.ReplaceAllString(s, "_")
	if len(s) > 100 {
		s = s[:100]
	}
	return s
}
