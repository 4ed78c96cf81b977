// Package pgtest gives tests a real, throwaway PostgreSQL: the server named by
// TEST_DATABASE_URL or DATABASE_URL when one is set, else a private cluster that it starts
// once per test package from the machine's server binaries. Each test gets its own
// database, dropped when the test ends.
//
// A test package that uses it runs its tests through Main:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/onevault/readiness/internal/pgcluster"
)

// startTimeout bounds initdb and the first start of the package's cluster.
const startTimeout = 2 * time.Minute

// pkg is the test package's server, started by the first call to Server.
var pkg struct {
	once   sync.Once
	server *Postgres
	err    error
}

// Main runs a test package's tests and stops the package's cluster afterwards. Use in
// TestMain: func TestMain(m *testing.M) { pgtest.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	if err := stopLocal(); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	if pkg.server != nil {
		if err := pkg.server.close(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	os.Exit(code)
}

// Server returns the package's PostgreSQL: the one in TEST_DATABASE_URL or DATABASE_URL
// when set, else a throwaway cluster started on first use. It fails the test when the
// server cannot be reached or started.
func Server(t testing.TB) *Postgres {
	t.Helper()
	pkg.once.Do(func() { pkg.server, pkg.err = start() })
	if pkg.err != nil {
		t.Fatalf("pgtest: %v", pkg.err)
	}
	return pkg.server
}

// Postgres is the PostgreSQL server that Server returns; tests create their databases on it.
type Postgres struct {
	adminURL *url.URL
	cluster  *pgcluster.Cluster // nil when the server came from the environment
	tempDir  string             // holds the cluster; removed by Main

	mu        sync.Mutex
	templates map[string]*template // by NewDatabaseFrom key
}

// template is a database prepared once and cloned by NewDatabaseFrom. Its mutex makes
// the preparation happen once and keeps clones from running at the same time.
type template struct {
	mu       sync.Mutex
	prepared bool
	name     string // empty when preparing failed
	err      error
}

// start connects to the environment's server or starts a throwaway cluster.
func start() (*Postgres, error) {
	for _, env := range []string{"TEST_DATABASE_URL", "DATABASE_URL"} {
		if v := os.Getenv(env); v != "" {
			u, err := url.Parse(v)
			if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
				return nil, fmt.Errorf("%s must be a postgres:// URL", env)
			}
			s := &Postgres{adminURL: u}
			ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
			defer cancel()
			if err := s.exec(ctx, "SELECT 1"); err != nil {
				return nil, fmt.Errorf("the server in %s: %w", env, err)
			}
			return s, nil
		}
	}

	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, err
	}
	c, err := pgcluster.New(pgcluster.Options{
		DataDir: filepath.Join(dir, "data"),
		Fast:    true,
		Settings: map[string]string{
			"wal_level":                "replica",
			"max_wal_senders":          "10",
			"shared_preload_libraries": "pg_stat_statements",
		},
	})
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		defer cancel()
		err = c.Start(ctx)
	}
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("starting a throwaway PostgreSQL (set TEST_DATABASE_URL to use an existing server): %w", err)
	}
	u, err := url.Parse(c.URL("postgres"))
	if err != nil {
		return nil, err
	}
	return &Postgres{adminURL: u, cluster: c, tempDir: dir}, nil
}

// close stops the package's cluster and removes it, or, on a server from the environment,
// drops the template databases this process made.
func (s *Postgres) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if s.cluster != nil {
		err := s.cluster.Stop(ctx)
		return errors.Join(err, os.RemoveAll(s.tempDir))
	}
	var errs []error
	for _, tpl := range s.templates {
		if tpl.name != "" {
			errs = append(errs, s.drop(ctx, tpl.name))
		}
	}
	return errors.Join(errs...)
}

// AdminURL returns the URL of a maintenance database on the server, from which databases
// are created and dropped: postgres on a throwaway cluster, the environment's URL as given
// otherwise.
func (s *Postgres) AdminURL() string { return s.adminURL.String() }

// Cluster returns the throwaway cluster, or nil when the server came from the environment.
func (s *Postgres) Cluster() *pgcluster.Cluster { return s.cluster }

// NewDatabase creates a fresh, uniquely named empty database and drops it (WITH (FORCE)) in
// t.Cleanup; it returns its URL.
func (s *Postgres) NewDatabase(t testing.TB) string {
	t.Helper()
	return s.create(t, "")
}

// NewDatabaseFrom is NewDatabase with a template: prepare runs once per key per process
// against a template database (e.g. to apply migrations), and each call clones it with
// CREATE DATABASE ... TEMPLATE, which is much faster than migrating each time. Connections
// that prepare leaves open are closed, because a template in use cannot be cloned.
func (s *Postgres) NewDatabaseFrom(t testing.TB, key string, prepare func(ctx context.Context, url string) error) string {
	t.Helper()
	s.mu.Lock()
	if s.templates == nil {
		s.templates = map[string]*template{}
	}
	tpl := s.templates[key]
	if tpl == nil {
		tpl = &template{}
		s.templates[key] = tpl
	}
	s.mu.Unlock()

	tpl.mu.Lock()
	defer tpl.mu.Unlock()
	if !tpl.prepared {
		tpl.name, tpl.err = s.prepareTemplate(t.Context(), key, prepare)
		tpl.prepared = true
	}
	if tpl.err != nil {
		t.Fatalf("pgtest: %v", tpl.err)
	}
	return s.create(t, tpl.name)
}

// prepareTemplate creates a template database and runs prepare on it.
func (s *Postgres) prepareTemplate(ctx context.Context, key string, prepare func(ctx context.Context, url string) error) (string, error) {
	name := uniqueName("pgtest_tpl_", key)
	if err := s.exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("creating template database for %q: %w", key, err)
	}
	if err := prepare(ctx, s.databaseURL(name)); err != nil {
		return "", errors.Join(fmt.Errorf("preparing template database for %q: %w", key, err), s.drop(context.WithoutCancel(ctx), name))
	}
	// No one may stay connected to a template while it is cloned.
	err := s.exec(ctx, "ALTER DATABASE "+pgx.Identifier{name}.Sanitize()+" WITH ALLOW_CONNECTIONS false")
	if err == nil {
		err = s.exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name)
	}
	if err != nil {
		return "", errors.Join(fmt.Errorf("closing template database for %q: %w", key, err), s.drop(context.WithoutCancel(ctx), name))
	}
	return name, nil
}

// create creates a database for t, cloned from template when it is not empty, and drops
// it when t ends.
func (s *Postgres) create(t testing.TB, template string) string {
	t.Helper()
	name := uniqueName("pgtest_", t.Name())
	sql := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	if template != "" {
		sql += " TEMPLATE " + pgx.Identifier{template}.Sanitize()
	}
	if err := s.exec(t.Context(), sql); err != nil {
		t.Fatalf("pgtest: creating database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.drop(ctx, name); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return s.databaseURL(name)
}

// drop drops a database, ending the sessions still connected to it.
func (s *Postgres) drop(ctx context.Context, name string) error {
	if err := s.exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("dropping database %s: %w", name, err)
	}
	return nil
}

// exec runs one statement on the maintenance database.
func (s *Postgres) exec(ctx context.Context, sql string, args ...any) error {
	conn, err := pgx.Connect(ctx, s.adminURL.String())
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql, args...)
	return err
}

// databaseURL returns the admin URL with its database replaced by name.
func (s *Postgres) databaseURL(name string) string {
	u := *s.adminURL
	u.Path = "/" + name
	u.RawPath = ""
	return u.String()
}

// uniqueName returns a database name that starts with prefix, shows hint (a test name or
// template key) for whoever finds it left over, and ends with random hex, so that
// processes sharing a server never collide. It stays within PostgreSQL's 63 bytes.
func uniqueName(prefix, hint string) string {
	var b strings.Builder
	b.WriteString(prefix)
	underscore := true // the prefix ends with one
	for _, r := range strings.ToLower(hint) {
		if b.Len() >= len(prefix)+36 {
			break
		}
		switch {
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
			underscore = false
		case !underscore:
			b.WriteByte('_')
			underscore = true
		}
	}
	if !underscore {
		b.WriteByte('_')
	}
	random := make([]byte, 6)
	_, _ = rand.Read(random) // crypto/rand.Read never fails
	b.WriteString(hex.EncodeToString(random))
	return b.String()
}
