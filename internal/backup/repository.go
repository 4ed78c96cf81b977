package backup

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/onevault/readiness/internal/backup/logical"
	"github.com/onevault/readiness/internal/backup/physical"
	"github.com/onevault/readiness/internal/storage"
)

// Stored is a committed backup found in the repository by its manifest, without the catalogue.
type Stored struct {
	Location string
	Manifest *Manifest
	Reader   *storage.Reader
}

// ScanRepository reads the manifest of every committed backup in the repository. It is how a
// backup is found on the day the service database is lost, and how the catalogue is rebuilt:
// the repository alone holds every backup's identity, tenant, type, parent and objects.
func ScanRepository(repo *storage.Repository) (map[uuid.UUID]Stored, error) {
	refs, err := repo.Backups()
	if err != nil {
		return nil, err
	}
	out := make(map[uuid.UUID]Stored, len(refs))
	for _, ref := range refs {
		id, err := uuid.Parse(ref.ID)
		if err != nil {
			continue // not a backup of this service
		}
		rd, err := repo.OpenBackup(ref.Location, ref.ID)
		if err != nil {
			return nil, err
		}
		m := &Manifest{}
		if err := rd.Manifest(m); err != nil {
			return nil, err
		}
		if m.BackupID != id {
			return nil, fmt.Errorf("%w: the manifest in %s names backup %s", storage.ErrIntegrity, rd.Path(), m.BackupID)
		}
		if prev, ok := out[id]; ok {
			return nil, fmt.Errorf("backup %s is in two locations, %q and %q", id, prev.Location, ref.Location)
		}
		out[id] = Stored{Location: ref.Location, Manifest: m, Reader: rd}
	}
	return out, nil
}

// ChainFromRepository resolves a backup's chain from the manifests' parents alone, the FULL
// first, ready for RestoreSystemChain or RestoreLogicalChain.
func ChainFromRepository(stored map[uuid.UUID]Stored, id uuid.UUID) (*Chain, error) {
	var rev []Stored
	seen := map[uuid.UUID]bool{}
	for cur := &id; cur != nil; {
		if seen[*cur] {
			return nil, fmt.Errorf("%w: the chain of %s loops at %s", ErrNotRestorable, id, *cur)
		}
		seen[*cur] = true
		s, ok := stored[*cur]
		if !ok {
			if *cur == id {
				return nil, fmt.Errorf("%w: backup %s is not in the repository", ErrNotRestorable, id)
			}
			return nil, fmt.Errorf("%w: backup %s of the chain of %s is not in the repository (expired or deleted)", ErrNotRestorable, *cur, id)
		}
		rev = append(rev, s)
		cur = s.Manifest.Parent
	}
	slices.Reverse(rev)
	c := &Chain{}
	for _, s := range rev {
		c.Manifests = append(c.Manifests, s.Manifest)
		c.Readers = append(c.Readers, s.Reader)
	}
	if c.Manifests[0].Type != TypeFull {
		return nil, fmt.Errorf("%w: the chain of %s does not start with a FULL backup", ErrNotRestorable, id)
	}
	last := c.Manifests[len(c.Manifests)-1]
	for _, m := range c.Manifests {
		if m.Scope != last.Scope || m.Tenant != last.Tenant {
			return nil, fmt.Errorf("%w: backup %s of the chain of %s is a %s backup of %s", ErrNotRestorable, m.BackupID, id, m.Scope, m.Tenant)
		}
	}
	return c, nil
}

// SnapshotTime is the moment a backup holds the data of: the snapshot of a logical backup, the
// consistent point of a SYSTEM backup.
func (m *Manifest) SnapshotTime() time.Time {
	switch {
	case m.TenantData != nil:
		return m.TenantData.Snapshot
	case m.SchemaData != nil:
		return m.SchemaData.Snapshot
	case m.Physical != nil:
		return m.Physical.StopTime
	}
	return m.CompletedAt
}

// RestoreSystemChain lays a SYSTEM backup's chain into a new data directory, ready for
// PostgreSQL to start and replay to consistency.
func RestoreSystemChain(ctx context.Context, c *Chain, targetDir string, progress func(physical.Progress)) error {
	var ms []*physical.Manifest
	var srcs []physical.Source
	for i, src := range c.sources() {
		if c.Manifests[i].Physical == nil {
			return fmt.Errorf("%w: backup %s is not a SYSTEM backup", ErrNotRestorable, c.Manifests[i].BackupID)
		}
		ms = append(ms, c.Manifests[i].Physical)
		srcs = append(srcs, src)
	}
	return physical.Restore(ctx, ms, srcs, targetDir, progress)
}

// RestoreLogicalChain loads a TENANT chain or a SCHEMA backup into targetConn, an existing
// empty database, with the PostgreSQL client binaries of binDir ("" finds them).
func RestoreLogicalChain(ctx context.Context, c *Chain, targetConn, binDir string) (logical.RestoreReport, error) {
	srcs := c.sources()
	last := c.Manifests[len(c.Manifests)-1]
	if last.SchemaData != nil {
		return logical.RestoreReport{}, logical.RestoreSchema(ctx, last.SchemaData, srcs[len(srcs)-1], targetConn, binDir)
	}
	var ms []*logical.TenantManifest
	var ls []logical.Source
	for i, m := range c.Manifests {
		if m.TenantData == nil {
			return logical.RestoreReport{}, fmt.Errorf("%w: backup %s is neither a TENANT nor a SCHEMA backup", ErrNotRestorable, m.BackupID)
		}
		ms = append(ms, m.TenantData)
		ls = append(ls, srcs[i])
	}
	return logical.RestoreTenant(ctx, ms, ls, targetConn, binDir)
}
