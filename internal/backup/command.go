package backup

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/onevault/readiness/internal/backup/physical"
	"github.com/onevault/readiness/internal/pgcluster"
	"github.com/onevault/readiness/internal/retention"
	"github.com/onevault/readiness/internal/storage"
	"github.com/onevault/readiness/internal/vault"
	"github.com/onevault/readiness/internal/wal"
)

// CommandUsage lists the repository commands, for the binary's usage text.
const CommandUsage = `  restore   restore a backup from the repository alone (no service database needed):
            restore [--repo DIR] [--key-file FILE] --backup ID --to URL|DIR [--target-time T] [--readiness-bin PATH]
            TENANT and SCHEMA backups load into the database URL (made when missing); a SYSTEM
            backup lays a data directory that recovers through the archived WAL when started
  repo      rebuild the service's backup catalogue from the repository's manifests:
            repo reindex [--repo DIR] [--database-url URL] (the manifests are plaintext: no key needed)
`

// Command runs `restore` or `repo reindex` (args start with the command's name). The
// repository and its key come from flags or from the service's environment (BACKUP_STORAGE_PATH,
// ENCRYPTION_KEY_FILE or ENCRYPTION_KEY), as for the WAL commands; the key is never a flag.
// What it did is written to stdout.
func Command(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if getenv == nil {
		getenv = os.Getenv
	}
	if len(args) == 0 {
		return errUsage
	}
	switch {
	case args[0] == "restore":
		return restoreCommand(ctx, args[1:], getenv, stdout)
	case args[0] == "repo" && len(args) > 1 && args[1] == "reindex":
		return reindexCommand(ctx, args[2:], getenv, stdout)
	}
	return errUsage
}

// dryRun reports whether READINESS_DRY_RUN=1 asks only to check the command line (its flags,
// its arguments, the repository and the key have been checked when it is called), and says so
// on stderr, as the other commands do.
func dryRun(getenv func(string) string, name string) bool {
	if getenv(wal.EnvDryRun) != "1" {
		return false
	}
	fmt.Fprintf(os.Stderr, "readiness %s: %s\n", name, wal.DryRunNote)
	return true
}

// errUsage answers a command line that names no repository command.
var errUsage = errors.New("usage:\n" + strings.TrimRight(CommandUsage, "\n"))

// repoFlags are the flags every repository command takes.
type repoFlags struct {
	repo, keyFile *string
}

func addRepoFlags(fs *flag.FlagSet) repoFlags {
	return repoFlags{
		repo:    fs.String("repo", "", "backup repository root (default $"+wal.EnvStoragePath+")"),
		keyFile: fs.String("key-file", "", "file holding the encryption key (default $"+wal.EnvKeyFile+", else $"+wal.EnvKey+")"),
	}
}

// open opens the repository that must exist already (a restore never makes an empty one).
// Without needKey and without a key given, it is opened with a throwaway key: the manifests
// are plaintext, and nothing is decrypted or written then.
func (f repoFlags) open(getenv func(string) string, needKey bool) (*storage.Repository, string, string, error) {
	root, keyFile := *f.repo, *f.keyFile
	if root == "" {
		root = getenv(wal.EnvStoragePath)
	}
	if root == "" {
		return nil, "", "", fmt.Errorf("no repository: give --repo DIR or set %s", wal.EnvStoragePath)
	}
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, "", "", err
	}
	if fi, err := os.Stat(root); err != nil || !fi.IsDir() {
		return nil, "", "", fmt.Errorf("repository %s is not a directory", root)
	}
	if keyFile == "" {
		keyFile = getenv(wal.EnvKeyFile)
	}
	var secret string
	switch {
	case keyFile != "":
		b, err := os.ReadFile(keyFile)
		if err != nil {
			return nil, "", "", fmt.Errorf("reading the key file: %w", err)
		}
		secret = string(b)
	case getenv(wal.EnvKey) != "":
		secret = getenv(wal.EnvKey)
	case !needKey:
		if secret, err = storage.GenerateKey(); err != nil {
			return nil, "", "", err
		}
	default:
		return nil, "", "", fmt.Errorf("no key: give --key-file FILE or set %s or %s", wal.EnvKeyFile, wal.EnvKey)
	}
	key, err := storage.ParseKey(secret)
	if err != nil {
		return nil, "", "", fmt.Errorf("the repository key: %w", err) // the error never holds the key
	}
	repo, err := storage.Open(root, key)
	if err != nil {
		return nil, "", "", err
	}
	if keyFile != "" {
		if keyFile, err = filepath.Abs(keyFile); err != nil {
			return nil, "", "", err
		}
	}
	return repo, root, keyFile, nil
}

// parseFlags parses a command's flags, refusing a --key flag with the reason.
func parseFlags(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if strings.Contains(err.Error(), "-key") && !strings.Contains(err.Error(), "-key-file") {
			return errors.New("the key is never given on the command line (where ps shows it): use --key-file FILE")
		}
		return fmt.Errorf("%w\n%w", err, errUsage)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q\n%w", fs.Args(), errUsage)
	}
	return nil
}

func restoreCommand(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	rf := addRepoFlags(fs)
	idFlag := fs.String("backup", "", "the backup to restore (its chain is found from the manifests)")
	to := fs.String("to", "", "a database URL (TENANT, SCHEMA) or a new data directory (SYSTEM)")
	targetTime := fs.String("target-time", "", "SYSTEM only: recover to this RFC 3339 time instead of the end of the archived WAL")
	binDir := fs.String("bin-dir", "", "PostgreSQL client binaries (pg_restore) for SCHEMA backups (default: found on the host)")
	program := fs.String("readiness-bin", "", "SYSTEM only: the readiness program restore_command runs, where PostgreSQL's OS user may run it (default this one)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	id, err := uuid.Parse(*idFlag)
	if err != nil {
		return fmt.Errorf("--backup: %q is not a backup id", *idFlag)
	}
	if *to == "" {
		return errors.New("--to: give the database URL or data directory to restore into")
	}
	repo, root, keyFile, err := rf.open(getenv, true)
	if err != nil {
		return err
	}
	defer repo.Close()
	if dryRun(getenv, "restore") {
		return nil
	}
	stored, err := ScanRepository(repo)
	if err != nil {
		return err
	}
	chain, err := ChainFromRepository(stored, id)
	if err != nil {
		return err
	}
	last := chain.Manifests[len(chain.Manifests)-1]
	var links []string
	for _, m := range chain.Manifests {
		links = append(links, m.Type+" "+m.BackupID.String())
	}
	isURL := strings.HasPrefix(*to, "postgres://") || strings.HasPrefix(*to, "postgresql://")
	if last.Scope != ScopeSystem {
		if !isURL {
			return fmt.Errorf("--to: a %s backup restores into a database: give a postgres:// URL", last.Scope)
		}
		if *targetTime != "" {
			return fmt.Errorf("--target-time: a %s backup holds one snapshot (%s) and no WAL to replay to another time",
				last.Scope, last.SnapshotTime().UTC().Format(time.RFC3339Nano))
		}
		shown, err := ensureDatabase(ctx, *to)
		if err != nil {
			return err
		}
		rep, err := RestoreLogicalChain(ctx, chain, *to, *binDir)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "restored %s backup %s of tenant %s as of %s into %s (chain: %s): %d tables, %d rows\n",
			last.Scope, id, last.Tenant, last.SnapshotTime().UTC().Format(time.RFC3339Nano), shown,
			strings.Join(links, ", "), rep.Tables, rep.Rows)
		for _, s := range rep.SkippedStatements {
			fmt.Fprintf(stdout, "  skipped: %s\n", s)
		}
		return nil
	}
	if isURL {
		return errors.New("--to: a SYSTEM backup restores into a new data directory, not a database URL")
	}
	var target time.Time
	if *targetTime != "" {
		if target, err = time.Parse(time.RFC3339Nano, *targetTime); err != nil {
			return fmt.Errorf("--target-time: %q is not an RFC 3339 time", *targetTime)
		}
	}
	dir, err := filepath.Abs(*to)
	if err != nil {
		return err
	}
	if err := RestoreSystemChain(ctx, chain, dir, func(physical.Progress) {}); err != nil {
		return err
	}
	how, err := configureRecovery(dir, *program, root, keyFile, target)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "restored SYSTEM backup %s (chain: %s, consistent at %s) into %s; %s\n",
		id, strings.Join(links, ", "), last.SnapshotTime().UTC().Format(time.RFC3339Nano), dir, how)
	return nil
}

// ensureDatabase makes the database of url when its server does not have it yet (connecting to
// the server's postgres database to do so), and answers the URL to show (without its password).
func ensureDatabase(ctx context.Context, url string) (string, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return "", fmt.Errorf("--to: %w", err)
	}
	name := cfg.Database
	shown := fmt.Sprintf("database %q on %s:%d", name, cfg.Host, cfg.Port)
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err == nil {
		return shown, conn.Close(ctx)
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "3D000" { // invalid_catalog_name: no such database
		return "", fmt.Errorf("--to: connect: %w", err)
	}
	admin := cfg.Copy()
	admin.Database = "postgres"
	if conn, err = pgx.ConnectConfig(ctx, admin); err != nil {
		return "", fmt.Errorf("--to: database %q does not exist, and the server's postgres database to make it from cannot be reached: %w", name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := pgcluster.CreateDatabase(ctx, conn, name); err != nil && !errors.Is(err, pgcluster.ErrDatabaseExists) {
		return "", err
	}
	return shown, nil
}

// configureRecovery makes a restored data directory recover when PostgreSQL starts on it, as a
// pgBackRest restore does: recovery.signal, a restore_command that fetches archived WAL with
// this binary (when the key is in a file PostgreSQL can read), archiving off (the restored
// instance must not push a new timeline into the repository it came from unasked), and the
// target time when given. It answers what starting the directory will do.
func configureRecovery(dir, exe, repo, keyFile string, target time.Time) (string, error) {
	var lines []string
	how := "start PostgreSQL on it to recover to the end of the archived WAL"
	if keyFile != "" {
		if exe == "" {
			var err error
			if exe, err = os.Executable(); err != nil {
				return "", err
			}
		}
		_, restore := wal.Commands(exe, repo, keyFile)
		lines = append(lines, "restore_command = '"+strings.ReplaceAll(restore, "'", "''")+"'")
	} else {
		how = "no --key-file was given, so set restore_command (readiness wal-fetch) before starting PostgreSQL on it"
	}
	lines = append(lines, "archive_mode = 'off'")
	if !target.IsZero() {
		lines = append(lines, "recovery_target_time = '"+target.UTC().Format("2006-01-02 15:04:05.999999-07")+"'",
			"recovery_target_action = 'promote'")
		how = strings.Replace(how, "the end of the archived WAL", target.UTC().Format(time.RFC3339Nano), 1)
	}
	auto := filepath.Join(dir, "postgresql.auto.conf")
	f, err := os.OpenFile(auto, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return "", err
	}
	_, err = fmt.Fprintf(f, "\n# Written by readiness restore.\n%s\n", strings.Join(lines, "\n"))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	signal := filepath.Join(dir, "recovery.signal")
	if err := os.WriteFile(signal, nil, 0o600); err != nil {
		return "", err
	}
	if os.Geteuid() == 0 { // PostgreSQL runs as postgres and must own what it reads
		c, err := pgcluster.New(pgcluster.Options{DataDir: dir})
		if err != nil {
			return "", err
		}
		for _, p := range []string{auto, signal} {
			if err := c.Own(p); err != nil {
				return "", err
			}
		}
	}
	return how, nil
}

func reindexCommand(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("repo reindex", flag.ContinueOnError)
	rf := addRepoFlags(fs)
	dbURL := fs.String("database-url", "", "the service database (default $DATABASE_URL); migrated first")
	years := fs.Int("retention-years", 7, "retention of the backups inserted, counted from their completion (the manifests do not record it)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	url := *dbURL
	if url == "" {
		url = getenv("DATABASE_URL")
	}
	if url == "" {
		return errors.New("--database-url: give the service database, or set DATABASE_URL")
	}
	if *years < 1 {
		return errors.New("--retention-years: at least 1")
	}
	repo, _, _, err := rf.open(getenv, false)
	if err != nil {
		return err
	}
	defer repo.Close()
	if dryRun(getenv, "repo reindex") {
		return nil
	}
	stored, err := ScanRepository(repo)
	if err != nil {
		return err
	}
	if err := vault.Migrate(ctx, url); err != nil {
		return err
	}
	store, err := vault.Open(ctx, url)
	if err != nil {
		return err
	}
	defer store.Close()
	rep, err := Reindex(ctx, store, stored, retention.Years(*years))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "reindexed %d backups from the repository: %d inserted, %d already in the catalogue, %d tenants registered\n",
		rep.Found, rep.Inserted, rep.Existing, rep.TenantsCreated)
	return nil
}
