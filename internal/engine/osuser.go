package engine

import (
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
)

// osUser is the unprivileged OS user PostgreSQL runs as when pglink runs as root.
type osUser struct {
	name   string
	home   string
	uid    uint32
	gid    uint32
	groups []uint32 // supplementary groups, the primary group included
}

// lookupUser returns the OS user name.
func lookupUser(name string) (*osUser, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("pglink runs as root, so PostgreSQL must run as the unprivileged OS user %q: %w; create it (e.g. install the postgresql package, or useradd --system %s) or run pglink as a non-root user", name, err, name)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("OS user %s: uid %q: %w", name, u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("OS user %s: gid %q: %w", name, u.Gid, err)
	}
	o := &osUser{name: name, home: u.HomeDir, uid: uint32(uid), gid: uint32(gid), groups: []uint32{uint32(gid)}}
	if ids, err := u.GroupIds(); err == nil {
		for _, id := range ids {
			if g, err := strconv.ParseUint(id, 10, 32); err == nil && !slices.Contains(o.groups, uint32(g)) {
				o.groups = append(o.groups, uint32(g))
			}
		}
	}
	return o, nil
}

// credential is the process credential of u.
func (u *osUser) credential() *syscall.Credential {
	return &syscall.Credential{Uid: u.uid, Gid: u.gid, Groups: u.groups}
}

// canTraverse reports whether u may search (cd through) the directory fi describes, by its
// owner, group and mode bits; ACLs are not consulted.
func (u *osUser) canTraverse(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return true
	}
	perm := fi.Mode().Perm()
	switch {
	case st.Uid == u.uid:
		return perm&0o100 != 0
	case slices.Contains(u.groups, st.Gid):
		return perm&0o010 != 0
	default:
		return perm&0o001 != 0
	}
}

// chown gives path to u; a nil u (pglink is not root) leaves it alone.
func (u *osUser) chown(path string) error {
	if u == nil {
		return nil
	}
	if err := os.Lchown(path, int(u.uid), int(u.gid)); err != nil {
		return fmt.Errorf("chown %s to %s: %w", path, u.name, err)
	}
	return nil
}

// checkAncestors returns an error naming the first directory above dir that u cannot traverse.
func (u *osUser) checkAncestors(dir string) error {
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("engine directory %s: %w", dir, err)
		}
		if !u.canTraverse(fi) {
			return fmt.Errorf("engine directory %s: PostgreSQL runs as OS user %s, which cannot traverse %s (mode %v); run \"chmod o+x %s\" or choose a data directory that %s can reach",
				dir, u.name, p, fi.Mode().Perm(), p, u.name)
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// prepareDir creates dir (mode 0711 for root, 0700 otherwise) and makes sure u can traverse it
// and every directory above it.
func prepareDir(dir string, u *osUser) error {
	mode := os.FileMode(0o700)
	if u != nil {
		mode = 0o711
	}
	if err := os.MkdirAll(dir, mode); err != nil {
		return fmt.Errorf("engine directory: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("engine directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("engine directory %s is not a directory", dir)
	}
	if u == nil {
		return nil
	}
	if !u.canTraverse(fi) {
		if err := os.Chmod(dir, fi.Mode().Perm()|0o011); err != nil {
			return fmt.Errorf("engine directory: %w", err)
		}
	}
	return u.checkAncestors(dir)
}
