// Package dataplane turns the control plane's state into the gateway's policy. It hands out
// endpoint addresses (properties.dataPlane.address of servers and private endpoints) and
// compiles, from one consistent read of the store, which client may reach which server through
// which endpoint, and why not otherwise.
package dataplane

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/netip"
	"time"

	"github.com/pglink/pglink/internal/arm"
	"github.com/pglink/pglink/internal/gateway"
	"github.com/pglink/pglink/internal/providers/network"
	"github.com/pglink/pglink/internal/providers/postgresql"
	"github.com/pglink/pglink/internal/resource"
	"github.com/pglink/pglink/internal/store"
)

// Allocator hands out endpoint addresses: one address per server's public endpoint, per
// private endpoint and per virtual network's DNS resolver, each from the network of the
// data-plane node that serves it, all on the same port. It implements the providers'
// Addresses interfaces. Allocation runs inside the caller's transaction and finds the used
// addresses from the documents themselves, so deleting a resource frees its address.
type Allocator struct {
	Network netip.Prefix // this node's network
	Port    uint16
	// Max caps the addresses handed out in a node's network, each a listener (a file
	// descriptor) in its gateway; 0 means no cap beyond the network's size. Over it, Allocate
	// answers 409 QuotaExceeded before anything is written or opened.
	Max int
	// DNSPort is the port of virtual networks' resolvers (AllocateResolver); 0 means 53.
	DNSPort uint16
	// Node names this process's data-plane node. Single places everything on it; otherwise
	// Place picks among the store's nodes (Tx.Nodes).
	Node   string
	Single bool
	Now    func() time.Time // default time.Now
}

// addressed is the part of a server, private endpoint or virtual network document the
// allocator reads.
type addressed struct {
	Properties struct {
		DataPlane *struct {
			Address     string `json:"address"`
			DNSResolver string `json:"dnsResolver"`
			Node        string `json:"node"`
		} `json:"dataPlane"`
	} `json:"properties"`
}

// Allocate returns a free address on this node.
func (a Allocator) Allocate(ctx context.Context, tx store.Tx) (string, error) {
	return a.AllocateOn(ctx, tx, a.Node)
}

// AllocateOn returns a free address in the network of node ("" or a node not known: this
// node's), skipping the network's first address and every .0 and .255 (they confuse humans,
// not machines).
func (a Allocator) AllocateOn(ctx context.Context, tx store.Tx, node string) (string, error) {
	network, err := a.networkOf(ctx, tx, node)
	if err != nil {
		return "", err
	}
	ip, err := a.allocate(ctx, tx, network)
	if err != nil {
		return "", err
	}
	return netip.AddrPortFrom(ip, a.Port).String(), nil
}

// Place picks the node of a new server, the live node with the fewest servers (ties by name;
// this node when no node is live), and returns it with a free address in its network.
func (a Allocator) Place(ctx context.Context, tx store.Tx) (addr, node string, err error) {
	node = a.Node
	if !a.Single {
		nodes, err := tx.Nodes(ctx)
		if err != nil {
			return "", "", fmt.Errorf("list data-plane nodes: %w", err)
		}
		now := a.now()
		load, err := ServersPerNode(ctx, tx, nodes)
		if err != nil {
			return "", "", err
		}
		best := -1
		for _, n := range nodes { // by name
			if !n.Live(now) {
				continue
			}
			if best < 0 || load[n.Name] < best {
				node, best = n.Name, load[n.Name]
			}
		}
	}
	addr, err = a.AllocateOn(ctx, tx, node)
	return addr, node, err
}

// AllocateResolver returns a free address for a virtual network's DNS resolver on this node,
// on DNSPort. Resolvers share the network and the cap with the endpoints: each is a listener
// too.
func (a Allocator) AllocateResolver(ctx context.Context, tx store.Tx) (addr, node string, err error) {
	ip, err := a.allocate(ctx, tx, a.Network)
	if err != nil {
		return "", "", err
	}
	port := a.DNSPort
	if port == 0 {
		port = 53
	}
	return netip.AddrPortFrom(ip, port).String(), a.Node, nil
}

func (a Allocator) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// networkOf returns the network of node: this node's for "" or a node the store does not know.
func (a Allocator) networkOf(ctx context.Context, tx store.Tx, node string) (netip.Prefix, error) {
	if node == "" || node == a.Node || a.Single {
		return a.Network, nil
	}
	nodes, err := tx.Nodes(ctx)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("list data-plane nodes: %w", err)
	}
	for _, n := range nodes {
		if n.Name == node {
			if p, err := netip.ParsePrefix(n.Network); err == nil {
				return p.Masked(), nil
			}
		}
	}
	return a.Network, nil
}

// ServersPerNode counts the servers each of nodes holds, by node name.
func ServersPerNode(ctx context.Context, tx store.Tx, nodes []store.Node) (map[string]int, error) {
	servers, err := tx.List(ctx, store.ListOptions{Type: resource.TypeServer})
	if err != nil {
		return nil, fmt.Errorf("list servers: %w", err)
	}
	count := map[string]int{}
	for _, r := range servers {
		var d addressed
		if json.Unmarshal(r.Body, &d) == nil && d.Properties.DataPlane != nil {
			count[NodeOf(d.Properties.DataPlane.Node, d.Properties.DataPlane.Address, nodes)]++
		}
	}
	return count, nil
}

// NodeOf returns the node that serves a resource whose data plane names node (may be "") and
// address: node, or for documents written before nodes existed, the node whose network holds
// address ("" if none does).
func NodeOf(node, address string, nodes []store.Node) string {
	if node != "" {
		return node
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return ""
	}
	for _, n := range nodes {
		if p, err := netip.ParsePrefix(n.Network); err == nil && p.Contains(ap.Addr()) {
			return n.Name
		}
	}
	return ""
}

func (a Allocator) allocate(ctx context.Context, tx store.Tx, network netip.Prefix) (netip.Addr, error) {
	used := map[netip.Addr]bool{}
	for _, typ := range []string{resource.TypeServer, resource.TypePrivateEndpoint, resource.TypeVirtualNetwork} {
		all, err := tx.List(ctx, store.ListOptions{Type: typ})
		if err != nil {
			return netip.Addr{}, fmt.Errorf("list %s: %w", typ, err)
		}
		for _, r := range all {
			var d addressed
			if json.Unmarshal(r.Body, &d) != nil || d.Properties.DataPlane == nil {
				continue
			}
			for _, v := range []string{d.Properties.DataPlane.Address, d.Properties.DataPlane.DNSResolver} {
				if ap, err := netip.ParseAddrPort(v); err == nil && network.Contains(ap.Addr()) {
					used[ap.Addr()] = true
				}
			}
		}
	}
	if a.Max > 0 && len(used) >= a.Max {
		return netip.Addr{}, resource.Errorf(resource.Conflict, "QuotaExceeded",
			"This pglink node serves at most %d data-plane endpoints (server public endpoints, private endpoints and virtual networks' DNS resolvers) and all are in use. Delete unused servers, private endpoints or virtual networks, or start pglink with a larger --max-endpoints.", a.Max)
	}
	for ip := network.Masked().Addr().Next(); network.Contains(ip); ip = ip.Next() {
		if b := ip.As4(); b[3] == 0 || b[3] == 255 || used[ip] {
			continue
		}
		return ip, nil
	}
	return netip.Addr{}, resource.Errorf(resource.Conflict, "EndpointNetworkExhausted",
		"No data-plane address is left in %s. Delete unused servers or private endpoints, or start pglink with a larger --endpoint-network.", network)
}

// Scope is the part of the data plane one node serves: the servers, private endpoints and
// virtual networks' resolvers whose dataPlane names the node, or names none and has its address
// in the node's network (documents written before nodes). The zero Scope serves everything.
type Scope struct {
	Node    string
	Network netip.Prefix
}

// Serves reports whether the node of s serves a data plane that names node ("" for none) at
// address.
func (s Scope) Serves(node, address string) bool {
	switch {
	case s.Node == "":
		return true
	case node != "":
		return node == s.Node
	}
	ap, err := netip.ParseAddrPort(address)
	return err == nil && s.Network.Contains(ap.Addr())
}

// Sockets tells where a server's PostgreSQL listens.
type Sockets interface {
	// Socket returns the directory of the server's unix socket, "" if it has none.
	Socket(id resource.ID) string
}

// running reports whether a server in state s serves connections.
func running(s resource.ServerState) bool {
	return s == resource.ServerReady || s == resource.ServerUpdating
}

func notRunning(name string, s resource.ServerState) (msg, hint string) {
	switch s {
	case resource.ServerStopped, resource.ServerStopping:
		return fmt.Sprintf("server %q is %s", name, s), "Start the server and try again."
	case resource.ServerProvisioning, resource.ServerStarting, resource.ServerRestarting:
		return fmt.Sprintf("server %q is %s", name, s), "Wait until the server is Ready and try again."
	}
	return fmt.Sprintf("server %q is %s and accepts no connections", name, s), ""
}

// Build compiles the gateway policy of the node of scope from one consistent read of the store:
// the endpoints it serves. The Reconciler keeps it up to date from the change feed instead.
func Build(ctx context.Context, st store.Store, sockets Sockets, scope Scope) (gateway.Snapshot, error) {
	c := newPolicyCache(sockets, scope)
	if _, err := c.update(ctx, st); err != nil {
		return gateway.Snapshot{}, err
	}
	return c.snapshot(), nil
}

// secure applies a server's transport parameters to one of its endpoints: the public endpoint
// and every private endpoint alike.
func secure(ep *gateway.Endpoint, tr postgresql.Transport) {
	ep.RequireTLS = tr.RequireSecure
	ep.MinTLSVersion = tls.VersionTLS12
	if tr.MinTLS == "TLSv1.3" {
		ep.MinTLSVersion = tls.VersionTLS13
	}
}

// publicEndpoint compiles the public endpoint of server s (document r); rules returns its
// firewall rules, read only if public access is enabled.
func publicEndpoint(r store.Resource, s *postgresql.Server, sockets Sockets, rules func() ([]store.Resource, error)) (gateway.Endpoint, bool, error) {
	if s.Properties.DataPlane == nil {
		return gateway.Endpoint{}, false, nil
	}
	addr, err := netip.ParseAddrPort(s.Properties.DataPlane.Address)
	if err != nil {
		return gateway.Endpoint{}, false, nil
	}
	id, err := resource.Parse(r.ID)
	if err != nil {
		return gateway.Endpoint{}, false, nil
	}
	ep := gateway.Endpoint{Addr: addr, Kind: gateway.Public, ID: r.ID, Server: r.ID, ServerName: s.Name}
	switch {
	case !running(s.Properties.State):
		ep.Refuse, ep.Hint = notRunning(s.Name, s.Properties.State)
		ep.Reason = gateway.ReasonStopped
	case s.Properties.Network == nil || s.Properties.Network.PublicNetworkAccess != "Enabled":
		ep.Refuse = fmt.Sprintf("public network access to server %q is Disabled", s.Name)
		ep.Hint = "Connect through an approved private endpoint, or enable public network access on the server."
		ep.Reason = gateway.ReasonPublicDisabled
	default:
		ep.Upstream = sockets.Socket(id)
		rules, err := rules()
		if err != nil {
			return ep, false, err
		}
		for _, rr := range rules {
			var f postgresql.FirewallRule
			if json.Unmarshal(rr.Body, &f) != nil {
				continue
			}
			start, err1 := netip.ParseAddr(f.Properties.StartIPAddress)
			end, err2 := netip.ParseAddr(f.Properties.EndIPAddress)
			if err1 != nil || err2 != nil || (start.IsUnspecified() && end.IsUnspecified()) {
				continue // 0.0.0.0-0.0.0.0 means "Azure services": there are none here
			}
			ep.Allow = append(ep.Allow, gateway.AddrRange{Start: start, End: end})
		}
	}
	return ep, true, nil
}

// privateEndpoint compiles private endpoint pe (ARM ID id) against servers, by key. It reports
// false if the node of scope serves no endpoint for it.
func privateEndpoint(ctx context.Context, tx store.Tx, id string, pe *network.PrivateEndpoint, servers map[string]*serverEntry, sockets Sockets, scope Scope) (gateway.Endpoint, bool, error) {
	if dp := pe.Properties.DataPlane; dp == nil || !scope.Serves(dp.Node, dp.Address) {
		return gateway.Endpoint{}, false, nil
	}
	addr, err := netip.ParseAddrPort(pe.Properties.DataPlane.Address)
	if err != nil {
		return gateway.Endpoint{}, false, nil
	}
	conns := append(pe.Properties.PrivateLinkServiceConnections, pe.Properties.ManualPrivateLinkServiceConnections...)
	if len(conns) == 0 {
		return gateway.Endpoint{}, false, nil
	}
	target, err := resource.Parse(conns[0].Properties.PrivateLinkServiceID)
	if err != nil {
		return gateway.Endpoint{}, false, nil
	}
	ep := gateway.Endpoint{Addr: addr, Kind: gateway.Private, ID: id, Server: target.String(), ServerName: target.Name()}
	s := servers[target.Key()]
	connID := target.Child("privateEndpointConnections", pe.Name+"."+pe.Properties.ResourceGUID)
	var c postgresql.Connection
	_, err = arm.Load(ctx, tx, connID, &c)
	if s == nil || resource.KindOf(err) == resource.NotFound {
		ep.Refuse = fmt.Sprintf("the private endpoint connection of %q to server %q was removed (Disconnected)", pe.Name, target.Name())
		ep.Hint = "Delete this private endpoint and create a new one to request access again."
		ep.Reason = gateway.ReasonRemoved
		return ep, true, nil
	}
	if err != nil {
		return ep, false, err
	}
	name := c.Name
	switch c.Properties.PrivateLinkServiceConnectionState.Status {
	case resource.Approved:
		if !running(s.state) {
			ep.Refuse, ep.Hint = notRunning(s.name, s.state)
			ep.Reason = gateway.ReasonStopped
		} else {
			ep.Upstream = sockets.Socket(target)
		}
	case resource.Pending:
		ep.Refuse = fmt.Sprintf("private endpoint connection %q to server %q is Pending approval", name, s.name)
		ep.Hint = "Ask the server's administrator to approve the connection."
		ep.Reason = gateway.ReasonPending
	case resource.Rejected:
		ep.Refuse = fmt.Sprintf("private endpoint connection %q to server %q was Rejected", name, s.name)
		ep.Hint = "Delete this private endpoint and create a new one to request access again."
		ep.Reason = gateway.ReasonRejected
	default:
		ep.Refuse = fmt.Sprintf("private endpoint connection %q to server %q is %s", name, s.name, c.Properties.PrivateLinkServiceConnectionState.Status)
	}
	return ep, true, nil
}
