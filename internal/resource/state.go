package resource

import "strings"

// Resource types pglink serves, spelled as Azure spells them.
const (
	TypeSubscription       = "Microsoft.Resources/subscriptions"
	TypeResourceGroup      = "Microsoft.Resources/resourceGroups"
	TypeServer             = "Microsoft.DBforPostgreSQL/flexibleServers"
	TypeFirewallRule       = "Microsoft.DBforPostgreSQL/flexibleServers/firewallRules"
	TypeConnection         = "Microsoft.DBforPostgreSQL/flexibleServers/privateEndpointConnections"
	TypePrivateLink        = "Microsoft.DBforPostgreSQL/flexibleServers/privateLinkResources"
	TypeConfiguration      = "Microsoft.DBforPostgreSQL/flexibleServers/configurations"
	TypeVirtualNetwork     = "Microsoft.Network/virtualNetworks"
	TypeSubnet             = "Microsoft.Network/virtualNetworks/subnets"
	TypePrivateEndpoint    = "Microsoft.Network/privateEndpoints"
	TypeNetworkInterface   = "Microsoft.Network/networkInterfaces"
	TypePrivateDNSZone     = "Microsoft.Network/privateDnsZones"
	TypeVirtualNetworkLink = "Microsoft.Network/privateDnsZones/virtualNetworkLinks"
	TypeDNSZoneGroup       = "Microsoft.Network/privateEndpoints/privateDnsZoneGroups"
	PostgresGroupID        = "postgresqlServer"
	PostgresPrivateDNSZone = "privatelink.postgres.database.azure.com"
)

// ServerState is a flexible server's lifecycle state (properties.state).
type ServerState string

// Server states, as in api-version 2025-08-01 (older versions know the first seven).
const (
	ServerReady        ServerState = "Ready"
	ServerDropping     ServerState = "Dropping"
	ServerDisabled     ServerState = "Disabled"
	ServerStarting     ServerState = "Starting"
	ServerStopping     ServerState = "Stopping"
	ServerStopped      ServerState = "Stopped"
	ServerUpdating     ServerState = "Updating"
	ServerProvisioning ServerState = "Provisioning"
	ServerRestarting   ServerState = "Restarting"
)

// RequireReady returns ServerIsNotReady (409) unless state is Ready: networking and
// configuration changes are accepted only on a Ready server.
func RequireReady(server string, state ServerState, what string) error {
	if state == ServerReady {
		return nil
	}
	hint := "Wait until the server is Ready and try again."
	if state == ServerStopped {
		hint = "Start the server and try again."
	}
	return Errorf(Conflict, "ServerIsNotReady",
		"Cannot %s: server '%s' is not Ready (current state: %s). %s", what, server, state, hint)
}

// ConnectionStatus is the status of a private endpoint connection
// (privateLinkServiceConnectionState.status).
type ConnectionStatus string

// Connection statuses. Disconnected appears only on the private endpoint's side, after the
// server's owner deleted the connection.
const (
	Pending      ConnectionStatus = "Pending"
	Approved     ConnectionStatus = "Approved"
	Rejected     ConnectionStatus = "Rejected"
	Disconnected ConnectionStatus = "Disconnected"
)

// ParseConnectionStatus maps any casing of a settable status to its canonical value.
func ParseConnectionStatus(s string) (ConnectionStatus, bool) {
	for _, c := range []ConnectionStatus{Pending, Approved, Rejected} {
		if strings.EqualFold(s, string(c)) {
			return c, true
		}
	}
	return "", false
}

// CheckTransition returns nil if a connection may move from one status to another, and an
// *Error saying why not otherwise. Staying in the same status is always allowed (idempotent PUT).
//
//	Pending  -> Approved | Rejected
//	Approved -> Rejected
//	Rejected -> (nothing: recreate the private endpoint)
func CheckTransition(from, to ConnectionStatus) error {
	if from == to {
		return nil
	}
	switch {
	case to == Pending:
		return Errorf(Invalid, "InvalidPrivateEndpointConnectionStatus",
			"A private endpoint connection cannot be set back to Pending; set its status to Approved or Rejected.")
	case from == Pending && (to == Approved || to == Rejected):
		return nil
	case from == Approved && to == Rejected:
		return nil
	case from == Rejected && to == Approved:
		return Errorf(Invalid, "PrivateEndpointConnectionRejected",
			"Approving a rejected private endpoint connection is not supported. Delete the private endpoint and create it again to request a new connection.")
	}
	return Errorf(Invalid, "InvalidPrivateEndpointConnectionStatus",
		"Cannot change a private endpoint connection from %s to %s.", from, to)
}

// ConnectionState is privateLinkServiceConnectionState, on both sides of a private link.
type ConnectionState struct {
	Status          ConnectionStatus `json:"status"`
	Description     string           `json:"description"`
	ActionsRequired string           `json:"actionsRequired"`
}

// LinkRequest is a private endpoint's request to connect to a private link resource, as the
// network provider hands it to the target's provider.
type LinkRequest struct {
	Target         ID       // the private link resource, e.g. a flexible server
	GroupIDs       []string // requested sub-resources, e.g. ["postgresqlServer"]
	Endpoint       ID       // the private endpoint
	EndpointGUID   string   // the private endpoint's resourceGuid: names the connection
	Manual         bool     // manualPrivateLinkServiceConnections: always starts Pending
	RequestMessage string
}

// LinkResult is the target side's answer to a LinkRequest.
type LinkResult struct {
	ConnectionID ID              // the private endpoint connection on the target
	State        ConnectionState // its initial state
	FQDN         string          // the name clients resolve, e.g. "srv.postgres.database.azure.com"
	Node         string          // the data-plane node of the target, "" if it has none
}

// DataPlane is pglink's addition to flexible servers and private endpoints
// (properties.dataPlane): the address ("host:port") a PostgreSQL client dials to reach the
// server through that endpoint, and the data-plane node that serves it.
type DataPlane struct {
	Address string `json:"address"`
	// Node is the data-plane node whose gateway listens on Address (and, for a server, that
	// runs its PostgreSQL); "" in documents written before nodes existed: the node whose
	// network holds Address.
	Node string `json:"node,omitempty"`
	// NodeStatus is the node's state when the document is read: "Available" or
	// "Unreachable" (its heartbeats stopped). Never stored.
	NodeStatus string `json:"nodeStatus,omitempty"`
}

// Node statuses of DataPlane.NodeStatus.
const (
	NodeAvailable   = "Available"
	NodeUnreachable = "Unreachable"
)
