// Package pgtest starts throwaway PostgreSQL clusters for tests: initdb and pg_ctl of the newest
// PostgreSQL installed on the host (found as the engine finds it), listening only on a unix
// socket in a private directory, with fsync off. As root, the cluster runs as the postgres OS
// user, since PostgreSQL refuses to run as root. StartWith changes settings, for benchmarks.
package pgtest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/engine"
)

// Cluster is a running throwaway PostgreSQL cluster. Its superuser is "postgres", with a
// password. Its methods are safe for concurrent use.
type Cluster struct {
	Socket   string // directory of .s.PGSQL.5432
	Password string // of the superuser postgres

	base, bin string
	major     int                 // PostgreSQL major version
	cred      *syscall.Credential // nil unless this process is root
	dbs       atomic.Int64        // databases made by CreateDatabase
}

// Require ends t if err (from Start) says a part is missing: a skip on a developer machine, a
// failure under CI=true, where every part must be present.
func Require(t testing.TB, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("no PostgreSQL cluster for this test, and CI=true requires one: %v", err)
	}
	t.Skipf("no PostgreSQL cluster for this test (CI=true would fail here): %v", err)
}

// New starts a cluster for t and stops it when t ends; a missing part ends t (Require).
func New(t testing.TB) *Cluster {
	t.Helper()
	c, err := Start()
	Require(t, err)
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("stop PostgreSQL: %v", err)
		}
	})
	return c
}

// Start starts a cluster in a fresh temporary directory, with the settings for tests (fsync off).
// Stop it with Stop, which also removes the directory. Programs other than tests may use it.
func Start() (*Cluster, error) { return StartWith(nil) }

// Durable are settings for StartWith that undo the test settings that trade durability for
// speed, and give the server PostgreSQL's default memory: a cluster configured as one that
// keeps its data would be, for benchmarks.
var Durable = map[string]string{
	"fsync":              "on",
	"synchronous_commit": "on",
	"full_page_writes":   "on",
	"shared_buffers":     "128MB",
}

// StartWith starts a cluster as Start does, with settings (postgresql.conf parameter names and
// values, written as given after the test settings, so they win) added to its configuration.
func StartWith(settings map[string]string) (*Cluster, error) {
	major, bin, err := engine.NewestInstalled()
	if err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(major)
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL major version %q: %w", major, err)
	}
	// A short path: a unix socket path has at most 107 bytes.
	base, err := os.MkdirTemp("", "pgtest")
	if err != nil {
		return nil, err
	}
	c := &Cluster{Socket: filepath.Join(base, "sock"), Password: rand.Text(), base: base, bin: bin, major: n}
	if err := c.start(settings); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

func (c *Cluster) start(settings map[string]string) error {
	uid, gid := -1, -1
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return fmt.Errorf("running as root, PostgreSQL needs an unprivileged OS user: %w", err)
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{uint32(gid)}}
		// The postgres user must traverse base (MkdirTemp makes it 0700) to reach its dirs.
		if err := os.Chmod(c.base, 0o711); err != nil {
			return err
		}
	}
	data, pwfile, logFile := filepath.Join(c.base, "data"), filepath.Join(c.base, "pw"), filepath.Join(c.base, "postgres.log")
	for _, d := range []string{data, c.Socket} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return err
		}
	}
	if err := os.WriteFile(pwfile, []byte(c.Password+"\n"), 0o600); err != nil {
		return err
	}
	// pg_ctl, running as postgres, creates the log file in base, which it cannot write.
	if err := os.WriteFile(logFile, nil, 0o600); err != nil {
		return err
	}
	if c.cred != nil {
		for _, p := range []string{data, c.Socket, pwfile, logFile} {
			if err := os.Chown(p, uid, gid); err != nil {
				return err
			}
		}
	}
	if err := c.run("initdb", "-D", data, "-U", "postgres", "--auth=scram-sha-256", "--pwfile="+pwfile,
		"-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		return err
	}
	conf := fmt.Sprintf("listen_addresses = ''\nunix_socket_directories = '%s'\nfsync = off\nsynchronous_commit = off\n"+
		"full_page_writes = off\nmax_connections = 200\nshared_buffers = 32MB\n", c.Socket)
	for _, k := range slices.Sorted(maps.Keys(settings)) {
		conf += fmt.Sprintf("%s = '%s'\n", k, strings.ReplaceAll(settings[k], "'", "''"))
	}
	f, err := os.OpenFile(filepath.Join(data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(conf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return c.run("pg_ctl", "-D", data, "-l", logFile, "-w", "-t", "60", "start")
}

func (c *Cluster) run(name string, args ...string) error {
	cmd := exec.Command(filepath.Join(c.bin, name), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	cmd.Dir = c.base
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %v: %w\n%s", name, args, err, out)
	}
	return nil
}

// Stop stops the cluster at once (no checkpoint) and removes its directory.
func (c *Cluster) Stop() error {
	var err error
	if _, serr := os.Stat(filepath.Join(c.base, "data", "postmaster.pid")); serr == nil {
		err = c.run("pg_ctl", "-D", filepath.Join(c.base, "data"), "-m", "immediate", "-w", "stop")
	}
	return errors.Join(err, os.RemoveAll(c.base))
}

// URL returns the URL of database db as the superuser, over the unix socket.
func (c *Cluster) URL(db string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword("postgres", c.Password), Path: "/" + db,
		RawQuery: url.Values{"host": {c.Socket}}.Encode()}
	return u.String()
}

// CreateDatabase creates a new, empty database and returns its URL (see URL). The database is
// dropped, with any sessions still on it, when t ends.
func (c *Cluster) CreateDatabase(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("t%d", c.dbs.Add(1))
	// FILE_COPY (PostgreSQL 15 and later) copies the template's files and checkpoints, which
	// costs nothing with fsync off; the default, WAL_LOG, writes the template through the WAL.
	create := `CREATE DATABASE ` + name + ` STRATEGY = FILE_COPY`
	if c.major < 15 {
		create = `CREATE DATABASE ` + name
	}
	if err := c.exec(t.Context(), create); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := c.exec(context.Background(), `DROP DATABASE `+name+` WITH (FORCE)`); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	return c.URL(name)
}

// exec runs sql in the postgres database.
func (c *Cluster) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql)
	return err
}

// Restart restarts the cluster (a fast shutdown: sessions end with SQLSTATE 57P01), keeping
// its data, and returns once it accepts connections again.
func (c *Cluster) Restart() error {
	return c.run("pg_ctl", "-D", filepath.Join(c.base, "data"), "-l", filepath.Join(c.base, "postgres.log"),
		"-m", "fast", "-w", "-t", "60", "restart")
}
