package network

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/pglink/pglink/internal/arm"
	"github.com/pglink/pglink/internal/resource"
	"github.com/pglink/pglink/internal/store"
)

// maxZoneConfigs is Azure's limit of zone configurations in one private DNS zone group.
const maxZoneConfigs = 5

// DNSZoneGroup is a private endpoint's private DNS zone group: the zones in which the
// endpoint's A record is kept.
type DNSZoneGroup struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Type       string `json:"type"`
	Properties struct {
		PrivateDNSZoneConfigs []DNSZoneConfig `json:"privateDnsZoneConfigs"`
		ProvisioningState     string          `json:"provisioningState"`
	} `json:"properties"`
}

// DNSZoneConfig is one zone of a zone group and the record sets written in it.
type DNSZoneConfig struct {
	ID         string `json:"id,omitempty"`
	Name       string `json:"name"`
	Properties struct {
		PrivateDNSZoneID string         `json:"privateDnsZoneId"`
		RecordSets       []RecordSetRef `json:"recordSets"`
	} `json:"properties"`
}

// RecordSetRef is a record set a zone group wrote, as reported on the group.
type RecordSetRef struct {
	RecordType        string   `json:"recordType"`
	RecordSetName     string   `json:"recordSetName"`
	FQDN              string   `json:"fqdn"`
	TTL               int64    `json:"ttl"`
	IPAddresses       []string `json:"ipAddresses"`
	ProvisioningState string   `json:"provisioningState"`
}

func (p *Provider) serveZoneGroup(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	return arm.Child(ctx, p.st, req, true, p.putZoneGroup, p.deleteZoneGroup)
}

func (p *Provider) putZoneGroup(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	id := req.Target.ID
	if err := resource.DNSZoneGroupName.Check(id.Name()); err != nil {
		return nil, err
	}
	var in DNSZoneGroup
	if err := req.Decode(&in); err != nil {
		return nil, err
	}
	configs := in.Properties.PrivateDNSZoneConfigs
	if len(configs) == 0 || len(configs) > maxZoneConfigs {
		return nil, resource.InvalidParameter("properties.privateDnsZoneConfigs",
			"A private DNS zone group needs 1 to %d entries in properties.privateDnsZoneConfigs; it has %d.", maxZoneConfigs, len(configs))
	}
	var zones []resource.ID
	var links []arm.Linked
	seen := map[string]bool{}
	for i, c := range configs {
		z, err := resource.Parse(c.Properties.PrivateDNSZoneID)
		if err != nil || !z.TypeIs(resource.TypePrivateDNSZone) {
			return nil, resource.InvalidParameter("properties.privateDnsZoneConfigs.properties.privateDnsZoneId",
				"'%s' is not a private DNS zone resource id.", c.Properties.PrivateDNSZoneID)
		}
		if seen[z.Key()] || seen["name:"+strings.ToLower(z.Name())] {
			return nil, resource.InvalidParameter("properties.privateDnsZoneConfigs",
				"Private DNS zone '%s' appears twice in the zone group; list each zone name once.", z.Name())
		}
		seen[z.Key()], seen["name:"+strings.ToLower(z.Name())] = true, true
		if c.Name == "" {
			configs[i].Name = strings.ReplaceAll(z.Name(), ".", "-")
		}
		zones = append(zones, z)
		links = append(links, arm.Linked{Action: ActionJoinPrivateDNSZone, Scope: z.String()})
	}
	if err := req.AuthorizeLinked(ctx, links...); err != nil {
		return nil, err
	}
	peID := id.Parent()
	status := http.StatusOK
	var out store.Resource
	err := p.st.Update(ctx, func(tx store.Tx) error {
		var pe PrivateEndpoint
		if _, err := arm.Load(ctx, tx, peID, &pe); err != nil {
			return err
		}
		cur, err := req.Existing(ctx, tx, id.Key())
		if err != nil {
			return err
		}
		if cur == nil {
			status = http.StatusCreated
			others, err := tx.List(ctx, store.ListOptions{Parent: peID.Key(), Type: resource.TypeDNSZoneGroup})
			if err != nil {
				return err
			}
			if len(others) > 0 {
				return resource.Errorf(resource.Invalid, "InvalidPrivateDnsZoneGroup",
					"Private endpoint '%s' already has the private DNS zone group '%s'; a private endpoint has at most one. Add zones to that group instead.", peID.Name(), resource.MustParse(others[0].ID).Name())
			}
		} else {
			var old DNSZoneGroup
			if err := json.Unmarshal(cur.Body, &old); err != nil {
				return fmt.Errorf("decode %s: %w", id, err)
			}
			if err := removeGroupRecords(ctx, tx, old); err != nil {
				return err
			}
		}
		name, ip := endpointRecord(pe)
		g := DNSZoneGroup{ID: id.String(), Name: id.Name(), Type: resource.TypeDNSZoneGroup}
		g.Properties.ProvisioningState = "Succeeded"
		for i, z := range zones {
			var zone PrivateDNSZone
			if _, err := arm.Load(ctx, tx, z, &zone); resource.KindOf(err) == resource.NotFound {
				return resource.Errorf(resource.Invalid, "InvalidResourceReference",
					"Resource %s referenced by resource %s was not found. Create the private DNS zone first, or check its id.", z, id)
			} else if err != nil {
				return err
			}
			c := configs[i]
			c.ID = id.String() + "/privateDnsZoneConfigs/" + c.Name
			c.Properties.PrivateDNSZoneID = z.String()
			c.Properties.RecordSets = []RecordSetRef{}
			if name != "" && ip != "" {
				added, err := addRecordIP(ctx, tx, z, name, ip)
				if err != nil {
					return err
				}
				// The group owns, and its removal takes, only an address it added: one that was
				// there already (written by hand) is left to its writer.
				ref := RecordSetRef{RecordType: "A", RecordSetName: name, FQDN: strings.ToLower(name + "." + zone.Name),
					TTL: zoneGroupRecordTTL, IPAddresses: []string{}, ProvisioningState: "Succeeded"}
				if added {
					ref.IPAddresses = []string{ip}
				}
				c.Properties.RecordSets = append(c.Properties.RecordSets, ref)
			}
			g.Properties.PrivateDNSZoneConfigs = append(g.Properties.PrivateDNSZoneConfigs, c)
		}
		out, err = arm.Save(ctx, tx, id, g)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &arm.Response{Status: status, Body: arm.Body(out, true)}, nil
}

func (p *Provider) deleteZoneGroup(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	return deleteChild(ctx, p.st, req, func(tx store.Tx, cur store.Resource) error {
		var g DNSZoneGroup
		if err := json.Unmarshal(cur.Body, &g); err != nil {
			return fmt.Errorf("decode %s: %w", cur.ID, err)
		}
		return removeGroupRecords(ctx, tx, g)
	})
}

// removeEndpointGroups removes the records every zone group of private endpoint pe wrote (the
// groups themselves go with the endpoint).
func removeEndpointGroups(ctx context.Context, tx store.Tx, pe resource.ID) error {
	groups, err := tx.List(ctx, store.ListOptions{Parent: pe.Key(), Type: resource.TypeDNSZoneGroup})
	if err != nil {
		return fmt.Errorf("list zone groups of %s: %w", pe, err)
	}
	for _, r := range groups {
		var g DNSZoneGroup
		if err := json.Unmarshal(r.Body, &g); err != nil {
			return fmt.Errorf("decode %s: %w", r.ID, err)
		}
		if err := removeGroupRecords(ctx, tx, g); err != nil {
			return err
		}
	}
	return nil
}

// endpointRecord returns the A record a zone group writes for private endpoint pe: named after
// its target server, with the address clients reach it at (customDnsConfigs).
func endpointRecord(pe PrivateEndpoint) (name, ip string) {
	conns := append(pe.Properties.PrivateLinkServiceConnections, pe.Properties.ManualPrivateLinkServiceConnections...)
	if len(conns) > 0 {
		if t, err := resource.Parse(conns[0].Properties.PrivateLinkServiceID); err == nil {
			name = strings.ToLower(t.Name())
		}
	}
	for _, c := range pe.Properties.CustomDNSConfigs {
		if len(c.IPAddresses) > 0 {
			ip = c.IPAddresses[0]
			break
		}
	}
	return name, ip
}

// removeGroupRecords removes exactly the addresses group g wrote; a record set left empty is
// deleted. Zones or record sets already gone are fine.
func removeGroupRecords(ctx context.Context, tx store.Tx, g DNSZoneGroup) error {
	for _, c := range g.Properties.PrivateDNSZoneConfigs {
		z, err := resource.Parse(c.Properties.PrivateDNSZoneID)
		if err != nil {
			continue
		}
		for _, rs := range c.Properties.RecordSets {
			if !strings.EqualFold(rs.RecordType, "A") {
				continue
			}
			for _, ip := range rs.IPAddresses {
				if err := removeRecordIP(ctx, tx, z, rs.RecordSetName, ip); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// addRecordIP adds ip to the A record set name of zone z, creating the set (TTL 10) if needed,
// and reports whether it added it (false: the set had it already).
func addRecordIP(ctx context.Context, tx store.Tx, z resource.ID, name, ip string) (bool, error) {
	id := z.Child("A", name)
	var rs RecordSet
	_, err := arm.Load(ctx, tx, id, &rs)
	switch {
	case resource.KindOf(err) == resource.NotFound:
		ttl := int64(zoneGroupRecordTTL)
		rs = RecordSet{ID: id.String(), Name: name, Type: RecordSetType("A"),
			Properties: RecordSetProperties{TTL: &ttl, FQDN: recordFQDN(name, z.Name())}}
	case err != nil:
		return false, err
	}
	for _, r := range rs.Properties.ARecords {
		if r.IPv4Address == ip {
			return false, nil
		}
	}
	rs.Properties.ARecords = append(rs.Properties.ARecords, ARecord{IPv4Address: ip})
	_, err = arm.Save(ctx, tx, id, rs)
	return err == nil, err
}

// removeRecordIP removes ip from the A record set name of zone z, deleting the set when it is
// left empty.
func removeRecordIP(ctx context.Context, tx store.Tx, z resource.ID, name, ip string) error {
	id := z.Child("A", name)
	var rs RecordSet
	if _, err := arm.Load(ctx, tx, id, &rs); resource.KindOf(err) == resource.NotFound {
		return nil
	} else if err != nil {
		return err
	}
	var keep []ARecord
	for _, r := range rs.Properties.ARecords {
		if r.IPv4Address != ip {
			keep = append(keep, r)
		}
	}
	if len(keep) == len(rs.Properties.ARecords) {
		return nil
	}
	if len(keep) == 0 {
		return arm.Delete(ctx, tx, id)
	}
	rs.Properties.ARecords = keep
	_, err := arm.Save(ctx, tx, id, rs)
	return err
}
