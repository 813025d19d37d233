package authz

import "strings"

// GUIDs of the built-in roles. Azure's are Azure's; the two PostgreSQL roles are pglink's own,
// generated once and fixed forever (assignments name roles by GUID).
const (
	OwnerID                     = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
	ContributorID               = "b24988ac-6180-42a0-ab88-20f7382dd24c"
	ReaderID                    = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
	NetworkContributorID        = "4d97b98b-1d4f-4787-a291-c67834d212e7"
	PrivateDNSZoneContributorID = "b12aa53e-6015-4669-85d0-8515ebb3ae7f"
	// PostgreSQLAdministratorID is pglink's "PostgreSQL Flexible Server Administrator".
	PostgreSQLAdministratorID = "1b3ebc49-f29b-44d1-bfc1-6af6bedafe66"
	// PrivateLinkApproverID is pglink's "PostgreSQL Private Link Approver".
	PrivateLinkApproverID = "d5b342e9-80ab-438a-9162-3bc58a3f5eef"
)

// ActionApprove is the action that lets a caller approve private endpoint connections to a
// flexible server, and so create automatically approved private endpoints to it.
const ActionApprove = "Microsoft.DBforPostgreSQL/flexibleServers/privateEndpointConnectionsApproval/action"

var root = []string{"/"}

// builtIns are the built-in roles, in the order they are listed. Azure's are copied from
// Azure's definitions (actions and notActions as Azure spells them).
var builtIns = []Role{
	{
		ID: OwnerID, Name: "Owner", BuiltIn: true, AssignableScopes: root,
		Description: "Grants full access to manage all resources, including the ability to assign roles in Azure RBAC.",
		Permissions: []Permission{{Actions: []string{"*"}}},
	},
	{
		ID: ContributorID, Name: "Contributor", BuiltIn: true, AssignableScopes: root,
		Description: "Grants full access to manage all resources, but does not allow you to assign roles in Azure RBAC, manage assignments in Azure Blueprints, or share image galleries.",
		Permissions: []Permission{{
			Actions: []string{"*"},
			NotActions: []string{
				"Microsoft.Authorization/*/Delete",
				"Microsoft.Authorization/*/Write",
				"Microsoft.Authorization/elevateAccess/Action",
				"Microsoft.Blueprint/blueprintAssignments/write",
				"Microsoft.Blueprint/blueprintAssignments/delete",
				"Microsoft.Compute/galleries/share/action",
				"Microsoft.Purview/consents/write",
				"Microsoft.Purview/consents/delete",
				"Microsoft.Resources/deploymentStacks/manageDenySetting/action",
				"Microsoft.Subscription/cancel/action",
				"Microsoft.Subscription/enable/action",
			},
		}},
	},
	{
		ID: ReaderID, Name: "Reader", BuiltIn: true, AssignableScopes: root,
		Description: "View all resources, but does not allow you to make any changes.",
		Permissions: []Permission{{Actions: []string{"*/read"}}},
	},
	{
		ID: NetworkContributorID, Name: "Network Contributor", BuiltIn: true, AssignableScopes: root,
		Description: "Lets you manage networks, but not access to them.",
		Permissions: []Permission{{Actions: []string{
			"Microsoft.Authorization/*/read",
			"Microsoft.Insights/alertRules/*",
			"Microsoft.Network/*",
			"Microsoft.ResourceHealth/availabilityStatuses/read",
			"Microsoft.Resources/deployments/*",
			"Microsoft.Resources/subscriptions/resourceGroups/read",
			"Microsoft.Support/*",
		}}},
	},
	{
		ID: PrivateDNSZoneContributorID, Name: "Private DNS Zone Contributor", BuiltIn: true, AssignableScopes: root,
		Description: "Lets you manage private DNS zone resources, but not the virtual networks they are linked to.",
		Permissions: []Permission{{Actions: []string{
			"Microsoft.Insights/alertRules/*",
			"Microsoft.Resources/deployments/*",
			"Microsoft.Resources/subscriptions/resourceGroups/read",
			"Microsoft.Support/*",
			"Microsoft.Network/privateDnsZones/*",
			"Microsoft.Network/privateDnsOperationResults/*",
			"Microsoft.Network/privateDnsOperationStatuses/*",
			"Microsoft.Network/virtualNetworks/read",
			"Microsoft.Network/virtualNetworks/join/action",
			"Microsoft.Authorization/*/read",
		}}},
	},
	{
		ID: PostgreSQLAdministratorID, Name: "PostgreSQL Flexible Server Administrator", BuiltIn: true, AssignableScopes: root,
		Description: "Lets you manage Azure Database for PostgreSQL flexible servers, including approving and rejecting private endpoint connections to them, but not networks or access to them. (pglink)",
		Permissions: []Permission{{Actions: []string{
			"Microsoft.DBforPostgreSQL/*",
			"Microsoft.Resources/subscriptions/resourceGroups/read",
		}}},
	},
	{
		ID: PrivateLinkApproverID, Name: "PostgreSQL Private Link Approver", BuiltIn: true, AssignableScopes: root,
		Description: "Lets you approve, reject and remove private endpoint connections to Azure Database for PostgreSQL flexible servers. (pglink)",
		Permissions: []Permission{{Actions: []string{
			"Microsoft.DBforPostgreSQL/flexibleServers/read",
			"Microsoft.DBforPostgreSQL/flexibleServers/privateEndpointConnections/read",
			"Microsoft.DBforPostgreSQL/flexibleServers/privateEndpointConnections/write",
			"Microsoft.DBforPostgreSQL/flexibleServers/privateEndpointConnections/delete",
			"Microsoft.DBforPostgreSQL/flexibleServers/sessions/read", // which open sessions a rejection cuts
			ActionApprove,
		}}},
	},
}

// BuiltIns returns the built-in roles (a fresh copy the caller may change).
func BuiltIns() []Role {
	out := make([]Role, len(builtIns))
	for i, r := range builtIns {
		out[i] = r.clone()
	}
	return out
}

// BuiltIn returns the built-in role with GUID id (any casing), or false.
func BuiltIn(id string) (Role, bool) {
	for _, r := range builtIns {
		if strings.EqualFold(r.ID, id) {
			return r.clone(), true
		}
	}
	return Role{}, false
}

func (r Role) clone() Role {
	c := r
	c.AssignableScopes = append([]string(nil), r.AssignableScopes...)
	c.Permissions = make([]Permission, len(r.Permissions))
	for i, p := range r.Permissions {
		c.Permissions[i] = Permission{
			Actions:        append([]string{}, p.Actions...),
			NotActions:     append([]string{}, p.NotActions...),
			DataActions:    append([]string{}, p.DataActions...),
			NotDataActions: append([]string{}, p.NotDataActions...),
		}
	}
	return c
}
