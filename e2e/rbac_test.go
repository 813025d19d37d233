package e2e

import (
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/authorization/armauthorization/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v6"
	pg "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/postgresql/armpostgresqlflexibleservers/v4"

	"github.com/pglink/pglink/internal/activity"
	"github.com/pglink/pglink/internal/authz"
	"github.com/pglink/pglink/internal/resource"
	"github.com/pglink/pglink/internal/store"
)

// principal is a service principal added for a test.
type principal struct {
	clientID, secret, objectID string
}

// adminCLI returns the pglink command line logged in as the bootstrap administrator.
func (in *instance) adminCLI(t *testing.T) *pglinkCLI {
	t.Helper()
	c := newCLI(t)
	c.ok(nil, "login", "--bootstrap", filepath.Join(in.dir, "bootstrap.json"))
	return c
}

// addServicePrincipal creates a service principal with the pglink CLI, as an administrator
// would: `pglink ad sp create-for-rbac --name NAME`.
func (in *instance) addServicePrincipal(t *testing.T, c *pglinkCLI, name string) principal {
	t.Helper()
	var out struct {
		AppID    string `json:"appId"`
		Password string `json:"password"`
	}
	c.ok(&out, "ad", "sp", "create-for-rbac", "--name", name)
	oid := strings.TrimSpace(c.ok(nil, "ad", "sp", "show", "--id", out.AppID, "--query", "id", "-o", "tsv"))
	return principal{clientID: out.AppID, secret: out.Password, objectID: oid}
}

// as returns SDK clients that call as p.
func (in *instance) as(t *testing.T, p principal) *clients {
	t.Helper()
	return newClientsAs(t, in, in.credentialFor(p.clientID, p.secret))
}

// wantDenied checks that err is 403 with code and, for AuthorizationFailed, names action.
func wantDenied(t *testing.T, what string, err error, code, action string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: succeeded; want 403 %s", what, code)
		return
	}
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusForbidden || re.ErrorCode != code {
		t.Errorf("%s: %v; want 403 %s", what, err, code)
		return
	}
	if action != "" && !strings.Contains(err.Error(), "'"+action+"'") {
		t.Errorf("%s: message %v does not name action %s", what, err, action)
	}
}

// TestSeparationOfDuties is the seed's split of duties, enforced: a network administrator
// (Network Contributor on the network group) and a database administrator (PostgreSQL
// Flexible Server Administrator on the database group) can each do their part and nothing
// of the other's; a Reader changes nothing; an Owner does everything.
func TestSeparationOfDuties(t *testing.T) {
	in := start(t, nil)
	admin := newClients(t, in)
	r := newRBAC(t, in)
	admin.group(t, "net")
	admin.group(t, "db")
	admin.group(t, "other")
	srv := admin.server(t, "db", "pg1")
	sub := "/subscriptions/" + in.boot.SubscriptionID
	netRG, dbRG := sub+"/resourceGroups/net", sub+"/resourceGroups/db"

	// Principals and their roles are made with the pglink CLI, as an administrator would.
	cli := in.adminCLI(t)
	grant := func(p principal, scope, role string) {
		t.Helper()
		cli.ok(nil, "role", "assignment", "create", "--assignee", p.clientID, "--role", role, "--scope", scope)
	}
	netP, dbP, readP, ownP := in.addServicePrincipal(t, cli, "netadmin"), in.addServicePrincipal(t, cli, "dbadmin"),
		in.addServicePrincipal(t, cli, "reader"), in.addServicePrincipal(t, cli, "owner")
	grant(netP, netRG, "Network Contributor")
	grant(dbP, dbRG, "PostgreSQL Flexible Server Administrator")
	grant(readP, sub, "Reader")
	grant(ownP, sub, "Owner")
	net, db, reader, owner := in.as(t, netP), in.as(t, dbP), in.as(t, readP), in.as(t, ownP)

	// A list of what the caller may read only in part is served filtered, and empty when
	// nothing is in it yet (not refused).
	if page, err := net.pes.NewListBySubscriptionPager(nil).NextPage(ctxT(t)); err != nil || len(page.Value) != 0 {
		t.Errorf("network admin lists private endpoints in the subscription before there are any: %v; want an empty list", err)
	}

	// The network administrator builds its network and asks for a manual connection.
	subnet := net.vnet(t, "net", "vnet1")
	pe, err := net.endpoint(t, "net", "pe1", subnet, *srv.ID, true, "please")
	if err != nil {
		t.Fatalf("network admin: manual private endpoint: %v", err)
	}
	if got := *pe.Properties.ManualPrivateLinkServiceConnections[0].Properties.PrivateLinkServiceConnectionState.Status; got != "Pending" {
		t.Errorf("manual connection status = %s; want Pending", got)
	}
	if _, err := net.pes.Get(ctxT(t), "net", "pe1", nil); err != nil {
		t.Errorf("network admin reads its endpoint: %v", err)
	}
	_, err = net.endpoint(t, "net", "pe-auto", subnet, *srv.ID, false, "")
	wantDenied(t, "network admin: automatic private endpoint", err, "LinkedAuthorizationFailed", "")
	if err != nil && (!strings.Contains(err.Error(), authz.ActionApprove) || !strings.Contains(err.Error(), *srv.ID)) {
		t.Errorf("LinkedAuthorizationFailed %v does not name the approval action on the server", err)
	}
	_, err = net.conns.NewListByServerPager("db", "pg1", nil).NextPage(ctxT(t))
	wantDenied(t, "network admin: list connections", err, "AuthorizationFailed", resource.TypeConnection+"/read")

	conn := *admin.onlyConnection(t, "db", "pg1").Name
	_, err = net.setStatus(ctxT(t), "db", "pg1", conn, pg.PrivateEndpointServiceConnectionStatusApproved, "self-service")
	wantDenied(t, "network admin: approve", err, "AuthorizationFailed", resource.TypeConnection+"/write")
	_, err = net.setStatus(ctxT(t), "db", "pg1", conn, pg.PrivateEndpointServiceConnectionStatusRejected, "no")
	wantDenied(t, "network admin: reject", err, "AuthorizationFailed", resource.TypeConnection+"/write")
	_, err = net.conn.BeginDelete(ctxT(t), "db", "pg1", conn, nil)
	wantDenied(t, "network admin: remove connection", err, "AuthorizationFailed", resource.TypeConnection+"/delete")
	_, err = net.rules.BeginCreateOrUpdate(ctxT(t), "db", "pg1", "all", pg.FirewallRule{Properties: &pg.FirewallRuleProperties{
		StartIPAddress: to.Ptr("0.0.0.0"), EndIPAddress: to.Ptr("255.255.255.255")}}, nil)
	wantDenied(t, "network admin: firewall rule", err, "AuthorizationFailed", resource.TypeFirewallRule+"/write")
	_, err = net.servers.BeginUpdate(ctxT(t), "db", "pg1", pg.ServerForUpdate{Properties: &pg.ServerPropertiesForUpdate{
		Network: &pg.Network{PublicNetworkAccess: to.Ptr(pg.ServerPublicNetworkAccessStateDisabled)}}}, nil)
	wantDenied(t, "network admin: public access", err, "AuthorizationFailed", resource.TypeServer+"/write")
	_, err = net.servers.BeginCreate(ctxT(t), "net", "pg-net", serverSpec(net.location), nil)
	wantDenied(t, "network admin: create server", err, "AuthorizationFailed", resource.TypeServer+"/write")
	// Lists at a subscription show only what the caller may read.
	if got := groupNames(t, net); !slices.Equal(got, []string{"net"}) {
		t.Errorf("network admin lists resource groups %v; want [net]", got)
	}

	nf, err := armauthorization.NewClientFactory(in.boot.SubscriptionID, in.credentialFor(netP.clientID, netP.secret), in.armOptions())
	if err != nil {
		t.Fatal(err)
	}
	netRBAC := rbac{defs: nf.NewRoleDefinitionsClient(), assigns: nf.NewRoleAssignmentsClient()}
	if ids := netRBAC.assignments(t, sub, ""); len(ids) != 1 || !strings.HasPrefix(strings.ToLower(ids[0]), strings.ToLower(netRG)+"/") {
		t.Errorf("network admin lists role assignments %v; want only its own, in the network group", ids)
	}
	if ids := netRBAC.assignments(t, sub, "assignedTo('"+dbP.objectID+"')"); len(ids) != 0 {
		t.Errorf("network admin lists the database admin's role assignments %v; want none", ids)
	}
	if ids := netRBAC.assignments(t, sub, "assignedTo('"+resource.NewGUID()+"')"); len(ids) != 0 {
		t.Errorf("network admin lists role assignments of no principal %v; want none", ids)
	}
	if defs := netRBAC.definitions(t, sub, "roleName eq 'No such role'"); len(defs) != 0 {
		t.Errorf("network admin lists role definitions named 'No such role': %d; want none", len(defs))
	}

	// Approving takes the approval action on the server besides the connection write: a
	// custom role that has every flexible server action but that one cannot approve.
	noApprove := resource.NewGUID()
	role := customRole("Server operator", sub)
	role.Properties.Permissions = []*armauthorization.Permission{{
		Actions:    []*string{to.Ptr("Microsoft.DBforPostgreSQL/flexibleServers/*")},
		NotActions: []*string{to.Ptr(authz.ActionApprove)},
	}}
	if _, err := r.defs.CreateOrUpdate(ctxT(t), sub, noApprove, role, nil); err != nil {
		t.Fatalf("create custom role: %v", err)
	}
	opP := in.addServicePrincipal(t, cli, "operator")
	grant(opP, dbRG, noApprove)
	_, err = in.as(t, opP).setStatus(ctxT(t), "db", "pg1", conn, pg.PrivateEndpointServiceConnectionStatusApproved, "ok")
	wantDenied(t, "operator without the approval action: approve", err, "AuthorizationFailed", authz.ActionApprove)

	// The database administrator runs the server and decides on connections, and touches no
	// network.
	if _, err := db.conns.NewListByServerPager("db", "pg1", nil).NextPage(ctxT(t)); err != nil {
		t.Errorf("db admin: list connections: %v", err)
	}
	got, err := db.setStatus(ctxT(t), "db", "pg1", conn, pg.PrivateEndpointServiceConnectionStatusApproved, "ok")
	if err != nil || *got.Properties.PrivateLinkServiceConnectionState.Status != pg.PrivateEndpointServiceConnectionStatusApproved {
		t.Errorf("db admin: approve: %v", err)
	}
	if pe, err := net.pes.Get(ctxT(t), "net", "pe1", nil); err != nil ||
		*pe.Properties.ManualPrivateLinkServiceConnections[0].Properties.PrivateLinkServiceConnectionState.Status != "Approved" {
		t.Errorf("network admin reads the approval on its endpoint: %v", err)
	}
	if _, err := db.setStatus(ctxT(t), "db", "pg1", conn, pg.PrivateEndpointServiceConnectionStatusRejected, "changed my mind"); err != nil {
		t.Errorf("db admin: reject: %v", err)
	}
	if p, err := db.rules.BeginCreateOrUpdate(ctxT(t), "db", "pg1", "office", pg.FirewallRule{Properties: &pg.FirewallRuleProperties{
		StartIPAddress: to.Ptr("10.1.0.0"), EndIPAddress: to.Ptr("10.1.0.255")}}, nil); err != nil {
		t.Errorf("db admin: firewall rule: %v", err)
	} else if _, err := p.PollUntilDone(ctxT(t), &azcoreFast); err != nil {
		t.Errorf("db admin: firewall rule: %v", err)
	}
	if p, err := db.servers.BeginUpdate(ctxT(t), "db", "pg1", pg.ServerForUpdate{Properties: &pg.ServerPropertiesForUpdate{
		Network: &pg.Network{PublicNetworkAccess: to.Ptr(pg.ServerPublicNetworkAccessStateDisabled)}}}, nil); err != nil {
		t.Errorf("db admin: public access: %v", err)
	} else if _, err := p.PollUntilDone(ctxT(t), &azcoreFast); err != nil {
		t.Errorf("db admin: public access: %v", err)
	}
	db.server(t, "db", "pg2")
	_, err = db.vnets.BeginCreateOrUpdate(ctxT(t), "db", "vnet-db", armnetwork.VirtualNetwork{Location: to.Ptr(db.location)}, nil)
	wantDenied(t, "db admin: create vnet", err, "AuthorizationFailed", resource.TypeVirtualNetwork+"/write")
	_, err = db.endpoint(t, "net", "pe-db", subnet, *srv.ID, false, "")
	wantDenied(t, "db admin: create private endpoint", err, "AuthorizationFailed", resource.TypePrivateEndpoint+"/write")
	_, err = db.pes.BeginDelete(ctxT(t), "net", "pe1", nil)
	wantDenied(t, "db admin: delete private endpoint", err, "AuthorizationFailed", resource.TypePrivateEndpoint+"/delete")
	if p, err := db.conn.BeginDelete(ctxT(t), "db", "pg1", conn, nil); err != nil {
		t.Errorf("db admin: remove connection: %v", err)
	} else if _, err := p.PollUntilDone(ctxT(t), &azcoreFast); err != nil {
		t.Errorf("db admin: remove connection: %v", err)
	}

	// A Reader reads everything and changes nothing.
	if _, err := reader.servers.Get(ctxT(t), "db", "pg1", nil); err != nil {
		t.Errorf("reader: get server: %v", err)
	}
	if _, err := reader.conns.NewListByServerPager("db", "pg1", nil).NextPage(ctxT(t)); err != nil {
		t.Errorf("reader: list connections: %v", err)
	}
	if got := groupNames(t, reader); !slices.Equal(got, []string{"db", "net", "other"}) {
		t.Errorf("reader lists resource groups %v; want all three", got)
	}
	_, err = reader.rules.BeginCreateOrUpdate(ctxT(t), "db", "pg1", "r", pg.FirewallRule{Properties: &pg.FirewallRuleProperties{
		StartIPAddress: to.Ptr("10.2.0.1"), EndIPAddress: to.Ptr("10.2.0.1")}}, nil)
	wantDenied(t, "reader: firewall rule", err, "AuthorizationFailed", resource.TypeFirewallRule+"/write")
	_, err = reader.vnets.BeginCreateOrUpdate(ctxT(t), "net", "vnet-r", armnetwork.VirtualNetwork{Location: to.Ptr(reader.location)}, nil)
	wantDenied(t, "reader: create vnet", err, "AuthorizationFailed", resource.TypeVirtualNetwork+"/write")
	_, err = reader.pes.BeginDelete(ctxT(t), "net", "pe1", nil)
	wantDenied(t, "reader: delete private endpoint", err, "AuthorizationFailed", resource.TypePrivateEndpoint+"/delete")
	_, err = reader.setStatus(ctxT(t), "db", "pg1", conn, pg.PrivateEndpointServiceConnectionStatusApproved, "reader")
	wantDenied(t, "reader: approve", err, "AuthorizationFailed", resource.TypeConnection+"/write")
	_, err = reader.setStatus(ctxT(t), "db", "pg1", conn, pg.PrivateEndpointServiceConnectionStatusRejected, "reader")
	wantDenied(t, "reader: reject", err, "AuthorizationFailed", resource.TypeConnection+"/write")
	_, err = reader.servers.BeginUpdate(ctxT(t), "db", "pg1", pg.ServerForUpdate{Properties: &pg.ServerPropertiesForUpdate{
		Network: &pg.Network{PublicNetworkAccess: to.Ptr(pg.ServerPublicNetworkAccessStateDisabled)}}}, nil)
	wantDenied(t, "reader: public access", err, "AuthorizationFailed", resource.TypeServer+"/write")
	_, err = reader.servers.BeginCreate(ctxT(t), "db", "pg-reader", serverSpec(reader.location), nil)
	wantDenied(t, "reader: create server", err, "AuthorizationFailed", resource.TypeServer+"/write")

	// An Owner does everything, and its automatic request is approved at once.
	pe, err = owner.endpoint(t, "net", "pe-owner", subnet, *srv.ID, false, "")
	if err != nil {
		t.Fatalf("owner: automatic private endpoint: %v", err)
	}
	if got := *pe.Properties.PrivateLinkServiceConnections[0].Properties.PrivateLinkServiceConnectionState.Status; got != "Approved" {
		t.Errorf("owner's automatic connection status = %s; want Approved", got)
	}
	if p, err := owner.pes.BeginDelete(ctxT(t), "net", "pe1", nil); err != nil {
		t.Errorf("owner: delete private endpoint: %v", err)
	} else if _, err := p.PollUntilDone(ctxT(t), &azcoreFast); err != nil {
		t.Errorf("owner: delete private endpoint: %v", err)
	}

	// An Owner of the subscription defines roles for it, not for the whole tenant.
	of, err := armauthorization.NewClientFactory(in.boot.SubscriptionID, in.credentialFor(ownP.clientID, ownP.secret), in.armOptions())
	if err != nil {
		t.Fatal(err)
	}
	ownerDefs := of.NewRoleDefinitionsClient()
	if _, err := ownerDefs.CreateOrUpdate(ctxT(t), sub, resource.NewGUID(), customRole("Owner's joiner", sub), nil); err != nil {
		t.Errorf("owner: custom role for its subscription: %v", err)
	}
	_, err = ownerDefs.CreateOrUpdate(ctxT(t), sub, resource.NewGUID(), customRole("Tenant joiner", "/"), nil)
	wantDenied(t, "owner of a subscription: custom role assignable at the root", err, "AuthorizationFailed", "Microsoft.Authorization/roleDefinitions/write")

	// Each may ask what it may do (the permissions API): the database administrator holds
	// Microsoft.DBforPostgreSQL/* on the server's group and the server, the network
	// administrator nothing there.
	perms := func(cred principal, server bool) []string {
		t.Helper()
		pc, err := armauthorization.NewPermissionsClient(in.boot.SubscriptionID, in.credentialFor(cred.clientID, cred.secret), in.armOptions())
		if err != nil {
			t.Fatal(err)
		}
		var actions []string
		collect := func(ps []*armauthorization.Permission) {
			for _, p := range ps {
				for _, a := range p.Actions {
					actions = append(actions, *a)
				}
			}
		}
		if server {
			page, err := pc.NewListForResourcePager("db", "Microsoft.DBforPostgreSQL", "", "flexibleServers", "pg1", nil).NextPage(ctxT(t))
			if err != nil {
				t.Fatalf("permissions on the server: %v", err)
			}
			collect(page.Value)
		} else {
			page, err := pc.NewListForResourceGroupPager("db", nil).NextPage(ctxT(t))
			if err != nil {
				t.Fatalf("permissions on the group: %v", err)
			}
			collect(page.Value)
		}
		return actions
	}
	for _, server := range []bool{false, true} {
		if got := perms(dbP, server); !slices.Contains(got, "Microsoft.DBforPostgreSQL/*") {
			t.Errorf("db admin's permissions (server %v) = %v; want Microsoft.DBforPostgreSQL/*", server, got)
		}
		if got := perms(netP, server); len(got) != 0 {
			t.Errorf("network admin's permissions on the db group (server %v) = %v; want none", server, got)
		}
	}

	// Endpoints join the subnet: a network administrator of another group only, who may write
	// private endpoints there, may not put one on this subnet until granted the join.
	admin.group(t, "apps")
	appsP := in.addServicePrincipal(t, cli, "appsadmin")
	grant(appsP, sub+"/resourceGroups/apps", "Network Contributor")
	apps := in.as(t, appsP)
	_, err = apps.endpoint(t, "apps", "pe-join", subnet, *srv.ID, true, "")
	wantDenied(t, "network admin of another group: endpoint on the subnet", err, "LinkedAuthorizationFailed", "")
	if err != nil && (!strings.Contains(err.Error(), "Microsoft.Network/virtualNetworks/subnets/join/action") || !strings.Contains(err.Error(), subnet)) {
		t.Errorf("LinkedAuthorizationFailed %v does not name the subnet join action on the subnet", err)
	}
	grant(appsP, subnet, "Network Contributor")
	if _, err := apps.endpoint(t, "apps", "pe-join", subnet, *srv.ID, true, ""); err != nil {
		t.Errorf("network admin of another group, granted the subnet: endpoint on it: %v", err)
	}

	// Denied writes are in the activity log with their caller.
	evs, err := in.srv.Store().Events(ctxT(t), store.EventQuery{Subscription: in.boot.SubscriptionID})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, ev := range evs {
		var e activity.Event
		if err := json.Unmarshal(ev.Body, &e); err != nil {
			t.Fatal(err)
		}
		if e.Caller == netP.clientID && e.Status.Value == "Failed" && strings.EqualFold(e.OperationName.Value, resource.TypeFirewallRule+"/write") {
			found = true
		}
	}
	if !found {
		t.Errorf("the network admin's denied firewall rule write is not in the activity log as Failed")
	}
}

func groupNames(t *testing.T, c *clients) []string {
	t.Helper()
	var names []string
	pager := c.groups.NewListPager(nil)
	for pager.More() {
		page, err := pager.NextPage(ctxT(t))
		if err != nil {
			t.Fatalf("list resource groups: %v", err)
		}
		for _, g := range page.Value {
			names = append(names, *g.Name)
		}
	}
	slices.Sort(names)
	return names
}
