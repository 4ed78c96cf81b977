package layout_test

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const module = "github.com/onevault/readiness/"

// imports returns the imports of the non-test Go files of the package in dir (relative to the
// module root), or nil when the folder does not exist yet.
func imports(t *testing.T, dir string) map[string]bool {
	t.Helper()
	root := filepath.Join("..", "..", dir)
	entries, err := os.ReadDir(root)
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	out := map[string]bool{}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(root, e.Name()), nil, parser.ImportsOnly)
		require.NoError(t, err)
		for _, im := range f.Imports {
			p, err := strconv.Unquote(im.Path.Value)
			require.NoError(t, err)
			out[strings.TrimPrefix(p, module)] = true
		}
	}
	return out
}

func TestImportRules(t *testing.T) {
	rules := []struct {
		pkg       string
		forbidden []string
		why       string
	}{
		{"internal/api", []string{"gen/db"}, "handlers convert types and map errors; queries belong to the domain packages"},
		{"internal/server", []string{"gen/db"}, "the server wires; queries belong to the domain packages"},
		{"internal/alerting", []string{"internal/monitor"}, "alerting evaluates stored samples and never reaches into the collector"},
		{"internal/leader", []string{"internal/schedule", "internal/monitor", "internal/alerting"}, "leader is a layer-1 package"},
		{"internal/pgstat", []string{"internal/wal", "internal/monitor", "internal/backup", "internal/vault", "gen/db"},
			"pgstat reads the managed cluster and knows no domain package"},
	}
	for _, r := range rules {
		got := imports(t, r.pkg)
		for _, f := range r.forbidden {
			require.False(t, got[f], "%s imports %s: %s", r.pkg, f, r.why)
		}
	}
}
