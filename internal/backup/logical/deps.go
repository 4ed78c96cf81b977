package logical

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// The definitions that pg_dump -t and -n write are not enough to restore a table into an
// empty database: pg_dump -t leaves out the enum, composite and range types of its columns,
// its domains and the functions of their checks, the sequences that its defaults draw from
// when another table owns them, the functions that its defaults, checks and generated
// columns call, and the extensions that provide any of those; pg_dump -n leaves out those
// that live in another schema. This file finds them in the catalog (pg_depend, which records
// every such reference), and cuts their definitions out of a schema-only dump of their
// schemas, whose table of contents pg_dump has already put in dependency order.
//
// What pg_depend does not record is not carried: the functions that a plpgsql (or other
// string-bodied) function calls are restored only if something else needs them, which the
// restore does not notice (check_function_bodies is off, as in pg_dump's scripts) until the
// function runs; and a function with an SQL-standard body that reads a table other than the
// tenant's fails the restore's pre-data step, since tables are never pulled in as
// dependencies. A sequence owned by a table that is not restored is restored without its
// OWNED BY.

// catalogObject names an object of the database as pg_depend does: the catalog it is in and
// its oid there.
type catalogObject struct {
	classID, objID uint32
}

// sequenceValue is where a sequence stood at the backup.
type sequenceValue struct {
	name     string // schema-qualified and quoted
	value    int64
	isCalled bool
}

// dependencies are the objects that a set of tables (or a schema's objects) needs.
type dependencies struct {
	objects map[catalogObject]objectInfo
	// schemas are the schemas of the objects, which the definitions create IF NOT EXISTS.
	schemas []string
	// sequences are the sequences among the objects, with their values at the backup.
	sequences []sequenceValue
}

// objectInfo is what the backup needs to know of a dependency.
type objectInfo struct {
	schema    string // its schema (an extension's: the schema of its objects); empty for none
	extension string // the extension's name, for an extension
	sequence  string // the quoted qualified name, for a sequence
}

// The catalogs whose oids the queries below use: the oids of system catalogs are fixed.
const (
	pgNamespaceOID = 2615
	pgClassOID     = 1259
)

// dependencyQuery walks pg_depend from the start objects ($1 classids, $2 objids) to
// everything their definitions need, and returns each object found with its schema (NULL
// for objects outside schemas; a table's trigger, default, policy or rule is in its table's),
// the name of an extension, and the qualified name of a sequence. It follows:
//   - the parts of an object, which depend on it automatically or internally: a table's
//     defaults (and generation expressions), constraints, indexes, triggers, rules,
//     policies and owned sequences; a type's array type, a domain's constraints, a range's
//     multirange. Foreign keys are not followed: they reference another table's rows, and
//     the restore reports the ones it cannot create instead. Partitions are not parts
//     either: a TENANT backup starts from them, a SCHEMA backup has those of its schema;
//   - what an object needs (normal dependencies): types, domains, functions, sequences,
//     composite types, collations, operator classes, schemas; and what a type is made from
//     (internal dependencies of a type: an array's element type, a composite type's
//     columns). Tables and views are not followed, so that a TENANT backup never grows by a
//     table that is not the tenant's;
//   - for an object that belongs to an extension, the extension instead of the object.
//
// Objects with oids below 16384 (FirstNormalObjectId) were made by initdb and are in every
// database, so the walk stops at them.
const dependencyQuery = `
WITH RECURSIVE req(classid, objid) AS (
    SELECT s.classid, s.objid FROM unnest($1::oid[], $2::oid[]) AS s(classid, objid)
  UNION
    SELECT x.classid, x.objid FROM req r
    CROSS JOIN LATERAL (
        SELECT d.refclassid, d.refobjid FROM pg_depend d
        WHERE d.classid = r.classid AND d.objid = r.objid AND d.deptype = 'e'
      UNION ALL
        SELECT d.classid, d.objid FROM pg_depend d
        WHERE d.refclassid = r.classid AND d.refobjid = r.objid AND d.deptype IN ('a', 'i')
          AND d.classid IN ('pg_attrdef'::regclass, 'pg_constraint'::regclass, 'pg_class'::regclass, 'pg_trigger'::regclass,
                            'pg_rewrite'::regclass, 'pg_policy'::regclass, 'pg_type'::regclass)
          AND NOT EXISTS (SELECT FROM pg_constraint k
                          WHERE d.classid = 'pg_constraint'::regclass AND k.oid = d.objid AND k.contype = 'f')
          AND NOT EXISTS (SELECT FROM pg_class c
                          WHERE d.classid = 'pg_class'::regclass AND c.oid = d.objid AND c.relkind IN ('r', 'p', 'v', 'm', 'f'))
          AND NOT EXISTS (SELECT FROM pg_depend e WHERE e.classid = r.classid AND e.objid = r.objid AND e.deptype = 'e')
      UNION ALL
        SELECT d.refclassid, d.refobjid FROM pg_depend d
        WHERE d.classid = r.classid AND d.objid = r.objid
          AND (d.deptype = 'n' OR (d.deptype = 'i' AND r.classid = 'pg_type'::regclass))
          AND NOT EXISTS (SELECT FROM pg_depend e WHERE e.classid = r.classid AND e.objid = r.objid AND e.deptype = 'e')
          AND NOT EXISTS (SELECT FROM pg_class c
                          WHERE d.refclassid = 'pg_class'::regclass AND c.oid = d.refobjid AND c.relkind NOT IN ('S', 'c'))
          AND NOT EXISTS (SELECT FROM pg_constraint k
                          WHERE r.classid = 'pg_constraint'::regclass AND k.oid = r.objid AND k.contype = 'f')
    ) AS x(classid, objid)
    WHERE x.objid >= 16384
)
SELECT r.classid::int8, r.objid::int8,
       CASE WHEN r.classid = 'pg_namespace'::regclass THEN (SELECT nspname::text FROM pg_namespace WHERE oid = r.objid)
            WHEN r.classid = 'pg_extension'::regclass THEN (SELECT n.nspname::text FROM pg_extension e
                                                            JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.oid = r.objid)
            WHEN r.classid IN ('pg_trigger'::regclass, 'pg_attrdef'::regclass, 'pg_policy'::regclass, 'pg_rewrite'::regclass)
            THEN (SELECT n.nspname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE c.oid = CASE r.classid WHEN 'pg_trigger'::regclass THEN (SELECT tgrelid FROM pg_trigger WHERE oid = r.objid)
                                               WHEN 'pg_attrdef'::regclass THEN (SELECT adrelid FROM pg_attrdef WHERE oid = r.objid)
                                               WHEN 'pg_policy'::regclass THEN (SELECT polrelid FROM pg_policy WHERE oid = r.objid)
                                               ELSE (SELECT ev_class FROM pg_rewrite WHERE oid = r.objid) END)
            ELSE (pg_identify_object(r.classid, r.objid, 0)).schema END,
       (SELECT extname::text FROM pg_extension WHERE r.classid = 'pg_extension'::regclass AND oid = r.objid),
       (SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE r.classid = 'pg_class'::regclass AND c.oid = r.objid AND c.relkind = 'S')
FROM req r
ORDER BY 1, 2`

// findDependencies returns the objects that the start objects need, the start objects
// included, with the values of the sequences among them, read in tx (the backup's
// snapshot). A sequence's value is read as it is now, which is at least its value at the
// snapshot: sequences are not transactional.
func findDependencies(ctx context.Context, tx pgx.Tx, start []catalogObject) (*dependencies, error) {
	classIDs := make([]uint32, len(start))
	objIDs := make([]uint32, len(start))
	for i, o := range start {
		classIDs[i], objIDs[i] = o.classID, o.objID
	}
	rows, err := tx.Query(ctx, dependencyQuery, classIDs, objIDs)
	if err != nil {
		return nil, fmt.Errorf("logical: finding the objects the tables need: %w", err)
	}
	d := &dependencies{objects: map[catalogObject]objectInfo{}}
	for rows.Next() {
		var classID, objID int64
		var schema, extension, sequence *string
		if err := rows.Scan(&classID, &objID, &schema, &extension, &sequence); err != nil {
			rows.Close()
			return nil, fmt.Errorf("logical: finding the objects the tables need: %w", err)
		}
		d.objects[catalogObject{uint32(classID), uint32(objID)}] = objectInfo{
			schema: valueOrEmpty(schema), extension: valueOrEmpty(extension), sequence: valueOrEmpty(sequence)}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("logical: finding the objects the tables need: %w", err)
	}
	if err := d.summarize(ctx, tx); err != nil {
		return nil, err
	}
	return d, nil
}

// valueOrEmpty returns *s, or "" for a NULL.
func valueOrEmpty(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// summarize fills in the schemas and the sequences' values from the objects.
func (d *dependencies) summarize(ctx context.Context, tx pgx.Tx) error {
	d.schemas, d.sequences = nil, nil
	var sequences []string
	for _, info := range d.objects {
		if s := info.schema; s != "" && s != "pg_catalog" && s != "pg_toast" && !slices.Contains(d.schemas, s) {
			d.schemas = append(d.schemas, s)
		}
		if info.sequence != "" {
			sequences = append(sequences, info.sequence)
		}
	}
	slices.Sort(d.schemas)
	slices.Sort(sequences)
	for _, name := range sequences {
		v := sequenceValue{name: name}
		if err := tx.QueryRow(ctx, "SELECT last_value, is_called FROM "+name).Scan(&v.value, &v.isCalled); err != nil {
			return fmt.Errorf("logical: reading sequence %s: %w", name, err)
		}
		d.sequences = append(d.sequences, v)
	}
	return nil
}

// outside splits the dependencies of a schema's objects: those outside the schema, which
// a SCHEMA backup must carry besides its pg_dump -n archive, and the names of the
// extensions installed in the schema, which pg_dump -n leaves out unless told with
// --extension.
func (d *dependencies) outside(ctx context.Context, tx pgx.Tx, schema string) (*dependencies, []string, error) {
	out := &dependencies{objects: map[catalogObject]objectInfo{}}
	var extensions []string
	for o, info := range d.objects {
		switch {
		case info.schema == "pg_toast" || info.schema == "pg_catalog":
			// A TOAST table is part of its table, in the archive.
		case info.schema != schema:
			out.objects[o] = info
		case info.extension != "":
			extensions = append(extensions, info.extension)
		}
	}
	slices.Sort(extensions)
	if err := out.summarize(ctx, tx); err != nil {
		return nil, nil, err
	}
	return out, extensions, nil
}

// tocLine matches an entry of pg_restore --list: "dumpId; catalogOid objectOid DESC
// SCHEMA NAME OWNER".
var tocLine = regexp.MustCompile(`^(\d+); (\d+) (\d+) (.*)$`)

// commentableDescs are the TOC descriptions of dependency objects whose comments are kept.
// Comments on extensions are not: COMMENT ON EXTENSION needs to own the extension, which a
// restoring role that found it already installed does not.
var commentableDescs = []string{"TYPE", "DOMAIN", "FUNCTION", "PROCEDURE", "AGGREGATE", "SEQUENCE", "COLLATION"}

// filterTOC returns the lines of full (pg_restore --list of a schema-only dump of the
// objects' schemas) that define the dependency objects or one of the entries of tables
// (pg_restore --list of pg_dump -t; empty for none), in full's order, which pg_dump made a
// dependency order. Schemas are left out, since the definitions create them IF NOT EXISTS.
// It fails when an entry of tables is not in full: both dumps read the same snapshot.
func filterTOC(full, tables []byte, d *dependencies) ([]byte, error) {
	want := map[string]bool{}
	for _, line := range tocEntries(tables) {
		if m := tocLine.FindStringSubmatch(line); m != nil {
			want[m[2]+" "+m[3]+" "+m[4]] = true
		}
	}
	var out bytes.Buffer
	found := 0
	comments := map[string]bool{}
	entries := tocEntries(full)
	keep := make([]bool, len(entries))
	for i, line := range entries {
		m := tocLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		rest := m[2] + " " + m[3] + " " + m[4]
		if want[rest] {
			keep[i] = true
			found++
			continue
		}
		classID, _ := strconv.ParseUint(m[2], 10, 32)
		objID, _ := strconv.ParseUint(m[3], 10, 32)
		if _, ok := d.objects[catalogObject{uint32(classID), uint32(objID)}]; !ok || classID == pgNamespaceOID {
			continue
		}
		keep[i] = true
		for _, desc := range commentableDescs {
			if after, ok := strings.CutPrefix(m[4], desc+" "); ok {
				if schema, nameOwner, ok := strings.Cut(after, " "); ok {
					comments["0 0 COMMENT "+schema+" "+desc+" "+nameOwner] = true
				}
			}
		}
	}
	if found != len(want) {
		return nil, fmt.Errorf("logical: the schema dump lacks %d of the %d entries of the tables' dump", len(want)-found, len(want))
	}
	for i, line := range entries {
		m := tocLine.FindStringSubmatch(line)
		if keep[i] || (m != nil && comments[m[2]+" "+m[3]+" "+m[4]]) {
			out.WriteString(line)
			out.WriteByte('\n')
		}
	}
	return out.Bytes(), nil
}

// tocEntries returns the entry lines of a pg_restore --list, without its comments.
func tocEntries(list []byte) []string {
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(list))
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		if line != "" && !strings.HasPrefix(line, ";") {
			lines = append(lines, line)
		}
	}
	return lines
}

// schemaStatements writes CREATE SCHEMA IF NOT EXISTS for each schema, each as an entry of
// its own in the manner of pg_dump, for splitDump.
func schemaStatements(schemas []string) []byte {
	var b bytes.Buffer
	for _, s := range schemas {
		fmt.Fprintf(&b, "--\n-- Name: %s; Type: SCHEMA; Schema: -; Owner: -\n--\n\nCREATE SCHEMA IF NOT EXISTS %s;\n\n",
			strings.ReplaceAll(s, "\n", " "), pgx.Identifier{s}.Sanitize())
	}
	return b.Bytes()
}

// sequenceStatements writes a setval for each sequence, so that a restored sequence
// continues from the source's value: keys drawn after the restore collide neither with the
// restored rows nor with rows of other tenants that share the sequence.
func sequenceStatements(sequences []sequenceValue) []byte {
	var b bytes.Buffer
	for _, s := range sequences {
		fmt.Fprintf(&b, "--\n-- Name: %s; Type: SEQUENCE SET; Schema: -; Owner: -\n--\n\nSELECT pg_catalog.setval(%s, %d, %t);\n\n",
			strings.ReplaceAll(s.name, "\n", " "), quoteLiteral(s.name), s.value, s.isCalled)
	}
	return b.Bytes()
}

// dumpDefinitions reads the definitions of d's objects and of the tables' entries (the
// pg_restore --list of their pg_dump -t archive, which tablesTOC waits for; nil for no
// tables) in the snapshot, through a
// schema-only dump whose table of contents filterTOC cuts down, and returns them as plain
// SQL: the pre-data section (schemas first, sequence values last) and the post-data
// section. The dump is of the objects' schemas and extensions only (--schema, --extension),
// rather than of the whole database, so that it neither reads nor locks the tables of other
// schemas, such as the service's own when it shares the database.
func dumpDefinitions(ctx context.Context, binDir, connString, snapshotID string, tablesTOC func() ([]byte, error), d *dependencies) (pre, post []byte, err error) {
	args := []string{"--schema-only", "--format=custom", "--compress=0", "--no-owner", "--no-privileges",
		"--no-tablespaces", "--snapshot=" + snapshotID}
	for _, s := range d.schemas {
		args = append(args, "--schema="+dumpPattern(s))
	}
	var extensions []string
	for _, info := range d.objects {
		if info.extension != "" {
			extensions = append(extensions, info.extension)
		}
	}
	slices.Sort(extensions)
	for _, e := range extensions {
		args = append(args, "--extension="+dumpPattern(e))
	}
	var archive bytes.Buffer
	if err := runClient(ctx, binDir, "pg_dump", connString, args, nil, &archive); err != nil {
		return nil, nil, err
	}
	var list bytes.Buffer
	if err := runLocal(ctx, binDir, "pg_restore", []string{"--list"}, bytes.NewReader(archive.Bytes()), &list); err != nil {
		return nil, nil, err
	}
	var tables []byte
	if tablesTOC != nil {
		if tables, err = tablesTOC(); err != nil {
			return nil, nil, err
		}
	}
	filtered, err := filterTOC(list.Bytes(), tables, d)
	if err != nil {
		return nil, nil, err
	}
	listFile, err := os.CreateTemp("", "readiness-toc-*.list")
	if err != nil {
		return nil, nil, fmt.Errorf("logical: writing the list of definitions: %w", err)
	}
	defer os.Remove(listFile.Name())
	if _, err := listFile.Write(filtered); err != nil {
		listFile.Close()
		return nil, nil, fmt.Errorf("logical: writing the list of definitions: %w", err)
	}
	if err := listFile.Close(); err != nil {
		return nil, nil, fmt.Errorf("logical: writing the list of definitions: %w", err)
	}
	preBuf := bytes.NewBuffer(schemaStatements(d.schemas))
	var postBuf bytes.Buffer
	for _, s := range []struct {
		section string
		out     *bytes.Buffer
	}{{"pre-data", preBuf}, {"post-data", &postBuf}} {
		restoreArgs := []string{"--section=" + s.section, "--use-list=" + listFile.Name(), "--no-owner", "--no-privileges",
			"--no-tablespaces", "--file=-"}
		if err := runLocal(ctx, binDir, "pg_restore", restoreArgs, bytes.NewReader(archive.Bytes()), s.out); err != nil {
			return nil, nil, err
		}
	}
	preBuf.Write(sequenceStatements(d.sequences))
	return preBuf.Bytes(), postBuf.Bytes(), nil
}
