// Package benchkit is what the benchmarks under bench/ share: a work directory that is
// cleaned up whatever happens, the source cluster they fill with generated One Vault-like
// data, pgBackRest (installed from Debian when missing and run as the postgres user),
// small SQL and file helpers, and the formatting of their markdown reports.
package benchkit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/onevault/readiness/internal/pgcluster"
)

// Main runs a benchmark's body in a new work directory (NewWork: dir, or a temporary one named
// after the benchmark; removed afterwards unless keep) with a context that Ctrl-C and SIGTERM
// cancel, and exits 1 with the error when it fails. A missed target is not an error: bodies report it.
func Main(name, dir string, keep bool, body func(ctx context.Context, w *Work) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := func() (err error) {
		w, err := NewWork(name+"-", dir, keep, os.Stdout)
		if err != nil {
			return err
		}
		defer func() {
			if cerr := w.Cleanup(); err == nil {
				err = cerr
			}
		}()
		return body(ctx, w)
	}()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		stop()
		os.Exit(1)
	}
}

// Work is one run's work directory and the clusters started in it.
type Work struct {
	Dir     string    // absolute
	Keep    bool      // keep the directory at the end
	Out     io.Writer // where Logf writes
	SockDir string    // the source cluster's Unix socket directory (short: socket paths are limited)

	clusters []*pgcluster.Cluster
}

// NewWork makes the work directory: dir, which must be empty or absent, or a new temporary
// directory named prefix* when dir is "". The postgres user may traverse it (mode 0711): it
// reads pgBackRest's configuration and writes data directories and repositories under it.
func NewWork(prefix, dir string, keep bool, out io.Writer) (*Work, error) {
	w := &Work{Keep: keep, Out: out}
	var err error
	if dir == "" {
		if w.Dir, err = os.MkdirTemp("", prefix); err != nil {
			return nil, err
		}
	} else {
		if w.Dir, err = filepath.Abs(dir); err != nil {
			return nil, err
		}
		if err := CheckEmptyDir(w.Dir); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(w.Dir, 0o700); err != nil {
			return nil, err
		}
	}
	if err := os.Chmod(w.Dir, 0o711); err != nil {
		return nil, err
	}
	return w, nil
}

// Path returns a path inside the work directory.
func (w *Work) Path(name ...string) string { return filepath.Join(append([]string{w.Dir}, name...)...) }

// Logf writes one time-stamped progress line.
func (w *Work) Logf(format string, args ...any) {
	fmt.Fprintf(w.Out, "%s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// Logger is a structured logger for the packages the benchmark drives (pgcluster), writing
// text lines where Logf writes.
func (w *Work) Logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(w.Out, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.String(slog.TimeKey, a.Value.Time().Format("15:04:05"))
			}
			return a
		}}))
}

// Track makes Cleanup stop c.
func (w *Work) Track(c *pgcluster.Cluster) { w.clusters = append(w.clusters, c) }

// NewSource makes (without starting) the benchmark's source cluster in Path("source"):
// wal_level replica, 10 WAL senders, archive_mode on, max_wal_size 2GB and a Unix socket in
// a new short directory under /tmp (pgBackRest reaches the cluster through it), with
// settings on top (archive_command at least). Cleanup stops it.
func (w *Work) NewSource(settings map[string]string) (*pgcluster.Cluster, error) {
	var err error
	if w.SockDir, err = os.MkdirTemp("/tmp", "bbsock-"); err != nil {
		return nil, err
	}
	all := map[string]string{
		"wal_level":               "replica",
		"max_wal_senders":         "10",
		"archive_mode":            "on",
		"unix_socket_directories": w.SockDir,
		"max_wal_size":            "2GB",
	}
	maps.Copy(all, settings)
	c, err := pgcluster.New(pgcluster.Options{DataDir: w.Path("source"), Settings: all, Logger: w.Logger()})
	if err != nil {
		return nil, err
	}
	if err := c.MkdirOwned(w.SockDir); err != nil {
		return nil, err
	}
	w.Track(c)
	return c, nil
}

// Cleanup stops every tracked cluster, newest first, and removes the socket directory and,
// unless Keep, the work directory.
func (w *Work) Cleanup() error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var errs []error
	for i := len(w.clusters) - 1; i >= 0; i-- {
		if err := w.clusters[i].Stop(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if w.SockDir != "" {
		errs = append(errs, os.RemoveAll(w.SockDir))
	}
	if w.Keep {
		w.Logf("kept the work directory %s (--keep)", w.Dir)
	} else {
		w.Logf("removing the work directory %s", w.Dir)
		errs = append(errs, os.RemoveAll(w.Dir))
	}
	return errors.Join(errs...)
}

// CheckEmptyDir refuses a --dir that holds anything: a benchmark removes its work
// directory at the end and must never remove someone's files.
func CheckEmptyDir(dir string) error {
	f, err := os.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Readdirnames(1); err == nil {
		return fmt.Errorf("--dir %s is not empty; give an empty or new directory", dir)
	} else if !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// DirBytes sums the apparent sizes of the regular files under dir (du -sb).
func DirBytes(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil // a file removed under a running server
			}
			return err
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			if err != nil {
				return err
			}
			total += fi.Size()
		}
		return nil
	})
	return total, err
}

// DataDirBytes is DirBytes of a data directory without pg_wal.
func DataDirBytes(dir string) (int64, error) {
	all, err := DirBytes(dir)
	if err != nil {
		return 0, err
	}
	wal, err := DirBytes(filepath.Join(dir, "pg_wal"))
	return all - wal, err
}
