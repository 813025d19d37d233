package network

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"github.com/pglink/pglink/internal/arm"
	"github.com/pglink/pglink/internal/resource"
	"github.com/pglink/pglink/internal/store"
)

// PrivateEndpoint is a private endpoint as stored and served.
type PrivateEndpoint struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Type       string            `json:"type"`
	Location   string            `json:"location"`
	Tags       map[string]string `json:"tags,omitempty"`
	Properties struct {
		Subnet                              *SubResource        `json:"subnet"`
		PrivateLinkServiceConnections       []LinkConnection    `json:"privateLinkServiceConnections"`
		ManualPrivateLinkServiceConnections []LinkConnection    `json:"manualPrivateLinkServiceConnections"`
		NetworkInterfaces                   []SubResource       `json:"networkInterfaces"`
		CustomDNSConfigs                    []CustomDNSConfig   `json:"customDnsConfigs"`
		IPConfigurations                    []json.RawMessage   `json:"ipConfigurations"`
		CustomNetworkInterfaceName          string              `json:"customNetworkInterfaceName,omitempty"`
		ProvisioningState                   string              `json:"provisioningState"`
		ResourceGUID                        string              `json:"resourceGuid"`
		DataPlane                           *resource.DataPlane `json:"dataPlane,omitempty"` // pglink: where clients connect
	} `json:"properties"`
}

// LinkConnection is one privateLinkServiceConnections entry of a private endpoint.
type LinkConnection struct {
	ID         string `json:"id,omitempty"`
	Name       string `json:"name"`
	Type       string `json:"type,omitempty"`
	Properties struct {
		PrivateLinkServiceID              string                    `json:"privateLinkServiceId"`
		GroupIDs                          []string                  `json:"groupIds"`
		RequestMessage                    string                    `json:"requestMessage,omitempty"`
		PrivateLinkServiceConnectionState *resource.ConnectionState `json:"privateLinkServiceConnectionState,omitempty"`
		ProvisioningState                 string                    `json:"provisioningState,omitempty"`
	} `json:"properties"`
}

// CustomDNSConfig is a name and the addresses it must resolve to for the endpoint to work.
type CustomDNSConfig struct {
	FQDN        string   `json:"fqdn"`
	IPAddresses []string `json:"ipAddresses"`
}

// NetworkInterface is the interface that holds a private endpoint's address.
type NetworkInterface struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Type       string `json:"type"`
	Location   string `json:"location"`
	Properties struct {
		IPConfigurations  []json.RawMessage `json:"ipConfigurations"`
		PrivateEndpoint   SubResource       `json:"privateEndpoint"`
		MacAddress        string            `json:"macAddress"`
		ProvisioningState string            `json:"provisioningState"`
	} `json:"properties"`
}

func (p *Provider) servePrivateEndpoint(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	t := req.Target
	if t.Collection {
		if req.Method != http.MethodGet {
			return nil, arm.MethodNotAllowed(req)
		}
		return listTopView(ctx, p.st, req, resource.TypePrivateEndpoint, rawBody)
	}
	switch req.Method {
	case http.MethodGet:
		return get(ctx, p.st, t.ID, true)
	case http.MethodPut:
		return p.putPrivateEndpoint(ctx, req)
	case http.MethodDelete:
		return p.deletePrivateEndpoint(ctx, req)
	}
	return nil, arm.MethodNotAllowed(req)
}

func (p *Provider) putPrivateEndpoint(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	id := req.Target.ID
	if err := resource.PrivateEndpointName.Check(id.Name()); err != nil {
		return nil, err
	}
	var in PrivateEndpoint
	if err := req.Decode(&in); err != nil {
		return nil, err
	}
	if err := checkEndpointInput(in); err != nil {
		return nil, err
	}
	if err := req.AuthorizeLinked(ctx, linkedActions(in)...); err != nil {
		return nil, err
	}
	status := http.StatusOK
	var out store.Resource
	err := p.st.Update(ctx, func(tx store.Tx) error {
		cur, err := req.Existing(ctx, tx, id.Key())
		if err != nil {
			return err
		}
		if cur != nil {
			out, err = p.updateEndpoint(ctx, tx, id, *cur, in)
			return err
		}
		status = http.StatusCreated
		out, err = p.createEndpoint(ctx, tx, id, in)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &arm.Response{Status: status, Body: arm.Body(out, true)}, nil
}

// linkedActions are what a private endpoint PUT does on other resources, which the caller
// must be allowed, as in Azure: join its subnet, and for an automatic connection approve it on
// the target (a manual connection needs nothing on the target and waits for its owner).
func linkedActions(in PrivateEndpoint) []arm.Linked {
	var links []arm.Linked
	if s := in.Properties.Subnet; s != nil && s.ID != "" {
		links = append(links, arm.Linked{Action: arm.ActionJoinSubnet, Scope: s.ID})
	}
	for _, c := range in.Properties.PrivateLinkServiceConnections {
		if t, err := resource.Parse(c.Properties.PrivateLinkServiceID); err == nil && t.Namespace != "" {
			links = append(links, arm.Linked{Action: t.Type() + arm.ActionApproveSuffix, Scope: t.String()})
		}
	}
	return links
}

// updateEndpoint applies a PUT to an existing endpoint: only tags may change.
func (p *Provider) updateEndpoint(ctx context.Context, tx store.Tx, id resource.ID, cur store.Resource, in PrivateEndpoint) (store.Resource, error) {
	var pe PrivateEndpoint
	if err := json.Unmarshal(cur.Body, &pe); err != nil {
		return cur, fmt.Errorf("decode %s: %w", id, err)
	}
	if in.Properties.Subnet != nil && !strings.EqualFold(in.Properties.Subnet.ID, pe.Properties.Subnet.ID) {
		return cur, resource.Errorf(resource.Invalid, "CannotChangePrivateEndpointSubnet",
			"The subnet of private endpoint '%s' cannot be changed. Delete the private endpoint and create it again.", id.Name())
	}
	same := func(a, b []LinkConnection) bool {
		if len(a) != len(b) {
			return false
		}
		for i := range a {
			if !strings.EqualFold(a[i].Properties.PrivateLinkServiceID, b[i].Properties.PrivateLinkServiceID) {
				return false
			}
		}
		return true
	}
	if !same(in.Properties.PrivateLinkServiceConnections, pe.Properties.PrivateLinkServiceConnections) ||
		!same(in.Properties.ManualPrivateLinkServiceConnections, pe.Properties.ManualPrivateLinkServiceConnections) {
		return cur, resource.Errorf(resource.Invalid, "CannotChangePrivateLinkServiceConnections",
			"The private link service connections of private endpoint '%s' cannot be changed. Delete the private endpoint and create it again.", id.Name())
	}
	pe.ID, pe.Name, pe.Tags = id.String(), id.Name(), in.Tags
	return arm.Save(ctx, tx, id, pe)
}

// createEndpoint validates a new private endpoint, takes an address from its subnet, opens the
// connection on the target and writes the endpoint and its network interface.
func (p *Provider) createEndpoint(ctx context.Context, tx store.Tx, id resource.ID, in PrivateEndpoint) (store.Resource, error) {
	if strings.TrimSpace(in.Location) == "" {
		return store.Resource{}, resource.Errorf(resource.Invalid, "LocationRequired", "The location property is required for this definition.")
	}
	auto, manual := in.Properties.PrivateLinkServiceConnections, in.Properties.ManualPrivateLinkServiceConnections
	if len(auto)+len(manual) != 1 {
		return store.Resource{}, resource.Errorf(resource.Invalid, "InvalidPrivateEndpointConnections",
			"Private endpoint '%s' must have exactly one entry in privateLinkServiceConnections or manualPrivateLinkServiceConnections.", id.Name())
	}
	isManual := len(manual) == 1
	conn := append(auto, manual...)[0]
	if conn.Name == "" {
		conn.Name = id.Name()
	}
	if in.Properties.Subnet == nil || in.Properties.Subnet.ID == "" {
		return store.Resource{}, resource.Errorf(resource.Invalid, "InvalidRequestFormat", "Private endpoint '%s' needs properties.subnet.id.", id.Name())
	}
	subnetID, err := resource.Parse(in.Properties.Subnet.ID)
	if err != nil || !subnetID.TypeIs(resource.TypeSubnet) {
		return store.Resource{}, resource.Errorf(resource.Invalid, "InvalidResourceReference",
			"Subnet '%s' referenced by private endpoint '%s' is not a valid subnet resource id.", in.Properties.Subnet.ID, id.Name())
	}
	var subnet Subnet
	subRes, err := arm.Load(ctx, tx, subnetID, &subnet)
	if resource.KindOf(err) == resource.NotFound {
		return store.Resource{}, resource.Errorf(resource.Invalid, "InvalidResourceReference",
			"Resource %s referenced by resource %s was not found. Please make sure that the referenced resource exists, and that both resources are in the same region.", subnetID, id)
	}
	if err != nil {
		return store.Resource{}, err
	}
	if err := arm.CheckGroupWritable(ctx, tx, subnetID); err != nil {
		return store.Resource{}, err // the subnet's group is being deleted
	}
	var vnet VirtualNetwork
	if _, err := arm.Load(ctx, tx, subnetID.Parent(), &vnet); err != nil {
		return store.Resource{}, err
	}
	if normLocation(in.Location) != vnet.Location {
		return store.Resource{}, resource.Errorf(resource.Invalid, "InvalidResourceLocation",
			"Private endpoint '%s' is in location '%s' but its subnet's virtual network is in '%s'; they must be in the same location.", id.Name(), in.Location, vnet.Location)
	}
	targetID, err := resource.Parse(conn.Properties.PrivateLinkServiceID)
	if err != nil || targetID.Namespace == "" {
		return store.Resource{}, resource.Errorf(resource.Invalid, "InvalidPrivateLinkServiceId",
			"privateLinkServiceId '%s' of private endpoint '%s' is not a valid resource id.", conn.Properties.PrivateLinkServiceID, id.Name())
	}
	target := p.targets[strings.ToLower(targetID.Type())]
	if target == nil {
		return store.Resource{}, resource.Errorf(resource.Invalid, "PrivateLinkServiceNotSupported",
			"Resources of type '%s' cannot be reached through private endpoints here.", targetID.Type())
	}
	if err := arm.CheckGroupWritable(ctx, tx, targetID); err != nil && resource.KindOf(err) != resource.NotFound {
		return store.Resource{}, err // the target's group is being deleted; a missing one is the target's to report
	}
	if err := p.checkSubnetQuota(&subnet); err != nil {
		return store.Resource{}, err
	}
	addr, err := allocate(&subnet)
	if err != nil {
		return store.Resource{}, err
	}
	guid := resource.NewGUID()
	res, err := target.Connect(ctx, tx, resource.LinkRequest{
		Target: targetID, GroupIDs: conn.Properties.GroupIDs, Endpoint: id, EndpointGUID: guid,
		Manual: isManual, RequestMessage: conn.Properties.RequestMessage,
	})
	if err != nil {
		return store.Resource{}, err
	}
	nicID := id.ResourceGroupID().Child("Microsoft.Network/networkInterfaces", id.Name()+".nic."+guid)
	ipcID := nicID.Child("ipConfigurations", "privateEndpointIpConfig."+guid)

	pe := PrivateEndpoint{ID: id.String(), Name: id.Name(), Type: resource.TypePrivateEndpoint, Location: vnet.Location, Tags: in.Tags}
	pe.Properties.Subnet = &SubResource{ID: subnetID.String()}
	conn.ID = id.String() + "/privateLinkServiceConnections/" + conn.Name
	conn.Type = "Microsoft.Network/privateEndpoints/privateLinkServiceConnections"
	conn.Properties.PrivateLinkServiceID = targetID.String()
	conn.Properties.PrivateLinkServiceConnectionState = &res.State
	conn.Properties.ProvisioningState = "Succeeded"
	pe.Properties.PrivateLinkServiceConnections = []LinkConnection{}
	pe.Properties.ManualPrivateLinkServiceConnections = []LinkConnection{}
	if isManual {
		pe.Properties.ManualPrivateLinkServiceConnections = []LinkConnection{conn}
	} else {
		pe.Properties.PrivateLinkServiceConnections = []LinkConnection{conn}
	}
	pe.Properties.NetworkInterfaces = []SubResource{{ID: nicID.String()}}
	pe.Properties.IPConfigurations = []json.RawMessage{}
	pe.Properties.CustomNetworkInterfaceName = in.Properties.CustomNetworkInterfaceName
	pe.Properties.ProvisioningState = "Succeeded"
	pe.Properties.ResourceGUID = guid
	if p.addrs != nil {
		// The endpoint listens on the node of its target, whose gateway holds the target's
		// policy and reaches its PostgreSQL.
		addr, err := p.addrs.AllocateOn(ctx, tx, res.Node)
		if err != nil {
			return store.Resource{}, err
		}
		pe.Properties.DataPlane = &resource.DataPlane{Address: addr, Node: res.Node}
	}
	// customDnsConfigs name the address the server's name must resolve to through this
	// endpoint: the one clients reach it at (its data-plane address), else its subnet address.
	dnsIP := addr.String()
	if pe.Properties.DataPlane != nil {
		if ap, err := netip.ParseAddrPort(pe.Properties.DataPlane.Address); err == nil {
			dnsIP = ap.Addr().String()
		}
	}
	pe.Properties.CustomDNSConfigs = []CustomDNSConfig{{FQDN: res.FQDN, IPAddresses: []string{dnsIP}}}

	var ipc IPConfiguration
	ipc.ID = ipcID.String()
	ipc.Properties.PrivateIPAddress = addr.String()
	subnet.Properties.IPConfigurations = append(subnet.Properties.IPConfigurations, ipc)
	subnet.Properties.PrivateEndpoints = append(subnet.Properties.PrivateEndpoints, SubResource{ID: id.String()})
	if _, err := arm.Save(ctx, tx, subnetID, subnet); err != nil {
		return store.Resource{}, err
	}
	nic := NetworkInterface{ID: nicID.String(), Name: nicID.Name(), Type: resource.TypeNetworkInterface, Location: vnet.Location}
	ipcBody, _ := json.Marshal(map[string]any{"id": ipcID.String(), "name": ipcID.Name(), "properties": map[string]any{
		"privateIPAddress": addr.String(), "privateIPAllocationMethod": "Dynamic", "subnet": map[string]string{"id": subnetID.String()},
		"primary": true, "privateIPAddressVersion": "IPv4", "privateLinkConnectionProperties": map[string]any{
			"groupId": resource.PostgresGroupID, "requiredMemberName": resource.PostgresGroupID, "fqdns": []string{res.FQDN}}}})
	nic.Properties.IPConfigurations = []json.RawMessage{ipcBody}
	nic.Properties.PrivateEndpoint = SubResource{ID: id.String()}
	nic.Properties.ProvisioningState = "Succeeded"
	if _, err := arm.Save(ctx, tx, nicID, nic); err != nil {
		return store.Resource{}, err
	}
	_ = subRes
	return arm.Save(ctx, tx, id, pe)
}

// allocate returns the first free address of the subnet. Like Azure, it never hands out the
// network address, the next three, or the broadcast address.
func allocate(s *Subnet) (netip.Addr, error) {
	pf, err := s.prefix()
	if err != nil {
		return netip.Addr{}, err
	}
	used := map[netip.Addr]bool{}
	for _, c := range s.Properties.IPConfigurations {
		if a, err := netip.ParseAddr(c.Properties.PrivateIPAddress); err == nil {
			used[a] = true
		}
	}
	a := pf.Addr()
	for i := 0; i < 4; i++ {
		a = a.Next()
	}
	for ; pf.Contains(a) && pf.Contains(a.Next()); a = a.Next() {
		if !used[a] {
			return a, nil
		}
	}
	return netip.Addr{}, resource.Errorf(resource.Invalid, "SubnetIsFull",
		"Subnet '%s' has no free IP addresses left for a private endpoint. Use a larger subnet or another one.", s.Name)
}

func (p *Provider) deletePrivateEndpoint(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	id := req.Target.ID
	gone := false
	err := p.st.Update(ctx, func(tx store.Tx) error {
		var err error
		gone, err = p.removeEndpoint(ctx, tx, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	if gone {
		return &arm.Response{Status: http.StatusNoContent}, nil
	}
	return &arm.Response{}, nil
}

// RemoveEndpoint deletes the private endpoint r inside tx as a private endpoint delete does
// (its connection on the target, in any group, is removed; its address goes back to its
// subnet, in any group; its network interface is deleted), for a resource group delete. A
// missing endpoint is not an error.
func (p *Provider) RemoveEndpoint(ctx context.Context, tx store.Tx, r store.Resource) error {
	id, err := resource.Parse(r.ID)
	if err != nil {
		return fmt.Errorf("parse %s: %w", r.ID, err)
	}
	_, err = p.removeEndpoint(ctx, tx, id)
	return err
}

// removeEndpoint deletes private endpoint id and what it holds elsewhere, inside tx. It
// reports whether the endpoint was already gone.
func (p *Provider) removeEndpoint(ctx context.Context, tx store.Tx, id resource.ID) (gone bool, err error) {
	var pe PrivateEndpoint
	_, err = arm.Load(ctx, tx, id, &pe)
	if resource.KindOf(err) == resource.NotFound {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	if err := removeEndpointGroups(ctx, tx, id); err != nil {
		return false, err
	}
	for _, c := range append(pe.Properties.PrivateLinkServiceConnections, pe.Properties.ManualPrivateLinkServiceConnections...) {
		target, err := resource.Parse(c.Properties.PrivateLinkServiceID)
		if err != nil {
			continue
		}
		if t := p.targets[strings.ToLower(target.Type())]; t != nil {
			conn := target.Child("privateEndpointConnections", id.Name()+"."+pe.Properties.ResourceGUID)
			if err := t.Disconnect(ctx, tx, conn); err != nil {
				return false, err
			}
		}
	}
	if pe.Properties.Subnet != nil {
		if err := release(ctx, tx, pe); err != nil {
			return false, err
		}
	}
	for _, nic := range pe.Properties.NetworkInterfaces {
		if nid, err := resource.Parse(nic.ID); err == nil {
			if err := arm.Delete(ctx, tx, nid); err != nil {
				return false, err
			}
		}
	}
	return false, arm.Delete(ctx, tx, id)
}

// release gives a deleted endpoint's address back to its subnet.
func release(ctx context.Context, tx store.Tx, pe PrivateEndpoint) error {
	sid, err := resource.Parse(pe.Properties.Subnet.ID)
	if err != nil {
		return nil
	}
	var s Subnet
	if _, err := arm.Load(ctx, tx, sid, &s); resource.KindOf(err) == resource.NotFound {
		return nil // the subnet is gone, and its addresses with it
	} else if err != nil {
		return err
	}
	nics := map[string]bool{}
	for _, n := range pe.Properties.NetworkInterfaces {
		nics[strings.ToLower(n.ID)] = true
	}
	var ipcs []IPConfiguration
	for _, c := range s.Properties.IPConfigurations {
		if cid, err := resource.Parse(c.ID); err == nil && nics[cid.Parent().Key()] {
			continue
		}
		ipcs = append(ipcs, c)
	}
	var pes []SubResource
	for _, r := range s.Properties.PrivateEndpoints {
		if !strings.EqualFold(r.ID, pe.ID) {
			pes = append(pes, r)
		}
	}
	s.Properties.IPConfigurations, s.Properties.PrivateEndpoints = ipcs, pes
	_, err = arm.Save(ctx, tx, sid, s)
	return err
}

// SetConnectionState mirrors the state of pe's connection to target on the endpoint.
func (p *Provider) SetConnectionState(ctx context.Context, tx store.Tx, pe resource.ID, target resource.ID, state resource.ConnectionState) error {
	var e PrivateEndpoint
	if _, err := arm.Load(ctx, tx, pe, &e); err != nil {
		if resource.KindOf(err) == resource.NotFound {
			return nil
		}
		return err
	}
	set := func(list []LinkConnection) {
		for i := range list {
			if strings.EqualFold(list[i].Properties.PrivateLinkServiceID, target.String()) {
				s := state
				list[i].Properties.PrivateLinkServiceConnectionState = &s
			}
		}
	}
	set(e.Properties.PrivateLinkServiceConnections)
	set(e.Properties.ManualPrivateLinkServiceConnections)
	_, err := arm.Save(ctx, tx, pe, e)
	return err
}
