package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/gateway"
)

// TestGatewayProcess runs a gateway process's body (RunGateway) in the test process and drives
// it as pglink serve does: attach, certificates, policy, stats; detach, and the gateway keeps
// its listener; attach again; stop for good.
func TestGatewayProcess(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- RunGateway(ctx, GatewayConfig{DataDir: dir, Logger: log}) }()
	for {
		if c, err := net.Dial("unix", gatewayPath(dir, gatewaySocket)); err == nil {
			c.Close()
			break
		}
		select {
		case err := <-ran:
			t.Fatalf("RunGateway = %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}

	// A second gateway for the same data dir fails at once.
	sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
	defer scancel()
	if err := RunGateway(sctx, GatewayConfig{DataDir: dir, Logger: log}); err == nil || !strings.Contains(err.Error(), "already runs") {
		t.Fatalf("second RunGateway = %v; want an error saying a gateway already runs", err)
	}

	cert, ca, _, err := ensureTLS(dir, []string{"127.0.0.1"}, "", "")
	if err != nil {
		t.Fatal(err)
	}
	certs, err := pemCerts(ca, cert)
	if err != nil {
		t.Fatal(err)
	}
	attach := func() *gatewayProc {
		t.Helper()
		// The gateway runs already: nothing is started (bin would fail).
		p, err := startGatewayProc(ctx, dir, "/nonexistent/pglink", 0, certs, log)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := attach()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.MustParseAddrPort(ln.Addr().String())
	ln.Close()
	snap := gateway.Snapshot{Revision: 3, Endpoints: []gateway.Endpoint{{Addr: addr, Kind: gateway.Private, ID: "/pe", ServerName: "s", Upstream: t.TempDir()}}}
	if err := p.Apply(snap); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := p.WaitApplied(wctx, 3); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.Revision != 3 || st.Listeners != 1 {
		t.Errorf("Stats() = %+v; want revision 3, 1 listener", st)
	}

	// TLS with a certificate for the endpoint address, from the pushed CA.
	pool := x509.NewCertPool()
	caCert, _ := x509.ParseCertificate(ca.Certificate[0])
	pool.AddCert(caCert)
	tlsHandshake := func() error {
		nc, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
		if err != nil {
			return err
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := nc.Write([]byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f}); err != nil { // SSLRequest
			return err
		}
		var b [1]byte
		if _, err := nc.Read(b[:]); err != nil || b[0] != 'S' {
			return err
		}
		return tls.Client(nc, &tls.Config{RootCAs: pool, ServerName: addr.Addr().String()}).Handshake()
	}
	if err := tlsHandshake(); err != nil {
		t.Errorf("TLS handshake with the gateway process: %v", err)
	}

	// serve stops: the gateway keeps its listener and policy.
	p.Close()
	if err := tlsHandshake(); err != nil {
		t.Errorf("TLS handshake after serve detached: %v", err)
	}
	p = attach()
	if err := p.WaitApplied(wctx, 3); err != nil {
		t.Errorf("WaitApplied(3) after attaching again: %v", err)
	}
	// Stopping for good needs serve detached.
	if err := StopGateway(wctx, dir, "test"); err == nil {
		t.Error("StopGateway while serve is attached succeeded")
	}
	p.Close()
	if err := StopGateway(wctx, dir, "test"); err != nil {
		t.Fatal(err)
	}
	if err := <-ran; err != nil {
		t.Errorf("RunGateway = %v", err)
	}
	if _, err := net.DialTimeout("tcp", addr.String(), time.Second); err == nil {
		t.Error("the endpoint still accepts after the gateway stopped")
	}
	if err := StopGateway(wctx, dir, "test"); err == nil || !strings.Contains(err.Error(), "no pglink gateway runs") {
		t.Errorf("StopGateway with no gateway = %v; want 'no pglink gateway runs'", err)
	}
}
