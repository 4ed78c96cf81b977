// Package devenv prepares the embedded default of `readiness dev`: a private PostgreSQL cluster
// (unless DATABASE_URL is set) with the service database and the managed One Vault database,
// the demo tenants, a JWT secret kept in the data directory, printed tokens and dev.json.
package devenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/onevault/readiness/gen/db"
	"github.com/onevault/readiness/internal/auth"
	"github.com/onevault/readiness/internal/demodata"
	"github.com/onevault/readiness/internal/pgcluster"
	"github.com/onevault/readiness/internal/storage"
	"github.com/onevault/readiness/internal/vault"
	"github.com/onevault/readiness/internal/wal"
)

// Demo tenants created by `readiness dev`.
var DemoTenants = []struct{ ID, Name string }{
	{"acme", "Acme Health"},
	{"globex", "Globex Clinics"},
}

// Database names on the private cluster.
const (
	ServiceDatabase = "readiness"
	ManagedDatabase = "one_vault"
)

// Options configure the dev environment.
type Options struct {
	DataDir string // default ./.data
	Addr    string // default 127.0.0.1:8080
	Getenv  func(string) string
	Logger  *slog.Logger // nil logs nothing
}

// Env is a prepared dev environment.
type Env struct {
	Addr               string            `json:"addr"`
	DatabaseURL        string            `json:"database_url"`
	ManagedDatabaseURL string            `json:"managed_database_url"`
	JWTSecret          string            `json:"jwt_secret"`
	EncryptionKey      string            `json:"-"`
	RestoreCommand     string            `json:"-"` // restore_command of recovered instances
	Tokens             map[string]string `json:"tokens"`

	cluster *pgcluster.Cluster
	lock    *os.File // held while this environment runs: one readiness dev per data directory
}

// SecretFile and KeyFile hold the generated dev secrets inside the data directory.
const (
	SecretFile = "jwt_secret"
	KeyFile    = "encryption_key"
)

// Prepare starts (or reuses) everything `readiness dev` serves on.
func Prepare(ctx context.Context, opts Options) (*Env, error) {
	if opts.DataDir == "" {
		opts.DataDir = ".data"
	}
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:8080"
	}
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	dir, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	env := &Env{Addr: opts.Addr, Tokens: map[string]string{}}
	// A second readiness dev on the same directory would find the first one's cluster running,
	// use it, and stop it when it exits.
	if env.lock, err = os.OpenFile(filepath.Join(dir, "dev.lock"), os.O_CREATE|os.O_RDWR, 0o600); err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(env.lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		env.lock.Close()
		return nil, fmt.Errorf("another readiness dev is running with %s: stop it first (Ctrl-C), or give this one another --data-dir", dir)
	}

	secret := opts.Getenv("JWT_SECRET")
	if secret == "" {
		if secret, err = KeptSecret(dir, SecretFile); err != nil {
			return nil, err
		}
	}
	env.JWTSecret = secret
	env.EncryptionKey = opts.Getenv("ENCRYPTION_KEY")
	if env.EncryptionKey == "" {
		if env.EncryptionKey, err = keptAgeKey(dir); err != nil {
			return nil, err
		}
	}

	if u := opts.Getenv("DATABASE_URL"); u != "" {
		env.DatabaseURL = u
		env.ManagedDatabaseURL = opts.Getenv("MANAGED_DATABASE_URL")
		if env.ManagedDatabaseURL == "" {
			env.ManagedDatabaseURL = withDatabase(u, ManagedDatabase)
		}
		if err := createDatabase(ctx, withDatabase(u, "postgres"), ManagedDatabase); err != nil {
			return nil, err
		}
	} else {
		if err := env.startCluster(ctx, dir, opts.Logger); err != nil {
			return nil, err
		}
	}

	if err := vault.Migrate(ctx, env.DatabaseURL); err != nil {
		env.Stop(context.WithoutCancel(ctx))
		return nil, err
	}
	if err := registerTenants(ctx, env.DatabaseURL); err != nil {
		env.Stop(context.WithoutCancel(ctx))
		return nil, err
	}
	if err := fillManagedDatabase(ctx, env.ManagedDatabaseURL, opts.Logger); err != nil {
		env.Stop(context.WithoutCancel(ctx))
		return nil, err
	}
	if err := env.signTokens(); err != nil {
		env.Stop(context.WithoutCancel(ctx))
		return nil, err
	}
	out, _ := json.MarshalIndent(env, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, DevFile), out, 0o600); err != nil {
		env.Stop(context.WithoutCancel(ctx))
		return nil, err
	}
	return env, nil
}

// startCluster starts the private cluster in dir/pg, archiving its WAL into the backup
// repository dir/backups with `readiness wal-push`, and with pg_stat_statements loaded.
func (env *Env) startCluster(ctx context.Context, dir string, log *slog.Logger) error {
	repo := filepath.Join(dir, RepoDir) // what runDev gives the service as BACKUP_STORAGE_PATH
	keyFile := filepath.Join(dir, "wal-key", KeyFile)
	bin := filepath.Join(dir, "bin", "readiness")
	archiveCommand, restoreCommand := wal.Commands(bin, repo, keyFile)
	env.RestoreCommand = restoreCommand
	c, err := pgcluster.New(pgcluster.Options{
		DataDir: filepath.Join(dir, "pg"),
		Logger:  log,
		Settings: map[string]string{
			"wal_level":                "replica",
			"archive_mode":             "on",
			"archive_command":          archiveCommand,
			"archive_timeout":          "60s",
			"max_wal_senders":          "10",
			"shared_preload_libraries": "pg_stat_statements",
			"pg_stat_statements.track": "all",
		},
	})
	if err != nil {
		return err
	}
	// The postgres OS user runs archive_command: it gets wal/, its own copy of the key and
	// of this executable.
	if _, err := wal.Install(c, wal.InstallOptions{Bin: bin, RepoPath: repo, KeyFile: keyFile, Key: env.EncryptionKey}); err != nil {
		return err
	}
	log.Info("starting PostgreSQL", "data_dir", c.DataDir())
	if err := c.Start(ctx); err != nil {
		return err
	}
	env.cluster = c
	for _, name := range []string{ServiceDatabase, ManagedDatabase} {
		if err := c.CreateDatabase(ctx, name); err != nil {
			env.Stop(context.WithoutCancel(ctx))
			return err
		}
	}
	env.DatabaseURL = c.URL(ServiceDatabase)
	env.ManagedDatabaseURL = c.URL(ManagedDatabase)
	return enableStatements(ctx, env.ManagedDatabaseURL)
}

// Stop stops the cluster that Prepare started, if any, and lets another readiness dev use the
// data directory.
func (env *Env) Stop(ctx context.Context) {
	if env.cluster != nil {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		_ = env.cluster.Stop(ctx)
	}
	if env.lock != nil {
		env.lock.Close()
	}
}

// signTokens signs one admin token per demo tenant and one platform_admin token.
func (env *Env) signTokens() error {
	sign := func(name, sub string, tenants []string, role string) error {
		tok, err := auth.Sign([]byte(env.JWTSecret), auth.Claims{Subject: sub, Tenants: tenants,
			Roles: []string{role}, TTL: 30 * 24 * time.Hour})
		if err != nil {
			return err
		}
		env.Tokens[name] = tok
		return nil
	}
	var all []string
	for _, t := range DemoTenants {
		all = append(all, t.ID)
		if err := sign(t.ID+"_admin", t.ID+"-admin", []string{t.ID}, auth.RoleAdmin); err != nil {
			return err
		}
	}
	return sign("platform_admin", "platform-admin", all, auth.RolePlatformAdmin)
}

// KeptSecret returns the secret kept in dir/name, generating 32 random bytes (hex) the first time.
func KeptSecret(dir, name string) (string, error) {
	path := filepath.Join(dir, name)
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	s := hex.EncodeToString(buf)
	if err := os.WriteFile(path, []byte(s+"\n"), 0o600); err != nil {
		return "", err
	}
	return s, nil
}

// keptAgeKey returns the age identity kept in dir/encryption_key, generating it the first time,
// so dev backups can be decrypted by hand with `age -d -i .data/encryption_key`.
func keptAgeKey(dir string) (string, error) {
	path := filepath.Join(dir, KeyFile)
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	key, err := storage.GenerateKey()
	if err != nil {
		return "", err
	}
	return key, os.WriteFile(path, []byte(key+"\n"), 0o600)
}

// DemoSize is how much One Vault-like data `readiness dev` puts in the managed database.
const DemoSize = 8 << 20

// fillManagedDatabase creates the One Vault-like schema in the managed database and, the first
// time, a small dataset for both demo tenants.
func fillManagedDatabase(ctx context.Context, url string, log *slog.Logger) error {
	if err := demodata.Ensure(ctx, url); err != nil {
		return fmt.Errorf("demo data: %w", err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var rows int64
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM healthcare.hub_patient").Scan(&rows); err != nil {
		return err
	}
	if rows > 0 {
		return nil
	}
	var tenants []string
	for _, t := range DemoTenants {
		tenants = append(tenants, t.ID)
	}
	st, err := demodata.Generate(ctx, url, demodata.Options{Tenants: tenants, Size: DemoSize, Logger: log})
	if err != nil {
		return fmt.Errorf("demo data: %w", err)
	}
	log.Info("demo data", "rows", st.Rows, "tables", st.Tables, "bytes", st.Bytes, "took", st.Duration.Round(time.Millisecond).String())
	return nil
}

func registerTenants(ctx context.Context, url string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	q := db.New(conn)
	for _, t := range DemoTenants {
		_, err := q.TenantCreate(ctx, db.TenantCreateParams{TenantBk: t.ID, DisplayName: t.Name,
			ChangedBy: "readiness-dev", RecordSource: vault.RecordSource})
		if err != nil && !errors.Is(err, pgx.ErrNoRows) { // no row: already registered
			return fmt.Errorf("register tenant %s: %w", t.ID, err)
		}
	}
	return nil
}

// withDatabase returns the URL u pointing at another database on the same server.
func withDatabase(u, name string) string {
	parsed, err := url.Parse(u)
	if err != nil {
		return u
	}
	parsed.Path = "/" + name
	return parsed.String()
}

// createDatabase creates a database on the server of adminURL unless it exists. The name is a
// constant of this package, quoted as an identifier.
func createDatabase(ctx context.Context, adminURL, name string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if err := pgcluster.CreateDatabase(ctx, conn, name); err != nil && !errors.Is(err, pgcluster.ErrDatabaseExists) {
		return err
	}
	return nil
}

// enableStatements creates the pg_stat_statements extension in the managed database, which the
// monitoring of phase 2 reads.
func enableStatements(ctx context.Context, url string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
	return err
}
