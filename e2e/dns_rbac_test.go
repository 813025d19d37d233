package e2e

import (
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	pg "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/postgresql/armpostgresqlflexibleservers/v4"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/privatedns/armprivatedns"

	"github.com/pglink/pglink/internal/store"
)

// TestDNSSeparationOfDuties: private DNS follows Azure's RBAC. A database administrator gets
// 403 on zones, links and records; a Private DNS Zone Contributor manages zones, and links a
// virtual network only with virtualNetworks/join/action on it; a network administrator's zone
// group needs privateDnsZones/join/action on the zone.
func TestDNSSeparationOfDuties(t *testing.T) {
	in := start(t, nil)
	admin := newClients(t, in)
	for _, g := range []string{"net", "dns", "db"} {
		admin.group(t, g)
	}
	sub := "/subscriptions/" + in.boot.SubscriptionID
	netRG, dnsRG, dbRG := sub+"/resourceGroups/net", sub+"/resourceGroups/dns", sub+"/resourceGroups/db"
	srv := admin.server(t, "db", "pg1")
	subnet := admin.vnet(t, "net", "vnet1")
	vnetID := strings.SplitN(subnet, "/subnets/", 2)[0]
	if _, err := admin.endpoint(t, "net", "pe1", subnet, *srv.ID, true, "dns"); err != nil {
		t.Fatal(err)
	}

	cli := in.adminCLI(t)
	grant := func(p principal, scope, role string) {
		t.Helper()
		cli.ok(nil, "role", "assignment", "create", "--assignee", p.clientID, "--role", role, "--scope", scope)
	}
	dnsP, dbP, netP := in.addServicePrincipal(t, cli, "dnsadmin"), in.addServicePrincipal(t, cli, "dbadmin"), in.addServicePrincipal(t, cli, "netadmin")
	grant(dnsP, dnsRG, "Private DNS Zone Contributor")
	grant(dbP, dbRG, "PostgreSQL Flexible Server Administrator")
	grant(netP, netRG, "Network Contributor")
	dnsC := newDNSClientsAs(t, in, in.credentialFor(dnsP.clientID, dnsP.secret))
	dbC := newDNSClientsAs(t, in, in.credentialFor(dbP.clientID, dbP.secret))
	netC := newDNSClientsAs(t, in, in.credentialFor(netP.clientID, netP.secret))

	// The DNS administrator makes the zone; linking the network in another group needs join
	// on it.
	zone := dnsC.zone(t, "dns", privatelinkZone)
	err := dnsC.link(t, "dns", privatelinkZone, "vnet1-link", vnetID)
	wantDenied(t, "DNS admin: link a network it may not join", err, "LinkedAuthorizationFailed", "")
	if err != nil && (!strings.Contains(err.Error(), "Microsoft.Network/virtualNetworks/join/action") || !strings.Contains(err.Error(), vnetID)) {
		t.Errorf("LinkedAuthorizationFailed %v does not name virtualNetworks/join/action on the network", err)
	}
	grant(dnsP, vnetID, "Private DNS Zone Contributor") // virtualNetworks/read and join/action
	if err := dnsC.link(t, "dns", privatelinkZone, "vnet1-link", vnetID); err != nil {
		t.Errorf("DNS admin: link with join on the network: %v", err)
	}
	if _, err := dnsC.records.CreateOrUpdate(ctxT(t), "dns", privatelinkZone, armprivatedns.RecordTypeA, "www",
		armprivatedns.RecordSet{Properties: &armprivatedns.RecordSetProperties{TTL: to.Ptr[int64](60),
			ARecords: []*armprivatedns.ARecord{{IPv4Address: to.Ptr("10.0.0.9")}}}}, nil); err != nil {
		t.Errorf("DNS admin: A record: %v", err)
	}
	_, err = in.as(t, dnsP).endpoint(t, "dns", "pe-dns", subnet, *srv.ID, true, "")
	wantDenied(t, "DNS admin: private endpoint", err, "AuthorizationFailed", "Microsoft.Network/privateEndpoints/write")

	// The database administrator touches no zone, link or record.
	_, err = dbC.tryZone(t, "db", "privatelink.example.test")
	wantDenied(t, "db admin: create zone", err, "AuthorizationFailed", "Microsoft.Network/privateDnsZones/write")
	_, err = dbC.zones.Get(ctxT(t), "dns", privatelinkZone, nil)
	wantDenied(t, "db admin: read zone", err, "AuthorizationFailed", "Microsoft.Network/privateDnsZones/read")
	err = dbC.link(t, "dns", privatelinkZone, "db-link", vnetID)
	wantDenied(t, "db admin: link", err, "AuthorizationFailed", "Microsoft.Network/privateDnsZones/virtualNetworkLinks/write")
	_, err = dbC.links.BeginDelete(ctxT(t), "dns", privatelinkZone, "vnet1-link", nil)
	wantDenied(t, "db admin: unlink", err, "AuthorizationFailed", "Microsoft.Network/privateDnsZones/virtualNetworkLinks/delete")
	_, err = dbC.records.CreateOrUpdate(ctxT(t), "dns", privatelinkZone, armprivatedns.RecordTypeA, "pg1",
		armprivatedns.RecordSet{Properties: &armprivatedns.RecordSetProperties{TTL: to.Ptr[int64](60)}}, nil)
	wantDenied(t, "db admin: A record", err, "AuthorizationFailed", "Microsoft.Network/privateDnsZones/A/write")

	// The network administrator's zone group needs join on the zone.
	_, err = netC.zoneGroup(t, "net", "pe1", *zone.ID)
	wantDenied(t, "network admin: zone group without join on the zone", err, "LinkedAuthorizationFailed", "")
	if err != nil && !strings.Contains(err.Error(), "Microsoft.Network/privateDnsZones/join/action") {
		t.Errorf("LinkedAuthorizationFailed %v does not name privateDnsZones/join/action", err)
	}
	grant(netP, *zone.ID, "Private DNS Zone Contributor")
	if g, err := netC.zoneGroup(t, "net", "pe1", *zone.ID); err != nil {
		t.Errorf("network admin: zone group with join on the zone: %v", err)
	} else if rs := g.Properties.PrivateDNSZoneConfigs[0].Properties.RecordSets; len(rs) != 1 || str(rs[0].RecordSetName) != "pg1" {
		t.Errorf("zone group recordSets = %s; want pg1", jsonOf(rs))
	}
}

// TestDNSGroupDelete: deleting the endpoint's resource group removes the records its zone group
// wrote in a zone elsewhere; deleting the zone's group removes the zone, its links and records.
func TestDNSGroupDelete(t *testing.T) {
	in, c, d, srv, subnet, zone := zoneGroupWorld(t)
	ctx := ctxT(t)
	if err := d.link(t, "dns", privatelinkZone, "vnet1-link", strings.SplitN(subnet, "/subnets/", 2)[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := c.endpoint(t, "net", "pe1", subnet, *srv.ID, true, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := d.zoneGroup(t, "net", "pe1", *zone.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := d.records.CreateOrUpdate(ctx, "dns", privatelinkZone, armprivatedns.RecordTypeTXT, "note",
		armprivatedns.RecordSet{Properties: &armprivatedns.RecordSetProperties{TTL: to.Ptr[int64](60),
			TxtRecords: []*armprivatedns.TxtRecord{{Value: []*string{to.Ptr("kept")}}}}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := d.records.Get(ctx, "dns", privatelinkZone, armprivatedns.RecordTypeA, "pg1", nil); err != nil {
		t.Fatalf("the zone group's record: %v", err)
	}
	if err := c.deleteGroup(ctx, "net"); err != nil {
		t.Fatalf("delete the endpoint's group: %v", err)
	}
	_, err := d.records.Get(ctx, "dns", privatelinkZone, armprivatedns.RecordTypeA, "pg1", nil)
	wantErr(t, "the deleted endpoint's record", err, "ResourceNotFound", 404)
	if _, err := d.records.Get(ctx, "dns", privatelinkZone, armprivatedns.RecordTypeTXT, "note", nil); err != nil {
		t.Errorf("a record the zone group did not write was removed: %v", err)
	}
	if err := c.deleteGroup(ctx, "dns"); err != nil {
		t.Fatalf("delete the zone's group: %v", err)
	}
	_, err = d.zones.Get(ctx, "dns", privatelinkZone, nil)
	wantErr(t, "zone of a deleted group", err, "ResourceGroupNotFound", 404)
	n := 0
	in.srv.Store().View(ctx, func(tx store.Tx) error {
		all, err := tx.List(ctx, store.ListOptions{Prefix: strings.ToLower(*zone.ID)})
		n = len(all)
		return err
	})
	if n != 0 {
		t.Errorf("%d resources left below the deleted zone", n)
	}
}

// TestDNSZoneGroupKeepsHandWrittenAddresses: an address already in the zone (written by hand)
// is not the zone group's: the group does not report it as written and its removal keeps it.
func TestDNSZoneGroupKeepsHandWrittenAddresses(t *testing.T) {
	_, c, d, srv, subnet, zone := zoneGroupWorld(t)
	ctx := ctxT(t)
	if _, err := c.endpoint(t, "net", "pe1", subnet, *srv.ID, true, ""); err != nil {
		t.Fatal(err)
	}
	pe, err := c.pes.Get(ctx, "net", "pe1", nil)
	if err != nil || len(pe.Properties.CustomDNSConfigs) == 0 || len(pe.Properties.CustomDNSConfigs[0].IPAddresses) == 0 {
		t.Fatalf("endpoint pe1: %v; want an address in customDnsConfigs", err)
	}
	ip := *pe.Properties.CustomDNSConfigs[0].IPAddresses[0]
	if _, err := d.records.CreateOrUpdate(ctx, "dns", privatelinkZone, armprivatedns.RecordTypeA, "pg1",
		armprivatedns.RecordSet{Properties: &armprivatedns.RecordSetProperties{TTL: to.Ptr[int64](60),
			ARecords: []*armprivatedns.ARecord{{IPv4Address: &ip}}}}, nil); err != nil {
		t.Fatal(err)
	}
	g, err := d.zoneGroup(t, "net", "pe1", *zone.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rs := g.Properties.PrivateDNSZoneConfigs[0].Properties.RecordSets; len(rs) != 1 || len(rs[0].IPAddresses) != 0 {
		t.Errorf("zone group record sets = %+v; want pg1 with no address of its own", rs)
	}
	poller, err := d.groups.BeginDelete(ctx, "net", "pe1", *g.Name, nil)
	if err == nil {
		_, err = poller.PollUntilDone(ctx, &azcoreFast)
	}
	if err != nil {
		t.Fatalf("delete the zone group: %v", err)
	}
	rs, err := d.records.Get(ctx, "dns", privatelinkZone, armprivatedns.RecordTypeA, "pg1", nil)
	if err != nil || len(rs.Properties.ARecords) != 1 || *rs.Properties.ARecords[0].IPv4Address != ip {
		t.Errorf("hand-written record after the zone group's removal = %+v, %v; want %s kept", rs.Properties, err, ip)
	}
}

// zoneGroupWorld starts pglink with groups net, dns and db, server pg1 in db, virtual network
// vnet1 in net (its subnet returned) and the privatelink zone in dns.
func zoneGroupWorld(t *testing.T) (*instance, *clients, dnsClients, pg.Server, string, armprivatedns.PrivateZone) {
	t.Helper()
	in := start(t, nil)
	c := newClients(t, in)
	d := newDNSClients(t, in)
	for _, g := range []string{"net", "dns", "db"} {
		c.group(t, g)
	}
	srv := c.server(t, "db", "pg1")
	subnet := c.vnet(t, "net", "vnet1")
	return in, c, d, srv, subnet, d.zone(t, "dns", privatelinkZone)
}
