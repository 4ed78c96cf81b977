package physical

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
)

// entry is a regular file of the data directory to back up.
type entry struct {
	rel   string // relative, / separated
	abs   string
	size  int64 // at the scan; the copy takes what it reads
	mode  fs.FileMode
	paged bool // a relation data file (main fork), whose blocks a DELTA judges by LSN
}

// skippedFiles are top-level files that a backup never takes, as pg_basebackup: the
// server's lock and options files, and the files of a running or earlier backup.
var skippedFiles = map[string]bool{
	"postmaster.pid":           true,
	"postmaster.opts":          true,
	"backup_label":             true,
	"backup_label.old":         true,
	"tablespace_map":           true,
	"tablespace_map.old":       true,
	"backup_manifest":          true,
	"postgresql.auto.conf.tmp": true,
	"current_logfiles.tmp":     true,
}

// contentSkippedDirs are top-level directories whose contents a backup does not take:
// PostgreSQL recreates or does not need them (pg_wal comes from the WAL copy).
var contentSkippedDirs = map[string]bool{
	"pg_wal":       true,
	"pg_replslot":  true,
	"pg_dynshmem":  true,
	"pg_notify":    true,
	"pg_serial":    true,
	"pg_snapshots": true,
	"pg_stat_tmp":  true,
	"pg_subtrans":  true,
}

// relFileRE matches the files of a relation in a database directory: relfilenode, fork
// and segment number.
var relFileRE = regexp.MustCompile(`^(\d+)(_(fsm|vm|init))?(\.\d+)?$`)

// tempRelRE matches the files of temporary relations, t<backend>_<relfilenode>...
var tempRelRE = regexp.MustCompile(`^t\d+_\d+`)

// dbDirRE matches the directories that hold relation files in the default tablespaces.
var dbDirRE = regexp.MustCompile(`^(global|base/\d+)$`)

// scan lists the files and directories of the data directory dataDir that a backup
// takes. skipDirs are relative directories left out entirely (the server log).
func scan(dataDir string, skipDirs map[string]bool) (files []entry, dirs []string, err error) {
	var walk func(rel string) error
	walk = func(rel string) error {
		abs := filepath.Join(dataDir, filepath.FromSlash(rel))
		des, err := os.ReadDir(abs)
		if err != nil {
			if rel != "" && errors.Is(err, fs.ErrNotExist) {
				return nil // a directory removed during the scan, such as a dropped database
			}
			return fmt.Errorf("physical: reading %s: %w", abs, err)
		}
		isDBDir := dbDirRE.MatchString(rel)
		// The relfilenodes of unlogged relations: those with an _init fork. Their other
		// forks are not backed up; PostgreSQL resets them from _init after recovery.
		unlogged := map[string]bool{}
		if isDBDir {
			for _, de := range des {
				if m := relFileRE.FindStringSubmatch(de.Name()); m != nil && m[3] == "init" {
					unlogged[m[1]] = true
				}
			}
		}
		for _, de := range des {
			name := de.Name()
			childRel := path.Join(rel, name)
			if rel == "" && skippedFiles[name] {
				continue
			}
			if skipDirs[childRel] || strings.HasPrefix(name, "pgsql_tmp") || strings.HasPrefix(name, "pg_internal.init") {
				continue
			}
			if isDBDir && tempRelRE.MatchString(name) {
				continue
			}
			m := relFileRE.FindStringSubmatch(name)
			if isDBDir && m != nil && unlogged[m[1]] && m[3] != "init" {
				continue
			}
			fi, err := os.Lstat(filepath.Join(abs, name))
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed since ReadDir
			} else if err != nil {
				return fmt.Errorf("physical: %w", err)
			}
			switch {
			case rel == "pg_tblspc":
				return fmt.Errorf("%w: pg_tblspc/%s: tablespaces other than pg_default and pg_global are not supported",
					ErrUnsupported, name)
			case rel == "" && contentSkippedDirs[name] && (fi.IsDir() || fi.Mode()&fs.ModeSymlink != 0):
				dirs = append(dirs, childRel)
				if name == "pg_wal" {
					dirs = append(dirs, "pg_wal/archive_status")
				}
			case fi.Mode()&fs.ModeSymlink != 0:
				return fmt.Errorf("%w: %s is a symbolic link; only pg_wal may be one", ErrUnsupported, childRel)
			case fi.IsDir():
				dirs = append(dirs, childRel)
				if err := walk(childRel); err != nil {
					return err
				}
			case fi.Mode().IsRegular():
				files = append(files, entry{
					rel:   childRel,
					abs:   filepath.Join(abs, name),
					size:  fi.Size(),
					mode:  fi.Mode().Perm(),
					paged: isDBDir && m != nil && m[2] == "",
				})
			default:
				// Sockets, pipes and devices have no place in a data directory.
			}
		}
		return nil
	}
	if err := walk(""); err != nil {
		return nil, nil, err
	}
	return files, dirs, nil
}
