package storage

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onevault/readiness/internal/stdtools"
)

// TestStandardTools checks the promise of the README: an operator with the
// identity can read every object with the standard age and zstd commands,
// without the service.
func TestStandardTools(t *testing.T) {
	agePath, zstdPath := stdtools.Age(t), stdtools.Zstd(t)

	for _, keyKind := range []string{"a generated identity", "a passphrase"} {
		t.Run("Objects under "+keyKind+" decrypt with age -d and decompress with zstd -d", func(t *testing.T) {
			secret, err := GenerateKey()
			require.NoError(t, err)
			if keyKind == "a passphrase" {
				secret = "a long random ENCRYPTION_KEY that is not an age identity 5f0c9e"
			}
			key, err := ParseKey(secret)
			require.NoError(t, err)
			repo, err := Open(filepath.Join(t.TempDir(), "repo"), key)
			require.NoError(t, err)
			defer repo.Close()

			data := map[string][]byte{
				"base/16384/2619":              halfRandom(11, 4<<20+7),
				"wal/000000010000000000000003": halfRandom(12, 1<<20),
				"empty":                        nil,
			}
			w, err := repo.NewBackup("nightly", "manual")
			require.NoError(t, err)
			var objects []ObjectInfo
			for name, b := range data {
				objects = append(objects, writeObject(t, w, name, true, b))
				objects = append(objects, writeObject(t, w, name+".plain", false, b))
			}
			require.NoError(t, w.Commit(map[string]any{"objects": objects}))

			// The identity file is what `readiness key export > key.txt` writes.
			keyFile := filepath.Join(t.TempDir(), "key.txt")
			require.NoError(t, os.WriteFile(keyFile, []byte(key.Identity()+"\n"), 0o600))
			dir := repo.Path("nightly", "manual")

			// The manifest is plain JSON that names every object's file.
			raw, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
			require.NoError(t, err)
			var manifest struct{ Objects []ObjectInfo }
			require.NoError(t, json.Unmarshal(raw, &manifest))
			require.Len(t, manifest.Objects, len(objects))

			for _, o := range manifest.Objects {
				want := data[o.Name]
				if !o.Compressed {
					want = data[o.Name[:len(o.Name)-len(".plain")]]
				}
				var got []byte
				if o.Compressed {
					// age -d -i key.txt FILE.zst.age | zstd -d > FILE
					got = pipe(t, exec.Command(agePath, "-d", "-i", keyFile, filepath.Join(dir, o.File)), exec.Command(zstdPath, "-d", "-q"))
				} else {
					// age -d -i key.txt FILE.age > FILE
					got = pipe(t, exec.Command(agePath, "-d", "-i", keyFile, filepath.Join(dir, o.File)))
				}
				require.True(t, bytes.Equal(want, got), o.Name)
				require.Equal(t, o.SHA256, sha256Hex(got), o.Name)
			}
		})
	}
}

// pipe runs cmds as a shell pipeline and returns the last one's output.
func pipe(t *testing.T, cmds ...*exec.Cmd) []byte {
	t.Helper()
	var out bytes.Buffer
	stderr := make([]bytes.Buffer, len(cmds))
	for i, c := range cmds {
		c.Stderr = &stderr[i]
		if i+1 < len(cmds) {
			r, err := c.StdoutPipe()
			require.NoError(t, err)
			cmds[i+1].Stdin = r
		} else {
			c.Stdout = &out
		}
	}
	for _, c := range cmds {
		require.NoError(t, c.Start())
	}
	for i, c := range cmds {
		require.NoError(t, c.Wait(), "%v: %s", c.Args, stderr[i].String())
	}
	return out.Bytes()
}
