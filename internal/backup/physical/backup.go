package physical

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// minServerVersion is the oldest server this package backs up: it uses pg_backup_start
// and pg_backup_stop, new in PostgreSQL 15.
const minServerVersion = 150000

// controlFile is copied after every other file, as pg_basebackup does.
const controlFile = "global/pg_control"

// server is what Backup learns from the managed cluster before it starts.
type server struct {
	version     int
	inRecovery  bool
	systemID    string
	dataDir     string
	segSize     int64
	logDir      string
	tablespaces string // other than pg_default and pg_global, comma separated
	timeline    int    // of the last checkpoint
}

// Backup takes a physical backup of the cluster at opts.ConnString, writing its objects
// to sink, and returns its manifest: a FULL backup when opts.Parent is nil, else a DELTA
// relative to opts.Parent (see the package documentation). The caller stores the
// manifest; Restore needs it. On error the sink may hold some objects, which the caller
// discards.
func Backup(ctx context.Context, sink Sink, opts Options) (*Manifest, error) {
	if sink == nil {
		return nil, errors.New("physical: Backup needs a Sink")
	}
	b := &backupRun{opts: opts, sink: sink, log: opts.Logger}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	b.workers = opts.Concurrency
	if b.workers <= 0 {
		b.workers = 2
	}
	b.rep = newReporter(opts.Progress)
	defer b.rep.close()
	return b.run(ctx)
}

// backupRun is one Backup in progress.
type backupRun struct {
	opts    Options
	sink    Sink
	log     *slog.Logger
	workers int
	rep     *reporter

	dataDir      string
	serverLogDir string           // log_directory
	parent       map[string]*File // nil for a FULL
	parentStart  lsn

	bufs [][]byte // read buffer of each worker
	outs [][]byte // delta output buffer of each worker

	scanned atomic.Int64
	written atomic.Int64
}

func (b *backupRun) run(ctx context.Context) (*Manifest, error) {
	b.rep.setPhase(PhaseStart, 0)
	conn, err := pgx.Connect(ctx, b.opts.ConnString)
	if err != nil {
		return nil, fmt.Errorf("physical: connecting to the cluster: %w", err)
	}
	defer func() {
		// Ending the session aborts a backup still in progress and drops the
		// temporary slot, whatever happened.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()

	srv, err := inspect(ctx, conn)
	if err != nil {
		return nil, err
	}
	if err := b.check(ctx, conn, srv); err != nil {
		return nil, err
	}

	m := &Manifest{Kind: KindFull, PGVersion: srv.version, SystemID: srv.systemID, WALSegmentSize: srv.segSize}
	if p := b.opts.Parent; p != nil {
		m.Kind = KindDelta
		m.ParentStartLSN = b.parentStart.String()
	}

	// The slot first, on the same session, so that WAL from before the backup's redo
	// point is kept until the WAL copy at the end.
	var suffix [6]byte
	_, _ = rand.Read(suffix[:])
	slot := fmt.Sprintf("onevault_physical_%d_%s", os.Getpid(), hex.EncodeToString(suffix[:]))
	if _, err := conn.Exec(ctx, "SELECT pg_create_physical_replication_slot($1, true, true)", slot); err != nil {
		return nil, fmt.Errorf("physical: creating temporary replication slot %s: %w", slot, err)
	}
	label := b.opts.Label
	if label == "" {
		label = "onevault physical " + strings.ToLower(m.Kind) + " " + time.Now().UTC().Format(time.RFC3339)
	}
	// The label becomes a line of backup_label, at most MAXPGPATH-1 bytes.
	label = strings.NewReplacer("\n", " ", "\r", " ").Replace(label)
	if len(label) > 1000 {
		label = strings.ToValidUTF8(label[:1000], "")
	}
	m.StartTime = time.Now().UTC()
	b.log.Info("physical: pg_backup_start", "kind", m.Kind, "data_dir", b.dataDir)
	var startText string
	if err := conn.QueryRow(ctx, "SELECT pg_backup_start($1, true)::text", label).Scan(&startText); err != nil {
		return nil, fmt.Errorf("physical: pg_backup_start: %w", err)
	}
	start, err := parseLSN(startText)
	if err != nil {
		return nil, err
	}
	m.StartLSN = start.String()

	files, err := b.copyDataDir(ctx, m)
	if err != nil {
		return nil, err
	}
	m.Files = files

	b.rep.setPhase(PhaseStop, 0)
	b.log.Info("physical: pg_backup_stop")
	var stopText string
	if err := conn.QueryRow(ctx, "SELECT lsn::text, labelfile, coalesce(spcmapfile, '') FROM pg_backup_stop(false)").
		Scan(&stopText, &m.BackupLabel, &m.TablespaceMap); err != nil {
		return nil, fmt.Errorf("physical: pg_backup_stop: %w", err)
	}
	m.StopTime = time.Now().UTC()
	stop, err := parseLSN(stopText)
	if err != nil {
		return nil, err
	}
	m.StopLSN = stop.String()
	if m.Timeline, err = labelTimeline(m.BackupLabel); err != nil {
		return nil, err
	}

	if m.WAL, err = b.copyWAL(ctx, m.Timeline, start, stop, srv.segSize); err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, "SELECT pg_drop_replication_slot($1)", slot); err != nil {
		b.log.Warn("physical: dropping the backup's slot failed; it goes with the session anyway", "slot", slot, "error", err.Error())
	}

	m.BytesScanned = b.scanned.Load()
	m.BytesWritten = b.written.Load()
	b.rep.setPhase(PhaseDone, 0)
	b.log.Info("physical: backup done", "kind", m.Kind, "start_lsn", m.StartLSN, "stop_lsn", m.StopLSN,
		"files", len(m.Files), "wal_objects", len(m.WAL), "bytes_read", m.BytesScanned, "bytes_written", m.BytesWritten,
		"took", m.StopTime.Sub(m.StartTime).Round(time.Millisecond).String())
	return m, nil
}

// inspect reads what Backup needs to know about the server.
func inspect(ctx context.Context, conn *pgx.Conn) (*server, error) {
	srv := &server{}
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&srv.version); err != nil {
		return nil, fmt.Errorf("physical: server version: %w", err)
	}
	if srv.version < minServerVersion {
		return nil, fmt.Errorf("%w: the server is PostgreSQL %d.%d; physical backups need PostgreSQL 15 or newer",
			ErrUnsupported, srv.version/10000, srv.version%10000)
	}
	// A backup session may sit idle for as long as the copy takes.
	if _, err := conn.Exec(ctx, "SET statement_timeout = 0; SET lock_timeout = 0; SET idle_session_timeout = 0; "+
		"SET idle_in_transaction_session_timeout = 0"); err != nil {
		return nil, fmt.Errorf("physical: session settings: %w", err)
	}
	err := conn.QueryRow(ctx, `SELECT pg_is_in_recovery(),
		(SELECT system_identifier::text FROM pg_control_system()),
		current_setting('data_directory'),
		(SELECT bytes_per_wal_segment::bigint FROM pg_control_init()),
		current_setting('log_directory'),
		(SELECT coalesce(string_agg(spcname, ', ' ORDER BY spcname), '') FROM pg_tablespace
		  WHERE spcname NOT IN ('pg_default', 'pg_global')),
		(SELECT timeline_id FROM pg_control_checkpoint())`).
		Scan(&srv.inRecovery, &srv.systemID, &srv.dataDir, &srv.segSize, &srv.logDir, &srv.tablespaces, &srv.timeline)
	if err != nil {
		return nil, fmt.Errorf("physical: reading the server's settings (a superuser connection is needed): %w", err)
	}
	return srv, nil
}

// check refuses what this package cannot back up, settles the data directory and reads
// the parent.
func (b *backupRun) check(ctx context.Context, conn *pgx.Conn, srv *server) error {
	if srv.inRecovery {
		return fmt.Errorf("%w: the server is a standby; back up the primary", ErrUnsupported)
	}
	if srv.tablespaces != "" {
		return fmt.Errorf("%w: the cluster has tablespaces other than pg_default and pg_global (%s)",
			ErrUnsupported, srv.tablespaces)
	}
	if srv.segSize <= 0 || srv.segSize%blockSize != 0 {
		return fmt.Errorf("physical: unexpected WAL segment size %d", srv.segSize)
	}
	b.serverLogDir = srv.logDir
	b.dataDir = b.opts.DataDir
	if b.dataDir == "" {
		b.dataDir = srv.dataDir
	}
	// The service reads the files directly: make sure they are this server's.
	f, err := os.Open(filepath.Join(b.dataDir, controlFile))
	if err != nil {
		return fmt.Errorf("physical: data directory %s: %w", b.dataDir, err)
	}
	var sysid [8]byte
	_, err = io.ReadFull(f, sysid[:])
	f.Close()
	if err != nil {
		return fmt.Errorf("physical: reading %s: %w", filepath.Join(b.dataDir, controlFile), err)
	}
	if got := fmt.Sprint(int64(binary.LittleEndian.Uint64(sysid[:]))); got != srv.systemID {
		return fmt.Errorf("physical: data directory %s belongs to system %s, but the server is system %s",
			b.dataDir, got, srv.systemID)
	}

	p := b.opts.Parent
	if p == nil {
		return nil
	}
	if p.SystemID != srv.systemID {
		return fmt.Errorf("%w: parent is a backup of system %s, the server is system %s",
			ErrParentMismatch, p.SystemID, srv.systemID)
	}
	if p.PGVersion/10000 != srv.version/10000 {
		return fmt.Errorf("%w: parent is a backup of PostgreSQL %d, the server runs %d",
			ErrParentMismatch, p.PGVersion/10000, srv.version/10000)
	}
	// Page LSNs are comparable only along one history: after a promotion or a
	// point-in-time recovery, pages of the new timeline may carry LSNs at or below the
	// parent's that mean other changes. A new timeline needs a new FULL backup.
	if p.Timeline != srv.timeline {
		return fmt.Errorf("%w: parent was taken on timeline %d, the server is on timeline %d; take a FULL backup",
			ErrParentMismatch, p.Timeline, srv.timeline)
	}
	if b.parentStart, err = parseLSN(p.StartLSN); err != nil {
		return fmt.Errorf("%w: parent start LSN: %v", ErrParentMismatch, err)
	}
	var current string
	if err := conn.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&current); err != nil {
		return fmt.Errorf("physical: current WAL position: %w", err)
	}
	if cur, err := parseLSN(current); err != nil || cur < b.parentStart {
		return fmt.Errorf("%w: parent started at %s, after the server's current WAL position %s",
			ErrParentMismatch, p.StartLSN, current)
	}
	b.parent = make(map[string]*File, len(p.Files))
	for i := range p.Files {
		b.parent[p.Files[i].Path] = &p.Files[i]
	}
	return nil
}

// copyDataDir copies the data directory's files, largest first, pg_control last, and
// returns them sorted by path.
func (b *backupRun) copyDataDir(ctx context.Context, m *Manifest) ([]File, error) {
	// The server log is no part of a backup: "log" is where pgcluster and the
	// default log_directory put it.
	skip := map[string]bool{"log": true}
	if d := relInside(b.dataDir, b.serverLogDir); d != "" {
		skip[d] = true
	}
	entries, dirs, err := scan(b.dataDir, skip)
	if err != nil {
		return nil, err
	}
	m.Dirs = dirs
	var control *entry
	var total int64
	for _, e := range entries {
		total += e.size
	}
	for i := range entries {
		if entries[i].rel == controlFile {
			c := entries[i]
			control = &c
			entries = slices.Delete(entries, i, i+1)
			break
		}
	}
	if control == nil {
		return nil, fmt.Errorf("physical: %s has no %s", b.dataDir, controlFile)
	}
	slices.SortStableFunc(entries, func(x, y entry) int {
		switch {
		case x.size > y.size:
			return -1
		case x.size < y.size:
			return 1
		}
		return strings.Compare(x.rel, y.rel)
	})

	b.bufs = make([][]byte, b.workers)
	b.outs = make([][]byte, b.workers)
	for w := range b.workers {
		b.bufs[w] = make([]byte, bufferSize)
		if b.parent != nil {
			b.outs[w] = make([]byte, 0, (bufferSize/deltaRecord)*deltaRecord)
		}
	}
	b.rep.setPhase(PhaseCopy, total)
	b.log.Info("physical: copying", "files", len(entries)+1, "bytes", total, "copiers", b.workers)
	results := make([]*File, len(entries))
	err = runPool(ctx, b.workers, len(entries), func(ctx context.Context, w, i int) error {
		f, err := b.copyFile(ctx, w, entries[i])
		results[i] = f
		return err
	})
	if err != nil {
		return nil, err
	}
	cf, err := b.copyFile(ctx, 0, *control)
	if err != nil {
		return nil, err
	}
	if cf == nil {
		return nil, fmt.Errorf("physical: %s vanished during the backup", controlFile)
	}
	files := make([]File, 0, len(results)+1)
	for _, f := range results {
		if f != nil {
			files = append(files, *f)
		}
	}
	files = append(files, *cf)
	slices.SortFunc(files, func(x, y File) int { return strings.Compare(x.Path, y.Path) })
	return files, nil
}

// relInside returns p relative to dir, / separated, when p is inside dir; a relative p
// is taken as relative to dir.
func relInside(dir, p string) string {
	if p == "" {
		return ""
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(dir, p)
	}
	rel, err := filepath.Rel(dir, p)
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return ""
	}
	return filepath.ToSlash(rel)
}

// copyFile backs up one file and returns its manifest entry, or nil when it vanished.
func (b *backupRun) copyFile(ctx context.Context, w int, e entry) (*File, error) {
	if b.parent == nil {
		return b.copyWhole(ctx, w, e)
	}
	pf := b.parent[e.rel]
	switch {
	case pf == nil:
		return b.copyWhole(ctx, w, e)
	case e.paged:
		return b.copyChangedBlocks(ctx, w, e, pf)
	case pf.SHA256 != "" && pf.Size == e.size:
		return b.copyIfChanged(ctx, w, e, pf)
	default:
		return b.copyWhole(ctx, w, e)
	}
}

// open opens a file of the data directory; a file that vanished gives nil.
func open(e entry) (*os.File, error) {
	f, err := os.Open(e.abs)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("physical: %w", err)
	}
	return f, nil
}

// copyWhole stores the whole file. Files that are not relation data files get their
// SHA-256 recorded, for the next DELTA to compare.
func (b *backupRun) copyWhole(ctx context.Context, w int, e entry) (*File, error) {
	f, err := open(e)
	if f == nil || err != nil {
		return nil, err
	}
	defer f.Close()
	return b.store(ctx, w, e, f)
}

// store writes what remains of f to the object of e.
func (b *backupRun) store(ctx context.Context, w int, e entry, f *os.File) (*File, error) {
	name := dataPrefix + e.rel
	out, err := b.sink.Create(name)
	if err != nil {
		return nil, fmt.Errorf("physical: creating object %s: %w", name, err)
	}
	var h *hasher
	if !e.paged {
		h = newHasher()
	}
	n, err := b.stream(ctx, f, out, b.bufs[w], h)
	if cerr := out.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("physical: finishing object %s: %w", name, cerr)
	}
	if err != nil {
		return nil, err
	}
	file := &File{Path: e.rel, Size: n, Mode: uint32(e.mode), Object: name}
	if h != nil {
		file.SHA256 = h.sum()
	}
	return file, nil
}

// stream copies r to out through buf until EOF, feeding h when not nil, and counts the
// bytes. It returns the number of bytes copied.
func (b *backupRun) stream(ctx context.Context, r io.Reader, out io.Writer, buf []byte, h *hasher) (int64, error) {
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n, err := r.Read(buf)
		if n > 0 {
			b.scanned.Add(int64(n))
			b.rep.add(int64(n))
			if h != nil {
				h.write(buf[:n])
			}
			if out != nil {
				if _, werr := out.Write(buf[:n]); werr != nil {
					return total, fmt.Errorf("physical: writing object: %w", werr)
				}
				b.written.Add(int64(n))
			}
			total += int64(n)
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, fmt.Errorf("physical: reading: %w", err)
		}
	}
}

// copyIfChanged stores a whole file only when its bytes differ from the parent's, which
// it learns by hashing it first.
func (b *backupRun) copyIfChanged(ctx context.Context, w int, e entry, pf *File) (*File, error) {
	f, err := open(e)
	if f == nil || err != nil {
		return nil, err
	}
	defer f.Close()
	h := newHasher()
	n, err := b.stream(ctx, f, nil, b.bufs[w], h)
	if err != nil {
		return nil, fmt.Errorf("physical: %s: %w", e.rel, err)
	}
	if sum := h.sum(); n == pf.Size && sum == pf.SHA256 {
		return &File{Path: e.rel, Size: n, Mode: uint32(e.mode), SHA256: sum}, nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("physical: %w", err)
	}
	return b.store(ctx, w, e, f)
}

// copyChangedBlocks stores the blocks of a relation data file that changed since the
// parent's start (see the package documentation) as [uint32 block][8192 bytes] records.
// A file with no such block gets no object.
func (b *backupRun) copyChangedBlocks(ctx context.Context, w int, e entry, pf *File) (*File, error) {
	f, err := open(e)
	if f == nil || err != nil {
		return nil, err
	}
	defer f.Close()

	name := dataPrefix + e.rel
	var out io.WriteCloser
	rec := b.outs[w][:0]
	flush := func() error {
		if len(rec) == 0 {
			return nil
		}
		if out == nil {
			if out, err = b.sink.Create(name); err != nil {
				out = nil
				return fmt.Errorf("physical: creating object %s: %w", name, err)
			}
		}
		if _, err := out.Write(rec); err != nil {
			return fmt.Errorf("physical: writing object %s: %w", name, err)
		}
		b.written.Add(int64(len(rec)))
		rec = rec[:0]
		return nil
	}
	run := func() (int64, int, error) {
		buf := b.bufs[w]
		firstNew := uint64(pf.Size / blockSize) // the first block not wholly in the parent
		var total int64
		blocks := 0
		blk := uint64(0)
		for {
			if err := ctx.Err(); err != nil {
				return total, blocks, err
			}
			n, rerr := io.ReadFull(f, buf)
			for off := 0; off < n; off += blockSize {
				page := buf[off:min(off+blockSize, n)]
				if len(page) < blockSize || blk >= firstNew {
					// Always taken.
				} else if l := pageLSN(page); l != 0 && l <= b.parentStart {
					blk++
					continue
				}
				rec = binary.LittleEndian.AppendUint32(rec, uint32(blk))
				rec = append(rec, page...)
				rec = append(rec, zeroPage[:blockSize-len(page)]...)
				blocks++
				blk++
				if len(rec)+deltaRecord > cap(rec) {
					if err := flush(); err != nil {
						return total, blocks, err
					}
				}
			}
			total += int64(n)
			b.scanned.Add(int64(n))
			b.rep.add(int64(n))
			if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
				return total, blocks, flush()
			}
			if rerr != nil {
				return total, blocks, fmt.Errorf("physical: reading %s: %w", e.abs, rerr)
			}
		}
	}
	total, blocks, err := run()
	if out != nil {
		if cerr := out.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("physical: finishing object %s: %w", name, cerr)
		}
	}
	if err != nil {
		return nil, err
	}
	file := &File{Path: e.rel, Size: total, Mode: uint32(e.mode)}
	if blocks > 0 {
		file.Object, file.Delta, file.Blocks = name, true, blocks
	}
	return file, nil
}

// zeroPage is a page of zeros, to pad and compare.
var zeroPage [blockSize]byte
