package dataplane

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/pglink/pglink/internal/dns"
	"github.com/pglink/pglink/internal/providers/network"
	"github.com/pglink/pglink/internal/providers/postgresql"
	"github.com/pglink/pglink/internal/resource"
	"github.com/pglink/pglink/internal/store"
)

// publicTTL is the TTL of the public view's records (Azure's public names use short TTLs too).
const publicTTL = 30

// BuildDNS compiles what the nameserver of the node of scope answers from one consistent read
// of the store: the public view of servers' names under suffix, and for each virtual network
// whose resolver the node serves the private DNS zones linked to it.
func BuildDNS(ctx context.Context, st store.Store, suffix string, scope Scope) (dns.Snapshot, error) {
	var snap dns.Snapshot
	rev, err := st.Revision(ctx)
	if err != nil {
		return snap, fmt.Errorf("read revision: %w", err)
	}
	snap.Revision = rev
	err = st.View(ctx, func(tx store.Tx) error {
		pub, err := publicZone(ctx, tx, suffix)
		if err != nil {
			return err
		}
		snap.Public = pub
		zones, err := privateZones(ctx, tx)
		if err != nil {
			return err
		}
		links, err := tx.List(ctx, store.ListOptions{Type: resource.TypeVirtualNetworkLink})
		if err != nil {
			return fmt.Errorf("list virtual network links: %w", err)
		}
		linked := map[string][]*dns.Zone{} // by virtual network key
		for _, r := range links {
			var l network.VirtualNetworkLink
			if json.Unmarshal(r.Body, &l) != nil || l.Properties.VirtualNetwork == nil {
				continue
			}
			z := zones[r.Parent]
			if z == nil {
				continue
			}
			k := strings.ToLower(l.Properties.VirtualNetwork.ID)
			linked[k] = append(linked[k], z)
		}
		vnets, err := tx.List(ctx, store.ListOptions{Type: resource.TypeVirtualNetwork})
		if err != nil {
			return fmt.Errorf("list virtual networks: %w", err)
		}
		for _, r := range vnets {
			var v network.VirtualNetwork
			if json.Unmarshal(r.Body, &v) != nil || v.Properties.DataPlane == nil ||
				!scope.Serves(v.Properties.DataPlane.Node, v.Properties.DataPlane.DNSResolver) {
				continue
			}
			ap, err := netip.ParseAddrPort(v.Properties.DataPlane.DNSResolver)
			if err != nil {
				continue
			}
			snap.Resolvers = append(snap.Resolvers, dns.Resolver{Addr: ap, Network: r.ID, Private: linked[r.Key]})
		}
		return nil
	})
	return snap, err
}

// publicZone is Azure's public DNS for servers: <server>.<suffix> is a CNAME to
// <server>.privatelink.<suffix> when the server has a private endpoint connection, and the
// name at the end answers the server's public endpoint.
func publicZone(ctx context.Context, tx store.Tx, suffix string) (*dns.Zone, error) {
	z := dns.NewZone(suffix, nil)
	servers, err := tx.List(ctx, store.ListOptions{Type: resource.TypeServer})
	if err != nil {
		return nil, fmt.Errorf("list servers: %w", err)
	}
	// Which servers have a connection: one read of every connection, not one per server.
	conns, err := tx.List(ctx, store.ListOptions{Type: resource.TypeConnection})
	if err != nil {
		return nil, fmt.Errorf("list connections: %w", err)
	}
	connected := make(map[string]bool, len(conns))
	for _, c := range conns {
		connected[c.Parent] = true
	}
	for _, r := range servers {
		var s postgresql.Server
		if json.Unmarshal(r.Body, &s) != nil {
			continue
		}
		name := strings.ToLower(s.Name) + "." + suffix + "."
		final := name
		if connected[r.Key] {
			final = strings.ToLower(s.Name) + ".privatelink." + suffix + "."
			z.Add(&mdns.CNAME{Hdr: hdr(name, mdns.TypeCNAME, publicTTL), Target: final})
		}
		if s.Properties.DataPlane == nil {
			continue
		}
		if ap, err := netip.ParseAddrPort(s.Properties.DataPlane.Address); err == nil && ap.Addr().Is4() {
			z.Add(&mdns.A{Hdr: hdr(final, mdns.TypeA, publicTTL), A: net.IP(ap.Addr().AsSlice())})
		}
	}
	return z, nil
}

// privateZones reads every private DNS zone with its record sets, by zone key.
func privateZones(ctx context.Context, tx store.Tx) (map[string]*dns.Zone, error) {
	all, err := tx.List(ctx, store.ListOptions{Type: resource.TypePrivateDNSZone})
	if err != nil {
		return nil, fmt.Errorf("list private DNS zones: %w", err)
	}
	zones := map[string]*dns.Zone{}
	for _, r := range all {
		id, err := resource.Parse(r.ID)
		if err != nil {
			continue
		}
		children, err := tx.List(ctx, store.ListOptions{Parent: r.Key})
		if err != nil {
			return nil, fmt.Errorf("list record sets of %s: %w", r.ID, err)
		}
		var sets []network.RecordSet
		var soa *mdns.SOA
		for _, c := range children {
			var rs network.RecordSet
			if json.Unmarshal(c.Body, &rs) != nil || !strings.HasPrefix(strings.ToLower(c.Type), strings.ToLower(resource.TypePrivateDNSZone+"/")) {
				continue
			}
			if s := rs.Properties.SOARecord; s != nil && rs.Name == "@" {
				soa = &mdns.SOA{Hdr: hdr(".", mdns.TypeSOA, ttlOf(rs)), Ns: mdns.Fqdn(s.Host), Mbox: mdns.Fqdn(s.Email),
					Serial: uint32(s.SerialNumber), Refresh: uint32(s.RefreshTime), Retry: uint32(s.RetryTime),
					Expire: uint32(s.ExpireTime), Minttl: uint32(s.MinimumTTL)}
				continue
			}
			sets = append(sets, rs)
		}
		z := dns.NewZone(id.Name(), soa)
		for _, rs := range sets {
			for _, rr := range RecordsOf(rs, id.Name()) {
				z.Add(rr)
			}
		}
		zones[r.Key] = z
	}
	return zones, nil
}

func hdr(name string, t uint16, ttl uint32) mdns.RR_Header {
	return mdns.RR_Header{Name: name, Rrtype: t, Class: mdns.ClassINET, Ttl: ttl}
}

func ttlOf(rs network.RecordSet) uint32 {
	if rs.Properties.TTL == nil || *rs.Properties.TTL < 0 {
		return 3600
	}
	return uint32(min(*rs.Properties.TTL, 2147483647))
}

// RecordsOf returns the DNS records of record set rs of zone (SOA excepted: it is the zone's).
func RecordsOf(rs network.RecordSet, zone string) []mdns.RR {
	owner := mdns.Fqdn(strings.ToLower(zone))
	if rs.Name != "@" {
		owner = mdns.Fqdn(strings.ToLower(rs.Name + "." + zone))
	}
	ttl := ttlOf(rs)
	h := func(t uint16) mdns.RR_Header { return hdr(owner, t, ttl) }
	var out []mdns.RR
	p := rs.Properties
	for _, r := range p.ARecords {
		if a, err := netip.ParseAddr(r.IPv4Address); err == nil && a.Is4() {
			out = append(out, &mdns.A{Hdr: h(mdns.TypeA), A: net.IP(a.AsSlice())})
		}
	}
	for _, r := range p.AAAARecords {
		if a, err := netip.ParseAddr(r.IPv6Address); err == nil {
			out = append(out, &mdns.AAAA{Hdr: h(mdns.TypeAAAA), AAAA: net.IP(a.AsSlice())})
		}
	}
	if c := p.CNAMERecord; c != nil && c.CNAME != "" {
		out = append(out, &mdns.CNAME{Hdr: h(mdns.TypeCNAME), Target: mdns.Fqdn(strings.ToLower(c.CNAME))})
	}
	for _, r := range p.MXRecords {
		out = append(out, &mdns.MX{Hdr: h(mdns.TypeMX), Preference: uint16(r.Preference), Mx: mdns.Fqdn(r.Exchange)})
	}
	for _, r := range p.PTRRecords {
		out = append(out, &mdns.PTR{Hdr: h(mdns.TypePTR), Ptr: mdns.Fqdn(r.PTRDName)})
	}
	for _, r := range p.SRVRecords {
		out = append(out, &mdns.SRV{Hdr: h(mdns.TypeSRV), Priority: uint16(r.Priority), Weight: uint16(r.Weight),
			Port: uint16(r.Port), Target: mdns.Fqdn(r.Target)})
	}
	for _, r := range p.TXTRecords {
		out = append(out, &mdns.TXT{Hdr: h(mdns.TypeTXT), Txt: append([]string(nil), r.Value...)})
	}
	return out
}

// Nameserver is the nameserver as the DNS reconciler drives it.
type Nameserver interface {
	Apply(s dns.Snapshot) error
}

// DNSReconciler keeps the nameserver in line with the store: a new snapshot after every change.
type DNSReconciler struct {
	St      store.Store
	NS      Nameserver
	Suffix  string
	Scope   Scope // the node's part of the data plane
	Log     *slog.Logger
	Applied func(rev int64) // optional: called after each snapshot the nameserver applied
}

// Run reconciles until ctx is done.
func (r *DNSReconciler) Run(ctx context.Context) {
	log := r.Log.With("component", "dns-reconciler")
	notify := r.St.Notify(ctx)
	every := time.NewTicker(2 * time.Second)
	defer every.Stop()
	var backoff retryBackoff // a failed round (the store, a bind) is retried soon
	for {
		var retry <-chan time.Time
		if snap, err := BuildDNS(ctx, r.St, r.Suffix, r.Scope); err != nil {
			if ctx.Err() == nil {
				log.Error("build dns snapshot", "err", err)
			}
			retry = backoff.next()
		} else if err := r.NS.Apply(snap); err != nil {
			if ctx.Err() == nil {
				log.Error("apply dns snapshot", "err", err)
			}
			retry = backoff.next()
		} else {
			backoff.reset()
			if r.Applied != nil {
				r.Applied(snap.Revision)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-notify:
		case <-retry:
		case <-every.C:
		}
	}
}
