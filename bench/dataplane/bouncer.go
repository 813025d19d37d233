package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// bouncerPool is PgBouncer's pool size: more server connections than pgbench ever opens (64),
// so that session mode never makes a client wait.
const bouncerPool = 70

// bouncer is a PgBouncer child in session mode in front of the server's unix socket.
type bouncer struct {
	*child
	addr    string
	version string
	logFile string
}

// startBouncer installs PgBouncer if it is missing and runs it as the server's OS user (the owner
// of socketDir) on a free loopback port, with the administrator's password in its auth_file
// (SCRAM towards both the client and PostgreSQL). Clients may negotiate TLS (client_tls_sslmode
// prefer, with a fresh self-signed certificate), as with pglink's gateway; the administrator
// may use its console (admin_users), to empty the pool.
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
admin_users = %s
client_tls_sslmode = prefer
client_tls_key_file = %s
client_tls_cert_file = %s
`, socketDir, port, filepath.Join(dir, "userlist.txt"), bouncerPool, filepath.Join(dir, "pgbouncer.log"), filepath.Join(dir, "pgbouncer.pid"),
		adminLogin, filepath.Join(dir, "key.pem"), filepath.Join(dir, "cert.pem"))
	certPEM, keyPEM, err := selfSigned()
	if err != nil {
		return nil, err
	}
	files := map[string]string{
		"pgbouncer.ini": conf,
		"userlist.txt":  fmt.Sprintf("%q %q\n", adminLogin, adminPassword),
		"cert.pem":      certPEM,
		"key.pem":       keyPEM,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			return nil, err
		}
	}
	for _, p := range []string{dir, filepath.Join(dir, "pgbouncer.ini"), filepath.Join(dir, "userlist.txt"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")} {
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

// emptyPool closes PgBouncer's server connections (KILL and RESUME on its console), so that
// the next clients start PostgreSQL backends as direct and pglink clients do.
func (b *bouncer) emptyPool(ctx context.Context, pgBin string) error {
	host, port, _ := net.SplitHostPort(b.addr)
	cmd := exec.CommandContext(ctx, filepath.Join(pgBin, "psql"), "-X", "-q", "-h", host, "-p", port, "-U", adminLogin,
		"-d", "pgbouncer", "-c", "KILL postgres", "-c", "RESUME postgres")
	cmd.Env = append(os.Environ(), "PGPASSWORD="+adminPassword, "PGSSLMODE=disable")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("empty PgBouncer's pool: %w\n%s", err, out)
	}
	return nil
}

// selfSigned returns a fresh self-signed certificate for 127.0.0.1 and its key, PEM-encoded.
func selfSigned() (certPEM, keyPEM string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "pgbouncer bench"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", "", err
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})), nil
}
