package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// osUser is the unprivileged OS user a cluster's PostgreSQL runs as when pglink runs as root:
// one per cluster, created with it and removed with it.
type osUser struct {
	name string
	home string
	uid  uint32
	gid  uint32
}

// userPrefix starts the name of every OS user pglink creates for a cluster.
const userPrefix = "pglink-"

// lookupUser returns the OS user name.
func lookupUser(name string) (*osUser, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("OS user %s: %w", name, err)
	}
	return fromUser(u)
}

// lookupUID returns the OS user with uid, or one without name nor home if uid has no entry.
func lookupUID(uid, gid uint32) *osUser {
	if u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil {
		if o, err := fromUser(u); err == nil {
			return o
		}
	}
	return &osUser{name: strconv.FormatUint(uint64(uid), 10), home: "/", uid: uid, gid: gid}
}

func fromUser(u *user.User) (*osUser, error) {
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("OS user %s: uid %q: %w", u.Username, u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("OS user %s: gid %q: %w", u.Username, u.Gid, err)
	}
	return &osUser{name: u.Username, home: u.HomeDir, uid: uint32(uid), gid: uint32(gid)}, nil
}

// credential is the process credential of u: its uid and primary group, no other group.
func (u *osUser) credential() *syscall.Credential {
	return &syscall.Credential{Uid: u.uid, Gid: u.gid, Groups: []uint32{u.gid}}
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

// chownAll gives dir and everything below it to u, dir last: once dir is u's, all is. It
// refuses a file with more than one link, which may be a hard link to a file elsewhere.
func (u *osUser) chownAll(dir string) error {
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
				return fmt.Errorf("chown %s to %s: the file has %d links", path, u.name, st.Nlink)
			}
		}
		return u.chown(path)
	})
	if err != nil {
		return err
	}
	return u.chown(dir)
}

// userMu serializes this process's useradd and userdel runs; the tools lock /etc/passwd
// against other processes and fail (rather than wait) when it is taken.
var userMu sync.Mutex

// ensureUser returns the OS user name, creating it if missing: a system user with a group of
// its own, no home directory and no login shell. A user left by an earlier run (a crash
// between useradd and the cluster's creation, say) is reused.
func ensureUser(ctx context.Context, name string) (*osUser, error) {
	if u, err := lookupUser(name); err == nil {
		return u, nil
	}
	userMu.Lock()
	defer userMu.Unlock()
	if u, err := lookupUser(name); err == nil {
		return u, nil
	}
	// Exit status 9: the name is taken (by a concurrent pglink); the lookup below finds it.
	if err := userTool(ctx, "useradd", []int{9}, "--system", "--no-create-home", "--home-dir", "/nonexistent",
		"--shell", "/usr/sbin/nologin", "--user-group", "--comment", "pglink PostgreSQL server", name); err != nil {
		return nil, err
	}
	return lookupUser(name)
}

// removeUser removes the OS user name and its group; a missing user is not an error.
func removeUser(ctx context.Context, name string) error {
	userMu.Lock()
	defer userMu.Unlock()
	// Exit status 6: no such user.
	return userTool(ctx, "userdel", []int{6}, name)
}

// userTool runs useradd or userdel with args; an exit status in ok is success. It retries
// while /etc/passwd is locked by another process (exit status 10) or, for userdel, while
// processes of the user are still exiting (exit status 8).
func userTool(ctx context.Context, tool string, ok []int, args ...string) error {
	var err error
	for attempt := 0; attempt < 50; attempt++ {
		var out bytes.Buffer
		cmd := exec.CommandContext(ctx, tool, args...)
		cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}
		cmd.Stdout, cmd.Stderr = &out, &out
		err = cmd.Run()
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			if err != nil {
				return fmt.Errorf("%s: %w", tool, err)
			}
			return nil
		}
		code := exit.ExitCode()
		for _, c := range ok {
			if code == c {
				return nil
			}
		}
		if code != 10 && !(tool == "userdel" && code == 8) {
			return fmt.Errorf("%s %s: %w: %s", tool, args[len(args)-1], err, bytes.TrimSpace(out.Bytes()))
		}
		err = fmt.Errorf("%s %s: %w: %s", tool, args[len(args)-1], err, bytes.TrimSpace(out.Bytes()))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return err
}

// othersCanTraverse returns an error naming the first directory from dir up to / that other
// OS users (the clusters' users) cannot search.
func othersCanTraverse(dir string) error {
	for p := dir; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("engine directory %s: %w", dir, err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("engine directory %s: each PostgreSQL server runs as an OS user of its own, which cannot traverse %s (mode %v); run \"chmod o+x %s\" or choose a data directory that other OS users can reach",
				dir, p, fi.Mode().Perm(), p)
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// prepareDir creates dir: mode 0711 when pglink runs as root (every cluster's OS user must
// traverse it, no one but root may list it), 0700 otherwise; for root it makes sure other OS
// users can traverse every directory above it.
func prepareDir(dir string, root bool) error {
	mode := os.FileMode(0o700)
	if root {
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
	if fi.Mode().Perm() != mode {
		if err := os.Chmod(dir, mode); err != nil {
			return fmt.Errorf("engine directory: %w", err)
		}
	}
	if !root {
		return nil
	}
	return othersCanTraverse(dir)
}

// Cluster directories belong to unprivileged OS users, who may put symlinks, FIFOs or hard
// links where pglink, as root, expects its own files. What pglink opens, creates or changes in
// them, it does through the functions below, which follow no symlink and never block.

// openRegular opens the file path for reading without following a symlink or blocking on a
// FIFO, and only if it is a regular file with a single link.
func openRegular(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Nlink != 1 {
		unix.Close(fd)
		return nil, fmt.Errorf("open %s: not a regular file with a single link", path)
	}
	return os.NewFile(uintptr(fd), path), nil
}

// readRegular reads the file path as openRegular opens it.
func readRegular(path string) ([]byte, error) {
	f, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// chmodRegular sets the mode of the file path if it is a regular file with a single link, as
// openRegular opens it; it leaves anything else (nothing, a symlink, a FIFO) alone.
func chmodRegular(path string, mode os.FileMode) error {
	f, err := openRegular(path)
	var pathErr *fs.PathError
	if err != nil && !errors.As(err, &pathErr) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ELOOP) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Chmod(mode)
}
