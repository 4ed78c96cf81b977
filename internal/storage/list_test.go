package storage

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestBackupsListsCommittedBackupsOfEveryLocation(t *testing.T) {
	repo, _ := newTestRepository(t)
	commit := func(location, id string) {
		w, err := repo.NewBackup(location, id)
		require.NoError(t, err)
		writeObject(t, w, "data/one", true, []byte("rows"))
		require.NoError(t, w.Commit(map[string]string{"backupId": id}))
	}
	commit("", "a")
	commit("nightly/eu", "b")
	unfinished, err := repo.NewBackup("nightly", "c") // left as c.partial
	require.NoError(t, err)
	writeObject(t, unfinished, "data/one", false, []byte("half"))
	// The WAL archive is no backup, even with a file named like a manifest in it.
	require.NoError(t, os.MkdirAll(filepath.Join(repo.Root(), ReservedWAL, "00000001"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(repo.Root(), ReservedWAL, "00000001", manifestFile), []byte("{}"), 0o600))
	commit("", "d")
	require.NoError(t, repo.Delete("", "d"))

	got, err := repo.Backups()
	require.NoError(t, err)
	require.ElementsMatch(t, []BackupRef{{Location: "", ID: "a"}, {Location: "nightly/eu", ID: "b"}}, got,
		"only committed backups: not the unfinished one, the WAL archive or a deleted backup")
}
