package storage

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// BackupRef names one committed backup of the repository: the location it is in and its id.
type BackupRef struct {
	Location string
	ID       string
}

// Backups lists every committed backup of the repository, in every location, by walking the
// tree: a directory that holds a manifest is a backup, and nothing below it is looked at. The
// WAL archive and the directories of unfinished writers (.partial) or interrupted deletes
// (.deleting) are skipped. It serves a restore without the service's catalogue, which only the
// repository's manifests can answer then.
func (r *Repository) Backups() ([]BackupRef, error) {
	var out []BackupRef
	err := fs.WalkDir(r.fs.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() || p == "." {
			return nil
		}
		name := d.Name()
		if p == ReservedWAL || strings.HasSuffix(name, partialSuffix) || strings.HasSuffix(name, deletingSuffix) {
			return fs.SkipDir
		}
		if _, err := fs.Stat(r.fs.FS(), path.Join(p, manifestFile)); errors.Is(err, fs.ErrNotExist) {
			return nil
		} else if err != nil {
			return err
		}
		loc := path.Dir(p)
		if loc == "." {
			loc = ""
		}
		out = append(out, BackupRef{Location: loc, ID: name})
		return fs.SkipDir
	})
	if err != nil {
		return nil, fmt.Errorf("storage: listing the backups: %w", err)
	}
	return out, nil
}
