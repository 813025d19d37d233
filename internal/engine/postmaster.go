package engine

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// errNoProcfs is returned when /proc cannot tell about a process.
var errNoProcfs = errors.New("no procfs")

// postmaster is what a cluster's postmaster.pid says, checked against the running processes.
type postmaster struct {
	pidFile bool // postmaster.pid exists
	pid     int  // from its first line; 0 if unreadable
	alive   bool // pid is this cluster's postmaster and it runs
}

// readPostmaster reads dataDir/postmaster.pid and checks that the process it names runs and is
// the postmaster of dataDir: a postmaster killed with SIGKILL leaves its pid file behind, and
// its pid may since have gone to another process.
func readPostmaster(dataDir string) postmaster {
	b, err := readRegular(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return postmaster{}
	}
	pm := postmaster{pidFile: true}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 {
		return pm
	}
	pm.pid = pid
	pm.alive = isPostmaster(pid, dataDir)
	return pm
}

// isPostmaster reports whether process pid runs with dataDir as its working directory, as a
// postmaster and its children do. Without /proc it only checks that pid exists.
func isPostmaster(pid int, dataDir string) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	cwd, err := procCwd(pid)
	switch {
	case errors.Is(err, errNoProcfs):
		return true
	case errors.Is(err, fs.ErrNotExist):
		return false // gone, or a zombie
	case err != nil:
		return true // cannot tell: assume it is, never start a second postmaster
	}
	if cwd == dataDir {
		return true
	}
	real, err := filepath.EvalSymlinks(dataDir)
	return err == nil && cwd == real
}

// procCwd returns the working directory of process pid from /proc.
func procCwd(pid int) (string, error) {
	if _, err := os.Stat("/proc/self/cwd"); err != nil {
		return "", errNoProcfs
	}
	return os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
}

// tail returns at most the last n lines of the file at path, "" if it cannot be read.
func tail(path string, n int) string {
	f, err := openRegular(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	const max = 4096
	if fi, err := f.Stat(); err == nil && fi.Size() > max {
		if _, err := f.Seek(-max, io.SeekEnd); err != nil {
			return ""
		}
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
