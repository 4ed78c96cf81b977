// Command readiness is the One Vault readiness service: backups, recovery, schedules and (next)
// monitoring behind one OpenAPI contract. Its subcommands only wire the internal packages.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
	_ "time/tzdata" // schedules name IANA zones; do not depend on the host's zoneinfo

	"github.com/onevault/readiness/internal/app"
	"github.com/onevault/readiness/internal/audit"
	"github.com/onevault/readiness/internal/auth"
	"github.com/onevault/readiness/internal/backup"
	"github.com/onevault/readiness/internal/config"
	"github.com/onevault/readiness/internal/demodata"
	"github.com/onevault/readiness/internal/devenv"
	"github.com/onevault/readiness/internal/storage"
	"github.com/onevault/readiness/internal/vault"
	"github.com/onevault/readiness/internal/wal"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `usage: readiness <command> [flags]

commands:
  dev       run the service on a private PostgreSQL cluster with demo tenants and printed tokens
  serve     run the service, configured from the environment
  migrate   apply the database migrations (DATABASE_URL)
  token     sign a JWT: --tenant T[,T...] --roles R[,R...] [--sub S] [--ttl D] [--data-dir DIR]
  audit     verify the audit log's hash chain and its anchors: readiness audit verify [--data-dir DIR] [--repo DIR] [--anchor SEQ:HASH]
  demo-data fill a database with One Vault-like data: --tenants N --size SIZE [--url URL] [--data-dir DIR]
  key       print the backups' age identity, to decrypt by hand: readiness key export [--data-dir DIR]
  wal-push  archive one WAL file (archive_command): wal-push [--repo DIR] [--key-file FILE] PATH
  wal-fetch restore one WAL file (restore_command): wal-fetch [--repo DIR] [--key-file FILE] NAME PATH
  wal-status the WAL archive's state as JSON, exit 1 on a problem: wal-status [--data-dir DIR] [--repo DIR] [--key-file FILE] [MANAGED_DATABASE_URL]
  wal-verify read and check every archived WAL file: wal-verify [--data-dir DIR] [--repo DIR] [--key-file FILE]
  version   print the version

READINESS_DRY_RUN=1 checks a command line (flags, arguments, key file) and exits 0 without running it.
` + backup.CommandUsage

func main() {
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	slog.SetDefault(logger)
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "dev":
		err = runDev(ctx, logger, os.Args[2:])
	case "serve":
		err = runServe(ctx, logger)
	case "migrate":
		err = runMigrate(ctx)
	case "token":
		err = runToken(os.Args[2:])
	case "audit":
		err = runAudit(ctx, os.Args[2:])
	case "demo-data":
		err = runDemoData(ctx, logger, os.Args[2:])
	case "key":
		err = runKey(os.Args[2:])
	case "wal-push", "wal-fetch":
		// PostgreSQL runs these with flags and reads the exit status: wal.Run prints its own errors.
		os.Exit(wal.Run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
	case "restore", "repo":
		err = backup.Command(ctx, os.Args[1:], os.Getenv, os.Stdout)
	case "wal-status", "wal-verify":
		// People run these beside readiness dev: its data directory (--data-dir, default .data)
		// gives the repository, the key and the managed database that flags and variables do not.
		dataDir, rest := cutDataDir(os.Args[2:])
		os.Exit(wal.Run(ctx, append([]string{os.Args[1]}, rest...), devenv.Getenv(dataDir, os.Getenv), os.Stdout, os.Stderr))
	case "version":
		fmt.Println("readiness", version)
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "readiness:", err)
		os.Exit(1)
	}
}

// dryRun reports whether READINESS_DRY_RUN=1 asks only to check the command line, and says so
// on stderr. Every command calls it once its flags and arguments are checked and before it
// touches anything: the README's command lines are checked this way (cmd/readiness tests).
func dryRun(name string) bool {
	if os.Getenv(wal.EnvDryRun) != "1" {
		return false
	}
	fmt.Fprintf(os.Stderr, "readiness %s: %s\n", name, wal.DryRunNote)
	return true
}

func runDev(ctx context.Context, logger *slog.Logger, args []string) error {
	fs := flag.NewFlagSet("dev", flag.ExitOnError)
	dataDir := fs.String("data-dir", ".data", "directory for the private cluster, secrets and dev.json")
	addr := fs.String("addr", "127.0.0.1:8080", "listen address")
	_ = fs.Parse(args)
	if fs.NArg() > 0 {
		return errors.New("usage: readiness dev [--data-dir DIR] [--addr HOST:PORT]")
	}
	if dryRun("dev") {
		return nil
	}

	env, err := devenv.Prepare(ctx, devenv.Options{DataDir: *dataDir, Addr: *addr, Logger: logger})
	if err != nil {
		return err
	}
	defer env.Stop(context.Background())

	cfg := config.Defaults()
	cfg.ListenAddr = env.Addr
	cfg.DatabaseURL = env.DatabaseURL
	cfg.ManagedDatabaseURL = env.ManagedDatabaseURL
	cfg.JWTSecret = []byte(env.JWTSecret)
	cfg.EncryptionKey = env.EncryptionKey
	cfg.StoragePath = filepath.Join(*dataDir, devenv.RepoDir)
	cfg.RecoveryDataPath = filepath.Join(*dataDir, "recoveries")
	cfg.RestoreCommand = env.RestoreCommand
	// The private cluster archives with archive_command and is streamed from too (WAL_STREAM=off
	// turns streaming off); a cluster given by DATABASE_URL is not ours to take a slot on.
	cfg.WALStream = env.RestoreCommand != ""
	cfg, err = config.FromEnv(cfg, func(name string) string {
		switch name { // the dev environment's own choices win over the process environment
		case "LISTEN_ADDR", "DATABASE_URL", "MANAGED_DATABASE_URL", "JWT_SECRET", "ENCRYPTION_KEY":
			return ""
		}
		return os.Getenv(name)
	})
	if err != nil {
		return err
	}

	fmt.Printf("\nOne Vault readiness (dev) on http://%s\n", env.Addr)
	fmt.Printf("  service database: %s\n  managed database: %s\n  dev.json:         %s\n\n",
		env.DatabaseURL, env.ManagedDatabaseURL, filepath.Join(*dataDir, devenv.DevFile))
	for _, name := range []string{"acme_admin", "globex_admin", "platform_admin"} {
		fmt.Printf("%s token:\n  %s\n", name, env.Tokens[name])
	}
	fmt.Printf("\ntry:\n  curl -s -H \"Authorization: Bearer $TOKEN\" -H 'X-Tenant-ID: acme' http://%s/api/v1/schedule/list\n\n", env.Addr)
	return serve(ctx, logger, cfg)
}

func runServe(ctx context.Context, logger *slog.Logger) error {
	cfg, err := config.FromEnv(config.Defaults(), config.Environ)
	if err != nil {
		return err
	}
	if dryRun("serve") {
		return nil
	}
	if err := vault.Migrate(ctx, cfg.DatabaseURL); err != nil {
		return err
	}
	return serve(ctx, logger, cfg)
}

// serve runs the service until ctx is cancelled, then shuts it down gracefully.
func serve(ctx context.Context, logger *slog.Logger, cfg config.Config) error {
	logger.Info("starting", "version", version, "config", cfg.String())
	a, err := app.New(ctx, cfg, logger)
	if err != nil {
		return err
	}
	return a.Serve(ctx)
}

func runMigrate(ctx context.Context) error {
	if dryRun("migrate") {
		return nil
	}
	url := os.Getenv("DATABASE_URL")
	if url == "" {
		cfg, err := config.FromEnv(config.Defaults(), config.Environ)
		if cfg.DatabaseURL == "" {
			return err
		}
		url = cfg.DatabaseURL
	}
	if err := vault.Migrate(ctx, url); err != nil {
		return err
	}
	fmt.Println("migrations applied")
	return nil
}

func runToken(args []string) error {
	fs := flag.NewFlagSet("token", flag.ExitOnError)
	tenants := fs.String("tenant", "", "tenants the token grants, comma separated (required)")
	roles := fs.String("roles", "", "roles, comma separated: viewer, operator, approver, admin, platform_admin (required)")
	sub := fs.String("sub", "cli-user", "subject")
	ttl := fs.Duration("ttl", time.Hour, "lifetime")
	dataDir := fs.String("data-dir", ".data", "dev data directory holding the generated secret, used when JWT_SECRET is unset")
	_ = fs.Parse(args)
	split := func(s string) []string {
		var out []string
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
		return out
	}
	if *tenants == "" || *roles == "" {
		return errors.New("token: --tenant and --roles are required")
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("token: unexpected arguments %q: every value is a flag", fs.Args())
	}
	if dryRun("token") {
		return nil
	}
	secret := os.Getenv("JWT_SECRET")
	if secret == "" {
		b, err := os.ReadFile(filepath.Join(*dataDir, devenv.SecretFile))
		if err != nil {
			return fmt.Errorf("token: JWT_SECRET is unset and no dev secret is kept in %s", *dataDir)
		}
		secret = strings.TrimSpace(string(b))
	}
	tok, err := auth.Sign([]byte(secret), auth.Claims{Subject: *sub, Tenants: split(*tenants), Roles: split(*roles),
		Issuer: os.Getenv("JWT_ISSUER"), Audience: os.Getenv("JWT_AUDIENCE"), TTL: *ttl})
	if err != nil {
		return err
	}
	fmt.Println(tok)
	return nil
}

// anchorFlags collects repeated --anchor SEQ:HASH flags.
type anchorFlags []audit.Anchor

func (f *anchorFlags) String() string { return fmt.Sprint(*f) }

func (f *anchorFlags) Set(s string) error {
	a, err := audit.ParseAnchor(s)
	if err == nil {
		*f = append(*f, a)
	}
	return err
}

func runAudit(ctx context.Context, args []string) error {
	const use = "usage: readiness audit verify [--data-dir DIR] [--repo DIR] [--anchor SEQ:HASH (repeatable)]"
	fs := flag.NewFlagSet("audit", flag.ExitOnError)
	dataDir := fs.String("data-dir", ".data", "dev data directory whose dev.json names the database, used when DATABASE_URL is unset")
	repo := fs.String("repo", "", "backup repository holding the audit anchor (default BACKUP_STORAGE_PATH, or readiness dev's under --data-dir)")
	var anchors anchorFlags
	fs.Var(&anchors, "anchor", "also check against SEQ:HASH, the seq and hash of an \"audit anchor\" log line (repeatable)")
	if len(args) == 0 || args[0] != "verify" {
		return errors.New(use)
	}
	_ = fs.Parse(args[1:])
	if fs.NArg() > 0 {
		return errors.New(use)
	}
	if dryRun("audit verify") {
		return nil
	}
	url, repoRoot := os.Getenv("DATABASE_URL"), *repo
	if repoRoot == "" {
		repoRoot = os.Getenv("BACKUP_STORAGE_PATH")
	}
	if url == "" {
		dev, err := readDevJSON(*dataDir)
		if err != nil {
			return errors.New("audit verify: set DATABASE_URL, or run it beside `readiness dev` (--data-dir)")
		}
		url = dev.DatabaseURL
		if repoRoot == "" {
			repoRoot = filepath.Join(*dataDir, devenv.RepoDir)
		}
	}
	if repoRoot != "" {
		a, ok, err := audit.ReadAnchorFile(repoRoot)
		if err != nil {
			return err
		}
		if ok {
			anchors = append(anchors, a)
		}
	}
	store, err := vault.Open(ctx, url)
	if err != nil {
		return err
	}
	defer store.Close()
	rep, err := audit.Verify(ctx, store.Queries(), anchors...)
	if err != nil {
		return err
	}
	if !rep.OK() {
		return fmt.Errorf("audit chain broken at record %d: %s (%d records intact before it)", rep.BadSeq, rep.Problem, rep.Records)
	}
	if rep.Records == 0 {
		fmt.Println("audit chain intact: 0 records")
	} else {
		fmt.Printf("audit chain intact: %d records, head %s\n", rep.Records, rep.Head)
	}
	for _, a := range anchors {
		fmt.Printf("  extends the anchor %s (%s)\n", a, a.Source)
	}
	if len(anchors) == 0 {
		// Without an anchor, deleting the newest records leaves a chain that looks intact.
		fmt.Printf("  no anchor found (give --repo or --anchor): deleted newest records would not show\n")
	}
	return nil
}

func runDemoData(ctx context.Context, logger *slog.Logger, args []string) error {
	fs := flag.NewFlagSet("demo-data", flag.ExitOnError)
	tenants := fs.Int("tenants", 2, "number of tenants (tenant001, tenant002, ...)")
	size := fs.String("size", "100MB", "approximate data size, e.g. 2GB")
	url := fs.String("url", "", "managed database URL (default MANAGED_DATABASE_URL, or the one of readiness dev in --data-dir)")
	dataDir := fs.String("data-dir", ".data", "dev data directory")
	_ = fs.Parse(args)
	bytes, err := demodata.ParseSize(*size)
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return errors.New("usage: readiness demo-data [--tenants N] [--size SIZE] [--url URL] [--data-dir DIR]")
	}
	if dryRun("demo-data") {
		return nil
	}
	target := *url
	if target == "" {
		target = os.Getenv("MANAGED_DATABASE_URL")
	}
	if target == "" {
		dev, err := readDevJSON(*dataDir)
		if err != nil {
			return errors.New("demo-data: give --url, set MANAGED_DATABASE_URL, or run readiness dev first")
		}
		target = dev.ManagedDatabaseURL
	}
	names := make([]string, *tenants)
	for i := range names {
		names[i] = fmt.Sprintf("tenant%03d", i+1)
	}
	if err := demodata.Ensure(ctx, target); err != nil {
		return err
	}
	st, err := demodata.Generate(ctx, target, demodata.Options{Tenants: names, Size: bytes, Logger: logger})
	if err != nil {
		return err
	}
	fmt.Printf("generated %d rows in %d tables, %d MB in %s (%.0f MB/s)\n", st.Rows, st.Tables, st.Bytes>>20,
		st.Duration.Round(time.Second), float64(st.Bytes)/(1<<20)/st.Duration.Seconds())
	return nil
}

func runKey(args []string) error {
	fs := flag.NewFlagSet("key", flag.ExitOnError)
	dataDir := fs.String("data-dir", ".data", "dev data directory holding the generated key, used when ENCRYPTION_KEY is unset")
	if len(args) == 0 || args[0] != "export" {
		return errors.New("usage: readiness key export [--data-dir DIR]")
	}
	_ = fs.Parse(args[1:])
	if fs.NArg() > 0 {
		return errors.New("usage: readiness key export [--data-dir DIR]")
	}
	if dryRun("key export") {
		return nil
	}
	secret := os.Getenv("ENCRYPTION_KEY")
	if secret == "" {
		b, err := os.ReadFile(filepath.Join(*dataDir, devenv.KeyFile))
		if err != nil {
			return fmt.Errorf("key export: ENCRYPTION_KEY is unset and no dev key is kept in %s", *dataDir)
		}
		secret = strings.TrimSpace(string(b))
	}
	key, err := storage.ParseKey(secret)
	if err != nil {
		return err
	}
	// The identity is printed on purpose: an operator asked for it to decrypt backups by hand.
	fmt.Println(key.Identity())
	return nil
}

type devJSON struct {
	DatabaseURL        string
	ManagedDatabaseURL string
}

func readDevJSON(dataDir string) (devJSON, error) {
	env, err := devenv.Read(dataDir)
	if err != nil {
		return devJSON{}, err
	}
	return devJSON{DatabaseURL: env.DatabaseURL, ManagedDatabaseURL: env.ManagedDatabaseURL}, nil
}

// cutDataDir takes --data-dir DIR (or --data-dir=DIR) out of a wal command's flags, which come
// before its other arguments, and returns it (".data" when absent) with the arguments left.
func cutDataDir(args []string) (string, []string) {
	dir, rest := ".data", make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch {
		case a == "--" || !strings.HasPrefix(a, "-"):
			return dir, append(rest, args[i:]...)
		case name == "data-dir" && hasValue:
			dir = value
		case name == "data-dir" && i+1 < len(args):
			dir = args[i+1]
			i++
		case !hasValue && i+1 < len(args) && (name == "repo" || name == "key-file" || name == "prefetch"):
			rest = append(rest, a, args[i+1])
			i++
		default:
			rest = append(rest, a)
		}
	}
	return dir, rest
}
