package gateway

import (
	"crypto/tls"
	"fmt"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"
)

// policy is one applied Snapshot, indexed by listening address. It is immutable.
type policy struct {
	rev    int64
	byAddr map[netip.AddrPort]*Endpoint
}

// newPolicy indexes s. Endpoints that cannot be served are left out or refused (fail closed)
// and reported in the error: an endpoint without a valid address or with port 0 is left out;
// an address claimed twice refuses every client.
func newPolicy(s Snapshot) (*policy, []error) {
	p := &policy{rev: s.Revision, byAddr: make(map[netip.AddrPort]*Endpoint, len(s.Endpoints))}
	var errs []error
	for i := range s.Endpoints {
		ep := s.Endpoints[i]
		if !ep.Addr.IsValid() || ep.Addr.Port() == 0 {
			errs = append(errs, fmt.Errorf("endpoint %s: invalid address %s", ep.ID, ep.Addr))
			continue
		}
		ep.Addr = netip.AddrPortFrom(ep.Addr.Addr().Unmap(), ep.Addr.Port())
		ep.Allow = append([]AddrRange(nil), ep.Allow...)
		if prev, dup := p.byAddr[ep.Addr]; dup {
			errs = append(errs, fmt.Errorf("endpoints %s and %s share address %s", prev.ID, ep.ID, ep.Addr))
			ep.Refuse = fmt.Sprintf("endpoint address %s is claimed by more than one endpoint", ep.Addr)
			ep.Hint = "Report this to the administrator of pglink."
			ep.Reason = ReasonOther
		}
		p.byAddr[ep.Addr] = &ep
	}
	return p, errs
}

// decision is the outcome of the admission rule.
type decision struct {
	admit  bool
	ep     *Endpoint // the endpoint in force; nil if the address has none
	reason Reason    // why not, when !admit
	msg    string    // for the client, when !admit
	hint   string
}

// decide applies the admission rule to a client at address client that dialed listen. It uses
// only the endpoint and the client address, never what the client says. prev, if not nil, is
// the endpoint the session was admitted on, to name it if it is gone.
func (p *policy) decide(listen netip.AddrPort, client netip.Addr, prev *Endpoint) decision {
	ep := p.byAddr[listen]
	switch {
	case ep == nil:
		return decision{reason: ReasonRemoved, msg: removedMessage(listen, prev),
			hint: "The endpoint no longer exists; look up the server's current endpoints."}
	case ep.Refuse != "":
		r := ep.Reason
		if r == "" {
			r = inferReason(ep.Refuse)
		}
		return decision{ep: ep, reason: r, msg: ep.Refuse, hint: ep.Hint}
	case ep.Kind == Public && !allowed(ep.Allow, client):
		return decision{ep: ep, reason: ReasonFirewall,
			msg: fmt.Sprintf("no firewall rule of server %q admits client address %s", ep.ServerName, client),
			hint: fmt.Sprintf("Add a firewall rule to server %q whose range includes %s, or connect through an approved private endpoint.",
				ep.ServerName, client)}
	case ep.Upstream == "":
		return decision{ep: ep, reason: ReasonStopped, msg: fmt.Sprintf("server %q is not running", ep.ServerName),
			hint: "Start the server and try again."}
	}
	return decision{admit: true, ep: ep}
}

// decideSession is decide for a session (not a cancel request) whose transport is TLS of
// version tlsVersion, or plaintext if tlsVersion is 0: an endpoint that admits the client still
// refuses it if the transport does not meet the endpoint's RequireTLS and MinTLSVersion.
func (p *policy) decideSession(listen netip.AddrPort, client netip.Addr, tlsVersion uint16, prev *Endpoint) decision {
	d := p.decide(listen, client, prev)
	if !d.admit {
		return d
	}
	ep := d.ep
	switch {
	case ep.RequireTLS && tlsVersion == 0:
		return decision{ep: ep, reason: ReasonInsecureTransport,
			msg:  fmt.Sprintf("connection requires TLS: server %q has require_secure_transport on", ep.ServerName),
			hint: "Connect with sslmode=require (or verify-full with the pglink CA), or set the server parameter require_secure_transport to off."}
	case tlsVersion != 0 && tlsVersion < ep.MinTLSVersion:
		return decision{ep: ep, reason: ReasonInsecureTransport,
			msg: fmt.Sprintf("connection uses %s, below the ssl_min_protocol_version %s of server %q",
				tlsName(tlsVersion), tlsName(ep.MinTLSVersion), ep.ServerName),
			hint: fmt.Sprintf("Connect with a client that supports %s, or lower the server parameter ssl_min_protocol_version.", tlsName(ep.MinTLSVersion))}
	}
	return d
}

// tlsName names a TLS version as PostgreSQL's ssl_min_protocol_version does ("TLSv1.2").
func tlsName(v uint16) string {
	switch v {
	case tls.VersionTLS10:
		return "TLSv1"
	case tls.VersionTLS11:
		return "TLSv1.1"
	case tls.VersionTLS12:
		return "TLSv1.2"
	case tls.VersionTLS13:
		return "TLSv1.3"
	}
	return fmt.Sprintf("TLS version 0x%04x", v)
}

func allowed(rs []AddrRange, a netip.Addr) bool {
	for _, r := range rs {
		if r.Contains(a) {
			return true
		}
	}
	return false
}

func removedMessage(listen netip.AddrPort, prev *Endpoint) string {
	switch {
	case prev == nil:
		return fmt.Sprintf("no endpoint is served at %s", listen)
	case prev.Kind == Private:
		return fmt.Sprintf("private endpoint %q to server %q was removed", lastSegment(prev.ID), prev.ServerName)
	default:
		return fmt.Sprintf("the public endpoint of server %q was removed", prev.ServerName)
	}
}

func lastSegment(id string) string {
	return id[strings.LastIndexByte(id, '/')+1:]
}

// inferReason classifies a refusal message by its wording, ignoring quoted names.
func inferReason(msg string) Reason {
	var b strings.Builder
	quoted := false
	for _, r := range msg {
		if r == '"' {
			quoted = !quoted
			continue
		}
		if !quoted {
			b.WriteRune(r)
		}
	}
	m := b.String()
	lower := strings.ToLower(m)
	switch {
	case strings.Contains(m, "Pending"):
		return ReasonPending
	case strings.Contains(m, "Rejected"):
		return ReasonRejected
	case strings.Contains(lower, "removed") || strings.Contains(m, "Disconnected"):
		return ReasonRemoved
	case strings.Contains(lower, "public network access") || strings.Contains(lower, "public access"):
		return ReasonPublicDisabled
	case strings.Contains(lower, "firewall"):
		return ReasonFirewall
	case strings.Contains(lower, "stopped") || strings.Contains(lower, "stopping") || strings.Contains(lower, "not running") ||
		strings.Contains(lower, "starting") || strings.Contains(lower, "restarting") || strings.Contains(lower, "provisioning"):
		return ReasonStopped
	}
	return ReasonOther
}

// decisionBounds are the upper bounds of the decision latency histogram's buckets.
var decisionBounds = [...]time.Duration{
	time.Microsecond, 2 * time.Microsecond, 5 * time.Microsecond, 10 * time.Microsecond,
	20 * time.Microsecond, 50 * time.Microsecond, 100 * time.Microsecond, time.Millisecond, 10 * time.Millisecond,
}

// counters are the gateway's metrics, updated atomically off any lock.
type counters struct {
	admitted  atomic.Uint64
	refused   [len(reasons)]atomic.Uint64
	revoked   atomic.Uint64
	cancels   atomic.Uint64
	listeners atomic.Int64
	decisions struct {
		buckets [len(decisionBounds) + 1]atomic.Uint64 // per bucket, not cumulative; the last is +Inf
		sum     atomic.Int64                           // nanoseconds
	}
}

func (c *counters) refuse(r Reason) {
	for i, x := range reasons {
		if x == r {
			c.refused[i].Add(1)
			return
		}
	}
	c.refused[len(reasons)-1].Add(1)
}

func (c *counters) observe(d time.Duration) {
	i := 0
	for i < len(decisionBounds) && d > decisionBounds[i] {
		i++
	}
	c.decisions.buckets[i].Add(1)
	c.decisions.sum.Add(int64(d))
}

// Histogram is a latency histogram in the Prometheus style.
type Histogram struct {
	Bounds []time.Duration // upper bounds of the buckets, ascending; +Inf is implied
	Counts []uint64        // Counts[i] is the number of observations ≤ Bounds[i] (cumulative)
	Count  uint64          // all observations
	Sum    time.Duration   // sum of all observations
}

// Stats are the gateway's counters, for metrics. Totals count since New.
type Stats struct {
	Revision     int64             // last applied snapshot revision
	Listeners    int               // bound endpoint listeners
	SessionsOpen int               // admitted sessions not yet closed
	Admitted     uint64            // clients admitted
	Refused      map[Reason]uint64 // clients refused, by reason; every Reason is present
	Revoked      uint64            // sessions closed because a new policy no longer admits them
	Cancels      uint64            // cancel requests forwarded to PostgreSQL
	BytesIn      uint64            // client to server, all sessions
	BytesOut     uint64            // server to client, all sessions
	Decisions    Histogram         // latency of admission decisions
	EventLoops   int               // event loops relaying sessions (0: goroutines relay them)
}

// Stats returns the current counters. It does not wait for Apply.
func (g *Gateway) Stats() Stats {
	st := Stats{
		Listeners:  int(g.stats.listeners.Load()),
		Admitted:   g.stats.admitted.Load(),
		Refused:    make(map[Reason]uint64, len(reasons)),
		Revoked:    g.stats.revoked.Load(),
		Cancels:    g.stats.cancels.Load(),
		EventLoops: len(g.reactors),
	}
	for i, r := range reasons {
		st.Refused[r] = g.stats.refused[i].Load()
	}
	h := &st.Decisions
	h.Bounds = decisionBounds[:]
	h.Counts = make([]uint64, len(decisionBounds))
	for i := range g.stats.decisions.buckets {
		h.Count += g.stats.decisions.buckets[i].Load()
		if i < len(decisionBounds) {
			h.Counts[i] = h.Count
		}
	}
	h.Sum = time.Duration(g.stats.decisions.sum.Load())

	g.mu.Lock()
	st.Revision = g.applied
	st.BytesIn, st.BytesOut = g.ended.in, g.ended.out
	for c := range g.conns {
		if c.admitted {
			st.SessionsOpen++
			st.BytesIn += c.bytesIn.Load()
			st.BytesOut += c.bytesOut.Load()
		}
	}
	g.mu.Unlock()
	return st
}
