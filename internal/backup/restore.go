package backup

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/google/uuid"

	"github.com/onevault/readiness/gen/db"
	"github.com/onevault/readiness/internal/backup/logical"
	"github.com/onevault/readiness/internal/backup/physical"
	"github.com/onevault/readiness/internal/storage"
)

// ErrNotRestorable refuses a restore of a backup that has no usable data (not completed,
// expired, or a chain with a missing link).
var ErrNotRestorable = errors.New("backup cannot be restored")

// Chain is a restorable backup with its ancestors, the FULL first, each opened with its manifest.
type Chain struct {
	Executions []db.CurrentBackupExecution
	Manifests  []*Manifest
	Readers    []*storage.Reader
}

// OpenChain opens a completed backup and every backup it builds on.
func (s *Service) OpenChain(ctx context.Context, tenantHK []byte, id uuid.UUID) (*Chain, error) {
	var rows []db.CurrentBackupExecution
	err := s.store.InTenant(ctx, tenantHK, func(q *db.Queries) error {
		var err error
		rows, err = q.BackupChain(ctx, db.BackupChainParams{TenantHk: tenantHK, BackupBk: id})
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%w: backup %s not found", ErrNotRestorable, id)
	}
	c := &Chain{}
	for _, r := range rows {
		switch r.Status {
		case StatusCompleted, StatusVerified:
		default:
			return nil, fmt.Errorf("%w: backup %s in the chain is %s", ErrNotRestorable, r.BackupBk, r.Status)
		}
		rd, err := s.repo.OpenBackup(deref(r.Location), r.BackupBk.String())
		if err != nil {
			return nil, fmt.Errorf("%w: backup %s: %w", ErrNotRestorable, r.BackupBk, err)
		}
		m := &Manifest{}
		if err := rd.Manifest(m); err != nil {
			return nil, err
		}
		c.Executions = append(c.Executions, r)
		c.Manifests = append(c.Manifests, m)
		c.Readers = append(c.Readers, rd)
	}
	if c.Manifests[0].Type != TypeFull {
		return nil, fmt.Errorf("%w: the chain of %s does not start with a FULL backup", ErrNotRestorable, id)
	}
	return c, nil
}

// source adapts a repository reader to the engines' Source, by object name.
type source struct {
	rd    *storage.Reader
	files map[string]string
}

func (s source) Open(name string) (io.ReadCloser, error) {
	f, ok := s.files[name]
	if !ok {
		return nil, fmt.Errorf("object %q is not in the backup", name)
	}
	return s.rd.Open(f)
}

func (c *Chain) sources() []source {
	out := make([]source, len(c.Manifests))
	for i, m := range c.Manifests {
		files := map[string]string{}
		for _, o := range m.Objects {
			files[o.Name] = o.File
		}
		out[i] = source{rd: c.Readers[i], files: files}
	}
	return out
}

// RestoreSystem lays a SYSTEM backup's chain into a new data directory, ready for PostgreSQL
// to start and replay to consistency.
func (s *Service) RestoreSystem(ctx context.Context, c *Chain, targetDir string, progress func(physical.Progress)) error {
	return RestoreSystemChain(ctx, c, targetDir, progress)
}

// RestoreLogical loads a TENANT chain or a SCHEMA backup into targetConn, an existing empty database.
func (s *Service) RestoreLogical(ctx context.Context, c *Chain, targetConn string) (logical.RestoreReport, error) {
	return RestoreLogicalChain(ctx, c, targetConn, s.cfg.BinDir)
}
