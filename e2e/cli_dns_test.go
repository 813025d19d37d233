package e2e

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
)

// TestCLIPrivateDNS runs the built pglink binary through the network administrator's private
// DNS flow: a zone privatelink.postgres.database.azure.com linked to the app's virtual network,
// a private endpoint whose zone group writes the server's A record with the endpoint's address,
// records added and removed by hand, a missing zone (exit 3), a caller without the role
// (AuthorizationFailed), and everything deleted again.
func TestCLIPrivateDNS(t *testing.T) {
	bin := buildPglink(t)
	in := start(t, nil)
	c := newBinCLI(t, bin)
	c.ok(nil, "login", "--bootstrap", filepath.Join(in.dir, "bootstrap.json"))
	sub := "/subscriptions/" + in.boot.SubscriptionID
	z := privatelinkZone
	c.ok(nil, "group", "create", "-n", "db-rg", "-l", "eastus")
	c.ok(nil, "group", "create", "-n", "net-rg", "-l", "eastus")
	var srv map[string]any
	c.ok(&srv, "postgres", "flexible-server", "create", "-g", "db-rg", "-n", "orders-db", "--admin-user", "pgadmin", "--admin-password", "S3cret-pass!")
	srvID, _ := srv["id"].(string)
	c.ok(nil, "network", "vnet", "create", "-g", "net-rg", "-n", "app-vnet", "--address-prefix", "10.0.0.0/16",
		"--subnet-name", "pe", "--subnet-prefix", "10.0.1.0/24")

	// The zone: created once (If-None-Match: *), shown, listed.
	var zone map[string]any
	c.ok(&zone, "network", "private-dns", "zone", "create", "-g", "net-rg", "-n", z+".")
	if zone["name"] != z || zone["location"] != "global" || zone["resourceGroup"] != "net-rg" ||
		zone["numberOfRecordSets"] != 1.0 || zone["provisioningState"] != "Succeeded" || zone["properties"] != nil {
		t.Errorf("private-dns zone create printed %v; want %s (trailing dot dropped) in global, 1 record set, Succeeded, flattened", zone, z)
	}
	zoneID, _ := zone["id"].(string)
	c.fails(1, "(PreconditionFailed)", "network", "private-dns", "zone", "create", "-g", "net-rg", "-n", z)
	if got := c.ok(nil, "network", "private-dns", "zone", "show", "-g", "net-rg", "-n", z, "-o", "table"); !strings.HasPrefix(got,
		"ZoneName                                 ResourceGroup  RecordSets  MaxRecordSets  VirtualNetworkLinks") ||
		!strings.Contains(got, z+"  net-rg         1           25000") {
		t.Errorf("private-dns zone show -o table =\n%s", got)
	}
	if got := c.ok(nil, "network", "private-dns", "zone", "list", "--query", "[].name", "-o", "tsv"); got != z+"\n" {
		t.Errorf("private-dns zone list (subscription) = %q; want %s", got, z)
	}
	if got := c.ok(nil, "network", "private-dns", "zone", "list", "-g", "db-rg", "--query", "length(@)", "-o", "tsv"); got != "0\n" {
		t.Errorf("private-dns zone list -g db-rg = %q; want no zone", got)
	}
	c.fails(3, "(ResourceNotFound)", "network", "private-dns", "zone", "show", "-g", "net-rg", "-n", "privatelink.nowhere.example")
	if out := c.ok(nil, "network", "private-dns", "zone", "create", "-g", "db-rg", "-n", "corp.example", "--tags", "env=test", "team=net", "--no-wait"); out != "" {
		t.Errorf("private-dns zone create --no-wait printed %q; want nothing", out)
	}
	if got := c.ok(nil, "network", "private-dns", "zone", "show", "-g", "db-rg", "-n", "corp.example", "--query", "[tags.env, tags.team]", "-o", "tsv"); got != "test\nnet\n" {
		t.Errorf("zone created with --tags env=test team=net has tags %q", got)
	}
	c.ok(nil, "network", "private-dns", "zone", "delete", "-g", "db-rg", "-n", "corp.example", "--yes", "--no-wait")

	// The link, by the network's name.
	var link map[string]any
	c.ok(&link, "network", "private-dns", "link", "vnet", "create", "-g", "net-rg", "-z", z, "-n", "app-link", "-v", "app-vnet", "-e", "false")
	if !strings.EqualFold(str2(get(link, "virtualNetwork.id")), sub+"/resourceGroups/net-rg/providers/Microsoft.Network/virtualNetworks/app-vnet") ||
		link["registrationEnabled"] != false || link["virtualNetworkLinkState"] != "Completed" || link["provisioningState"] != "Succeeded" {
		t.Errorf("private-dns link vnet create printed %v; want app-vnet linked, registration off, Completed", link)
	}
	if got := c.ok(nil, "network", "private-dns", "link", "vnet", "list", "-g", "net-rg", "-z", z, "-o", "table"); !strings.HasPrefix(got, "LinkName  ResourceGroup  RegistrationEnabled  VirtualNetwork") ||
		!strings.Contains(got, "app-link  net-rg         False") || !strings.Contains(got, "/virtualNetworks/app-vnet  Completed  Succeeded") {
		t.Errorf("private-dns link vnet list -o table =\n%s", got)
	}
	c.ok(nil, "network", "private-dns", "link", "vnet", "show", "-g", "net-rg", "-z", z, "-n", "app-link")
	c.fails(3, "ERROR: (", "network", "private-dns", "link", "vnet", "show", "-g", "net-rg", "-z", z, "-n", "no-link")
	c.fails(2, "--registration-enabled/-e: invalid choice", "network", "private-dns", "link", "vnet", "create", "-g", "net-rg", "-z", z, "-n", "x", "-v", "app-vnet", "-e", "maybe")

	// The private endpoint and its zone group: the server's A record, with the endpoint's address.
	c.ok(nil, "network", "private-endpoint", "create", "-g", "net-rg", "-n", "app-pe", "--vnet-name", "app-vnet", "--subnet", "pe",
		"--private-connection-resource-id", srvID, "--group-id", "postgresqlServer", "--connection-name", "orders")
	// The endpoint's address, as the Network RP reports it (customDnsConfigs).
	peHost := strings.TrimSpace(c.ok(nil, "network", "private-endpoint", "show", "-g", "net-rg", "-n", "app-pe",
		"--query", "customDnsConfigs[0].ipAddresses[0]", "-o", "tsv"))
	if net.ParseIP(peHost) == nil {
		t.Fatalf("private endpoint address %q is not an IP address", peHost)
	}
	var zg map[string]any
	c.ok(&zg, "network", "private-endpoint", "dns-zone-group", "create", "-g", "net-rg", "--endpoint-name", "app-pe", "-n", "default",
		"--private-dns-zone", zoneID, "--zone-name", "postgres")
	if zg["name"] != "default" || get(zg, "privateDnsZoneConfigs.0.name") != "postgres" ||
		!strings.EqualFold(str2(get(zg, "privateDnsZoneConfigs.0.privateDnsZoneId")), zoneID) ||
		get(zg, "privateDnsZoneConfigs.0.recordSets.0.recordSetName") != "orders-db" ||
		get(zg, "privateDnsZoneConfigs.0.recordSets.0.ipAddresses.0") != peHost {
		t.Errorf("dns-zone-group create printed %v; want zone %s, record orders-db -> %s", zg, zoneID, peHost)
	}
	if got := c.ok(nil, "network", "private-endpoint", "dns-zone-group", "list", "-g", "net-rg", "--endpoint-name", "app-pe", "--query", "[].name", "-o", "tsv"); got != "default\n" {
		t.Errorf("dns-zone-group list = %q; want default", got)
	}
	if got := c.ok(nil, "network", "private-endpoint", "dns-zone-group", "show", "-g", "net-rg", "--endpoint-name", "app-pe", "-n", "default",
		"--query", "privateDnsZoneConfigs[].recordSets[].fqdn", "-o", "tsv"); got != "orders-db."+z+"\n" {
		t.Errorf("dns-zone-group show --query fqdn = %q", got)
	}
	c.fails(3, "ERROR: (", "network", "private-endpoint", "dns-zone-group", "show", "-g", "net-rg", "--endpoint-name", "app-pe", "-n", "other")
	var sets []map[string]any
	c.ok(&sets, "network", "private-dns", "record-set", "a", "list", "-g", "net-rg", "-z", z)
	if len(sets) != 1 || sets[0]["name"] != "orders-db" || get(sets[0], "aRecords.0.ipv4Address") != peHost || sets[0]["resourceGroup"] != "net-rg" {
		t.Errorf("record-set a list = %v; want orders-db -> %s", sets, peHost)
	}
	if got := c.ok(nil, "network", "private-dns", "record-set", "a", "list", "-g", "net-rg", "-z", z, "-o", "table"); !strings.HasPrefix(got, "Name       ResourceGroup  Ttl  Type  AutoRegistered  Metadata") ||
		!strings.Contains(got, "orders-db  net-rg         10   A     False") {
		t.Errorf("record-set a list -o table =\n%s", got)
	}

	// Records by hand: add-record creates the set, remove-record deletes it with its last record.
	var rs map[string]any
	c.ok(&rs, "network", "private-dns", "record-set", "a", "add-record", "-g", "net-rg", "-z", z, "-n", "reports-db", "-a", "10.0.1.50")
	if rs["name"] != "reports-db" || rs["ttl"] != 3600.0 || rs["fqdn"] != "reports-db."+z+"." || get(rs, "aRecords.0.ipv4Address") != "10.0.1.50" {
		t.Errorf("record-set a add-record (new set) printed %v; want reports-db, TTL 3600, 10.0.1.50", rs)
	}
	c.ok(&rs, "network", "private-dns", "record-set", "a", "add-record", "-g", "net-rg", "-z", z, "--record-set-name", "reports-db", "--ipv4-address", "10.0.1.51")
	if got := c.ok(nil, "network", "private-dns", "record-set", "a", "show", "-g", "net-rg", "-z", z, "-n", "reports-db",
		"--query", "aRecords[].ipv4Address", "-o", "tsv"); got != "10.0.1.50\n10.0.1.51\n" {
		t.Errorf("after two add-record, record-set a show = %q", got)
	}
	if got := c.ok(nil, "network", "private-dns", "record-set", "list", "-g", "net-rg", "-z", z, "--query", "sort([].type)", "-o", "tsv"); got !=
		"Microsoft.Network/privateDnsZones/A\nMicrosoft.Network/privateDnsZones/A\nMicrosoft.Network/privateDnsZones/SOA\n" {
		t.Errorf("record-set list (all types) = %q; want two A and the SOA", got)
	}
	c.ok(&rs, "network", "private-dns", "record-set", "a", "remove-record", "-g", "net-rg", "-z", z, "-n", "reports-db", "-a", "10.0.1.50")
	if recs, _ := rs["aRecords"].([]any); len(recs) != 1 || get(rs, "aRecords.0.ipv4Address") != "10.0.1.51" {
		t.Errorf("remove-record printed %v; want 10.0.1.51 left", rs)
	}
	c.fails(1, "10.0.1.99 not found", "network", "private-dns", "record-set", "a", "remove-record", "-g", "net-rg", "-z", z, "-n", "reports-db", "-a", "10.0.1.99")
	rs = nil
	c.ok(&rs, "network", "private-dns", "record-set", "a", "remove-record", "-g", "net-rg", "-z", z, "-n", "reports-db", "-a", "10.0.1.51", "--keep-empty-record-set")
	if recs, _ := rs["aRecords"].([]any); rs["name"] != "reports-db" || len(recs) != 0 {
		t.Errorf("remove-record --keep-empty-record-set printed %v; want reports-db with no records", rs)
	}
	c.ok(nil, "network", "private-dns", "record-set", "a", "show", "-g", "net-rg", "-z", z, "-n", "reports-db")
	c.ok(nil, "network", "private-dns", "record-set", "a", "add-record", "-g", "net-rg", "-z", z, "-n", "reports-db", "-a", "10.0.1.52")
	if out := c.ok(nil, "network", "private-dns", "record-set", "a", "remove-record", "-g", "net-rg", "-z", z, "-n", "reports-db", "-a", "10.0.1.52"); out != "" {
		t.Errorf("remove-record of the last record printed %q; want nothing (the set is deleted)", out)
	}
	c.fails(3, "(ResourceNotFound)", "network", "private-dns", "record-set", "a", "show", "-g", "net-rg", "-z", z, "-n", "reports-db")

	// A caller without the role: reads, but writes nothing.
	var reader struct{ AppID, Password string }
	c.ok(&reader, "ad", "sp", "create-for-rbac", "--name", "dns-reader", "--role", "Reader", "--scopes", sub+"/resourceGroups/net-rg")
	rc := newBinCLI(t, bin)
	rc.ok(nil, "login", "--service-principal", "-u", reader.AppID, "-p", reader.Password, "--endpoint", in.boot.ARMEndpoint, "--ca-file", in.boot.CACertFile)
	rc.ok(nil, "network", "private-dns", "record-set", "a", "show", "-g", "net-rg", "-z", z, "-n", "orders-db")
	rc.fails(1, "(AuthorizationFailed)", "network", "private-dns", "record-set", "a", "add-record", "-g", "net-rg", "-z", z, "-n", "orders-db", "-a", "10.9.9.9")
	rc.fails(1, "(AuthorizationFailed)", "network", "private-dns", "zone", "create", "-g", "net-rg", "-n", "privatelink.example.test")
	rc.fails(1, "(AuthorizationFailed)", "network", "private-dns", "link", "vnet", "delete", "-g", "net-rg", "-z", z, "-n", "app-link", "--yes")
	rc.fails(1, "(AuthorizationFailed)", "network", "private-endpoint", "dns-zone-group", "delete", "-g", "net-rg", "--endpoint-name", "app-pe", "-n", "default")

	// Help.
	if got := c.ok(nil, "network", "private-endpoint", "dns-zone-group", "create", "-h"); !strings.Contains(got, "Examples:") || !strings.Contains(got, "--private-dns-zone") {
		t.Errorf("dns-zone-group create -h =\n%s", got)
	}

	// Delete all: the zone group takes its record with it; the zone asks for --yes.
	c.ok(nil, "network", "private-endpoint", "dns-zone-group", "delete", "-g", "net-rg", "--endpoint-name", "app-pe", "-n", "default")
	c.fails(3, "(ResourceNotFound)", "network", "private-dns", "record-set", "a", "show", "-g", "net-rg", "-z", z, "-n", "orders-db")
	c.ok(nil, "network", "private-dns", "link", "vnet", "delete", "-g", "net-rg", "-z", z, "-n", "app-link", "--yes")
	c.fails(1, "--yes", "network", "private-dns", "zone", "delete", "-g", "net-rg", "-n", z)
	c.ok(nil, "network", "private-dns", "zone", "delete", "-g", "net-rg", "-n", z, "--yes")
	c.fails(3, "(ResourceNotFound)", "network", "private-dns", "zone", "show", "-g", "net-rg", "-n", z)
	c.ok(nil, "network", "private-endpoint", "delete", "-g", "net-rg", "-n", "app-pe")
}

// str2 is v as a string ("" if it is not one).
func str2(v any) string {
	s, _ := v.(string)
	return s
}
