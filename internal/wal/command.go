package wal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Usage describes the commands Run implements, for the service's help text.
const Usage = `  wal-push  archive one WAL file (archive_command): wal-push [--repo DIR] [--key-file FILE] PATH
  wal-fetch restore one WAL file (restore_command): wal-fetch [--repo DIR] [--key-file FILE] [--prefetch N] NAME PATH
  wal-status the WAL archive's state as JSON, exit 1 on a problem: wal-status [--repo DIR] [--key-file FILE] [MANAGED_DATABASE_URL]
  wal-verify read and check every archived WAL file: wal-verify [--repo DIR] [--key-file FILE]
`

// Exit statuses of Run. PostgreSQL retries a push that exits non-zero, and
// takes a fetch that exits non-zero (below 126) for a file the archive lacks.
const (
	ExitOK      = 0
	ExitFailure = 1 // the operation failed, or wal-fetch found no such file
	ExitUsage   = 2 // wrong arguments or configuration
)

// errUsage marks errors in the arguments.
var errUsage = errors.New("usage")

// errDryRun ends a dry run after the checks.
var errDryRun = errors.New("dry run")

// EnvDryRun, when set to 1, makes Run check a command line (its flags, its arguments and its
// key) and exit 0 without doing anything: the README's command lines are checked this way, and
// an operator can check an archive_command before giving it to PostgreSQL.
const EnvDryRun = "READINESS_DRY_RUN"

// DryRunNote is what a dry run writes to stderr, so that a check can tell it from a real run.
const DryRunNote = "dry run: the command line is valid"

// Run runs one of the commands of Usage; args[0] is its name ("wal-push"),
// the rest its arguments. It writes results to stdout and one line per failure
// to stderr, which PostgreSQL copies into its log, and returns the exit status.
// wal-fetch of a file that is not archived writes nothing: during recovery and
// on a standby that happens at the end of the archive every few seconds.
// wal-status and wal-verify exit 1 when they find a problem.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, Usage)
		return ExitUsage
	}
	if getenv == nil {
		getenv = os.Getenv
	}
	name := args[0]
	err := run(ctx, name, args[1:], getenv, stdout)
	if errors.Is(err, errDryRun) {
		fmt.Fprintf(stderr, "readiness %s: %s\n", name, DryRunNote)
		return ExitOK
	}
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, ErrNotArchived) && name == "wal-fetch":
		return ExitFailure
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "readiness %s: %v\n", name, strings.TrimPrefix(err.Error(), "usage: "))
		return ExitUsage
	default:
		fmt.Fprintf(stderr, "readiness %s: %v\n", name, err)
		return ExitFailure
	}
}

func run(ctx context.Context, name string, args []string, getenv func(string) string, stdout io.Writer) error {
	switch name {
	case "wal-push", "wal-fetch", "wal-prefetch", "wal-status", "wal-verify":
	default:
		return fmt.Errorf("%w: unknown command %q\n%s", errUsage, name, Usage)
	}
	cfg, rest, err := ConfigFromEnvOrFlags(args, getenv)
	if err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	// A dry run ends once the command line has been checked.
	dry := getenv(EnvDryRun) == "1"
	switch name {
	case "wal-push":
		if len(rest) != 1 {
			return fmt.Errorf("%w: wal-push [--repo DIR] [--key-file FILE] PATH (archive_command = 'readiness wal-push ... %%p')", errUsage)
		}
		if dry {
			return errDryRun
		}
		return Push(ctx, cfg, rest[0])
	case "wal-fetch":
		if len(rest) != 2 {
			return fmt.Errorf("%w: wal-fetch [--repo DIR] [--key-file FILE] NAME PATH (restore_command = 'readiness wal-fetch ... %%f %%p')", errUsage)
		}
		if dry {
			return errDryRun
		}
		return fetchAhead(ctx, cfg, rest[0], rest[1])
	case "wal-prefetch": // started by wal-fetch, see prefetch.go
		if len(rest) != 2 {
			return fmt.Errorf("%w: wal-prefetch [--repo DIR] [--key-file FILE] [--prefetch N] AFTER SPOOL", errUsage)
		}
		if dry {
			return errDryRun
		}
		return Prefetch(ctx, cfg, rest[0], rest[1])
	case "wal-status":
		if len(rest) > 1 {
			return fmt.Errorf("%w: wal-status [--repo DIR] [--key-file FILE] [MANAGED_DATABASE_URL]", errUsage)
		}
		conn := getenv("MANAGED_DATABASE_URL")
		if len(rest) == 1 {
			conn = rest[0]
		}
		if dry {
			return errDryRun
		}
		st, err := Check(ctx, cfg, conn)
		if err != nil {
			return err
		}
		if err := writeJSON(stdout, st); err != nil {
			return err
		}
		if problems := st.Problems(); len(problems) > 0 {
			return errors.New(strings.Join(problems, "; "))
		}
		return nil
	default: // wal-verify
		if len(rest) != 0 {
			return fmt.Errorf("%w: wal-verify [--repo DIR] [--key-file FILE]", errUsage)
		}
		if dry {
			return errDryRun
		}
		res, err := Verify(ctx, cfg)
		if err != nil {
			return err
		}
		if err := writeJSON(stdout, res); err != nil {
			return err
		}
		if len(res.Failures) > 0 {
			return fmt.Errorf("%d archived files are damaged", len(res.Failures))
		}
		return nil
	}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
