package logical

import (
	"bytes"
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// ddlDump is the pg_dump of the tables' definitions, running in the background.
type ddlDump struct {
	pre, post []byte // plain SQL of the pre-data and post-data sections
	err       error
	done      chan struct{}
}

// tenantDependencies finds, in the backup's transaction, the objects that the tenant tables
// (and their partitions) need: see dependencyQuery.
func tenantDependencies(ctx context.Context, tx pgx.Tx, tables []tenantTable) (*dependencies, error) {
	var names []string
	for _, t := range tables {
		names = append(names, quoteQualified(t.schema, t.name))
		for i := range t.partitionName {
			names = append(names, quoteQualified(t.partitionNsp[i], t.partitionName[i]))
		}
	}
	rows, err := tx.Query(ctx, "SELECT n::regclass::oid::int8 FROM unnest($1::text[]) AS n", names)
	if err != nil {
		return nil, fmt.Errorf("logical: finding the tenant tables: %w", err)
	}
	oids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("logical: finding the tenant tables: %w", err)
	}
	start := make([]catalogObject, len(oids))
	for i, oid := range oids {
		start[i] = catalogObject{classID: pgClassOID, objID: uint32(oid)}
	}
	return findDependencies(ctx, tx, start)
}

// startTenantDDL starts reading the definitions of the tables (and of their partitions) and
// of every object they need (deps) in the backup's snapshot. pg_dump --schema-only with one
// --table per table says which entries belong to the tables (their indexes, constraints,
// defaults, owned sequences, comments ...), as pg_dump decides it; a schema-only dump of the
// schemas of all these objects then gives those entries and the dependencies' (types,
// domains, functions, sequences, extensions) in one dependency order, from which pg_restore writes the pre-data
// and post-data sections as plain SQL without going back to the server. The pre-data
// section starts with CREATE SCHEMA IF NOT EXISTS for every schema of these objects, which
// pg_dump -t leaves out, and ends with the values of their sequences.
func startTenantDDL(ctx context.Context, binDir, connString, snapshotID string, tables []tenantTable, deps *dependencies) *ddlDump {
	args := []string{"--schema-only", "--format=custom", "--compress=0", "--no-owner", "--no-privileges",
		"--no-tablespaces", "--strict-names", "--snapshot=" + snapshotID}
	for _, t := range tables {
		args = append(args, "--table="+dumpPattern(t.schema, t.name))
		for i := range t.partitionName {
			args = append(args, "--table="+dumpPattern(t.partitionNsp[i], t.partitionName[i]))
		}
	}
	d := &ddlDump{done: make(chan struct{})}
	go func() {
		defer close(d.done)
		// The two dumps run side by side: each is mostly the catalog queries of pg_dump.
		var list bytes.Buffer
		var listErr error
		listed := make(chan struct{})
		go func() {
			defer close(listed)
			var archive bytes.Buffer
			if listErr = runClient(ctx, binDir, "pg_dump", connString, args, nil, &archive); listErr != nil {
				return
			}
			listErr = runLocal(ctx, binDir, "pg_restore", []string{"--list"}, bytes.NewReader(archive.Bytes()), &list)
		}()
		tablesTOC := func() ([]byte, error) {
			<-listed
			return list.Bytes(), listErr
		}
		d.pre, d.post, d.err = dumpDefinitions(ctx, binDir, connString, snapshotID, tablesTOC, deps)
		<-listed
	}()
	return d
}
