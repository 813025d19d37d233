package authz_test

import (
	"strings"
	"testing"

	"github.com/pglink/pglink/internal/authz"
)

func TestMatch(t *testing.T) {
	tests := []struct {
		pattern, action string
		want            bool
	}{
		{"*", "Microsoft.Network/virtualNetworks/write", true},
		{"*", "anything", true},
		{"*/read", "Microsoft.Network/virtualNetworks/read", true},
		{"*/read", "Microsoft.Network/virtualNetworks/write", false},
		{"*/read", "Microsoft.Network/virtualNetworks/reader", false},
		{"*/READ", "microsoft.network/virtualnetworks/read", true},
		{"Microsoft.Network/*", "Microsoft.Network/virtualNetworks/subnets/join/action", true},
		{"Microsoft.Network/*", "microsoft.network/privateEndpoints/write", true},
		{"Microsoft.Network/*", "Microsoft.NetworkFunction/x/read", false},
		{"Microsoft.Network/*", "Microsoft.DBforPostgreSQL/flexibleServers/write", false},
		{"Microsoft.Authorization/*/Write", "Microsoft.Authorization/roleAssignments/write", true},
		{"Microsoft.Authorization/*/Write", "Microsoft.Authorization/roleDefinitions/write", true},
		{"Microsoft.Authorization/*/Write", "Microsoft.Authorization/roleAssignments/read", false},
		{"Microsoft.Authorization/*/Delete", "Microsoft.Authorization/locks/delete", true},
		{"Microsoft.Authorization/elevateAccess/Action", "Microsoft.Authorization/elevateAccess/action", true},
		{"Microsoft.Network/privateDns*", "Microsoft.Network/privateDnsZones/A/write", true},
		{"Microsoft.Network/privateDns*", "Microsoft.Network/privateEndpoints/write", false},
		{"Microsoft.Network/*/subnets/*", "Microsoft.Network/virtualNetworks/subnets/join/action", true},
		{"Microsoft.Network/*/subnets/*", "Microsoft.Network/virtualNetworks/write", false},
		{"Microsoft.DBforPostgreSQL/flexibleServers/read", "Microsoft.DBforPostgreSQL/flexibleServers/read", true},
		{"Microsoft.DBforPostgreSQL/flexibleServers/read", "Microsoft.DBforPostgreSQL/flexibleServers/firewallRules/read", false},
		{"Microsoft.DBforPostgreSQL/flexibleServers/privateEndpointConnections/write", "Microsoft.DBforPostgreSQL/flexibleServers/privateEndpointConnectionsApproval/action", false},
		{"", "Microsoft.Network/virtualNetworks/read", false},
		{"**", "a/b", true},
		{"a*b*c", "aXbYc", true},
		{"a*b*c", "aXbY", false},
	}
	for _, tt := range tests {
		if got := authz.Match(tt.pattern, tt.action); got != tt.want {
			t.Errorf("Match(%q, %q) = %v; want %v", tt.pattern, tt.action, got, tt.want)
		}
	}
}

func TestCovers(t *testing.T) {
	tests := []struct {
		outer, inner string
		want         bool
	}{
		{"/", "/subscriptions/s", true},
		{"", "/subscriptions/s/resourceGroups/g", true},
		{"/", "/", true},
		{"/subscriptions/s", "/subscriptions/s", true},
		{"/subscriptions/S/", "/subscriptions/s/resourcegroups/G", true},
		{"/subscriptions/s", "/subscriptions/s2", false},
		{"/subscriptions/s/resourceGroups/g", "/subscriptions/s/resourceGroups/g2", false},
		{"/subscriptions/s/resourceGroups/g", "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/virtualNetworks/v", true},
		{"/subscriptions/s/resourceGroups/g", "/subscriptions/s", false},
		{"/subscriptions/s", "/", false},
	}
	for _, tt := range tests {
		if got := authz.Covers(tt.outer, tt.inner); got != tt.want {
			t.Errorf("Covers(%q, %q) = %v; want %v", tt.outer, tt.inner, got, tt.want)
		}
	}
}

const (
	sub      = "/subscriptions/00000000-0000-0000-0000-000000000001"
	netRG    = sub + "/resourceGroups/network"
	dbRG     = sub + "/resourceGroups/db"
	vnet     = netRG + "/providers/Microsoft.Network/virtualNetworks/vnet1"
	subnet   = vnet + "/subnets/default"
	pe       = netRG + "/providers/Microsoft.Network/privateEndpoints/pe1"
	zone     = netRG + "/providers/Microsoft.Network/privateDnsZones/privatelink.postgres.database.azure.com"
	server   = dbRG + "/providers/Microsoft.DBforPostgreSQL/flexibleServers/pg1"
	conn     = server + "/privateEndpointConnections/pe1.abc"
	netAdmin = "net-admin"
	dba      = "dba"
	reader   = "reader"
	owner    = "owner"
	contrib  = "contrib"
	approver = "approver"
	dnsAdmin = "dns-admin"
	nobody   = "nobody"
)

// seed is the separation of duties of the seed: network admins own the network group,
// database admins the database group.
var seed = []authz.Assignment{
	{ID: "a-owner", PrincipalID: owner, RoleID: authz.OwnerID, Scope: "/"},
	{ID: "a-net", PrincipalID: netAdmin, RoleID: authz.NetworkContributorID, Scope: netRG},
	{ID: "a-dba", PrincipalID: dba, RoleID: authz.PostgreSQLAdministratorID, Scope: dbRG},
	{ID: "a-reader", PrincipalID: reader, RoleID: authz.ReaderID, Scope: sub},
	{ID: "a-contrib", PrincipalID: contrib, RoleID: authz.ContributorID, Scope: sub},
	{ID: "a-approver", PrincipalID: approver, RoleID: authz.PrivateLinkApproverID, Scope: server},
	{ID: "a-dns", PrincipalID: dnsAdmin, RoleID: strings.ToUpper(authz.PrivateDNSZoneContributorID), Scope: strings.ToUpper(netRG)},
}

func TestDecideBuiltIns(t *testing.T) {
	const (
		vnetWrite     = "Microsoft.Network/virtualNetworks/write"
		subnetWrite   = "Microsoft.Network/virtualNetworks/subnets/write"
		subnetJoin    = "Microsoft.Network/virtualNetworks/subnets/join/action"
		peWrite       = "Microsoft.Network/privateEndpoints/write"
		zoneWrite     = "Microsoft.Network/privateDnsZones/write"
		vnetJoin      = "Microsoft.Network/virtualNetworks/join/action"
		serverRead    = "Microsoft.DBforPostgreSQL/flexibleServers/read"
		serverWrite   = "Microsoft.DBforPostgreSQL/flexibleServers/write"
		serverDelete  = "Microsoft.DBforPostgreSQL/flexibleServers/delete"
		fwWrite       = "Microsoft.DBforPostgreSQL/flexibleServers/firewallRules/write"
		connRead      = "Microsoft.DBforPostgreSQL/flexibleServers/privateEndpointConnections/read"
		connWrite     = "Microsoft.DBforPostgreSQL/flexibleServers/privateEndpointConnections/write"
		connDelete    = "Microsoft.DBforPostgreSQL/flexibleServers/privateEndpointConnections/delete"
		rgRead        = "Microsoft.Resources/subscriptions/resourceGroups/read"
		rgWrite       = "Microsoft.Resources/subscriptions/resourceGroups/write"
		assignWrite   = "Microsoft.Authorization/roleAssignments/write"
		assignRead    = "Microsoft.Authorization/roleAssignments/read"
		roleDefDelete = "Microsoft.Authorization/roleDefinitions/delete"
		elevate       = "Microsoft.Authorization/elevateAccess/Action"
	)
	tests := []struct {
		who, action, scope string
		want               bool
		by                 string // assignment ID when allowed
	}{
		// Network Contributor on the network group.
		{netAdmin, vnetWrite, vnet, true, "a-net"},
		{netAdmin, subnetWrite, subnet, true, "a-net"},
		{netAdmin, subnetJoin, subnet, true, "a-net"},
		{netAdmin, peWrite, pe, true, "a-net"},
		{netAdmin, zoneWrite, zone, true, "a-net"},
		{netAdmin, rgRead, netRG, true, "a-net"},
		{netAdmin, assignRead, netRG, true, "a-net"},
		{netAdmin, assignWrite, netRG, false, ""},
		{netAdmin, authz.ActionApprove, server, false, ""},
		{netAdmin, fwWrite, server + "/firewallRules/all", false, ""},
		{netAdmin, serverRead, server, false, ""},
		{netAdmin, vnetWrite, dbRG + "/providers/Microsoft.Network/virtualNetworks/v2", false, ""}, // other group
		{netAdmin, vnetWrite, sub, false, ""},                                                      // no inheritance upward
		{netAdmin, rgWrite, netRG, false, ""},
		// PostgreSQL Flexible Server Administrator on the database group.
		{dba, serverWrite, server, true, "a-dba"},
		{dba, serverDelete, server, true, "a-dba"},
		{dba, authz.ActionApprove, server, true, "a-dba"},
		{dba, connWrite, conn, true, "a-dba"},
		{dba, fwWrite, server + "/firewallRules/all", true, "a-dba"},
		{dba, rgRead, dbRG, true, "a-dba"},
		{dba, vnetWrite, vnet, false, ""},
		{dba, vnetWrite, dbRG + "/providers/Microsoft.Network/virtualNetworks/v2", false, ""},
		{dba, peWrite, dbRG + "/providers/Microsoft.Network/privateEndpoints/p", false, ""},
		{dba, subnetJoin, subnet, false, ""},
		{dba, rgWrite, dbRG, false, ""},
		{dba, assignWrite, dbRG, false, ""},
		// Reader reads only.
		{reader, serverRead, server, true, "a-reader"},
		{reader, connRead, conn, true, "a-reader"},
		{reader, assignRead, sub, true, "a-reader"},
		{reader, rgRead, netRG, true, "a-reader"},
		{reader, serverWrite, server, false, ""},
		{reader, connWrite, conn, false, ""},
		{reader, authz.ActionApprove, server, false, ""},
		{reader, vnetWrite, vnet, false, ""},
		{reader, serverRead, "/", false, ""},
		// Owner everything, everywhere.
		{owner, vnetWrite, vnet, true, "a-owner"},
		{owner, authz.ActionApprove, server, true, "a-owner"},
		{owner, assignWrite, "/", true, "a-owner"},
		{owner, elevate, "/", true, "a-owner"},
		{owner, "Some.Future/type/action", sub, true, "a-owner"},
		// Contributor: everything but RBAC writes.
		{contrib, vnetWrite, vnet, true, "a-contrib"},
		{contrib, authz.ActionApprove, server, true, "a-contrib"},
		{contrib, assignRead, sub, true, "a-contrib"},
		{contrib, assignWrite, sub, false, ""},
		{contrib, roleDefDelete, sub, false, ""},
		{contrib, elevate, sub, false, ""},
		{contrib, "Microsoft.Subscription/cancel/action", sub, false, ""},
		{contrib, vnetWrite, "/", false, ""},
		// Private Link Approver on one server.
		{approver, authz.ActionApprove, server, true, "a-approver"},
		{approver, connWrite, conn, true, "a-approver"},
		{approver, connDelete, conn, true, "a-approver"},
		{approver, connRead, conn, true, "a-approver"},
		{approver, serverRead, server, true, "a-approver"},
		{approver, serverWrite, server, false, ""},
		{approver, fwWrite, server + "/firewallRules/all", false, ""},
		{approver, authz.ActionApprove, dbRG + "/providers/Microsoft.DBforPostgreSQL/flexibleServers/pg2", false, ""},
		{approver, serverRead, dbRG, false, ""},
		// Private DNS Zone Contributor (assigned with other casing).
		{dnsAdmin, zoneWrite, zone, true, "a-dns"},
		{dnsAdmin, "Microsoft.Network/privateDnsZones/virtualNetworkLinks/write", zone + "/virtualNetworkLinks/l", true, "a-dns"},
		{dnsAdmin, vnetJoin, vnet, true, "a-dns"},
		{dnsAdmin, "Microsoft.Network/virtualNetworks/read", vnet, true, "a-dns"},
		{dnsAdmin, vnetWrite, vnet, false, ""},
		{dnsAdmin, peWrite, pe, false, ""},
		// Deny by default.
		{nobody, "Microsoft.Network/virtualNetworks/read", vnet, false, ""},
		{"", "Microsoft.Network/virtualNetworks/read", vnet, false, ""},
		// Case-insensitive actions and scopes.
		{netAdmin, strings.ToUpper(vnetWrite), strings.ToLower(vnet), true, "a-net"},
		{dba, strings.ToLower(authz.ActionApprove), strings.ToUpper(server), true, "a-dba"},
	}
	roles := authz.BuiltIns()
	for _, tt := range tests {
		d := authz.Decide(authz.Request{PrincipalID: tt.who, Action: tt.action, Scope: tt.scope}, seed, roles)
		if d.Allowed != tt.want || d.By.ID != tt.by {
			t.Errorf("Decide(%s, %s, %s) = %v by %q (%s); want %v by %q", tt.who, tt.action, tt.scope, d.Allowed, d.By.ID, d.Reason, tt.want, tt.by)
		}
		if !d.Allowed && d.Reason == "" {
			t.Errorf("Decide(%s, %s, %s) denied with no reason", tt.who, tt.action, tt.scope)
		}
	}
}

func TestDecideSemantics(t *testing.T) {
	const action = "Microsoft.Network/virtualNetworks/write"
	custom := func(id string, scopes []string, perms ...authz.Permission) authz.Role {
		return authz.Role{ID: id, Name: id, Permissions: perms, AssignableScopes: scopes}
	}
	allNet := authz.Permission{Actions: []string{"Microsoft.Network/*"}}
	noVNetWrite := authz.Permission{Actions: []string{"Microsoft.Network/*"}, NotActions: []string{"Microsoft.Network/virtualNetworks/write"}}
	roles := []authz.Role{
		custom("all-net", []string{"/"}, allNet),
		custom("no-vnet-write", []string{"/"}, noVNetWrite),
		custom("two-blocks", []string{"/"}, noVNetWrite, authz.Permission{Actions: []string{"*/write"}}),
		custom("sub-only", []string{sub}, allNet),
		custom("net-rg-only", []string{netRG}, allNet),
		custom("elsewhere", []string{"/subscriptions/other"}, allNet),
	}
	tests := []struct {
		name        string
		assignments []authz.Assignment
		want        bool
		by          string
		reason      string // a part of the reason when denied
	}{
		{"none", nil, false, "", "no role assignment"},
		{"other principal", []authz.Assignment{{ID: "x", PrincipalID: "someone", RoleID: "all-net", Scope: "/"}}, false, "", "no role assignment"},
		{"root inherits", []authz.Assignment{{ID: "x", PrincipalID: "p", RoleID: "all-net", Scope: "/"}}, true, "x", ""},
		{"subscription inherits", []authz.Assignment{{ID: "x", PrincipalID: "p", RoleID: "all-net", Scope: sub}}, true, "x", ""},
		{"group inherits", []authz.Assignment{{ID: "x", PrincipalID: "p", RoleID: "all-net", Scope: netRG}}, true, "x", ""},
		{"at the resource", []authz.Assignment{{ID: "x", PrincipalID: "p", RoleID: "all-net", Scope: vnet}}, true, "x", ""},
		{"below the resource", []authz.Assignment{{ID: "x", PrincipalID: "p", RoleID: "all-net", Scope: subnet}}, false, "", "no role assignment"},
		{"sibling group", []authz.Assignment{{ID: "x", PrincipalID: "p", RoleID: "all-net", Scope: dbRG}}, false, "", "no role assignment"},
		{"notActions subtract", []authz.Assignment{{ID: "x", PrincipalID: "p", RoleID: "no-vnet-write", Scope: "/"}}, false, "", "notActions of role 'no-vnet-write'"},
		{"notActions not across roles", []authz.Assignment{
			{ID: "x", PrincipalID: "p", RoleID: "no-vnet-write", Scope: "/"},
			{ID: "y", PrincipalID: "p", RoleID: "all-net", Scope: netRG},
		}, true, "y", ""},
		{"notActions not across blocks", []authz.Assignment{{ID: "x", PrincipalID: "p", RoleID: "two-blocks", Scope: sub}}, true, "x", ""},
		{"nearest assignment named", []authz.Assignment{
			{ID: "x", PrincipalID: "p", RoleID: "all-net", Scope: "/"},
			{ID: "y", PrincipalID: "p", RoleID: "all-net", Scope: netRG},
			{ID: "z", PrincipalID: "p", RoleID: "all-net", Scope: sub},
		}, true, "y", ""},
		{"assignable below its scope", []authz.Assignment{{ID: "x", PrincipalID: "p", RoleID: "sub-only", Scope: netRG}}, true, "x", ""},
		{"assigned above its assignable scope", []authz.Assignment{{ID: "x", PrincipalID: "p", RoleID: "net-rg-only", Scope: sub}}, false, "", "assignable scopes"},
		{"assigned outside its assignable scope", []authz.Assignment{{ID: "x", PrincipalID: "p", RoleID: "elsewhere", Scope: "/"}}, false, "", "assignable scopes"},
		{"unknown role", []authz.Assignment{{ID: "x", PrincipalID: "p", RoleID: "gone", Scope: "/"}}, false, "", "no role assigned"},
		{"role without the action", []authz.Assignment{{ID: "x", PrincipalID: "p", RoleID: authz.ReaderID, Scope: "/"}}, false, "", "grants action"},
	}
	roles = append(roles, authz.BuiltIns()...)
	for _, tt := range tests {
		d := authz.Decide(authz.Request{PrincipalID: "p", Action: action, Scope: vnet}, tt.assignments, roles)
		if d.Allowed != tt.want || d.By.ID != tt.by || !strings.Contains(d.Reason, tt.reason) {
			t.Errorf("%s: Decide = %v by %q, reason %q; want %v by %q, reason containing %q", tt.name, d.Allowed, d.By.ID, d.Reason, tt.want, tt.by, tt.reason)
		}
	}
}

func TestBuiltIns(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range authz.BuiltIns() {
		if seen[r.ID] || seen[r.Name] {
			t.Errorf("built-in %s %q listed twice", r.ID, r.Name)
		}
		seen[r.ID], seen[r.Name] = true, true
		got, ok := authz.BuiltIn(strings.ToUpper(r.ID))
		if !ok || got.Name != r.Name || !got.BuiltIn {
			t.Errorf("BuiltIn(%q) = %q, %v; want %q, true", r.ID, got.Name, ok, r.Name)
		}
	}
	if _, ok := authz.BuiltIn("00000000-0000-0000-0000-000000000000"); ok {
		t.Errorf("BuiltIn(zero) = _, true; want false")
	}
	// The copies are the caller's.
	a := authz.BuiltIns()
	a[0].Permissions[0].Actions[0] = "nothing"
	if b, _ := authz.BuiltIn(authz.OwnerID); b.Permissions[0].Actions[0] != "*" {
		t.Errorf("Owner's actions changed through a copy: %v", b.Permissions[0].Actions)
	}
}
