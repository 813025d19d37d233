package gateway

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log/slog"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/pgtest"
)

// requirePart ends a test that lacks a part it needs: a skip on a developer machine, a failure
// under CI=true, where every part must be present.
func requirePart(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format+" (CI=true requires it)", args...)
	}
	t.Skipf(format+" (CI=true would fail here)", args...)
}

// cluster is a PostgreSQL cluster that listens only on a unix socket.
type cluster = pgtest.Cluster

// startPostgres starts a cluster in a fresh directory and stops it in t.Cleanup (pgtest.New).
func startPostgres(t testing.TB) *cluster {
	t.Helper()
	return pgtest.New(t)
}

// socketProxy is a unix socket in front of a cluster's socket that counts the connections and
// bytes PostgreSQL would see.
type socketProxy struct {
	Dir      string // directory of its .s.PGSQL.5432
	accepted atomic.Int64
	bytes    atomic.Int64
}

// newSocketProxy starts a socketProxy for the cluster socket directory target.
func newSocketProxy(t testing.TB, target string) *socketProxy {
	t.Helper()
	dir, err := os.MkdirTemp("", "pglsp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ln, err := net.Listen("unix", filepath.Join(dir, socketName))
	if err != nil {
		t.Fatal(err)
	}
	p := &socketProxy{Dir: dir}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.accepted.Add(1)
			u, err := net.Dial("unix", filepath.Join(target, socketName))
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			open = append(open, c, u)
			mu.Unlock()
			wg.Add(2)
			go func() {
				defer wg.Done()
				n, _ := io.Copy(u, c)
				p.bytes.Add(n)
				u.Close()
			}()
			go func() {
				defer wg.Done()
				io.Copy(c, u)
				c.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return p
}

// freeAddr returns a loopback address 127.88.x.y:5432 that nothing listens on.
func freeAddr(t testing.TB) netip.AddrPort {
	t.Helper()
	for range 100 {
		ap := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 88, byte(1 + mrand.IntN(254)), byte(1 + mrand.IntN(254))}), 5432)
		ln, err := net.Listen("tcp", ap.String())
		if err != nil {
			continue
		}
		ln.Close()
		return ap
	}
	t.Fatal("no free loopback address in 127.88.0.0/16")
	return netip.AddrPort{}
}

// newGateway returns a Gateway that logs to t and is closed in t.Cleanup.
func newGateway(t testing.TB, cfg Config) *Gateway {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	g := New(cfg)
	t.Cleanup(func() { g.Close() })
	return g
}

// quietGateway is newGateway without logs (benchmarks).
func quietGateway(t testing.TB, cfg Config) *Gateway {
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	return newGateway(t, cfg)
}

// testTLS returns a server TLS configuration with a fresh self-signed certificate.
func testTLS(t testing.TB) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "pglink gateway test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}
}

// be32 is a big-endian uint32, for golden frames.
func be32(n int) []byte { return []byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)} }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
