package storage

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// testManifest stands for the backup package's manifest.
type testManifest struct {
	BackupID  string       `json:"backupId"`
	Parent    string       `json:"parent,omitempty"`
	StartLSN  string       `json:"startLsn"`
	PGVersion int          `json:"pgVersion"`
	Objects   []ObjectInfo `json:"objects"`
}

func TestBackupRoundTrip(t *testing.T) {
	repo, _ := newTestRepository(t)

	cases := []struct {
		name     string
		compress bool
		data     []byte
	}{
		{"base/16384/2619", true, halfRandom(1, 5<<20+123)},
		{"base/16384/2619_fsm", false, halfRandom(2, 3<<20+1)},
		{"wal/000000010000000000000003", true, halfRandom(3, 64<<10)},
		{"global/pg_control", false, halfRandom(4, 64<<10)},
		{"empty-compressed", true, nil},
		{"empty-plain", false, []byte{}},
		{"tables/public.hub_patient.copy", true, []byte("1\tacme\n2\tacme\n")},
	}

	w, err := repo.NewBackup("site-a/nightly", "b-0001")
	require.NoError(t, err)

	// Objects are written from several goroutines at once, as a backup with
	// process-max > 1 does.
	var wg sync.WaitGroup
	for _, c := range cases {
		wg.Go(func() { writeObject(t, w, c.name, c.compress, c.data) })
	}
	wg.Wait()

	t.Run("Objects lists every object with its size and hash", func(t *testing.T) {
		objects := w.Objects()
		require.Len(t, objects, len(cases))
		byName := map[string]ObjectInfo{}
		var stored int64
		for _, o := range objects {
			byName[o.Name] = o
			stored += o.StoredSize
		}
		for _, c := range cases {
			o, ok := byName[c.name]
			require.True(t, ok, c.name)
			require.Equal(t, int64(len(c.data)), o.Size, c.name)
			require.Equal(t, sha256Hex(c.data), o.SHA256, c.name)
			require.Equal(t, c.compress, o.Compressed, c.name)
			if c.compress {
				require.Equal(t, c.name+".zst.age", o.File)
			} else {
				require.Equal(t, c.name+".age", o.File)
			}
			fi, err := os.Stat(filepath.Join(repo.Root(), "site-a/nightly/b-0001.partial", o.File))
			require.NoError(t, err)
			require.Equal(t, fi.Size(), o.StoredSize, c.name)
			require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), c.name)
		}
		require.Equal(t, stored, w.StoredBytes())
		// Half-random data compresses, but not to nothing.
		big := byName["base/16384/2619"]
		require.Less(t, big.StoredSize, big.Size*3/4)
		require.Greater(t, big.StoredSize, big.Size/3)
	})

	t.Run("The backup is not visible before Commit", func(t *testing.T) {
		_, err := repo.OpenBackup("site-a/nightly", "b-0001")
		require.ErrorIs(t, err, ErrNotFound)
	})

	want := testManifest{BackupID: "b-0001", StartLSN: "0/3000028", PGVersion: 150010, Objects: w.Objects()}
	require.NoError(t, w.Commit(want))
	require.NoError(t, w.Abort(), "Abort after Commit does nothing")

	rd, err := repo.OpenBackup("site-a/nightly", "b-0001")
	require.NoError(t, err)

	t.Run("The committed directory replaced the partial one, with private permissions", func(t *testing.T) {
		require.Equal(t, filepath.Join(repo.Root(), "site-a/nightly/b-0001"), repo.Path("site-a/nightly", "b-0001"))
		require.NoDirExists(t, filepath.Join(repo.Root(), "site-a/nightly/b-0001.partial"))
		for _, dir := range []string{"", "site-a", "site-a/nightly", "site-a/nightly/b-0001", "site-a/nightly/b-0001/base/16384"} {
			fi, err := os.Stat(filepath.Join(repo.Root(), dir))
			require.NoError(t, err)
			require.Equal(t, os.FileMode(0o700), fi.Mode().Perm(), dir)
		}
		fi, err := os.Stat(filepath.Join(repo.Path("site-a/nightly", "b-0001"), "manifest.json"))
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	})

	t.Run("The manifest round-trips", func(t *testing.T) {
		var got testManifest
		require.NoError(t, rd.Manifest(&got))
		require.Equal(t, want, got)
	})

	t.Run("Every object reads back byte for byte and verifies", func(t *testing.T) {
		var got testManifest
		require.NoError(t, rd.Manifest(&got))
		byName := map[string][]byte{}
		for _, c := range cases {
			byName[c.name] = c.data
		}
		for _, o := range got.Objects {
			require.Equal(t, len(byName[o.Name]), len(readObject(t, rd, o)), o.Name)
			require.Equal(t, sha256Hex(byName[o.Name]), sha256Hex(readObject(t, rd, o)), o.Name)
			require.NoError(t, rd.Verify(o), o.Name)
		}
	})

	t.Run("Open hashes what it reads", func(t *testing.T) {
		o := want.Objects[0]
		rc, err := rd.Open(o.File)
		require.NoError(t, err)
		defer rc.Close()
		n, err := io.Copy(io.Discard, rc)
		require.NoError(t, err)
		or := rc.(*ObjectReader)
		require.Equal(t, o.Size, n)
		require.Equal(t, o.Size, or.Size())
		require.Equal(t, o.SHA256, or.SHA256())
	})

	t.Run("A missing object is ErrNotFound to Open and ErrIntegrity to Verify", func(t *testing.T) {
		_, err := rd.Open("nope.zst.age")
		require.ErrorIs(t, err, ErrNotFound)
		err = rd.Verify(ObjectInfo{Name: "nope", File: "nope.age"})
		require.ErrorIs(t, err, ErrIntegrity)
		require.ErrorContains(t, err, `"nope"`)
	})

	t.Run("Object files outside the backup cannot be opened", func(t *testing.T) {
		for _, file := range []string{"../b-0002/x.age", "/etc/passwd.age", "manifest.json", "base/../../x.age"} {
			_, err := rd.Open(file)
			require.Error(t, err, file)
			require.False(t, errors.Is(err, ErrNotFound), file)
		}
	})

	t.Run("A committed id cannot be written again", func(t *testing.T) {
		_, err := repo.NewBackup("site-a/nightly", "b-0001")
		require.ErrorIs(t, err, ErrExists)
	})

	t.Run("Delete removes the backup, and a second Delete is ErrNotFound", func(t *testing.T) {
		require.NoError(t, repo.Delete("site-a/nightly", "b-0001"))
		require.NoDirExists(t, repo.Path("site-a/nightly", "b-0001"))
		_, err := repo.OpenBackup("site-a/nightly", "b-0001")
		require.ErrorIs(t, err, ErrNotFound)
		require.ErrorIs(t, repo.Delete("site-a/nightly", "b-0001"), ErrNotFound)
	})
}

func TestWriter(t *testing.T) {
	repo, _ := newTestRepository(t)

	t.Run("An object name is refused when it is empty, absolute, escaping or duplicated", func(t *testing.T) {
		w, err := repo.NewBackup("", "names")
		require.NoError(t, err)
		defer w.Abort()
		for _, name := range []string{"", "/etc/passwd", "../x", "a/../../x", "a//b", "a/./b", "a/", "bad\x00name", "\xff", "x.zst"} {
			_, err := w.Create(name, false)
			require.ErrorIs(t, err, ErrInvalidName, "%q", name)
		}
		_, err = w.Create("manifest.json", false)
		require.NoError(t, err, "an object called manifest.json is stored as manifest.json.age")
		writeObject(t, w, "dup", true, []byte("x"))
		_, err = w.Create("dup", true)
		require.ErrorIs(t, err, ErrExists)
		_, err = w.Create("x.zst", true)
		require.NoError(t, err, "a compressed object may end in .zst: its file is x.zst.zst.age")
	})

	t.Run("Commit refuses while an object is still open", func(t *testing.T) {
		w, err := repo.NewBackup("", "open-object")
		require.NoError(t, err)
		defer w.Abort()
		ow, err := w.Create("a", true)
		require.NoError(t, err)
		require.ErrorContains(t, w.Commit(struct{}{}), "still open")
		require.NoError(t, ow.Close())
		require.NoError(t, w.Commit(struct{}{}))
		_, err = w.Create("b", true)
		require.Error(t, err)
	})

	t.Run("Abort removes the partial directory", func(t *testing.T) {
		w, err := repo.NewBackup("aborted", "x")
		require.NoError(t, err)
		writeObject(t, w, "a/b/c", true, halfRandom(5, 100_000))
		require.DirExists(t, filepath.Join(repo.Root(), "aborted/x.partial"))
		require.NoError(t, w.Abort())
		require.NoDirExists(t, filepath.Join(repo.Root(), "aborted/x.partial"))
		_, err = repo.OpenBackup("aborted", "x")
		require.ErrorIs(t, err, ErrNotFound)
	})

	t.Run("A second live writer of the same id is refused with ErrBusy", func(t *testing.T) {
		w, err := repo.NewBackup("", "busy")
		require.NoError(t, err)
		_, err = repo.NewBackup("", "busy")
		require.ErrorIs(t, err, ErrBusy)
		require.DirExists(t, filepath.Join(repo.Root(), "busy.partial"), "the live writer's directory is left alone")
		require.NoError(t, w.Abort())
		w, err = repo.NewBackup("", "busy")
		require.NoError(t, err)
		require.NoError(t, w.Abort())
	})

	t.Run("An invalid backup id is refused", func(t *testing.T) {
		for _, id := range []string{"", ".", "..", ".hidden", "a/b", "x.partial", "x.deleting", "a b"} {
			_, err := repo.NewBackup("", id)
			require.ErrorIs(t, err, ErrInvalidName, "%q", id)
			_, err = repo.OpenBackup("", id)
			require.ErrorIs(t, err, ErrInvalidName, "%q", id)
			require.Empty(t, repo.Path("", id))
		}
	})

	t.Run("RemoveLeftovers removes dead writers' directories and keeps live ones", func(t *testing.T) {
		live, err := repo.NewBackup("leftovers", "live")
		require.NoError(t, err)
		defer live.Abort()
		for _, dir := range []string{"dead.partial/base", "gone.deleting/x"} {
			require.NoError(t, os.MkdirAll(filepath.Join(repo.Root(), "leftovers", dir), 0o700))
		}
		committed, err := repo.NewBackup("leftovers", "kept")
		require.NoError(t, err)
		require.NoError(t, committed.Commit(struct{}{}))

		removed, err := repo.RemoveLeftovers("leftovers")
		require.NoError(t, err)
		require.ElementsMatch(t, []string{"dead.partial", "gone.deleting"}, removed)
		entries, err := os.ReadDir(filepath.Join(repo.Root(), "leftovers"))
		require.NoError(t, err)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		require.ElementsMatch(t, []string{"live.partial", "kept"}, names)
	})

	t.Run("A manifest damaged on disk is an integrity failure", func(t *testing.T) {
		w, err := repo.NewBackup("", "bad-manifest")
		require.NoError(t, err)
		require.NoError(t, w.Commit(testManifest{BackupID: "bad-manifest"}))
		path := filepath.Join(repo.Path("", "bad-manifest"), "manifest.json")
		raw, err := os.ReadFile(path)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(path, raw[:len(raw)/2], 0o600))
		rd, err := repo.OpenBackup("", "bad-manifest")
		require.NoError(t, err)
		var m testManifest
		require.ErrorIs(t, rd.Manifest(&m), ErrIntegrity)
	})

	t.Run("An interrupted Delete is finished by the next Delete", func(t *testing.T) {
		w, err := repo.NewBackup("", "half-deleted")
		require.NoError(t, err)
		writeObject(t, w, "a", true, []byte("payload"))
		require.NoError(t, w.Commit(struct{}{}))
		// A crash after the rename and before the removal leaves this.
		require.NoError(t, os.Rename(repo.Path("", "half-deleted"), filepath.Join(repo.Root(), "half-deleted.deleting")))
		_, err = repo.OpenBackup("", "half-deleted")
		require.ErrorIs(t, err, ErrNotFound)
		require.NoError(t, repo.Delete("", "half-deleted"))
		require.NoDirExists(t, filepath.Join(repo.Root(), "half-deleted.deleting"))
	})
}

func TestIntegrity(t *testing.T) {
	repo, _ := newTestRepository(t)
	w, err := repo.NewBackup("", "flips")
	require.NoError(t, err)
	objects := []ObjectInfo{
		writeObject(t, w, "base/1/compressed", true, halfRandom(7, 3<<20)),
		writeObject(t, w, "base/1/plain", false, halfRandom(8, 3<<20)),
		writeObject(t, w, "base/1/small", true, []byte("a small file")),
		writeObject(t, w, "base/1/empty", false, nil),
	}
	require.NoError(t, w.Commit(objects))
	rd, err := repo.OpenBackup("", "flips")
	require.NoError(t, err)

	for _, o := range objects {
		path := filepath.Join(repo.Path("", "flips"), o.File)
		positions := map[string]int64{
			"in the first byte of the age header": 0,
			"in the middle of the payload":        o.StoredSize / 2,
			"in the last byte":                    o.StoredSize - 1,
		}
		for where, off := range positions {
			t.Run(fmt.Sprintf("A flipped byte %s of %s is detected", where, o.Name), func(t *testing.T) {
				flipByte(t, path, off)
				err := rd.Verify(o)
				require.ErrorIs(t, err, ErrIntegrity)
				require.ErrorContains(t, err, fmt.Sprintf("%q", o.Name))

				flipByte(t, path, off)
				require.NoError(t, rd.Verify(o), "the same object verifies once the byte is restored")
			})
		}
	}

	t.Run("Every single flipped byte of a small object is detected", func(t *testing.T) {
		o := objects[2]
		path := filepath.Join(repo.Path("", "flips"), o.File)
		for off := range o.StoredSize {
			flipByte(t, path, off)
			require.ErrorIs(t, rd.Verify(o), ErrIntegrity, "offset %d", off)
			flipByte(t, path, off)
		}
		require.NoError(t, rd.Verify(o))
	})

	t.Run("A truncated object is detected", func(t *testing.T) {
		o := objects[0]
		path := filepath.Join(repo.Path("", "flips"), o.File)
		orig, err := os.ReadFile(path)
		require.NoError(t, err)
		for _, cut := range []int64{o.StoredSize - 1, 64<<10 + 16, o.StoredSize / 2} {
			require.NoError(t, os.Truncate(path, cut))
			err := rd.Verify(o)
			require.ErrorIs(t, err, ErrIntegrity, "cut at %d", cut)
			require.ErrorContains(t, err, o.Name)
		}
		require.NoError(t, os.WriteFile(path, orig, 0o600))
		require.NoError(t, rd.Verify(o))
	})

	t.Run("An object replaced by another valid one is a SHA-256 mismatch", func(t *testing.T) {
		// Anyone with the public recipient can encrypt a well-formed object;
		// the manifest's hash is what catches the substitution.
		a, b := objects[0], objects[2]
		pa := filepath.Join(repo.Path("", "flips"), a.File)
		orig, err := os.ReadFile(pa)
		require.NoError(t, err)
		other, err := os.ReadFile(filepath.Join(repo.Path("", "flips"), b.File))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(pa, other, 0o600))
		err = rd.Verify(a)
		require.ErrorIs(t, err, ErrIntegrity)
		require.ErrorContains(t, err, "sha256")
		require.ErrorContains(t, err, a.Name)
		require.NoError(t, os.WriteFile(pa, orig, 0o600))
	})

	t.Run("An object encrypted to another key is reported as an integrity failure", func(t *testing.T) {
		other, err := ParseKey("another repository's passphrase, long and random enough")
		require.NoError(t, err)
		repo2, err := Open(repo.Root(), other)
		require.NoError(t, err)
		defer repo2.Close()
		rd2, err := repo2.OpenBackup("", "flips")
		require.NoError(t, err)
		err = rd2.Verify(objects[0])
		require.ErrorIs(t, err, ErrIntegrity)
		require.ErrorContains(t, err, "ENCRYPTION_KEY")
	})
}

func TestLocation(t *testing.T) {
	repo, _ := newTestRepository(t)

	t.Run("The root and relative folders are accepted", func(t *testing.T) {
		for in, want := range map[string]string{"": "", "nightly": "nightly", "site-a/nightly": "site-a/nightly", "a.b_c-1/2026": "a.b_c-1/2026"} {
			got, err := repo.Location(in)
			require.NoError(t, err, in)
			require.Equal(t, want, got)
		}
	})

	t.Run("Paths that leave the repository or are not clean are refused", func(t *testing.T) {
		for _, in := range []string{"../x", "/etc", "a/../../b", "a//b", "a/./b", ".", "..", "a/", "/", "a\\b", "a b", "nightly/..", "~root"} {
			_, err := repo.Location(in)
			require.ErrorIs(t, err, ErrOutsideRepository, "%q", in)
			_, err = repo.NewBackup(in, "x")
			require.ErrorIs(t, err, ErrOutsideRepository, "%q", in)
		}
	})

	t.Run("A symlink inside the repository that points outside is refused", func(t *testing.T) {
		outside := t.TempDir()
		require.NoError(t, os.Symlink(outside, filepath.Join(repo.Root(), "escape")))
		for _, in := range []string{"escape", "escape/sub", "escape/sub/deeper"} {
			_, err := repo.Location(in)
			require.ErrorIs(t, err, ErrOutsideRepository, in)
			_, err = repo.NewBackup(in, "x")
			require.ErrorIs(t, err, ErrOutsideRepository, in)
		}
		entries, err := os.ReadDir(outside)
		require.NoError(t, err)
		require.Empty(t, entries, "nothing was written outside the repository")
	})

	t.Run("A symlink that stays inside the repository is accepted", func(t *testing.T) {
		require.NoError(t, os.MkdirAll(filepath.Join(repo.Root(), "real"), 0o700))
		require.NoError(t, os.Symlink("real", filepath.Join(repo.Root(), "alias")))
		got, err := repo.Location("alias")
		require.NoError(t, err)
		require.Equal(t, "alias", got)
	})

	t.Run("A dangling symlink is refused", func(t *testing.T) {
		require.NoError(t, os.Symlink("/nonexistent/target", filepath.Join(repo.Root(), "dangling")))
		_, err := repo.Location("dangling/x")
		require.ErrorIs(t, err, ErrOutsideRepository)
	})

	t.Run("A location inside a backup is refused", func(t *testing.T) {
		w, err := repo.NewBackup("nightly", "b1")
		require.NoError(t, err)
		require.NoError(t, w.Commit(struct{}{}))
		_, err = repo.Location("nightly/b1/inner")
		require.ErrorIs(t, err, ErrOutsideRepository)
	})
}

// TestKilledWriter runs a writer in a child process, kills it with SIGKILL
// while it streams an object, and checks what is left.
func TestKilledWriter(t *testing.T) {
	if os.Getenv("STORAGE_KILLED_WRITER_ROOT") != "" {
		killedWriterChild()
		return
	}
	repo, key := newTestRepository(t)

	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledWriter$")
	cmd.Env = append(os.Environ(), "STORAGE_KILLED_WRITER_ROOT="+repo.Root(), "STORAGE_KILLED_WRITER_KEY="+key.Identity())
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "writing\n", line)
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	require.Error(t, cmd.Wait())

	t.Run("Only the partial directory is left", func(t *testing.T) {
		entries, err := os.ReadDir(filepath.Join(repo.Root(), "nightly"))
		require.NoError(t, err)
		require.Len(t, entries, 1)
		require.Equal(t, "killed.partial", entries[0].Name())
		require.FileExists(t, filepath.Join(repo.Root(), "nightly/killed.partial/done.zst.age"))
		require.NoFileExists(t, filepath.Join(repo.Root(), "nightly/killed.partial/manifest.json"))
	})

	t.Run("The killed backup is not found", func(t *testing.T) {
		_, err := repo.OpenBackup("nightly", "killed")
		require.ErrorIs(t, err, ErrNotFound)
		require.ErrorIs(t, repo.Delete("nightly", "killed"), ErrNotFound)
	})

	t.Run("A new writer of the same id cleans the leftover and commits", func(t *testing.T) {
		w, err := repo.NewBackup("nightly", "killed")
		require.NoError(t, err)
		entries, err := os.ReadDir(filepath.Join(repo.Root(), "nightly/killed.partial"))
		require.NoError(t, err)
		require.Empty(t, entries, "the leftover objects were removed")
		info := writeObject(t, w, "done", true, []byte("retry"))
		require.NoError(t, w.Commit([]ObjectInfo{info}))
		rd, err := repo.OpenBackup("nightly", "killed")
		require.NoError(t, err)
		require.Equal(t, []byte("retry"), readObject(t, rd, info))
	})
}

// killedWriterChild writes one complete object and then streams a second one
// until it is killed.
func killedWriterChild() {
	key, err := ParseKey(os.Getenv("STORAGE_KILLED_WRITER_KEY"))
	if err != nil {
		panic(err)
	}
	repo, err := Open(os.Getenv("STORAGE_KILLED_WRITER_ROOT"), key)
	if err != nil {
		panic(err)
	}
	w, err := repo.NewBackup("nightly", "killed")
	if err != nil {
		panic(err)
	}
	ow, err := w.Create("done", true)
	if err != nil {
		panic(err)
	}
	ow.Write([]byte("complete object"))
	if err := ow.Close(); err != nil {
		panic(err)
	}
	ow, err = w.Create("base/1/streaming", true)
	if err != nil {
		panic(err)
	}
	chunk := halfRandom(9, 1<<20)
	ow.Write(chunk)
	fmt.Println("writing")
	// The parent kills this process at once; the deadline only keeps an
	// orphan from filling the disk if the parent died first.
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
		if _, err := ow.Write(chunk); err != nil {
			panic(err)
		}
	}
	os.Exit(3)
}
