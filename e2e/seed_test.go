package e2e

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v6"
	pg "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/postgresql/armpostgresqlflexibleservers/v4"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"

	"github.com/pglink/pglink/internal/server"
)

// clients are the Azure SDK for Go clients of one instance.
type clients struct {
	in       *instance
	groups   *armresources.ResourceGroupsClient
	servers  *pg.ServersClient
	rules    *pg.FirewallRulesClient
	conns    *pg.PrivateEndpointConnectionsClient
	conn     *pg.PrivateEndpointConnectionClient
	links    *pg.PrivateLinkResourcesClient
	vnets    *armnetwork.VirtualNetworksClient
	subnets  *armnetwork.SubnetsClient
	pes      *armnetwork.PrivateEndpointsClient
	location string
}

func newClients(t *testing.T, in *instance) *clients {
	t.Helper()
	return newClientsAs(t, in, in.credential())
}

// newClientsAs returns clients that call as the principal of cred.
func newClientsAs(t *testing.T, in *instance, cred azcore.TokenCredential) *clients {
	t.Helper()
	opts, sub := in.armOptions(), in.boot.SubscriptionID
	rf, err := armresources.NewClientFactory(sub, cred, opts)
	if err != nil {
		t.Fatal(err)
	}
	pf, err := pg.NewClientFactory(sub, cred, opts)
	if err != nil {
		t.Fatal(err)
	}
	nf, err := armnetwork.NewClientFactory(sub, cred, opts)
	if err != nil {
		t.Fatal(err)
	}
	return &clients{in: in, groups: rf.NewResourceGroupsClient(), servers: pf.NewServersClient(),
		rules: pf.NewFirewallRulesClient(), conns: pf.NewPrivateEndpointConnectionsClient(),
		conn: pf.NewPrivateEndpointConnectionClient(), links: pf.NewPrivateLinkResourcesClient(),
		vnets: nf.NewVirtualNetworksClient(), subnets: nf.NewSubnetsClient(), pes: nf.NewPrivateEndpointsClient(),
		location: "eastus"}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func (c *clients) group(t *testing.T, name string) {
	t.Helper()
	if _, err := c.groups.CreateOrUpdate(ctxT(t), name, armresources.ResourceGroup{Location: to.Ptr(c.location)}, nil); err != nil {
		t.Fatalf("create resource group %s: %v", name, err)
	}
}

func serverSpec(location string) pg.Server {
	return pg.Server{
		Location: to.Ptr(location),
		SKU:      &pg.SKU{Name: to.Ptr("Standard_D2s_v3"), Tier: to.Ptr(pg.SKUTierGeneralPurpose)},
		Properties: &pg.ServerProperties{
			AdministratorLogin:         to.Ptr("pgadmin"),
			AdministratorLoginPassword: to.Ptr("S3cret-pass!"),
			Version:                    to.Ptr(pg.ServerVersionSixteen),
		},
	}
}

func (c *clients) server(t *testing.T, rg, name string) pg.Server {
	t.Helper()
	ctx := ctxT(t)
	poller, err := c.servers.BeginCreate(ctx, rg, name, serverSpec(c.location), nil)
	if err != nil {
		t.Fatalf("create server %s: %v", name, err)
	}
	res, err := poller.PollUntilDone(ctx, &azcoreFast)
	if err != nil {
		t.Fatalf("create server %s: %v", name, err)
	}
	return res.Server
}

// vnet creates a virtual network 10.0.0.0/16 with subnet "pe" 10.0.1.0/24 and returns the
// subnet's ID.
func (c *clients) vnet(t *testing.T, rg, name string) string {
	t.Helper()
	ctx := ctxT(t)
	poller, err := c.vnets.BeginCreateOrUpdate(ctx, rg, name, armnetwork.VirtualNetwork{
		Location: to.Ptr(c.location),
		Properties: &armnetwork.VirtualNetworkPropertiesFormat{
			AddressSpace: &armnetwork.AddressSpace{AddressPrefixes: []*string{to.Ptr("10.0.0.0/16")}},
			Subnets: []*armnetwork.Subnet{{Name: to.Ptr("pe"), Properties: &armnetwork.SubnetPropertiesFormat{
				AddressPrefix: to.Ptr("10.0.1.0/24")}}},
		},
	}, nil)
	if err != nil {
		t.Fatalf("create vnet: %v", err)
	}
	res, err := poller.PollUntilDone(ctx, &azcoreFast)
	if err != nil {
		t.Fatalf("create vnet: %v", err)
	}
	return *res.Properties.Subnets[0].ID
}

// endpoint creates private endpoint name in subnet towards server; manual requests start
// Pending.
func (c *clients) endpoint(t *testing.T, rg, name, subnetID, serverID string, manual bool, message string) (armnetwork.PrivateEndpoint, error) {
	t.Helper()
	ctx := ctxT(t)
	conn := &armnetwork.PrivateLinkServiceConnection{Name: to.Ptr(name + "-conn"), Properties: &armnetwork.PrivateLinkServiceConnectionProperties{
		PrivateLinkServiceID: to.Ptr(serverID),
		GroupIDs:             []*string{to.Ptr("postgresqlServer")},
		RequestMessage:       to.Ptr(message),
	}}
	props := &armnetwork.PrivateEndpointProperties{Subnet: &armnetwork.Subnet{ID: to.Ptr(subnetID)}}
	if manual {
		props.ManualPrivateLinkServiceConnections = []*armnetwork.PrivateLinkServiceConnection{conn}
	} else {
		props.PrivateLinkServiceConnections = []*armnetwork.PrivateLinkServiceConnection{conn}
	}
	poller, err := c.pes.BeginCreateOrUpdate(ctx, rg, name, armnetwork.PrivateEndpoint{Location: to.Ptr(c.location), Properties: props}, nil)
	if err != nil {
		return armnetwork.PrivateEndpoint{}, err
	}
	res, err := poller.PollUntilDone(ctx, &azcoreFast)
	return res.PrivateEndpoint, err
}

// onlyConnection returns the single private endpoint connection of a server.
func (c *clients) onlyConnection(t *testing.T, rg, srv string) *pg.PrivateEndpointConnection {
	t.Helper()
	var all []*pg.PrivateEndpointConnection
	pager := c.conns.NewListByServerPager(rg, srv, nil)
	for pager.More() {
		page, err := pager.NextPage(ctxT(t))
		if err != nil {
			t.Fatalf("list connections: %v", err)
		}
		all = append(all, page.Value...)
	}
	if len(all) != 1 {
		t.Fatalf("server %s has %d connections; want 1", srv, len(all))
	}
	return all[0]
}

// setStatus approves or rejects a connection and waits for the operation.
func (c *clients) setStatus(ctx context.Context, rg, srv, name string, status pg.PrivateEndpointServiceConnectionStatus, why string) (pg.PrivateEndpointConnection, error) {
	poller, err := c.conn.BeginUpdate(ctx, rg, srv, name, pg.PrivateEndpointConnection{
		Properties: &pg.PrivateEndpointConnectionProperties{PrivateLinkServiceConnectionState: &pg.PrivateLinkServiceConnectionState{
			Status: to.Ptr(status), Description: to.Ptr(why)}},
	}, nil)
	if err != nil {
		return pg.PrivateEndpointConnection{}, err
	}
	res, err := poller.PollUntilDone(ctx, &azcoreFast)
	return res.PrivateEndpointConnection, err
}

// azErr returns err's ARM error code and HTTP status.
func azErr(t *testing.T, err error) (string, int) {
	t.Helper()
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("error %v is not an ARM response error", err)
	}
	return re.ErrorCode, re.StatusCode
}

func wantErr(t *testing.T, what string, err error, code string, status int) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: succeeded; want %d %s", what, status, code)
	}
	gotCode, gotStatus := azErr(t, err)
	if gotCode != code || gotStatus != status {
		t.Fatalf("%s: got %d %s (%v); want %d %s", what, gotStatus, gotCode, err, status, code)
	}
}

// TestSeedWorkflow is the workflow of the seed document: a network administrator creates a
// private endpoint, which opens a Pending connection on a flexible server; a database
// administrator approves it with a description; rejection, deletion and the rules around them.
func TestSeedWorkflow(t *testing.T) {
	for _, tc := range []struct {
		name string
		wait time.Duration // LRO inline wait: 0 forces the 202 + polling path
	}{{"inline", 2 * time.Second}, {"async", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			in := start(t, func(c *server.Config) { c.InlineWait = tc.wait })
			c := newClients(t, in)
			ctx := ctxT(t)
			c.group(t, "db-rg")
			c.group(t, "net-rg")
			srv := c.server(t, "db-rg", "orders-db")
			if got := *srv.Properties.State; got != pg.ServerStateReady {
				t.Fatalf("new server state = %s; want Ready", got)
			}
			if got := *srv.Properties.FullyQualifiedDomainName; got != "orders-db.postgres.database.azure.com" {
				t.Errorf("fqdn = %s", got)
			}
			subnet := c.vnet(t, "net-rg", "app-vnet")

			// The private link resource the network admin targets.
			plr, err := c.links.Get(ctx, "db-rg", "orders-db", "postgresqlServer", nil)
			if err != nil {
				t.Fatalf("get private link resource: %v", err)
			}
			if *plr.Properties.GroupID != "postgresqlServer" || *plr.Properties.RequiredZoneNames[0] != "privatelink.postgres.database.azure.com" {
				t.Errorf("private link resource = %+v", plr.Properties)
			}

			// Network admin: a manual request opens a Pending connection.
			pe, err := c.endpoint(t, "net-rg", "app-pe", subnet, *srv.ID, true, "for the orders app")
			if err != nil {
				t.Fatalf("create private endpoint: %v", err)
			}
			mc := pe.Properties.ManualPrivateLinkServiceConnections[0]
			if got := *mc.Properties.PrivateLinkServiceConnectionState.Status; got != "Pending" {
				t.Errorf("endpoint connection status = %s; want Pending", got)
			}
			if got := *pe.Properties.CustomDNSConfigs[0].IPAddresses[0]; got != "10.0.1.4" {
				t.Errorf("endpoint address = %s; want 10.0.1.4 (first usable of 10.0.1.0/24)", got)
			}
			pec := c.onlyConnection(t, "db-rg", "orders-db")
			if got := *pec.Properties.PrivateLinkServiceConnectionState.Status; got != pg.PrivateEndpointServiceConnectionStatusPending {
				t.Fatalf("connection status = %s; want Pending", got)
			}
			if got := *pec.Properties.PrivateLinkServiceConnectionState.Description; got != "for the orders app" {
				t.Errorf("pending connection description = %q; want the request message", got)
			}
			if !strings.HasPrefix(*pec.Name, "app-pe.") {
				t.Errorf("connection name = %s; want app-pe.<guid>", *pec.Name)
			}
			got, err := c.servers.Get(ctx, "db-rg", "orders-db", nil)
			if err != nil {
				t.Fatal(err)
			}
			if n := len(got.Properties.PrivateEndpointConnections); n != 1 {
				t.Errorf("server embeds %d connections; want 1", n)
			}

			// DBA: approve with a description.
			res, err := c.setStatus(ctx, "db-rg", "orders-db", *pec.Name, pg.PrivateEndpointServiceConnectionStatusApproved, "approved by the DBA team")
			if err != nil {
				t.Fatalf("approve: %v", err)
			}
			if s := *res.Properties.PrivateLinkServiceConnectionState.Status; s != pg.PrivateEndpointServiceConnectionStatusApproved {
				t.Fatalf("after approve status = %s", s)
			}
			if d := *res.Properties.PrivateLinkServiceConnectionState.Description; d != "approved by the DBA team" {
				t.Errorf("after approve description = %q", d)
			}
			pe2, err := c.pes.Get(ctx, "net-rg", "app-pe", nil)
			if err != nil {
				t.Fatal(err)
			}
			if s := *pe2.Properties.ManualPrivateLinkServiceConnections[0].Properties.PrivateLinkServiceConnectionState.Status; s != "Approved" {
				t.Errorf("endpoint mirrors %s; want Approved", s)
			}
			// Approving again is a no-op.
			if _, err := c.setStatus(ctx, "db-rg", "orders-db", *pec.Name, pg.PrivateEndpointServiceConnectionStatusApproved, "approved by the DBA team"); err != nil {
				t.Fatalf("approve again: %v", err)
			}

			// Reject, then re-approve is refused: recreate the endpoint instead.
			if _, err := c.setStatus(ctx, "db-rg", "orders-db", *pec.Name, pg.PrivateEndpointServiceConnectionStatusRejected, "decommissioned"); err != nil {
				t.Fatalf("reject: %v", err)
			}
			_, err = c.setStatus(ctx, "db-rg", "orders-db", *pec.Name, pg.PrivateEndpointServiceConnectionStatusApproved, "oops")
			wantErr(t, "re-approve a rejected connection", err, "PrivateEndpointConnectionRejected", http.StatusBadRequest)

			// Deleting the connection leaves the endpoint Disconnected.
			dp, err := c.conn.BeginDelete(ctx, "db-rg", "orders-db", *pec.Name, nil)
			if err != nil {
				t.Fatalf("delete connection: %v", err)
			}
			if _, err := dp.PollUntilDone(ctx, &azcoreFast); err != nil {
				t.Fatalf("delete connection: %v", err)
			}
			if _, err := c.conns.Get(ctx, "db-rg", "orders-db", *pec.Name, nil); err == nil {
				t.Fatal("connection still exists after delete")
			} else {
				wantErr(t, "get deleted connection", err, "ResourceNotFound", http.StatusNotFound)
			}
			pe3, err := c.pes.Get(ctx, "net-rg", "app-pe", nil)
			if err != nil {
				t.Fatal(err)
			}
			if s := *pe3.Properties.ManualPrivateLinkServiceConnections[0].Properties.PrivateLinkServiceConnectionState.Status; s != "Disconnected" {
				t.Errorf("endpoint after connection delete = %s; want Disconnected", s)
			}

			// An automatic request by a caller allowed to approve is Approved at once.
			pe4, err := c.endpoint(t, "net-rg", "auto-pe", subnet, *srv.ID, false, "")
			if err != nil {
				t.Fatalf("create automatic endpoint: %v", err)
			}
			st := pe4.Properties.PrivateLinkServiceConnections[0].Properties.PrivateLinkServiceConnectionState
			if *st.Status != "Approved" || *st.Description != "Auto-Approved" {
				t.Errorf("automatic connection = %s %q; want Approved Auto-Approved", *st.Status, *st.Description)
			}
			if got := *pe4.Properties.CustomDNSConfigs[0].IPAddresses[0]; got != "10.0.1.5" {
				t.Errorf("second endpoint address = %s; want 10.0.1.5", got)
			}
			// Deleting an endpoint removes its connection.
			dpe, err := c.pes.BeginDelete(ctx, "net-rg", "auto-pe", nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := dpe.PollUntilDone(ctx, &azcoreFast); err != nil {
				t.Fatal(err)
			}
			pager := c.conns.NewListByServerPager("db-rg", "orders-db", nil)
			page, err := pager.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Value) != 0 {
				t.Errorf("connections after endpoint delete = %d; want 0", len(page.Value))
			}
		})
	}
}

// TestConcurrentApproveReject races an approval against a rejection of one Pending
// connection: exactly one wins, the other gets 409, and the final state is the winner's.
func TestConcurrentApproveReject(t *testing.T) {
	in := start(t, func(c *server.Config) { c.InlineWait = 0 })
	c := newClients(t, in)
	ctx := ctxT(t)
	c.group(t, "rg")
	srv := c.server(t, "rg", "race-db")
	subnet := c.vnet(t, "rg", "vnet")
	for round := 0; round < 5; round++ {
		name := "pe" + string(rune('a'+round))
		if _, err := c.endpoint(t, "rg", name, subnet, *srv.ID, true, ""); err != nil {
			t.Fatal(err)
		}
		var pecName string
		pager := c.conns.NewListByServerPager("rg", "race-db", nil)
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range page.Value {
			if strings.HasPrefix(*p.Name, name+".") {
				pecName = *p.Name
			}
		}
		var wg sync.WaitGroup
		results := make([]error, 2)
		statuses := []pg.PrivateEndpointServiceConnectionStatus{pg.PrivateEndpointServiceConnectionStatusApproved, pg.PrivateEndpointServiceConnectionStatusRejected}
		for i := range statuses {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, results[i] = c.setStatus(ctx, "rg", "race-db", pecName, statuses[i], "race")
			}()
		}
		wg.Wait()
		final, err := c.conns.Get(ctx, "rg", "race-db", pecName, nil)
		if err != nil {
			t.Fatal(err)
		}
		got := *final.Properties.PrivateLinkServiceConnectionState.Status
		switch {
		case results[0] == nil && results[1] == nil:
			// Serialized: approve then reject (legal), or reject then approve (refused) — the
			// latter cannot leave both nil.
			if got != pg.PrivateEndpointServiceConnectionStatusRejected {
				t.Fatalf("round %d: both succeeded but final status is %s", round, got)
			}
		case results[0] == nil:
			if got != pg.PrivateEndpointServiceConnectionStatusApproved {
				t.Fatalf("round %d: approve won but final status is %s", round, got)
			}
			if _, status := azErr(t, results[1]); status != http.StatusConflict && status != http.StatusBadRequest {
				t.Fatalf("round %d: losing reject got %v; want 409", round, results[1])
			}
		case results[1] == nil:
			if got != pg.PrivateEndpointServiceConnectionStatusRejected {
				t.Fatalf("round %d: reject won but final status is %s", round, got)
			}
			if _, status := azErr(t, results[0]); status != http.StatusConflict && status != http.StatusBadRequest {
				t.Fatalf("round %d: losing approve got %v; want 409 or 400", round, results[0])
			}
		default:
			t.Fatalf("round %d: both failed: %v / %v", round, results[0], results[1])
		}
	}
}
