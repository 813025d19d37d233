package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// bouncerPool is PgBouncer's pool size: more server connections than pgbench ever opens, so
// that session mode never makes a client wait.
const bouncerPool = 20

// bouncer is a PgBouncer child in session mode in front of the server's unix socket.
type bouncer struct {
	*child
	addr    string
	version string
	logFile string
}

// startBouncer installs PgBouncer if it is missing and runs it as the server's OS user (the owner
// of socketDir) on a free loopback port, with the administrator's password in its auth_file
// (SCRAM towards both the client and PostgreSQL).
func startBouncer(ctx context.Context, work, socketDir string) (*bouncer, error) {
	bin, err := exec.LookPath("pgbouncer")
	if err != nil {
		bin = "/usr/sbin/pgbouncer"
	}
	if _, err := os.Stat(bin); err != nil {
		fmt.Println("installing PgBouncer: apt-get install -y pgbouncer")
		cmd := exec.CommandContext(ctx, "apt-get", "install", "-y", "pgbouncer")
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("apt-get install pgbouncer: %w\n%s", err, out)
		}
	}
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		return nil, fmt.Errorf("pgbouncer --version: %w", err)
	}
	version := strings.TrimPrefix(strings.SplitN(string(out), "\n", 2)[0], "PgBouncer ")

	// The socket directory is private to the server's own OS user: PgBouncer runs as that user.
	fi, err := os.Stat(socketDir)
	if err != nil {
		return nil, fmt.Errorf("server socket directory: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil, fmt.Errorf("server socket directory %s: no owner", socketDir)
	}
	uid, gid := int(st.Uid), int(st.Gid)
	dir := filepath.Join(work, "pgbouncer")
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, err
	}
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(addr)
	conf := fmt.Sprintf(`[databases]
postgres = host=%s port=5432 dbname=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %s
unix_socket_dir =
auth_type = scram-sha-256
auth_file = %s
pool_mode = session
default_pool_size = %d
max_client_conn = 200
logfile = %s
pidfile = %s
log_connections = 0
log_disconnections = 0
`, socketDir, port, filepath.Join(dir, "userlist.txt"), bouncerPool, filepath.Join(dir, "pgbouncer.log"), filepath.Join(dir, "pgbouncer.pid"))
	files := map[string]string{
		"pgbouncer.ini": conf,
		"userlist.txt":  fmt.Sprintf("%q %q\n", adminLogin, adminPassword),
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			return nil, err
		}
	}
	for _, p := range []string{dir, filepath.Join(dir, "pgbouncer.ini"), filepath.Join(dir, "userlist.txt")} {
		if err := os.Chown(p, uid, gid); err != nil {
			return nil, err
		}
	}
	cmd := exec.Command(bin, filepath.Join(dir, "pgbouncer.ini"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	out2, err := os.Create(filepath.Join(dir, "pgbouncer.stderr"))
	if err != nil {
		return nil, err
	}
	defer out2.Close() // the child has its own descriptor
	cmd.Stdout, cmd.Stderr = out2, out2
	c, err := startChild("pgbouncer", cmd)
	if err != nil {
		return nil, err
	}
	b := &bouncer{child: c, addr: addr, version: version, logFile: filepath.Join(dir, "pgbouncer.log")}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if b.exited() {
			return b, fmt.Errorf("pgbouncer exited: %v\n%s", b.err, tail(b.logFile, 20))
		}
		if nc, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			nc.Close()
			break
		}
		if time.Now().After(deadline) {
			return b, fmt.Errorf("pgbouncer not listening on %s after 10s\n%s", addr, tail(b.logFile, 20))
		}
		time.Sleep(50 * time.Millisecond)
	}
	// One query through it proves the auth_file and the socket are right.
	conn, err := connect(ctx, tcpDSN(addr))
	if err != nil {
		return b, fmt.Errorf("connect through PgBouncer: %w\n%s", err, tail(b.logFile, 20))
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "select 1"); err != nil {
		return b, fmt.Errorf("query through PgBouncer: %w", err)
	}
	return b, nil
}
