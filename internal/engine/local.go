package engine

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/sys/unix"

	"github.com/pglink/pglink/internal/resource"
)

// ErrNoCluster is returned (wrapped) by Start, Restart, SetPassword and Ensure for a server
// whose cluster was never created, or was deleted.
var ErrNoCluster = errors.New("no PostgreSQL cluster for this server")

// ErrNotRunning is returned (wrapped) by SetPassword for a stopped server.
var ErrNotRunning = errors.New("PostgreSQL is not running")

// ErrNoPostgres is returned (wrapped) by NewLocal when no PostgreSQL server binaries are found.
var ErrNoPostgres = errors.New("no PostgreSQL server binaries found")

const (
	// superuser is the bootstrap superuser of every cluster, the role pglink itself uses.
	superuser = "pglink"
	// port is the port every cluster's socket is named after (.s.PGSQL.5432).
	port = "5432"
	// maxSocketPath is the longest unix socket path PostgreSQL accepts (sun_path less its NUL).
	maxSocketPath = 107
	// maxLog is the size above which postgres.log is rotated (to postgres.log.1) at start.
	maxLog = 10 << 20
	// timeout is how long pg_ctl waits for a start or stop, in seconds.
	timeout = "120"
)

// LocalConfig configures a Local engine.
type LocalConfig struct {
	// Dir is the root of the clusters, e.g. <data-dir>/servers. It is created if missing.
	Dir string
	// PGBin, if set, is the one directory holding initdb, pg_ctl and postgres. Otherwise the
	// directory of initdb on PATH and /usr/lib/postgresql/*/bin are searched, one per major
	// version, the first found winning.
	PGBin string
	// Logger receives the engine's logs; nil discards them.
	Logger *slog.Logger
}

// Local is the engine that runs each flexible server as a real PostgreSQL cluster on this host,
// in its own directory below LocalConfig.Dir, listening only on a unix socket in a private
// directory (Socket): the gateway is the only way in.
//
// When pglink runs as root, each cluster runs as an unprivileged OS user of its own
// (pglink-<12 hex digits>, a name derived from Dir and the server's ID), created with the
// cluster and removed with it; the cluster's directory, socket directory included, is that
// user's alone (mode 0700). The password of the cluster's bootstrap superuser (pglink) is kept
// outside the cluster, readable by root only. The server administrator is not a superuser: it
// has CREATEDB, CREATEROLE and REPLICATION and the predefined roles pg_read_all_data,
// pg_write_all_data, pg_monitor and pg_signal_backend. An administrator who escalates to its
// cluster's OS user anyway (in PostgreSQL 15 and older a CREATEROLE role may grant itself
// pg_execute_server_program) reaches its own cluster only. When pglink does not run as root,
// every cluster runs as the current user, and there is no such isolation.
//
// All state is on disk, so a new Local over the same Dir (pglink restarted) finds the clusters
// of the old one, running or not; clusters keep running when pglink exits.
//
// Every method is idempotent and safe for concurrent use; calls on one server are serialized.
type Local struct {
	dir      string
	installs map[string]install // by major version; read-only after NewLocal
	root     bool               // pglink runs as root: each cluster runs as an OS user of its own
	log      *slog.Logger

	mu    sync.Mutex
	locks map[string]chan struct{} // guarded by mu; by cluster directory, never removed
}

// NewLocal returns a Local engine over cfg.Dir, with the PostgreSQL versions installed on this
// host. It fails if none is installed (ErrNoPostgres), if the unix socket paths below Dir would
// be too long, or, when pglink runs as root, if other OS users cannot reach Dir.
func NewLocal(cfg LocalConfig) (*Local, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "engine")
	if cfg.Dir == "" {
		return nil, errors.New("engine: no directory for the clusters")
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("engine directory: %w", err)
	}
	// pg_ctl hands the data directory and options to /bin/sh.
	if strings.ContainsAny(dir, "\"'`$\\\n") {
		return nil, fmt.Errorf("engine directory %q: quotes, backslashes, '$' and newlines are not supported in its path", dir)
	}
	sock := filepath.Join(dir, strings.Repeat("0", 16), "socket", ".s.PGSQL."+port)
	if len(sock) > maxSocketPath {
		return nil, fmt.Errorf("engine directory %s is too long: its unix socket paths (%s) would be %d bytes and PostgreSQL allows %d; choose a shorter data directory",
			dir, sock, len(sock), maxSocketPath)
	}
	installs, err := findInstalls(cfg.PGBin, log)
	if err != nil {
		return nil, err
	}
	if len(installs) == 0 {
		return nil, fmt.Errorf("%w: looked for initdb on PATH and in /usr/lib/postgresql/*/bin; install the PostgreSQL server package or name its bin directory", ErrNoPostgres)
	}
	l := &Local{dir: dir, installs: installs, root: os.Geteuid() == 0, log: log, locks: map[string]chan struct{}{}}
	if err := prepareDir(dir, l.root); err != nil {
		return nil, err
	}
	if err := os.Mkdir(l.secrets(), 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("engine directory: %w", err)
	}
	if err := os.Chmod(l.secrets(), 0o700); err != nil {
		return nil, fmt.Errorf("engine directory: %w", err)
	}
	runAs := "an OS user of its own per server"
	if !l.root {
		runAs = "current user"
		log.Warn("pglink does not run as root: every PostgreSQL server runs as the current OS user, so servers are not isolated from each other nor from pglink at the OS level; a server administrator who escalates to its OS user can reach the other servers")
	}
	for _, v := range l.Versions() {
		log.Info("PostgreSQL installed", "version", v+"."+installs[v].minor, "bin", installs[v].bin)
	}
	log.Info("engine ready", "dir", dir, "run_as", runAs)
	return l, nil
}

// Versions returns the installed PostgreSQL major versions, oldest first.
func (l *Local) Versions() []string {
	var vs []string
	for v := range l.installs {
		vs = append(vs, v)
	}
	slices.SortFunc(vs, func(a, b string) int {
		switch {
		case lessVersion(a, b):
			return -1
		case lessVersion(b, a):
			return 1
		}
		return 0
	})
	return vs
}

// MinorVersion returns the minor version of the installed major version major, e.g. "18" for
// PostgreSQL 15.18, or "" if major is not installed.
func (l *Local) MinorVersion(major string) string { return l.installs[major].minor }

// Socket returns the directory holding the unix socket (.s.PGSQL.5432) of server id's
// PostgreSQL. The directory exists once the server is created.
func (l *Local) Socket(id resource.ID) string { return l.cluster(id).socket() }

// Running reports whether server id's PostgreSQL runs.
func (l *Local) Has(id resource.ID) bool {
	_, err := os.Stat(l.cluster(id).dir)
	return err == nil
}

// Running reports whether the PostgreSQL of server id runs.
func (l *Local) Running(id resource.ID) bool { return readPostmaster(l.cluster(id).data()).alive }

// Create creates server s: a new cluster, started, with the administrator role s.AdminLogin
// (not a superuser; see Local) whose password is given by its SCRAM verifier s.AdminVerifier.
// If the cluster exists, Create only makes sure it runs and the administrator role exists with
// that verifier and those privileges (an administrator made a superuser by an older pglink is
// demoted). It returns an Invalid *resource.Error if s.Version is not installed, and an error if
// s.AdminVerifier is not a SCRAM-SHA-256 verifier.
func (l *Local) Create(ctx context.Context, s Spec) error {
	inst, ok := l.installs[s.Version]
	if !ok {
		return resource.Errorf(resource.Invalid, "InvalidParameterValue",
			"PostgreSQL version %s is not installed on this host; installed versions: %s.", s.Version, strings.Join(l.Versions(), ", "))
	}
	if err := checkLogin(s.AdminLogin); err != nil {
		return err
	}
	if err := checkVerifier(s.AdminVerifier); err != nil {
		return fmt.Errorf("create server %s: administrator password: %w", s.ID, err)
	}
	c := l.cluster(s.ID)
	unlock, err := l.lock(ctx, c)
	if err != nil {
		return fmt.Errorf("create server %s: %w", s.ID, err)
	}
	defer unlock()
	began := time.Now()
	created, err := l.initCluster(ctx, c, s, inst)
	if err != nil {
		return fmt.Errorf("create server %s: %w", s.ID, err)
	}
	if err := l.start(ctx, c); err != nil {
		return fmt.Errorf("create server %s: %w", s.ID, err)
	}
	if err := l.setAdmin(ctx, c, s.AdminLogin, s.AdminVerifier); err != nil {
		return fmt.Errorf("create server %s: %w", s.ID, err)
	}
	l.log.Info("server created", "server", s.ID.String(), "dir", c.dir, "version", s.Version, "new_cluster", created, "took", time.Since(began))
	return nil
}

// Start starts server id's PostgreSQL if it is not running.
func (l *Local) Start(ctx context.Context, id resource.ID) error {
	return l.locked(ctx, id, "start", l.start)
}

// Stop stops server id's PostgreSQL (fast shutdown: sessions are disconnected) if it runs.
func (l *Local) Stop(ctx context.Context, id resource.ID) error {
	return l.locked(ctx, id, "stop", l.stop)
}

// Restart stops server id's PostgreSQL if it runs, then starts it.
func (l *Local) Restart(ctx context.Context, id resource.ID) error {
	return l.locked(ctx, id, "restart", func(ctx context.Context, c cluster) error {
		if err := l.stop(ctx, c); err != nil {
			return err
		}
		return l.start(ctx, c)
	})
}

// Ensure starts server id's PostgreSQL if running is true and it is not running (after a
// pglink restart or a crash), and stops it if running is false and it runs. Ensure(ctx, id,
// true) on a server without a cluster returns ErrNoCluster.
func (l *Local) Ensure(ctx context.Context, id resource.ID, running bool) error {
	c := l.cluster(id)
	if readPostmaster(c.data()).alive == running {
		return nil
	}
	return l.locked(ctx, id, "ensure", func(ctx context.Context, c cluster) error {
		if readPostmaster(c.data()).alive == running {
			return nil
		}
		if running {
			l.log.Warn("server should run and does not: starting it", "server", id.String())
			return l.start(ctx, c)
		}
		l.log.Warn("server should be stopped and runs: stopping it", "server", id.String())
		return l.stop(ctx, c)
	})
}

// Delete stops server id's PostgreSQL and removes its cluster, the cluster superuser's password
// and, when pglink runs as root, the cluster's OS user. A missing cluster (or user) is not an
// error, so a Delete interrupted by a crash finishes when called again.
func (l *Local) Delete(ctx context.Context, id resource.ID) error {
	return l.locked(ctx, id, "delete", func(ctx context.Context, c cluster) error {
		if _, err := os.Stat(c.dir); err == nil {
			if err := l.stop(ctx, c); err != nil {
				return err
			}
			if err := os.RemoveAll(c.dir); err != nil {
				return fmt.Errorf("remove cluster: %w", err)
			}
			l.log.Info("server deleted", "server", id.String(), "dir", c.dir)
		}
		if err := os.Remove(c.secret); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove superuser password: %w", err)
		}
		if l.root {
			if err := removeUser(ctx, c.user); err != nil {
				return fmt.Errorf("remove OS user: %w", err)
			}
		}
		return nil
	})
}

// SetPassword sets the password of role login on server id, which must run (else
// ErrNotRunning), to the one whose SCRAM-SHA-256 verifier is verifier (see Verifier). It
// returns an error if verifier is not such a verifier.
func (l *Local) SetPassword(ctx context.Context, id resource.ID, login, verifier string) error {
	if err := checkLogin(login); err != nil {
		return err
	}
	if err := checkVerifier(verifier); err != nil {
		return fmt.Errorf("set password on server %s: %w", id, err)
	}
	return l.locked(ctx, id, "set password on", func(ctx context.Context, c cluster) error {
		if _, err := c.version(); err != nil {
			return err
		}
		if !readPostmaster(c.data()).alive {
			return ErrNotRunning
		}
		conn, err := l.connect(ctx, c)
		if err != nil {
			return err
		}
		defer closeConn(conn)
		if _, err := conn.Exec(ctx, "alter role "+pgx.Identifier{login}.Sanitize()+" with password "+quoteLiteral(verifier)); err != nil {
			return fmt.Errorf("alter role %s: %w", login, err)
		}
		return nil
	})
}

// locked runs fn on server id's cluster holding the server's lock; what names the action in
// errors.
func (l *Local) locked(ctx context.Context, id resource.ID, what string, fn func(context.Context, cluster) error) error {
	c := l.cluster(id)
	unlock, err := l.lock(ctx, c)
	if err != nil {
		return fmt.Errorf("%s server %s: %w", what, id, err)
	}
	defer unlock()
	if err := fn(ctx, c); err != nil {
		return fmt.Errorf("%s server %s: %w", what, id, err)
	}
	return nil
}

// lock takes c's lock, waiting until ctx is done.
func (l *Local) lock(ctx context.Context, c cluster) (unlock func(), err error) {
	l.mu.Lock()
	ch, ok := l.locks[c.dir]
	if !ok {
		ch = make(chan struct{}, 1)
		l.locks[c.dir] = ch
	}
	l.mu.Unlock()
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// cluster is the on-disk layout of one server's cluster.
type cluster struct {
	id     resource.ID
	dir    string
	secret string // the bootstrap superuser's password file, outside dir
	user   string // the OS user the cluster runs as when pglink runs as root
}

// cluster returns the cluster of server id: <Dir>/<first 16 hex digits of sha256(id.Key())>,
// short so that the socket path fits. Its OS user's name is derived from Dir and id, so that
// two pglink on one host never share one.
func (l *Local) cluster(id resource.ID) cluster {
	sum := sha256.Sum256([]byte(id.Key()))
	name := hex.EncodeToString(sum[:])[:16]
	usum := sha256.Sum256([]byte(l.dir + "\x00" + id.Key()))
	return cluster{
		id:     id,
		dir:    filepath.Join(l.dir, name),
		secret: filepath.Join(l.secrets(), name+".password"),
		user:   userPrefix + hex.EncodeToString(usum[:])[:12],
	}
}

// secrets is the directory of the clusters' superuser passwords: mode 0700, pglink's alone.
// Its name is not a cluster's (those are hex digits).
func (l *Local) secrets() string { return filepath.Join(l.dir, "superuser") }

func (c cluster) data() string     { return filepath.Join(c.dir, "data") }
func (c cluster) initDir() string  { return filepath.Join(c.dir, "init") } // initdb's work in progress
func (c cluster) socket() string   { return filepath.Join(c.dir, "socket") }
func (c cluster) logFile() string  { return filepath.Join(c.dir, "postgres.log") }
func (c cluster) password() string { return filepath.Join(c.dir, "pglink.password") } // where an older pglink kept c.secret
func (c cluster) meta() string     { return filepath.Join(c.dir, "server.json") }

// pwfile is the copy of c.secret initdb reads, removed once it is done.
func (c cluster) pwfile() string { return filepath.Join(c.dir, "initdb.password") }

// version returns the major version of c's initialized cluster, or an error wrapping
// ErrNoCluster.
func (c cluster) version() (string, error) {
	b, err := readRegular(filepath.Join(c.data(), "PG_VERSION"))
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%w (%s)", ErrNoCluster, c.dir)
	}
	if err != nil {
		return "", fmt.Errorf("read cluster version: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// initCluster creates c's cluster for s unless it exists; created says whether it did. initdb
// works in c.initDir(), which becomes c.data() once configured, so a cluster that exists is
// complete.
func (l *Local) initCluster(ctx context.Context, c cluster, s Spec, inst install) (created bool, err error) {
	v, err := c.version()
	if err == nil {
		if v != s.Version {
			return false, fmt.Errorf("cluster %s exists with PostgreSQL %s, not %s", c.dir, v, s.Version)
		}
		return false, nil
	}
	if !errors.Is(err, ErrNoCluster) {
		return false, err
	}
	defer func() {
		if err != nil { // leave nothing behind, the OS user least of all
			l.discard(context.WithoutCancel(ctx), c)
		}
	}()
	var owner *osUser
	if l.root {
		if owner, err = ensureUser(ctx, c.user); err != nil {
			return false, err
		}
	}
	if err := mkdir(c.dir, owner); err != nil {
		return false, err
	}
	meta, _ := json.MarshalIndent(map[string]string{"id": s.ID.String(), "version": s.Version}, "", "  ")
	if err := writeFile(c.meta(), append(meta, '\n'), 0o600, owner); err != nil {
		return false, err
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return false, fmt.Errorf("superuser password: %w", err)
	}
	pw := []byte(hex.EncodeToString(secret) + "\n")
	if err := writeFile(c.secret, pw, 0o600, nil); err != nil {
		return false, err
	}
	if err := os.RemoveAll(c.initDir()); err != nil {
		return false, fmt.Errorf("remove unfinished cluster: %w", err)
	}
	// initdb runs as the cluster's OS user, which cannot read c.secret: it gets a copy for the
	// time it runs, in the cluster's directory, which is that user's alone.
	if err := writeFile(c.pwfile(), pw, 0o600, owner); err != nil {
		return false, err
	}
	defer os.Remove(c.pwfile())
	began := time.Now()
	if _, err := l.run(ctx, c, filepath.Join(inst.bin, "initdb"),
		"--pgdata="+c.initDir(), "--username="+superuser, "--pwfile="+c.pwfile(),
		"--auth=scram-sha-256", "--encoding=UTF8", "--locale=C"); err != nil {
		return false, err
	}
	if err := os.Remove(c.pwfile()); err != nil {
		return false, fmt.Errorf("remove initdb password file: %w", err)
	}
	l.log.Debug("initdb done", "server", s.ID.String(), "took", time.Since(began))
	if err := configure(c, owner); err != nil {
		return false, err
	}
	if err := os.Rename(c.initDir(), c.data()); err != nil {
		return false, fmt.Errorf("finish cluster: %w", err)
	}
	return true, nil
}

// configure writes the settings that keep the new cluster in c.initDir() off the network:
// a unix socket in a private directory only, and passwords for every connection.
func configure(c cluster, owner *osUser) error {
	conf := filepath.Join(c.initDir(), "postgresql.conf")
	b, err := readRegular(conf)
	if err != nil {
		return fmt.Errorf("configure cluster: %w", err)
	}
	name := "pglink"
	if n := len(c.id.Names); n > 0 {
		name = clusterName(c.id.Names[n-1])
	}
	b = fmt.Appendf(b, `
# pglink: the server listens only on a unix socket in a private directory; the pglink gateway
# is the only way in. pglink passes listen_addresses, port and the socket directory on the
# command line as well, so changing them here or with ALTER SYSTEM has no effect.
listen_addresses = ''
port = %s
unix_socket_directories = %s
unix_socket_permissions = 0700
password_encryption = 'scram-sha-256'
cluster_name = %s
`, port, quoteLiteral(c.socket()), quoteLiteral(name))
	if err := writeFile(conf, b, 0o600, owner); err != nil {
		return err
	}
	hba := "# pglink: unix socket connections only, always with a password. There is no TCP listener.\n" +
		"# TYPE  DATABASE  USER  METHOD\n" +
		"local   all       all   scram-sha-256\n"
	return writeFile(filepath.Join(c.initDir(), "pg_hba.conf"), []byte(hba), 0o600, owner)
}

// start starts c's postmaster unless it runs. A pid file left by a postmaster that died is
// removed first; the start is then retried for a while, since the dead postmaster's children
// may take a moment to exit.
func (l *Local) start(ctx context.Context, c cluster) error {
	v, err := c.version()
	if err != nil {
		return err
	}
	inst, ok := l.installs[v]
	if !ok {
		return fmt.Errorf("cluster %s needs PostgreSQL %s, which is not installed (installed: %s)", c.dir, v, strings.Join(l.Versions(), ", "))
	}
	pm := readPostmaster(c.data())
	if pm.alive {
		return nil
	}
	owner, err := l.adopt(ctx, c)
	if err != nil {
		return err
	}
	// Before the stale files below are removed from it: the socket directory is a directory.
	if err := mkdir(c.socket(), owner); err != nil {
		return err
	}
	crashed := pm.pidFile
	if crashed {
		l.log.Warn("removing the pid file of a postmaster that is gone", "server", c.id.String(), "pid", pm.pid)
		for _, p := range []string{
			filepath.Join(c.data(), "postmaster.pid"),
			filepath.Join(c.socket(), ".s.PGSQL."+port+".lock"),
			filepath.Join(c.socket(), ".s.PGSQL."+port),
		} {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("remove stale %s: %w", p, err)
			}
		}
	}
	if fi, err := os.Stat(c.logFile()); err == nil && fi.Size() > maxLog {
		if err := os.Rename(c.logFile(), c.logFile()+".1"); err != nil {
			return fmt.Errorf("rotate postgres.log: %w", err)
		}
	}
	// Options pg_ctl passes to postgres through /bin/sh; NewLocal rejects quotes in Dir.
	opts := fmt.Sprintf("-c listen_addresses= -p %s -k '%s'", port, c.socket())
	began := time.Now()
	for attempt := 1; ; attempt++ {
		_, err = l.run(ctx, c, filepath.Join(inst.bin, "pg_ctl"), "start", "--wait", "--timeout="+timeout,
			"--pgdata="+c.data(), "--log="+c.logFile(), "--options="+opts)
		if err == nil {
			break
		}
		if readPostmaster(c.data()).alive {
			err = nil
			break
		}
		if !crashed || attempt == 10 || ctx.Err() != nil {
			return fmt.Errorf("start postgres: %w\npostgres.log:\n%s", err, tail(c.logFile(), 20))
		}
		select {
		case <-ctx.Done():
		case <-time.After(300 * time.Millisecond):
		}
	}
	l.log.Info("server started", "server", c.id.String(), "took", time.Since(began))
	if err := l.demoteAdmins(ctx, c); err != nil {
		// The cluster's OS user of its own still keeps the administrator to its own cluster.
		l.log.Warn("cannot demote a superuser administrator", "server", c.id.String(), "err", err)
	}
	return nil
}

// stop stops c's postmaster if it runs: a fast shutdown, then an immediate one if that fails.
func (l *Local) stop(ctx context.Context, c cluster) error {
	if !readPostmaster(c.data()).alive {
		return nil
	}
	v, err := c.version()
	if err != nil {
		return err
	}
	inst, ok := l.installs[v]
	if !ok {
		return fmt.Errorf("cluster %s needs PostgreSQL %s, which is not installed (installed: %s)", c.dir, v, strings.Join(l.Versions(), ", "))
	}
	began := time.Now()
	pgctl := filepath.Join(inst.bin, "pg_ctl")
	_, err = l.run(ctx, c, pgctl, "stop", "--wait", "--timeout="+timeout, "--mode=fast", "--pgdata="+c.data())
	if err != nil && readPostmaster(c.data()).alive {
		l.log.Warn("fast shutdown failed; shutting down immediately", "server", c.id.String(), "err", err)
		if _, err := l.run(ctx, c, pgctl, "stop", "--wait", "--timeout="+timeout, "--mode=immediate", "--pgdata="+c.data()); err != nil && readPostmaster(c.data()).alive {
			return fmt.Errorf("stop postgres: %w", err)
		}
	}
	l.log.Info("server stopped", "server", c.id.String(), "took", time.Since(began))
	return nil
}

// adminRoles are the predefined roles the administrator is granted where they exist (they came
// with PostgreSQL 14, pg_monitor with 10): Azure's azure_pg_admin. pg_execute_server_program,
// pg_read_server_files and pg_write_server_files are not among them.
var adminRoles = []string{"pg_read_all_data", "pg_write_all_data", "pg_monitor", "pg_signal_backend"}

// setAdmin creates or updates the administrator role login, with the password whose SCRAM
// verifier is verifier: a login that may create databases and roles and read and write all
// data, not a superuser. It may create objects in the database postgres, as in a new database.
func (l *Local) setAdmin(ctx context.Context, c cluster, login, verifier string) error {
	conn, err := l.connect(ctx, c)
	if err != nil {
		return err
	}
	defer closeConn(conn)
	var exists bool
	if err := conn.QueryRow(ctx, "select exists (select from pg_roles where rolname = $1)", login).Scan(&exists); err != nil {
		return fmt.Errorf("look up role %s: %w", login, err)
	}
	verb := "create"
	if exists {
		verb = "alter"
	}
	role := pgx.Identifier{login}.Sanitize()
	if _, err := conn.Exec(ctx, verb+" role "+role+" with login "+adminAttributes+" password "+quoteLiteral(verifier)); err != nil {
		return fmt.Errorf("%s role %s: %w", verb, login, err)
	}
	return grantAdmin(ctx, conn, login)
}

// adminAttributes are the role attributes of a server's administrator.
const adminAttributes = "nosuperuser createdb createrole replication nobypassrls"

// grantAdmin grants role login what a server's administrator has besides its attributes.
func grantAdmin(ctx context.Context, conn *pgx.Conn, login string) error {
	role := pgx.Identifier{login}.Sanitize()
	rows, err := conn.Query(ctx, "select rolname from pg_roles where rolname = any($1) order by rolname", adminRoles)
	if err != nil {
		return fmt.Errorf("look up predefined roles: %w", err)
	}
	grants, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("look up predefined roles: %w", err)
	}
	if len(grants) > 0 {
		if _, err := conn.Exec(ctx, "grant "+strings.Join(grants, ", ")+" to "+role); err != nil {
			return fmt.Errorf("grant to %s: %w", login, err)
		}
	}
	var db string
	if err := conn.QueryRow(ctx, "select current_database()").Scan(&db); err != nil {
		return fmt.Errorf("current database: %w", err)
	}
	if db != "postgres" {
		return nil
	}
	if _, err := conn.Exec(ctx, "grant all on database postgres to "+role+" with grant option"); err != nil {
		return fmt.Errorf("grant to %s: %w", login, err)
	}
	_, err = conn.Exec(ctx, "grant all on schema public to "+role+" with grant option")
	var pgErr *pgconn.PgError
	if err != nil && !(errors.As(err, &pgErr) && pgErr.Code == "3F000") { // invalid_schema_name: public was dropped
		return fmt.Errorf("grant to %s: %w", login, err)
	}
	return nil
}

// demoteAdmins makes every superuser of c's running cluster but pglink's own an administrator
// as setAdmin makes it: older versions made the administrator a superuser.
func (l *Local) demoteAdmins(ctx context.Context, c cluster) error {
	conn, err := l.connect(ctx, c)
	if err != nil {
		return err
	}
	defer closeConn(conn)
	rows, err := conn.Query(ctx, "select rolname from pg_roles where rolsuper and rolname <> $1", superuser)
	if err != nil {
		return fmt.Errorf("look up superusers: %w", err)
	}
	supers, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("look up superusers: %w", err)
	}
	for _, login := range supers {
		if _, err := conn.Exec(ctx, "alter role "+pgx.Identifier{login}.Sanitize()+" with "+adminAttributes); err != nil {
			return fmt.Errorf("demote %s: %w", login, err)
		}
		if err := grantAdmin(ctx, conn, login); err != nil {
			return err
		}
		l.log.Warn("the server administrator was a superuser: no longer", "server", c.id.String(), "role", login)
	}
	return nil
}

// connect connects to c's cluster as the bootstrap superuser over the unix socket.
func (l *Local) connect(ctx context.Context, c cluster) (*pgx.Conn, error) {
	pw, err := os.ReadFile(c.secret)
	if errors.Is(err, fs.ErrNotExist) {
		pw, err = l.moveSecret(c)
	}
	if err != nil {
		return nil, fmt.Errorf("read superuser password: %w", err)
	}
	var conn *pgx.Conn
	for _, db := range []string{"postgres", "template1"} {
		cfg, err := pgx.ParseConfig("host=" + quoteDSN(c.socket()) + " port=" + port + " user=" + superuser +
			" dbname=" + db + " sslmode=disable connect_timeout=10 application_name=pglink")
		if err != nil {
			return nil, fmt.Errorf("connect to postgres: %w", err)
		}
		cfg.Password = strings.TrimSpace(string(pw))
		conn, err = pgx.ConnectConfig(ctx, cfg)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "3D000" { // invalid_catalog_name: postgres was dropped
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("connect to postgres as %s: %w", superuser, err)
		}
		return conn, nil
	}
	return nil, fmt.Errorf("connect to postgres as %s: neither database postgres nor template1 exists", superuser)
}

func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn.Close(ctx)
}

// run runs the PostgreSQL program name in dir c.dir, as the OS user PostgreSQL runs as and in a
// session of its own (signals to pglink's process group do not reach it, nor the postmaster
// pg_ctl starts). It returns the program's output; the error includes it.
func (l *Local) run(ctx context.Context, c cluster, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = c.dir
	cmd.Env = []string{"PATH=" + filepath.Dir(name) + ":/usr/bin:/bin", "LC_ALL=C"}
	if tz, ok := os.LookupEnv("TZ"); ok {
		cmd.Env = append(cmd.Env, "TZ="+tz)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if l.root {
		// PostgreSQL runs as the owner of its cluster's directory.
		fi, err := os.Stat(c.dir)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", filepath.Base(name), args[0], err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid == 0 {
			return nil, fmt.Errorf("%s %s: cluster directory %s belongs to root", filepath.Base(name), args[0], c.dir)
		}
		u := lookupUID(st.Uid, st.Gid)
		cmd.SysProcAttr.Credential = u.credential()
		cmd.Env = append(cmd.Env, "USER="+u.name, "LOGNAME="+u.name, "HOME="+u.home)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// The postmaster pg_ctl starts writes to postgres.log, not to our pipe; should anything
	// inherit the pipe anyway, do not wait for it.
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if err != nil {
		return out.Bytes(), fmt.Errorf("%s %s: %w: %s", filepath.Base(name), args[0], err, strings.TrimSpace(out.String()))
	}
	return out.Bytes(), nil
}

// discard removes what an unfinished initCluster made: c's directory, its superuser's password
// and its OS user. It logs what it cannot remove; Delete removes it later.
func (l *Local) discard(ctx context.Context, c cluster) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := os.RemoveAll(c.dir); err != nil {
		l.log.Warn("cannot remove an unfinished cluster", "server", c.id.String(), "err", err)
	}
	if err := os.Remove(c.secret); err != nil && !errors.Is(err, fs.ErrNotExist) {
		l.log.Warn("cannot remove an unfinished cluster's superuser password", "server", c.id.String(), "err", err)
	}
	if l.root {
		if err := removeUser(ctx, c.user); err != nil {
			l.log.Warn("cannot remove an unfinished cluster's OS user", "server", c.id.String(), "user", c.user, "err", err)
		}
	}
}

// adopt makes c's cluster, which does not run, belong to its own OS user (when pglink runs as
// root) and returns that user: a cluster created by an older pglink ran as the OS user postgres
// and kept its superuser's password inside. It returns nil when pglink does not run as root.
func (l *Local) adopt(ctx context.Context, c cluster) (*osUser, error) {
	if _, err := os.Stat(c.secret); errors.Is(err, fs.ErrNotExist) {
		if _, err := l.moveSecret(c); err != nil {
			return nil, err
		}
	}
	os.Remove(c.pwfile()) // left by a crash during initdb
	for _, p := range []string{c.meta(), c.logFile(), c.logFile() + ".1"} {
		if err := chmodRegular(p, 0o600); err != nil { // older versions: 0644
			return nil, fmt.Errorf("cluster file permissions: %w", err)
		}
	}
	if !l.root {
		return nil, nil
	}
	owner, err := ensureUser(ctx, c.user)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(c.dir)
	if err != nil {
		return nil, fmt.Errorf("cluster directory: %w", err)
	}
	if fi.Sys().(*syscall.Stat_t).Uid != owner.uid {
		l.log.Warn("giving the cluster an OS user of its own", "server", c.id.String(), "user", owner.name)
		if err := owner.chownAll(c.dir); err != nil {
			return nil, err
		}
	}
	return owner, nil
}

// moveSecret moves the superuser's password an older pglink kept inside c's directory to
// c.secret, and returns it.
func (l *Local) moveSecret(c cluster) ([]byte, error) {
	pw, err := readRegular(c.password())
	if err != nil {
		return nil, fmt.Errorf("read superuser password: %w", err)
	}
	if err := writeFile(c.secret, pw, 0o600, nil); err != nil {
		return nil, err
	}
	if err := os.Remove(c.password()); err != nil {
		return nil, fmt.Errorf("remove old superuser password: %w", err)
	}
	l.log.Info("moved the superuser password out of the cluster", "server", c.id.String())
	return pw, nil
}

// mkdir creates directory path, mode 0700, owned by owner (nil: pglink's user). Whatever else
// is at path (a symlink, say) is replaced.
func mkdir(path string, owner *osUser) error {
	for attempt := 0; ; attempt++ {
		if err := os.Mkdir(path, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create directory: %w", err)
		}
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if (errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR)) && attempt == 0 {
			if err := os.Remove(path); err != nil {
				return fmt.Errorf("create directory: %w", err)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("create directory %s: %w", path, err)
		}
		defer unix.Close(fd)
		if err := unix.Fchmod(fd, 0o700); err != nil {
			return fmt.Errorf("create directory %s: %w", path, err)
		}
		if owner != nil {
			if err := unix.Fchown(fd, int(owner.uid), int(owner.gid)); err != nil {
				return fmt.Errorf("chown %s to %s: %w", path, owner.name, err)
			}
		}
		return nil
	}
}

// writeFile replaces the file at path with data, atomically, owned by owner (nil: pglink's
// user).
func writeFile(path string, data []byte, perm os.FileMode, owner *osUser) error {
	tmp := path + ".tmp"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("write %s: %w", path, err)
	}
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, perm)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil && owner != nil {
		err = f.Chown(int(owner.uid), int(owner.gid))
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// checkLogin refuses role names the engine cannot give a server's administrator.
func checkLogin(login string) error {
	switch {
	case login == "":
		return resource.InvalidParameter("administratorLogin", "The administrator login must not be empty.")
	case strings.EqualFold(login, superuser):
		return resource.InvalidParameter("administratorLogin", "The administrator login '%s' is reserved. Choose another login.", login)
	case strings.HasPrefix(strings.ToLower(login), "pg_"):
		return resource.InvalidParameter("administratorLogin", "The administrator login '%s' is reserved: role names starting with 'pg_' belong to PostgreSQL. Choose another login.", login)
	case strings.ContainsRune(login, 0):
		return resource.InvalidParameter("administratorLogin", "The administrator login must not contain NUL characters.")
	}
	return nil
}

// clusterName makes name fit for cluster_name, which PostgreSQL shows in process titles.
func clusterName(name string) string {
	b := []byte(name)
	for i, ch := range b {
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '_' || ch == '.') {
			b[i] = '_'
		}
	}
	if len(b) > 63 {
		b = b[:63]
	}
	return string(b)
}

// quoteDSN quotes a value for a keyword/value connection string.
func quoteDSN(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}
