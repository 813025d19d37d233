package dataplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	mdns "github.com/miekg/dns"

	"github.com/pglink/pglink/internal/dns"
	"github.com/pglink/pglink/internal/providers/network"
	"github.com/pglink/pglink/internal/resource"
	"github.com/pglink/pglink/internal/store"
	"github.com/pglink/pglink/internal/store/sqlite"
)

func TestRecordsOf(t *testing.T) {
	ttl := int64(300)
	tests := []struct {
		name string
		rs   network.RecordSet
		want string
	}{
		{"apex A", network.RecordSet{Name: "@", Properties: network.RecordSetProperties{TTL: &ttl,
			ARecords: []network.ARecord{{IPv4Address: "10.0.0.4"}, {IPv4Address: "not-an-ip"}}}},
			"zone.test.\t300\tIN\tA\t10.0.0.4"},
		{"AAAA", network.RecordSet{Name: "Db", Properties: network.RecordSetProperties{TTL: &ttl,
			AAAARecords: []network.AAAARecord{{IPv6Address: "fd00::4"}}}},
			"db.zone.test.\t300\tIN\tAAAA\tfd00::4"},
		{"CNAME", network.RecordSet{Name: "www", Properties: network.RecordSetProperties{TTL: &ttl,
			CNAMERecord: &network.CNAMERecord{CNAME: "Db.zone.test"}}},
			"www.zone.test.\t300\tIN\tCNAME\tdb.zone.test."},
		{"MX", network.RecordSet{Name: "@", Properties: network.RecordSetProperties{TTL: &ttl,
			MXRecords: []network.MXRecord{{Preference: 10, Exchange: "mail.zone.test"}}}},
			"zone.test.\t300\tIN\tMX\t10 mail.zone.test."},
		{"PTR", network.RecordSet{Name: "4", Properties: network.RecordSetProperties{TTL: &ttl,
			PTRRecords: []network.PTRRecord{{PTRDName: "db.zone.test"}}}},
			"4.zone.test.\t300\tIN\tPTR\tdb.zone.test."},
		{"SRV", network.RecordSet{Name: "_pg._tcp", Properties: network.RecordSetProperties{TTL: &ttl,
			SRVRecords: []network.SRVRecord{{Priority: 1, Weight: 2, Port: 5432, Target: "db.zone.test"}}}},
			"_pg._tcp.zone.test.\t300\tIN\tSRV\t1 2 5432 db.zone.test."},
		{"TXT", network.RecordSet{Name: "t", Properties: network.RecordSetProperties{
			TXTRecords: []network.TXTRecord{{Value: []string{"a b", "c"}}}}},
			"t.zone.test.\t3600\tIN\tTXT\t\"a b\" \"c\""},
	}
	for _, tt := range tests {
		var got []string
		for _, rr := range RecordsOf(tt.rs, "Zone.test") {
			got = append(got, rr.String())
		}
		if g := strings.Join(got, "\n"); g != tt.want {
			t.Errorf("RecordsOf(%s) = %q; want %q", tt.name, g, tt.want)
		}
	}
}

// TestDNSIncremental: after every batch of random writes (servers, their connections created,
// updated and deleted, private zones, record sets, links, virtual networks on this node and
// another), the snapshot kept from the change feed answers every name as the one compiled
// whole; a batch of approvals of existing connections leaves the public zone as it was.
func TestDNSIncremental(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "store.db"), slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	const suffix = "postgres.test"
	scope := Scope{Node: "n1"}
	cache := newDNSCache(suffix, scope)
	rng := rand.New(rand.NewPCG(3, 4))
	const rg = "/subscriptions/s/resourceGroups/rg"
	server := func(i int) resource.ID {
		return resource.MustParse(fmt.Sprintf("%s/providers/Microsoft.DBforPostgreSQL/flexibleServers/db%d", rg, i))
	}
	vnet := func(i int) resource.ID {
		return resource.MustParse(fmt.Sprintf("%s/providers/Microsoft.Network/virtualNetworks/v%d", rg, i))
	}
	zone := resource.MustParse(rg + "/providers/Microsoft.Network/privateDnsZones/privatelink." + suffix)
	put := func(tx store.Tx, id resource.ID, body any) {
		b, _ := json.Marshal(body)
		if _, err := tx.Put(ctx, store.Resource{Key: id.Key(), ID: id.String(), Type: id.Type(), Parent: id.Parent().Key(), Body: b}, ""); err != nil {
			t.Fatal(err)
		}
	}
	del := func(tx store.Tx, id resource.ID) {
		if err := tx.Delete(ctx, id.Key()); err != nil && !errors.Is(err, store.ErrNotFound) {
			t.Fatal(err)
		}
	}
	nodes := []string{"n1", "n2"}
	step := func(tx store.Tx) {
		s, v := rng.IntN(5), rng.IntN(3)
		sid := server(s)
		conn := sid.Child("privateEndpointConnections", fmt.Sprint("pe", rng.IntN(2)))
		rs := zone.Child("A", sid.Name())
		link := zone.Child("virtualNetworkLinks", fmt.Sprint("l", v))
		switch rng.IntN(11) {
		case 0, 1:
			put(tx, sid, map[string]any{"name": sid.Name(), "properties": map[string]any{
				"dataPlane": map[string]any{"address": fmt.Sprintf("127.1.0.%d:5432", rng.IntN(9)+1)}}})
		case 2:
			del(tx, sid)
		case 3, 4:
			put(tx, conn, map[string]any{"name": conn.Name(), "properties": map[string]any{
				"privateLinkServiceConnectionState": map[string]any{"status": "Pending"}}})
		case 5:
			del(tx, conn)
		case 6:
			put(tx, zone, map[string]any{"name": zone.Name()})
		case 7:
			put(tx, rs, map[string]any{"name": sid.Name(), "properties": map[string]any{
				"ttl": 10, "aRecords": []any{map[string]any{"ipv4Address": fmt.Sprintf("10.0.0.%d", rng.IntN(9)+1)}}}})
		case 8:
			del(tx, rs)
		case 9:
			put(tx, link, map[string]any{"name": link.Name(), "properties": map[string]any{"virtualNetwork": map[string]any{"id": vnet(v).String()}}})
		case 10:
			put(tx, vnet(v), map[string]any{"name": vnet(v).Name(), "properties": map[string]any{
				"dataPlane": map[string]any{"dnsResolver": fmt.Sprintf("127.3.0.%d:53", v+1), "node": nodes[rng.IntN(2)]}}})
		}
	}
	// answers renders what a snapshot answers: the public view and each resolver's view, for
	// every name the test can write.
	answers := func(snap dns.Snapshot) string {
		var b strings.Builder
		views := map[string]*dns.View{"public": dns.NewView(snap.Public)}
		for _, r := range snap.Resolvers {
			views[r.Addr.String()+" "+r.Network] = dns.NewView(snap.Public, r.Private...)
		}
		keys := slices.Sorted(maps.Keys(views))
		for _, k := range keys {
			for i := range 5 {
				for _, name := range []string{fmt.Sprintf("db%d.%s.", i, suffix), fmt.Sprintf("db%d.privatelink.%s.", i, suffix)} {
					m := new(mdns.Msg)
					views[k].Resolve(m, name, mdns.TypeA)
					fmt.Fprintf(&b, "%s %s rcode %d:", k, name, m.Rcode)
					for _, rr := range m.Answer {
						b.WriteString(" " + rr.String())
					}
					b.WriteString("\n")
				}
			}
		}
		return b.String()
	}
	for round := range 300 {
		if err := st.Update(ctx, func(tx store.Tx) error {
			for range 1 + rng.IntN(4) {
				step(tx)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := cache.update(ctx, st); err != nil {
			t.Fatal(err)
		}
		whole, err := BuildDNS(ctx, st, suffix, scope)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := answers(cache.snap), answers(whole); got != want {
			t.Fatalf("round %d: incremental answers differ:\n got\n%s\nwant\n%s", round, got, want)
		}
		if cache.snap.Revision != whole.Revision {
			t.Fatalf("round %d: revision %d; want %d", round, cache.snap.Revision, whole.Revision)
		}
	}
	// Approving existing connections changes no name: the public zone is kept.
	before := cache.snap.Public
	if err := st.Update(ctx, func(tx store.Tx) error {
		conns, err := tx.List(ctx, store.ListOptions{Type: resource.TypeConnection})
		for _, c := range conns {
			c.Body = []byte(`{"properties":{"privateLinkServiceConnectionState":{"status":"Approved"}}}`)
			if _, err := tx.Put(ctx, c, ""); err != nil {
				return err
			}
		}
		if len(conns) == 0 {
			return fmt.Errorf("no connection left to approve")
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	changed, err := cache.update(ctx, st)
	if err != nil || changed || cache.snap.Public != before {
		t.Errorf("update after approvals = %v, %v, same zone %v; want false, nil, true", changed, err, cache.snap.Public == before)
	}
}
