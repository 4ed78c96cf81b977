package recovery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/onevault/readiness/internal/backup/logical"
	"github.com/onevault/readiness/internal/pgcluster"
	"github.com/onevault/readiness/internal/vault"
)

// targetAction is the recovery_target_action of a recovery's instance. An instance recovery
// hands over a promoted instance. A tenant recovery only reads the tenant's rows from its
// temporary instance, so it pauses at the target and reads them from the paused hot standby
// (a read-only snapshot sees every transaction replayed up to the target, as after promotion).
// That skips promotion's end-of-recovery checkpoint, which writes back every page replay
// dirtied and which recovery waits for, and the new timeline; and as the instance is removed
// right after, it is stopped in immediate mode (pgcluster.Discard) instead of with a shutdown
// checkpoint or restartpoint. 'shutdown' would have cost a second start to read the rows.
func targetAction(target Target) string {
	if target.Kind == "database" {
		return "pause"
	}
	return "promote"
}

// loadTenant takes the tenant's rows from the temporary instance c (recovered to the target
// time), as a TENANT backup takes them, and loads them into a new database named name on the
// managed server. It answers the new database's URL (without a password). A failed load drops
// the new database, so nothing half done is left.
func (s *Service) loadTenant(ctx context.Context, c *pgcluster.Cluster, dir, tenant, name string) (string, error) {
	managed, err := url.Parse(s.cfg.ManagedURL)
	if err != nil || s.cfg.ManagedURL == "" {
		return "", fmt.Errorf("MANAGED_DATABASE_URL is not a database URL")
	}
	source := strings.TrimPrefix(managed.Path, "/")
	work := dir + "-rows"
	if err := os.MkdirAll(work, 0o700); err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	files := dirFiles(work)
	m, err := logical.BackupTenant(ctx, files, logical.TenantOptions{ConnString: c.URL(source),
		TenantKeyColumn: s.cfg.TenantKeyCol, TenantKey: vault.HashKey(tenant), BinDir: s.cfg.BinDir})
	if err != nil {
		return "", fmt.Errorf("take the tenant's rows at the target time: %w", err)
	}

	target, drop, err := s.createDatabase(ctx, name)
	if err != nil {
		return "", err
	}
	if _, err := logical.RestoreTenant(ctx, []*logical.TenantManifest{m}, []logical.Source{files}, target.String(), s.cfg.BinDir); err != nil {
		drop()
		return "", fmt.Errorf("load the tenant's rows into %q: %w", name, err)
	}
	return target.Redacted(), nil
}

// createDatabase makes the new database name on the managed server and answers its URL (with
// the service's credentials, which never leave the process: answer its Redacted form) and a
// function that drops it again, for a load that failed. A database of that name that exists is
// refused: a recovery never writes into a database it did not make.
func (s *Service) createDatabase(ctx context.Context, name string) (*url.URL, func(), error) {
	managed, err := url.Parse(s.cfg.ManagedURL)
	if err != nil || s.cfg.ManagedURL == "" {
		return nil, nil, fmt.Errorf("MANAGED_DATABASE_URL is not a database URL")
	}
	admin, err := pgx.Connect(ctx, s.cfg.ManagedURL)
	if err != nil {
		return nil, nil, err
	}
	defer admin.Close(context.WithoutCancel(ctx))
	err = pgcluster.CreateDatabase(ctx, admin, name)
	if errors.Is(err, pgcluster.ErrDatabaseExists) {
		return nil, nil, fmt.Errorf("database %q already exists on the managed server; choose another name", name)
	}
	if err != nil {
		return nil, nil, err
	}
	target := *managed
	target.Path = "/" + name
	drop := func() {
		ctx := context.WithoutCancel(ctx)
		admin, err := pgx.Connect(ctx, s.cfg.ManagedURL)
		if err != nil {
			return
		}
		defer admin.Close(ctx)
		_, _ = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	}
	return &target, drop, nil
}

// dirFiles keeps the objects of a tenant copy as plain files in a working directory that is
// removed when the recovery ends (the temporary instance it comes from is plaintext too).
type dirFiles string

// Create makes one object.
func (d dirFiles) Create(name string) (io.WriteCloser, error) {
	p := filepath.Join(string(d), filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return nil, err
	}
	return os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
}

// Open reads one object.
func (d dirFiles) Open(name string) (io.ReadCloser, error) {
	return os.Open(filepath.Join(string(d), filepath.FromSlash(name)))
}
