package gateway

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"
)

// Golden frames, written out by hand from the protocol's "Message Formats".
var (
	sslRequest    = cat(be32(8), be32(80877103)) // 00 00 00 08 04 d2 16 2f
	gssEncRequest = cat(be32(8), be32(80877104)) // 00 00 00 08 04 d2 16 30
	startup       = cat(be32(41), be32(196608), []byte("user\x00postgres\x00database\x00postgres\x00\x00"))
)

const (
	pendingMsg  = `private endpoint connection "pe1.1" to server "srv" is Pending approval`
	pendingHint = "Ask the server's administrator to approve the connection."
)

// pendingFrame is the refusal a client of a Pending private endpoint receives.
func pendingFrame() []byte {
	body := "SFATAL\x00VFATAL\x00C28000\x00M" + pendingMsg + "\x00H" + pendingHint + "\x00\x00"
	return cat([]byte{'E'}, be32(4+len(body)), []byte(body))
}

func TestRefusalFrameGolden(t *testing.T) {
	want := pendingFrame()
	if got := errorResponse("28000", pendingMsg, pendingHint); !bytes.Equal(got, want) {
		t.Errorf("errorResponse(28000) =\n%q\nwant\n%q", got, want)
	}
	// The first bytes, pinned: 'E', length 0x9e (158), then the severity field.
	if got, want := want[:12], []byte{'E', 0, 0, 0, 0x9e, 'S', 'F', 'A', 'T', 'A', 'L', 0}; !bytes.Equal(got, want) {
		t.Errorf("frame head = % x; want % x", got, want)
	}
}

// exchange dials addr, writes each message and returns everything read until EOF.
func exchange(t *testing.T, addr netip.AddrPort, msgs ...[]byte) []byte {
	t.Helper()
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	for _, m := range msgs {
		if _, err := c.Write(m); err != nil {
			t.Fatal(err)
		}
	}
	got, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		// A reset is how a closed socket with unread input ends; anything else is a failure.
		t.Fatalf("read from %s: %v", addr, err)
	}
	return got
}

func TestRefusalOnTheWire(t *testing.T) {
	g := newGateway(t, Config{Now: func() time.Time { return time.Unix(1700000000, 0) }})
	addr := freeAddr(t)
	apply(t, g, 1, Endpoint{Addr: addr, Kind: Private, ID: peID + "1", Server: serverID, ServerName: "srv",
		Upstream: "/nonexistent", Refuse: pendingMsg, Hint: pendingHint})
	if got, want := exchange(t, addr, startup), pendingFrame(); !bytes.Equal(got, want) {
		t.Errorf("answer to a startup message =\n%q\nwant\n%q", got, want)
	}
	// GSSENCRequest, then the startup message: 'N' and the refusal.
	if got, want := exchange(t, addr, gssEncRequest, startup), cat([]byte("N"), pendingFrame()); !bytes.Equal(got, want) {
		t.Errorf("answer to GSSENCRequest + startup =\n%q\nwant\n%q", got, want)
	}
	st := g.Stats()
	if st.Refused[ReasonPending] != 2 || st.Decisions.Count != 2 || st.Decisions.Sum != 0 {
		t.Errorf("Stats() = %+v; want 2 pending refusals, 2 decisions taking 0 on a pinned clock", st)
	}
}

// requireTLSFrame is the refusal a plaintext client of a server with require_secure_transport
// on receives, written out by hand.
func requireTLSFrame() []byte {
	body := "SFATAL\x00VFATAL\x00C28000\x00" +
		"Mconnection requires TLS: server \"srv\" has require_secure_transport on\x00" +
		"HConnect with sslmode=require (or verify-full with the pglink CA), or set the server parameter require_secure_transport to off.\x00\x00"
	return cat([]byte{'E'}, be32(4+len(body)), []byte(body))
}

func TestRequireTLSOnTheWire(t *testing.T) {
	g := newGateway(t, Config{TLS: testTLS(t)})
	addr := freeAddr(t)
	ep := private(addr, "a", "/nonexistent")
	ep.RequireTLS = true
	apply(t, g, 1, ep)
	want := requireTLSFrame()
	// The first bytes, pinned: 'E', length 0xe1 (225), then the severity field.
	if got, head := want[:12], []byte{'E', 0, 0, 0, 0xe1, 'S', 'F', 'A', 'T', 'A', 'L', 0}; !bytes.Equal(got, head) {
		t.Errorf("frame head = % x; want % x", got, head)
	}
	if got := exchange(t, addr, startup); !bytes.Equal(got, want) {
		t.Errorf("answer to a plaintext startup message =\n%q\nwant\n%q", got, want)
	}
	// GSSENCRequest is declined and does not count as encryption.
	if got := exchange(t, addr, gssEncRequest, startup); !bytes.Equal(got, cat([]byte("N"), want)) {
		t.Errorf("answer to GSSENCRequest + startup =\n%q\nwant\n%q", got, cat([]byte("N"), want))
	}
	// Over TLS the endpoint admits the client; the upstream is missing, so 57P03 follows.
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write(sslRequest)
	b := make([]byte, 1)
	if _, err := io.ReadFull(c, b); err != nil || b[0] != 'S' {
		t.Fatalf("answer to SSLRequest = %q, %v; want S", b, err)
	}
	tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true})
	tc.Write(startup)
	got, _ := io.ReadAll(tc)
	if !bytes.Contains(got, []byte("C57P03\x00")) {
		t.Errorf("answer over TLS = %q; want 57P03 (admitted, upstream missing)", got)
	}
	if st := g.Stats(); st.Refused[ReasonInsecureTransport] != 2 || st.Admitted != 1 {
		t.Errorf("Stats() = %+v; want 2 refused for insecure transport, 1 admitted", st)
	}
}

func TestSSLRequestAnswers(t *testing.T) {
	for _, tc := range []struct {
		name string
		tls  *tls.Config
		want byte
	}{
		{"without TLS", nil, 'N'},
		{"with TLS", testTLS(t), 'S'},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGateway(t, Config{TLS: tc.tls})
			addr := freeAddr(t)
			apply(t, g, 1, Endpoint{Addr: addr, Kind: Private, ServerName: "srv", Refuse: pendingMsg, Hint: pendingHint})
			c, err := net.Dial("tcp", addr.String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			c.Write(sslRequest)
			b := make([]byte, 1)
			if _, err := io.ReadFull(c, b); err != nil || b[0] != tc.want {
				t.Fatalf("answer to SSLRequest = %q, %v; want %q", b, err, tc.want)
			}
			var rw io.ReadWriter = c
			if tc.want == 'S' {
				tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true})
				if err := tc.Handshake(); err != nil {
					t.Fatalf("TLS handshake: %v", err)
				}
				rw = tc
			}
			rw.Write(startup)
			got, _ := io.ReadAll(rw)
			if want := pendingFrame(); !bytes.Equal(got, want) {
				t.Errorf("refusal after SSLRequest =\n%q\nwant\n%q", got, want)
			}
		})
	}
}

func TestProtocolErrors(t *testing.T) {
	g := newGateway(t, Config{})
	addr := freeAddr(t)
	apply(t, g, 1, Endpoint{Addr: addr, Kind: Private, ServerName: "srv", Upstream: "/nonexistent"})
	for _, tc := range []struct {
		name string
		in   []byte
		want string // substring of the answer; "" for none
	}{
		{"too short", cat(be32(4), be32(0)), ""},
		{"too long", cat(be32(20000), be32(196608)), ""},
		{"protocol 2.0", cat(be32(8), be32(2<<16)), "unsupported frontend protocol 2.0"},
		{"bad layout", cat(be32(12), be32(196608), []byte("user")), "invalid startup packet layout"},
		{"two SSLRequests", cat(sslRequest, sslRequest), "N"},
		{"two GSSENCRequests", cat(gssEncRequest, gssEncRequest), "N"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := exchange(t, addr, tc.in)
			if tc.want == "" && len(got) != 0 || !bytes.Contains(got, []byte(tc.want)) || len(got) == 1 && string(got) != tc.want {
				t.Errorf("answer = %q; want %q", got, tc.want)
			}
		})
	}
	// A server that cannot be reached: the client hears so, in PostgreSQL's words.
	got := exchange(t, addr, startup)
	if !bytes.Contains(got, []byte("C57P03\x00")) {
		t.Errorf("answer with an unreachable server = %q; want 57P03", got)
	}
}

func TestFramer(t *testing.T) {
	msg := func(typ byte, body string) []byte { return cat([]byte{typ}, be32(4+len(body)), []byte(body)) }
	stream := cat(msg('T', "row description"), msg('D', "data"), msg('C', "SELECT 1\x00"), msg('Z', "I"), msg('N', ""))
	ends := map[int]bool{0: true}
	for off, p := 0, stream; len(p) > 0; {
		n := 5 + int(be32n(p[1:5])) - 4
		off += n
		p = p[n:]
		ends[off] = true
	}
	// Every way of cutting the stream in two must find the same boundaries.
	for cut := 0; cut <= len(stream); cut++ {
		var f framer
		last := f.feed(stream[:cut])
		wantLast := -1
		for i := 0; i <= cut; i++ {
			if ends[i] {
				wantLast = i
			}
		}
		if last != wantLast || f.atBoundary() != ends[cut] {
			t.Fatalf("feed(stream[:%d]) = %d, atBoundary %v; want %d, %v", cut, last, f.atBoundary(), wantLast, ends[cut])
		}
		last = f.feed(stream[cut:])
		if wantLast = -1; cut < len(stream) {
			for i := cut; i <= len(stream); i++ {
				if ends[i] {
					wantLast = i - cut
				}
			}
		} else {
			wantLast = 0
		}
		if last != wantLast || !f.atBoundary() {
			t.Fatalf("feed(stream[%d:]) = %d, atBoundary %v; want %d, true", cut, last, f.atBoundary(), wantLast)
		}
	}
	var f framer
	if got := f.feed([]byte{'X', 0, 0, 0, 3}); got != -1 || f.atBoundary() {
		t.Errorf("feed(length 3) = %d, atBoundary %v; want -1, false", got, f.atBoundary())
	}
}

func be32n(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func TestDecide(t *testing.T) {
	pub := netip.MustParseAddrPort("127.77.0.1:5432")
	priv := netip.MustParseAddrPort("127.77.0.2:5432")
	p, errs := newPolicy(Snapshot{Revision: 1, Endpoints: []Endpoint{
		{Addr: pub, Kind: Public, ServerName: "srv", Upstream: "/s", Allow: []AddrRange{
			{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.9")},
			{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.1")},
		}},
		{Addr: priv, Kind: Private, ServerName: "srv", Upstream: "/s"},
	}})
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	for _, tc := range []struct {
		listen netip.AddrPort
		client string
		admit  bool
		reason Reason
	}{
		{pub, "127.0.0.1", true, ""},
		{pub, "10.0.0.1", true, ""},
		{pub, "10.0.0.9", true, ""},
		{pub, "10.0.0.10", false, ReasonFirewall},
		{pub, "127.0.0.2", false, ReasonFirewall},
		{pub, "::1", false, ReasonFirewall},
		{pub, "::ffff:127.0.0.1", true, ""},
		{priv, "192.0.2.1", true, ""},
		{netip.MustParseAddrPort("127.77.0.3:5432"), "127.0.0.1", false, ReasonRemoved},
	} {
		d := p.decide(tc.listen, netip.MustParseAddr(tc.client), nil)
		if d.admit != tc.admit || d.reason != tc.reason {
			t.Errorf("decide(%s, %s) = %v %q (%s); want %v %q", tc.listen, tc.client, d.admit, d.reason, d.msg, tc.admit, tc.reason)
		}
	}
}

func TestInferReason(t *testing.T) {
	for _, tc := range []struct {
		msg  string
		want Reason
	}{
		{`private endpoint connection "pe.1" to server "s" is Pending approval`, ReasonPending},
		{`private endpoint connection "pe.1" to server "s" was Rejected`, ReasonRejected},
		{`the private endpoint connection of "pe" to server "s" was removed (Disconnected)`, ReasonRemoved},
		{`public network access to server "s" is Disabled`, ReasonPublicDisabled},
		{`server "s" is Stopped`, ReasonStopped},
		{`server "Pending" is Stopped`, ReasonStopped},
		{`something else`, ReasonOther},
	} {
		if got := inferReason(tc.msg); got != tc.want {
			t.Errorf("inferReason(%q) = %q; want %q", tc.msg, got, tc.want)
		}
	}
}

func TestDuplicateAddressRefuses(t *testing.T) {
	addr := netip.MustParseAddrPort("127.77.0.1:5432")
	p, errs := newPolicy(Snapshot{Endpoints: []Endpoint{
		{Addr: addr, Kind: Private, ID: "a", Upstream: "/s"},
		{Addr: addr, Kind: Private, ID: "b", Upstream: "/s"},
		{Kind: Private, ID: "c"},
	}})
	if len(errs) != 2 {
		t.Errorf("newPolicy errors = %v; want 2 (duplicate, invalid address)", errs)
	}
	if d := p.decide(addr, netip.MustParseAddr("127.0.0.1"), nil); d.admit {
		t.Errorf("decide on a duplicated address admitted; want refused")
	}
}
