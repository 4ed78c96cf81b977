package wal

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/onevault/readiness/internal/storage"
)

// Environment variables read by ConfigFromEnvOrFlags; the first and the last
// are the service's own.
const (
	EnvStoragePath = "BACKUP_STORAGE_PATH"
	EnvKeyFile     = "ENCRYPTION_KEY_FILE"
	EnvKey         = "ENCRYPTION_KEY"
)

// Config is what the commands need. PostgreSQL runs archive_command as the
// postgres OS user with the server's environment, which rarely holds the
// service's, so it comes from flags (--repo DIR --key-file FILE) or from the
// environment; the key is never a flag, because command lines are visible to
// every user of the machine.
type Config struct {
	// RepoPath is the backup repository's root (BACKUP_STORAGE_PATH); the
	// archive lives in its wal/ directory.
	RepoPath string
	// KeyFile holds ENCRYPTION_KEY (an age identity or a passphrase, as
	// storage.ParseKey takes it). It is read when Key is nil.
	KeyFile string
	// Key is the repository's key. When nil, it is parsed from KeyFile.
	Key *storage.Key
	// BinDir holds pg_waldump; "" finds it like pgcluster.BinDir.
	BinDir string
	// Prefetch is how many segments wal-fetch fetches ahead in the
	// background (--prefetch N, default DefaultPrefetch; 0 turns it off).
	Prefetch int
}

// ConfigFromEnvOrFlags reads a Config from args, which are a command's
// arguments after its name, and from getenv, and returns the arguments left
// after the flags. Flags win over the environment:
//
//	--repo DIR       or BACKUP_STORAGE_PATH
//	--key-file FILE  or ENCRYPTION_KEY_FILE, or else ENCRYPTION_KEY itself
//	--prefetch N     segments wal-fetch fetches ahead (default 4, 0: none)
//
// Flags come before the other arguments ("wal-push --repo DIR %p"). The key is
// read and parsed here, so that a wrong configuration fails before anything is
// touched; no error repeats it.
func ConfigFromEnvOrFlags(args []string, getenv func(string) string) (Config, []string, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	fs := flag.NewFlagSet("wal", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	repo := fs.String("repo", "", "backup repository root (default $"+EnvStoragePath+")")
	keyFile := fs.String("key-file", "", "file holding the encryption key (default $"+EnvKeyFile+")")
	prefetch := fs.Int("prefetch", DefaultPrefetch, "segments wal-fetch fetches ahead in the background (0: none)")
	if err := fs.Parse(args); err != nil {
		if strings.Contains(err.Error(), "-key") && !strings.Contains(err.Error(), "-key-file") {
			return Config{}, nil, errors.New("wal: the key is never given on the command line (where ps shows it): use --key-file FILE")
		}
		return Config{}, nil, fmt.Errorf("wal: %w (flags: --repo DIR --key-file FILE, before the other arguments)", err)
	}
	if *prefetch < 0 || *prefetch > 64 {
		return Config{}, nil, errors.New("wal: --prefetch takes 0 to 64 segments")
	}
	cfg := Config{RepoPath: *repo, KeyFile: *keyFile, Prefetch: *prefetch}
	if cfg.RepoPath == "" {
		cfg.RepoPath = getenv(EnvStoragePath)
	}
	if cfg.RepoPath == "" {
		return Config{}, nil, fmt.Errorf("wal: no repository: give --repo DIR or set %s", EnvStoragePath)
	}
	abs, err := filepath.Abs(cfg.RepoPath)
	if err != nil {
		return Config{}, nil, fmt.Errorf("wal: repository path: %w", err)
	}
	cfg.RepoPath = abs
	if cfg.KeyFile == "" {
		cfg.KeyFile = getenv(EnvKeyFile)
	}
	if cfg.KeyFile != "" {
		if cfg.Key, err = readKeyFile(cfg.KeyFile); err != nil {
			return Config{}, nil, err
		}
	} else if s := getenv(EnvKey); s != "" {
		if cfg.Key, err = storage.ParseKey(s); err != nil {
			return Config{}, nil, fmt.Errorf("wal: %s: %w", EnvKey, err)
		}
	} else {
		return Config{}, nil, fmt.Errorf("wal: no key: give --key-file FILE or set %s or %s", EnvKeyFile, EnvKey)
	}
	return cfg, fs.Args(), nil
}

// readKeyFile parses the key kept in path; errors name the file, never its content.
func readKeyFile(path string) (*storage.Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("wal: reading the key file: %w (it must be readable by the user PostgreSQL runs as)", err)
	}
	k, err := storage.ParseKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("wal: key file %s: %w", path, err)
	}
	return k, nil
}

// key returns the configured key, reading KeyFile when Key is nil.
func (c Config) key() (*storage.Key, error) {
	if c.Key != nil {
		return c.Key, nil
	}
	if c.KeyFile == "" {
		return nil, errors.New("wal: Config has neither Key nor KeyFile")
	}
	return readKeyFile(c.KeyFile)
}

// walRoot is the archive's directory inside the repository.
func (c Config) walRoot() (string, error) {
	if c.RepoPath == "" {
		return "", errors.New("wal: Config.RepoPath is empty")
	}
	abs, err := filepath.Abs(c.RepoPath)
	if err != nil {
		return "", fmt.Errorf("wal: repository path: %w", err)
	}
	return filepath.Join(abs, walDirName), nil
}
