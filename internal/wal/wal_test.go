package wal_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onevault/readiness/internal/stdtools"
	"github.com/onevault/readiness/internal/storage"
	"github.com/onevault/readiness/internal/wal"
)

const (
	seg1 = "000000010000000000000001"
	seg2 = "000000010000000000000002"
	mib  = 1 << 20
)

func TestPushAndFetch(t *testing.T) {
	ctx := t.Context()
	cfg := newConfig(t)
	src := fakeSegment(t, seg1, 16*mib, 1)
	require.NoError(t, wal.Push(ctx, cfg, src))

	t.Run("a pushed segment fetches back byte for byte", func(t *testing.T) {
		dst := filepath.Join(t.TempDir(), "RECOVERYXLOG")
		require.NoError(t, wal.Fetch(ctx, cfg, seg1, dst))
		require.True(t, bytes.Equal(readFile(t, src), readFile(t, dst)))
		fi, err := os.Stat(dst)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	})

	t.Run("the archive holds a compressed object and a record of the plaintext", func(t *testing.T) {
		fi, err := os.Stat(objectPath(cfg, seg1))
		require.NoError(t, err)
		require.Less(t, fi.Size(), int64(9*mib), "half of the segment is zeros, which compress away")
		require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
		var rec wal.Record
		require.NoError(t, json.Unmarshal(readFile(t, recordPath(cfg, seg1)), &rec))
		require.Equal(t, seg1, rec.Name)
		require.Equal(t, int64(16*mib), rec.Size)
		require.Equal(t, fi.Size(), rec.StoredSize)
		require.Len(t, rec.SHA256, 64)
		require.Equal(t, cfg.Key.Recipient(), rec.Recipient)
		require.False(t, rec.ArchivedAt.IsZero())
		dir, err := os.Stat(filepath.Dir(objectPath(cfg, seg1)))
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o700), dir.Mode().Perm())
	})

	t.Run("the object reads with the standard age and zstd commands", func(t *testing.T) {
		age, zstd := stdtools.Age(t), stdtools.Zstd(t)
		out, err := exec.Command("sh", "-c", `"$1" -d -i "$3" "$4" | "$2" -d -c`, "sh", age, zstd, cfg.KeyFile, objectPath(cfg, seg1)).Output()
		require.NoError(t, err)
		require.True(t, bytes.Equal(readFile(t, src), out))
	})

	t.Run("pushing the same content again succeeds and leaves the archive as it was", func(t *testing.T) {
		before, err := os.Stat(objectPath(cfg, seg1))
		require.NoError(t, err)
		copied := filepath.Join(t.TempDir(), seg1)
		require.NoError(t, os.WriteFile(copied, readFile(t, src), 0o600))
		require.NoError(t, wal.Push(ctx, cfg, copied))
		after, err := os.Stat(objectPath(cfg, seg1))
		require.NoError(t, err)
		require.True(t, os.SameFile(before, after))
		require.Equal(t, before.ModTime(), after.ModTime())
	})

	t.Run("pushing other content under an archived name fails with ErrConflict and keeps the original", func(t *testing.T) {
		data := readFile(t, src)
		data[12345] ^= 0xFF
		other := filepath.Join(t.TempDir(), seg1)
		require.NoError(t, os.WriteFile(other, data, 0o600))
		err := wal.Push(ctx, cfg, other)
		require.ErrorIs(t, err, wal.ErrConflict)
		require.Contains(t, err.Error(), seg1)

		dst := filepath.Join(t.TempDir(), seg1)
		require.NoError(t, wal.Fetch(ctx, cfg, seg1, dst))
		require.True(t, bytes.Equal(readFile(t, src), readFile(t, dst)))
	})

	t.Run("a name that is not archived gives ErrNotArchived", func(t *testing.T) {
		dst := filepath.Join(t.TempDir(), "RECOVERYXLOG")
		require.ErrorIs(t, wal.Fetch(ctx, cfg, seg2, dst), wal.ErrNotArchived)
		require.ErrorIs(t, wal.Fetch(ctx, cfg, "00000002.history", dst), wal.ErrNotArchived)
		require.NoFileExists(t, dst)
		empty := newConfig(t)
		require.ErrorIs(t, wal.Fetch(ctx, empty, seg1, dst), wal.ErrNotArchived, "a repository without wal/ holds nothing")
	})

	t.Run("names that are not WAL files are refused", func(t *testing.T) {
		for _, name := range []string{"../" + seg1, "pg_control", "RECOVERYXLOG", "000000000000000000000001", "00000001000000000000000g", seg1 + ".zst.age"} {
			require.ErrorIs(t, wal.Fetch(ctx, cfg, name, filepath.Join(t.TempDir(), "x")), wal.ErrInvalidName, name)
		}
		bad := filepath.Join(t.TempDir(), "pg_control")
		require.NoError(t, os.WriteFile(bad, []byte("x"), 0o600))
		require.ErrorIs(t, wal.Push(ctx, cfg, bad), wal.ErrInvalidName)
	})

	t.Run("a segment of a size PostgreSQL never writes is refused", func(t *testing.T) {
		short := filepath.Join(t.TempDir(), seg2)
		require.NoError(t, os.WriteFile(short, readFile(t, src)[:16*mib-8192], 0o600))
		require.ErrorContains(t, wal.Push(ctx, cfg, short), "not a WAL segment size")
		require.NoFileExists(t, recordPath(cfg, seg2))
	})

	t.Run("history, backup label and partial files are archived under their timeline", func(t *testing.T) {
		files := map[string][]byte{
			"00000002.history":                         []byte("1\t0/3000000\tno recovery target specified\n"),
			"000000010000000000000001.00000028.backup": []byte("START WAL LOCATION: 0/1000028 (file 000000010000000000000001)\n"),
		}
		for name, data := range files {
			p := filepath.Join(t.TempDir(), name)
			require.NoError(t, os.WriteFile(p, data, 0o600))
			require.NoError(t, wal.Push(ctx, cfg, p))
			dst := filepath.Join(t.TempDir(), "out")
			require.NoError(t, wal.Fetch(ctx, cfg, name, dst))
			require.Equal(t, data, readFile(t, dst))
		}
		require.FileExists(t, objectPath(cfg, "00000002.history"))
		partial := fakeSegment(t, "000000020000000000000004.partial", 16*mib, 4)
		require.NoError(t, wal.Push(ctx, cfg, partial))

		st, err := wal.Check(ctx, cfg, "")
		require.NoError(t, err)
		require.Len(t, st.Timelines, 2)
		require.Equal(t, []string{"000000010000000000000001.00000028.backup"}, st.Timelines[0].BackupLabels)
		require.Equal(t, "00000002.history", st.Timelines[1].History)
		require.Equal(t, []string{"000000020000000000000004.partial"}, st.Timelines[1].Partial)
		require.Zero(t, st.Timelines[1].Segments, "a partial segment is not a segment of the timeline")
	})
}

func TestDamagedArchive(t *testing.T) {
	ctx := t.Context()
	cfg := newConfig(t)
	src := fakeSegment(t, seg1, 16*mib, 2)
	require.NoError(t, wal.Push(ctx, cfg, src))

	t.Run("a flipped byte in an object makes Fetch fail and leaves nothing at the target", func(t *testing.T) {
		obj := objectPath(cfg, seg1)
		good := readFile(t, obj)
		for _, at := range []int{40, len(good) / 2, len(good) - 3} { // age header, body, last chunk
			bad := bytes.Clone(good)
			bad[at] ^= 0x01
			require.NoError(t, os.WriteFile(obj, bad, 0o600))
			dir := t.TempDir()
			err := wal.Fetch(ctx, cfg, seg1, filepath.Join(dir, "RECOVERYXLOG"))
			require.ErrorIs(t, err, wal.ErrCorrupt, "byte %d", at)
			require.ErrorIs(t, err, storage.ErrIntegrity)
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			require.Empty(t, entries, "neither the target nor a temporary file is left")

			res, err := wal.Verify(ctx, cfg)
			require.NoError(t, err)
			require.Contains(t, res.Failures, seg1)
		}
		require.NoError(t, os.WriteFile(obj, good, 0o600))
		res, err := wal.Verify(ctx, cfg)
		require.NoError(t, err)
		require.Empty(t, res.Failures)
		require.Equal(t, 1, res.Checked)
	})

	t.Run("pushing the same file again over a damaged object writes it again", func(t *testing.T) {
		obj := objectPath(cfg, seg1)
		b := readFile(t, obj)
		b[len(b)/2] ^= 0x10
		require.NoError(t, os.WriteFile(obj, b, 0o600))
		require.ErrorIs(t, wal.Fetch(ctx, cfg, seg1, filepath.Join(t.TempDir(), "x")), wal.ErrCorrupt)

		require.NoError(t, wal.Push(ctx, cfg, src))
		dst := filepath.Join(t.TempDir(), seg1)
		require.NoError(t, wal.Fetch(ctx, cfg, seg1, dst))
		require.True(t, bytes.Equal(readFile(t, src), readFile(t, dst)))
	})

	t.Run("a record that does not match its object makes Fetch fail", func(t *testing.T) {
		orig := readFile(t, recordPath(cfg, seg1))
		var rec wal.Record
		require.NoError(t, json.Unmarshal(orig, &rec))
		rec.SHA256 = strings.Repeat("0", 64)
		b, err := json.Marshal(rec)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(recordPath(cfg, seg1), b, 0o600))
		require.ErrorIs(t, wal.Fetch(ctx, cfg, seg1, filepath.Join(t.TempDir(), "x")), wal.ErrCorrupt)
		require.NoError(t, os.WriteFile(recordPath(cfg, seg1), orig, 0o600))
	})

	t.Run("a repository read with another key says which key the file was encrypted to", func(t *testing.T) {
		other, _ := newKey(t)
		wrong := cfg
		wrong.Key = other
		err := wal.Fetch(ctx, wrong, seg1, filepath.Join(t.TempDir(), "x"))
		require.ErrorIs(t, err, wal.ErrCorrupt)
		require.Contains(t, err.Error(), cfg.Key.Recipient())
	})

	t.Run("a record whose object is gone is reported damaged, and pushing the file again repairs it", func(t *testing.T) {
		require.NoError(t, os.Remove(objectPath(cfg, seg1)))
		require.ErrorIs(t, wal.Fetch(ctx, cfg, seg1, filepath.Join(t.TempDir(), "x")), wal.ErrCorrupt)
		st, err := wal.Check(ctx, cfg, "")
		require.NoError(t, err)
		require.Equal(t, []string{seg1}, st.Damaged)
		require.NotEmpty(t, st.Problems())

		require.NoError(t, wal.Push(ctx, cfg, src))
		dst := filepath.Join(t.TempDir(), seg1)
		require.NoError(t, wal.Fetch(ctx, cfg, seg1, dst))
		require.True(t, bytes.Equal(readFile(t, src), readFile(t, dst)))
		st, err = wal.Check(ctx, cfg, "")
		require.NoError(t, err)
		require.Empty(t, st.Damaged)
	})

	t.Run("an interrupted push is reported incomplete, is not archived, and the next push completes it", func(t *testing.T) {
		src2 := fakeSegment(t, seg2, 16*mib, 3)
		require.NoError(t, wal.Push(ctx, cfg, src2))
		require.NoError(t, os.Remove(recordPath(cfg, seg2))) // killed between the object and its record

		st, err := wal.Check(ctx, cfg, "")
		require.NoError(t, err)
		require.Equal(t, []string{seg2}, st.Incomplete)
		require.Equal(t, seg1, st.Timelines[0].LastSegment)
		require.ErrorIs(t, wal.Fetch(ctx, cfg, seg2, filepath.Join(t.TempDir(), "x")), wal.ErrNotArchived)

		// The retry may even bring other content: nothing was archived yet.
		src2b := fakeSegment(t, seg2, 16*mib, 33)
		require.NoError(t, wal.Push(ctx, cfg, src2b))
		dst := filepath.Join(t.TempDir(), seg2)
		require.NoError(t, wal.Fetch(ctx, cfg, seg2, dst))
		require.True(t, bytes.Equal(readFile(t, src2b), readFile(t, dst)))
		st, err = wal.Check(ctx, cfg, "")
		require.NoError(t, err)
		require.Empty(t, st.Incomplete)
		require.Equal(t, 2, st.Timelines[0].Segments)
	})
}

func TestConcurrentPushesOfOneFileAllSucceed(t *testing.T) {
	ctx := t.Context()
	cfg := newConfig(t)
	src := fakeSegment(t, seg1, 4*mib, 5)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { errs[i] = wal.Push(ctx, cfg, src) })
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	entries, err := os.ReadDir(filepath.Dir(objectPath(cfg, seg1)))
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	require.ElementsMatch(t, []string{seg1 + ".zst.age", seg1 + ".json"}, names, "no temporary file is left")
	dst := filepath.Join(t.TempDir(), seg1)
	require.NoError(t, wal.Fetch(ctx, cfg, seg1, dst))
	require.True(t, bytes.Equal(readFile(t, src), readFile(t, dst)))
}

func TestCheckFindsGapsAcrossLogFileBoundaries(t *testing.T) {
	ctx := t.Context()
	cfg := newConfig(t)
	// With 1 MiB segments a log file holds 4096 of them: ...0FFF is followed by ...100000000.
	for i, name := range []string{
		"000000010000000000000FFE", "000000010000000000000FFF", "000000010000000100000000",
		"000000010000000100000004", "000000010000000100000005", "000000010000000100000009",
	} {
		require.NoError(t, wal.Push(ctx, cfg, fakeSegment(t, name, mib, uint64(i))))
	}
	st, err := wal.Check(ctx, cfg, "")
	require.NoError(t, err)
	require.Equal(t, int64(mib), st.SegmentSize)
	require.Len(t, st.Timelines, 1)
	tl := st.Timelines[0]
	require.Equal(t, "000000010000000000000FFE", tl.FirstSegment)
	require.Equal(t, "000000010000000100000009", tl.LastSegment)
	require.Equal(t, 6, tl.Segments)
	require.Equal(t, int64(6*mib), tl.Bytes)
	require.Equal(t, []wal.Gap{
		{First: "000000010000000100000001", Last: "000000010000000100000003", Count: 3},
		{First: "000000010000000100000006", Last: "000000010000000100000008", Count: 3},
	}, tl.Gaps)
	require.Equal(t, uint64(6), tl.MissingSegments)
	require.Len(t, st.Problems(), 2)

	segs, err := wal.Segments(ctx, cfg, 1)
	require.NoError(t, err)
	require.Equal(t, []string{"000000010000000000000FFE", "000000010000000000000FFF", "000000010000000100000000",
		"000000010000000100000004", "000000010000000100000005", "000000010000000100000009"}, segs)
}

func TestSegmentNames(t *testing.T) {
	t.Run("names and numbers convert both ways for every segment size", func(t *testing.T) {
		for _, size := range []int64{1 << 20, 16 << 20, 1 << 30} {
			for _, segno := range []uint64{0, 1, 255, 256, 4095, 4096, 1 << 20} {
				name := wal.SegmentName(7, segno, size)
				tli, got, err := wal.ParseSegmentName(name, size)
				require.NoError(t, err)
				require.Equal(t, uint32(7), tli)
				require.Equal(t, segno, got, name)
			}
		}
		require.Equal(t, "000000010000000100000000", wal.SegmentName(1, 256, 16<<20))
	})
	t.Run("an LSN names its segment", func(t *testing.T) {
		lsn, err := wal.ParseLSN("1/2A000028")
		require.NoError(t, err)
		require.Equal(t, "1/2A000028", wal.FormatLSN(lsn))
		require.Equal(t, "00000003000000010000002A", wal.SegmentName(3, wal.SegmentOf(lsn, 16<<20), 16<<20))
	})
	t.Run("every kind of archived file parses with its timeline", func(t *testing.T) {
		for name, want := range map[string]wal.Kind{
			"0000000A0000000000000001":                 wal.KindSegment,
			"0000000A0000000000000001.partial":         wal.KindPartial,
			"0000000A0000000000000001.00000028.backup": wal.KindBackupLabel,
			"0000000A.history":                         wal.KindHistory,
		} {
			kind, tli, err := wal.ParseName(name)
			require.NoError(t, err, name)
			require.Equal(t, want, kind, name)
			require.Equal(t, uint32(10), tli, name)
		}
	})
}

func TestConfigFromEnvOrFlags(t *testing.T) {
	key, keyFile := newKey(t)
	secret := key.Identity()
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

	t.Run("flags give the repository and the key file, and the rest are the arguments", func(t *testing.T) {
		cfg, rest, err := wal.ConfigFromEnvOrFlags([]string{"--repo", "/srv/backups", "--key-file", keyFile, "pg_wal/" + seg1}, env(nil))
		require.NoError(t, err)
		require.Equal(t, "/srv/backups", cfg.RepoPath)
		require.Equal(t, key.Recipient(), cfg.Key.Recipient())
		require.Equal(t, []string{"pg_wal/" + seg1}, rest)
	})
	t.Run("flags win over the environment", func(t *testing.T) {
		cfg, _, err := wal.ConfigFromEnvOrFlags([]string{"--repo=/a", "--key-file=" + keyFile},
			env(map[string]string{"BACKUP_STORAGE_PATH": "/b", "ENCRYPTION_KEY": "another long passphrase of the service"}))
		require.NoError(t, err)
		require.Equal(t, "/a", cfg.RepoPath)
		require.Equal(t, key.Recipient(), cfg.Key.Recipient())
	})
	t.Run("the environment is enough", func(t *testing.T) {
		cfg, rest, err := wal.ConfigFromEnvOrFlags([]string{seg1}, env(map[string]string{"BACKUP_STORAGE_PATH": "/b", "ENCRYPTION_KEY": secret}))
		require.NoError(t, err)
		require.Equal(t, "/b", cfg.RepoPath)
		require.Equal(t, key.Recipient(), cfg.Key.Recipient())
		require.Equal(t, []string{seg1}, rest)

		cfg, _, err = wal.ConfigFromEnvOrFlags(nil, env(map[string]string{"BACKUP_STORAGE_PATH": "/b", "ENCRYPTION_KEY_FILE": keyFile, "ENCRYPTION_KEY": "ignored"}))
		require.NoError(t, err)
		require.Equal(t, key.Recipient(), cfg.Key.Recipient(), "a key file wins over the key itself")
	})
	t.Run("a missing repository or key is an error that says what to set", func(t *testing.T) {
		_, _, err := wal.ConfigFromEnvOrFlags([]string{"--key-file", keyFile}, env(nil))
		require.ErrorContains(t, err, "BACKUP_STORAGE_PATH")
		_, _, err = wal.ConfigFromEnvOrFlags([]string{"--repo", "/a"}, env(nil))
		require.ErrorContains(t, err, "--key-file")
	})
	t.Run("the key is never taken from the command line, and no error repeats it", func(t *testing.T) {
		_, _, err := wal.ConfigFromEnvOrFlags([]string{"--repo", "/a", "--key", secret}, env(nil))
		require.ErrorContains(t, err, "--key-file")
		require.NotContains(t, err.Error(), secret)

		bad := filepath.Join(t.TempDir(), "key.txt")
		require.NoError(t, os.WriteFile(bad, []byte("AGE-SECRET-KEY-1NOTAKEY"), 0o600))
		_, _, err = wal.ConfigFromEnvOrFlags([]string{"--repo", "/a", "--key-file", bad}, env(nil))
		require.ErrorIs(t, err, storage.ErrInvalidKey)
		require.NotContains(t, err.Error(), "NOTAKEY")

		_, _, err = wal.ConfigFromEnvOrFlags([]string{"--repo", "/a", "--key-file", filepath.Join(t.TempDir(), "missing")}, env(nil))
		require.ErrorContains(t, err, "readable by the user PostgreSQL runs as")
	})
}

func TestRunExitStatus(t *testing.T) {
	ctx := t.Context()
	cfg := newConfig(t)
	src := fakeSegment(t, seg1, mib, 9)
	flags := []string{"--repo", cfg.RepoPath, "--key-file", cfg.KeyFile}
	run := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := wal.Run(ctx, args, func(string) string { return "" }, &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}

	t.Run("wal-push exits 0 when the file is archived, also the second time", func(t *testing.T) {
		for range 2 {
			code, _, stderr := run(append(append([]string{"wal-push"}, flags...), src)...)
			require.Equal(t, 0, code, stderr)
		}
	})
	t.Run("wal-push exits non-zero, with the reason on stderr, when the file conflicts", func(t *testing.T) {
		other := fakeSegment(t, seg1, mib, 10)
		code, _, stderr := run(append(append([]string{"wal-push"}, flags...), other)...)
		require.Equal(t, 1, code)
		require.Contains(t, stderr, "already archived with different content")
	})
	t.Run("wal-fetch exits 0 with the file, and 1 without a word when it is not archived", func(t *testing.T) {
		dst := filepath.Join(t.TempDir(), "RECOVERYXLOG")
		code, _, stderr := run(append(append([]string{"wal-fetch"}, flags...), seg1, dst)...)
		require.Equal(t, 0, code, stderr)
		require.FileExists(t, dst)
		code, _, stderr = run(append(append([]string{"wal-fetch"}, flags...), seg2, dst+"2")...)
		require.Equal(t, 1, code)
		require.Empty(t, stderr)
	})
	t.Run("wrong arguments exit 2 with a usage line", func(t *testing.T) {
		code, _, stderr := run(append([]string{"wal-push"}, flags...)...)
		require.Equal(t, 2, code)
		require.Contains(t, stderr, "%p")
		code, _, stderr = run("wal-push", "--repo", cfg.RepoPath, src)
		require.Equal(t, 2, code)
		require.Contains(t, stderr, "no key")
		code, _, _ = run("wal-nothing")
		require.Equal(t, 2, code)
	})
	t.Run("wal-status prints the state as JSON", func(t *testing.T) {
		code, stdout, stderr := run(append([]string{"wal-status"}, flags...)...)
		require.Equal(t, 0, code, stderr)
		var st wal.Status
		require.NoError(t, json.Unmarshal([]byte(stdout), &st))
		require.Equal(t, seg1, st.Timelines[0].LastSegment)
	})
	t.Run("wal-verify reads everything and exits 1 on damage", func(t *testing.T) {
		code, stdout, stderr := run(append([]string{"wal-verify"}, flags...)...)
		require.Equal(t, 0, code, stderr)
		require.Contains(t, stdout, `"checked": 1`)
		obj := objectPath(cfg, seg1)
		b := readFile(t, obj)
		b[len(b)/2] ^= 1
		require.NoError(t, os.WriteFile(obj, b, 0o600))
		code, stdout, stderr = run(append([]string{"wal-verify"}, flags...)...)
		require.Equal(t, 1, code)
		require.Contains(t, stdout, seg1)
		require.Contains(t, stderr, "1 archived files are damaged")
	})
}

func TestPushAsRootHandsWhatItCreatesToTheArchiveOwner(t *testing.T) {
	// Only root can hand files to another user, and Push only does so when it runs as root
	// (the behaviour under test does not exist otherwise). CI runs as root, like the
	// archive_command of a cluster that pgtest starts as the postgres user.
	if os.Geteuid() != 0 {
		t.Skip("needs root: only root hands files to another user")
	}
	// As root, pgtest runs PostgreSQL as the postgres OS user too, so its absence is a broken
	// machine, not a reason to skip.
	u, err := user.Lookup("postgres")
	require.NoError(t, err, "running as root needs the postgres OS user")
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	cfg := newConfig(t)
	walDir := filepath.Join(cfg.RepoPath, "wal")
	require.NoError(t, os.MkdirAll(walDir, 0o700))
	require.NoError(t, os.Chown(walDir, uid, gid))

	require.NoError(t, wal.Push(t.Context(), cfg, fakeSegment(t, seg1, mib, 11)))
	for _, p := range []string{filepath.Dir(objectPath(cfg, seg1)), objectPath(cfg, seg1), recordPath(cfg, seg1)} {
		gotUID, gotGID := ownerOf(t, p)
		require.Equal(t, uid, gotUID, p)
		require.Equal(t, gid, gotGID, p)
	}
}

func TestCommandsQuoteTheirPathsForTheShellAndForPostgreSQL(t *testing.T) {
	archive, restore := wal.Commands("/opt/it's/readiness", "/srv/100% backups", "/etc/readiness/key")
	require.Equal(t, `'/opt/it'"'"'s/readiness' wal-push --repo '/srv/100%% backups' --key-file '/etc/readiness/key' %p`, archive)
	require.Equal(t, `'/opt/it'"'"'s/readiness' wal-fetch --repo '/srv/100%% backups' --key-file '/etc/readiness/key' %f %p`, restore)
}
