// Package vault is the service's store: the Data Vault schema of migrations/, its goose
// migrations, and tenant-scoped transactions in which the sqlc queries of gen/db run.
package vault

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/onevault/readiness/gen/db"
	"github.com/onevault/readiness/internal/jobs"
	"github.com/onevault/readiness/migrations"
)

// RecordSource names this service in the record_source column of every row it writes.
const RecordSource = "readiness-api"

// ErrNotFound is returned when a row does not exist, or belongs to another tenant; callers
// answer 404 for it, which never tells one tenant that another's resource exists.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned when a write loses to a concurrent one or repeats an existing key.
var ErrConflict = errors.New("conflict")

// ErrTenantNotRegistered is returned for a tenant business key that is not in the registry.
var ErrTenantNotRegistered = errors.New("tenant is not registered")

// Store holds the connection pool of the service database.
type Store struct {
	Pool    *pgxpool.Pool
	tenants sync.Map // tenant business key -> []byte hash key; tenants are never deleted
}

// Open connects to the service database. The pool holds at least 16 connections (or what
// the URL's pool_max_conns says): job workers, their progress reports and the API share it.
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database URL: %w", err)
	}
	if !strings.Contains(url, "pool_max_conns") && cfg.MaxConns < 16 {
		cfg.MaxConns = 16
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	return &Store{Pool: pool}, nil
}

// Close closes the pool.
func (s *Store) Close() { s.Pool.Close() }

// Queries runs queries outside any tenant: the tenant registry, the audit chain and security events.
func (s *Store) Queries() *db.Queries { return db.New(s.Pool) }

// provider builds the goose provider over the embedded migrations; a session advisory lock
// makes concurrent replicas apply them once.
func provider(conn *sql.DB) (*goose.Provider, error) {
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return nil, err
	}
	return goose.NewProvider(goose.DialectPostgres, conn, migrations.FS, goose.WithSessionLocker(locker))
}

// Migrate applies every pending migration to the database at url: the job queue's tables
// (river's own migrations), then the service's Data Vault schema.
func Migrate(ctx context.Context, url string) error {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return err
	}
	err = jobs.Migrate(ctx, pool)
	pool.Close()
	if err != nil {
		return err
	}
	conn, err := sql.Open("pgx", url)
	if err != nil {
		return err
	}
	defer conn.Close()
	p, err := provider(conn)
	if err != nil {
		return err
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("apply migrations: %w", err)
	}
	return nil
}

// Pending reports whether migrations remain to be applied, for /readyz.
func (s *Store) Pending(ctx context.Context) (bool, error) {
	conn := stdlib.OpenDBFromPool(s.Pool)
	defer conn.Close()
	p, err := provider(conn)
	if err != nil {
		return false, err
	}
	return p.HasPending(ctx)
}

// TenantHK returns the hash key of a registered tenant.
func (s *Store) TenantHK(ctx context.Context, tenant string) ([]byte, error) {
	if hk, ok := s.tenants.Load(tenant); ok {
		return hk.([]byte), nil
	}
	t, err := s.Queries().TenantGetByBK(ctx, tenant)
	if err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, ErrTenantNotRegistered
		}
		return nil, err
	}
	s.tenants.Store(tenant, t.TenantHk)
	return t.TenantHk, nil
}

// TenantRef names a tenant by its business key and hash key.
type TenantRef struct {
	ID string // business key, as in X-Tenant-ID
	HK []byte // hash key in the store
}

// InTenant runs fn in one transaction that acts for the tenant: the transaction switches to the
// readiness_app role and sets the tenant for row-level security, so a query that forgot its
// tenant filter still sees only this tenant's rows. fn's error rolls the transaction back.
func (s *Store) InTenant(ctx context.Context, tenantHK []byte, fn func(q *db.Queries) error) error {
	return s.InTenantTx(ctx, tenantHK, func(_ pgx.Tx, q *db.Queries) error { return fn(q) })
}

// InTenantTx is InTenant that also hands fn the transaction, for the job queue's insert.
func (s *Store) InTenantTx(ctx context.Context, tenantHK []byte, fn func(tx pgx.Tx, q *db.Queries) error) error {
	return pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		q := db.New(tx)
		if err := q.TenantRoleSet(ctx); err != nil {
			return fmt.Errorf("switch to tenant role: %w", err)
		}
		if err := q.TenantScopeSet(ctx, tenantHK); err != nil {
			return fmt.Errorf("set tenant: %w", err)
		}
		return Translate(fn(tx, q))
	})
}

// Translate turns pgx's errors into this package's sentinels: no rows becomes ErrNotFound and a
// unique violation ErrConflict. Other errors pass through unchanged.
func Translate(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return fmt.Errorf("%w: %w", ErrConflict, err)
	}
	return err
}
