// Package dns is pglink's nameserver: the public view of servers' names on --dns-listen and one
// resolver per virtual network, which answers from the private DNS zones linked to that network
// first and from the public view otherwise. It answers authoritatively from memory and never
// recurses to the outside world. Messages are parsed and built with github.com/miekg/dns.
package dns

import (
	"sort"
	"strings"

	mdns "github.com/miekg/dns"
)

// Zone is one authoritative zone: its SOA and its records by owner name. A Zone is immutable
// once handed to a Snapshot and safe for concurrent reads.
type Zone struct {
	name    string // canonical: lower case, fully qualified
	soa     *mdns.SOA
	records map[string][]mdns.RR // by canonical owner name
	names   []string             // sorted owner names, for empty non-terminals
}

// NewZone returns an empty zone named name whose SOA is soa (its owner is set to the zone's
// name). soa may be nil: a default one is made.
func NewZone(name string, soa *mdns.SOA) *Zone {
	name = Canonical(name)
	if soa == nil {
		soa = &mdns.SOA{Ns: "azureprivatedns.net.", Mbox: "azureprivatedns-host.microsoft.com.", Serial: 1,
			Refresh: 3600, Retry: 300, Expire: 2419200, Minttl: 10}
		soa.Hdr.Ttl = 3600
	}
	soa = mdns.Copy(soa).(*mdns.SOA)
	soa.Hdr = mdns.RR_Header{Name: name, Rrtype: mdns.TypeSOA, Class: mdns.ClassINET, Ttl: soa.Hdr.Ttl}
	return &Zone{name: name, soa: soa, records: map[string][]mdns.RR{}}
}

// Name returns the zone's canonical name ("privatelink.postgres.database.azure.com.").
func (z *Zone) Name() string { return z.name }

// Add adds rr to the zone; records outside the zone and SOA records are ignored (the zone has
// its own SOA). Add must not be called once the zone is in a Snapshot.
func (z *Zone) Add(rr mdns.RR) {
	h := rr.Header()
	owner := Canonical(h.Name)
	if !inZone(owner, z.name) || h.Rrtype == mdns.TypeSOA {
		return
	}
	h.Name, h.Class = owner, mdns.ClassINET
	if _, ok := z.records[owner]; !ok {
		i := sort.SearchStrings(z.names, owner)
		z.names = append(z.names, "")
		copy(z.names[i+1:], z.names[i:])
		z.names[i] = owner
	}
	z.records[owner] = append(z.records[owner], rr)
}

// Canonical returns name in lower case and fully qualified.
func Canonical(name string) string { return strings.ToLower(mdns.Fqdn(name)) }

// inZone reports whether the canonical name lies in the canonical zone.
func inZone(name, zone string) bool {
	return name == zone || strings.HasSuffix(name, "."+zone) || zone == "."
}

// hasBelow reports whether some owner name lies strictly below name (name is then an empty
// non-terminal if it has no records of its own).
func (z *Zone) hasBelow(name string) bool {
	suffix := "." + name
	for _, n := range z.names {
		if strings.HasSuffix(n, suffix) {
			return true
		}
	}
	return false
}

// View is what one resolver answers from: private zones (the longest one containing a name
// wins) before the public zone. A View is immutable and safe for concurrent use.
type View struct {
	private []*Zone
	public  *Zone
}

// NewView returns the view of the zones private, then public (either may be empty or nil).
func NewView(public *Zone, private ...*Zone) *View {
	p := append([]*Zone(nil), private...)
	sort.Slice(p, func(i, j int) bool { return len(p[i].name) > len(p[j].name) })
	return &View{private: p, public: public}
}

// zoneFor returns the zone that answers name: the longest private zone containing it, else the
// public zone if it contains it, else nil.
func (v *View) zoneFor(name string) *Zone {
	for _, z := range v.private { // longest first
		if inZone(name, z.name) {
			return z
		}
	}
	if v.public != nil && inZone(name, v.public.name) {
		return v.public
	}
	return nil
}

// maxChain bounds CNAME chasing inside one answer.
const maxChain = 8

// Resolve answers the question (name, qtype) from the view into m (which must be a reply
// skeleton: SetReply done): answer and authority sections and rcode, with the AA bit. A
// name outside every zone of the view is REFUSED. CNAMEs are followed inside the view, a
// target outside it ends the chain with what is known.
func (v *View) Resolve(m *mdns.Msg, name string, qtype uint16) {
	name = Canonical(name)
	seen := map[string]bool{}
	for hop := 0; ; hop++ {
		z := v.zoneFor(name)
		if z == nil {
			if hop == 0 {
				m.Rcode = mdns.RcodeRefused
			}
			return // the CNAME target lies outside: the client resolves it elsewhere
		}
		m.Authoritative = true
		rrs, exists := z.records[name]
		if !exists && name != z.name {
			if z.hasBelow(name) { // an empty non-terminal: NODATA
				m.Ns = []mdns.RR{z.negativeSOA()}
				return
			}
			if rrs = z.wildcard(name); rrs == nil {
				m.Ns = []mdns.RR{z.negativeSOA()}
				m.Rcode = mdns.RcodeNameError
				return
			}
		}
		var cname *mdns.CNAME
		matched := false
		for _, rr := range rrs {
			t := rr.Header().Rrtype
			if t == qtype || qtype == mdns.TypeANY {
				m.Answer = append(m.Answer, rr)
				matched = true
			}
			if c, ok := rr.(*mdns.CNAME); ok {
				cname = c
			}
		}
		if name == z.name && (qtype == mdns.TypeSOA || qtype == mdns.TypeANY) {
			m.Answer = append(m.Answer, z.soa)
			matched = true
		}
		if matched {
			return
		}
		if cname == nil {
			m.Ns = []mdns.RR{z.negativeSOA()} // NODATA
			return
		}
		m.Answer = append(m.Answer, cname)
		seen[name] = true
		name = Canonical(cname.Target)
		if seen[name] || hop+1 >= maxChain {
			m.Rcode = mdns.RcodeServerFailure // a loop, or a chain too long to follow
			return
		}
	}
}

// wildcard returns the records of the wildcard that covers name, which does not exist in the
// zone, renamed to name (RFC 4592): the wildcard "*.<closest encloser>", where the closest
// encloser is name's nearest ancestor that exists (with records or names below). nil if there
// is none.
func (z *Zone) wildcard(name string) []mdns.RR {
	for p := name; p != z.name; {
		_, rest, ok := strings.Cut(p, ".")
		if !ok || rest == "" {
			return nil
		}
		p = rest
		if _, exists := z.records[p]; !exists && p != z.name && !z.hasBelow(p) {
			continue
		}
		w := z.records["*."+p]
		if w == nil {
			return nil
		}
		out := make([]mdns.RR, len(w))
		for i, rr := range w {
			out[i] = mdns.Copy(rr)
			out[i].Header().Name = name
		}
		return out
	}
	return nil
}

// negativeSOA is the zone's SOA as sent in the authority section of a negative answer: its TTL
// is the smaller of the SOA's TTL and its minimum (RFC 2308).
func (z *Zone) negativeSOA() mdns.RR {
	s := mdns.Copy(z.soa).(*mdns.SOA)
	s.Hdr.Ttl = min(s.Hdr.Ttl, s.Minttl)
	return s
}
