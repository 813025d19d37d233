package engine

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// install is one installed PostgreSQL major version.
type install struct {
	bin   string // directory holding initdb, pg_ctl and postgres
	minor string // e.g. "18" for 15.18; "" for a pre-release
}

// serverBinaries are the programs the engine runs from a bin directory.
var serverBinaries = []string{"initdb", "pg_ctl", "postgres"}

// findInstalls maps each installed major version to its bin directory. With pgbin set only that
// directory is probed and a failure is an error; otherwise the directory of initdb on PATH comes
// first, then /usr/lib/postgresql/*/bin, and the first directory of each major version wins.
func findInstalls(pgbin string, log *slog.Logger) (map[string]install, error) {
	var dirs []string
	if pgbin != "" {
		abs, err := filepath.Abs(pgbin)
		if err != nil {
			return nil, fmt.Errorf("PostgreSQL bin directory %s: %w", pgbin, err)
		}
		dirs = []string{abs}
	} else {
		if p, err := exec.LookPath("initdb"); err == nil {
			if real, err := filepath.EvalSymlinks(p); err == nil {
				dirs = append(dirs, filepath.Dir(real))
			}
		}
		found, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
		sort.Strings(found)
		dirs = append(dirs, found...)
	}
	installs := map[string]install{}
	for _, dir := range dirs {
		major, minor, err := probe(dir)
		if err != nil {
			if pgbin != "" {
				return nil, err
			}
			log.Warn("skip PostgreSQL bin directory", "dir", dir, "err", err)
			continue
		}
		if _, ok := installs[major]; !ok {
			installs[major] = install{bin: dir, minor: minor}
		}
	}
	return installs, nil
}

// probe checks that dir holds the server binaries of one PostgreSQL version and returns it.
func probe(dir string) (major, minor string, err error) {
	for _, name := range serverBinaries {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			return "", "", fmt.Errorf("PostgreSQL bin directory %s: %w", dir, err)
		}
		if fi.IsDir() || fi.Mode()&0o111 == 0 {
			return "", "", fmt.Errorf("PostgreSQL bin directory %s: %s is not executable", dir, name)
		}
	}
	major, minor, err = binaryVersion(filepath.Join(dir, "postgres"))
	if err != nil {
		return "", "", err
	}
	initMajor, _, err := binaryVersion(filepath.Join(dir, "initdb"))
	if err != nil {
		return "", "", err
	}
	if initMajor != major {
		return "", "", fmt.Errorf("PostgreSQL bin directory %s: initdb is version %s but postgres is %s", dir, initMajor, major)
	}
	return major, minor, nil
}

// binaryVersion runs "path --version" and parses its answer.
func binaryVersion(path string) (major, minor string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		return "", "", fmt.Errorf("%s --version: %w", path, err)
	}
	major, minor, ok := parseVersion(string(out))
	if !ok {
		return "", "", fmt.Errorf("%s --version: unexpected answer %q", path, strings.TrimSpace(string(out)))
	}
	return major, minor, nil
}

var versionRE = regexp.MustCompile(`\(PostgreSQL\) (\d+)(?:\.(\d+))?(?:\.(\d+))?`)

// parseVersion reads the major and minor version from the answer of "postgres --version",
// e.g. "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)" -> "15", "18". Before version 10
// the major version had two parts ("9.6.24" -> "9.6", "24").
func parseVersion(s string) (major, minor string, ok bool) {
	m := versionRE.FindStringSubmatch(s)
	if m == nil {
		return "", "", false
	}
	if n, _ := strconv.Atoi(m[1]); n < 10 {
		if m[2] == "" {
			return "", "", false
		}
		return m[1] + "." + m[2], m[3], true
	}
	return m[1], m[2], true
}

// lessVersion orders major versions numerically: "9.6" < "10" < "15".
func lessVersion(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(pa) && i < len(pb); i++ {
		na, _ := strconv.Atoi(pa[i])
		nb, _ := strconv.Atoi(pb[i])
		if na != nb {
			return na < nb
		}
	}
	return len(pa) < len(pb)
}

// NewestInstalled returns the newest PostgreSQL major version installed on this host and its bin
// directory, found as NewLocal finds them (PATH, then /usr/lib/postgresql/*/bin), or an error
// wrapping ErrNoPostgres. Tests use it to run against whatever PostgreSQL the host has.
func NewestInstalled() (major, bin string, err error) {
	installs, err := findInstalls("", slog.New(slog.DiscardHandler))
	if err != nil {
		return "", "", err
	}
	for v, in := range installs {
		if major == "" || lessVersion(major, v) {
			major, bin = v, in.bin
		}
	}
	if major == "" {
		return "", "", fmt.Errorf("%w: looked for initdb on PATH and in /usr/lib/postgresql/*/bin", ErrNoPostgres)
	}
	return major, bin, nil
}
