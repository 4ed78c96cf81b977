package physical

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/onevault/readiness/internal/pgcluster"
)

// requiredDirs are the directories PostgreSQL needs in a data directory, created by
// Restore whether or not the manifest lists them.
var requiredDirs = []string{
	"base", "global", "pg_dynshmem", "pg_logical", "pg_logical/mappings", "pg_logical/snapshots",
	"pg_multixact", "pg_multixact/members", "pg_multixact/offsets", "pg_notify", "pg_replslot",
	"pg_serial", "pg_snapshots", "pg_stat", "pg_stat_tmp", "pg_subtrans", "pg_tblspc", "pg_twophase",
	"pg_wal", "pg_wal/archive_status", "pg_xact",
}

// step is one backup of the chain that contributes to a restored file.
type step struct {
	src  Source
	file *File
}

// restorePlan is how one file of the last backup is rebuilt: whole from steps[0], then
// the blocks of each later step.
type restorePlan struct {
	path  string
	size  int64
	mode  fs.FileMode
	steps []step
	bytes int64 // written in all, for progress
}

// Restore writes a chain of backups into targetDir, which must not exist or be empty:
// chain[0] is a FULL backup, each later one a DELTA whose parent is the one before it,
// and sources[i] holds the objects of chain[i]. The result is the data directory as of
// the last backup, with its backup_label, tablespace_map and WAL, owned by the postgres
// user when running as root: PostgreSQL started on it replays the WAL from the last
// backup's checkpoint and comes up consistent. progress may be nil.
//
// Restore does not fsync: PostgreSQL syncs the data directory when it starts recovery.
func Restore(ctx context.Context, chain []*Manifest, sources []Source, targetDir string, progress func(Progress)) error {
	if err := checkChain(chain, sources); err != nil {
		return err
	}
	own, err := pgcluster.ServerOwner()
	if err != nil {
		return err
	}
	if err := prepareTarget(targetDir, own); err != nil {
		return err
	}
	last := chain[len(chain)-1]

	plans, err := planRestore(chain, sources)
	if err != nil {
		return err
	}
	dirs := map[string]bool{}
	addDir := func(d string) {
		for ; d != "." && d != "/" && d != "" && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	for _, d := range requiredDirs {
		addDir(d)
	}
	for _, d := range last.Dirs {
		addDir(path.Clean(d))
	}
	for _, p := range plans {
		addDir(path.Dir(p.path))
	}
	for _, d := range slices.Sorted(maps.Keys(dirs)) {
		if err := mkdir(own, filepath.Join(targetDir, filepath.FromSlash(d))); err != nil {
			return err
		}
	}

	rep := newReporter(progress)
	defer rep.close()
	var total int64
	for _, p := range plans {
		total += p.bytes
	}
	workers := min(max(runtime.GOMAXPROCS(0), 2), 8)
	bufs := make([][]byte, workers)
	pages := make([][]byte, workers)
	for w := range workers {
		bufs[w] = make([]byte, (bufferSize/deltaRecord)*deltaRecord)
		pages[w] = make([]byte, bufferSize)
	}
	rep.setPhase(PhaseRestoreData, total)
	err = runPool(ctx, workers, len(plans), func(ctx context.Context, w, i int) error {
		return restoreFile(ctx, targetDir, own, plans[i], bufs[w], pages[w], rep)
	})
	if err != nil {
		return err
	}
	if err := writeFile(own, filepath.Join(targetDir, "backup_label"), []byte(last.BackupLabel)); err != nil {
		return err
	}
	if last.TablespaceMap != "" {
		if err := writeFile(own, filepath.Join(targetDir, "tablespace_map"), []byte(last.TablespaceMap)); err != nil {
			return err
		}
	}

	rep.setPhase(PhaseRestoreWAL, int64(len(last.WAL))*last.WALSegmentSize)
	src := sources[len(sources)-1]
	err = runPool(ctx, workers, len(last.WAL), func(ctx context.Context, w, i int) error {
		return restoreWAL(ctx, targetDir, own, src, last.WAL[i], last.WALSegmentSize, bufs[w], rep)
	})
	if err != nil {
		return err
	}
	// Everything written is on its way to the disk already; wait for it here, where it
	// overlapped with the restore, rather than in PostgreSQL's start-up fsync of every file.
	rep.setPhase(PhaseRestoreSync, 0)
	if err := syncFS(targetDir); err != nil {
		return err
	}
	rep.setPhase(PhaseDone, 0)
	return nil
}

// checkChain refuses a chain that Restore cannot rebuild.
func checkChain(chain []*Manifest, sources []Source) error {
	if len(chain) == 0 {
		return fmt.Errorf("%w: no backup to restore", ErrInvalidChain)
	}
	if len(sources) != len(chain) {
		return fmt.Errorf("%w: %d backups but %d sources", ErrInvalidChain, len(chain), len(sources))
	}
	for i, m := range chain {
		if m == nil || sources[i] == nil {
			return fmt.Errorf("%w: backup %d of the chain or its source is missing", ErrInvalidChain, i)
		}
	}
	if chain[0].Kind != KindFull {
		return fmt.Errorf("%w: the first backup of a chain must be %s, not %q", ErrInvalidChain, KindFull, chain[0].Kind)
	}
	for i := 1; i < len(chain); i++ {
		prev, m := chain[i-1], chain[i]
		if m.Kind != KindDelta {
			return fmt.Errorf("%w: backup %d of the chain is %q; only the first may be %s", ErrInvalidChain, i, m.Kind, KindFull)
		}
		if m.SystemID != prev.SystemID || m.PGVersion/10000 != prev.PGVersion/10000 {
			return fmt.Errorf("%w: backup %d is of system %s (PostgreSQL %d), backup %d of system %s (PostgreSQL %d)",
				ErrInvalidChain, i, m.SystemID, m.PGVersion/10000, i-1, prev.SystemID, prev.PGVersion/10000)
		}
		parentStart, err1 := parseLSN(m.ParentStartLSN)
		prevStart, err2 := parseLSN(prev.StartLSN)
		prevStop, err3 := parseLSN(prev.StopLSN)
		start, err4 := parseLSN(m.StartLSN)
		if err := errors.Join(err1, err2, err3, err4); err != nil {
			return fmt.Errorf("%w: backup %d: %v", ErrInvalidChain, i, err)
		}
		if parentStart != prevStart {
			return fmt.Errorf("%w: backup %d holds the changes since %s, but backup %d started at %s",
				ErrInvalidChain, i, m.ParentStartLSN, i-1, prev.StartLSN)
		}
		if start < prevStop {
			return fmt.Errorf("%w: backup %d starts at %s, before backup %d stopped at %s",
				ErrInvalidChain, i, m.StartLSN, i-1, prev.StopLSN)
		}
	}
	last := chain[len(chain)-1]
	if last.WALSegmentSize <= 0 || last.BackupLabel == "" || len(last.WAL) == 0 {
		return fmt.Errorf("%w: the last backup has no WAL, WAL segment size or backup label", ErrInvalidChain)
	}
	return nil
}

// planRestore works out, for each file of the last backup, which backups rebuild it.
func planRestore(chain []*Manifest, sources []Source) ([]restorePlan, error) {
	index := make([]map[string]*File, len(chain))
	for i, m := range chain {
		index[i] = make(map[string]*File, len(m.Files))
		for j := range m.Files {
			index[i][m.Files[j].Path] = &m.Files[j]
		}
	}
	last := chain[len(chain)-1]
	plans := make([]restorePlan, 0, len(last.Files))
	for _, lf := range last.Files {
		if !localPath(lf.Path) {
			return nil, fmt.Errorf("%w: file path %q", ErrCorrupt, lf.Path)
		}
		// The newest backup that holds the file whole; every later one has it, as
		// blocks or unchanged, since a file missing from a parent is stored whole.
		k := -1
		for j := len(chain) - 1; j >= 0; j-- {
			f := index[j][lf.Path]
			if f == nil {
				return nil, fmt.Errorf("%w: %s is in the last backup but not in backup %d, and no later backup holds it whole",
					ErrInvalidChain, lf.Path, j)
			}
			if f.Object != "" && !f.Delta {
				k = j
				break
			}
		}
		if k < 0 {
			return nil, fmt.Errorf("%w: no backup of the chain holds %s whole", ErrInvalidChain, lf.Path)
		}
		p := restorePlan{path: lf.Path, size: lf.Size, mode: fs.FileMode(lf.Mode).Perm()}
		if p.mode == 0 {
			p.mode = 0o600
		}
		for j := k; j < len(chain); j++ {
			f := index[j][lf.Path]
			p.steps = append(p.steps, step{src: sources[j], file: f})
			if j == k {
				p.bytes += f.Size
			} else if f.Delta {
				p.bytes += int64(f.Blocks) * blockSize
			}
		}
		plans = append(plans, p)
	}
	slices.SortStableFunc(plans, func(x, y restorePlan) int {
		switch {
		case x.bytes > y.bytes:
			return -1
		case x.bytes < y.bytes:
			return 1
		}
		return 0
	})
	return plans, nil
}

// localPath reports whether p is a relative path that stays inside the target.
func localPath(p string) bool {
	return p != "" && !strings.HasPrefix(p, "/") && path.Clean(p) == p && p != ".." && !strings.HasPrefix(p, "../") &&
		filepath.IsLocal(filepath.FromSlash(p))
}

// restoreFile rebuilds one file.
func restoreFile(ctx context.Context, targetDir string, own *pgcluster.Owner, p restorePlan, buf, pages []byte, rep *reporter) error {
	target := filepath.Join(targetDir, filepath.FromSlash(p.path))
	out, err := os.OpenFile(target, os.O_RDWR|os.O_CREATE|os.O_EXCL, p.mode)
	if err != nil {
		return fmt.Errorf("physical: %w", err)
	}
	defer out.Close()
	if err := own.Chown(out); err != nil {
		return err
	}
	for i, s := range p.steps {
		switch {
		case i == 0:
			err = restoreWhole(ctx, out, s, buf, rep)
		case s.file.Delta && s.file.Object != "":
			err = applyBlocks(ctx, out, s, buf, pages, rep)
		}
		if err != nil {
			return err
		}
		if err := out.Truncate(s.file.Size); err != nil {
			return fmt.Errorf("physical: %w", err)
		}
	}
	startWriteback(out, 0)
	if err := out.Close(); err != nil {
		return fmt.Errorf("physical: %w", err)
	}
	return nil
}

// restoreWhole writes a whole-file object to out.
func restoreWhole(ctx context.Context, out *os.File, s step, buf []byte, rep *reporter) error {
	in, err := s.src.Open(s.file.Object)
	if err != nil {
		return fmt.Errorf("physical: opening object %s: %w", s.file.Object, err)
	}
	defer in.Close()
	var n int64
	wb := writeback{f: out}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		m, rerr := in.Read(buf)
		if m > 0 {
			if _, err := out.Write(buf[:m]); err != nil {
				return fmt.Errorf("physical: %w", err)
			}
			n += int64(m)
			rep.add(int64(m))
			wb.wrote(n)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("physical: reading object %s: %w", s.file.Object, rerr)
		}
	}
	if n != s.file.Size {
		return fmt.Errorf("%w: object %s holds %d bytes, the manifest says %d", ErrCorrupt, s.file.Object, n, s.file.Size)
	}
	return in.Close()
}

// applyBlocks writes the blocks of a delta object into out, coalescing runs of
// consecutive blocks into one write.
func applyBlocks(ctx context.Context, out *os.File, s step, buf, pages []byte, rep *reporter) error {
	in, err := s.src.Open(s.file.Object)
	if err != nil {
		return fmt.Errorf("physical: opening object %s: %w", s.file.Object, err)
	}
	defer in.Close()
	maxBlock := (s.file.Size + blockSize - 1) / blockSize
	blocks := 0
	runStart, runLen := int64(-1), 0 // the run of consecutive blocks gathered in pages
	flush := func() error {
		if runLen > 0 {
			if _, err := out.WriteAt(pages[:runLen], runStart*blockSize); err != nil {
				return fmt.Errorf("physical: %w", err)
			}
			rep.add(int64(runLen))
		}
		runStart, runLen = -1, 0
		return nil
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, rerr := io.ReadFull(in, buf)
		if rerr != nil && rerr != io.EOF && rerr != io.ErrUnexpectedEOF {
			return fmt.Errorf("physical: reading object %s: %w", s.file.Object, rerr)
		}
		if n%deltaRecord != 0 {
			return fmt.Errorf("%w: object %s ends inside a block record", ErrCorrupt, s.file.Object)
		}
		for off := 0; off < n; off += deltaRecord {
			blk := int64(binary.LittleEndian.Uint32(buf[off:]))
			if blk >= maxBlock {
				return fmt.Errorf("%w: object %s holds block %d of a file of %d bytes", ErrCorrupt, s.file.Object, blk, s.file.Size)
			}
			if runLen > 0 && (blk != runStart+int64(runLen/blockSize) || runLen+blockSize > len(pages)) {
				if err := flush(); err != nil {
					return err
				}
			}
			if runLen == 0 {
				runStart = blk
			}
			runLen += copy(pages[runLen:runLen+blockSize], buf[off+4:off+deltaRecord])
			blocks++
		}
		if rerr != nil { // EOF
			break
		}
	}
	if err := flush(); err != nil {
		return err
	}
	if blocks != s.file.Blocks {
		return fmt.Errorf("%w: object %s holds %d blocks, the manifest says %d", ErrCorrupt, s.file.Object, blocks, s.file.Blocks)
	}
	return in.Close()
}

// restoreWAL writes one WAL object into pg_wal, padding a segment with the zeros that
// Backup left out.
func restoreWAL(ctx context.Context, targetDir string, own *pgcluster.Owner, src Source, object string, segSize int64, buf []byte, rep *reporter) error {
	name := path.Base(object)
	if !localPath(object) || name == "." || name == "/" {
		return fmt.Errorf("%w: WAL object name %q", ErrCorrupt, object)
	}
	in, err := src.Open(object)
	if err != nil {
		return fmt.Errorf("physical: opening object %s: %w", object, err)
	}
	defer in.Close()
	out, err := os.OpenFile(filepath.Join(targetDir, "pg_wal", name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("physical: %w", err)
	}
	defer out.Close()
	if err := own.Chown(out); err != nil {
		return err
	}
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		m, rerr := in.Read(buf)
		if m > 0 {
			if _, err := out.Write(buf[:m]); err != nil {
				return fmt.Errorf("physical: %w", err)
			}
			n += int64(m)
			rep.add(int64(m))
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("physical: reading object %s: %w", object, rerr)
		}
	}
	if isWALSegmentName(name) {
		if n > segSize {
			return fmt.Errorf("%w: WAL object %s holds %d bytes, more than a segment of %d", ErrCorrupt, object, n, segSize)
		}
		// Real zeros rather than a sparse tail: PostgreSQL reuses segments.
		for n < segSize {
			k := min(segSize-n, blockSize)
			if _, err := out.Write(zeroPage[:k]); err != nil {
				return fmt.Errorf("physical: %w", err)
			}
			n += k
			rep.add(k)
		}
	}
	startWriteback(out, 0)
	if err := out.Close(); err != nil {
		return fmt.Errorf("physical: %w", err)
	}
	return in.Close()
}

// prepareTarget creates the target directory, or checks that it is empty, with mode 0700.
func prepareTarget(dir string, own *pgcluster.Owner) error {
	des, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("physical: %w", err)
		}
	case err != nil:
		return fmt.Errorf("physical: restore target: %w", err)
	case len(des) > 0:
		return fmt.Errorf("%w: %s", ErrTargetNotEmpty, dir)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("physical: %w", err)
	}
	return own.Lchown(dir)
}

// mkdir creates a directory of the restored data directory; its parent exists.
func mkdir(o *pgcluster.Owner, dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("physical: %w", err)
	}
	return o.Lchown(dir)
}

// writeFile writes a small file of the restored data directory.
func writeFile(o *pgcluster.Owner, name string, data []byte) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("physical: %w", err)
	}
	if err := o.Chown(f); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("physical: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("physical: %w", err)
	}
	return nil
}
