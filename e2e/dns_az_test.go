package e2e

import (
	"strings"
	"testing"
)

// azRecordSet is the part of az's record set output the test reads.
type azRecordSet struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	TTL      int    `json:"ttl"`
	FQDN     string `json:"fqdn"`
	ARecords []struct {
		IPv4Address string `json:"ipv4Address"`
	} `json:"aRecords"`
}

func (r azRecordSet) addresses() string {
	var out []string
	for _, a := range r.ARecords {
		out = append(out, a.IPv4Address)
	}
	return strings.Join(out, ",")
}

// TestDNSAzCLI drives private DNS with Debian's az 2.45, unchanged: zone create (If-None-Match:
// *, so a second create fails), link vnet create, record-set a add-record / list /
// remove-record, zone list and delete.
func TestDNSAzCLI(t *testing.T) {
	requireTool(t, "az") // .ci/install-deps installs it
	in := start(t, nil)
	c := newAzCLI(t, in)
	sub := in.boot.SubscriptionID
	rgID := "/subscriptions/" + sub + "/resourceGroups/rg1"
	vnetID := rgID + "/providers/Microsoft.Network/virtualNetworks/app-vnet"
	c.az(t, "group", "create", "-n", "rg1", "-l", "eastus")
	// az 2.45's `network vnet` commands cannot load on Debian (see reference/arm-api.md 3.2):
	// the network is made with az rest.
	c.az(t, "rest", "--method", "put", "--url", vnetID+"?api-version=2022-01-01", "--body",
		`{"location":"eastus","properties":{"addressSpace":{"addressPrefixes":["10.0.0.0/16"]}}}`)

	// az 2.45's private DNS models flatten properties into the top level of its output.
	var zone struct {
		Name                        string `json:"name"`
		Location                    string `json:"location"`
		Etag                        string `json:"etag"`
		NumberOfRecordSets          int    `json:"numberOfRecordSets"`
		NumberOfVirtualNetworkLinks int    `json:"numberOfVirtualNetworkLinks"`
		ProvisioningState           string `json:"provisioningState"`
	}
	z := privatelinkZone
	decode(t, c.az(t, "network", "private-dns", "zone", "create", "-g", "rg1", "-n", z), &zone)
	if zone.Name != z || zone.Location != "global" || zone.Etag == "" || zone.NumberOfRecordSets != 1 || zone.ProvisioningState != "Succeeded" {
		t.Errorf("az network private-dns zone create = %+v; want %s, global, an etag, 1 record set (the SOA), Succeeded", zone, z)
	}
	// az sends If-None-Match: *, so creating it again fails.
	if msg := c.azFail(t, "network", "private-dns", "zone", "create", "-g", "rg1", "-n", z); !strings.Contains(msg, "Precondition") && !strings.Contains(msg, "already exists") {
		t.Errorf("second zone create: stderr %q; want a precondition failure", msg)
	}

	var link struct {
		Name           string `json:"name"`
		VirtualNetwork struct {
			ID string `json:"id"`
		} `json:"virtualNetwork"`
		RegistrationEnabled     bool   `json:"registrationEnabled"`
		VirtualNetworkLinkState string `json:"virtualNetworkLinkState"`
		ProvisioningState       string `json:"provisioningState"`
	}
	decode(t, c.az(t, "network", "private-dns", "link", "vnet", "create", "-g", "rg1", "-z", z, "-n", "app-link", "-v", vnetID, "-e", "false"), &link)
	if link.Name != "app-link" || !strings.EqualFold(link.VirtualNetwork.ID, vnetID) || link.RegistrationEnabled ||
		link.VirtualNetworkLinkState != "Completed" || link.ProvisioningState != "Succeeded" {
		t.Errorf("az network private-dns link vnet create = %+v; want app-link to %s, Completed, Succeeded", link, vnetID)
	}
	// A virtual network that does not exist cannot be linked.
	c.azFail(t, "network", "private-dns", "link", "vnet", "create", "-g", "rg1", "-z", z, "-n", "nowhere", "-v", rgID+"/providers/Microsoft.Network/virtualNetworks/nowhere", "-e", "false")

	var rs azRecordSet
	decode(t, c.az(t, "network", "private-dns", "record-set", "a", "add-record", "-g", "rg1", "-z", z, "-n", "orders-db", "-a", "10.0.1.4"), &rs)
	if rs.Name != "orders-db" || rs.TTL != 3600 || rs.addresses() != "10.0.1.4" || rs.FQDN != "orders-db."+z+"." {
		t.Errorf("add-record = %+v; want orders-db, TTL 3600, 10.0.1.4, fqdn orders-db.%s.", rs, z)
	}
	decode(t, c.az(t, "network", "private-dns", "record-set", "a", "add-record", "-g", "rg1", "-z", z, "-n", "orders-db", "-a", "10.0.1.5"), &rs)
	if rs.addresses() != "10.0.1.4,10.0.1.5" {
		t.Errorf("second add-record: addresses %s; want 10.0.1.4,10.0.1.5", rs.addresses())
	}
	decode(t, c.az(t, "network", "private-dns", "record-set", "a", "add-record", "-g", "rg1", "-z", z, "-n", "@", "-a", "10.0.1.6"), &rs)
	var list []azRecordSet
	decode(t, c.az(t, "network", "private-dns", "record-set", "a", "list", "-g", "rg1", "-z", z), &list)
	if len(list) != 2 || list[0].Name != "@" || list[1].Name != "orders-db" || list[1].addresses() != "10.0.1.4,10.0.1.5" {
		t.Errorf("record-set a list = %+v; want @ and orders-db (10.0.1.4,10.0.1.5)", list)
	}
	c.az(t, "network", "private-dns", "record-set", "a", "remove-record", "-g", "rg1", "-z", z, "-n", "orders-db", "-a", "10.0.1.4")
	decode(t, c.az(t, "network", "private-dns", "record-set", "a", "show", "-g", "rg1", "-z", z, "-n", "orders-db"), &rs)
	if rs.addresses() != "10.0.1.5" {
		t.Errorf("after remove-record: addresses %s; want 10.0.1.5", rs.addresses())
	}
	// Removing the last record deletes the set.
	c.az(t, "network", "private-dns", "record-set", "a", "remove-record", "-g", "rg1", "-z", z, "-n", "orders-db", "-a", "10.0.1.5")
	decode(t, c.az(t, "network", "private-dns", "record-set", "list", "-g", "rg1", "-z", z), &list)
	var names []string
	for _, r := range list {
		names = append(names, r.Type+" "+r.Name)
	}
	if got, want := strings.Join(names, ", "), "Microsoft.Network/privateDnsZones/A @, Microsoft.Network/privateDnsZones/SOA @"; got != want {
		t.Errorf("record-set list = %s; want %s", got, want)
	}

	for _, args := range [][]string{{"-g", "rg1"}, nil} {
		var zones []struct {
			Name                        string `json:"name"`
			NumberOfRecordSets          int    `json:"numberOfRecordSets"`
			NumberOfVirtualNetworkLinks int    `json:"numberOfVirtualNetworkLinks"`
		}
		decode(t, c.az(t, append([]string{"network", "private-dns", "zone", "list"}, args...)...), &zones)
		if len(zones) != 1 || zones[0].Name != z || zones[0].NumberOfRecordSets != 2 || zones[0].NumberOfVirtualNetworkLinks != 1 {
			t.Errorf("zone list %s = %+v; want %s with 2 record sets and 1 link", strings.Join(args, " "), zones, z)
		}
	}
	// A zone with links cannot be deleted; without, it can.
	c.azFail(t, "network", "private-dns", "zone", "delete", "-g", "rg1", "-n", z, "-y")
	c.az(t, "network", "private-dns", "link", "vnet", "delete", "-g", "rg1", "-z", z, "-n", "app-link", "-y")
	c.az(t, "network", "private-dns", "zone", "delete", "-g", "rg1", "-n", z, "-y")
	var zones []any
	decode(t, c.az(t, "network", "private-dns", "zone", "list", "-g", "rg1"), &zones)
	if len(zones) != 0 {
		t.Errorf("zone list after delete = %v; want none", zones)
	}
}
