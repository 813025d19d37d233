package cli

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/privatedns/armprivatedns"
)

func TestResourceRef(t *testing.T) {
	const sub = "00000000-0000-0000-0000-000000000001"
	vnetID := "/subscriptions/" + sub + "/resourceGroups/net-rg/providers/Microsoft.Network/virtualNetworks/app-vnet"
	tests := []struct {
		v, want string
		usage   bool
	}{
		{"app-vnet", vnetID, false},
		{vnetID, vnetID, false},
		// an id is taken as it is, whatever its subscription, group or case
		{strings.ToLower(vnetID), strings.ToLower(vnetID), false},
		{"/subscriptions/other/resourceGroups/g2/providers/Microsoft.Network/virtualNetworks/v2",
			"/subscriptions/other/resourceGroups/g2/providers/Microsoft.Network/virtualNetworks/v2", false},
		{"", "", true},
		{"net-rg/app-vnet", "", true},
		{"/subscriptions/" + sub + "/resourceGroups/net-rg/providers/Microsoft.Network/privateDnsZones/z", "", true},
		{vnetID + "/subnets/pe", "", true},
		{"/not/an/id", "", true},
	}
	for _, tt := range tests {
		got, err := resourceRef("--virtual-network/-v", sub, "net-rg", typeVirtualNetwork, tt.v)
		if tt.usage {
			if !errors.As(err, new(usageError)) || !strings.Contains(err.Error(), "--virtual-network/-v") {
				t.Errorf("resourceRef(%q) = %q, %v; want a usage error about --virtual-network/-v", tt.v, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("resourceRef(%q) = %q, %v; want %q", tt.v, got, err, tt.want)
		}
	}
}

func TestZoneName(t *testing.T) {
	for in, want := range map[string]string{
		"privatelink.postgres.database.azure.com.": "privatelink.postgres.database.azure.com",
		"privatelink.postgres.database.azure.com":  "privatelink.postgres.database.azure.com",
	} {
		if got := zoneName(in); got != want {
			t.Errorf("zoneName(%q) = %q; want %q", in, got, want)
		}
	}
}

func TestThreeState(t *testing.T) {
	tests := []struct {
		in   string
		want bool
		ok   bool
	}{
		{"true", true, true}, {"True", true, true}, {"FALSE", false, true}, {"false", false, true},
		{"yes", false, false}, {"1", false, false}, {"", false, false},
	}
	for _, tt := range tests {
		got, err := threeState("-e", tt.in)
		if ok := err == nil; ok != tt.ok || got != tt.want {
			t.Errorf("threeState(%q) = %v, %v; want %v (ok %v)", tt.in, got, err, tt.want, tt.ok)
		}
		if err != nil && !errors.As(err, new(usageError)) {
			t.Errorf("threeState(%q) error %v is not a usage error", tt.in, err)
		}
	}
}

func TestWithoutAddress(t *testing.T) {
	recs := func(addrs ...string) []*armprivatedns.ARecord {
		out := []*armprivatedns.ARecord{}
		for _, a := range addrs {
			out = append(out, &armprivatedns.ARecord{IPv4Address: &a})
		}
		return out
	}
	addrs := func(rs []*armprivatedns.ARecord) []string {
		var out []string
		for _, r := range rs {
			out = append(out, *r.IPv4Address)
		}
		return out
	}
	tests := []struct {
		in    []string
		addr  string
		want  []string
		found bool
	}{
		{[]string{"10.0.0.1", "10.0.0.2"}, "10.0.0.1", []string{"10.0.0.2"}, true},
		{[]string{"10.0.0.1"}, "10.0.0.1", nil, true},
		{[]string{"10.0.0.1", "10.0.0.1"}, "10.0.0.1", nil, true},
		{[]string{"10.0.0.1"}, "10.0.0.9", []string{"10.0.0.1"}, false},
		{nil, "10.0.0.1", nil, false},
	}
	for _, tt := range tests {
		got, found := withoutAddress(recs(tt.in...), tt.addr)
		if found != tt.found || !reflect.DeepEqual(addrs(got), tt.want) {
			t.Errorf("withoutAddress(%v, %s) = %v, %v; want %v, %v", tt.in, tt.addr, addrs(got), found, tt.want, tt.found)
		}
		if got == nil {
			t.Errorf("withoutAddress(%v, %s) = nil; want an empty list, so that the PUT clears the records", tt.in, tt.addr)
		}
	}
}

// TestPrivateDNSTables: -o table of zones, links and record sets has az's columns.
func TestPrivateDNSTables(t *testing.T) {
	zone := decode(t, `{"id":"/subscriptions/s/resourceGroups/dns-rg/providers/Microsoft.Network/privateDnsZones/privatelink.postgres.database.azure.com",
		"name":"privatelink.postgres.database.azure.com","location":"global","properties":{"maxNumberOfRecordSets":25000,"numberOfRecordSets":2,
		"maxNumberOfVirtualNetworkLinks":1000,"numberOfVirtualNetworkLinks":1,"maxNumberOfVirtualNetworkLinksWithRegistration":100,
		"numberOfVirtualNetworkLinksWithRegistration":0,"provisioningState":"Succeeded"}}`)
	link := decode(t, `{"id":"/subscriptions/s/resourceGroups/dns-rg/providers/Microsoft.Network/privateDnsZones/z/virtualNetworkLinks/app-link",
		"name":"app-link","properties":{"virtualNetwork":{"id":"/subscriptions/s/resourceGroups/net-rg/providers/Microsoft.Network/virtualNetworks/app-vnet"},
		"registrationEnabled":false,"virtualNetworkLinkState":"Completed","provisioningState":"Succeeded"}}`)
	sets := []map[string]any{
		decode(t, `{"id":"/subscriptions/s/resourceGroups/dns-rg/providers/Microsoft.Network/privateDnsZones/z/A/orders-db","name":"orders-db",
			"type":"Microsoft.Network/privateDnsZones/A","properties":{"ttl":10,"isAutoRegistered":false,"aRecords":[{"ipv4Address":"10.0.1.4"}]}}`),
		decode(t, `{"id":"/subscriptions/s/resourceGroups/dns-rg/providers/Microsoft.Network/privateDnsZones/z/TXT/note","name":"note",
			"type":"Microsoft.Network/privateDnsZones/TXT","properties":{"ttl":3600,"isAutoRegistered":false,"metadata":{"team":"net","env":"prod"}}}`),
	}
	tests := []struct {
		name string
		data any
		view tableView
		want string
	}{
		{"zone", flatten(zone), zoneTable, `ZoneName                                 ResourceGroup  RecordSets  MaxRecordSets  VirtualNetworkLinks  MaxVirtualNetworkLinks  VirtualNetworkLinksWithRegistration  MaxVirtualNetworkLinksWithRegistration  ProvisioningState
---------------------------------------  -------------  ----------  -------------  -------------------  ----------------------  -----------------------------------  --------------------------------------  -----------------
privatelink.postgres.database.azure.com  dns-rg         2           25000          1                    1000                    0                                    100                                     Succeeded
`},
		{"link", flatten(link), linkTable, `LinkName  ResourceGroup  RegistrationEnabled  VirtualNetwork                                                                               LinkState  ProvisioningState
--------  -------------  -------------------  -------------------------------------------------------------------------------------------  ---------  -----------------
app-link  dns-rg         False                /subscriptions/s/resourceGroups/net-rg/providers/Microsoft.Network/virtualNetworks/app-vnet  Completed  Succeeded
`},
		{"record sets", flattenAll([]map[string]any{sets[0], sets[1]}), recordSetTable, `Name       ResourceGroup  Ttl   Type  AutoRegistered  Metadata
---------  -------------  ----  ----  --------------  ---------------------
orders-db  dns-rg         10    A     False
note       dns-rg         3600  TXT   False           env="prod" team="net"
`},
	}
	for _, tt := range tests {
		var out bytes.Buffer
		e := &env{stdout: &out, output: "table"}
		if err := e.printTable(tt.data, tt.view); err != nil {
			t.Fatal(err)
		}
		if got := out.String(); got != tt.want {
			t.Errorf("%s -o table =\n%s\nwant\n%s", tt.name, out.String(), tt.want)
		}
	}
}

// TestPrivateDNSUsage: mistakes in the command line exit 2 before anything is sent.
func TestPrivateDNSUsage(t *testing.T) {
	t.Setenv("PGLINK_CONFIG_DIR", t.TempDir())
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"network", "private-dns", "link", "vnet", "create", "-g", "rg", "-z", "z", "-n", "l", "-v", "v", "-e", "maybe"},
			"argument --registration-enabled/-e: invalid choice: 'maybe'"},
		{[]string{"network", "private-dns", "link", "vnet", "create", "-g", "rg", "-z", "z", "-n", "l", "-v", "v"},
			`required flag(s) "registration-enabled" not set`},
		{[]string{"network", "private-dns", "record-set", "a", "add-record", "-g", "rg", "-z", "z", "-n", "www"},
			`required flag(s) "ipv4-address" not set`},
		{[]string{"network", "private-dns", "zone", "show", "-g", "rg"}, `required flag(s) "name" not set`},
		{[]string{"network", "private-endpoint", "dns-zone-group", "create", "-g", "rg", "--endpoint-name", "pe", "-n", "default",
			"--private-dns-zone", "z"}, `required flag(s) "zone-name" not set`},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		code := Run(t.Context(), tt.args, strings.NewReader(""), &stdout, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("pglink %s: exit %d, stderr %q; want 2 and %q", strings.Join(tt.args, " "), code, stderr.String(), tt.want)
		}
	}
}
