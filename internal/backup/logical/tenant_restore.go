package logical

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// RestoreReport says what RestoreTenant restored.
type RestoreReport struct {
	// Tables is the number of tables restored (those of the last backup of the chain).
	Tables int
	// Rows is the number of rows in them after the restore.
	Rows int64
	// SkippedStatements are the post-data statements that failed, each followed by its
	// error, such as a foreign key to a table that is not in the tenant's backup.
	SkippedStatements []string
}

// restoredTable follows one table through a chain.
type restoredTable struct {
	entry       TenantTable // of the last backup
	partitioned bool
	loaded      bool
	want        rowSum // the rows the table must hold after the chain
	checkable   bool   // every object loaded had the last backup's columns
}

// RestoreTenant loads a chain of TENANT backups into targetConn, an existing empty database:
// chain[0] is a FULL and each later manifest's parent is the one before it (a FULL then a
// DIFFERENTIAL, then INCREMENTALs); sources[i] holds the objects of chain[i].
//
// Everything happens in one transaction, so a failed restore leaves the target as it was:
// the last backup's pre-data DDL (the schemas, the extensions, types, domains, functions and
// sequences that the tables need, the tables, and the sequences' values); the data in chain order, where an entry with the whole table
// replaces its rows and an incremental entry appends; the owned sequences set past the
// restored values; then the post-data DDL statement by statement, each in a savepoint, so
// that one that fails (a foreign key to a table outside the tenant's backup, a trigger whose
// function is not there) is reported in the result rather than fatal. Every object is
// checked against its manifest entry as it streams in, and every restored table against the
// rows the chain adds up to; a mismatch is ErrVerifyFailed and nothing is committed.
//
// Tables of earlier backups that the last one no longer has are not restored. binDir is not
// used: the definitions are applied through pgx. It is kept so that both restores of this
// package take the same arguments.
func RestoreTenant(ctx context.Context, chain []*TenantManifest, sources []Source, targetConn string, binDir string) (RestoreReport, error) {
	_ = binDir
	var report RestoreReport
	if err := checkChain(chain, sources); err != nil {
		return report, err
	}
	last := chain[len(chain)-1]

	conn, err := connect(ctx, targetConn)
	if err != nil {
		return report, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tx, err := conn.Begin(ctx)
	if err != nil {
		return report, fmt.Errorf("logical: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()

	tables := map[[2]string]*restoredTable{}
	for _, e := range last.Tables {
		tables[[2]string{e.Schema, e.Name}] = &restoredTable{entry: e, checkable: true}
		var exists bool
		if err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", quoteQualified(e.Schema, e.Name)).Scan(&exists); err != nil {
			return report, fmt.Errorf("logical: checking the target: %w", err)
		}
		if exists {
			return report, fmt.Errorf("%w: it has table %s.%s", ErrTargetNotEmpty, e.Schema, e.Name)
		}
	}

	// Pre-data: any failure is fatal, since the data needs every table.
	pre, err := readDDL(sources[len(chain)-1], last.DDLObject)
	if err != nil {
		return report, err
	}
	for _, item := range pre {
		if _, err := tx.Conn().PgConn().Exec(ctx, item.sql).ReadAll(); err != nil {
			return report, fmt.Errorf("logical: restoring the definitions (%s): %w", item.name, err)
		}
	}
	for _, rt := range tables {
		var relkind string
		if err := tx.QueryRow(ctx, "SELECT relkind::text FROM pg_class WHERE oid = $1::regclass",
			quoteQualified(rt.entry.Schema, rt.entry.Name)).Scan(&relkind); err != nil {
			return report, fmt.Errorf("logical: the definitions did not create %s.%s: %w", rt.entry.Schema, rt.entry.Name, err)
		}
		rt.partitioned = relkind == "p"
	}

	// Data, in chain order.
	for i, m := range chain {
		for _, e := range m.Tables {
			rt := tables[[2]string{e.Schema, e.Name}]
			if rt == nil {
				continue
			}
			if err := loadEntry(ctx, tx, sources[i], e, rt); err != nil {
				return report, err
			}
		}
	}
	if err := advanceSequences(ctx, tx, last.Tables); err != nil {
		return report, err
	}

	// Post-data, statement by statement.
	post, err := readDDL(sources[len(chain)-1], last.PostDDLObject)
	if err != nil {
		return report, err
	}
	for _, item := range post {
		if item.session {
			if _, err := tx.Exec(ctx, item.sql); err != nil {
				return report, fmt.Errorf("logical: restoring the definitions (%s): %w", item.sql, err)
			}
			continue
		}
		if _, err := tx.Exec(ctx, "SAVEPOINT post_data"); err != nil {
			return report, err
		}
		if _, err := tx.Conn().PgConn().Exec(ctx, item.sql).ReadAll(); err != nil {
			if ctx.Err() != nil {
				return report, ctx.Err()
			}
			report.SkippedStatements = append(report.SkippedStatements, item.sql+" -- "+errorMessage(err))
			if _, err := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT post_data"); err != nil {
				return report, err
			}
		}
		if _, err := tx.Exec(ctx, "RELEASE SAVEPOINT post_data"); err != nil {
			return report, err
		}
	}

	// Check what the tables hold, then let the planner know it.
	for _, e := range last.Tables {
		rt := tables[[2]string{e.Schema, e.Name}]
		if err := verifyTable(ctx, tx.Conn().PgConn(), rt); err != nil {
			return report, err
		}
		if _, err := tx.Exec(ctx, "ANALYZE "+quoteQualified(e.Schema, e.Name)); err != nil {
			return report, fmt.Errorf("logical: analyzing %s.%s: %w", e.Schema, e.Name, err)
		}
		report.Tables++
		report.Rows += rt.want.rows
	}
	if err := tx.Commit(ctx); err != nil {
		return report, fmt.Errorf("logical: commit: %w", err)
	}
	return report, nil
}

// checkChain makes sure the manifests form a chain of one tenant.
func checkChain(chain []*TenantManifest, sources []Source) error {
	if len(chain) == 0 {
		return fmt.Errorf("%w: it is empty", ErrBrokenChain)
	}
	if len(sources) != len(chain) {
		return fmt.Errorf("logical: %d sources for %d backups", len(sources), len(chain))
	}
	if chain[0].ParentSnapshot != nil {
		return fmt.Errorf("%w: the first backup is not a FULL", ErrBrokenChain)
	}
	for i := 1; i < len(chain); i++ {
		m, prev := chain[i], chain[i-1]
		if m.ParentSnapshot == nil || !m.ParentSnapshot.Equal(prev.Snapshot) {
			return fmt.Errorf("%w: backup %d (snapshot %s) does not continue backup %d (snapshot %s)",
				ErrBrokenChain, i, m.Snapshot, i-1, prev.Snapshot)
		}
		if m.TenantKeyColumn != prev.TenantKeyColumn || string(m.TenantKey) != string(prev.TenantKey) {
			return fmt.Errorf("%w: backup %d is of another tenant", ErrBrokenChain, i)
		}
	}
	return nil
}

// readDDL reads and splits a DDL object.
func readDDL(src Source, name string) ([]ddlItem, error) {
	r, err := src.Open(name)
	if err != nil {
		return nil, fmt.Errorf("logical: opening object %s: %w", name, err)
	}
	defer r.Close()
	items, err := splitDump(r)
	if err != nil {
		return nil, fmt.Errorf("logical: reading object %s: %w", name, err)
	}
	return items, nil
}

// loadEntry loads one table entry of one backup of the chain.
func loadEntry(ctx context.Context, tx pgx.Tx, src Source, e TenantTable, rt *restoredTable) error {
	table := quoteQualified(e.Schema, e.Name)
	sum, err := parseRowSum(e.Checksum, e.Rows)
	if err != nil {
		return fmt.Errorf("logical: %s.%s: %w", e.Schema, e.Name, err)
	}
	if !e.Incremental {
		if rt.loaded {
			only := "ONLY "
			if rt.partitioned {
				only = ""
			}
			if _, err := tx.Exec(ctx, "TRUNCATE "+only+table); err != nil {
				return fmt.Errorf("logical: emptying %s.%s: %w", e.Schema, e.Name, err)
			}
		}
		rt.want = rowSum{}
		rt.checkable = true
	}
	rt.loaded = true
	rt.want.merge(sum)
	rt.checkable = rt.checkable && slices.Equal(e.Columns, rt.entry.Columns)
	if e.Incremental && e.MayRepeat {
		return loadSkippingRepeats(ctx, tx, src, e, rt, sum)
	}

	r, err := src.Open(e.Object)
	if err != nil {
		return fmt.Errorf("logical: opening object %s: %w", e.Object, err)
	}
	defer r.Close()
	vr := newVerifyingReader(r, e.Object, sum)
	// FREEZE writes the rows already frozen, which spares the first reads of the restored
	// database from setting hint bits; it is allowed because the table was created in this
	// transaction. PostgreSQL 15 does not allow it on partitioned tables.
	freeze := ""
	if !rt.partitioned {
		freeze = " WITH (FREEZE)"
	}
	tag, err := tx.Conn().PgConn().CopyFrom(ctx, vr, fmt.Sprintf("COPY %s (%s) FROM STDIN%s", table, quoteColumns(e.Columns), freeze))
	if vr.err != nil {
		return vr.err
	}
	if err != nil {
		return fmt.Errorf("logical: loading %s.%s from %s: %w", e.Schema, e.Name, e.Object, err)
	}
	if tag.RowsAffected() != e.Rows {
		return fmt.Errorf("%w: %s.%s: loaded %d rows from %s, the manifest records %d",
			ErrVerifyFailed, e.Schema, e.Name, tag.RowsAffected(), e.Object, e.Rows)
	}
	return nil
}

// advanceSequences moves every sequence owned by a restored column (serial or identity) up
// to the column's greatest restored value when it is below it, so that new rows get keys
// that the restored rows do not have. The pre-data definitions of newer backups already set
// every sequence to its value in the source, which this never lowers; for backups made
// before they carried the values, this is what sets them.
func advanceSequences(ctx context.Context, tx pgx.Tx, tables []TenantTable) error {
	names := make([]string, len(tables))
	for i, e := range tables {
		names[i] = quoteQualified(e.Schema, e.Name)
	}
	rows, err := tx.Query(ctx, `
SELECT format('SELECT setval(%L, max(%I)) FROM %s HAVING max(%I) >= (SELECT last_value FROM %s)',
              s.oid::regclass::text, a.attname, c.oid::regclass::text, a.attname, s.oid::regclass::text)
FROM pg_depend d
JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
JOIN pg_class c ON c.oid = d.refobjid
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = d.refobjsubid
WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
  AND d.deptype IN ('a', 'i')
  AND c.oid = ANY (SELECT to_regclass(n) FROM unnest($1::text[]) n)`, names)
	if err != nil {
		return fmt.Errorf("logical: finding the sequences: %w", err)
	}
	statements, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("logical: finding the sequences: %w", err)
	}
	for _, s := range statements {
		if _, err := tx.Exec(ctx, s); err != nil {
			return fmt.Errorf("logical: setting a sequence: %w", err)
		}
	}
	return nil
}

// verifyTable checks that a restored table holds the rows that the chain adds up to.
func verifyTable(ctx context.Context, conn *pgconn.PgConn, rt *restoredTable) error {
	e := rt.entry
	only := "ONLY "
	if rt.partitioned {
		only = ""
	}
	copySQL := fmt.Sprintf("COPY (SELECT %s FROM %s%s) TO STDOUT", quoteColumns(e.Columns), only, quoteQualified(e.Schema, e.Name))
	got, err := copyChecksum(ctx, conn, copySQL)
	if err != nil {
		return fmt.Errorf("logical: reading back %s.%s: %w", e.Schema, e.Name, err)
	}
	if got.rows != rt.want.rows || (rt.checkable && got != rt.want) {
		return fmt.Errorf("%w: %s.%s holds %d rows with checksum %s after the restore; the backups add up to %d rows with checksum %s",
			ErrVerifyFailed, e.Schema, e.Name, got.rows, got, rt.want.rows, rt.want)
	}
	return nil
}

// errorMessage returns the server's message for a failed statement.
func errorMessage(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return strings.TrimSpace(pgErr.Severity + " " + pgErr.Code + ": " + pgErr.Message)
	}
	return err.Error()
}
