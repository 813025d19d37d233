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
// directory (Socket): the gateway is the only way in. When pglink runs as root, PostgreSQL runs
// as the unprivileged OS user postgres.
//
// All state is on disk, so a new Local over the same Dir (pglink restarted) finds the clusters
// of the old one, running or not; clusters keep running when pglink exits. The server
// administrator is a PostgreSQL superuser, and every cluster runs as the same OS user: a
// server's administrator can reach what that OS user can, the other clusters included.
//
// Every method is idempotent and safe for concurrent use; calls on one server are serialized.
type Local struct {
	dir      string
	installs map[string]install // by major version; read-only after NewLocal
	runAs    *osUser            // nil: PostgreSQL runs as the current user
	log      *slog.Logger

	mu    sync.Mutex
	locks map[string]chan struct{} // guarded by mu; by cluster directory, never removed
}

// NewLocal returns a Local engine over cfg.Dir, with the PostgreSQL versions installed on this
// host. It fails if none is installed (ErrNoPostgres), if the unix socket paths below Dir would
// be too long, or, when pglink runs as root, if the OS user postgres is missing or cannot reach
// Dir.
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
	l := &Local{dir: dir, installs: installs, log: log, locks: map[string]chan struct{}{}}
	if os.Geteuid() == 0 {
		if l.runAs, err = lookupUser("postgres"); err != nil {
			return nil, err
		}
	}
	if err := prepareDir(dir, l.runAs); err != nil {
		return nil, err
	}
	runAs := "current user"
	if l.runAs != nil {
		runAs = l.runAs.name
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
func (l *Local) Running(id resource.ID) bool { return readPostmaster(l.cluster(id).data()).alive }

// Create creates server s: a new cluster, started, with the administrator role s.AdminLogin, a
// superuser whose password is s.AdminPassword. If the cluster exists, Create only makes sure
// it runs and the administrator role exists with that password. It returns an Invalid
// *resource.Error if s.Version is not installed.
func (l *Local) Create(ctx context.Context, s Spec) error {
	inst, ok := l.installs[s.Version]
	if !ok {
		return resource.Errorf(resource.Invalid, "InvalidParameterValue",
			"PostgreSQL version %s is not installed on this host; installed versions: %s.", s.Version, strings.Join(l.Versions(), ", "))
	}
	if err := checkLogin(s.AdminLogin); err != nil {
		return err
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
	if err := l.setAdmin(ctx, c, s.AdminLogin, s.AdminPassword); err != nil {
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

// Delete stops server id's PostgreSQL and removes its cluster. A missing cluster is not an
// error.
func (l *Local) Delete(ctx context.Context, id resource.ID) error {
	return l.locked(ctx, id, "delete", func(ctx context.Context, c cluster) error {
		if _, err := os.Stat(c.dir); errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err := l.stop(ctx, c); err != nil {
			return err
		}
		if err := os.RemoveAll(c.dir); err != nil {
			return fmt.Errorf("remove cluster: %w", err)
		}
		l.log.Info("server deleted", "server", id.String(), "dir", c.dir)
		return nil
	})
}

// SetPassword sets the password of role login on server id, which must run (else
// ErrNotRunning).
func (l *Local) SetPassword(ctx context.Context, id resource.ID, login, password string) error {
	if err := checkLogin(login); err != nil {
		return err
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
		lit, err := passwordLiteral(password)
		if err != nil {
			return err
		}
		if _, err := conn.Exec(ctx, "alter role "+pgx.Identifier{login}.Sanitize()+" with password "+lit); err != nil {
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
	id  resource.ID
	dir string
}

// cluster returns the cluster of server id: <Dir>/<first 16 hex digits of sha256(id.Key())>,
// short so that the socket path fits.
func (l *Local) cluster(id resource.ID) cluster {
	sum := sha256.Sum256([]byte(id.Key()))
	return cluster{id: id, dir: filepath.Join(l.dir, hex.EncodeToString(sum[:])[:16])}
}

func (c cluster) data() string     { return filepath.Join(c.dir, "data") }
func (c cluster) initDir() string  { return filepath.Join(c.dir, "init") } // initdb's work in progress
func (c cluster) socket() string   { return filepath.Join(c.dir, "socket") }
func (c cluster) logFile() string  { return filepath.Join(c.dir, "postgres.log") }
func (c cluster) password() string { return filepath.Join(c.dir, "pglink.password") }
func (c cluster) meta() string     { return filepath.Join(c.dir, "server.json") }

// version returns the major version of c's initialized cluster, or an error wrapping
// ErrNoCluster.
func (c cluster) version() (string, error) {
	b, err := os.ReadFile(filepath.Join(c.data(), "PG_VERSION"))
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
	if err := l.mkdir(c.dir); err != nil {
		return false, err
	}
	meta, _ := json.MarshalIndent(map[string]string{"id": s.ID.String(), "version": s.Version}, "", "  ")
	if err := l.writeFile(c.meta(), append(meta, '\n'), 0o644); err != nil {
		return false, err
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return false, fmt.Errorf("superuser password: %w", err)
	}
	if err := l.writeFile(c.password(), []byte(hex.EncodeToString(secret)+"\n"), 0o600); err != nil {
		return false, err
	}
	if err := os.RemoveAll(c.initDir()); err != nil {
		return false, fmt.Errorf("remove unfinished cluster: %w", err)
	}
	began := time.Now()
	if _, err := l.run(ctx, c, filepath.Join(inst.bin, "initdb"),
		"--pgdata="+c.initDir(), "--username="+superuser, "--pwfile="+c.password(),
		"--auth=scram-sha-256", "--encoding=UTF8", "--locale=C"); err != nil {
		return false, err
	}
	l.log.Debug("initdb done", "server", s.ID.String(), "took", time.Since(began))
	if err := l.configure(c); err != nil {
		return false, err
	}
	if err := os.Rename(c.initDir(), c.data()); err != nil {
		return false, fmt.Errorf("finish cluster: %w", err)
	}
	return true, nil
}

// configure writes the settings that keep the new cluster in c.initDir() off the network:
// a unix socket in a private directory only, and passwords for every connection.
func (l *Local) configure(c cluster) error {
	conf := filepath.Join(c.initDir(), "postgresql.conf")
	b, err := os.ReadFile(conf)
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
	if err := l.writeFile(conf, b, 0o600); err != nil {
		return err
	}
	hba := "# pglink: unix socket connections only, always with a password. There is no TCP listener.\n" +
		"# TYPE  DATABASE  USER  METHOD\n" +
		"local   all       all   scram-sha-256\n"
	return l.writeFile(filepath.Join(c.initDir(), "pg_hba.conf"), []byte(hba), 0o600)
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
	if err := l.mkdir(c.socket()); err != nil {
		return err
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

// setAdmin creates or updates the superuser role login with password.
func (l *Local) setAdmin(ctx context.Context, c cluster, login, password string) error {
	lit, err := passwordLiteral(password)
	if err != nil {
		return err
	}
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
	if _, err := conn.Exec(ctx, verb+" role "+pgx.Identifier{login}.Sanitize()+" with login superuser password "+lit); err != nil {
		return fmt.Errorf("%s role %s: %w", verb, login, err)
	}
	return nil
}

// connect connects to c's cluster as the bootstrap superuser over the unix socket.
func (l *Local) connect(ctx context.Context, c cluster) (*pgx.Conn, error) {
	pw, err := os.ReadFile(c.password())
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
	if l.runAs != nil {
		cmd.SysProcAttr.Credential = l.runAs.credential()
		cmd.Env = append(cmd.Env, "USER="+l.runAs.name, "LOGNAME="+l.runAs.name, "HOME="+l.runAs.home)
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

// mkdir creates directory path, mode 0700, owned by the OS user PostgreSQL runs as.
func (l *Local) mkdir(path string) error {
	if err := os.Mkdir(path, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create directory: %w", err)
	}
	if err := os.Chmod(path, 0o700); err != nil {
		return fmt.Errorf("create directory: %w", err)
	}
	return l.runAs.chown(path)
}

// writeFile replaces the file at path with data, atomically, owned by the OS user PostgreSQL
// runs as.
func (l *Local) writeFile(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = l.runAs.chown(tmp)
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
