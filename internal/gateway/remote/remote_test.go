package remote

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/gateway"
)

// fakeGate records what it is given.
type fakeGate struct {
	mu      sync.Mutex
	applied int64
	last    gateway.Snapshot
	err     error
}

func (f *fakeGate) Apply(s gateway.Snapshot) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.last = s
	f.applied = max(f.applied, s.Revision)
	return f.err
}

func (f *fakeGate) Applied() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.applied
}

func (f *fakeGate) Stats() gateway.Stats {
	return gateway.Stats{Revision: f.Applied(), SessionsOpen: 3, Refused: map[gateway.Reason]uint64{gateway.ReasonPending: 2}}
}

// ServerSessions answers one session of server "/s1" and none of any other.
func (f *fakeGate) ServerSessions(_ context.Context, server string) ([]gateway.SessionInfo, error) {
	if server != "/s1" {
		return nil, nil
	}
	return []gateway.SessionInfo{{ID: 4, Server: "/s1", Endpoint: "/pe1", Kind: gateway.Private, TLS: true,
		Client: netip.MustParseAddrPort("127.0.0.2:40000"), Listen: netip.MustParseAddrPort("127.77.0.6:5432"),
		Started: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC), BytesIn: 10, BytesOut: 20}}, nil
}

type served struct {
	path    string
	gate    *fakeGate
	certs   chan Certs
	stopped chan string
}

// serve runs a Server on a fresh socket until the test ends.
func serve(t *testing.T) *served {
	t.Helper()
	s := &served{path: filepath.Join(t.TempDir(), "control.sock"), gate: &fakeGate{},
		certs: make(chan Certs, 1), stopped: make(chan string, 1)}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: s.path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv := &Server{Gate: s.gate, Log: slog.New(slog.NewTextHandler(t.Output(), nil)),
		SetCerts: func(c Certs) error { s.certs <- c; return nil },
		Stop:     func(reason string) { s.stopped <- reason; cancel() }}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve = %v", err)
		}
	})
	return s
}

func TestRoundTrip(t *testing.T) {
	s := serve(t)
	ctx := t.Context()
	c, err := Dial(ctx, s.path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	snap := gateway.Snapshot{Revision: 7, Endpoints: []gateway.Endpoint{{
		Addr: netip.MustParseAddrPort("127.77.0.5:5432"), Kind: gateway.Public, ID: "/x", Upstream: "/tmp/s",
		Allow: []gateway.AddrRange{{Start: netip.MustParseAddr("10.0.0.1"), End: netip.MustParseAddr("10.0.0.9")}},
	}}}
	if got, err := c.Apply(ctx, snap); err != nil || got != 7 {
		t.Fatalf("Apply = %d, %v; want 7, nil", got, err)
	}
	if got := s.gate.last; got.Endpoints[0].Addr != snap.Endpoints[0].Addr || got.Endpoints[0].Allow[0] != snap.Endpoints[0].Allow[0] {
		t.Errorf("gateway got %+v; want %+v", got, snap)
	}
	s.gate.err = errors.New("listen on 127.77.0.5:5432: address in use")
	var ae *ApplyError
	if got, err := c.Apply(ctx, gateway.Snapshot{Revision: 8}); !errors.As(err, &ae) || got != 8 {
		t.Errorf("Apply with a bind failure = %d, %v; want 8, *ApplyError", got, err)
	}
	if got, err := c.Ping(ctx); err != nil || got != 8 {
		t.Errorf("Ping = %d, %v; want 8, nil", got, err)
	}
	st, err := c.Stats(ctx)
	if err != nil || st.SessionsOpen != 3 || st.Refused[gateway.ReasonPending] != 2 {
		t.Errorf("Stats = %+v, %v; want 3 open, 2 refused pending", st, err)
	}
	want, _ := s.gate.ServerSessions(ctx, "/s1")
	if got, err := c.ServerSessions(ctx, "/s1"); err != nil || len(got) != 1 || got[0] != want[0] {
		t.Errorf("ServerSessions(/s1) = %+v, %v; want %+v", got, err, want)
	}
	if got, err := c.ServerSessions(ctx, "/s2"); err != nil || got == nil || len(got) != 0 {
		t.Errorf("ServerSessions(/s2) = %#v, %v; want an empty list", got, err)
	}
	if err := c.SetCerts(ctx, Certs{Cert: "C", Key: "K"}); err != nil {
		t.Fatal(err)
	}
	if got := <-s.certs; got.Cert != "C" || got.Key != "K" {
		t.Errorf("certs = %+v", got)
	}

	// One client at a time.
	if _, err := Dial(ctx, s.path); err == nil || !strings.Contains(err.Error(), "controls this gateway") {
		t.Errorf("second Dial = %v; want refused", err)
	}

	if err := c.Stop(ctx, "upgrade"); err != nil {
		t.Fatal(err)
	}
	if got := <-s.stopped; got != "upgrade" {
		t.Errorf("stop reason = %q; want upgrade", got)
	}
	if _, err := c.Ping(ctx); err == nil {
		t.Error("Ping after Stop succeeded")
	}
}

func TestRefusesOtherVersions(t *testing.T) {
	s := serve(t)
	for _, tc := range []struct {
		hello string
		want  string
	}{
		{`{"op":"hello","version":2}`, "version 2 spoken; this gateway speaks version 1"},
		{`{"op":"stats"}`, `first control message is "stats"`},
	} {
		nc, err := net.Dial("unix", s.path)
		if err != nil {
			t.Fatal(err)
		}
		nc.Write([]byte(tc.hello + "\n"))
		line, err := bufio.NewReader(nc).ReadBytes('\n')
		nc.Close()
		if err != nil {
			t.Fatal(err)
		}
		var resp response
		if err := json.Unmarshal(line, &resp); err != nil {
			t.Fatal(err)
		}
		if resp.OK || !strings.Contains(resp.Error, tc.want) {
			t.Errorf("hello %s: got %+v; want an error containing %q", tc.hello, resp, tc.want)
		}
	}
	// A client that was refused does not hold the gateway.
	c, err := Dial(t.Context(), s.path)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

func TestMessageSizeIsBounded(t *testing.T) {
	s := serve(t)
	c, err := Dial(t.Context(), s.path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	big := gateway.Snapshot{Revision: 1, Endpoints: make([]gateway.Endpoint, 1)}
	big.Endpoints[0].Refuse = strings.Repeat("x", MaxMessage)
	if _, err := c.Apply(t.Context(), big); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Apply of a %d-byte snapshot = %v; want ErrTooLarge", MaxMessage, err)
	}
	if _, err := c.Ping(t.Context()); err != nil {
		t.Errorf("Ping after a refused message = %v", err)
	}
}
