package logical

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// schemaObject is the name of the archive of a SCHEMA backup.
const schemaObject = "schema.dump"

// schemaDependenciesObject is the name of the definitions, outside the schema, that the
// schema's objects need.
const schemaDependenciesObject = "dependencies.sql"

// SchemaOptions configures BackupSchema.
type SchemaOptions struct {
	// ConnString is the managed database, as a pgx connection string.
	ConnString string
	// Schema is the schema to back up.
	Schema string
	// BinDir holds pg_dump; empty means the machine's PostgreSQL binaries.
	BinDir string
	// Progress, when set, is called as the backup advances, from one goroutine at a time.
	Progress func(Progress)
}

// SchemaManifest describes a SCHEMA backup: one pg_dump custom-format archive of the schema
// (definitions and data), the definitions of the objects outside the schema that it needs,
// and, per table, the rows it holds.
type SchemaManifest struct {
	// PGVersion is the server's version number (server_version_num, e.g. 150020).
	PGVersion int    `json:"pgVersion"`
	Schema    string `json:"schema"`
	// Snapshot is now() of the snapshot in which the schema was read.
	Snapshot time.Time `json:"snapshotTime"`
	// Object is the archive, restorable with pg_restore.
	Object string `json:"object"`
	// DependenciesObject holds the definitions, as plain SQL, of the objects in other
	// schemas that the schema's objects need (extensions, types, domains, functions,
	// sequences with their values), applied before the archive; empty when there are none
	// and in backups made before they were carried.
	DependenciesObject string `json:"dependenciesObject,omitempty"`
	// Bytes is the size of the objects as written to the Sink (uncompressed: the storage
	// layer compresses).
	Bytes  int64         `json:"bytes"`
	Tables []SchemaTable `json:"tables"`
}

// SchemaTable is one table of a SCHEMA backup (a partition is a table of its own), with the
// count and the order-independent checksum of its rows at the snapshot.
type SchemaTable struct {
	Name     string `json:"name"`
	Rows     int64  `json:"rows"`
	Checksum string `json:"checksum"`
}

// BackupSchema writes a logical backup of one schema: pg_dump -Fc -Z0 -n schema, streamed
// into one object (uncompressed, because the storage layer compresses). Meanwhile it reads
// every table of the schema in the same snapshot to record its rows and checksum, which
// RestoreSchema checks.
//
// pg_dump -n leaves out what the schema's objects need from other schemas: the walk of
// pg_depend that TENANT backups use (see dependencyQuery) finds those objects, whose
// definitions are written, before the archive, into a second object that RestoreSchema
// applies first. Extensions installed in the schema itself go into the archive
// (pg_dump --extension). Tables of other schemas are not carried, so a view of the schema
// over them fails the restore, as do objects outside the schema that in turn need objects
// inside it (a function in another schema taking one of its types).
//
// SCHEMA backups are FULL only: there is no DIFFERENTIAL or INCREMENTAL of a schema, and
// callers refuse those types for this scope. A schema that does not exist is refused with
// ErrSchemaNotFound.
func BackupSchema(ctx context.Context, sink Sink, opts SchemaOptions) (*SchemaManifest, error) {
	if opts.Schema == "" {
		return nil, fmt.Errorf("logical: SchemaOptions.Schema is required")
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
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()

	m := &SchemaManifest{Schema: opts.Schema, Object: schemaObject}
	var snapshotID string
	var exists bool
	err = tx.QueryRow(ctx, `SELECT now(), pg_export_snapshot(), current_setting('server_version_num')::int,
		EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)`, opts.Schema).
		Scan(&m.Snapshot, &snapshotID, &m.PGVersion, &exists)
	if err != nil {
		return nil, fmt.Errorf("logical: starting the snapshot: %w", err)
	}
	m.Snapshot = m.Snapshot.UTC()
	if !exists {
		return nil, fmt.Errorf("%w: %q", ErrSchemaNotFound, opts.Schema)
	}

	type table struct {
		name    string
		columns []string
	}
	rows, err := tx.Query(ctx, `
SELECT c.relname::text,
       ARRAY(SELECT a.attname::text FROM pg_attribute a
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
             ORDER BY a.attnum),
       pg_table_size(c.oid)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relkind = 'r'
ORDER BY c.relname`, opts.Schema)
	if err != nil {
		return nil, fmt.Errorf("logical: listing the tables of %s: %w", opts.Schema, err)
	}
	var tables []table
	var estimate int64
	for rows.Next() {
		var t table
		var size int64
		if err := rows.Scan(&t.name, &t.columns, &size); err != nil {
			return nil, fmt.Errorf("logical: listing the tables of %s: %w", opts.Schema, err)
		}
		tables = append(tables, t)
		estimate += size
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("logical: listing the tables of %s: %w", opts.Schema, err)
	}
	prog.setTotal(estimate)
	prog.setPhase(PhaseData)

	extensions, err := writeSchemaDependencies(ctx, tx, sink, binDir, opts.ConnString, snapshotID, m, prog)
	if err != nil {
		return nil, err
	}

	// pg_dump streams the archive while this connection reads the same snapshot for the
	// checksums; the exported snapshot stays valid as long as this transaction is open.
	dumpCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	dumped := make(chan error, 1)
	obj, err := createObject(sink, schemaObject)
	if err != nil {
		return nil, err
	}
	go func() {
		args := []string{"--format=custom", "--compress=0", "--strict-names", "--snapshot=" + snapshotID,
			"--schema=" + dumpPattern(opts.Schema)}
		for _, e := range extensions {
			args = append(args, "--extension="+dumpPattern(e))
		}
		err := runClient(dumpCtx, binDir, "pg_dump", opts.ConnString, args, nil, prog.writer(obj))
		if err != nil {
			obj.abort(err)
		} else {
			err = obj.commit()
		}
		dumped <- err
	}()

	var sumErr error
	for _, t := range tables {
		copySQL := fmt.Sprintf("COPY (SELECT %s FROM ONLY %s) TO STDOUT", quoteColumns(t.columns), quoteQualified(opts.Schema, t.name))
		sum, err := copyChecksum(dumpCtx, tx.Conn().PgConn(), copySQL)
		if err != nil {
			sumErr = fmt.Errorf("logical: reading %s.%s: %w", opts.Schema, t.name, err)
			cancel()
			break
		}
		m.Tables = append(m.Tables, SchemaTable{Name: t.name, Rows: sum.rows, Checksum: sum.String()})
	}
	if err := <-dumped; err != nil {
		if sumErr != nil {
			return nil, sumErr
		}
		return nil, err
	}
	if sumErr != nil {
		return nil, sumErr
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("logical: ending the snapshot: %w", err)
	}
	m.Bytes += obj.n
	prog.finish()
	return m, nil
}

// writeSchemaDependencies finds what the objects of m.Schema need from other schemas and, if
// anything, writes its definitions into the dependencies object of m. It returns the
// extensions installed in the schema itself, for the archive.
func writeSchemaDependencies(ctx context.Context, tx pgx.Tx, sink Sink, binDir, connString, snapshotID string, m *SchemaManifest, prog *progress) ([]string, error) {
	rows, err := tx.Query(ctx, `
SELECT d.classid::int8, d.objid::int8 FROM pg_depend d JOIN pg_namespace n ON n.oid = d.refobjid
WHERE d.refclassid = 'pg_namespace'::regclass AND n.nspname = $1 AND d.deptype = 'n'`, m.Schema)
	if err != nil {
		return nil, fmt.Errorf("logical: listing the objects of %s: %w", m.Schema, err)
	}
	var start []catalogObject
	for rows.Next() {
		var classID, objID int64
		if err := rows.Scan(&classID, &objID); err != nil {
			rows.Close()
			return nil, fmt.Errorf("logical: listing the objects of %s: %w", m.Schema, err)
		}
		start = append(start, catalogObject{uint32(classID), uint32(objID)})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("logical: listing the objects of %s: %w", m.Schema, err)
	}
	all, err := findDependencies(ctx, tx, start)
	if err != nil {
		return nil, err
	}
	deps, extensions, err := all.outside(ctx, tx, m.Schema)
	if err != nil {
		return nil, err
	}
	if len(deps.objects) == 0 {
		return extensions, nil
	}
	pre, post, err := dumpDefinitions(ctx, binDir, connString, snapshotID, nil, deps)
	if err != nil {
		return nil, err
	}
	obj, err := createObject(sink, schemaDependenciesObject)
	if err != nil {
		return nil, err
	}
	for _, b := range [][]byte{pre, post} {
		if _, err := prog.writer(obj).Write(b); err != nil {
			obj.abort(err)
			return nil, fmt.Errorf("logical: writing object %s: %w", schemaDependenciesObject, err)
		}
	}
	if err := obj.commit(); err != nil {
		return nil, err
	}
	m.DependenciesObject = schemaDependenciesObject
	m.Bytes += obj.n
	return extensions, nil
}

// RestoreSchema restores a SCHEMA backup into targetConn, a database that does not have the
// schema yet: it applies the definitions that the schema needs from other schemas (in one
// transaction), then streams the archive into pg_restore --no-owner --no-privileges
// --no-tablespaces --single-transaction, so that the schema is restored whole or not at all,
// then checks every table's rows and checksum against the manifest: a mismatch is
// ErrVerifyFailed, and the restored schema is left in place for inspection. When the archive
// fails, the definitions from other schemas stay. binDir holds pg_restore; empty means the
// machine's PostgreSQL binaries.
func RestoreSchema(ctx context.Context, m *SchemaManifest, src Source, targetConn, binDir string) error {
	binDir, err := resolveBinDir(binDir)
	if err != nil {
		return err
	}
	if m.DependenciesObject != "" {
		if err := applyDefinitions(ctx, src, m.DependenciesObject, targetConn); err != nil {
			return err
		}
	}
	r, err := src.Open(m.Object)
	if err != nil {
		return fmt.Errorf("logical: opening object %s: %w", m.Object, err)
	}
	defer r.Close()
	args := []string{"--no-owner", "--no-privileges", "--no-tablespaces", "--single-transaction", "--exit-on-error"}
	if err := runClient(ctx, binDir, "pg_restore", targetConn, args, r, nil); err != nil {
		return err
	}

	conn, err := connect(ctx, targetConn)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for _, t := range m.Tables {
		want, err := parseRowSum(t.Checksum, t.Rows)
		if err != nil {
			return fmt.Errorf("logical: %s.%s: %w", m.Schema, t.Name, err)
		}
		var columns []string
		err = conn.QueryRow(ctx, `
SELECT ARRAY(SELECT a.attname::text FROM pg_attribute a
             WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
             ORDER BY a.attnum)`, quoteQualified(m.Schema, t.Name)).Scan(&columns)
		if err != nil {
			return fmt.Errorf("%w: %s.%s: %v", ErrVerifyFailed, m.Schema, t.Name, err)
		}
		copySQL := fmt.Sprintf("COPY (SELECT %s FROM ONLY %s) TO STDOUT", quoteColumns(columns), quoteQualified(m.Schema, t.Name))
		got, err := copyChecksum(ctx, conn.PgConn(), copySQL)
		if err != nil {
			return fmt.Errorf("logical: reading back %s.%s: %w", m.Schema, t.Name, err)
		}
		if got != want {
			return fmt.Errorf("%w: %s.%s holds %d rows with checksum %s after the restore; the backup recorded %d rows with checksum %s",
				ErrVerifyFailed, m.Schema, t.Name, got.rows, got, want.rows, want)
		}
	}
	return nil
}

// applyDefinitions runs a DDL object (plain SQL from pg_restore) on targetConn in one
// transaction.
func applyDefinitions(ctx context.Context, src Source, name, targetConn string) error {
	items, err := readDDL(src, name)
	if err != nil {
		return err
	}
	conn, err := connect(ctx, targetConn)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		for _, item := range items {
			if _, err := tx.Conn().PgConn().Exec(ctx, item.sql).ReadAll(); err != nil {
				return fmt.Errorf("logical: restoring the definitions (%s): %w", item.name, err)
			}
		}
		return nil
	})
}
