// Package stdtools gives tests the standard commands that the README promises every backup
// object can be read with, without the service: the upstream `age` CLI and `zstd`.
//
// A test of the standard tools that cannot find them fails; it never skips, because a skip
// would hide exactly what the test claims to check. age is built from the filippo.io/age
// module at the version in go.mod (tools.go keeps its command in the module graph), so it
// needs only Go. zstd is the Debian package `zstd`, which `make test` installs when missing.
package stdtools

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// agePackage is the upstream age command, the one users install as `age`.
const agePackage = "filippo.io/age/cmd/age"

// Age builds the upstream age command into a temporary directory and returns its path. The
// build takes about two seconds the first time and is served by Go's build cache after that.
func Age(tb testing.TB) string {
	tb.Helper()
	bin := filepath.Join(tb.TempDir(), "age")
	cmd := exec.Command(goCommand(tb), "build", "-o", bin, agePackage)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("building the age command from %s: %v\n%s", agePackage, err, out)
	}
	return bin
}

// Zstd returns the path of the zstd command, and fails the test when it is not installed.
func Zstd(tb testing.TB) string {
	tb.Helper()
	p, err := exec.LookPath("zstd")
	if err != nil {
		tb.Fatalf("the zstd command is not installed: `make test` installs it, or run apt-get install -y zstd (%v)", err)
	}
	return p
}

// goCommand is the go command that runs the tests: `go test` puts its toolchain's bin
// directory first on the test binary's PATH.
func goCommand(tb testing.TB) string {
	tb.Helper()
	p, err := exec.LookPath("go")
	if err != nil {
		tb.Fatalf("no go command on PATH to build age with: %v", err)
	}
	return p
}
