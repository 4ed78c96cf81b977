package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onevault/readiness/internal/pgtest"
	"github.com/onevault/readiness/internal/storage"
	"github.com/onevault/readiness/internal/wal"
)

// TestMain lets the tests run this binary as `readiness`: with READINESS_RUN_MAIN=1 it is main.
func TestMain(m *testing.M) {
	if os.Getenv("READINESS_RUN_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	pgtest.Main(m)
}

// readmeCommand is one command line that the README shows.
type readmeCommand struct {
	line int
	text string // as written, for messages
	args []string
}

var (
	fence      = regexp.MustCompile("(?s)```[a-z]*\n(.*?)```")
	inlineCode = regexp.MustCompile("(?s)`([^`]+)`")
	quoted     = regexp.MustCompile(`'((?:\./bin/)?readiness [^']*)'`)
)

// readmeCommands finds every `readiness ...` command line in the README: the lines of its code
// blocks, the commands quoted in them (archive_command = '...'), and inline code in the prose.
func readmeCommands(t *testing.T, readme string) []readmeCommand {
	t.Helper()
	var out []readmeCommand
	add := func(offset int, text string) {
		text = strings.Join(strings.Fields(text), " ")
		text = strings.TrimPrefix(text, "./bin/")
		if !strings.HasPrefix(text, "readiness ") {
			return
		}
		line := strings.Count(readme[:offset], "\n") + 1
		args := strings.Fields(strings.TrimPrefix(text, "readiness "))
		out = append(out, readmeCommand{line: line, text: text, args: args})
	}
	prose := readme
	for _, m := range fence.FindAllStringSubmatchIndex(readme, -1) {
		block := readme[m[2]:m[3]]
		offset := m[2]
		for _, l := range strings.SplitAfter(block, "\n") {
			if q := quoted.FindStringSubmatch(l); q != nil {
				add(offset, q[1])
			} else {
				// A shell line: the command ends at a comment, a redirection or a pipe.
				cmd := l
				for _, sep := range []string{" #", " >", " |"} {
					cmd, _, _ = strings.Cut(cmd, sep)
				}
				add(offset, cmd)
			}
			offset += len(l)
		}
		prose = prose[:m[0]] + strings.Repeat(" ", m[1]-m[0]) + prose[m[1]:] // keep offsets
	}
	for _, m := range inlineCode.FindAllStringSubmatchIndex(prose, -1) {
		add(m[2], prose[m[2]:m[3]])
	}
	return out
}

// mentionsOnly are commands that the prose names without their arguments, which they cannot
// run without (wal-push and wal-fetch take a file; serve takes its whole configuration from the
// environment, which the README lists apart). Those mentions are checked against the usage text.
var mentionsOnly = map[string]bool{"wal-push": true, "wal-fetch": true, "serve": true,
	"restore": true, "repo reindex": true}

// TestEveryReadmeCommandLineRuns runs every command line of the README in a dry run
// (READINESS_DRY_RUN=1): the flags, arguments and key are checked as in a real run, then the
// command exits without doing anything. The working directory looks like readiness dev's,
// .data/ with dev.json and the key, so that the commands shown without flags are checked too.
func TestEveryReadmeCommandLineRuns(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	require.NoError(t, err)
	cmds := readmeCommands(t, string(readme))
	require.GreaterOrEqual(t, len(cmds), 10, "the README's command lines are found: %v", cmds)

	work := t.TempDir()
	dataDir := filepath.Join(work, ".data")
	require.NoError(t, os.MkdirAll(filepath.Join(dataDir, "backups"), 0o700))
	key, err := storage.GenerateKey()
	require.NoError(t, err)
	keyFile := filepath.Join(dataDir, "encryption_key")
	require.NoError(t, os.WriteFile(keyFile, []byte(key+"\n"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dataDir, "dev.json"),
		[]byte(`{"database_url":"postgres://127.0.0.1:1/readiness","managed_database_url":"postgres://127.0.0.1:1/one_vault"}`), 0o600))
	segment := filepath.Join(work, "000000010000000000000001")
	require.NoError(t, os.WriteFile(segment, make([]byte, 16<<20), 0o600))

	// Placeholders of the README's usage lines, and the paths of its examples that this
	// machine does not have, stand for these.
	placeholder := map[string]string{
		"DIR": dataDir, "FILE": keyFile, "URL": "postgres://127.0.0.1:1/one_vault",
		"MANAGED_DATABASE_URL": "postgres://127.0.0.1:1/one_vault", "HOST:PORT": "127.0.0.1:0",
		"N": "2", "SIZE": "10MB", "SEQ:HASH": "1:" + strings.Repeat("ab", 32), "ID": "6f1c2b9e-4d5a-4c1e-9a57-3b0e2f1d8c44",
		"PATH": segment, "NAME": filepath.Base(segment), "%p": segment, "%f": filepath.Base(segment),
		"/etc/readiness/age.key": keyFile, "/backup": filepath.Join(dataDir, "backups"),
	}

	for _, c := range cmds {
		t.Run(c.text, func(t *testing.T) {
			var args []string
			for _, a := range c.args {
				a = strings.Trim(a, "[]") // an optional part of a usage line is checked too
				if a == "..." || a == "" {
					continue
				}
				if v, ok := placeholder[a]; ok {
					a = v
				}
				args = append(args, a)
			}
			if mentionsOnly[strings.Join(args, " ")] {
				code, stdout, _ := runReadiness(t, work, "help")
				require.Equal(t, 0, code)
				require.Contains(t, stdout, "\n  "+args[0]+" ", "README line %d names a command that does not exist", c.line)
				return
			}
			code, stdout, stderr := runReadiness(t, work, args...)
			require.Equal(t, 0, code, "README line %d: %s\nstdout: %s\nstderr: %s", c.line, c.text, stdout, stderr)
			require.Contains(t, stderr, wal.DryRunNote,
				"README line %d: the command ran for real instead of checking its command line (it must call dryRun after parsing)", c.line)
		})
	}
}

// runReadiness runs this test binary as `readiness args...` in dir, in a dry run, with an
// environment that holds none of the service's settings.
func runReadiness(t *testing.T, dir string, args ...string) (int, string, string) {
	t.Helper()
	return runReadinessEnv(t, dir, []string{wal.EnvDryRun + "=1"}, args...)
}

// runReadinessEnv runs this test binary as `readiness args...` in dir with env and no other
// setting of the service.
func runReadinessEnv(t *testing.T, dir string, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "READINESS_RUN_MAIN=1"}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil {
		require.ErrorAs(t, err, &exit)
		return exit.ExitCode(), stdout.String(), stderr.String()
	}
	return 0, stdout.String(), stderr.String()
}

func TestCutDataDir(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		dir      string
		leftOver []string
	}{
		{nil, ".data", []string{}},
		{[]string{"--data-dir", "/d"}, "/d", []string{}},
		{[]string{"--data-dir=/d", "--repo", "/r"}, "/d", []string{"--repo", "/r"}},
		{[]string{"--repo", "/r", "-data-dir", "/d", "postgres://x"}, "/d", []string{"--repo", "/r", "postgres://x"}},
		{[]string{"--key-file", "--data-dir"}, ".data", []string{"--key-file", "--data-dir"}}, // a value, not a flag
		{[]string{"postgres://x", "--data-dir", "/d"}, ".data", []string{"postgres://x", "--data-dir", "/d"}},
	} {
		dir, rest := cutDataDir(tc.args)
		require.Equal(t, tc.dir, dir, "%q", tc.args)
		require.Equal(t, tc.leftOver, rest, "%q", tc.args)
	}
}
