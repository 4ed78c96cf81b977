// Package logical makes the logical backups of the managed One Vault database and restores
// them into a new database:
//
//   - TENANT (BackupTenant, RestoreTenant): exactly one tenant's rows of every table that has
//     the tenant key column, as COPY text, with the pre-data and post-data DDL of those tables
//     from pg_dump. A backup may have a parent, in which case the insert-only Data Vault tables
//     (those with a load_date) hold only the rows that the parent's snapshot did not see (see
//     "Incremental TENANT backups" below): that makes DIFFERENTIAL (parent: the FULL) and
//     INCREMENTAL (parent: the previous backup).
//   - SCHEMA (BackupSchema, RestoreSchema): one schema as a pg_dump custom-format archive,
//     restored with pg_restore. SCHEMA backups are FULL only.
//
// Objects are written through a Sink and read back through a Source; the storage layer behind
// them compresses, encrypts and commits them. This package only produces and consumes the plain
// bytes, and it streams them: no table is ever held in memory.
//
// Row checksums are order-independent, so that the same rows give the same checksum in whatever
// physical order a table returns them: a checksum is the sum, modulo 2^128, of the MD5 digests
// of every row's COPY text line (without its newline), read with fixed session settings
// (DateStyle ISO, TimeZone UTC, extra_float_digits 3, bytea_output hex, IntervalStyle
// postgres). Being a sum, the checksums of a FULL and of the rows that its INCREMENTALs
// append add up to the checksum of the restored table, which is what RestoreTenant checks.
//
// # Incremental TENANT backups
//
// A DIFFERENTIAL or INCREMENTAL must hold every row committed after its parent's snapshot,
// whatever its load_date. One Vault stamps load_date = now() when a transaction starts, so a
// transaction that began before the parent's snapshot and committed after it has rows stamped
// before the parent's high-water mark. Selecting load_date > mark, the method before this one,
// lost them from that incremental and every later one, without an error.
//
// The method: every backup reads its rows in one REPEATABLE READ transaction and records its
// pg_current_snapshot() (TenantManifest.XidSnapshot: xmin, xmax and the ids running). A child
// reads each insert-only table's rows of the tenant with their xmin and takes those whose
// inserting transaction the parent did not see:
//
//   - xmin below the parent's xmin: the transaction had ended at the parent's snapshot, so the
//     row (there now, so there then: the table is insert-only) is in the parent chain;
//   - xmin at or after the parent's xmax: the transaction started after it, so the row is taken;
//   - in between: the parent saw the transaction exactly when it read a row of it, since a
//     transaction's rows become visible together. Every backup records the ids in that window
//     of the rows it read (TenantManifest.VisibleXids, as ranges). The snapshot's list of
//     running ids cannot decide this: a pg_snapshot holds no subtransaction ids, so
//     pg_visible_in_snapshot calls a row inserted in a savepoint or a PL/pgSQL exception block
//     of a transaction that was running at the parent's snapshot "visible", and the row is lost
//     (TestTenantIncrementalsTakeLateCommits has such rows).
//
// Neither the application's clock nor the server's takes part. Transaction ids are compared
// only along one history: a child takes every table whole, and says why in
// TenantManifest.FullReason, when its parent has no snapshot (it was made before this method),
// is of another cluster (system identifier) or of another timeline (a point-in-time recovery or
// a failover can give the same ids to other transactions). It takes one table whole when the
// table's storage changed since the parent (TenantTable.StorageID, the relfilenodes of it and
// its partitions): a rewriting ALTER TABLE gives every row a new xmin, and a partition
// attached or detached changes which rows the table has.
//
// xmin holds the low 32 bits of an id. The child widens it to 64 bits as the latest id below
// its own snapshot's xmax with those bits, which is exact for every row not frozen: PostgreSQL
// keeps unfrozen xmins within 2^31 of the next id. The ids 1 and 2, written into rows frozen
// before 9.4, count as older than every snapshot. Since 9.4 a frozen row keeps its original
// xmin; that is harmless while the row is younger than 2^32 ids, but once the cluster has used
// more than 2^32 ids a row frozen that long ago can read as inserted between the parent and the
// child, and be taken again. Without reading tuple headers (pageinspect) nothing tells it from
// a new row, so the incremental entries of such a cluster are marked TenantTable.MayRepeat and
// RestoreTenant leaves out their rows that the table already holds, compared by their text
// (TestTenantChainAfterTheXidCounterWrapped makes this happen with pg_resetwal). In a Data
// Vault table a row equal in every column to an earlier one can only be that row (the hash key
// and load_date are its key); a table of another kind that had two equal rows loaded in
// different backups would keep one.
//
// Outside the method: tables without a load_date are taken whole by every backup, since they
// may be updated and deleted in place (tenant_setting). An UPDATE in a table with a load_date
// breaks its insert-only contract: the new version has a new xmin, so the child takes it and
// the restore appends it beside the old one; a DELETE is not seen. (The load_date method did
// not see an UPDATE at all.)
//
// What it costs: the rows a child wants are defined by xmin, which no index holds, so every
// DIFFERENTIAL and INCREMENTAL reads all of the tenant's rows of each insert-only table on the
// server (through the tenant key's index, or a sequential scan), as a FULL does, and sends,
// writes and restores only the rows taken. The load_date method read only the new rows through
// a (tenant_hk, load_date) index. Measured on a satellite with 70,100 rows of the tenant
// (10,000 pages holding two tenants) after 100 new ones: the load_date range read 103 buffers
// in 0.2 ms; the xmin selection reads 5,468 (every page with a row of the tenant) in about
// 60 ms; the FULL's read of the tenant's rows takes about 90 ms. BenchmarkTenantIncremental
// measures a whole incremental. A backup also parses each row's id, and its manifest holds about
// one range per transaction that committed while its oldest running one was open; a restore of
// a MayRepeat entry adds a hash semi-join of the entry's rows against the table.
//
// The alternatives considered: commit timestamps (track_commit_timestamp, then
// pg_xact_commit_timestamp(xmin) after the parent's snapshot time) need the same scan, a server
// setting that takes a restart and holds no timestamps for transactions committed before it
// was set, and a clock that never steps back. The load_date mark minus the longest
// transaction open at the parent's snapshot could use the index, but depends on load_date
// coming from the server's clock at the start of the transaction (an application that stamps
// its own time breaks it) and on that clock.
package logical

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/onevault/readiness/internal/pgcluster"
	"github.com/onevault/readiness/internal/storage"
)

// Sink receives the objects of a backup. Each object is written in full and then closed; a
// writer that also has a CloseWithError(error) error method is closed through it when the
// object could not be written completely, so that the storage can discard it.
type Sink interface {
	Create(name string) (io.WriteCloser, error)
}

// Source gives back the objects that a Sink received.
type Source interface {
	Open(name string) (io.ReadCloser, error)
}

// Progress is what a running backup reports. BytesTotal is an estimate (from the planner for
// TENANT, from the table sizes for SCHEMA) until the backup ends; it never falls below
// BytesDone, and equals it in the final PhaseDone report.
type Progress struct {
	Phase      string
	BytesDone  int64
	BytesTotal int64
}

// The phases that Progress reports, in this order.
const (
	// PhasePrepare lists the tables and estimates the size of the backup.
	PhasePrepare = "prepare"
	// PhaseData copies the rows.
	PhaseData = "data"
	// PhaseDDL writes the table definitions (TENANT only), which pg_dump read during
	// PhaseData.
	PhaseDDL = "ddl"
	// PhaseDone is reported once, when every object is written.
	PhaseDone = "done"
)

var (
	// ErrSchemaNotFound is returned by BackupSchema for a schema that the database does not have.
	ErrSchemaNotFound = errors.New("logical: schema does not exist")
	// ErrNoTenantTables is returned by BackupTenant when no table of the database has the
	// tenant key column, which is almost always a wrong TenantKeyColumn or database.
	ErrNoTenantTables = errors.New("logical: no table has the tenant key column")
	// ErrParentMismatch is returned by BackupTenant when the parent manifest belongs to
	// another tenant or tenant key column.
	ErrParentMismatch = errors.New("logical: the parent backup is of another tenant")
	// ErrBrokenChain is returned by RestoreTenant when the manifests do not form a chain: a
	// FULL first, then backups each of whose parent is the one before it.
	ErrBrokenChain = errors.New("logical: the backups do not form a chain")
	// ErrTargetNotEmpty is returned by RestoreTenant when the target database already has one
	// of the tables to restore.
	ErrTargetNotEmpty = errors.New("logical: the target database is not empty")
	// ErrVerifyFailed is returned by the restores when an object, or a restored table, does
	// not hold the rows that its manifest records (row count or checksum). Nothing is
	// committed then.
	ErrVerifyFailed = errors.New("logical: restored data does not match the manifest")
)

// sessionSettings fix the text form of every value that COPY writes, so that a checksum
// computed at backup time is computed the same way at restore time, whatever the server's
// or the role's defaults. row_security off makes a role that row-level security would filter
// fail instead of silently backing up a subset of the rows, as pg_dump does;
// standard_conforming_strings on is what quoteLiteral assumes. The timeouts are
// off because a backup transaction legitimately stays open for a long time.
var sessionSettings = map[string]string{
	"DateStyle":                           "ISO",
	"IntervalStyle":                       "postgres",
	"TimeZone":                            "UTC",
	"extra_float_digits":                  "3",
	"bytea_output":                        "hex",
	"standard_conforming_strings":         "on",
	"row_security":                        "off",
	"statement_timeout":                   "0",
	"idle_in_transaction_session_timeout": "0",
	"application_name":                    "readiness-logical-backup",
}

// connect opens a connection with sessionSettings applied from its start.
func connect(ctx context.Context, connString string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("logical: connection string: %w", err)
	}
	for k, v := range sessionSettings {
		cfg.RuntimeParams[k] = v
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("logical: connect: %w", err)
	}
	return conn, nil
}

// resolveBinDir returns dir, or the machine's PostgreSQL binaries when dir is empty.
func resolveBinDir(dir string) (string, error) {
	if dir != "" {
		return dir, nil
	}
	dir, err := pgcluster.BinDir()
	if err != nil {
		return "", fmt.Errorf("logical: finding pg_dump: %w", err)
	}
	return dir, nil
}

// object is one object being written to a Sink, buffered so that the storage layer (which
// compresses and encrypts) sees large writes rather than one per row.
type object struct {
	name string
	wc   io.WriteCloser
	buf  *bufio.Writer
	n    int64
}

const objectBufferSize = 256 << 10

func createObject(sink Sink, name string) (*object, error) {
	wc, err := sink.Create(name)
	if err != nil {
		return nil, fmt.Errorf("logical: creating object %s: %w", name, err)
	}
	return &object{name: name, wc: wc, buf: bufio.NewWriterSize(wc, objectBufferSize)}, nil
}

func (o *object) Write(p []byte) (int, error) {
	n, err := o.buf.Write(p)
	o.n += int64(n)
	return n, err
}

// commit flushes and closes the object.
func (o *object) commit() error {
	if err := o.buf.Flush(); err != nil {
		o.abort(err)
		return fmt.Errorf("logical: writing object %s: %w", o.name, err)
	}
	if err := o.wc.Close(); err != nil {
		return fmt.Errorf("logical: closing object %s: %w", o.name, err)
	}
	return nil
}

// abort closes an object that was not written completely, through CloseWithError when the
// storage offers it, so that it can discard the object.
func (o *object) abort(cause error) {
	if c, ok := o.wc.(interface{ CloseWithError(error) error }); ok {
		_ = c.CloseWithError(cause)
		return
	}
	_ = o.wc.Close()
}

// progress throttles the Progress callback to a few calls a second.
type progress struct {
	fn          func(Progress)
	phase       string
	done, total int64
	last        time.Time
}

const progressInterval = 250 * time.Millisecond

func (p *progress) setPhase(phase string) {
	p.phase = phase
	p.emit()
}

func (p *progress) setTotal(total int64) {
	p.total = max(total, p.done)
}

func (p *progress) add(n int64) {
	p.done += n
	p.total = max(p.total, p.done)
	if time.Since(p.last) >= progressInterval {
		p.emit()
	}
}

// writer returns w, reporting every write to the progress.
func (p *progress) writer(w io.Writer) io.Writer {
	return &storage.CountingWriter{W: w, OnWrite: p.add}
}

func (p *progress) finish() {
	p.total = p.done
	p.setPhase(PhaseDone)
}

func (p *progress) emit() {
	p.last = time.Now()
	if p.fn != nil {
		p.fn(Progress{Phase: p.phase, BytesDone: p.done, BytesTotal: p.total})
	}
}

// runClient runs a PostgreSQL client program (pg_dump, pg_restore) from binDir against the
// database of connString. The password travels in PGPASSWORD rather than on the command
// line, where every user of the machine could read it. stdin and stdout may be nil.
func runClient(ctx context.Context, binDir, program, connString string, args []string, stdin io.Reader, stdout io.Writer) error {
	dsn, password, err := libpqConnString(connString)
	if err != nil {
		return err
	}
	var env []string
	if password != "" {
		env = append(env, "PGPASSWORD="+password)
	}
	return run(ctx, binDir, program, append(args, "--dbname="+dsn), env, stdin, stdout)
}

// runLocal runs a PostgreSQL client program that does not connect to a server, such as
// pg_restore --file.
func runLocal(ctx context.Context, binDir, program string, args []string, stdin io.Reader, stdout io.Writer) error {
	return run(ctx, binDir, program, args, nil, stdin, stdout)
}

func run(ctx context.Context, binDir, program string, args, env []string, stdin io.Reader, stdout io.Writer) error {
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, program), args...)
	cmd.Env = append(os.Environ(), "PGAPPNAME=readiness-logical-backup")
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdin = stdin
	cmd.Stdout = stdout
	stderr := &tailBuffer{max: 8 << 10}
	cmd.Stderr = stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("logical: %s: %w", program, ctx.Err())
		}
		return fmt.Errorf("logical: %s: %w: %s", program, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// tailBuffer keeps the last max bytes written to it: the end of a client's stderr, where
// its error is.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// quoteQualified returns schema.name quoted for SQL.
func quoteQualified(schema, name string) string {
	return pgx.Identifier{schema, name}.Sanitize()
}

// quoteColumns returns the column list quoted for SQL, comma separated.
func quoteColumns(cols []string) string {
	quoted := make([]string, len(cols))
	for i, c := range cols {
		quoted[i] = pgx.Identifier{c}.Sanitize()
	}
	return strings.Join(quoted, ", ")
}

// dumpPattern returns a pg_dump -t/-n pattern that matches exactly the given names: inside
// double quotes, pattern characters (*, ?, ., regular-expression syntax) are literal and
// case is kept.
func dumpPattern(names ...string) string {
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = `"` + strings.ReplaceAll(n, `"`, `""`) + `"`
	}
	return strings.Join(quoted, ".")
}

// quoteLiteral returns s as an SQL string literal. The sessions of this package run with
// standard_conforming_strings on (pgx requires it), so only quotes need doubling.
func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
