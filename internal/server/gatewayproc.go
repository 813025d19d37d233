package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pglink/pglink/internal/gateway"
	"github.com/pglink/pglink/internal/gateway/remote"
)

// The gateway process keeps its files in DATA/gateway (mode 0700): the control socket
// (0600), its pid file, the lock that makes it the only gateway of the data dir, and the log
// that `pglink serve` points its output to when it starts it.
const (
	gatewaySubdir  = "gateway"
	gatewaySocket  = "control.sock"
	gatewayPIDFile = "gateway.pid"
	gatewayLock    = "gateway.lock"
	gatewayLogFile = "gateway.log"

	orphanCheck = 5 * time.Second // how often the gateway checks that its pid file is there
)

func gatewayPath(dataDir, name string) string { return filepath.Join(dataDir, gatewaySubdir, name) }

// GatewayConfig configures a gateway process (`pglink gateway`).
type GatewayConfig struct {
	DataDir string // the data dir of the pglink serve that drives it
	Logger  *slog.Logger
}

// RunGateway runs the data plane alone until ctx is done or the attached pglink serve asks it
// to stop: it serves the endpoints of the last policy it was given, and answers the control
// socket DATA/gateway/control.sock (see package remote), where pglink serve attaches, gives it
// certificates and policies and reads its counters. pglink serve may come and go: sessions and
// listeners stay. When RunGateway ends, every session gets a FATAL ErrorResponse with SQLSTATE
// 57P01 and a reason, and then the gateway exits; also when its pid file
// (DATA/gateway/gateway.pid) is removed. Only one gateway runs per data dir: a second one fails
// at once.
func RunGateway(ctx context.Context, cfg GatewayConfig) error {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	dir := filepath.Join(cfg.DataDir, gatewaySubdir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create gateway dir: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("gateway dir: %w", err)
	}
	lock, err := lockGateway(cfg.DataDir)
	if err != nil {
		return err
	}
	defer lock.Close()
	pidFile := gatewayPath(cfg.DataDir, gatewayPIDFile)
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		return fmt.Errorf("write gateway pid file: %w", err)
	}
	defer os.Remove(pidFile)
	sock := gatewayPath(cfg.DataDir, gatewaySocket)
	if err := os.Remove(sock); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale control socket: %w", err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		return fmt.Errorf("listen on control socket: %w", err)
	}
	ln.SetUnlinkOnClose(true)
	if err := os.Chmod(sock, 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("control socket: %w", err)
	}

	certs := &gatewayCerts{}
	g := gateway.New(gateway.Config{
		TLS:    &tls.Config{GetCertificate: certs.GetCertificate, MinVersion: tls.VersionTLS12},
		Logger: log,
	})
	stopped := make(chan string, 1)
	srv := &remote.Server{Gate: g, SetCerts: certs.set, Log: log,
		Stop: func(reason string) {
			select {
			case stopped <- reason:
			default:
			}
		}}
	sctx, scancel := context.WithCancel(context.WithoutCancel(ctx))
	served := make(chan error, 1)
	go func() { served <- srv.Serve(sctx, ln) }()
	log.Info("pglink gateway running", "pid", os.Getpid(), "control", sock)

	msg := "pglink gateway is shutting down"
	// Like PostgreSQL's postmaster, the gateway stops when its pid file goes, say with the data
	// dir: nothing could attach to it any more.
	check := time.NewTicker(orphanCheck)
	defer check.Stop()
wait:
	for {
		select {
		case <-ctx.Done():
			break wait
		case reason := <-stopped:
			if reason != "" {
				msg += ": " + reason
			}
			break wait
		case err := <-served:
			g.Shutdown(msg, "Reconnect in a moment.")
			scancel()
			return fmt.Errorf("control socket: %w", err)
		case <-check.C:
			if _, err := os.Stat(pidFile); errors.Is(err, os.ErrNotExist) {
				log.Error("pid file removed; stopping", "pid_file", pidFile)
				msg += ": its data dir was removed"
				break wait
			}
		}
	}
	log.Info("pglink gateway stopping", "reason", msg, "sessions", len(g.Sessions()))
	// Sessions end first, then the control connection: a client waiting in Stop for the
	// connection to close knows that every session has ended.
	g.Shutdown(msg, "Reconnect in a moment.")
	scancel()
	return <-served
}

// lockGateway takes DATA/gateway/gateway.lock, which the gateway holds as long as it runs.
func lockGateway(dataDir string) (*os.File, error) {
	f, err := os.OpenFile(gatewayPath(dataDir, gatewayLock), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open gateway lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("a pglink gateway (pid %s) already runs for data dir %s", gatewayPID(dataDir), dataDir)
		}
		return nil, fmt.Errorf("lock gateway: %w", err)
	}
	return f, nil
}

// gatewayPID returns the pid in the gateway's pid file, or "?".
func gatewayPID(dataDir string) string {
	b, err := os.ReadFile(gatewayPath(dataDir, gatewayPIDFile))
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

// StopGateway asks the gateway of dataDir to end every session with SQLSTATE 57P01 and
// reason, and to exit, and waits until it has. It fails while a pglink serve is attached
// (stop it first, or it restarts the gateway) and when no gateway runs.
func StopGateway(ctx context.Context, dataDir, reason string) error {
	c, err := remote.Dial(ctx, gatewayPath(dataDir, gatewaySocket))
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("no pglink gateway runs for data dir %s", dataDir)
		}
		return fmt.Errorf("%w (stop pglink serve first: it restarts the gateway)", err)
	}
	defer c.Close()
	if err := c.Stop(ctx, reason); err != nil {
		return err
	}
	// The connection closes as the gateway exits; its lock is released just after.
	for {
		f, err := lockGateway(dataDir)
		if err == nil {
			f.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for gateway %d to exit: %w", c.PID(), ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// gatewayCerts serves the certificates pushed by pglink serve: per endpoint address from the
// local CA, else the fallback.
type gatewayCerts struct {
	cur atomic.Pointer[endpointCerts]
}

// set installs new material.
func (g *gatewayCerts) set(c remote.Certs) error {
	fallback, err := tls.X509KeyPair([]byte(c.Cert), []byte(c.Key))
	if err != nil {
		return fmt.Errorf("certificate: %w", err)
	}
	e := &endpointCerts{fallback: fallback, byIP: map[string]*tls.Certificate{}}
	if c.CACert != "" {
		if e.ca, err = tls.X509KeyPair([]byte(c.CACert), []byte(c.CAKey)); err != nil {
			return fmt.Errorf("CA: %w", err)
		}
	}
	g.cur.Store(e)
	return nil
}

// GetCertificate implements tls.Config.GetCertificate.
func (g *gatewayCerts) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	e := g.cur.Load()
	if e == nil {
		return nil, errors.New("no certificate yet: pglink serve has not attached")
	}
	return e.GetCertificate(hello)
}

// pemCerts encodes the CA (may be zero) and the fallback certificate for the gateway process.
func pemCerts(ca, fallback tls.Certificate) (remote.Certs, error) {
	var c remote.Certs
	var err error
	if c.Cert, c.Key, err = pemPair(fallback); err != nil {
		return c, fmt.Errorf("encode certificate: %w", err)
	}
	if len(ca.Certificate) > 0 && ca.PrivateKey != nil {
		if c.CACert, c.CAKey, err = pemPair(ca); err != nil {
			return c, fmt.Errorf("encode CA: %w", err)
		}
	}
	return c, nil
}

func pemPair(c tls.Certificate) (cert, key string, err error) {
	var b strings.Builder
	for _, der := range c.Certificate {
		b.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	}
	k, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		return "", "", err
	}
	return b.String(), string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: k})), nil
}
