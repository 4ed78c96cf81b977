package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/onevault/readiness/internal/pgcluster"
)

// local holds the package's named local clusters, stopped by Main.
var local struct {
	mu       sync.Mutex
	clusters map[string]*localCluster
}

type localCluster struct {
	c   *pgcluster.Cluster
	dir string
	err error
}

// Local returns a private cluster of this test package, started on first use with settings
// and stopped by Main. Unlike Server it is always a cluster on this machine, never the
// environment's server: for tests that read its data directory (physical backups) or restart it.
func Local(t testing.TB, name string, settings map[string]string) *pgcluster.Cluster {
	t.Helper()
	local.mu.Lock()
	defer local.mu.Unlock()
	if local.clusters == nil {
		local.clusters = map[string]*localCluster{}
	}
	lc, ok := local.clusters[name]
	if !ok {
		lc = &localCluster{}
		local.clusters[name] = lc
		lc.dir, lc.err = os.MkdirTemp("", "pgtest-"+name+"-")
		if lc.err == nil {
			lc.c, lc.err = pgcluster.New(pgcluster.Options{DataDir: filepath.Join(lc.dir, "data"), Settings: settings})
		}
		if lc.err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
			lc.err = lc.c.Start(ctx)
			cancel()
		}
	}
	if lc.err != nil {
		t.Fatalf("pgtest: starting local cluster %s: %v", name, lc.err)
	}
	return lc.c
}

// stopLocal stops and removes every local cluster.
func stopLocal() error {
	local.mu.Lock()
	defer local.mu.Unlock()
	var errs []error
	for name, lc := range local.clusters {
		if lc.c != nil {
			ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
			if err := lc.c.Stop(ctx); err != nil {
				errs = append(errs, fmt.Errorf("stop %s: %w", name, err))
			}
			cancel()
		}
		if lc.dir != "" {
			errs = append(errs, os.RemoveAll(lc.dir))
		}
	}
	return errors.Join(errs...)
}
