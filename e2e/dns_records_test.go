package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/privatedns/armprivatedns"
	mdns "github.com/miekg/dns"

	"github.com/pglink/pglink/internal/server"
)

// TestDNSRecordSetsARM: private DNS follows the ARM conventions of the rest: ETags and
// conditional headers, record types in any case, @ for the apex, the SOA made with the zone
// and kept, ALL and per-type lists paged with nextLink, 204 for a delete of what is gone, and
// writes in the activity log.
func TestDNSRecordSetsARM(t *testing.T) {
	in := start(t, func(c *server.Config) { c.PageSize = 2 })
	c := newClients(t, in)
	c.group(t, "rg")
	tok := in.token()
	zone := "/subscriptions/" + in.boot.SubscriptionID + "/resourceGroups/rg/providers/Microsoft.Network/privateDnsZones/zone.test"
	const v = "?api-version=2020-06-01"
	want := func(what string, r response, status int, code string) {
		t.Helper()
		if r.status != status || (code != "" && r.code() != code) {
			t.Errorf("%s: %d %s; want %d %s (%s)", what, r.status, r.code(), status, code, r.raw)
		}
	}
	want("zone in eastus", in.do(t, "PUT", zone+v, tok, map[string]any{"location": "eastus"}, nil), 400, "InvalidLocation")
	want("zone name of one label", in.do(t, "PUT", strings.TrimSuffix(zone, ".test")+v, tok, map[string]any{"location": "global"}, nil), 400, "InvalidResourceName")
	r := in.do(t, "PUT", zone+v, tok, map[string]any{"location": "global"}, nil)
	want("create zone", r, 201, "")
	if r.body["etag"] == nil || r.body["location"] != "global" {
		t.Errorf("zone = %s; want an etag and location global", r.raw)
	}
	want("create again with If-None-Match: *", in.do(t, "PUT", zone+v, tok, map[string]any{"location": "global"}, map[string]string{"If-None-Match": "*"}), 412, "PreconditionFailed")
	want("update with tags", in.do(t, "PUT", zone+v, tok, map[string]any{"location": "global", "tags": map[string]string{"team": "db"}}, nil), 200, "")
	want("patch tags", in.do(t, "PATCH", zone+v, tok, map[string]any{"tags": map[string]string{"team": "net"}}, nil), 200, "")

	// Record types in any case; the stored type is Azure's spelling.
	a := map[string]any{"properties": map[string]any{"ttl": 60, "aRecords": []any{map[string]string{"ipv4Address": "10.0.0.4"}}}}
	want("create a/www", in.do(t, "PUT", zone+"/a/www"+v, tok, a, nil), 201, "")
	// "*" is a whole leftmost label only, and never in a zone's name.
	want("create A/*.wild", in.do(t, "PUT", zone+"/A/*.wild"+v, tok, a, nil), 201, "")
	want("delete A/*.wild", in.do(t, "DELETE", zone+"/A/*.wild"+v, tok, nil, nil), 200, "")
	for _, bad := range []string{"a*b", "www.*", "**", "*.*"} {
		want("record set "+bad, in.do(t, "PUT", zone+"/A/"+bad+v, tok, a, nil), 400, "InvalidResourceName")
	}
	want("zone name with *", in.do(t, "PUT", strings.TrimSuffix(zone, "zone.test")+"*.zone.test"+v, tok, map[string]any{"location": "global"}, nil), 400, "InvalidResourceName")
	// az creates record sets and links with If-None-Match: * too: 412 when they exist.
	inm := map[string]string{"If-None-Match": "*"}
	want("create A/www again with If-None-Match: *", in.do(t, "PUT", zone+"/A/www"+v, tok, a, inm), 412, "PreconditionFailed")
	want("create A/new with If-None-Match: *", in.do(t, "PUT", zone+"/A/new"+v, tok, a, inm), 201, "")
	want("delete A/new", in.do(t, "DELETE", zone+"/A/new"+v, tok, nil, nil), 200, "")
	vnet := strings.SplitN(c.vnet(t, "rg", "vnet1"), "/subnets/", 2)[0]
	link := map[string]any{"location": "global", "properties": map[string]any{"virtualNetwork": map[string]string{"id": vnet}, "registrationEnabled": false}}
	want("create link with If-None-Match: *", in.do(t, "PUT", zone+"/virtualNetworkLinks/l1"+v, tok, link, inm), 201, "")
	want("create link again with If-None-Match: *", in.do(t, "PUT", zone+"/virtualNetworkLinks/l1"+v, tok, link, inm), 412, "PreconditionFailed")
	want("delete link", in.do(t, "DELETE", zone+"/virtualNetworkLinks/l1"+v, tok, nil, nil), 200, "")
	r = in.do(t, "GET", zone+"/A/www"+v, tok, nil, nil)
	want("get A/www", r, 200, "")
	props, _ := r.body["properties"].(map[string]any)
	if r.body["type"] != "Microsoft.Network/privateDnsZones/A" || r.body["name"] != "www" || props["fqdn"] != "www.zone.test." || props["ttl"] != float64(60) {
		t.Errorf("A/www = %s; want type Microsoft.Network/privateDnsZones/A, name www, fqdn www.zone.test., ttl 60", r.raw)
	}
	etag, _ := r.body["etag"].(string)
	want("If-Match: wrong", in.do(t, "PUT", zone+"/A/www"+v, tok, a, map[string]string{"If-Match": `"wrong"`}), 412, "PreconditionFailed")
	want("If-Match: the etag", in.do(t, "PUT", zone+"/A/www"+v, tok, a, map[string]string{"If-Match": etag}), 200, "")
	want("CNAME at the apex", in.do(t, "PUT", zone+"/CNAME/@"+v, tok, map[string]any{"properties": map[string]any{"cnameRecord": map[string]string{"cname": "x.test"}}}, nil), 400, "BadRequest")
	want("AAAA with an IPv4 address", in.do(t, "PUT", zone+"/AAAA/v6"+v, tok, map[string]any{"properties": map[string]any{"aaaaRecords": []any{map[string]string{"ipv6Address": "10.0.0.1"}}}}, nil), 400, "BadRequest")
	want("create an SOA", in.do(t, "PUT", zone+"/SOA/x"+v, tok, map[string]any{"properties": map[string]any{}}, nil), 400, "BadRequest")
	want("delete the SOA", in.do(t, "DELETE", zone+"/SOA/@"+v, tok, nil, nil), 400, "BadRequest")
	want("unknown record type", in.do(t, "PUT", zone+"/NS/x"+v, tok, a, nil), 400, "InvalidResourceType")
	for _, n := range []string{"t1", "t2", "t3"} {
		want("create TXT "+n, in.do(t, "PUT", zone+"/TXT/"+n+v, tok, map[string]any{"properties": map[string]any{"ttl": 300,
			"txtRecords": []any{map[string]any{"value": []string{"hello " + n}}}}}, nil), 201, "")
	}
	list := func(path string) []string {
		t.Helper()
		var names []string
		pages := 0
		for next := path + v; next != ""; pages++ {
			r := in.do(t, "GET", next, tok, nil, nil)
			want("list "+path, r, 200, "")
			for _, it := range r.body["value"].([]any) {
				m := it.(map[string]any)
				names = append(names, strings.TrimPrefix(m["type"].(string), "Microsoft.Network/privateDnsZones/")+" "+m["name"].(string))
			}
			next, _ = r.body["nextLink"].(string)
		}
		if pages < 2 && len(names) > 2 {
			t.Errorf("list %s: %d items in %d page(s); want pages of 2", path, len(names), pages)
		}
		return names
	}
	if got, wantList := strings.Join(list(zone+"/ALL"), ", "), "A www, SOA @, TXT t1, TXT t2, TXT t3"; got != wantList {
		t.Errorf("ALL = %s; want %s", got, wantList)
	}
	if got, wantList := strings.Join(list(zone+"/txt"), ", "), "TXT t1, TXT t2, TXT t3"; got != wantList {
		t.Errorf("TXT list = %s; want %s", got, wantList)
	}
	want("delete A/www", in.do(t, "DELETE", zone+"/A/www"+v, tok, nil, nil), 200, "")
	want("delete A/www again", in.do(t, "DELETE", zone+"/A/www"+v, tok, nil, nil), 204, "")
	r = in.do(t, "GET", zone+v, tok, nil, nil)
	if p, _ := r.body["properties"].(map[string]any); p["numberOfRecordSets"] != float64(4) || r.body["tags"].(map[string]any)["team"] != "net" {
		t.Errorf("zone = %s; want 4 record sets and tag team=net", r.raw)
	}
	want("record in a missing zone", in.do(t, "PUT", zone+"x/A/www"+v, tok, a, nil), 404, "ResourceNotFound")

	events := in.activityLog(t, tok, "eventTimestamp ge '2000-01-01T00:00:00Z' and resourceGroupName eq 'rg'")
	found := false
	for _, e := range events {
		if op, _ := e["operationName"].(map[string]any); op != nil && op["value"] == "Microsoft.Network/privateDnsZones/A/write" {
			found = true
		}
	}
	if !found {
		t.Errorf("no Microsoft.Network/privateDnsZones/A/write event in the activity log (%d events)", len(events))
	}
}

// TestDNSLinkUpdate: the SDK's link update (PATCH) changes tags; a link's network is fixed.
func TestDNSLinkUpdate(t *testing.T) {
	in := start(t, nil)
	c := newClients(t, in)
	d := newDNSClients(t, in)
	ctx := ctxT(t)
	c.group(t, "rg")
	subnet := c.vnet(t, "rg", "vnet1")
	d.zone(t, "rg", "zone.test")
	if err := d.link(t, "rg", "zone.test", "l1", strings.SplitN(subnet, "/subnets/", 2)[0]); err != nil {
		t.Fatal(err)
	}
	p, err := d.links.BeginUpdate(ctx, "rg", "zone.test", "l1", armprivatedns.VirtualNetworkLink{Tags: map[string]*string{"team": to.Ptr("net")}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := p.PollUntilDone(ctx, &azcoreFast)
	if err != nil {
		t.Fatal(err)
	}
	if str(res.Tags["team"]) != "net" || !strings.EqualFold(str(res.Properties.VirtualNetwork.ID), strings.SplitN(subnet, "/subnets/", 2)[0]) {
		t.Errorf("updated link = %s; want tag team=net on vnet1", jsonOf(res.VirtualNetworkLink))
	}
}

// TestDNSRecordTypes: every record type through the API (create, read back) and through a
// linked virtual network's resolver, and an update of the zone's SOA.
func TestDNSRecordTypes(t *testing.T) {
	in := startLocal(t)
	c := newClients(t, in)
	d := newDNSClients(t, in)
	c.group(t, "rg")
	subnet := c.vnet(t, "rg", "app-vnet")
	d.zone(t, "rg", "zone.test")
	if err := d.link(t, "rg", "zone.test", "app-link", strings.SplitN(subnet, "/subnets/", 2)[0]); err != nil {
		t.Fatal(err)
	}
	resolver := vnetResolver(t, in, "rg", "app-vnet")
	tok := in.token()
	zone := "/subscriptions/" + in.boot.SubscriptionID + "/resourceGroups/rg/providers/Microsoft.Network/privateDnsZones/zone.test"
	const v = "?api-version=2020-06-01"
	for _, tc := range []struct {
		typ, name, field string
		value            any
		qtype            uint16
		qname, answer    string
	}{
		{"AAAA", "v6", "aaaaRecords", []any{map[string]any{"ipv6Address": "fd00::4"}}, mdns.TypeAAAA, "v6.zone.test.", "fd00::4"},
		{"CNAME", "alias", "cnameRecord", map[string]any{"cname": "target.example."}, mdns.TypeCNAME, "alias.zone.test.", "target.example."},
		{"MX", "@", "mxRecords", []any{map[string]any{"preference": 10, "exchange": "mail.zone.test"}}, mdns.TypeMX, "zone.test.", "10 mail.zone.test."},
		{"PTR", "4", "ptrRecords", []any{map[string]any{"ptrdname": "host.zone.test"}}, mdns.TypePTR, "4.zone.test.", "host.zone.test."},
		{"SRV", "_pg._tcp", "srvRecords", []any{map[string]any{"priority": 1, "weight": 2, "port": 5432, "target": "db.zone.test"}}, mdns.TypeSRV, "_pg._tcp.zone.test.", "1 2 5432 db.zone.test."},
		{"TXT", "t", "txtRecords", []any{map[string]any{"value": []string{"hello", "world"}}}, mdns.TypeTXT, "t.zone.test.", `"hello" "world"`},
	} {
		path := zone + "/" + tc.typ + "/" + tc.name + v
		body := map[string]any{"properties": map[string]any{"ttl": 30, tc.field: tc.value}}
		if r := in.do(t, "PUT", path, tok, body, nil); r.status != 201 {
			t.Errorf("create %s/%s: %d %s", tc.typ, tc.name, r.status, r.raw)
			continue
		}
		r := in.do(t, "GET", path, tok, nil, nil)
		props, _ := r.body["properties"].(map[string]any)
		if r.status != 200 || props[tc.field] == nil || props["ttl"] != float64(30) {
			t.Errorf("get %s/%s: %d %s; want %s and ttl 30", tc.typ, tc.name, r.status, r.raw, tc.field)
		}
		q := new(mdns.Msg)
		q.SetQuestion(tc.qname, tc.qtype)
		m, _, err := (&mdns.Client{Timeout: 2 * time.Second}).Exchange(q, resolver)
		if err != nil {
			t.Fatalf("ask %s for %s %s: %v", resolver, tc.qname, tc.typ, err)
		}
		if len(m.Answer) != 1 || !strings.HasSuffix(m.Answer[0].String(), "\t"+tc.answer) || m.Answer[0].Header().Ttl != 30 {
			t.Errorf("%s %s at the VNet's resolver = %v; want one record ending %q, TTL 30", tc.qname, tc.typ, m.Answer, tc.answer)
		}
	}

	// The SOA record set is updated, not created; the zone answers with it.
	soa := in.do(t, "GET", zone+"/SOA/@"+v, tok, nil, nil)
	props, _ := soa.body["properties"].(map[string]any)
	rec, _ := props["soaRecord"].(map[string]any)
	if soa.status != 200 || rec == nil {
		t.Fatalf("get SOA/@: %d %s", soa.status, soa.raw)
	}
	rec["email"], rec["refreshTime"] = "hostmaster.zone.test", 1800
	if r := in.do(t, "PUT", zone+"/SOA/@"+v, tok, map[string]any{"properties": map[string]any{"ttl": 3600, "soaRecord": rec}}, nil); r.status != 200 {
		t.Fatalf("update SOA/@: %d %s", r.status, r.raw)
	}
	q := new(mdns.Msg)
	q.SetQuestion("zone.test.", mdns.TypeSOA)
	m, _, err := (&mdns.Client{Timeout: 2 * time.Second}).Exchange(q, resolver)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Answer) != 1 {
		t.Fatalf("SOA at the VNet's resolver = %v; want one", m.Answer)
	}
	if s, ok := m.Answer[0].(*mdns.SOA); !ok || s.Mbox != "hostmaster.zone.test." || s.Refresh != 1800 {
		t.Errorf("SOA at the VNet's resolver = %v; want mbox hostmaster.zone.test. and refresh 1800", m.Answer[0])
	}
}
