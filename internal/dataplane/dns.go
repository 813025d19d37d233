package dataplane

import (
	"context"
	"encoding/json"
	"errors"
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
// whose resolver the node serves the private DNS zones linked to it. The DNSReconciler keeps it
// up to date from the change feed instead.
func BuildDNS(ctx context.Context, st store.Store, suffix string, scope Scope) (dns.Snapshot, error) {
	c := newDNSCache(suffix, scope)
	if _, err := c.update(ctx, st); err != nil {
		return dns.Snapshot{}, err
	}
	return c.snap, nil
}

// dnsCache is a node's DNS snapshot kept between rounds. The public view is made of one entry
// per server (its name, whether it has any private endpoint connection, its public address),
// re-read when the server or anything under it changes and recompiled only if an entry differs:
// an approval re-reads one server and changes nothing. The private part (zones, their record
// sets and links, virtual networks' resolvers) is network administrators' rarer writes: any
// change under a private DNS zone or a virtual network recompiles it whole.
type dnsCache struct {
	suffix string
	scope  Scope

	loaded bool
	rev    int64                  // every change up to rev is reflected
	public map[string]publicEntry // by server key
	snap   dns.Snapshot
}

// publicEntry is what the public view holds of a server.
type publicEntry struct {
	name      string // lower case
	connected bool   // it has a private endpoint connection: its name is a CNAME to privatelink
	addr      netip.Addr
}

func newDNSCache(suffix string, scope Scope) *dnsCache {
	return &dnsCache{suffix: suffix, scope: scope}
}

// update brings the snapshot up to the store's current revision and reports whether it may
// have changed. After a failure the cache reloads whole next time.
func (c *dnsCache) update(ctx context.Context, st store.Store) (changed bool, err error) {
	defer func() {
		if err != nil {
			c.loaded = false
		}
	}()
	rev, changes, whole, err := changesSince(ctx, st, c.loaded, c.rev)
	if err != nil {
		return false, err
	}
	if whole {
		c.loaded = false
	}
	private := whole
	servers := map[string]bool{}
	for _, ch := range changes {
		if s := under(ch.Key, serverSegment); s != "" {
			servers[s] = true
		} else if under(ch.Key, zoneSegment) != "" || under(ch.Key, vnetSegment) != "" {
			private = true
		}
	}
	publicChanged := !c.loaded
	err = st.View(ctx, func(tx store.Tx) error {
		if !c.loaded {
			all, err := publicEntries(ctx, tx)
			if err != nil {
				return err
			}
			c.public = all
		}
		for key := range servers {
			e, ok, err := publicEntryOf(ctx, tx, key)
			if err != nil {
				return err
			}
			if old, had := c.public[key]; had != ok || old != e {
				publicChanged = true
			}
			if ok {
				c.public[key] = e
			} else {
				delete(c.public, key)
			}
		}
		snap := dns.Snapshot{Revision: rev, Public: c.snap.Public, Resolvers: c.snap.Resolvers}
		if publicChanged {
			snap.Public = c.publicZone()
		}
		if private {
			res, err := c.resolvers(ctx, tx)
			if err != nil {
				return err
			}
			snap.Resolvers = res
		}
		c.snap = snap
		return nil
	})
	if err != nil {
		return false, err
	}
	c.loaded, c.rev = true, rev
	return private || publicChanged, nil
}

const (
	zoneSegment = "/providers/microsoft.network/privatednszones/"
	vnetSegment = "/providers/microsoft.network/virtualnetworks/"
)

// publicEntries reads every server's public entry.
func publicEntries(ctx context.Context, tx store.Tx) (map[string]publicEntry, error) {
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
	out := make(map[string]publicEntry, len(servers))
	for _, r := range servers {
		if e, ok := publicEntryFrom(r, connected[r.Key]); ok {
			out[r.Key] = e
		}
	}
	return out, nil
}

// publicEntryOf reads the public entry of the server with key; false if there is none.
func publicEntryOf(ctx context.Context, tx store.Tx, key string) (publicEntry, bool, error) {
	r, err := tx.Get(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return publicEntry{}, false, nil
	}
	if err != nil {
		return publicEntry{}, false, fmt.Errorf("read %s: %w", key, err)
	}
	conns, err := tx.List(ctx, store.ListOptions{Parent: key, Type: resource.TypeConnection, Limit: 1})
	if err != nil {
		return publicEntry{}, false, fmt.Errorf("list connections of %s: %w", r.ID, err)
	}
	e, ok := publicEntryFrom(r, len(conns) > 0)
	return e, ok, nil
}

func publicEntryFrom(r store.Resource, connected bool) (publicEntry, bool) {
	var s postgresql.Server
	if json.Unmarshal(r.Body, &s) != nil {
		return publicEntry{}, false
	}
	e := publicEntry{name: strings.ToLower(s.Name), connected: connected}
	if dp := s.Properties.DataPlane; dp != nil {
		if ap, err := netip.ParseAddrPort(dp.Address); err == nil && ap.Addr().Is4() {
			e.addr = ap.Addr()
		}
	}
	return e, true
}

// publicZone is Azure's public DNS for servers: <server>.<suffix> is a CNAME to
// <server>.privatelink.<suffix> when the server has a private endpoint connection, and the
// name at the end answers the server's public endpoint.
func (c *dnsCache) publicZone() *dns.Zone {
	z := dns.NewZone(c.suffix, nil)
	for _, e := range c.public {
		name := e.name + "." + c.suffix + "."
		final := name
		if e.connected {
			final = e.name + ".privatelink." + c.suffix + "."
			z.Add(&mdns.CNAME{Hdr: hdr(name, mdns.TypeCNAME, publicTTL), Target: final})
		}
		if e.addr.IsValid() {
			z.Add(&mdns.A{Hdr: hdr(final, mdns.TypeA, publicTTL), A: net.IP(e.addr.AsSlice())})
		}
	}
	return z
}

// resolvers reads the virtual networks whose resolvers the node serves, each with the private
// zones linked to it.
func (c *dnsCache) resolvers(ctx context.Context, tx store.Tx) ([]dns.Resolver, error) {
	zones, err := privateZones(ctx, tx)
	if err != nil {
		return nil, err
	}
	links, err := tx.List(ctx, store.ListOptions{Type: resource.TypeVirtualNetworkLink})
	if err != nil {
		return nil, fmt.Errorf("list virtual network links: %w", err)
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
		return nil, fmt.Errorf("list virtual networks: %w", err)
	}
	var out []dns.Resolver
	for _, r := range vnets {
		var v network.VirtualNetwork
		if json.Unmarshal(r.Body, &v) != nil || v.Properties.DataPlane == nil ||
			!c.scope.Serves(v.Properties.DataPlane.Node, v.Properties.DataPlane.DNSResolver) {
			continue
		}
		ap, err := netip.ParseAddrPort(v.Properties.DataPlane.DNSResolver)
		if err != nil {
			continue
		}
		out = append(out, dns.Resolver{Addr: ap, Network: r.ID, Private: linked[r.Key]})
	}
	return out, nil
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

// ErrDNSBuild marks a Sync that could not read the store, as opposed to one whose snapshot the
// nameserver could not apply whole.
var ErrDNSBuild = errors.New("build dns snapshot")

// DNSReconciler keeps the nameserver in line with the store: a new snapshot after every change.
type DNSReconciler struct {
	St      store.Store
	NS      Nameserver
	Suffix  string
	Scope   Scope // the node's part of the data plane
	Log     *slog.Logger
	Applied func(rev int64) // optional: called after each snapshot the nameserver applied

	// Owned by the goroutine that calls Sync and Run.
	cache    *dnsCache
	loadedAt time.Time
}

// Sync brings the nameserver up to the store's current revision: the changes since the last
// round, or everything the first time. The caller must not run it concurrently with Run.
func (r *DNSReconciler) Sync(ctx context.Context) error {
	if r.cache == nil {
		r.cache = newDNSCache(r.Suffix, r.Scope)
	}
	if r.cache.loaded && time.Since(r.loadedAt) > reloadEvery {
		r.cache.loaded = false // the same safety net as the gateway's policy
	}
	whole := !r.cache.loaded
	if _, err := r.cache.update(ctx, r.St); err != nil {
		return fmt.Errorf("%w: %w", ErrDNSBuild, err)
	}
	if whole {
		r.loadedAt = time.Now()
	}
	snap := r.cache.snap
	if err := r.NS.Apply(snap); err != nil {
		return fmt.Errorf("apply dns snapshot: %w", err)
	}
	if r.Applied != nil {
		r.Applied(snap.Revision)
	}
	return nil
}

// Run reconciles until ctx is done. A round also runs every 2 s without changes, to retry
// what the nameserver could not bind.
func (r *DNSReconciler) Run(ctx context.Context) {
	log := r.Log.With("component", "dns-reconciler")
	notify := r.St.Notify(ctx)
	every := time.NewTicker(2 * time.Second)
	defer every.Stop()
	var backoff retryBackoff // a failed round (the store, a bind) is retried soon
	for {
		var retry <-chan time.Time
		if err := r.Sync(ctx); err != nil {
			if ctx.Err() == nil {
				log.Error("dns round", "err", err)
			}
			retry = backoff.next()
		} else {
			backoff.reset()
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
