package e2e

import (
	"bytes"
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v6"
	pg "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/postgresql/armpostgresqlflexibleservers/v4"

	"github.com/pglink/pglink/internal/store"
)

// deleteGroup deletes a resource group with the SDK and waits for the outcome.
func (c *clients) deleteGroup(ctx context.Context, name string) error {
	p, err := c.groups.BeginDelete(ctx, name, nil)
	if err != nil {
		return err
	}
	_, err = p.PollUntilDone(ctx, &azcoreFast)
	return err
}

// endpointStatus returns the connection status a private endpoint shows.
func (c *clients) endpointStatus(t *testing.T, rg, name string) string {
	t.Helper()
	pe, err := c.pes.Get(ctxT(t), rg, name, nil)
	if err != nil {
		t.Fatalf("get private endpoint %s/%s: %v", rg, name, err)
	}
	conns := append(pe.Properties.PrivateLinkServiceConnections, pe.Properties.ManualPrivateLinkServiceConnections...)
	if len(conns) != 1 {
		t.Fatalf("private endpoint %s/%s has %d connections; want 1", rg, name, len(conns))
	}
	return string(*conns[0].Properties.PrivateLinkServiceConnectionState.Status)
}

// connections returns the private endpoint connections of a server.
func (c *clients) connections(t *testing.T, rg, srv string) []*pg.PrivateEndpointConnection {
	t.Helper()
	var all []*pg.PrivateEndpointConnection
	pager := c.conns.NewListByServerPager(rg, srv, nil)
	for pager.More() {
		page, err := pager.NextPage(ctxT(t))
		if err != nil {
			t.Fatalf("list connections of %s/%s: %v", rg, srv, err)
		}
		all = append(all, page.Value...)
	}
	return all
}

// TestResourceGroupDeleteAcrossGroups deletes groups whose resources are linked to resources
// of other groups: a virtual network in "net", private endpoints in "ep", servers in "db" and
// "db2". Each group delete runs every type's own delete logic, so what stays in the other
// groups is consistent.
func TestResourceGroupDeleteAcrossGroups(t *testing.T) {
	in := start(t, nil)
	c := newClients(t, in)
	ctx := ctxT(t)
	for _, g := range []string{"net", "ep", "db", "db2"} {
		c.group(t, g)
	}
	subnet := c.vnet(t, "net", "vnet")
	db1 := c.server(t, "db", "db1")
	db2 := c.server(t, "db2", "db2")
	if _, err := c.endpoint(t, "ep", "pe1", subnet, *db1.ID, false, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.endpoint(t, "ep", "pe2", subnet, *db2.ID, true, "please"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.setStatus(ctx, "db2", "db2", *c.onlyConnection(t, "db2", "db2").Name, pg.PrivateEndpointServiceConnectionStatusApproved, "ok"); err != nil {
		t.Fatal(err)
	}

	// A subnet that endpoints of another group use cannot go: the group delete fails as the
	// subnet's own delete would, changes nothing, and the group is usable again.
	err := c.deleteGroup(ctx, "net")
	wantErr(t, "delete a group whose subnet another group's endpoints use", err, "InUseSubnetCannotBeDeleted", http.StatusBadRequest)
	g, err := c.groups.Get(ctx, "net", nil)
	if err != nil {
		t.Fatal(err)
	}
	if s := *g.Properties.ProvisioningState; s != "Succeeded" {
		t.Errorf("group after a refused delete: provisioningState %s; want Succeeded", s)
	}
	if _, err := c.vnets.Get(ctx, "net", "vnet", nil); err != nil {
		t.Errorf("virtual network after a refused group delete: %v", err)
	}

	// The server's group goes: the endpoint in the other group is Disconnected.
	if err := c.deleteGroup(ctx, "db"); err != nil {
		t.Fatal(err)
	}
	if s := c.endpointStatus(t, "ep", "pe1"); s != "Disconnected" {
		t.Errorf("endpoint of a server whose group was deleted = %s; want Disconnected", s)
	}
	if s := c.endpointStatus(t, "ep", "pe2"); s != "Approved" {
		t.Errorf("endpoint of a server that stays = %s; want Approved", s)
	}

	// The endpoints' group goes: their connections on servers elsewhere go, and so do their
	// addresses in the subnet of the third group.
	if err := c.deleteGroup(ctx, "ep"); err != nil {
		t.Fatal(err)
	}
	if conns := c.connections(t, "db2", "db2"); len(conns) != 0 {
		t.Errorf("server db2 has %d connections after its endpoint's group was deleted; want none", len(conns))
	}
	got, err := c.servers.Get(ctx, "db2", "db2", nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(got.Properties.PrivateEndpointConnections); n != 0 {
		t.Errorf("server db2 embeds %d connections; want none", n)
	}
	sn, err := c.subnets.Get(ctx, "net", "vnet", "pe", nil)
	if err != nil {
		t.Fatal(err)
	}
	if n, m := len(sn.Properties.IPConfigurations), len(sn.Properties.PrivateEndpoints); n != 0 || m != 0 {
		t.Errorf("subnet after its endpoints' group was deleted: %d ipConfigurations, %d privateEndpoints; want none", n, m)
	}

	// Now nothing else uses the network: its group goes too.
	if err := c.deleteGroup(ctx, "net"); err != nil {
		t.Fatal(err)
	}
	// Nothing is left of the deleted groups, and nothing anywhere points at them.
	sub := "/subscriptions/" + strings.ToLower(in.boot.SubscriptionID)
	in.srv.Store().View(ctx, func(tx store.Tx) error {
		all, err := tx.List(ctx, store.ListOptions{Prefix: sub})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range all {
			for _, gone := range []string{"/resourcegroups/net", "/resourcegroups/ep", "/resourcegroups/db/"} {
				if strings.HasPrefix(r.Key, sub+gone) {
					t.Errorf("%s left after its group was deleted", r.ID)
				}
				if bytes.Contains(bytes.ToLower(r.Body), []byte(sub+gone)) {
					t.Errorf("%s still refers to deleted group %s: %s", r.ID, gone, r.Body)
				}
			}
		}
		return nil
	})
}

// TestWritesIntoDeletingGroup: while a group's delete runs, every write into it is refused
// with 409 ResourceGroupBeingDeleted, including private endpoints of other groups that would
// take an address in it or connect to a server in it.
func TestWritesIntoDeletingGroup(t *testing.T) {
	in := start(t, nil)
	c := newClients(t, in)
	ctx := ctxT(t)
	c.group(t, "doomed")
	c.group(t, "other")
	srv := c.server(t, "doomed", "db1")
	subnet := c.vnet(t, "doomed", "vnet")
	otherSubnet := c.vnet(t, "other", "vnet")
	// Hold the group in Deleting, as a long delete would.
	key := "/subscriptions/" + strings.ToLower(in.boot.SubscriptionID) + "/resourcegroups/doomed"
	err := in.srv.Store().Update(ctx, func(tx store.Tx) error {
		r, err := tx.Get(ctx, key)
		if err != nil {
			return err
		}
		r.Body = bytes.Replace(r.Body, []byte(`"provisioningState":"Succeeded"`), []byte(`"provisioningState":"Deleting"`), 1)
		_, err = tx.Put(ctx, r, "")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	const code, status = "ResourceGroupBeingDeleted", http.StatusConflict
	_, err = c.servers.BeginCreate(ctx, "doomed", "db2", serverSpec(c.location), nil)
	wantErr(t, "create a server", err, code, status)
	_, err = c.servers.BeginDelete(ctx, "doomed", "db1", nil)
	wantErr(t, "delete a server", err, code, status)
	_, err = c.servers.BeginStop(ctx, "doomed", "db1", nil)
	wantErr(t, "stop a server", err, code, status)
	_, err = c.rules.BeginCreateOrUpdate(ctx, "doomed", "db1", "r1", pg.FirewallRule{Properties: &pg.FirewallRuleProperties{
		StartIPAddress: to.Ptr("10.0.0.1"), EndIPAddress: to.Ptr("10.0.0.1")}}, nil)
	wantErr(t, "add a firewall rule", err, code, status)
	_, err = c.endpoint(t, "doomed", "pe0", subnet, *srv.ID, true, "")
	wantErr(t, "create an endpoint in the group", err, code, status)
	_, err = c.endpoint(t, "other", "pe1", subnet, "/subscriptions/"+in.boot.SubscriptionID+"/resourceGroups/other/providers/Microsoft.DBforPostgreSQL/flexibleServers/nope", true, "")
	wantErr(t, "create an endpoint elsewhere in the group's subnet", err, code, status)
	_, err = c.endpoint(t, "other", "pe2", otherSubnet, *srv.ID, true, "")
	wantErr(t, "create an endpoint elsewhere to the group's server", err, code, status)
	_, err = c.vnets.BeginCreateOrUpdate(ctx, "doomed", "vnet2", armnetwork.VirtualNetwork{Location: to.Ptr(c.location),
		Properties: &armnetwork.VirtualNetworkPropertiesFormat{AddressSpace: &armnetwork.AddressSpace{AddressPrefixes: []*string{to.Ptr("10.1.0.0/16")}}}}, nil)
	wantErr(t, "create a virtual network", err, code, status)
	// Reads still work.
	if _, err := c.servers.Get(ctx, "doomed", "db1", nil); err != nil {
		t.Errorf("read a server in a Deleting group: %v", err)
	}
}

// TestDataPlaneGroupDelete, with real PostgreSQL: deleting the private endpoint's group cuts
// the sessions through it and removes its connection on the server in the other group;
// deleting the server's group removes its cluster.
func TestDataPlaneGroupDelete(t *testing.T) {
	in := startLocal(t)
	c := newClients(t, in)
	ctx := ctxT(t)
	c.group(t, "db")
	c.group(t, "ep")
	srv := c.localServer(t, "db", "orders-db")
	subnet := c.vnet(t, "ep", "vnet")
	if _, err := c.endpoint(t, "ep", "app-pe", subnet, *srv.ID, false, ""); err != nil {
		t.Fatal(err)
	}
	addr := peAddress(t, c, "ep", "app-pe")
	conn, err := connect(ctx, addr, "", "require", adminPassword)
	if err != nil {
		t.Fatalf("connect through the approved endpoint: %v", err)
	}
	defer conn.Close(context.Background())
	if err := selectOne(t, conn); err != nil {
		t.Fatal(err)
	}

	if err := c.deleteGroup(ctx, "ep"); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, conn, 5*time.Second)
	if c2, err := connect(ctx, addr, "", "require", adminPassword); err == nil {
		c2.Close(context.Background())
		t.Errorf("connected through the endpoint of a deleted group")
	}
	if conns := c.connections(t, "db", "orders-db"); len(conns) != 0 {
		t.Errorf("server has %d connections after its endpoint's group was deleted; want none", len(conns))
	}

	pattern := filepath.Join(in.dir, "servers", "*", "data", "PG_VERSION")
	if clusters, _ := filepath.Glob(pattern); len(clusters) != 1 {
		t.Fatalf("clusters before the group delete: %v; want the server's one (%s)", clusters, pattern)
	}
	if err := c.deleteGroup(ctx, "db"); err != nil {
		t.Fatal(err)
	}
	if clusters, _ := filepath.Glob(pattern); len(clusters) != 0 {
		t.Errorf("clusters left after the server's group was deleted: %v", clusters)
	}
}
