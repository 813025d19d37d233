package engine

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/sys/unix"

	"github.com/pglink/pglink/internal/resource"
)

// testMajor and testBin are the newest PostgreSQL installed on this host, found as the engine
// finds it; testBinErr says why there is none.
var testMajor, testBin, testBinErr = NewestInstalled()

// requirePostgres ends a test that needs PostgreSQL when the host has none: a skip on a
// developer machine, a failure under CI=true, where every part must be present.
func requirePostgres(t *testing.T) {
	t.Helper()
	if testBinErr == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("PostgreSQL is not installed, and CI=true requires it: %v", testBinErr)
	}
	t.Skipf("PostgreSQL is not installed (CI=true would fail here): %v", testBinErr)
}

// newTestBase returns a fresh directory that the OS user postgres can traverse (t.TempDir is
// mode 0700), removed after the test, after every postmaster below it is gone.
func newTestBase(t *testing.T) string {
	t.Helper()
	requirePostgres(t)
	base, err := os.MkdirTemp("", "pglink-engine-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		killAll(t, base)
		removeUsers(t, base)
		os.RemoveAll(base)
	})
	return base
}

// removeUsers removes the OS users of the clusters a test left below base.
func removeUsers(t *testing.T, base string) {
	t.Helper()
	dirs, _ := filepath.Glob(filepath.Join(base, "*", "*", "data"))
	for _, d := range dirs {
		fi, err := os.Stat(filepath.Dir(d))
		if err != nil {
			continue
		}
		u, err := user.LookupId(strconv.FormatUint(uint64(fi.Sys().(*syscall.Stat_t).Uid), 10))
		if err != nil || !strings.HasPrefix(u.Username, userPrefix) {
			continue
		}
		if err := removeUser(context.Background(), u.Username); err != nil {
			t.Errorf("remove OS user %s: %v", u.Username, err)
		}
	}
}

// killAll shuts down (SIGQUIT: immediate) any postmaster a test left running below base.
func killAll(t *testing.T, base string) {
	t.Helper()
	pids, _ := filepath.Glob(filepath.Join(base, "*", "*", "data", "postmaster.pid"))
	for _, p := range pids {
		pm := readPostmaster(filepath.Dir(p))
		if !pm.alive {
			continue
		}
		t.Logf("postmaster %d left running in %s: shutting it down", pm.pid, filepath.Dir(p))
		syscall.Kill(pm.pid, syscall.SIGQUIT)
		waitFor(t, 10*time.Second, func() bool { return !readPostmaster(filepath.Dir(p)).alive })
	}
}

func newTestLocal(t *testing.T, dir string) *Local {
	t.Helper()
	l, err := NewLocal(LocalConfig{Dir: dir, PGBin: testBin, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatalf("NewLocal: %v", err)
	}
	return l
}

func testID(name string) resource.ID {
	return resource.MustParse("/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.DBforPostgreSQL/flexibleServers/" + name)
}

// testPassword is the administrator password of testSpec(name).
func testPassword(name string) string { return "Secret-" + name + "-1" }

func testSpec(name string) Spec {
	return Spec{ID: testID(name), Version: testMajor, AdminLogin: "azureuser", AdminVerifier: mustVerifier(testPassword(name))}
}

func mustVerifier(password string) string {
	v, err := Verifier(password)
	if err != nil {
		panic(err)
	}
	return v
}

// adminPassword is the administrator password of s, made by testSpec.
func adminPassword(s Spec) string { return testPassword(s.ID.Names[0]) }

// create creates s on l and stops it when the test ends.
func create(t *testing.T, l *Local, s Spec) {
	t.Helper()
	began := time.Now()
	if err := l.Create(t.Context(), s); err != nil {
		t.Fatalf("Create(%s): %v", s.ID.Names[0], err)
	}
	t.Logf("create %s took %v", s.ID.Names[0], time.Since(began))
	t.Cleanup(func() {
		if err := l.Stop(context.Background(), s.ID); err != nil {
			t.Errorf("Stop in cleanup: %v", err)
		}
	})
}

// dial connects to server id as user over its unix socket.
func dial(ctx context.Context, l *Local, id resource.ID, user, password string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig("host=" + quoteDSN(l.Socket(id)) + " port=5432 dbname=postgres sslmode=disable connect_timeout=5")
	if err != nil {
		return nil, err
	}
	cfg.User, cfg.Password = user, password
	return pgx.ConnectConfig(ctx, cfg)
}

// mustDial connects as s's administrator and closes the connection when the test ends.
func mustDial(t *testing.T, l *Local, id resource.ID, user, password string) *pgx.Conn {
	t.Helper()
	conn, err := dial(t.Context(), l, id, user, password)
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %v", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestVersions(t *testing.T) {
	t.Parallel()
	l := newTestLocal(t, filepath.Join(newTestBase(t), "servers"))
	if got, want := l.Versions(), []string{testMajor}; !slices.Equal(got, want) {
		t.Errorf("Versions() = %v; want %v", got, want)
	}
	_, wantMinor, err := binaryVersion(filepath.Join(testBin, "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	if got := l.MinorVersion(testMajor); got != wantMinor || !regexp.MustCompile(`^\d+$`).MatchString(got) {
		t.Errorf("MinorVersion(15) = %q; want %q", got, wantMinor)
	}
	if got := l.MinorVersion("16"); got != "" {
		t.Errorf("MinorVersion(16) = %q; want \"\"", got)
	}
}

func TestCreateConnect(t *testing.T) {
	t.Parallel()
	l := newTestLocal(t, filepath.Join(newTestBase(t), "servers"))
	s := testSpec("create")
	create(t, l, s)
	if !l.Running(s.ID) {
		t.Errorf("Running after Create = false; want true")
	}
	conn := mustDial(t, l, s.ID, s.AdminLogin, adminPassword(s))
	var one int
	if err := conn.QueryRow(t.Context(), "select 1").Scan(&one); err != nil || one != 1 {
		t.Errorf("select 1 = %d, %v; want 1", one, err)
	}
	var super bool
	var db, encoding string
	if err := conn.QueryRow(t.Context(), "select rolsuper, current_database(), pg_encoding_to_char(encoding) from pg_roles, pg_database where rolname = current_user and datname = current_database()").Scan(&super, &db, &encoding); err != nil {
		t.Fatal(err)
	}
	if super || db != "postgres" || encoding != "UTF8" {
		t.Errorf("admin superuser, database, encoding = %v, %q, %q; want false, postgres, UTF8", super, db, encoding)
	}

	_, err := dial(t.Context(), l, s.ID, s.AdminLogin, "wrong")
	if got := sqlState(err); got != "28P01" {
		t.Errorf("connect with a wrong password: %v (SQLSTATE %q); want SQLSTATE 28P01", err, got)
	}
	_, err = dial(t.Context(), l, s.ID, "nobody", adminPassword(s))
	if got := sqlState(err); got != "28P01" {
		t.Errorf("connect as an unknown role: %v (SQLSTATE %q); want SQLSTATE 28P01", err, got)
	}

	c := l.cluster(s.ID)
	for path, want := range map[string]os.FileMode{c.dir: 0o700, c.socket(): 0o700, c.secret: 0o600, c.data(): 0o700, c.meta(): 0o600, l.secrets(): 0o700} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != want {
			t.Errorf("mode of %s = %v, %v; want %v", path, fi.Mode().Perm(), err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(l.Socket(s.ID), ".s.PGSQL.5432")); err != nil {
		t.Errorf("socket: %v", err)
	}
	if got, want := filepath.Base(c.dir), regexp.MustCompile(`^[0-9a-f]{16}$`); !want.MatchString(got) {
		t.Errorf("cluster directory %s; want 16 hex digits", got)
	}
	meta, err := os.ReadFile(c.meta())
	if err != nil || !strings.Contains(string(meta), s.ID.String()) {
		t.Errorf("server.json = %s, %v; want it to name %s", meta, err, s.ID)
	}

	pm := readPostmaster(c.data())
	fi, err := os.Stat(fmt.Sprintf("/proc/%d", pm.pid))
	if err != nil {
		t.Fatal(err)
	}
	uid := fi.Sys().(*syscall.Stat_t).Uid
	if os.Geteuid() == 0 {
		u, err := user.Lookup(c.user)
		if err != nil {
			t.Fatal(err)
		}
		if want, _ := strconv.Atoi(u.Uid); int(uid) != want {
			t.Errorf("postmaster runs as uid %d; want %d (%s)", uid, want, c.user)
		}
		for _, p := range []string{c.dir, c.socket(), c.data()} {
			if fi, err := os.Stat(p); err != nil || fi.Sys().(*syscall.Stat_t).Uid != uid {
				t.Errorf("%s not owned by %s: %v", p, c.user, err)
			}
		}
		if fi, err := os.Stat(c.secret); err != nil || fi.Sys().(*syscall.Stat_t).Uid != 0 {
			t.Errorf("superuser password %s not owned by root: %v", c.secret, err)
		}
		if _, err := os.Stat(c.password()); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("superuser password in the cluster directory: %v; want none", err)
		}
		if !regexp.MustCompile(`^pglink-[0-9a-f]{12}$`).MatchString(c.user) {
			t.Errorf("OS user %q; want pglink-<12 hex digits>", c.user)
		}
	} else if int(uid) != os.Geteuid() {
		t.Errorf("postmaster runs as uid %d; want %d", uid, os.Geteuid())
	}
	if sid, err := unix.Getsid(pm.pid); err != nil || sid == unix.Getpgrp() {
		t.Errorf("postmaster session %d, %v; want a session of its own", sid, err)
	}
}

func TestNoTCP(t *testing.T) {
	t.Parallel()
	l := newTestLocal(t, filepath.Join(newTestBase(t), "servers"))
	s := testSpec("notcp")
	create(t, l, s)
	conn := mustDial(t, l, s.ID, s.AdminLogin, adminPassword(s))
	var listen string
	if err := conn.QueryRow(t.Context(), "show listen_addresses").Scan(&listen); err != nil || listen != "" {
		t.Errorf("listen_addresses = %q, %v; want \"\"", listen, err)
	}
	// The administrator may not ALTER SYSTEM; and even ALTER SYSTEM by a superuser does not
	// open a TCP port.
	if _, err := conn.Exec(t.Context(), "alter system set listen_addresses = '*'"); sqlState(err) != "42501" {
		t.Errorf("ALTER SYSTEM as the administrator: %v; want SQLSTATE 42501", err)
	}
	conn.Close(t.Context())
	su, err := l.connect(t.Context(), l.cluster(s.ID))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := su.Exec(t.Context(), "alter system set listen_addresses = '*'"); err != nil {
		t.Fatal(err)
	}
	closeConn(su)
	if err := l.Restart(t.Context(), s.ID); err != nil {
		t.Fatal(err)
	}
	conf, err := os.ReadFile(filepath.Join(l.cluster(s.ID).data(), "postgresql.conf"))
	if err != nil || !strings.Contains(string(conf), "\nlisten_addresses = ''\n") {
		t.Errorf("postgresql.conf lacks listen_addresses = '' (%v)", err)
	}
	hba, err := os.ReadFile(filepath.Join(l.cluster(s.ID).data(), "pg_hba.conf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(hba), "\n") {
		if f := strings.Fields(line); len(f) > 0 && !strings.HasPrefix(f[0], "#") && (f[0] != "local" || f[len(f)-1] != "scram-sha-256") {
			t.Errorf("pg_hba.conf line %q; want only local ... scram-sha-256", line)
		}
	}
	pm := readPostmaster(l.cluster(s.ID).data())
	if ports := tcpListeners(t, pm.pid); len(ports) > 0 {
		t.Errorf("postmaster %d listens on TCP sockets %v; want none", pm.pid, ports)
	}
	conn = mustDial(t, l, s.ID, s.AdminLogin, adminPassword(s))
	if err := conn.QueryRow(t.Context(), "show listen_addresses").Scan(&listen); err != nil || listen != "" {
		t.Errorf("listen_addresses after ALTER SYSTEM and restart = %q, %v; want \"\"", listen, err)
	}
}

// tcpListeners returns the inodes of the listening TCP sockets process pid holds.
func tcpListeners(t *testing.T, pid int) []string {
	t.Helper()
	listening := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		file, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(file)
		for sc.Scan() {
			// sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
			if f := strings.Fields(sc.Text()); len(f) > 9 && f[3] == "0A" {
				listening[f[9]] = true
			}
		}
		file.Close()
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, fd := range fds {
		link, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if inode, ok := strings.CutPrefix(link, "socket:["); ok && listening[strings.TrimSuffix(inode, "]")] {
			found = append(found, link)
		}
	}
	return found
}

func TestSetPassword(t *testing.T) {
	t.Parallel()
	l := newTestLocal(t, filepath.Join(newTestBase(t), "servers"))
	s := testSpec("password")
	create(t, l, s)
	old := adminPassword(s)
	for _, pw := range []string{`new'pass"word\1`, "pässwörd-ünïcode'\\x", "Пароль-Secret1", "plain-Again-2"} {
		if err := l.SetPassword(t.Context(), s.ID, s.AdminLogin, mustVerifier(pw)); err != nil {
			t.Fatalf("SetPassword(%q): %v", pw, err)
		}
		if _, err := dial(t.Context(), l, s.ID, s.AdminLogin, old); sqlState(err) != "28P01" {
			t.Errorf("connect with the old password %q after SetPassword: %v; want SQLSTATE 28P01", old, err)
		}
		conn := mustDial(t, l, s.ID, s.AdminLogin, pw)
		var method string
		if err := conn.QueryRow(t.Context(), "select split_part(rolpassword, '$', 1) from pg_authid where rolname = current_user").Scan(&method); err != nil || method != "SCRAM-SHA-256" {
			t.Errorf("stored password for %q is %q, %v; want a SCRAM-SHA-256 verifier", pw, method, err)
		}
		conn.Close(t.Context())
		old = pw
	}
	if err := l.SetPassword(t.Context(), s.ID, s.AdminLogin, "Clear-Password-1"); err == nil {
		t.Errorf("SetPassword with a password in clear succeeded; want an error")
	}
	if err := l.SetPassword(t.Context(), s.ID, "pglink", mustVerifier("x")); resource.KindOf(err) != resource.Invalid {
		t.Errorf("SetPassword of the bootstrap superuser = %v; want an Invalid error", err)
	}
	if err := l.SetPassword(t.Context(), testID("nosuch"), s.AdminLogin, mustVerifier("x")); !errors.Is(err, ErrNoCluster) {
		t.Errorf("SetPassword on a missing server = %v; want ErrNoCluster", err)
	}
	if err := l.Stop(t.Context(), s.ID); err != nil {
		t.Fatal(err)
	}
	if err := l.SetPassword(t.Context(), s.ID, s.AdminLogin, mustVerifier("x")); !errors.Is(err, ErrNotRunning) {
		t.Errorf("SetPassword on a stopped server = %v; want ErrNotRunning", err)
	}
}

func TestStopStart(t *testing.T) {
	t.Parallel()
	l := newTestLocal(t, filepath.Join(newTestBase(t), "servers"))
	s := testSpec("stopstart")
	create(t, l, s)
	conn := mustDial(t, l, s.ID, s.AdminLogin, adminPassword(s))
	if _, err := conn.Exec(t.Context(), "create table kept (v text); insert into kept values ('before stop')"); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if err := l.Stop(t.Context(), s.ID); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	t.Logf("stop took %v", time.Since(began))
	if l.Running(s.ID) {
		t.Errorf("Running after Stop = true; want false")
	}
	if err := conn.Ping(t.Context()); err == nil {
		t.Errorf("a session survived Stop")
	}
	if _, err := dial(t.Context(), l, s.ID, s.AdminLogin, adminPassword(s)); err == nil {
		t.Errorf("connect after Stop succeeded; want an error")
	}
	if err := l.Stop(t.Context(), s.ID); err != nil {
		t.Errorf("Stop of a stopped server: %v", err)
	}
	began = time.Now()
	if err := l.Start(t.Context(), s.ID); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Logf("start took %v", time.Since(began))
	if err := l.Start(t.Context(), s.ID); err != nil {
		t.Errorf("Start of a running server: %v", err)
	}
	conn = mustDial(t, l, s.ID, s.AdminLogin, adminPassword(s))
	var v string
	if err := conn.QueryRow(t.Context(), "select v from kept").Scan(&v); err != nil || v != "before stop" {
		t.Errorf("select after Start = %q, %v; want \"before stop\"", v, err)
	}
	if err := l.Start(t.Context(), testID("nosuch")); !errors.Is(err, ErrNoCluster) {
		t.Errorf("Start of a missing server = %v; want ErrNoCluster", err)
	}
}

func TestRestart(t *testing.T) {
	t.Parallel()
	l := newTestLocal(t, filepath.Join(newTestBase(t), "servers"))
	s := testSpec("restart")
	create(t, l, s)
	before := readPostmaster(l.cluster(s.ID).data()).pid
	began := time.Now()
	if err := l.Restart(t.Context(), s.ID); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	t.Logf("restart took %v", time.Since(began))
	if after := readPostmaster(l.cluster(s.ID).data()).pid; after == before {
		t.Errorf("postmaster pid after Restart = %d; want a new one", after)
	}
	mustDial(t, l, s.ID, s.AdminLogin, adminPassword(s))
	if err := l.Stop(t.Context(), s.ID); err != nil {
		t.Fatal(err)
	}
	if err := l.Restart(t.Context(), s.ID); err != nil {
		t.Fatalf("Restart of a stopped server: %v", err)
	}
	if !l.Running(s.ID) {
		t.Errorf("Running after Restart = false")
	}
}

func TestCreateIdempotent(t *testing.T) {
	t.Parallel()
	l := newTestLocal(t, filepath.Join(newTestBase(t), "servers"))
	s := testSpec("twice")
	create(t, l, s)
	pid := readPostmaster(l.cluster(s.ID).data()).pid
	conn := mustDial(t, l, s.ID, s.AdminLogin, adminPassword(s))
	if _, err := conn.Exec(t.Context(), "create table kept (v int)"); err != nil {
		t.Fatal(err)
	}
	if err := l.Create(t.Context(), s); err != nil {
		t.Fatalf("second Create: %v", err)
	}
	if got := readPostmaster(l.cluster(s.ID).data()).pid; got != pid {
		t.Errorf("postmaster pid after a second Create = %d; want %d (untouched)", got, pid)
	}
	if err := conn.QueryRow(t.Context(), "select count(*) from kept").Scan(new(int)); err != nil {
		t.Errorf("table after a second Create: %v", err)
	}
	// A resumed Create on a stopped cluster starts it.
	if err := l.Stop(t.Context(), s.ID); err != nil {
		t.Fatal(err)
	}
	if err := l.Create(t.Context(), s); err != nil {
		t.Fatalf("Create of a stopped server: %v", err)
	}
	mustDial(t, l, s.ID, s.AdminLogin, adminPassword(s))
	// A Create cut short after initdb (the work directory left behind) starts over.
	s2 := testSpec("resumed")
	c := l.cluster(s2.ID)
	if err := mkdir(c.dir, nil); err != nil {
		t.Fatal(err)
	}
	if err := mkdir(c.initDir(), nil); err != nil {
		t.Fatal(err)
	}
	create(t, l, s2)
	mustDial(t, l, s2.ID, s2.AdminLogin, adminPassword(s2))
}

func TestEnsureAfterKill(t *testing.T) {
	t.Parallel()
	l := newTestLocal(t, filepath.Join(newTestBase(t), "servers"))
	s := testSpec("killed")
	create(t, l, s)
	conn := mustDial(t, l, s.ID, s.AdminLogin, adminPassword(s))
	if _, err := conn.Exec(t.Context(), "create table kept (v text); insert into kept values ('committed')"); err != nil {
		t.Fatal(err)
	}
	pm := readPostmaster(l.cluster(s.ID).data())
	if err := syscall.Kill(pm.pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() bool { return !l.Running(s.ID) })
	began := time.Now()
	if err := l.Ensure(t.Context(), s.ID, true); err != nil {
		t.Fatalf("Ensure(running) after SIGKILL: %v", err)
	}
	t.Logf("Ensure after SIGKILL took %v", time.Since(began))
	if !l.Running(s.ID) {
		t.Fatalf("Running after Ensure = false")
	}
	if got := readPostmaster(l.cluster(s.ID).data()).pid; got == pm.pid {
		t.Errorf("postmaster pid after Ensure = %d, the killed one", got)
	}
	conn = mustDial(t, l, s.ID, s.AdminLogin, adminPassword(s))
	var v string
	if err := conn.QueryRow(t.Context(), "select v from kept").Scan(&v); err != nil || v != "committed" {
		t.Errorf("select after crash = %q, %v; want \"committed\"", v, err)
	}
	if err := l.Ensure(t.Context(), s.ID, true); err != nil {
		t.Errorf("Ensure(running) on a running server: %v", err)
	}
}

func TestEnsureStops(t *testing.T) {
	t.Parallel()
	l := newTestLocal(t, filepath.Join(newTestBase(t), "servers"))
	s := testSpec("ensurestop")
	create(t, l, s)
	if err := l.Ensure(t.Context(), s.ID, false); err != nil {
		t.Fatalf("Ensure(stopped): %v", err)
	}
	if l.Running(s.ID) {
		t.Errorf("Running after Ensure(stopped) = true")
	}
	if err := l.Ensure(t.Context(), s.ID, false); err != nil {
		t.Errorf("Ensure(stopped) on a stopped server: %v", err)
	}
	if err := l.Ensure(t.Context(), testID("nosuch"), false); err != nil {
		t.Errorf("Ensure(stopped) on a missing server: %v", err)
	}
	if err := l.Ensure(t.Context(), testID("nosuch"), true); !errors.Is(err, ErrNoCluster) {
		t.Errorf("Ensure(running) on a missing server = %v; want ErrNoCluster", err)
	}
}

// TestNewLocalSameDir is a pglink restart: a new Local over the same directory finds the
// clusters of the old one.
func TestNewLocalSameDir(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(newTestBase(t), "servers")
	l1 := newTestLocal(t, dir)
	running, stopped := testSpec("stays-up"), testSpec("was-stopped")
	create(t, l1, running)
	create(t, l1, stopped)
	if err := l1.Stop(t.Context(), stopped.ID); err != nil {
		t.Fatal(err)
	}
	pid := readPostmaster(l1.cluster(running.ID).data()).pid

	l2 := newTestLocal(t, dir)
	if got, want := l2.Socket(running.ID), l1.Socket(running.ID); got != want {
		t.Errorf("Socket after restart = %s; want %s", got, want)
	}
	if !l2.Running(running.ID) || l2.Running(stopped.ID) {
		t.Errorf("Running after restart = %v, %v; want true, false", l2.Running(running.ID), l2.Running(stopped.ID))
	}
	for _, s := range []Spec{running, stopped} {
		if err := l2.Ensure(t.Context(), s.ID, true); err != nil {
			t.Fatalf("Ensure(%s, running): %v", s.ID.Names[0], err)
		}
		mustDial(t, l2, s.ID, s.AdminLogin, adminPassword(s))
	}
	if got := readPostmaster(l2.cluster(running.ID).data()).pid; got != pid {
		t.Errorf("postmaster pid = %d; want %d, reused", got, pid)
	}
}

func TestUnsupportedVersion(t *testing.T) {
	t.Parallel()
	l := newTestLocal(t, filepath.Join(newTestBase(t), "servers"))
	s := testSpec("old")
	s.Version = "11"
	err := l.Create(t.Context(), s)
	e, ok := resource.AsError(err)
	if !ok || e.Kind != resource.Invalid || e.Code != "InvalidParameterValue" {
		t.Fatalf("Create(version 11) = %v; want an Invalid InvalidParameterValue error", err)
	}
	if want := "PostgreSQL version 11 is not installed on this host; installed versions: 15."; e.Message != want {
		t.Errorf("message = %q; want %q", e.Message, want)
	}
	if _, err := os.Stat(l.cluster(s.ID).dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cluster directory after a refused Create: %v; want none", err)
	}
	s = testSpec("reserved")
	for _, login := range []string{"pglink", "pg_admin", ""} {
		s.AdminLogin = login
		if err := l.Create(t.Context(), s); resource.KindOf(err) != resource.Invalid {
			t.Errorf("Create(admin %q) = %v; want an Invalid error", login, err)
		}
	}
}

func TestDelete(t *testing.T) {
	t.Parallel()
	l := newTestLocal(t, filepath.Join(newTestBase(t), "servers"))
	s := testSpec("deleted")
	create(t, l, s)
	dir := l.cluster(s.ID).dir
	pid := readPostmaster(l.cluster(s.ID).data()).pid
	if err := l.Delete(t.Context(), s.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cluster directory after Delete: %v; want none", err)
	}
	if err := syscall.Kill(pid, 0); err == nil && isPostmaster(pid, filepath.Join(dir, "data")) {
		t.Errorf("postmaster %d runs after Delete", pid)
	}
	if l.Running(s.ID) {
		t.Errorf("Running after Delete = true")
	}
	if err := l.Delete(t.Context(), s.ID); err != nil {
		t.Errorf("Delete of a deleted server: %v", err)
	}
	// The same ID can be created again, from scratch.
	create(t, l, s)
	mustDial(t, l, s.ID, s.AdminLogin, adminPassword(s))
}

func TestConcurrent(t *testing.T) {
	t.Parallel()
	l := newTestLocal(t, filepath.Join(newTestBase(t), "servers"))
	specs := []Spec{testSpec("one"), testSpec("two"), testSpec("three")}
	for _, s := range specs {
		t.Cleanup(func() { l.Stop(context.Background(), s.ID) })
	}
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for _, s := range specs {
		// Two Creates of one server, and Ensure and Start racing them, are serialized.
		for range 2 {
			wg.Go(func() { errs <- l.Create(t.Context(), s) })
		}
		wg.Go(func() {
			err := l.Ensure(t.Context(), s.ID, true)
			if errors.Is(err, ErrNoCluster) {
				err = nil // it ran before either Create
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	for _, s := range specs {
		mustDial(t, l, s.ID, s.AdminLogin, adminPassword(s))
	}
}

func TestLockHonoursContext(t *testing.T) {
	t.Parallel()
	l := &Local{dir: "/nonexistent", locks: map[string]chan struct{}{}}
	c := l.cluster(testID("locked"))
	unlock, err := l.lock(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := l.lock(ctx, c); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("lock of a locked server = %v; want context.DeadlineExceeded", err)
	}
}

func TestNewLocalErrors(t *testing.T) {
	t.Parallel()
	base := newTestBase(t)
	if _, err := NewLocal(LocalConfig{Dir: filepath.Join(base, strings.Repeat("x", 80))}); err == nil || !strings.Contains(err.Error(), "too long") {
		t.Errorf("NewLocal(long dir) = %v; want a too-long error", err)
	}
	if _, err := NewLocal(LocalConfig{Dir: filepath.Join(base, "servers"), PGBin: base}); err == nil {
		t.Errorf("NewLocal(PGBin without binaries) succeeded; want an error")
	}
	if _, err := NewLocal(LocalConfig{Dir: filepath.Join(base, "it's")}); err == nil {
		t.Errorf("NewLocal(dir with a quote) succeeded; want an error")
	}
	if os.Geteuid() != 0 {
		return
	}
	private := filepath.Join(base, "private")
	if err := os.Mkdir(private, 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := NewLocal(LocalConfig{Dir: filepath.Join(private, "servers"), PGBin: testBin})
	if err == nil || !strings.Contains(err.Error(), "chmod o+x "+private) {
		t.Errorf("NewLocal(below a 0700 directory) = %v; want an error saying chmod o+x %s", err, private)
	}
	if fi, err := os.Stat(private); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("NewLocal changed the mode of %s to %v", private, fi.Mode().Perm())
	}
	// Dir itself is made traversable.
	own := filepath.Join(base, "own")
	if err := os.Mkdir(own, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := NewLocal(LocalConfig{Dir: own, PGBin: testBin}); err != nil {
		t.Errorf("NewLocal(0700 Dir) = %v", err)
	}
	if fi, err := os.Stat(own); err != nil || fi.Mode().Perm()&0o001 == 0 {
		t.Errorf("mode of Dir = %v; want o+x", fi.Mode().Perm())
	}
}

func TestParseVersion(t *testing.T) {
	for _, tc := range []struct{ in, major, minor string }{
		{"postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)", "15", "18"},
		{"initdb (PostgreSQL) 17.2", "17", "2"},
		{"postgres (PostgreSQL) 16beta1", "16", ""},
		{"postgres (PostgreSQL) 9.6.24", "9.6", "24"},
		{"postgres (EnterpriseDB) 14.1", "", ""},
	} {
		major, minor, ok := parseVersion(tc.in)
		if major != tc.major || minor != tc.minor || ok != (tc.major != "") {
			t.Errorf("parseVersion(%q) = %q, %q, %v; want %q, %q", tc.in, major, minor, ok, tc.major, tc.minor)
		}
	}
	vs := []string{"15", "9.6", "10", "17", "16"}
	slices.SortFunc(vs, func(a, b string) int {
		if lessVersion(a, b) {
			return -1
		}
		return 1
	})
	if want := []string{"9.6", "10", "15", "16", "17"}; !slices.Equal(vs, want) {
		t.Errorf("sorted versions = %v; want %v", vs, want)
	}
}

func TestQuoting(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain", "'plain'"},
		{"it's", "'it''s'"},
		{`back\slash'`, `E'back\\slash'''`},
	} {
		if got := quoteLiteral(tc.in); got != tc.want {
			t.Errorf("quoteLiteral(%q) = %s; want %s", tc.in, got, tc.want)
		}
	}
	if got, want := quoteDSN(`/a b/it's\x`), `'/a b/it\'s\\x'`; got != want {
		t.Errorf("quoteDSN = %s; want %s", got, want)
	}
	if got, want := clusterName("my server.é"), "my_server.__"; got != want {
		t.Errorf("clusterName = %q; want %q", got, want)
	}
	if _, err := Verifier("a\x00b"); err == nil {
		t.Errorf("Verifier with NUL succeeded; want an error")
	}
	v, err := Verifier("secret")
	if err != nil || !regexp.MustCompile(`^SCRAM-SHA-256\$4096:[A-Za-z0-9+/=]{24}\$[A-Za-z0-9+/=]{44}:[A-Za-z0-9+/=]{44}$`).MatchString(v) {
		t.Errorf("Verifier = %q, %v; want SCRAM-SHA-256$4096:salt$stored:server", v, err)
	}
	if err := checkVerifier(v); err != nil {
		t.Errorf("checkVerifier(%q) = %v; want nil", v, err)
	}
	for _, bad := range []string{"", "secret", "SCRAM-SHA-256$4096:c2FsdA==$x:y", "md5abcdef"} {
		if err := checkVerifier(bad); err == nil {
			t.Errorf("checkVerifier(%q) = nil; want an error", bad)
		}
	}
}

// TestIsolation: server A's administrator, after every escalation PostgreSQL 15 lets it make,
// can neither read server B's files nor the superuser passwords (B's or its own), nor reach
// B's unix socket. Programs it runs run as A's OS user, which owns nothing of B's.
func TestIsolation(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("isolating servers needs pglink to run as root")
		}
		t.Skip("isolating servers needs pglink to run as root (CI=true would fail here)")
	}
	l := newTestLocal(t, filepath.Join(newTestBase(t), "servers"))
	a, b := testSpec("alpha"), testSpec("bravo")
	create(t, l, a)
	create(t, l, b)
	ca, cb := l.cluster(a.ID), l.cluster(b.ID)
	secretA, err := os.ReadFile(ca.secret)
	if err != nil {
		t.Fatal(err)
	}
	secretB, err := os.ReadFile(cb.secret)
	if err != nil {
		t.Fatal(err)
	}
	// Something only B's files hold: its ID is in server.json, its log names its cluster.
	markerB := b.ID.String()
	psql := filepath.Join(testBin, "psql")
	if _, err := os.Stat(psql); err != nil {
		psql = "psql"
	}

	conn := mustDial(t, l, a.ID, a.AdminLogin, adminPassword(a))
	// In PostgreSQL 15, a CREATEROLE role may grant itself these.
	for _, role := range []string{"pg_execute_server_program", "pg_read_server_files", "pg_write_server_files"} {
		if _, err := conn.Exec(t.Context(), "grant "+role+" to azureuser"); err != nil {
			t.Logf("grant %s to the administrator: %v", role, err)
		}
	}
	conn.Close(t.Context())
	conn = mustDial(t, l, a.ID, a.AdminLogin, adminPassword(a))
	if _, err := conn.Exec(t.Context(), "create table out (line text)"); err != nil {
		t.Fatal(err)
	}
	// run runs q, a COPY into out or a query of one text column, and returns what it read.
	run := func(q string) (string, error) {
		if strings.HasPrefix(q, "copy out") {
			if _, err := conn.Exec(t.Context(), "truncate out"); err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Exec(t.Context(), q); err != nil {
				return "", err
			}
			q = "select coalesce(string_agg(line, E'\\n'), '') from out"
		}
		if strings.HasPrefix(q, "copy (") {
			_, err := conn.Exec(t.Context(), q)
			return "", err
		}
		var got string
		err := conn.QueryRow(t.Context(), q).Scan(&got)
		return got, err
	}

	// The escalation works: programs run, as A's OS user.
	if got, err := run("copy out from program 'id -un'"); err != nil || got != ca.user {
		t.Fatalf("COPY FROM PROGRAM 'id -un' = %q, %v; want %q (the self-granted escalation should run as A's OS user)", got, err, ca.user)
	}

	// sh runs cmd and keeps what it writes, errors included (tabs would split COPY's columns).
	sh := func(cmd string) string {
		return "copy out from program " + quoteLiteral("{ "+cmd+"; } 2>&1 | tr '\\t' ' '; true")
	}
	for _, tc := range []struct {
		name   string
		q      string
		denied bool // the output must say the OS refused
	}{
		{"cat B's server.json", sh("cat " + cb.meta()), true},
		{"cat B's postgresql.conf", sh("cat " + filepath.Join(cb.data(), "postgresql.conf")), true},
		{"cat B's log", sh("cat " + cb.logFile()), true},
		{"list B's cluster", sh("ls -la " + cb.dir), true},
		{"cat B's superuser password", sh("cat " + cb.secret), true},
		{"cat A's own superuser password", sh("cat " + ca.secret), true},
		{"cat A's old password file", sh("cat " + ca.password()), false},
		{"psql to B's socket", sh(psql + " -w -h " + cb.socket() + " -U pglink -d postgres -c 'select 1'"), true},
		{"psql to B's socket with B's password", sh("PGPASSWORD=" + strings.TrimSpace(string(secretB)) + " " + psql + " -w -h " + cb.socket() + " -U pglink -d postgres -c 'select 1'"), true},
		{"COPY FROM B's file", "copy out from " + quoteLiteral(cb.meta()), false},
		{"COPY TO B's directory", "copy (select 'x') to " + quoteLiteral(filepath.Join(cb.data(), "evil")), false},
		{"pg_read_file", "select pg_read_file(" + quoteLiteral(cb.meta()) + ")", false},
		{"pg_read_binary_file", "select encode(pg_read_binary_file(" + quoteLiteral(cb.secret) + "), 'escape')", false},
		{"pg_ls_dir", "select string_agg(f, ',') from pg_ls_dir(" + quoteLiteral(cb.dir) + ") f", false},
		{"lo_import", "select lo_get(lo_import(" + quoteLiteral(cb.meta()) + "))::text", false},
		{"ALTER SYSTEM", "alter system set archive_command = " + quoteLiteral("cat "+cb.meta()), false},
		{"become superuser", "alter role azureuser superuser", false},
		{"create superuser", "create role evil superuser login", false},
		{"set role pglink", "set role pglink", false},
		{"plperlu", "create function evil() returns text language plperlu as $$ return `cat " + cb.meta() + "`; $$", false},
		{"plpython3u", "create function evil() returns text language plpython3u as $$ return open(" + quoteLiteral(cb.meta()) + ").read() $$", false},
		{"file_fdw", "create extension file_fdw", false},
		{"adminpack", "create extension adminpack", false},
		{"untrusted language", "create language plperlu", false},
	} {
		got, err := run(tc.q)
		for what, s := range map[string]string{"B's ID": markerB, "B's superuser password": strings.TrimSpace(string(secretB)), "A's superuser password": strings.TrimSpace(string(secretA))} {
			if strings.Contains(got, s) {
				t.Errorf("%s: read %s: %q", tc.name, what, got)
			}
		}
		if strings.Contains(got, "(1 row)") {
			t.Errorf("%s: reached B's PostgreSQL: %q", tc.name, got)
		}
		switch {
		case tc.denied && !strings.Contains(got, "Permission denied"):
			t.Errorf("%s = %q, %v; want the OS to deny it (Permission denied)", tc.name, got, err)
		case !tc.denied && !strings.HasPrefix(tc.name, "cat") && err == nil:
			t.Errorf("%s = %q, nil; want an error", tc.name, got)
		default:
			t.Logf("%s: %q, %v", tc.name, got, err)
		}
	}
	// B is untouched and still serves its administrator.
	if _, err := os.Stat(filepath.Join(cb.data(), "evil")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("file written into B's cluster: %v", err)
	}
	mustDial(t, l, b.ID, b.AdminLogin, adminPassword(b))

	// A's OS user owns A's cluster directory: it may plant symlinks, FIFOs and hard links
	// where pglink, as root, keeps files. Restarting A must not touch what they point to.
	victimDir := filepath.Join(filepath.Dir(l.dir), "victim")
	victim := filepath.Join(victimDir, "file")
	if err := os.Mkdir(victimDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(victim, []byte("root's\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(victim, 0o644); err != nil {
		t.Fatal(err)
	}
	plant := "cd " + ca.dir + " && mv socket socket.old && ln -s " + victimDir + " socket && " +
		"rm -f server.json && ln -s " + victim + " server.json && " +
		"mv postgres.log postgres.log.old && mkfifo postgres.log.1"
	if got, err := run(sh(plant)); err != nil || got != "" {
		t.Fatalf("plant links as A's OS user: %q, %v", got, err)
	}
	conn.Close(t.Context())
	if err := l.Restart(t.Context(), a.ID); err != nil {
		t.Fatalf("Restart A after its OS user planted links: %v", err)
	}
	mustDial(t, l, a.ID, a.AdminLogin, adminPassword(a))
	for p, want := range map[string]os.FileMode{victimDir: 0o755, victim: 0o644} {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm() != want || fi.Sys().(*syscall.Stat_t).Uid != 0 {
			t.Errorf("%s after A's restart: %v, %v; want mode %v, owned by root", p, fi.Mode().Perm(), err, want)
		}
	}
}

// TestAdminPrivileges: the administrator does what an Azure administrator does (create
// databases and roles, own what it creates, read and write all data) without being a superuser.
func TestAdminPrivileges(t *testing.T) {
	t.Parallel()
	l := newTestLocal(t, filepath.Join(newTestBase(t), "servers"))
	s := testSpec("privileges")
	create(t, l, s)
	conn := mustDial(t, l, s.ID, s.AdminLogin, adminPassword(s))
	var super, createdb, createrole, repl bool
	if err := conn.QueryRow(t.Context(), "select rolsuper, rolcreatedb, rolcreaterole, rolreplication from pg_roles where rolname = current_user").Scan(&super, &createdb, &createrole, &repl); err != nil {
		t.Fatal(err)
	}
	if super || !createdb || !createrole || !repl {
		t.Errorf("superuser, createdb, createrole, replication = %v, %v, %v, %v; want false, true, true, true", super, createdb, createrole, repl)
	}
	for _, role := range []string{"pg_read_all_data", "pg_write_all_data", "pg_monitor", "pg_signal_backend"} {
		var member bool
		if err := conn.QueryRow(t.Context(), "select pg_has_role(current_user, $1, 'member')", role).Scan(&member); err != nil || !member {
			t.Errorf("member of %s = %v, %v; want true", role, member, err)
		}
	}
	for _, role := range []string{"pg_execute_server_program", "pg_read_server_files", "pg_write_server_files"} {
		var member bool
		if err := conn.QueryRow(t.Context(), "select pg_has_role(current_user, $1, 'member')", role).Scan(&member); err != nil || member {
			t.Errorf("member of %s = %v, %v; want false", role, member, err)
		}
	}
	for _, q := range []string{
		"create table t (x int)",
		"insert into t values (1)",
		"create schema app",
		"create database appdb",
		"create role app login password 'App-Password-1'",
		"grant select on t to app",
	} {
		if _, err := conn.Exec(t.Context(), q); err != nil {
			t.Errorf("%s: %v", q, err)
		}
	}
	// Existing clusters' administrators were superusers: a Create demotes them.
	su, err := l.connect(t.Context(), l.cluster(s.ID))
	if err != nil {
		t.Fatal(err)
	}
	defer closeConn(su)
	if _, err := su.Exec(t.Context(), "alter role azureuser superuser"); err != nil {
		t.Fatal(err)
	}
	if err := l.Create(t.Context(), s); err != nil {
		t.Fatal(err)
	}
	if err := su.QueryRow(t.Context(), "select rolsuper from pg_roles where rolname = 'azureuser'").Scan(&super); err != nil || super {
		t.Errorf("administrator superuser after Create = %v, %v; want false", super, err)
	}
}

// TestVerifierUnicode: a role given Verifier(pw) accepts pw at login, for any Unicode pw,
// through libpq (psql, which prepares passwords with SASLprep as PostgreSQL does) and pgx.
func TestVerifierUnicode(t *testing.T) {
	t.Parallel()
	l := newTestLocal(t, filepath.Join(newTestBase(t), "servers"))
	s := testSpec("unicode")
	create(t, l, s)
	psql := filepath.Join(testBin, "psql")
	if _, err := os.Stat(psql); err != nil {
		t.Fatalf("psql: %v", err)
	}
	for _, tc := range []struct {
		pw  string
		pgx bool // pgx prepares it as PostgreSQL does (it uses NFC where SASLprep uses NFKC)
	}{
		{"Пароль-Secret1", true},
		{"pässwörd-ÅÅ1", true},
		{"Ｗｉｄｅ-ｐａｓｓ-１２３", false},                 // full-width: SASLprep maps it to ASCII
		{"ﬁne-Ligature-½-Ⅻ", false},              // compatibility characters
		{"Non\u00a0Breaking\u200bSpace1", false}, // mapped to a space; mapped to nothing
		{"prohibited-\u0007-Bell1", true},        // SASLprep refuses it: the raw bytes are hashed
		{"\u0627\u0628-mixed-bidi1", true},       // RandALCat and LCat mixed: refused, raw bytes
		{"unassigned-\U000E0080-x1", true},       // unassigned in Unicode 3.2: raw bytes
		{"\u00ad", true},                         // mapped to nothing at all: raw bytes
		{"invalid-\xff-utf8", false},             // not UTF-8: raw bytes
	} {
		v, err := Verifier(tc.pw)
		if err != nil {
			t.Fatalf("Verifier(%q): %v", tc.pw, err)
		}
		if err := l.SetPassword(t.Context(), s.ID, s.AdminLogin, v); err != nil {
			t.Fatalf("SetPassword(Verifier(%q)): %v", tc.pw, err)
		}
		cmd := exec.CommandContext(t.Context(), psql, "-w", "-X", "-A", "-t", "-h", l.Socket(s.ID), "-U", s.AdminLogin, "-d", "postgres", "-c", "select 1")
		cmd.Env = append(os.Environ(), "PGPASSWORD="+tc.pw, "PGCONNECT_TIMEOUT=5")
		if out, err := cmd.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "1" {
			t.Errorf("psql login with %q = %q, %v; want 1", tc.pw, out, err)
		}
		if tc.pgx {
			conn, err := dial(t.Context(), l, s.ID, s.AdminLogin, tc.pw)
			if err != nil {
				t.Errorf("pgx login with %q: %v", tc.pw, err)
				continue
			}
			conn.Close(t.Context())
		}
	}
	if _, err := Verifier("a\x00b"); err == nil {
		t.Errorf("Verifier with NUL succeeded; want an error")
	}
}

func TestSASLprep(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain-ASCII", "plain-ASCII"},
		{"Ｗｉｄｅ１", "Wide1"},
		{"a\u00a0b", "a b"},
		{"a\u200bb\u00adc", "a bc"}, // U+200B is a space (C.1.2) before it is nothing (B.1)
		{"ﬁ", "fi"},
		{"a\u0007b", "a\u0007b"},           // prohibited: unchanged
		{"\u00ad", "\u00ad"},               // empty after mapping: unchanged
		{"\xffＷ", "\xffＷ"},                 // not UTF-8: unchanged
		{"\u0627\u0628x", "\u0627\u0628x"}, // bidi rule broken: unchanged
		{"\u0627\u0628", "\u0627\u0628"},   // right-to-left only: allowed
		{"x\U000E0080Ｗ", "x\U000E0080Ｗ"},   // unassigned: unchanged
		{"Cafe\u0301", "Café"},             // NFKC composes
	} {
		if got := saslprep(tc.in); got != tc.want {
			t.Errorf("saslprep(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
}

// TestVerifierMatchesPostgreSQL: for passwords PostgreSQL hashes itself (given in clear),
// Verifier's hash with PostgreSQL's salt is PostgreSQL's verifier, byte for byte.
func TestVerifierMatchesPostgreSQL(t *testing.T) {
	t.Parallel()
	l := newTestLocal(t, filepath.Join(newTestBase(t), "servers"))
	s := testSpec("saslprep")
	create(t, l, s)
	su, err := l.connect(t.Context(), l.cluster(s.ID))
	if err != nil {
		t.Fatal(err)
	}
	defer closeConn(su)
	for _, pw := range []string{
		"plain-ASCII-1", "Пароль-Secret1", "pässwörd-ÅÅ1", "Ｗｉｄｅ-ｐａｓｓ-１２３", "ﬁne-Ligature-½-Ⅻ",
		"Non\u00a0Breaking\u200bSpace1", "a\u1680b\u3000c\u2028d", "soft\u00adhyphen\u180e\u200d\ufeff",
		"prohibited-\u0007-Bell1", "private-\ue000-use", "\u0627\u0628-mixed-bidi1", "\u0627\u0628\u0629",
		"\u0627x\u0628", "unassigned-\U000E0080-x1", "new-\U0001F600-emoji", "\u00ad", "\u00ad\u200b",
		"Cafe\u0301", "Ａ\u0301", "ǅ-titlecase-ß-ﬀ", "tab\tand\nnewline",
		"x\u2126\u212b\u00b5", "\U0002F800-cjk-compat", "\u0340\u0341-deprecated",
	} {
		if _, err := su.Exec(t.Context(), "alter role "+pgx.Identifier{s.AdminLogin}.Sanitize()+" password "+quoteLiteral(pw)); err != nil {
			t.Errorf("alter role password %q: %v", pw, err)
			continue
		}
		var stored string
		if err := su.QueryRow(t.Context(), "select rolpassword from pg_authid where rolname = $1", s.AdminLogin).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		// SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>
		rest, _ := strings.CutPrefix(stored, "SCRAM-SHA-256$")
		params, _, _ := strings.Cut(rest, "$")
		iter, salt64, _ := strings.Cut(params, ":")
		n, err := strconv.Atoi(iter)
		if err != nil {
			t.Fatalf("verifier %q: %v", stored, err)
		}
		salt, err := base64.StdEncoding.DecodeString(salt64)
		if err != nil {
			t.Fatalf("verifier %q: %v", stored, err)
		}
		got, err := scramVerifierSalt(saslprep(pw), salt, n)
		if err != nil || got != stored {
			t.Errorf("verifier of %q = %q, %v; PostgreSQL's is %q", pw, got, err, stored)
		}
	}
}

// TestAdoptOldCluster: a cluster made by an older pglink (run by a shared OS user, the
// superuser's password inside it, server.json readable by all) gets an OS user of its own, its
// password moved out and its files made private when it next starts.
func TestAdoptOldCluster(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("OS users of their own need pglink to run as root")
		}
		t.Skip("OS users of their own need pglink to run as root (CI=true would fail here)")
	}
	old, err := user.Lookup("postgres")
	if err != nil {
		t.Fatalf("the OS user postgres, which older versions ran every cluster as: %v", err)
	}
	oldUID, _ := strconv.Atoi(old.Uid)
	oldGID, _ := strconv.Atoi(old.Gid)
	l := newTestLocal(t, filepath.Join(newTestBase(t), "servers"))
	s := testSpec("old")
	create(t, l, s)
	c := l.cluster(s.ID)
	su, err := l.connect(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := su.Exec(t.Context(), "alter role azureuser superuser"); err != nil {
		t.Fatal(err)
	}
	closeConn(su)
	if err := l.Stop(t.Context(), s.ID); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(c.secret, c.password()); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(c.meta(), 0o644); err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(c.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, oldUID, oldGID)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := removeUser(t.Context(), c.user); err != nil {
		t.Fatal(err)
	}

	if err := l.Start(t.Context(), s.ID); err != nil {
		t.Fatalf("Start of an old cluster: %v", err)
	}
	conn := mustDial(t, l, s.ID, s.AdminLogin, adminPassword(s))
	var super, createrole bool
	if err := conn.QueryRow(t.Context(), "select rolsuper, rolcreaterole from pg_roles where rolname = current_user").Scan(&super, &createrole); err != nil || super || !createrole {
		t.Errorf("administrator superuser, createrole after Start = %v, %v, %v; want false, true", super, createrole, err)
	}
	u, err := user.Lookup(c.user)
	if err != nil {
		t.Fatalf("OS user of the adopted cluster: %v", err)
	}
	for _, p := range []string{c.dir, c.data(), filepath.Join(c.data(), "PG_VERSION"), c.logFile()} {
		if fi, err := os.Stat(p); err != nil || strconv.Itoa(int(fi.Sys().(*syscall.Stat_t).Uid)) != u.Uid {
			t.Errorf("owner of %s: %v; want %s", p, err, c.user)
		}
	}
	if _, err := os.Stat(c.password()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("superuser password left in the cluster: %v", err)
	}
	if fi, err := os.Stat(c.secret); err != nil || fi.Sys().(*syscall.Stat_t).Uid != 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("superuser password not moved out, root's, 0600: %v", err)
	}
	if fi, err := os.Stat(c.meta()); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("server.json mode: %v; want 0600", err)
	}
}

// TestCreateFailureLeavesNothing: when initdb fails, Create leaves no cluster directory, no
// superuser password and no OS user behind.
func TestCreateFailureLeavesNothing(t *testing.T) {
	t.Parallel()
	base := newTestBase(t)
	bin := filepath.Join(base, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range serverBinaries {
		if err := os.Symlink(filepath.Join(testBin, name), filepath.Join(bin, name)); err != nil {
			t.Fatal(err)
		}
	}
	// An initdb that answers --version and fails at anything else.
	initdb := "#!/bin/sh\nif [ \"$1\" = --version ]; then exec " + filepath.Join(testBin, "initdb") + " --version; fi\necho 'initdb: disk full' >&2\nexit 1\n"
	if err := os.Remove(filepath.Join(bin, "initdb")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "initdb"), []byte(initdb), 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := NewLocal(LocalConfig{Dir: filepath.Join(base, "servers"), PGBin: bin, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	s := testSpec("doomed")
	if err := l.Create(t.Context(), s); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Create with a failing initdb = %v; want its error", err)
	}
	c := l.cluster(s.ID)
	for _, p := range []string{c.dir, c.secret} {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s after a failed Create: %v; want it gone", p, err)
		}
	}
	if _, err := user.Lookup(c.user); err == nil {
		t.Errorf("OS user %s after a failed Create; want it gone", c.user)
	}
}
