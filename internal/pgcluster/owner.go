package pgcluster

import (
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"slices"
	"strconv"
	"syscall"
)

// Owner is the OS user that files for PostgreSQL are given to when this process runs as root:
// PostgreSQL refuses to run as root, so the data directories, WAL archive and restored files
// it reads must belong to its own user. A nil *Owner means "not running as root": every
// method then does nothing, and files keep the current user. One type serves the cluster, the
// physical restore and the WAL archive.
type Owner struct {
	uid, gid uint32
	groups   []uint32
}

// ServerOwner returns the postgres OS user when this process runs as root, and nil otherwise.
func ServerOwner() (*Owner, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	return lookupOwner("postgres")
}

// OwnerOf returns the owner of the existing file fi describes when this process runs as root
// and the file is not root's (the WAL archive's directory, made by PostgreSQL's user), so that
// what root writes beside it can be given to the same user; nil otherwise.
func OwnerOf(fi fs.FileInfo) *Owner {
	if os.Geteuid() != 0 {
		return nil
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Uid == 0 {
		return nil
	}
	return &Owner{uid: st.Uid, gid: st.Gid}
}

// lookupOwner returns the OS user name as an Owner, with its groups.
func lookupOwner(name string) (*Owner, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("pgcluster: running as root needs the %q OS user to run PostgreSQL: %w", name, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("pgcluster: user %s: uid %q: %w", name, u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("pgcluster: user %s: gid %q: %w", name, u.Gid, err)
	}
	o := &Owner{uid: uint32(uid), gid: uint32(gid)}
	groupIDs, err := u.GroupIds()
	if err != nil {
		return nil, fmt.Errorf("pgcluster: user %s: groups: %w", name, err)
	}
	for _, g := range groupIDs {
		if id, err := strconv.ParseUint(g, 10, 32); err == nil {
			o.groups = append(o.groups, uint32(id))
		}
	}
	return o, nil
}

// Chown gives the open file f to the owner.
func (o *Owner) Chown(f *os.File) error {
	if o == nil {
		return nil
	}
	if err := f.Chown(int(o.uid), int(o.gid)); err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	return nil
}

// Lchown gives path (a symbolic link itself, not its target) to the owner.
func (o *Owner) Lchown(path string) error {
	if o == nil {
		return nil
	}
	if err := os.Lchown(path, int(o.uid), int(o.gid)); err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	return nil
}

// LchownIn gives name, inside root, to the owner; root keeps a name from leading outside it.
func (o *Owner) LchownIn(root *os.Root, name string) error {
	if o == nil {
		return nil
	}
	return root.Lchown(name, int(o.uid), int(o.gid))
}

// CanTraverse reports whether the owner may pass through the directory fi describes, going
// by its mode bits (ACLs are not consulted). A nil owner (the current user) always may.
func (o *Owner) CanTraverse(fi fs.FileInfo) bool {
	if o == nil {
		return true
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return true
	}
	mode := fi.Mode().Perm()
	switch {
	case st.Uid == o.uid:
		return mode&0o100 != 0
	case st.Gid == o.gid || slices.Contains(o.groups, st.Gid):
		return mode&0o010 != 0
	default:
		return mode&0o001 != 0
	}
}
