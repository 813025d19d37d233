package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v6"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/privatedns/armprivatedns"
	"github.com/jackc/pgx/v5"
	mdns "github.com/miekg/dns"

	pg "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/postgresql/armpostgresqlflexibleservers/v4"

	"github.com/pglink/pglink/internal/server"
)

const privatelinkZone = "privatelink.postgres.database.azure.com"

// dnsClients are the Azure SDK's private DNS clients against an instance.
type dnsClients struct {
	zones   *armprivatedns.PrivateZonesClient
	links   *armprivatedns.VirtualNetworkLinksClient
	records *armprivatedns.RecordSetsClient
	groups  *armnetwork.PrivateDNSZoneGroupsClient
}

func newDNSClients(t *testing.T, in *instance) dnsClients {
	t.Helper()
	return newDNSClientsAs(t, in, in.credential())
}

// newDNSClientsAs returns private DNS clients that call as the principal of cred.
func newDNSClientsAs(t *testing.T, in *instance, cred azcore.TokenCredential) dnsClients {
	t.Helper()
	opts, sub := in.armOptions(), in.boot.SubscriptionID
	f, err := armprivatedns.NewClientFactory(sub, cred, opts)
	if err != nil {
		t.Fatal(err)
	}
	nf, err := armnetwork.NewClientFactory(sub, cred, opts)
	if err != nil {
		t.Fatal(err)
	}
	return dnsClients{zones: f.NewPrivateZonesClient(), links: f.NewVirtualNetworkLinksClient(),
		records: f.NewRecordSetsClient(), groups: nf.NewPrivateDNSZoneGroupsClient()}
}

func (d dnsClients) zone(t *testing.T, rg, name string) armprivatedns.PrivateZone {
	t.Helper()
	z, err := d.tryZone(t, rg, name)
	if err != nil {
		t.Fatalf("create zone %s: %v", name, err)
	}
	return z
}

func (d dnsClients) tryZone(t *testing.T, rg, name string) (armprivatedns.PrivateZone, error) {
	t.Helper()
	ctx := ctxT(t)
	p, err := d.zones.BeginCreateOrUpdate(ctx, rg, name, armprivatedns.PrivateZone{Location: to.Ptr("global")},
		&armprivatedns.PrivateZonesClientBeginCreateOrUpdateOptions{IfNoneMatch: to.Ptr("*")})
	if err != nil {
		return armprivatedns.PrivateZone{}, err
	}
	res, err := p.PollUntilDone(ctx, &azcoreFast)
	return res.PrivateZone, err
}

// zoneGroup gives private endpoint pe a zone group "default" with zone zoneID.
func (d dnsClients) zoneGroup(t *testing.T, rg, pe, zoneID string) (armnetwork.PrivateDNSZoneGroup, error) {
	t.Helper()
	ctx := ctxT(t)
	gp, err := d.groups.BeginCreateOrUpdate(ctx, rg, pe, "default", armnetwork.PrivateDNSZoneGroup{
		Properties: &armnetwork.PrivateDNSZoneGroupPropertiesFormat{PrivateDNSZoneConfigs: []*armnetwork.PrivateDNSZoneConfig{{
			Name: to.Ptr("config1"), Properties: &armnetwork.PrivateDNSZonePropertiesFormat{PrivateDNSZoneID: to.Ptr(zoneID)}}}}}, nil)
	if err != nil {
		return armnetwork.PrivateDNSZoneGroup{}, err
	}
	res, err := gp.PollUntilDone(ctx, &azcoreFast)
	return res.PrivateDNSZoneGroup, err
}

func (d dnsClients) link(t *testing.T, rg, zone, name, vnetID string) error {
	t.Helper()
	ctx := ctxT(t)
	p, err := d.links.BeginCreateOrUpdate(ctx, rg, zone, name, armprivatedns.VirtualNetworkLink{Location: to.Ptr("global"),
		Properties: &armprivatedns.VirtualNetworkLinkProperties{VirtualNetwork: &armprivatedns.SubResource{ID: to.Ptr(vnetID)},
			RegistrationEnabled: to.Ptr(false)}}, nil)
	if err != nil {
		return err
	}
	_, err = p.PollUntilDone(ctx, &azcoreFast)
	return err
}

// vnetResolver reads properties.dataPlane.dnsResolver of a virtual network.
func vnetResolver(t *testing.T, in *instance, rg, name string) string {
	t.Helper()
	r := in.do(t, "GET", "/subscriptions/"+in.boot.SubscriptionID+"/resourceGroups/"+rg+"/providers/Microsoft.Network/virtualNetworks/"+name+"?api-version=2024-05-01", in.token(), nil, nil)
	props, _ := r.body["properties"].(map[string]any)
	dp, _ := props["dataPlane"].(map[string]any)
	addr, _ := dp["dnsResolver"].(string)
	if addr == "" {
		t.Fatalf("virtual network %s has no properties.dataPlane.dnsResolver: %v", name, r.body)
	}
	return addr
}

// resolve asks server for name's A records over UDP and returns the answer as "CNAME target"
// and "A address" strings, and the rcode.
func resolve(t *testing.T, server, name string) ([]string, int) {
	t.Helper()
	q := new(mdns.Msg)
	q.SetQuestion(mdns.Fqdn(name), mdns.TypeA)
	c := &mdns.Client{Timeout: 2 * time.Second}
	m, _, err := c.Exchange(q, server)
	if err != nil {
		t.Fatalf("ask %s for %s: %v", server, name, err)
	}
	var out []string
	for _, rr := range m.Answer {
		switch r := rr.(type) {
		case *mdns.CNAME:
			out = append(out, "CNAME "+r.Target)
		case *mdns.A:
			out = append(out, "A "+r.A.String())
		}
	}
	return out, m.Rcode
}

func wantAnswer(t *testing.T, what, server, name string, want ...string) {
	t.Helper()
	got, rcode := resolve(t, server, name)
	if rcode != mdns.RcodeSuccess || strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Errorf("%s: %s at %s = %s %v; want NOERROR %v", what, name, server, mdns.RcodeToString[rcode], got, want)
	}
}

// lookupVia returns a pgx LookupFunc that resolves names through the DNS server at addr, as a
// client inside the virtual network does.
func lookupVia(addr string) func(ctx context.Context, host string) ([]string, error) {
	return func(ctx context.Context, host string) ([]string, error) {
		if net.ParseIP(host) != nil {
			return []string{host}, nil
		}
		q := new(mdns.Msg)
		q.SetQuestion(mdns.Fqdn(host), mdns.TypeA)
		m, _, err := (&mdns.Client{Timeout: 2 * time.Second}).ExchangeContext(ctx, q, addr)
		if err != nil {
			return nil, err
		}
		var out []string
		for _, rr := range m.Answer {
			if a, ok := rr.(*mdns.A); ok {
				out = append(out, a.A.String())
			}
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("%s: %s", host, mdns.RcodeToString[m.Rcode])
		}
		return out, nil
	}
}

// connectByName opens a session to the server's FQDN on port, resolving through resolver.
func connectByName(ctx context.Context, fqdn, port, resolver string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%s user=pgadmin password='%s' dbname=postgres sslmode=require connect_timeout=5", fqdn, port, adminPassword))
	if err != nil {
		return nil, err
	}
	cfg.LookupFunc = lookupVia(resolver)
	return pgx.ConnectConfig(ctx, cfg)
}

// TestDNSPrivateZoneSDK is the network administrator's flow with the Azure SDK for Go: a zone
// privatelink.postgres.database.azure.com linked to the app's virtual network and a private
// endpoint with a zone group make the server's ordinary name resolve, inside that network, to
// the endpoint; pgx connects by that name once the connection is approved.
func TestDNSPrivateZoneSDK(t *testing.T) {
	in := startLocal(t)
	c := newClients(t, in)
	d := newDNSClients(t, in)
	ctx := ctxT(t)
	c.group(t, "rg")
	srv := c.localServer(t, "rg", "orders-db")
	const fqdn = "orders-db.postgres.database.azure.com"
	if got := str(srv.Properties.FullyQualifiedDomainName); got != fqdn {
		t.Errorf("fullyQualifiedDomainName = %q; want %q", got, fqdn)
	}
	pubHost, _, _ := net.SplitHostPort(serverAddress(t, c, "rg", "orders-db"))
	appSubnet := c.vnet(t, "rg", "app-vnet")
	c.vnet(t, "rg", "other-vnet")
	appVNet := strings.SplitN(appSubnet, "/subnets/", 2)[0]
	appResolver, otherResolver := vnetResolver(t, in, "rg", "app-vnet"), vnetResolver(t, in, "rg", "other-vnet")
	public := in.srv.DNSAddr()

	// No private endpoint yet: the name answers the public endpoint everywhere.
	wantAnswer(t, "public view, no endpoint", public, fqdn, "A "+pubHost)
	wantAnswer(t, "app network, nothing linked", appResolver, fqdn, "A "+pubHost)

	zone := d.zone(t, "rg", privatelinkZone)
	if zone.Properties == nil || i64(zone.Properties.NumberOfRecordSets) != 1 || i64(zone.Properties.MaxNumberOfRecordSets) != 25000 {
		t.Errorf("new zone properties = %+v; want 1 record set (its SOA) of at most 25000", zone.Properties)
	}
	// az and the SDK create with If-None-Match: *; an existing zone is 412.
	_, err := d.zones.BeginCreateOrUpdate(ctx, "rg", privatelinkZone, armprivatedns.PrivateZone{Location: to.Ptr("global")},
		&armprivatedns.PrivateZonesClientBeginCreateOrUpdateOptions{IfNoneMatch: to.Ptr("*")})
	wantErr(t, "create an existing zone with If-None-Match: *", err, "PreconditionFailed", http.StatusPreconditionFailed)
	if err := d.link(t, "rg", privatelinkZone, "app-link", appVNet); err != nil {
		t.Fatalf("link app-vnet: %v", err)
	}
	// One zone name per virtual network.
	c.group(t, "rg2")
	d.zone(t, "rg2", privatelinkZone)
	wantErr(t, "link a second zone of the same name", d.link(t, "rg2", privatelinkZone, "dup", appVNet), "Conflict", http.StatusConflict)

	// A manual request (Pending) with a zone group: the A record appears with the endpoint's
	// address.
	if _, err := c.endpoint(t, "rg", "app-pe", appSubnet, *srv.ID, true, "dns"); err != nil {
		t.Fatal(err)
	}
	peHost, pePort, _ := net.SplitHostPort(peAddress(t, c, "rg", "app-pe"))
	group, err := d.zoneGroup(t, "rg", "app-pe", *zone.ID)
	if err != nil {
		t.Fatalf("create zone group: %v", err)
	}
	if rs := group.Properties.PrivateDNSZoneConfigs[0].Properties.RecordSets; len(rs) != 1 || str(rs[0].RecordSetName) != "orders-db" ||
		len(rs[0].IPAddresses) != 1 || str(rs[0].IPAddresses[0]) != peHost || str(rs[0].RecordType) != "A" {
		t.Errorf("zone group recordSets = %s; want orders-db A %s", jsonOf(rs), peHost)
	}
	rec, err := d.records.Get(ctx, "rg", privatelinkZone, armprivatedns.RecordTypeA, "orders-db", nil)
	if err != nil {
		t.Fatalf("get the zone group's A record: %v", err)
	}
	if a := rec.Properties.ARecords; len(a) != 1 || str(a[0].IPv4Address) != peHost || i64(rec.Properties.TTL) != 10 {
		t.Errorf("A record = %s; want %s with TTL 10", jsonOf(rec.Properties), peHost)
	}
	pe, err := c.pes.Get(ctx, "rg", "app-pe", nil)
	if err != nil {
		t.Fatal(err)
	}
	if cd := pe.Properties.CustomDNSConfigs; len(cd) != 1 || str(cd[0].Fqdn) != fqdn || len(cd[0].IPAddresses) != 1 || str(cd[0].IPAddresses[0]) != peHost {
		t.Errorf("customDnsConfigs = %s; want %s -> %s", jsonOf(cd), fqdn, peHost)
	}
	var sets []string
	for pager := d.records.NewListPager("rg", privatelinkZone, nil); pager.More(); {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Value {
			sets = append(sets, str(r.Type)+" "+str(r.Name))
		}
	}
	if got, want := strings.Join(sets, ", "), "Microsoft.Network/privateDnsZones/A orders-db, Microsoft.Network/privateDnsZones/SOA @"; got != want {
		t.Errorf("record sets = %s; want %s", got, want)
	}

	// Inside the linked network the ordinary name leads to the endpoint; outside, to the public
	// endpoint, through the same CNAME.
	cname := "CNAME orders-db." + privatelinkZone + "."
	wantAnswer(t, "app network, linked", appResolver, fqdn, cname, "A "+peHost)
	wantAnswer(t, "public view", public, fqdn, cname, "A "+pubHost)
	wantAnswer(t, "a network without the link", otherResolver, fqdn, cname, "A "+pubHost)
	if got, rcode := resolve(t, appResolver, "nobody."+privatelinkZone); rcode != mdns.RcodeNameError {
		t.Errorf("a name of a linked zone without a record = %s %v; want NXDOMAIN", mdns.RcodeToString[rcode], got)
	}
	if got, rcode := resolve(t, appResolver, "www.example.com"); rcode != mdns.RcodeRefused {
		t.Errorf("a name outside every zone = %s %v; want REFUSED", mdns.RcodeToString[rcode], got)
	}

	// pgx dials the name through the app network's resolver: refused while Pending, in once
	// approved.
	if _, err := connectByName(ctx, fqdn, pePort, appResolver); err == nil {
		t.Fatal("connected through a Pending endpoint")
	} else if code, msg := pgCode(err); code != "28000" || !strings.Contains(msg, "Pending") {
		t.Fatalf("connect by name while Pending: %v; want 28000 Pending", err)
	}
	pec := c.onlyConnection(t, "rg", "orders-db")
	if _, err := c.setStatus(ctx, "rg", "orders-db", *pec.Name, pg.PrivateEndpointServiceConnectionStatusApproved, "ok"); err != nil {
		t.Fatal(err)
	}
	conn, err := connectByName(ctx, fqdn, pePort, appResolver)
	if err != nil {
		t.Fatalf("connect by name once Approved: %v", err)
	}
	if err := selectOne(t, conn); err != nil {
		t.Error(err)
	}
	conn.Close(ctx)

	// Unlinking stops the private answers at once.
	lp, err := d.links.BeginDelete(ctx, "rg", privatelinkZone, "app-link", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lp.PollUntilDone(ctx, &azcoreFast); err != nil {
		t.Fatal(err)
	}
	wantAnswer(t, "app network, unlinked", appResolver, fqdn, cname, "A "+pubHost)

	// Deleting the endpoint removes its record (and the server's CNAME, with its last
	// connection).
	dp, err := c.pes.BeginDelete(ctx, "rg", "app-pe", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dp.PollUntilDone(ctx, &azcoreFast); err != nil {
		t.Fatal(err)
	}
	_, err = d.records.Get(ctx, "rg", privatelinkZone, armprivatedns.RecordTypeA, "orders-db", nil)
	wantErr(t, "the deleted endpoint's record", err, "ResourceNotFound", http.StatusNotFound)
	wantAnswer(t, "public view, endpoint deleted", public, fqdn, "A "+pubHost)
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func i64(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

// TestDNSSuffix: --dns-suffix names the servers: their fullyQualifiedDomainName, and the public
// view's CNAME to privatelink.<suffix> once a private endpoint connects.
func TestDNSSuffix(t *testing.T) {
	in := startLocal(t, func(c *server.Config) { c.DNSSuffix = "pg.example.test" })
	c := newClients(t, in)
	c.group(t, "rg")
	srv := c.localServer(t, "rg", "orders-db")
	if got := str(srv.Properties.FullyQualifiedDomainName); got != "orders-db.pg.example.test" {
		t.Errorf("fullyQualifiedDomainName = %q; want orders-db.pg.example.test", got)
	}
	pubHost, _, _ := net.SplitHostPort(serverAddress(t, c, "rg", "orders-db"))
	wantAnswer(t, "public view, no endpoint", in.srv.DNSAddr(), "orders-db.pg.example.test", "A "+pubHost)
	subnet := c.vnet(t, "rg", "app-vnet")
	if _, err := c.endpoint(t, "rg", "app-pe", subnet, *srv.ID, true, ""); err != nil {
		t.Fatal(err)
	}
	wantAnswer(t, "public view", in.srv.DNSAddr(), "orders-db.pg.example.test",
		"CNAME orders-db.privatelink.pg.example.test.", "A "+pubHost)
	if got, rcode := resolve(t, in.srv.DNSAddr(), "orders-db.postgres.database.azure.com"); rcode != mdns.RcodeRefused {
		t.Errorf("the default suffix under another one = %s %v; want REFUSED", mdns.RcodeToString[rcode], got)
	}
}
