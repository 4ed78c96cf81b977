package devenv

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// DevFile is the file in the data directory that says where `readiness dev` serves: its
// addresses, database URLs, secret and tokens.
const DevFile = "dev.json"

// RepoDir is the backup repository's directory inside the data directory (BACKUP_STORAGE_PATH
// of the service that `readiness dev` runs).
const RepoDir = "backups"

// Read returns what the `readiness dev` that used dataDir wrote to its dev.json.
func Read(dataDir string) (*Env, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, DevFile))
	if err != nil {
		return nil, err
	}
	var env Env
	if err := json.Unmarshal(b, &env); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dataDir, DevFile), err)
	}
	return &env, nil
}

// Getenv returns getenv with the settings of the `readiness dev` that used dataDir behind it,
// so that the commands run beside it (wal-status, wal-verify) need no flags: the repository
// BACKUP_STORAGE_PATH is dataDir/backups, the key ENCRYPTION_KEY_FILE the one it archives
// with, and MANAGED_DATABASE_URL its managed database. A variable that is set wins, and so
// do the commands' flags; without a dev.json in dataDir, getenv is returned as it is.
func Getenv(dataDir string, getenv func(string) string) func(string) string {
	env, err := Read(dataDir)
	if err != nil {
		return getenv
	}
	keyFile := ""
	for _, p := range []string{filepath.Join(dataDir, "wal-key", KeyFile), filepath.Join(dataDir, KeyFile)} {
		if _, err := os.Stat(p); err == nil || !errors.Is(err, os.ErrNotExist) {
			keyFile = p
			break
		}
	}
	return func(name string) string {
		if v := getenv(name); v != "" {
			return v
		}
		switch name {
		case "BACKUP_STORAGE_PATH":
			return filepath.Join(dataDir, RepoDir)
		case "ENCRYPTION_KEY_FILE":
			// An ENCRYPTION_KEY in the environment is the user's choice of key: keep it.
			if getenv("ENCRYPTION_KEY") == "" {
				return keyFile
			}
		case "MANAGED_DATABASE_URL":
			return env.ManagedDatabaseURL
		}
		return ""
	}
}
