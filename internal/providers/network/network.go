// Package network is the Microsoft.Network provider: virtual networks and subnets, private
// endpoints and their network interfaces. A private endpoint takes an address from its subnet
// and asks its target's provider (through Target) to open a private endpoint connection.
package network

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"

	"github.com/pglink/pglink/internal/arm"
	"github.com/pglink/pglink/internal/resource"
	"github.com/pglink/pglink/internal/store"
)

// APIVersions are the Microsoft.Network api-versions served: az 2.45 sends 2022-01-01,
// armnetwork/v6 2024-05-01.
var APIVersions = []string{
	"2021-05-01", "2021-08-01", "2022-01-01", "2022-05-01", "2022-07-01", "2022-09-01", "2022-11-01",
	"2023-02-01", "2023-04-01", "2023-05-01", "2023-06-01", "2023-09-01", "2023-11-01", "2024-01-01",
	"2024-03-01", "2024-05-01", "2024-07-01", "2024-10-01",
}

// Target is the provider of a private link resource type, e.g. flexible servers.
type Target interface {
	// Connect validates a private endpoint's request and creates the connection on the target,
	// inside tx. Errors are *resource.Error for the user.
	Connect(ctx context.Context, tx store.Tx, req resource.LinkRequest) (resource.LinkResult, error)
	// Disconnect removes the connection conn, inside tx; a missing one is not an error.
	Disconnect(ctx context.Context, tx store.Tx, conn resource.ID) error
}

// Addresses hands out data-plane addresses ("host:port") inside a transaction.
type Addresses interface {
	// AllocateOn returns a free address on the data-plane node node ("" for this process's).
	AllocateOn(ctx context.Context, tx store.Tx, node string) (string, error)
}

// Resolvers hands out the addresses ("host:port") of virtual networks' DNS resolvers inside a
// transaction, on this process's data-plane node.
type Resolvers interface {
	AllocateResolver(ctx context.Context, tx store.Tx) (addr, node string, err error)
}

// Provider serves Microsoft.Network.
type Provider struct {
	st        store.Store
	addrs     Addresses // nil: private endpoints get no data-plane address
	resolvers Resolvers // nil: virtual networks get no resolver
	log       *slog.Logger
	targets   map[string]Target // by lower-cased resource type
	limits    Limits            // quotas; zero fields mean the defaults
}

// New returns the provider; addrs may be nil when there is no data plane. Add targets with
// AddTarget before serving.
func New(st store.Store, addrs Addresses, log *slog.Logger) *Provider {
	return &Provider{st: st, addrs: addrs, log: log.With("component", "network"), targets: map[string]Target{}}
}

// SetResolvers makes new virtual networks get a DNS resolver address from r; call it before
// serving.
func (p *Provider) SetResolvers(r Resolvers) { p.resolvers = r }

// AddTarget makes resources of type typ reachable through private endpoints.
func (p *Provider) AddTarget(typ string, t Target) { p.targets[strings.ToLower(typ)] = t }

// Types returns the resource types the provider serves.
func (p *Provider) Types() []arm.Type {
	return append([]arm.Type{
		{Name: resource.TypeVirtualNetwork, APIVersions: APIVersions, Handler: p.serveVirtualNetwork},
		{Name: resource.TypeSubnet, APIVersions: APIVersions, Handler: p.serveSubnet},
		{Name: resource.TypePrivateEndpoint, APIVersions: APIVersions, Handler: p.servePrivateEndpoint},
		{Name: resource.TypeNetworkInterface, APIVersions: APIVersions, Handler: p.serveNetworkInterface},
	}, p.privateDNSTypes()...)
}

// SubResource is a reference to another resource.
type SubResource struct {
	ID string `json:"id"`
}

// VirtualNetwork is a virtual network. Its subnets are stored as their own resources and
// embedded when served.
type VirtualNetwork struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Type       string            `json:"type"`
	Location   string            `json:"location"`
	Tags       map[string]string `json:"tags,omitempty"`
	Properties struct {
		AddressSpace struct {
			AddressPrefixes []string `json:"addressPrefixes"`
		} `json:"addressSpace"`
		Subnets           []json.RawMessage `json:"subnets"`
		ProvisioningState string            `json:"provisioningState"`
		ResourceGUID      string            `json:"resourceGuid"`
		DataPlane         *VNetDataPlane    `json:"dataPlane,omitempty"` // pglink: the network's DNS resolver
	} `json:"properties"`
}

// VNetDataPlane is pglink's addition to virtual networks (properties.dataPlane): the address
// ("host:port", UDP and TCP) of the resolver that answers the network's DNS queries, from the
// private DNS zones linked to it first.
type VNetDataPlane struct {
	DNSResolver string `json:"dnsResolver"`
	Node        string `json:"node,omitempty"` // the data-plane node whose nameserver serves it (see resource.DataPlane)
}

// Subnet is a subnet of a virtual network.
type Subnet struct {
	ID         string           `json:"id,omitempty"`
	Name       string           `json:"name,omitempty"`
	Type       string           `json:"type,omitempty"`
	Properties SubnetProperties `json:"properties"`
}

// SubnetProperties are a subnet's properties.
type SubnetProperties struct {
	AddressPrefix                     string            `json:"addressPrefix,omitempty"`
	AddressPrefixes                   []string          `json:"addressPrefixes,omitempty"`
	PrivateEndpointNetworkPolicies    string            `json:"privateEndpointNetworkPolicies,omitempty"`
	PrivateLinkServiceNetworkPolicies string            `json:"privateLinkServiceNetworkPolicies,omitempty"`
	Delegations                       []json.RawMessage `json:"delegations,omitempty"`
	PrivateEndpoints                  []SubResource     `json:"privateEndpoints,omitempty"`
	IPConfigurations                  []IPConfiguration `json:"ipConfigurations,omitempty"`
	ProvisioningState                 string            `json:"provisioningState"`
}

// IPConfiguration is an address taken from a subnet by a network interface.
type IPConfiguration struct {
	ID         string `json:"id"`
	Properties struct {
		PrivateIPAddress string `json:"privateIPAddress"`
	} `json:"properties"`
}

// prefix returns the subnet's address range.
func (s *Subnet) prefix() (netip.Prefix, error) {
	v := s.Properties.AddressPrefix
	if v == "" && len(s.Properties.AddressPrefixes) > 0 {
		v = s.Properties.AddressPrefixes[0]
	}
	return parsePrefix("addressPrefix", v)
}

func parsePrefix(name, v string) (netip.Prefix, error) {
	pf, err := netip.ParsePrefix(v)
	if err != nil || !pf.Addr().Is4() || pf.Masked() != pf {
		return pf, resource.Errorf(resource.Invalid, "InvalidAddressPrefixFormat",
			"Address prefix '%s' of %s is not a valid IPv4 CIDR block (for example 10.0.0.0/24).", v, name)
	}
	return pf, nil
}

func normLocation(l string) string { return strings.ToLower(strings.ReplaceAll(l, " ", "")) }

func get(ctx context.Context, st store.Store, id resource.ID, etag bool) (*arm.Response, error) {
	var r store.Resource
	err := st.View(ctx, func(tx store.Tx) error {
		var err error
		r, err = arm.Load(ctx, tx, id, nil)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &arm.Response{Body: arm.Body(r, etag)}, nil
}

// listTop lists a top-level type in a resource group or a subscription, reading from tx.
func listTop(ctx context.Context, tx store.Tx, req *arm.Request, typ string, render func(store.Resource) (any, error)) (*arm.Response, error) {
	opts := store.ListOptions{Type: typ, Parent: req.Target.ID.Key()}
	if req.Target.ID.ResourceGroup == "" {
		opts = store.ListOptions{Type: typ, Prefix: req.Target.ID.Key()}
	}
	return req.PageTx(ctx, tx, opts, render)
}

// listTopView is listTop in its own read transaction; render may read more in tx.
func listTopView(ctx context.Context, st store.Store, req *arm.Request, typ string, render func(tx store.Tx, r store.Resource) (any, error)) (*arm.Response, error) {
	var resp *arm.Response
	err := st.View(ctx, func(tx store.Tx) error {
		var err error
		resp, err = listTop(ctx, tx, req, typ, func(r store.Resource) (any, error) { return render(tx, r) })
		return err
	})
	return resp, err
}

// getView answers a GET of the resource id, rendered by render in the same read transaction.
func getView(ctx context.Context, st store.Store, id resource.ID, render func(tx store.Tx, r store.Resource) (any, error)) (*arm.Response, error) {
	var body any
	err := st.View(ctx, func(tx store.Tx) error {
		r, err := arm.Load(ctx, tx, id, nil)
		if err != nil {
			return err
		}
		body, err = render(tx, r)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &arm.Response{Body: body}, nil
}

// rawBody renders a stored resource as it is, with its ETag.
func rawBody(_ store.Tx, r store.Resource) (any, error) { return arm.Body(r, true), nil }

func (p *Provider) serveVirtualNetwork(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	t := req.Target
	render := func(tx store.Tx, r store.Resource) (any, error) { return renderVNet(ctx, tx, r) }
	if t.Collection {
		if req.Method != http.MethodGet {
			return nil, arm.MethodNotAllowed(req)
		}
		return listTopView(ctx, p.st, req, resource.TypeVirtualNetwork, render)
	}
	switch req.Method {
	case http.MethodGet:
		return getView(ctx, p.st, t.ID, render)
	case http.MethodPut:
		return p.putVirtualNetwork(ctx, req)
	case http.MethodDelete:
		return p.deleteVirtualNetwork(ctx, req)
	}
	return nil, arm.MethodNotAllowed(req)
}

func renderVNet(ctx context.Context, tx store.Tx, r store.Resource) (json.RawMessage, error) {
	var v VirtualNetwork
	if err := json.Unmarshal(r.Body, &v); err != nil {
		return nil, fmt.Errorf("decode %s: %w", r.ID, err)
	}
	subs, err := tx.List(ctx, store.ListOptions{Parent: r.Key, Type: resource.TypeSubnet})
	if err != nil {
		return nil, fmt.Errorf("list subnets of %s: %w", r.ID, err)
	}
	v.Properties.Subnets = []json.RawMessage{}
	for _, s := range subs {
		v.Properties.Subnets = append(v.Properties.Subnets, arm.Body(s, true))
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return arm.Body(store.Resource{Body: b, ETag: r.ETag}, true), nil
}

func (p *Provider) putVirtualNetwork(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	id := req.Target.ID
	if err := resource.VirtualNetworkName.Check(id.Name()); err != nil {
		return nil, err
	}
	var in VirtualNetwork
	if err := req.Decode(&in); err != nil {
		return nil, err
	}
	if err := checkCount("properties.addressSpace.addressPrefixes", len(in.Properties.AddressSpace.AddressPrefixes), maxAddressPrefixes); err != nil {
		return nil, err
	}
	if err := checkCount("properties.subnets", len(in.Properties.Subnets), maxSubnets); err != nil {
		return nil, err
	}
	if strings.TrimSpace(in.Location) == "" {
		return nil, resource.Errorf(resource.Invalid, "LocationRequired", "The location property is required for this definition.")
	}
	var space []netip.Prefix
	for _, s := range in.Properties.AddressSpace.AddressPrefixes {
		pf, err := parsePrefix("the virtual network", s)
		if err != nil {
			return nil, err
		}
		space = append(space, pf)
	}
	if len(space) == 0 {
		return nil, resource.Errorf(resource.Invalid, "InvalidRequestFormat", "The virtual network '%s' needs at least one address prefix in properties.addressSpace.addressPrefixes.", id.Name())
	}
	var subnets []Subnet
	for _, raw := range in.Properties.Subnets {
		var s Subnet
		if err := json.Unmarshal(raw, &s); err != nil || s.Name == "" {
			return nil, resource.Errorf(resource.Invalid, "InvalidRequestFormat", "Each subnet needs a name and properties.addressPrefix.")
		}
		if err := checkSubnetInput(s); err != nil {
			return nil, err
		}
		subnets = append(subnets, s)
	}
	if err := checkSubnets(id.Name(), space, subnets); err != nil {
		return nil, err
	}
	status := http.StatusOK
	var out json.RawMessage
	err := p.st.Update(ctx, func(tx store.Tx) error {
		cur, err := req.Existing(ctx, tx, id.Key())
		if err != nil {
			return err
		}
		if cur == nil {
			status = http.StatusCreated
		}
		v := VirtualNetwork{ID: id.String(), Name: id.Name(), Type: resource.TypeVirtualNetwork, Location: normLocation(in.Location), Tags: in.Tags}
		v.Properties.AddressSpace.AddressPrefixes = in.Properties.AddressSpace.AddressPrefixes
		v.Properties.ProvisioningState = "Succeeded"
		v.Properties.ResourceGUID = resource.NewGUID()
		if cur != nil {
			var old VirtualNetwork
			if err := json.Unmarshal(cur.Body, &old); err == nil {
				v.Properties.ResourceGUID = old.Properties.ResourceGUID
				v.Properties.DataPlane = old.Properties.DataPlane
				if old.Location != v.Location {
					return resource.Errorf(resource.Invalid, "InvalidResourceLocation",
						"The virtual network '%s' already exists in location '%s'; its location cannot change.", id.Name(), old.Location)
				}
			}
		}
		if v.Properties.DataPlane == nil && p.resolvers != nil {
			addr, node, err := p.resolvers.AllocateResolver(ctx, tx)
			if err != nil {
				return err
			}
			v.Properties.DataPlane = &VNetDataPlane{DNSResolver: addr, Node: node}
		}
		// Subnets not in the request are removed, unless something uses them.
		existing, err := tx.List(ctx, store.ListOptions{Parent: id.Key(), Type: resource.TypeSubnet})
		if err != nil {
			return err
		}
		keep := map[string]bool{}
		for _, s := range subnets {
			keep[strings.ToLower(s.Name)] = true
		}
		for _, r := range existing {
			var s Subnet
			if err := json.Unmarshal(r.Body, &s); err != nil {
				return err
			}
			if keep[strings.ToLower(s.Name)] {
				continue
			}
			if len(s.Properties.IPConfigurations) > 0 {
				return subnetInUse(s)
			}
			if err := tx.Delete(ctx, r.Key); err != nil {
				return err
			}
		}
		if _, err := arm.Save(ctx, tx, id, v); err != nil {
			return err
		}
		for _, s := range subnets {
			if err := putSubnet(ctx, tx, id.Child("subnets", s.Name), s, space); err != nil {
				return err
			}
		}
		r, err := tx.Get(ctx, id.Key())
		if err != nil {
			return err
		}
		out, err = renderVNet(ctx, tx, r)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &arm.Response{Status: status, Body: out}, nil
}

// RemoveSubnet deletes the subnet r inside tx as a subnet delete does, for a resource group
// delete: it refuses (InUseSubnetCannotBeDeleted) while a private endpoint, of any group, still
// has an address in it. A missing subnet is not an error.
func (p *Provider) RemoveSubnet(ctx context.Context, tx store.Tx, r store.Resource) error {
	var s Subnet
	cur, err := tx.Get(ctx, r.Key)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", r.ID, err)
	}
	if err := json.Unmarshal(cur.Body, &s); err != nil {
		return fmt.Errorf("decode %s: %w", r.ID, err)
	}
	if len(s.Properties.IPConfigurations) > 0 {
		return subnetInUse(s)
	}
	return arm.Delete(ctx, tx, resource.MustParse(cur.ID))
}

// RemoveVirtualNetwork deletes the virtual network r and its subnets inside tx as a virtual
// network delete does, for a resource group delete: it refuses while a subnet is in use.
// A missing network is not an error.
func (p *Provider) RemoveVirtualNetwork(ctx context.Context, tx store.Tx, r store.Resource) error {
	subs, err := tx.List(ctx, store.ListOptions{Parent: r.Key, Type: resource.TypeSubnet})
	if err != nil {
		return fmt.Errorf("list subnets of %s: %w", r.ID, err)
	}
	for _, s := range subs {
		if err := p.RemoveSubnet(ctx, tx, s); err != nil {
			return err
		}
	}
	if _, err := tx.Get(ctx, r.Key); errors.Is(err, store.ErrNotFound) {
		return nil
	}
	id, err := resource.Parse(r.ID)
	if err != nil {
		return fmt.Errorf("parse %s: %w", r.ID, err)
	}
	return arm.Delete(ctx, tx, id)
}

func subnetInUse(s Subnet) error {
	var users []string
	for _, pe := range s.Properties.PrivateEndpoints {
		users = append(users, pe.ID)
	}
	return resource.Errorf(resource.Invalid, "InUseSubnetCannotBeDeleted",
		"Subnet '%s' is in use by %d private endpoint address(es) and cannot be deleted. Delete the private endpoints first: %s.", s.Name, len(s.Properties.IPConfigurations), strings.Join(users, ", "))
}

// checkSubnets checks that every subnet lies in the address space and none overlap.
func checkSubnets(vnet string, space []netip.Prefix, subnets []Subnet) error {
	var seen []netip.Prefix
	for _, s := range subnets {
		pf, err := s.prefix()
		if err != nil {
			return err
		}
		inside := false
		for _, sp := range space {
			if sp.Bits() <= pf.Bits() && sp.Contains(pf.Addr()) {
				inside = true
			}
		}
		if !inside {
			return resource.Errorf(resource.Invalid, "NetcfgSubnetRangeOutsideVnet",
				"Subnet '%s' is not valid because its IP address range %s is outside the IP address range of virtual network '%s'.", s.Name, pf, vnet)
		}
		for _, o := range seen {
			if o.Overlaps(pf) {
				return resource.Errorf(resource.Invalid, "NetcfgSubnetRangesOverlap",
					"Subnet '%s' with address range %s overlaps another subnet %s of virtual network '%s'.", s.Name, pf, o, vnet)
			}
		}
		seen = append(seen, pf)
	}
	return nil
}

// putSubnet creates or updates a subnet, keeping the addresses it has handed out.
func putSubnet(ctx context.Context, tx store.Tx, id resource.ID, in Subnet, space []netip.Prefix) error {
	out := Subnet{ID: id.String(), Name: id.Name(), Type: resource.TypeSubnet, Properties: in.Properties}
	out.Properties.PrivateEndpoints, out.Properties.IPConfigurations = nil, nil
	if out.Properties.PrivateEndpointNetworkPolicies == "" {
		out.Properties.PrivateEndpointNetworkPolicies = "Disabled"
	}
	if out.Properties.PrivateLinkServiceNetworkPolicies == "" {
		out.Properties.PrivateLinkServiceNetworkPolicies = "Enabled"
	}
	out.Properties.ProvisioningState = "Succeeded"
	var cur Subnet
	if _, err := arm.Load(ctx, tx, id, &cur); err != nil && resource.KindOf(err) != resource.NotFound {
		return err
	} else if err == nil {
		out.Properties.PrivateEndpoints = cur.Properties.PrivateEndpoints
		out.Properties.IPConfigurations = cur.Properties.IPConfigurations
		if len(cur.Properties.IPConfigurations) > 0 {
			a, _ := cur.prefix()
			b, _ := out.prefix()
			if a != b {
				return resource.Errorf(resource.Invalid, "InUseSubnetCannotBeUpdated",
					"The address range of subnet '%s' cannot change while private endpoints use it.", id.Name())
			}
		}
	}
	_, err := arm.Save(ctx, tx, id, out)
	return err
}

func (p *Provider) deleteVirtualNetwork(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	id := req.Target.ID
	gone := false
	err := p.st.Update(ctx, func(tx store.Tx) error {
		if _, err := tx.Get(ctx, id.Key()); errors.Is(err, store.ErrNotFound) {
			gone = true
			return nil
		}
		subs, err := tx.List(ctx, store.ListOptions{Parent: id.Key(), Type: resource.TypeSubnet})
		if err != nil {
			return err
		}
		for _, r := range subs {
			var s Subnet
			if err := json.Unmarshal(r.Body, &s); err != nil {
				return err
			}
			if len(s.Properties.IPConfigurations) > 0 {
				return subnetInUse(s)
			}
		}
		return arm.Delete(ctx, tx, id)
	})
	if err != nil {
		return nil, err
	}
	if gone {
		return &arm.Response{Status: http.StatusNoContent}, nil
	}
	return &arm.Response{}, nil
}

func (p *Provider) serveSubnet(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	return arm.Child(ctx, p.st, req, true, p.putSubnetRequest, p.deleteSubnetRequest)
}

func (p *Provider) putSubnetRequest(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	t := req.Target
	var in Subnet
	if err := req.Decode(&in); err != nil {
		return nil, err
	}
	in.Name = t.ID.Name()
	if err := checkSubnetInput(in); err != nil {
		return nil, err
	}
	status := http.StatusOK
	var out store.Resource
	err := p.st.Update(ctx, func(tx store.Tx) error {
		var v VirtualNetwork
		if _, err := arm.Load(ctx, tx, t.ID.Parent(), &v); err != nil {
			return err
		}
		cur, err := req.Existing(ctx, tx, t.ID.Key())
		if err != nil {
			return err
		}
		if cur == nil {
			status = http.StatusCreated
		}
		var space []netip.Prefix
		for _, s := range v.Properties.AddressSpace.AddressPrefixes {
			pf, _ := netip.ParsePrefix(s)
			space = append(space, pf)
		}
		all := []Subnet{in}
		others, err := tx.List(ctx, store.ListOptions{Parent: t.ID.Parent().Key(), Type: resource.TypeSubnet})
		if err != nil {
			return err
		}
		for _, r := range others {
			if r.Key == t.ID.Key() {
				continue
			}
			var s Subnet
			if err := json.Unmarshal(r.Body, &s); err != nil {
				return err
			}
			all = append(all, s)
		}
		if len(all) > maxSubnets {
			return resource.Errorf(resource.Conflict, "QuotaExceeded",
				"Virtual network '%s' already has %d subnets, the most Azure allows. Delete unused subnets or use another virtual network.", v.Name, maxSubnets)
		}
		if err := checkSubnets(v.Name, space, all); err != nil {
			return err
		}
		if err := putSubnet(ctx, tx, t.ID, in, space); err != nil {
			return err
		}
		out, err = tx.Get(ctx, t.ID.Key())
		return err
	})
	if err != nil {
		return nil, err
	}
	return &arm.Response{Status: status, Body: arm.Body(out, true)}, nil
}

func (p *Provider) deleteSubnetRequest(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	t := req.Target
	gone := false
	err := p.st.Update(ctx, func(tx store.Tx) error {
		var s Subnet
		_, err := arm.Load(ctx, tx, t.ID, &s)
		if resource.KindOf(err) == resource.NotFound {
			gone = true
			return nil
		}
		if err != nil {
			return err
		}
		if len(s.Properties.IPConfigurations) > 0 {
			return subnetInUse(s)
		}
		return tx.Delete(ctx, t.ID.Key())
	})
	if err != nil {
		return nil, err
	}
	if gone {
		return &arm.Response{Status: http.StatusNoContent}, nil
	}
	return &arm.Response{}, nil
}

func (p *Provider) serveNetworkInterface(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	if req.Method != http.MethodGet {
		return nil, resource.Errorf(resource.Invalid, "OperationNotAllowed",
			"Network interfaces of private endpoints are managed by their private endpoint and cannot be changed directly.")
	}
	if req.Target.Collection {
		return listTopView(ctx, p.st, req, resource.TypeNetworkInterface, rawBody)
	}
	return get(ctx, p.st, req.Target.ID, true)
}
