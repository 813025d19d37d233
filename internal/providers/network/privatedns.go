package network

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"sort"
	"strings"

	"github.com/pglink/pglink/internal/arm"
	"github.com/pglink/pglink/internal/resource"
	"github.com/pglink/pglink/internal/store"
)

// PrivateDNSAPIVersions are the private DNS api-versions served: az 2.45 sends 2020-06-01,
// armprivatedns v1.3 2024-06-01.
var PrivateDNSAPIVersions = []string{"2018-09-01", "2020-01-01", "2020-06-01", "2024-06-01"}

// RecordTypes are the record set types of a private DNS zone, as Azure spells them.
var RecordTypes = []string{"A", "AAAA", "CNAME", "MX", "PTR", "SOA", "SRV", "TXT"}

// Actions that private DNS requests perform on linked resources.
const (
	// ActionJoinVirtualNetwork is what linking a zone to a virtual network needs on it.
	ActionJoinVirtualNetwork = "Microsoft.Network/virtualNetworks/join/action"
	// ActionJoinPrivateDNSZone is what a private DNS zone group needs on each of its zones.
	ActionJoinPrivateDNSZone = "Microsoft.Network/privateDnsZones/join/action"
)

// Private DNS limits, Azure's.
const (
	maxRecordSetsPerZone              = 25000
	maxLinksPerZone                   = 1000
	maxRegistrationLinksPerZone       = 100
	maxRecordsPerSet                  = 20 // pglink's bound on records of one set
	zoneGroupRecordTTL                = 10 // the TTL Azure gives the A records of zone groups
	defaultRecordSetTTL         int64 = 3600
)

// RecordSetType returns the ARM type of record sets of rtype ("A" →
// "Microsoft.Network/privateDnsZones/A").
func RecordSetType(rtype string) string { return resource.TypePrivateDNSZone + "/" + rtype }

// PrivateDNSZone is a private DNS zone as stored; the counts are filled when served.
type PrivateDNSZone struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Type       string            `json:"type"`
	Location   string            `json:"location"`
	Tags       map[string]string `json:"tags,omitempty"`
	Properties struct {
		MaxNumberOfRecordSets                          int64  `json:"maxNumberOfRecordSets"`
		NumberOfRecordSets                             int64  `json:"numberOfRecordSets"`
		MaxNumberOfVirtualNetworkLinks                 int64  `json:"maxNumberOfVirtualNetworkLinks"`
		NumberOfVirtualNetworkLinks                    int64  `json:"numberOfVirtualNetworkLinks"`
		MaxNumberOfVirtualNetworkLinksWithRegistration int64  `json:"maxNumberOfVirtualNetworkLinksWithRegistration"`
		NumberOfVirtualNetworkLinksWithRegistration    int64  `json:"numberOfVirtualNetworkLinksWithRegistration"`
		ProvisioningState                              string `json:"provisioningState"`
		InternalID                                     string `json:"internalId"`
	} `json:"properties"`
}

// VirtualNetworkLink links a private DNS zone to a virtual network, whose resolver then
// answers from the zone.
type VirtualNetworkLink struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Type       string            `json:"type"`
	Location   string            `json:"location"`
	Tags       map[string]string `json:"tags,omitempty"`
	Properties struct {
		VirtualNetwork          *SubResource `json:"virtualNetwork"`
		RegistrationEnabled     bool         `json:"registrationEnabled"`
		ResolutionPolicy        string       `json:"resolutionPolicy,omitempty"`
		VirtualNetworkLinkState string       `json:"virtualNetworkLinkState"`
		ProvisioningState       string       `json:"provisioningState"`
	} `json:"properties"`
}

// RecordSet is a record set of a private DNS zone. Only the field of its own type is kept.
type RecordSet struct {
	ID         string              `json:"id"`
	Name       string              `json:"name"`
	Type       string              `json:"type"`
	Properties RecordSetProperties `json:"properties"`
}

// RecordSetProperties are a record set's properties.
type RecordSetProperties struct {
	Metadata         map[string]string `json:"metadata,omitempty"`
	TTL              *int64            `json:"ttl,omitempty"`
	FQDN             string            `json:"fqdn"`
	IsAutoRegistered bool              `json:"isAutoRegistered"`
	ARecords         []ARecord         `json:"aRecords,omitempty"`
	AAAARecords      []AAAARecord      `json:"aaaaRecords,omitempty"`
	CNAMERecord      *CNAMERecord      `json:"cnameRecord,omitempty"`
	MXRecords        []MXRecord        `json:"mxRecords,omitempty"`
	PTRRecords       []PTRRecord       `json:"ptrRecords,omitempty"`
	SOARecord        *SOARecord        `json:"soaRecord,omitempty"`
	SRVRecords       []SRVRecord       `json:"srvRecords,omitempty"`
	TXTRecords       []TXTRecord       `json:"txtRecords,omitempty"`
}

// Record shapes, as Azure spells them.
type (
	ARecord struct {
		IPv4Address string `json:"ipv4Address"`
	}
	AAAARecord struct {
		IPv6Address string `json:"ipv6Address"`
	}
	CNAMERecord struct {
		CNAME string `json:"cname"`
	}
	PTRRecord struct {
		PTRDName string `json:"ptrdname"`
	}
	TXTRecord struct {
		Value []string `json:"value"`
	}
	MXRecord struct {
		Preference int    `json:"preference"`
		Exchange   string `json:"exchange"`
	}
	SRVRecord struct {
		Priority int    `json:"priority"`
		Weight   int    `json:"weight"`
		Port     int    `json:"port"`
		Target   string `json:"target"`
	}
	SOARecord struct {
		Host         string `json:"host"`
		Email        string `json:"email"`
		SerialNumber int64  `json:"serialNumber"`
		RefreshTime  int64  `json:"refreshTime"`
		RetryTime    int64  `json:"retryTime"`
		ExpireTime   int64  `json:"expireTime"`
		MinimumTTL   int64  `json:"minimumTtl"`
	}
)

// privateDNSTypes are the private DNS types the provider serves.
func (p *Provider) privateDNSTypes() []arm.Type {
	types := []arm.Type{
		{Name: resource.TypePrivateDNSZone, APIVersions: PrivateDNSAPIVersions, Handler: p.serveZone},
		{Name: resource.TypeVirtualNetworkLink, APIVersions: PrivateDNSAPIVersions, Handler: p.serveLink},
		{Name: RecordSetType("ALL"), APIVersions: PrivateDNSAPIVersions, Handler: p.serveAllRecordSets},
		{Name: resource.TypeDNSZoneGroup, APIVersions: APIVersions, Handler: p.serveZoneGroup},
	}
	for _, t := range RecordTypes {
		types = append(types, arm.Type{Name: RecordSetType(t), APIVersions: PrivateDNSAPIVersions, Handler: p.serveRecordSet})
	}
	return types
}

// checkZoneName applies Azure's rule for private DNS zone names: a DNS name of at least two
// labels, 253 characters at most.
func checkZoneName(name string) error {
	bad := func() error {
		return resource.Errorf(resource.Invalid, "InvalidResourceName",
			"The private DNS zone name '%s' is not valid: use a DNS name of at least two labels (for example privatelink.postgres.database.azure.com), each of 1 to 63 letters, digits, '-' or '_', 253 characters in all.", name)
	}
	if len(name) > 253 || strings.Count(name, ".") < 1 || !validLabels(name, false) {
		return bad()
	}
	return nil
}

// validLabels reports whether name is dot-separated labels of 1-63 letters, digits, '-' or '_';
// with wildcard, the leftmost label may also be "*" (a wildcard record set, as in Azure).
func validLabels(name string, wildcard bool) bool {
	if wildcard && (name == "*" || strings.HasPrefix(name, "*.")) {
		if name = strings.TrimPrefix(strings.TrimPrefix(name, "*"), "."); name == "" {
			return true
		}
	}
	for _, l := range strings.Split(name, ".") {
		if len(l) == 0 || len(l) > 63 {
			return false
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

func checkGlobal(loc, what string) error {
	if loc != "" && !strings.EqualFold(loc, "global") {
		return resource.Errorf(resource.Invalid, "InvalidLocation",
			"The location '%s' is not valid for a %s: the only valid location is 'global'.", loc, what)
	}
	return nil
}

// renderZone serves a zone with its counts, read from tx.
func renderZone(ctx context.Context, tx store.Tx, r store.Resource) (json.RawMessage, error) {
	var z PrivateDNSZone
	if err := json.Unmarshal(r.Body, &z); err != nil {
		return nil, fmt.Errorf("decode %s: %w", r.ID, err)
	}
	children, err := tx.List(ctx, store.ListOptions{Parent: r.Key})
	if err != nil {
		return nil, fmt.Errorf("list below %s: %w", r.ID, err)
	}
	for _, c := range children {
		if strings.EqualFold(c.Type, resource.TypeVirtualNetworkLink) {
			z.Properties.NumberOfVirtualNetworkLinks++
			var l VirtualNetworkLink
			if json.Unmarshal(c.Body, &l) == nil && l.Properties.RegistrationEnabled {
				z.Properties.NumberOfVirtualNetworkLinksWithRegistration++
			}
		} else if isRecordSetType(c.Type) {
			z.Properties.NumberOfRecordSets++
		}
	}
	b, err := json.Marshal(z)
	if err != nil {
		return nil, err
	}
	return arm.Body(store.Resource{Body: b, ETag: r.ETag}, true), nil
}

func isRecordSetType(typ string) bool {
	prefix := resource.TypePrivateDNSZone + "/"
	if len(typ) <= len(prefix) || !strings.EqualFold(typ[:len(prefix)], prefix) {
		return false
	}
	rest := strings.ToUpper(typ[len(prefix):])
	for _, t := range RecordTypes {
		if rest == t {
			return true
		}
	}
	return false
}

func (p *Provider) serveZone(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	t := req.Target
	render := func(tx store.Tx, r store.Resource) (any, error) { return renderZone(ctx, tx, r) }
	if t.Collection {
		if req.Method != http.MethodGet {
			return nil, arm.MethodNotAllowed(req)
		}
		return listTopView(ctx, p.st, req, resource.TypePrivateDNSZone, render)
	}
	switch req.Method {
	case http.MethodGet:
		return getView(ctx, p.st, t.ID, render)
	case http.MethodPut, http.MethodPatch:
		return p.putZone(ctx, req)
	case http.MethodDelete:
		return p.deleteZone(ctx, req)
	}
	return nil, arm.MethodNotAllowed(req)
}

func (p *Provider) putZone(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	id := req.Target.ID
	if err := checkZoneName(id.Name()); err != nil {
		return nil, err
	}
	var in struct {
		Location string             `json:"location"`
		Tags     *map[string]string `json:"tags"`
	}
	if err := req.Decode(&in); err != nil {
		return nil, err
	}
	if err := checkGlobal(in.Location, "private DNS zone"); err != nil {
		return nil, err
	}
	if req.Method == http.MethodPut && in.Location == "" {
		return nil, resource.Errorf(resource.Invalid, "LocationRequired", "The location property is required for this definition; private DNS zones use 'global'.")
	}
	status := http.StatusOK
	var out json.RawMessage
	err := p.st.Update(ctx, func(tx store.Tx) error {
		cur, err := req.Existing(ctx, tx, id.Key())
		if err != nil {
			return err
		}
		var z PrivateDNSZone
		switch {
		case cur != nil:
			if err := json.Unmarshal(cur.Body, &z); err != nil {
				return fmt.Errorf("decode %s: %w", id, err)
			}
			if in.Tags != nil || req.Method == http.MethodPut {
				z.Tags = nil
				if in.Tags != nil {
					z.Tags = *in.Tags
				}
			}
		case req.Method == http.MethodPatch:
			return resource.NotFoundError(id)
		default:
			status = http.StatusCreated
			z = PrivateDNSZone{ID: id.String(), Name: id.Name(), Type: resource.TypePrivateDNSZone, Location: "global"}
			if in.Tags != nil {
				z.Tags = *in.Tags
			}
			z.Properties.MaxNumberOfRecordSets = maxRecordSetsPerZone
			z.Properties.MaxNumberOfVirtualNetworkLinks = maxLinksPerZone
			z.Properties.MaxNumberOfVirtualNetworkLinksWithRegistration = maxRegistrationLinksPerZone
			z.Properties.ProvisioningState = "Succeeded"
			z.Properties.InternalID = resource.NewGUID()
			soaID := id.Child("SOA", "@")
			ttl := defaultRecordSetTTL
			soa := RecordSet{ID: soaID.String(), Name: "@", Type: RecordSetType("SOA"), Properties: RecordSetProperties{
				TTL: &ttl, FQDN: strings.ToLower(id.Name()) + ".",
				SOARecord: &SOARecord{Host: "azureprivatedns.net", Email: "azureprivatedns-host.microsoft.com", SerialNumber: 1,
					RefreshTime: 3600, RetryTime: 300, ExpireTime: 2419200, MinimumTTL: 10},
			}}
			if _, err := arm.Save(ctx, tx, soaID, soa); err != nil {
				return err
			}
		}
		r, err := arm.Save(ctx, tx, id, z)
		if err != nil {
			return err
		}
		out, err = renderZone(ctx, tx, r)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &arm.Response{Status: status, Body: out}, nil
}

func (p *Provider) deleteZone(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	id := req.Target.ID
	gone := false
	err := p.st.Update(ctx, func(tx store.Tx) error {
		cur, err := req.Existing(ctx, tx, id.Key())
		if err != nil {
			return err
		}
		if cur == nil {
			gone = true
			return nil
		}
		links, err := tx.List(ctx, store.ListOptions{Parent: id.Key(), Type: resource.TypeVirtualNetworkLink})
		if err != nil {
			return err
		}
		if len(links) > 0 {
			return resource.Errorf(resource.Conflict, "Conflict",
				"The private DNS zone '%s' has %d virtual network link(s) and cannot be deleted. Delete its virtual network links first.", id.Name(), len(links))
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

// RemoveZone deletes the private DNS zone r, its links and its record sets inside tx, for a
// resource group delete. A missing zone is not an error.
func (p *Provider) RemoveZone(ctx context.Context, tx store.Tx, r store.Resource) error {
	id, err := resource.Parse(r.ID)
	if err != nil {
		return fmt.Errorf("parse %s: %w", r.ID, err)
	}
	return arm.Delete(ctx, tx, id)
}

func (p *Provider) serveLink(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	if req.Method == http.MethodPatch && !req.Target.Collection {
		return p.patchLink(ctx, req)
	}
	return arm.Child(ctx, p.st, req, true, p.putLink, p.deleteLink)
}

// patchLink updates a link's tags and registrationEnabled (the SDK's BeginUpdate); its virtual
// network cannot change.
func (p *Provider) patchLink(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	id := req.Target.ID
	var in struct {
		Tags       *map[string]string `json:"tags"`
		Properties struct {
			VirtualNetwork      *SubResource `json:"virtualNetwork"`
			RegistrationEnabled *bool        `json:"registrationEnabled"`
		} `json:"properties"`
	}
	if err := req.Decode(&in); err != nil {
		return nil, err
	}
	var out store.Resource
	err := p.st.Update(ctx, func(tx store.Tx) error {
		cur, err := req.Existing(ctx, tx, id.Key())
		if err != nil {
			return err
		}
		if cur == nil {
			return resource.NotFoundError(id)
		}
		var l VirtualNetworkLink
		if err := json.Unmarshal(cur.Body, &l); err != nil {
			return fmt.Errorf("decode %s: %w", id, err)
		}
		if v := in.Properties.VirtualNetwork; v != nil && v.ID != "" && !strings.EqualFold(v.ID, l.Properties.VirtualNetwork.ID) {
			return resource.Errorf(resource.Invalid, "BadRequest",
				"The virtual network of link '%s' cannot change. Delete the link and create a new one.", id.Name())
		}
		if in.Tags != nil {
			l.Tags = *in.Tags
		}
		if r := in.Properties.RegistrationEnabled; r != nil && *r != l.Properties.RegistrationEnabled {
			if *r {
				return resource.Errorf(resource.Invalid, "BadRequest",
					"Enabling registration on link '%s' is done with a PUT of the whole link, which checks the network's other links.", id.Name())
			}
			l.Properties.RegistrationEnabled = false
		}
		out, err = arm.Save(ctx, tx, id, l)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &arm.Response{Body: arm.Body(out, true)}, nil
}

func (p *Provider) putLink(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	id := req.Target.ID
	if err := resource.VirtualNetworkLinkName.Check(id.Name()); err != nil {
		return nil, err
	}
	var in VirtualNetworkLink
	if err := req.Decode(&in); err != nil {
		return nil, err
	}
	if err := checkGlobal(in.Location, "virtual network link"); err != nil {
		return nil, err
	}
	if in.Properties.VirtualNetwork == nil || in.Properties.VirtualNetwork.ID == "" {
		return nil, resource.InvalidParameter("properties.virtualNetwork.id", "A virtual network link needs properties.virtualNetwork.id, the virtual network to link.")
	}
	vnetID, err := resource.Parse(in.Properties.VirtualNetwork.ID)
	if err != nil || !vnetID.TypeIs(resource.TypeVirtualNetwork) {
		return nil, resource.InvalidParameter("properties.virtualNetwork.id", "'%s' is not a virtual network resource id.", in.Properties.VirtualNetwork.ID)
	}
	if err := req.AuthorizeLinked(ctx, arm.Linked{Action: ActionJoinVirtualNetwork, Scope: vnetID.String()}); err != nil {
		return nil, err
	}
	zoneID := id.Parent()
	status := http.StatusOK
	var out store.Resource
	err = p.st.Update(ctx, func(tx store.Tx) error {
		if _, err := arm.Load(ctx, tx, zoneID, nil); err != nil {
			return err
		}
		cur, err := req.Existing(ctx, tx, id.Key())
		if err != nil {
			return err
		}
		if cur == nil {
			status = http.StatusCreated
		} else {
			var old VirtualNetworkLink
			if err := json.Unmarshal(cur.Body, &old); err != nil {
				return fmt.Errorf("decode %s: %w", id, err)
			}
			if !strings.EqualFold(old.Properties.VirtualNetwork.ID, vnetID.String()) {
				return resource.Errorf(resource.Invalid, "BadRequest",
					"The virtual network of link '%s' cannot change. Delete the link and create a new one.", id.Name())
			}
		}
		var vnet VirtualNetwork
		if _, err := arm.Load(ctx, tx, vnetID, &vnet); resource.KindOf(err) == resource.NotFound {
			return resource.Errorf(resource.Invalid, "BadRequest",
				"Virtual network resource '%s' was not found. Create the virtual network first, or check its id.", vnetID)
		} else if err != nil {
			return err
		}
		all, err := tx.List(ctx, store.ListOptions{Type: resource.TypeVirtualNetworkLink})
		if err != nil {
			return err
		}
		inZone, withRegistration := 0, 0
		for _, r := range all {
			if r.Key == id.Key() {
				continue
			}
			var l VirtualNetworkLink
			if json.Unmarshal(r.Body, &l) != nil || l.Properties.VirtualNetwork == nil {
				continue
			}
			other, err := resource.Parse(r.ID)
			if err != nil {
				continue
			}
			if r.Parent == zoneID.Key() {
				inZone++
				if l.Properties.RegistrationEnabled {
					withRegistration++
				}
			}
			if !strings.EqualFold(l.Properties.VirtualNetwork.ID, vnetID.String()) {
				continue
			}
			if strings.EqualFold(other.Parent().Name(), zoneID.Name()) {
				return resource.Errorf(resource.Conflict, "Conflict",
					"A virtual network cannot be linked to multiple zones with overlapping namespaces. You tried to link virtual network with '%s' and '%s' zones. Delete link '%s' first.",
					other.Parent().Name(), zoneID.Name(), other)
			}
			if in.Properties.RegistrationEnabled && l.Properties.RegistrationEnabled {
				return resource.Errorf(resource.Conflict, "Conflict",
					"Virtual network '%s' already has a registration-enabled link (%s); a virtual network can have only one.", vnet.Name, other)
			}
		}
		if cur == nil && inZone >= maxLinksPerZone {
			return resource.Errorf(resource.Conflict, "QuotaExceeded",
				"Private DNS zone '%s' already has %d virtual network links, the most allowed.", zoneID.Name(), maxLinksPerZone)
		}
		if in.Properties.RegistrationEnabled && withRegistration >= maxRegistrationLinksPerZone {
			return resource.Errorf(resource.Conflict, "QuotaExceeded",
				"Private DNS zone '%s' already has %d registration-enabled virtual network links, the most allowed.", zoneID.Name(), maxRegistrationLinksPerZone)
		}
		l := VirtualNetworkLink{ID: id.String(), Name: id.Name(), Type: resource.TypeVirtualNetworkLink, Location: "global", Tags: in.Tags}
		l.Properties.VirtualNetwork = &SubResource{ID: vnetID.String()}
		l.Properties.RegistrationEnabled = in.Properties.RegistrationEnabled
		l.Properties.ResolutionPolicy = in.Properties.ResolutionPolicy
		l.Properties.VirtualNetworkLinkState = "Completed"
		l.Properties.ProvisioningState = "Succeeded"
		out, err = arm.Save(ctx, tx, id, l)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &arm.Response{Status: status, Body: arm.Body(out, true)}, nil
}

func (p *Provider) deleteLink(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	return deleteChild(ctx, p.st, req, nil)
}

// deleteChild deletes what req addresses after applying its preconditions and check (which
// may refuse); 204 if it was not there.
func deleteChild(ctx context.Context, st store.Store, req *arm.Request, check func(tx store.Tx, cur store.Resource) error) (*arm.Response, error) {
	id := req.Target.ID
	gone := false
	err := st.Update(ctx, func(tx store.Tx) error {
		cur, err := req.Existing(ctx, tx, id.Key())
		if err != nil {
			return err
		}
		if cur == nil {
			gone = true
			return nil
		}
		if check != nil {
			if err := check(tx, *cur); err != nil {
				return err
			}
		}
		return arm.Delete(ctx, tx, resource.MustParse(cur.ID))
	})
	if err != nil {
		return nil, err
	}
	if gone {
		return &arm.Response{Status: http.StatusNoContent}, nil
	}
	return &arm.Response{}, nil
}

// recordSetID returns the canonical ID of the record set a target addresses: the record type
// in Azure's spelling (az sends "a").
func recordSetID(id resource.ID) (resource.ID, string) {
	c := id
	c.Types = append([]string(nil), id.Types...)
	rtype := strings.ToUpper(c.Types[len(c.Types)-1])
	c.Types[len(c.Types)-1] = rtype
	return c, rtype
}

func (p *Provider) serveAllRecordSets(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	if !req.Target.Collection || req.Method != http.MethodGet {
		return nil, arm.MethodNotAllowed(req)
	}
	return p.listRecordSets(ctx, req, "")
}

// listRecordSets lists the record sets of the zone req addresses, of type rtype ("" for all).
func (p *Provider) listRecordSets(ctx context.Context, req *arm.Request, rtype string) (*arm.Response, error) {
	zoneID := req.Target.ID
	var sets []store.Resource
	err := p.st.View(ctx, func(tx store.Tx) error {
		if _, err := arm.Load(ctx, tx, zoneID, nil); err != nil {
			return err
		}
		children, err := tx.List(ctx, store.ListOptions{Parent: zoneID.Key()})
		if err != nil {
			return err
		}
		for _, c := range children {
			if isRecordSetType(c.Type) && (rtype == "" || strings.EqualFold(c.Type, RecordSetType(rtype))) {
				sets = append(sets, c)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(sets, func(i, j int) bool { return sets[i].Key < sets[j].Key })
	keys := make([]string, len(sets))
	for i, s := range sets {
		keys[i] = s.Key
	}
	return req.PageKeys(keys, func(i int) (any, error) { return arm.Body(sets[i], true), nil })
}

func (p *Provider) serveRecordSet(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	t := req.Target
	if t.Collection {
		if req.Method != http.MethodGet {
			return nil, arm.MethodNotAllowed(req)
		}
		return p.listRecordSets(ctx, req, strings.ToUpper(t.Last))
	}
	id, rtype := recordSetID(t.ID)
	switch req.Method {
	case http.MethodGet:
		return get(ctx, p.st, id, true)
	case http.MethodPut, http.MethodPatch:
		return p.putRecordSet(ctx, req, id, rtype)
	case http.MethodDelete:
		req.Target.ID = id
		return deleteChild(ctx, p.st, req, func(tx store.Tx, cur store.Resource) error {
			if rtype == "SOA" {
				return resource.Errorf(resource.Invalid, "BadRequest", "The SOA record set of a zone cannot be deleted; it goes with the zone.")
			}
			return nil
		})
	}
	return nil, arm.MethodNotAllowed(req)
}

// checkRecordSetName applies the rule for relative record set names: "@" for the apex, or
// dot-separated labels, the leftmost of which may be "*".
func checkRecordSetName(name, zone string) error {
	if name == "@" {
		return nil
	}
	if !validLabels(name, true) || len(name)+1+len(zone) > 253 {
		return resource.Errorf(resource.Invalid, "InvalidResourceName",
			"The record set name '%s' is not valid: use '@' for the zone apex, or labels of 1 to 63 letters, digits, '-' or '_' (the leftmost may be '*'), with the zone name 253 characters at most.", name)
	}
	return nil
}

func recordFQDN(name, zone string) string {
	if name == "@" {
		return strings.ToLower(zone) + "."
	}
	return strings.ToLower(name+"."+zone) + "."
}

func (p *Provider) putRecordSet(ctx context.Context, req *arm.Request, id resource.ID, rtype string) (*arm.Response, error) {
	zoneID := id.Parent()
	if err := checkRecordSetName(id.Name(), zoneID.Name()); err != nil {
		return nil, err
	}
	var in RecordSet
	if err := req.Decode(&in); err != nil {
		return nil, err
	}
	status := http.StatusOK
	var out store.Resource
	err := p.st.Update(ctx, func(tx store.Tx) error {
		if _, err := arm.Load(ctx, tx, zoneID, nil); err != nil {
			return err
		}
		cur, err := req.Existing(ctx, tx, id.Key())
		if err != nil {
			return err
		}
		var old RecordSet
		if cur != nil {
			if err := json.Unmarshal(cur.Body, &old); err != nil {
				return fmt.Errorf("decode %s: %w", id, err)
			}
		}
		if req.Method == http.MethodPatch {
			if cur == nil {
				return resource.NotFoundError(id)
			}
			in = mergeRecordSet(old, in, rtype)
		}
		if rtype == "SOA" && cur == nil {
			return resource.Errorf(resource.Invalid, "BadRequest", "An SOA record set is created with its zone, at '@'; it can be updated, not created.")
		}
		if cur == nil {
			status = http.StatusCreated
			children, err := tx.List(ctx, store.ListOptions{Parent: zoneID.Key()})
			if err != nil {
				return err
			}
			n := 0
			for _, c := range children {
				if isRecordSetType(c.Type) {
					n++
				}
			}
			if n >= maxRecordSetsPerZone {
				return resource.Errorf(resource.Conflict, "QuotaExceeded",
					"Private DNS zone '%s' already has %d record sets, the most allowed.", zoneID.Name(), maxRecordSetsPerZone)
			}
		}
		rs, err := normRecordSet(in, rtype, id, zoneID.Name())
		if err != nil {
			return err
		}
		if rtype == "SOA" && old.Properties.SOARecord != nil && rs.Properties.SOARecord != nil {
			rs.Properties.SOARecord.Host = old.Properties.SOARecord.Host // Azure keeps the host
		}
		out, err = arm.Save(ctx, tx, id, rs)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &arm.Response{Status: status, Body: arm.Body(out, true)}, nil
}

// mergeRecordSet applies a PATCH: the fields given replace the old ones.
func mergeRecordSet(old, in RecordSet, rtype string) RecordSet {
	out := old
	if in.Properties.TTL != nil {
		out.Properties.TTL = in.Properties.TTL
	}
	if in.Properties.Metadata != nil {
		out.Properties.Metadata = in.Properties.Metadata
	}
	o, n := &out.Properties, in.Properties
	switch rtype {
	case "A":
		if n.ARecords != nil {
			o.ARecords = n.ARecords
		}
	case "AAAA":
		if n.AAAARecords != nil {
			o.AAAARecords = n.AAAARecords
		}
	case "CNAME":
		if n.CNAMERecord != nil {
			o.CNAMERecord = n.CNAMERecord
		}
	case "MX":
		if n.MXRecords != nil {
			o.MXRecords = n.MXRecords
		}
	case "PTR":
		if n.PTRRecords != nil {
			o.PTRRecords = n.PTRRecords
		}
	case "SOA":
		if n.SOARecord != nil {
			o.SOARecord = n.SOARecord
		}
	case "SRV":
		if n.SRVRecords != nil {
			o.SRVRecords = n.SRVRecords
		}
	case "TXT":
		if n.TXTRecords != nil {
			o.TXTRecords = n.TXTRecords
		}
	}
	return out
}

// normRecordSet validates a record set of type rtype and returns it as stored: only its own
// type's records, a TTL (3600 unless given), its fqdn.
func normRecordSet(in RecordSet, rtype string, id resource.ID, zone string) (RecordSet, error) {
	pr := in.Properties
	out := RecordSet{ID: id.String(), Name: id.Name(), Type: RecordSetType(rtype)}
	o := &out.Properties
	o.Metadata = pr.Metadata
	ttl := defaultRecordSetTTL
	if pr.TTL != nil {
		ttl = *pr.TTL
	}
	if ttl < 0 || ttl > 2147483647 {
		return out, resource.InvalidParameter("properties.ttl", "The TTL %d is out of range: use 0 to 2147483647 seconds.", ttl)
	}
	o.TTL = &ttl
	o.FQDN = recordFQDN(id.Name(), zone)
	bad := func(format string, args ...any) error {
		return resource.Errorf(resource.Invalid, "BadRequest", format, args...)
	}
	host := func(what, v string) error {
		if v == "" || len(v) > 253 || !validLabels(strings.TrimSuffix(v, "."), false) {
			return bad("The %s '%s' of record set '%s' is not a valid DNS name.", what, v, id.Name())
		}
		return nil
	}
	count := 0
	switch rtype {
	case "A":
		for _, r := range pr.ARecords {
			if a, err := netip.ParseAddr(r.IPv4Address); err != nil || !a.Is4() {
				return out, bad("The IPv4 address '%s' of record set '%s' is not valid.", r.IPv4Address, id.Name())
			}
		}
		o.ARecords, count = pr.ARecords, len(pr.ARecords)
	case "AAAA":
		for _, r := range pr.AAAARecords {
			if a, err := netip.ParseAddr(r.IPv6Address); err != nil || !a.Is6() || a.Is4In6() {
				return out, bad("The IPv6 address '%s' of record set '%s' is not valid.", r.IPv6Address, id.Name())
			}
		}
		o.AAAARecords, count = pr.AAAARecords, len(pr.AAAARecords)
	case "CNAME":
		if id.Name() == "@" {
			return out, bad("A CNAME record set cannot be at the zone apex '@'.")
		}
		if pr.CNAMERecord != nil {
			if err := host("alias", pr.CNAMERecord.CNAME); err != nil {
				return out, err
			}
		}
		o.CNAMERecord = pr.CNAMERecord
	case "MX":
		for _, r := range pr.MXRecords {
			if err := host("exchange", r.Exchange); err != nil {
				return out, err
			}
			if r.Preference < 0 || r.Preference > 65535 {
				return out, bad("The MX preference %d of record set '%s' is out of range 0-65535.", r.Preference, id.Name())
			}
		}
		o.MXRecords, count = pr.MXRecords, len(pr.MXRecords)
	case "PTR":
		for _, r := range pr.PTRRecords {
			if err := host("ptrdname", r.PTRDName); err != nil {
				return out, err
			}
		}
		o.PTRRecords, count = pr.PTRRecords, len(pr.PTRRecords)
	case "SOA":
		if id.Name() != "@" {
			return out, bad("An SOA record set exists only at the zone apex '@'.")
		}
		if pr.SOARecord == nil {
			return out, bad("An SOA record set needs properties.soaRecord.")
		}
		o.SOARecord = pr.SOARecord
	case "SRV":
		for _, r := range pr.SRVRecords {
			if err := host("target", r.Target); err != nil {
				return out, err
			}
			for _, v := range []int{r.Priority, r.Weight, r.Port} {
				if v < 0 || v > 65535 {
					return out, bad("The SRV record of record set '%s' has a priority, weight or port out of range 0-65535.", id.Name())
				}
			}
		}
		o.SRVRecords, count = pr.SRVRecords, len(pr.SRVRecords)
	case "TXT":
		for _, r := range pr.TXTRecords {
			for _, v := range r.Value {
				if len(v) > 255 {
					return out, bad("A TXT string of record set '%s' has %d characters; at most 255 are allowed per string.", id.Name(), len(v))
				}
			}
		}
		o.TXTRecords, count = pr.TXTRecords, len(pr.TXTRecords)
	}
	if count > maxRecordsPerSet {
		return out, bad("Record set '%s' has %d records; at most %d are allowed.", id.Name(), count, maxRecordsPerSet)
	}
	return out, nil
}
