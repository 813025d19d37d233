package dns

import (
	"bytes"
	"context"
	"encoding/binary"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// FuzzReply feeds raw packets to the query handler: whatever miekg/dns parses gets a reply that
// packs, fits the transport and answers the same ID; nothing panics. The seeds (testdata/fuzz
// and the ones below) run in every `go test`.
func FuzzReply(f *testing.F) {
	for _, q := range []*mdns.Msg{
		query("orders.example.test", mdns.TypeA),
		query("txt.privatelink.example.test", mdns.TypeTXT),
		query("loop1.privatelink.example.test", mdns.TypeANY),
		query("nobody.privatelink.example.test", mdns.TypeAAAA),
		query("www.outside.test", mdns.TypeMX),
	} {
		b, _ := q.Pack()
		f.Add(b, true)
		q.SetEdns0(65535, true)
		b, _ = q.Pack()
		f.Add(b, false)
	}
	f.Add([]byte{}, true)
	f.Add([]byte{0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0, 0x0c}, true) // a pointer loop
	public, private := fuzzZones()
	v := NewView(public, private)
	memo := map[string][]byte{}
	f.Fuzz(func(t *testing.T, raw []byte, udp bool) {
		var req mdns.Msg
		if err := req.Unpack(raw); err != nil {
			return // the server drops what it cannot parse
		}
		m := Reply(v, &req, udp)
		b, err := m.Pack()
		if err != nil {
			t.Fatalf("reply does not pack: %v\n%v", err, m)
		}
		limit := mdns.MaxMsgSize
		if udp {
			limit = advertisedUDPSize
		}
		if len(b) > limit {
			t.Fatalf("reply has %d bytes; at most %d over this transport", len(b), limit)
		}
		if m.Id != req.Id || !m.Response {
			t.Fatalf("reply id %d response %v; want id %d and QR", m.Id, m.Response, req.Id)
		}
		// A memo key captures everything the reply depends on but the ID and the view: the
		// request with another ID and the same key gets the same reply.
		if key, ok := appendMemoKey(nil, &req, udp); ok {
			if prev, seen := memo[string(key)]; seen && !bytes.Equal(prev[2:], b[2:]) {
				t.Fatalf("two requests with memo key %x get different replies:\n%x\n%x", key, prev, b)
			}
			memo[string(key)] = b
		}
	})
}

func fuzzZones() (public, private *Zone) {
	public = NewZone("example.test", nil)
	private = NewZone("privatelink.example.test", nil)
	for _, s := range []string{
		"orders.example.test. 30 IN CNAME orders.privatelink.example.test.",
		"orders.privatelink.example.test. 30 IN A 127.77.0.1",
	} {
		r, _ := mdns.NewRR(s)
		public.Add(r)
	}
	for _, s := range []string{
		"orders.privatelink.example.test. 10 IN A 127.77.0.9",
		"txt.privatelink.example.test. 300 IN TXT \"hello\"",
		"loop1.privatelink.example.test. 300 IN CNAME loop2.privatelink.example.test.",
		"loop2.privatelink.example.test. 300 IN CNAME loop1.privatelink.example.test.",
	} {
		r, _ := mdns.NewRR(s)
		private.Add(r)
	}
	return public, private
}

func testServer(t *testing.T) (*Server, string) {
	t.Helper()
	s, err := New(Config{Listen: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
		Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	public, private := fuzzZones()
	if err := s.Apply(Snapshot{Revision: 1, Public: public}); err != nil {
		t.Fatal(err)
	}
	_ = private
	return s, s.Addr()
}

func exchange(t *testing.T, net, addr string, q *mdns.Msg) *mdns.Msg {
	t.Helper()
	c := &mdns.Client{Net: net, Timeout: 2 * time.Second}
	m, _, err := c.Exchange(q, addr)
	if err != nil {
		t.Fatalf("%s query %s: %v", net, q.Question[0].Name, err)
	}
	return m
}

// TestServerSurvivesMalformed sends malformed, truncated and oversized packets over UDP and
// TCP, and checks that the server still answers a good query on both afterwards.
func TestServerSurvivesMalformed(t *testing.T) {
	_, addr := testServer(t)
	good, _ := query("orders.example.test", mdns.TypeA).Pack()
	bad := [][]byte{
		{},
		{0x00},
		good[:5],           // a truncated header
		good[:len(good)-3], // a truncated question
		append(append([]byte{}, good[:12]...), 0xc0, 0x0c),                        // a compression pointer to itself
		func() []byte { b := append([]byte{}, good...); b[5] = 0xff; return b }(), // 255 questions claimed
		make([]byte, 65000), // oversized, all zero
		func() []byte { b := append([]byte{}, good...); b[2] |= 0x80; return b }(), // a response, not a query
	}
	uc, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	for _, b := range bad {
		if len(b) > 0 && len(b) < 65000 {
			uc.Write(b)
		}
	}
	for _, b := range bad {
		tc, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		frame := make([]byte, 2+len(b))
		binary.BigEndian.PutUint16(frame, uint16(len(b)))
		copy(frame[2:], b)
		tc.SetDeadline(time.Now().Add(time.Second))
		tc.Write(frame)
		buf := make([]byte, 512)
		tc.Read(buf) // FORMERR or nothing, then the server closes or times out
		tc.Close()
	}
	// A TCP client that claims a long message and sends nothing must not block the others.
	stall, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer stall.Close()
	stall.Write([]byte{0x10, 0x00, 0x01})

	for _, network := range []string{"udp", "tcp"} {
		m := exchange(t, network, addr, query("orders.example.test", mdns.TypeA))
		if m.Rcode != mdns.RcodeSuccess || len(m.Answer) != 2 {
			t.Errorf("%s after malformed input: rcode %s, %d answers; want NOERROR and 2", network, mdns.RcodeToString[m.Rcode], len(m.Answer))
		}
	}
}

// TestServerTruncationRetry: a UDP answer too big is truncated and the client's TCP retry gets
// it whole.
func TestServerTruncationRetry(t *testing.T) {
	s, addr := testServer(t)
	big := NewZone("big.test", nil)
	for i := 0; i < 40; i++ {
		r, _ := mdns.NewRR("t.big.test. 60 IN TXT \"" + string(make([]byte, 0)) + "record-" + string(rune('a'+i%26)) + "-0123456789012345678901234567890123456789012345678901234567890123456789\"")
		big.Add(r)
	}
	if err := s.Apply(Snapshot{Revision: 2, Public: big}); err != nil {
		t.Fatal(err)
	}
	m := exchange(t, "udp", addr, query("t.big.test", mdns.TypeTXT))
	if !m.Truncated {
		t.Fatalf("udp answer not truncated (%d records)", len(m.Answer))
	}
	m = exchange(t, "tcp", addr, query("t.big.test", mdns.TypeTXT))
	if m.Truncated || len(m.Answer) != 40 {
		t.Errorf("tcp answer: TC %v, %d records; want all 40", m.Truncated, len(m.Answer))
	}
}

// TestApplyResolvers: a resolver is bound by Apply, answers its view, and is closed when it
// leaves the snapshot; WaitApplied follows revisions.
func TestApplyResolvers(t *testing.T) {
	s, _ := testServer(t)
	public, private := fuzzZones()
	probe, _ := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP("127.0.0.1")})
	port := probe.LocalAddr().(*net.UDPAddr).Port
	probe.Close()
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Apply(Snapshot{Revision: 5, Public: public, Resolvers: []Resolver{{Addr: addr, Network: "vnet", Private: []*Zone{private}}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitApplied(ctx, 5); err != nil {
		t.Fatal(err)
	}
	m := exchange(t, "udp", addr.String(), query("orders.example.test", mdns.TypeA))
	if got := m.Answer[len(m.Answer)-1].(*mdns.A).A.String(); got != "127.77.0.9" {
		t.Errorf("resolver answer = %s; want the private 127.77.0.9", got)
	}
	if err := s.Apply(Snapshot{Revision: 6, Public: public}); err != nil {
		t.Fatal(err)
	}
	if n := s.Resolvers(); n != 0 {
		t.Errorf("Resolvers() = %d after removal; want 0", n)
	}
	short, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	if err := s.WaitApplied(short, 7); err == nil {
		t.Error("WaitApplied(7) returned nil before revision 7 was applied")
	}
}

// TestServerSurvivesPanic: should answering a query panic (here: a view with a nil zone), the
// listener answers SERVFAIL over UDP and TCP and goes on serving once the view is good again.
func TestServerSurvivesPanic(t *testing.T) {
	s, addr := testServer(t)
	good := s.public.view.Load()
	s.public.view.Store(&View{private: []*Zone{nil}})
	for _, n := range []string{"udp", "tcp"} {
		if m := exchange(t, n, addr, query("orders.example.test", mdns.TypeA)); m.Rcode != mdns.RcodeServerFailure {
			t.Errorf("%s answer from a broken view: rcode %s; want SERVFAIL", n, mdns.RcodeToString[m.Rcode])
		}
	}
	s.public.view.Store(good)
	for _, n := range []string{"udp", "tcp"} {
		if m := exchange(t, n, addr, query("orders.example.test", mdns.TypeA)); m.Rcode != mdns.RcodeSuccess || len(m.Answer) == 0 {
			t.Errorf("%s answer after the panic: %v; want the address", n, m)
		}
	}
}
