package dns

import (
	"encoding/hex"
	"net"
	"strings"
	"testing"

	mdns "github.com/miekg/dns"
)

func rr(t *testing.T, s string) mdns.RR {
	t.Helper()
	r, err := mdns.NewRR(s)
	if err != nil {
		t.Fatalf("NewRR(%q): %v", s, err)
	}
	return r
}

// testZones returns the public zone of suffix example.test (orders has a private endpoint,
// plain has none) and a private zone privatelink.example.test holding orders' endpoint.
func testZones(t *testing.T) (public, private *Zone) {
	public = NewZone("example.test", nil)
	public.Add(rr(t, "orders.example.test. 30 IN CNAME orders.privatelink.example.test."))
	public.Add(rr(t, "orders.privatelink.example.test. 30 IN A 127.77.0.1"))
	public.Add(rr(t, "plain.example.test. 30 IN A 127.77.0.2"))
	private = NewZone("privatelink.example.test", nil)
	private.Add(rr(t, "orders.privatelink.example.test. 10 IN A 127.77.0.9"))
	private.Add(rr(t, "txt.privatelink.example.test. 300 IN TXT \"hello\""))
	private.Add(rr(t, "a.b.privatelink.example.test. 300 IN A 10.0.0.1"))
	private.Add(rr(t, "loop1.privatelink.example.test. 300 IN CNAME loop2.privatelink.example.test."))
	private.Add(rr(t, "loop2.privatelink.example.test. 300 IN CNAME loop1.privatelink.example.test."))
	private.Add(rr(t, "out.privatelink.example.test. 300 IN CNAME www.elsewhere.test."))
	return public, private
}

func query(name string, qtype uint16) *mdns.Msg {
	m := new(mdns.Msg)
	m.SetQuestion(mdns.Fqdn(name), qtype)
	return m
}

// answers renders a reply's answer section compactly: "name TYPE data" per record.
func answers(m *mdns.Msg) string {
	var out []string
	for _, a := range m.Answer {
		f := strings.Fields(a.String())
		out = append(out, f[0]+" "+f[3]+" "+strings.Join(f[4:], " "))
	}
	return strings.Join(out, "; ")
}

func TestResolve(t *testing.T) {
	public, private := testZones(t)
	publicView := NewView(public)
	linked := NewView(public, private)
	tests := []struct {
		view    *View
		name    string
		qtype   uint16
		rcode   int
		answer  string
		soaAuth bool // the authority section holds the SOA (negative answers)
	}{
		// The public view: CNAME to the privatelink name, answered with the public endpoint.
		{publicView, "orders.example.test", mdns.TypeA, mdns.RcodeSuccess,
			"orders.example.test. CNAME orders.privatelink.example.test.; orders.privatelink.example.test. A 127.77.0.1", false},
		{publicView, "PLAIN.example.test", mdns.TypeA, mdns.RcodeSuccess, "plain.example.test. A 127.77.0.2", false},
		{publicView, "nobody.example.test", mdns.TypeA, mdns.RcodeNameError, "", true},
		{publicView, "plain.example.test", mdns.TypeAAAA, mdns.RcodeSuccess, "", true},
		{publicView, "example.test", mdns.TypeSOA, mdns.RcodeSuccess,
			"example.test. SOA azureprivatedns.net. azureprivatedns-host.microsoft.com. 1 3600 300 2419200 10", false},
		{publicView, "www.outside.test", mdns.TypeA, mdns.RcodeRefused, "", false},
		// Nothing of a private zone is visible publicly.
		{publicView, "txt.privatelink.example.test", mdns.TypeTXT, mdns.RcodeNameError, "", true},
		// A linked view: the private zone wins for its names, the CNAME leads into it.
		{linked, "orders.example.test", mdns.TypeA, mdns.RcodeSuccess,
			"orders.example.test. CNAME orders.privatelink.example.test.; orders.privatelink.example.test. A 127.77.0.9", false},
		{linked, "orders.privatelink.example.test", mdns.TypeA, mdns.RcodeSuccess, "orders.privatelink.example.test. A 127.77.0.9", false},
		{linked, "plain.example.test", mdns.TypeA, mdns.RcodeSuccess, "plain.example.test. A 127.77.0.2", false},
		// A name in a linked zone without a record is NXDOMAIN, even if public DNS knows it.
		{linked, "plain.privatelink.example.test", mdns.TypeA, mdns.RcodeNameError, "", true},
		{linked, "txt.privatelink.example.test", mdns.TypeTXT, mdns.RcodeSuccess, "txt.privatelink.example.test. TXT \"hello\"", false},
		{linked, "txt.privatelink.example.test", mdns.TypeA, mdns.RcodeSuccess, "", true},
		// An empty non-terminal is NODATA, not NXDOMAIN.
		{linked, "b.privatelink.example.test", mdns.TypeA, mdns.RcodeSuccess, "", true},
		{linked, "loop1.privatelink.example.test", mdns.TypeA, mdns.RcodeServerFailure,
			"loop1.privatelink.example.test. CNAME loop2.privatelink.example.test.; loop2.privatelink.example.test. CNAME loop1.privatelink.example.test.", false},
		{linked, "out.privatelink.example.test", mdns.TypeA, mdns.RcodeSuccess, "out.privatelink.example.test. CNAME www.elsewhere.test.", false},
		{linked, "out.privatelink.example.test", mdns.TypeCNAME, mdns.RcodeSuccess, "out.privatelink.example.test. CNAME www.elsewhere.test.", false},
		{linked, "elsewhere.test", mdns.TypeA, mdns.RcodeRefused, "", false},
	}
	for _, tt := range tests {
		m := Reply(tt.view, query(tt.name, tt.qtype), true)
		if m.Rcode != tt.rcode {
			t.Errorf("%s %s: rcode = %s; want %s", tt.name, mdns.TypeToString[tt.qtype], mdns.RcodeToString[m.Rcode], mdns.RcodeToString[tt.rcode])
		}
		if got := answers(m); got != tt.answer {
			t.Errorf("%s %s: answer = %q; want %q", tt.name, mdns.TypeToString[tt.qtype], got, tt.answer)
		}
		gotSOA := len(m.Ns) == 1 && m.Ns[0].Header().Rrtype == mdns.TypeSOA
		if gotSOA != tt.soaAuth {
			t.Errorf("%s %s: SOA in authority = %v; want %v (%v)", tt.name, mdns.TypeToString[tt.qtype], gotSOA, tt.soaAuth, m.Ns)
		}
		if tt.rcode != mdns.RcodeRefused && !m.Authoritative {
			t.Errorf("%s %s: AA not set", tt.name, mdns.TypeToString[tt.qtype])
		}
		if m.RecursionAvailable {
			t.Errorf("%s %s: RA set; the server never recurses", tt.name, mdns.TypeToString[tt.qtype])
		}
	}
}

func TestLongestZoneWins(t *testing.T) {
	outer := NewZone("example.test", nil)
	outer.Add(rr(t, "db.inner.example.test. 60 IN A 10.0.0.1"))
	inner := NewZone("inner.example.test", nil)
	inner.Add(rr(t, "db.inner.example.test. 60 IN A 10.0.0.2"))
	for _, v := range []*View{NewView(nil, outer, inner), NewView(nil, inner, outer)} {
		m := Reply(v, query("db.inner.example.test", mdns.TypeA), true)
		if got, want := answers(m), "db.inner.example.test. A 10.0.0.2"; got != want {
			t.Errorf("answer = %q; want %q", got, want)
		}
	}
}

func TestWildcard(t *testing.T) {
	z := NewZone("example.test", nil)
	z.Add(rr(t, "*.apps.example.test. 60 IN A 10.0.0.7"))
	z.Add(rr(t, "db.apps.example.test. 60 IN A 10.0.0.8"))
	z.Add(rr(t, "x.other.example.test. 60 IN A 10.0.0.9"))
	v := NewView(nil, z)
	for _, tt := range []struct {
		name   string
		rcode  int
		answer string
	}{
		{"web.apps.example.test", mdns.RcodeSuccess, "web.apps.example.test. A 10.0.0.7"},
		{"a.b.apps.example.test", mdns.RcodeSuccess, "a.b.apps.example.test. A 10.0.0.7"},
		{"db.apps.example.test", mdns.RcodeSuccess, "db.apps.example.test. A 10.0.0.8"},
		{"sub.db.apps.example.test", mdns.RcodeNameError, ""}, // db.apps exists: it is the closest encloser, without a wildcard
		{"y.other.example.test", mdns.RcodeNameError, ""},
	} {
		m := Reply(v, query(tt.name, mdns.TypeA), true)
		if m.Rcode != tt.rcode || answers(m) != tt.answer {
			t.Errorf("%s = %s %q; want %s %q", tt.name, mdns.RcodeToString[m.Rcode], answers(m), mdns.RcodeToString[tt.rcode], tt.answer)
		}
	}
}

func TestNegativeTTL(t *testing.T) {
	soa := &mdns.SOA{Ns: "ns.example.test.", Mbox: "h.example.test.", Serial: 7, Minttl: 42}
	soa.Hdr.Ttl = 3600
	z := NewZone("example.test", soa)
	m := Reply(NewView(nil, z), query("none.example.test", mdns.TypeA), true)
	if len(m.Ns) != 1 || m.Ns[0].Header().Ttl != 42 {
		t.Fatalf("authority = %v; want the SOA with TTL 42", m.Ns)
	}
}

func TestReplyProtocol(t *testing.T) {
	public, private := testZones(t)
	v := NewView(public, private)
	// A big answer: 40 TXT records of 100 bytes.
	big := NewZone("big.test", nil)
	for i := 0; i < 40; i++ {
		big.Add(rr(t, "t.big.test. 60 IN TXT \""+strings.Repeat(string(rune('a'+i%26)), 100)+"\""))
	}
	bv := NewView(nil, big)

	t.Run("udp truncates with TC", func(t *testing.T) {
		m := Reply(bv, query("t.big.test", mdns.TypeTXT), true)
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		if !m.Truncated || len(b) > 512 {
			t.Errorf("TC = %v, %d bytes; want TC and at most 512", m.Truncated, len(b))
		}
	})
	t.Run("edns0 raises the limit to 1232", func(t *testing.T) {
		q := query("t.big.test", mdns.TypeTXT)
		q.SetEdns0(4096, false)
		m := Reply(bv, q, true)
		b, _ := m.Pack()
		if !m.Truncated || len(b) > 1232 || len(b) <= 512 {
			t.Errorf("TC = %v, %d bytes; want TC and 513-1232", m.Truncated, len(b))
		}
		if m.IsEdns0() == nil || m.IsEdns0().UDPSize() != 1232 {
			t.Errorf("reply OPT = %v; want UDP size 1232", m.IsEdns0())
		}
	})
	t.Run("tcp answers in full", func(t *testing.T) {
		m := Reply(bv, query("t.big.test", mdns.TypeTXT), false)
		if m.Truncated || len(m.Answer) != 40 {
			t.Errorf("TC = %v, %d answers; want all 40", m.Truncated, len(m.Answer))
		}
	})
	t.Run("bad EDNS version", func(t *testing.T) {
		q := query("orders.example.test", mdns.TypeA)
		q.SetEdns0(1232, false)
		q.IsEdns0().SetVersion(1)
		m := Reply(v, q, true)
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		var back mdns.Msg
		if err := back.Unpack(b); err != nil {
			t.Fatal(err)
		}
		if back.Rcode != mdns.RcodeBadVers {
			t.Errorf("rcode = %s; want BADVERS", mdns.RcodeToString[back.Rcode])
		}
	})
	for _, tt := range []struct {
		name  string
		msg   func() *mdns.Msg
		rcode int
	}{
		{"notify", func() *mdns.Msg { m := query("example.test", mdns.TypeSOA); m.Opcode = mdns.OpcodeNotify; return m }, mdns.RcodeNotImplemented},
		{"no question", func() *mdns.Msg { m := query("example.test", mdns.TypeA); m.Question = nil; return m }, mdns.RcodeFormatError},
		{"two questions", func() *mdns.Msg {
			m := query("example.test", mdns.TypeA)
			m.Question = append(m.Question, m.Question[0])
			return m
		}, mdns.RcodeFormatError},
		{"chaos class", func() *mdns.Msg {
			m := query("version.bind", mdns.TypeTXT)
			m.Question[0].Qclass = mdns.ClassCHAOS
			return m
		}, mdns.RcodeRefused},
		{"zone transfer", func() *mdns.Msg { return query("privatelink.example.test", mdns.TypeAXFR) }, mdns.RcodeRefused},
		{"nil view", nil, mdns.RcodeRefused},
	} {
		t.Run(tt.name, func(t *testing.T) {
			view, q := v, query("orders.example.test", mdns.TypeA)
			if tt.msg == nil {
				view = nil
			} else {
				q = tt.msg()
			}
			if m := Reply(view, q, true); m.Rcode != tt.rcode {
				t.Errorf("rcode = %s; want %s", mdns.RcodeToString[m.Rcode], mdns.RcodeToString[tt.rcode])
			}
		})
	}
}

// goldenAnswer is the reply to orders.example.test A (id 0x1234, EDNS0 1232) in the public view.
const goldenAnswer = "123485000001000200000001066f7264657273076578616d706c6504746573740000010001066f7264657273076578616d706c65047465737400000500010000001e0021066f72646572730b707269766174656c696e6b076578616d706c65047465737400066f72646572730b707269766174656c696e6b076578616d706c65047465737400000100010000001e00047f4d000100002904d0000000000000"

// TestAnswerGolden pins the bytes of one answer: the public CNAME chain with EDNS0.
func TestAnswerGolden(t *testing.T) {
	public, _ := testZones(t)
	q := query("orders.example.test", mdns.TypeA)
	q.Id = 0x1234
	q.SetEdns0(1232, false)
	m := Reply(NewView(public), q, true)
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(b); got != goldenAnswer {
		t.Errorf("answer bytes = %s\nwant %s", got, goldenAnswer)
	}
	// Decode and compare structurally: header flags, sections and TTLs.
	var back mdns.Msg
	if err := back.Unpack(b); err != nil {
		t.Fatal(err)
	}
	if back.Id != 0x1234 || !back.Response || !back.Authoritative || back.RecursionAvailable || back.Truncated {
		t.Errorf("header = %+v", back.MsgHdr)
	}
	if got, want := answers(&back), "orders.example.test. CNAME orders.privatelink.example.test.; orders.privatelink.example.test. A 127.77.0.1"; got != want {
		t.Errorf("answer = %q; want %q", got, want)
	}
	if back.Answer[0].Header().Ttl != 30 || !back.Answer[1].(*mdns.A).A.Equal(net.ParseIP("127.77.0.1")) {
		t.Errorf("answer records = %v", back.Answer)
	}
}
