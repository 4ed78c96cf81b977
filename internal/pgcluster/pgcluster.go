// Package pgcluster starts and stops private PostgreSQL clusters from the machine's server
// binaries (initdb, pg_ctl, postgres). Tests use it through internal/pgtest; backup and
// recovery code uses it to run restored or replica clusters.
//
// PostgreSQL refuses to run as root, so when the process runs as root every server command
// runs as the postgres OS user, and the data directory is handed to that user.
package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrNoServerBinaries is returned by BinDir and New when the machine has no PostgreSQL server
// binaries that pgcluster can use.
var ErrNoServerBinaries = errors.New("pgcluster: no PostgreSQL server binaries found")

// minPathVersion is the oldest pg_ctl taken from PATH; an older one on PATH would otherwise
// shadow a newer installation under /usr/lib/postgresql.
const minPathVersion = 15

// settingsFile is the file, inside the data directory, that Start rewrites with the
// cluster's settings; postgresql.conf includes it.
const settingsFile = "pgcluster.conf"

// includeLine is appended once to postgresql.conf so that the server reads settingsFile.
const includeLine = "include = '" + settingsFile + "'"

// Options configures a Cluster.
type Options struct {
	// DataDir is the cluster's data directory. Start creates it and runs initdb when it
	// holds no PG_VERSION.
	DataDir string
	// Port is the TCP port the server listens on at 127.0.0.1. Zero picks a free port,
	// preferring on a restart the port this data directory used before.
	Port int
	// Settings are extra postgresql.conf settings such as "wal_level": "replica". Start
	// writes them on every start, so they may change between starts; they cannot change
	// port or listen_addresses.
	Settings map[string]string
	// Fast turns off fsync, synchronous_commit and full_page_writes, which makes the
	// cluster faster and unsafe on a crash. It is meant for tests only.
	Fast bool
	// Logger, when set, receives a line for each step Start and Stop take; nil logs nothing.
	Logger *slog.Logger
}

// Cluster is one PostgreSQL cluster: a data directory and, once started, the server
// running on it. Its methods are safe for concurrent use.
type Cluster struct {
	opts    Options
	dataDir string // absolute
	binDir  string
	owner   *Owner // nil unless running as root

	mu   sync.Mutex
	port int
}

// New checks the options and finds the server binaries; it does not touch the data
// directory, which Start prepares.
func New(opts Options) (*Cluster, error) {
	if opts.DataDir == "" {
		return nil, errors.New("pgcluster: Options.DataDir is required")
	}
	dataDir, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, fmt.Errorf("pgcluster: data directory: %w", err)
	}
	for name := range opts.Settings {
		if !settingName.MatchString(name) {
			return nil, fmt.Errorf("pgcluster: invalid setting name %q", name)
		}
		if name == "port" || name == "listen_addresses" {
			return nil, fmt.Errorf("pgcluster: setting %q is managed by the cluster; use Options.Port", name)
		}
	}
	binDir, err := BinDir()
	if err != nil {
		return nil, err
	}
	c := &Cluster{opts: opts, dataDir: dataDir, binDir: binDir, port: opts.Port}
	if c.owner, err = ServerOwner(); err != nil {
		return nil, err
	}
	return c, nil
}

// settingName matches the names of PostgreSQL settings, including custom ones such as
// "pg_stat_statements.track".
var settingName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.]*$`)

// BinDir returns the directory holding pg_ctl, initdb and postgres: the one of the pg_ctl
// on PATH when it is version 15 or newer, else the highest /usr/lib/postgresql/*/bin.
func BinDir() (string, error) {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		// Follow symlinks such as /usr/local/bin/pg_ctl, so that the other server
		// tools (pg_basebackup, psql) are found next to it.
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		dir := filepath.Dir(p)
		if v, err := majorVersion(p); err == nil && v >= minPathVersion && hasServerBinaries(dir) {
			return dir, nil
		}
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	best, bestVersion := "", 0
	for _, m := range matches {
		dir := filepath.Dir(m)
		v, err := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
		if err == nil && v > bestVersion && hasServerBinaries(dir) {
			best, bestVersion = dir, v
		}
	}
	if best == "" {
		return "", fmt.Errorf("%w: no pg_ctl %d+ on PATH and none in /usr/lib/postgresql/*/bin; install the PostgreSQL server package",
			ErrNoServerBinaries, minPathVersion)
	}
	return best, nil
}

// hasServerBinaries reports whether dir holds the three programs a cluster needs.
func hasServerBinaries(dir string) bool {
	for _, name := range []string{"pg_ctl", "initdb", "postgres"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			return false
		}
	}
	return true
}

// majorVersion runs `pg_ctl --version`, which prints e.g. "pg_ctl (PostgreSQL) 15.20".
func majorVersion(pgCtl string) (int, error) {
	out, err := exec.Command(pgCtl, "--version").Output()
	if err != nil {
		return 0, err
	}
	m := regexp.MustCompile(`\(PostgreSQL\) (\d+)`).FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("unrecognised version %q", out)
	}
	return strconv.Atoi(string(m[1]))
}

// Port returns the port the server listens on; before the first Start it is Options.Port.
func (c *Cluster) Port() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.port
}

// DataDir returns the absolute path of the cluster's data directory.
func (c *Cluster) DataDir() string { return c.dataDir }

// BinDir returns the directory of the server binaries the cluster runs.
func (c *Cluster) BinDir() string { return c.binDir }

// URL returns the connection URL of the named database as the postgres superuser, who
// needs no password on the cluster's loopback address.
func (c *Cluster) URL(database string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User("postgres"),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(c.Port())),
		Path:     "/" + database,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// CreateDatabase creates the named database unless it exists already.
func (c *Cluster) CreateDatabase(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return fmt.Errorf("pgcluster: create database %q: %w", name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := CreateDatabase(ctx, conn, name); err != nil && !errors.Is(err, ErrDatabaseExists) {
		return err
	}
	return nil
}

// ErrDatabaseExists is returned by CreateDatabase for a name the server already has.
var ErrDatabaseExists = errors.New("database exists already")

// CreateDatabase creates the database name on the server that conn (a connection to another
// database of it, such as postgres) is connected to. An existing database is left alone and
// answers an error wrapping ErrDatabaseExists, so that a caller that must not write into a
// database it did not make (a restore) can refuse, and one that only needs it (readiness dev)
// goes on. It is the one place the service creates databases.
func CreateDatabase(ctx context.Context, conn *pgx.Conn, name string) error {
	_, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // duplicate_database
		return fmt.Errorf("%w: %q", ErrDatabaseExists, name)
	}
	if err != nil {
		return fmt.Errorf("create database %q: %w", name, err)
	}
	return nil
}

// RunAsOwner makes cmd run as the postgres OS user when this process is root, as every
// program that reads or writes a data directory must (pg_ctl, pg_basebackup, ...). It
// leaves cmd.Dir alone: the postgres user may be unable to enter this process's working
// directory, so give such commands absolute paths and a Dir it can enter, such as "/".
func (c *Cluster) RunAsOwner(cmd *exec.Cmd) {
	if c.owner == nil {
		return
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Credential = &syscall.Credential{Uid: c.owner.uid, Gid: c.owner.gid, Groups: c.owner.groups}
}

// Start initialises the data directory when it holds no cluster yet, writes the settings
// and starts the server, waiting until it accepts connections. A server already running
// on the data directory is restarted, so that the current options apply. A postmaster.pid
// left behind by a killed server is removed.
func (c *Cluster) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()

	if err := c.prepareDataDir(ctx); err != nil {
		return err
	}
	if running, err := c.checkPIDFile(); err != nil {
		return err
	} else if running {
		c.log().Info("pgcluster: restarting the server already running", "data_dir", c.dataDir)
		if err := c.stop(ctx); err != nil {
			return err
		}
	}
	port, err := c.choosePort()
	if err != nil {
		return err
	}
	if err := c.writeSettings(port); err != nil {
		return err
	}
	c.log().Info("pgcluster: starting", "data_dir", c.dataDir, "port", port)
	out, err := c.run(ctx, "pg_ctl", "start", "-w", "-t", "120", "-D", c.dataDir, "-l", c.logFile())
	if err != nil {
		return fmt.Errorf("pgcluster: pg_ctl start: %w\n%s\nserver log (%s):\n%s",
			err, strings.TrimSpace(string(out)), c.logFile(), c.logTail())
	}
	c.port = port
	return nil
}

// Stop shuts the server down (fast mode: running transactions are rolled back) and waits
// until it is gone. It does nothing when no server runs on the data directory.
func (c *Cluster) Stop(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	running, err := c.checkPIDFile()
	if err != nil || !running {
		return err
	}
	return c.stop(ctx)
}

// Discard stops the server at once (immediate mode: no shutdown checkpoint or restartpoint),
// for an instance whose data directory is removed next, so that writing its dirty pages back
// would be wasted. It does nothing when no server runs on the data directory.
func (c *Cluster) Discard(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	running, err := c.checkPIDFile()
	if err != nil || !running {
		return err
	}
	c.log().Info("pgcluster: stopping (immediate)", "data_dir", c.dataDir)
	out, err := c.run(ctx, "pg_ctl", "stop", "-m", "immediate", "-w", "-t", "120", "-D", c.dataDir)
	if err != nil {
		return fmt.Errorf("pgcluster: pg_ctl stop: %w\n%s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (c *Cluster) stop(ctx context.Context) error {
	c.log().Info("pgcluster: stopping", "data_dir", c.dataDir)
	out, err := c.run(ctx, "pg_ctl", "stop", "-m", "fast", "-w", "-t", "120", "-D", c.dataDir)
	if err != nil {
		return fmt.Errorf("pgcluster: pg_ctl stop: %w\n%s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// prepareDataDir makes sure the postgres user can use the data directory, and runs initdb
// when the directory holds no cluster yet.
func (c *Cluster) prepareDataDir(ctx context.Context) error {
	_, err := os.Stat(filepath.Join(c.dataDir, "PG_VERSION"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("pgcluster: %w", err)
	}
	if errors.Is(err, fs.ErrNotExist) {
		if err := c.MkdirOwned(c.dataDir); err != nil {
			return err
		}
		if err := c.initdb(ctx); err != nil {
			return err
		}
	} else if err := c.checkTraversable(c.dataDir); err != nil {
		return err
	}
	logDir := filepath.Dir(c.logFile())
	if err := os.Mkdir(logDir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("pgcluster: %w", err)
	}
	return c.owner.Lchown(logDir)
}

// MkdirOwned creates dir and any missing parents for the user that runs PostgreSQL, and
// makes sure that user can reach it, as it must for a WAL archive or a backup target that
// the server or pg_basebackup writes. An existing dir is handed over too, but not its
// contents.
func (c *Cluster) MkdirOwned(dir string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	// Remember which directories MkdirAll creates, to hand them to the postgres user.
	var created []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); !errors.Is(err, fs.ErrNotExist) {
			break
		}
		created = append(created, d)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	// dir itself may exist already, made by the caller as root.
	for _, d := range append(created, dir) {
		if err := c.owner.Lchown(d); err != nil {
			return err
		}
	}
	return c.checkTraversable(dir)
}

// initdb creates a cluster whose superuser is postgres, trusted on local connections.
func (c *Cluster) initdb(ctx context.Context) error {
	var out []byte
	var err error
	for _, locale := range []string{"C.UTF-8", "C"} {
		c.log().Info("pgcluster: initdb", "data_dir", c.dataDir, "locale", locale)
		args := []string{"-D", c.dataDir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=" + locale, "--no-instructions"}
		if c.opts.Fast {
			args = append(args, "--no-sync")
		}
		out, err = c.run(ctx, "initdb", args...)
		// Not every machine has the C.UTF-8 locale; the plain C locale always works.
		if err == nil || !strings.Contains(strings.ToLower(string(out)), "locale") {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("pgcluster: initdb: %w\n%s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// checkTraversable makes sure the postgres user can reach path: every parent must let it
// pass. A parent inside the temporary directory (such as the 0700 directories
// of t.TempDir) is given o+x, which lets others pass but not list it; any other parent
// is the caller's to fix.
func (c *Cluster) checkTraversable(path string) error {
	if c.owner == nil {
		return nil
	}
	dir, err := filepath.EvalSymlinks(path)
	if err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	tmp, err := filepath.EvalSymlinks(os.TempDir())
	if err != nil {
		tmp = filepath.Clean(os.TempDir())
	}
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("pgcluster: %w", err)
		}
		if !c.owner.CanTraverse(fi) {
			if !strings.HasPrefix(p, tmp+string(filepath.Separator)) {
				return fmt.Errorf("pgcluster: the postgres user cannot enter %s (mode %04o), a parent of %s; "+
					"make it traversable (chmod o+x) or choose another directory", p, fi.Mode().Perm(), path)
			}
			c.log().Warn("pgcluster: chmod o+x so that the postgres user can reach a path", "dir", p, "path", path)
			if err := os.Chmod(p, fi.Mode().Perm()|0o001); err != nil {
				return fmt.Errorf("pgcluster: %w", err)
			}
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// checkPIDFile reports whether a server runs on the data directory. A postmaster.pid whose
// process is gone, or whose process ID now belongs to another program, is removed: pg_ctl
// and postgres would otherwise take a reused process ID for a running server and refuse
// to start.
func (c *Cluster) checkPIDFile() (bool, error) {
	pidFile := filepath.Join(c.dataDir, "postmaster.pid")
	data, err := os.ReadFile(pidFile)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("pgcluster: %w", err)
	}
	firstLine, _, _ := strings.Cut(string(data), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(firstLine))
	if pid > 0 && c.isServerProcess(pid) {
		return true, nil
	}
	c.log().Warn("pgcluster: removing a stale pid file: its process is not this cluster's server", "pid_file", pidFile, "pid", pid)
	if err := os.Remove(pidFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("pgcluster: %w", err)
	}
	return false, nil
}

// isServerProcess reports whether process pid is a server of this data directory. On
// Linux it checks the process's working directory, which PostgreSQL sets to the data
// directory; elsewhere any live process counts, which errs on the safe side.
func (c *Cluster) isServerProcess(pid int) bool {
	if runtime.GOOS == "linux" {
		dir, err := filepath.EvalSymlinks(c.dataDir)
		if err != nil {
			return false
		}
		cwd, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/cwd")
		return err == nil && cwd == dir
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// choosePort returns Options.Port when set; otherwise the port this data directory used
// last time if it is free, else a free one.
func (c *Cluster) choosePort() (int, error) {
	if c.opts.Port != 0 {
		return c.opts.Port, nil
	}
	if p := c.recordedPort(); p != 0 && portFree(p) {
		return p, nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgcluster: finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// recordedPort returns the port in the settings file of the last start, or 0.
func (c *Cluster) recordedPort() int {
	data, err := os.ReadFile(filepath.Join(c.dataDir, settingsFile))
	if err != nil {
		return 0
	}
	m := regexp.MustCompile(`(?m)^port = (\d+)$`).FindSubmatch(data)
	if m == nil {
		return 0
	}
	p, _ := strconv.Atoi(string(m[1]))
	return p
}

func portFree(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// writeSettings writes the settings file that postgresql.conf includes. Later lines win,
// so Options.Settings override the defaults, and port and listen_addresses come last.
func (c *Cluster) writeSettings(port int) error {
	conf := filepath.Join(c.dataDir, "postgresql.conf")
	data, err := os.ReadFile(conf)
	if err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	if !strings.Contains(string(data), includeLine) {
		// A fresh cluster, or one restored from another server's backup.
		f, err := os.OpenFile(conf, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			return fmt.Errorf("pgcluster: %w", err)
		}
		_, err = fmt.Fprintf(f, "\n# Settings that pgcluster rewrites on every start.\n%s\n", includeLine)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("pgcluster: %s: %w", conf, err)
		}
	}

	var b strings.Builder
	b.WriteString("# Written by pgcluster on every start; edits here are lost.\n")
	// No Unix socket: clients connect over TCP, and socket paths are limited to about 100
	// bytes, which deep temporary directories exceed. pg_ctl -w watches postmaster.pid.
	b.WriteString("unix_socket_directories = ''\n")
	if c.opts.Fast {
		b.WriteString("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n")
	}
	for _, name := range slices.Sorted(maps.Keys(c.opts.Settings)) {
		fmt.Fprintf(&b, "%s = '%s'\n", name, strings.ReplaceAll(c.opts.Settings[name], "'", "''"))
	}
	fmt.Fprintf(&b, "listen_addresses = '127.0.0.1'\nport = %d\n", port)

	path := filepath.Join(c.dataDir, settingsFile)
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	return c.owner.Lchown(path)
}

// logFile is where pg_ctl sends the server's output.
func (c *Cluster) logFile() string { return filepath.Join(c.dataDir, "log", "server.log") }

// logTail returns the last few kilobytes of the server log, for error messages.
func (c *Cluster) logTail() string {
	f, err := os.Open(c.logFile())
	if err != nil {
		return "(" + err.Error() + ")"
	}
	defer f.Close()
	const max = 4096
	if fi, err := f.Stat(); err == nil && fi.Size() > max {
		if _, err := f.Seek(-max, io.SeekEnd); err != nil {
			return "(" + err.Error() + ")"
		}
	}
	data, _ := io.ReadAll(f)
	if len(data) == max {
		if _, rest, ok := strings.Cut(string(data), "\n"); ok { // drop the partial first line
			return rest
		}
	}
	return string(data)
}

// run runs one of the server binaries as the postgres user and returns its combined output.
func (c *Cluster) run(ctx context.Context, program string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, program), args...)
	cmd.Dir = "/" // the postgres user may not be able to enter our working directory
	c.RunAsOwner(cmd)
	return cmd.CombinedOutput()
}

// discard is the logger of a cluster whose options set none.
var discard = slog.New(slog.DiscardHandler)

func (c *Cluster) log() *slog.Logger {
	if c.opts.Logger != nil {
		return c.opts.Logger
	}
	return discard
}

// Own gives path to the cluster's OS user when this process runs as root (a file put into the
// data directory, such as recovery.signal); otherwise it does nothing.
func (c *Cluster) Own(path string) error { return c.owner.Lchown(path) }

// Failure returns the last FATAL or PANIC line of the server log (PostgreSQL's reason for
// stopping), or "" when there is none.
func (c *Cluster) Failure() string {
	lines := strings.Split(c.logTail(), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], "FATAL:") || strings.Contains(lines[i], "PANIC:") {
			return strings.TrimSpace(lines[i])
		}
	}
	return ""
}
