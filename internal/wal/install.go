package wal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/onevault/readiness/internal/pgcluster"
)

// Commands returns the archive_command and restore_command that make a cluster
// archive into the repository at repo and recover from it, running bin (the
// readiness executable) with the key in keyFile. Paths are quoted for the
// shell PostgreSQL runs them with, and any % in them is doubled so that
// PostgreSQL does not take it for %p or %f.
func Commands(bin, repo, keyFile string) (archive, restore string) {
	run := func(command string) string {
		return pgEscape(shellQuote(bin)) + " " + command +
			" --repo " + pgEscape(shellQuote(repo)) + " --key-file " + pgEscape(shellQuote(keyFile))
	}
	return run("wal-push") + " %p", run("wal-fetch") + " %f %p"
}

// shellQuote quotes s for sh as one word. A quote inside closes the quoted
// part, is itself quoted in double quotes, and reopens it; the usual backslash
// form would not survive postgresql.conf, which reads a backslash in a value as
// an escape (and pgcluster does not double it).
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'"
}

// pgEscape doubles %, which PostgreSQL reserves in its commands for %p and %f.
func pgEscape(s string) string {
	return strings.ReplaceAll(s, "%", "%%")
}

// InstallOptions name what a cluster's archive_command and restore_command
// need on this host.
type InstallOptions struct {
	// Executable is the readiness program; "" is the running one
	// (os.Executable).
	Executable string
	// Bin, when set, is where Executable is copied so that the cluster's OS
	// user may run it: a `go run` binary or a test binary lives in a directory
	// only its builder can enter. Its directory is made with MkdirOwned. ""
	// runs Executable where it is (an installed /usr/local/bin/readiness).
	Bin string
	// RepoPath is the repository root; its wal/ directory is handed to the
	// cluster's user.
	RepoPath string
	// KeyFile is where the key is written for the cluster's user, mode 0600;
	// its directory is made with MkdirOwned. Keep it outside the repository.
	KeyFile string
	// Key is ENCRYPTION_KEY, as storage.ParseKey takes it.
	Key string
}

// Install prepares the host so that the cluster's OS user (postgres, when this
// process is root) can run the commands of Commands(bin, o.RepoPath, o.KeyFile):
// it gives <repo>/wal to that user, writes the key file readable by that user
// alone, and copies the executable where that user may run it. It returns the
// program the commands must name. Run it before the cluster starts archiving;
// it may run again on every start.
func Install(c *pgcluster.Cluster, o InstallOptions) (bin string, err error) {
	if o.RepoPath == "" || o.KeyFile == "" || o.Key == "" {
		return "", errors.New("wal: Install needs RepoPath, KeyFile and Key")
	}
	if err := c.MkdirOwned(filepath.Join(o.RepoPath, walDirName)); err != nil {
		return "", err
	}
	keyDir := filepath.Dir(o.KeyFile)
	if err := c.MkdirOwned(keyDir); err != nil {
		return "", err
	}
	if err := writeLikeDir(o.KeyFile, strings.NewReader(strings.TrimSpace(o.Key)+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("wal: writing the key file: %w", err)
	}
	exe := o.Executable
	if exe == "" {
		if exe, err = os.Executable(); err != nil {
			return "", fmt.Errorf("wal: finding the running executable: %w", err)
		}
	}
	if o.Bin == "" {
		return exe, nil
	}
	if err := c.MkdirOwned(filepath.Dir(o.Bin)); err != nil {
		return "", err
	}
	src, err := os.Open(exe)
	if err != nil {
		return "", fmt.Errorf("wal: %w", err)
	}
	defer src.Close()
	if err := writeLikeDir(o.Bin, src, 0o755); err != nil {
		return "", fmt.Errorf("wal: copying %s: %w", exe, err)
	}
	return o.Bin, nil
}

// writeLikeDir writes r to path through a temporary file and a rename (a
// running copy of an executable keeps its old file), with mode perm, owned
// by the owner of path's directory.
func writeLikeDir(path string, r io.Reader, perm os.FileMode) error {
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = io.Copy(tmp, r)
	if err == nil {
		err = tmp.Chmod(perm)
	}
	if err == nil {
		err = pgcluster.OwnerOf(fi).Chown(tmp)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// RunIfAsked makes a program (a test binary that PostgreSQL runs as archive_command or
// restore_command) act as `readiness wal-*` when its first argument is one of those commands,
// exiting with Run's status; otherwise it returns. Call it first in TestMain.
func RunIfAsked() {
	if len(os.Args) > 1 && strings.HasPrefix(os.Args[1], "wal-") {
		os.Exit(Run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
	}
}
