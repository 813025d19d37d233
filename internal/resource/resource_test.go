package resource

import (
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in, str, typ, name, parent string
	}{
		{"/subscriptions/S1", "/subscriptions/S1", "Microsoft.Resources/subscriptions", "S1", "/"},
		{"/subscriptions/s/resourcegroups/RG", "/subscriptions/s/resourceGroups/RG", "Microsoft.Resources/resourceGroups", "RG", "/subscriptions/s"},
		{"/subscriptions/s/resourceGroups/rg/providers/Microsoft.DBforPostgreSQL/flexibleServers/db",
			"/subscriptions/s/resourceGroups/rg/providers/Microsoft.DBforPostgreSQL/flexibleServers/db",
			"Microsoft.DBforPostgreSQL/flexibleServers", "db", "/subscriptions/s/resourceGroups/rg"},
		{"/subscriptions/s/resourceGroups/rg/providers/Microsoft.DBforPostgreSQL/flexibleServers/db/privateEndpointConnections/pe.1",
			"/subscriptions/s/resourceGroups/rg/providers/Microsoft.DBforPostgreSQL/flexibleServers/db/privateEndpointConnections/pe.1",
			"Microsoft.DBforPostgreSQL/flexibleServers/privateEndpointConnections", "pe.1",
			"/subscriptions/s/resourceGroups/rg/providers/Microsoft.DBforPostgreSQL/flexibleServers/db"},
		{"/subscriptions/s/PROVIDERS/Microsoft.Insights/eventtypes/management/", "/subscriptions/s/providers/Microsoft.Insights/eventtypes/management",
			"Microsoft.Insights/eventtypes", "management", "/subscriptions/s"},
	} {
		id, err := Parse(tc.in)
		if err != nil {
			t.Errorf("Parse(%q) = %v", tc.in, err)
			continue
		}
		if got := id.String(); got != tc.str {
			t.Errorf("Parse(%q).String() = %q; want %q", tc.in, got, tc.str)
		}
		if got := id.Type(); got != tc.typ {
			t.Errorf("Parse(%q).Type() = %q; want %q", tc.in, got, tc.typ)
		}
		if got := id.Name(); got != tc.name {
			t.Errorf("Parse(%q).Name() = %q; want %q", tc.in, got, tc.name)
		}
		if got := id.Parent().String(); got != tc.parent {
			t.Errorf("Parse(%q).Parent() = %q; want %q", tc.in, got, tc.parent)
		}
		if id.Key() != id.Key() || Parse2Key(t, tc.str) != id.Key() {
			t.Errorf("Key of %q differs from its canonical form's", tc.in)
		}
	}
	for _, bad := range []string{"subscriptions/s", "/tenants/t", "/subscriptions", "/subscriptions/s/resourceGroups",
		"/subscriptions/s//resourceGroups/rg", "/subscriptions/s/resourceGroups/rg/providers/NS", "/subscriptions/s/resourceGroups/rg/providers/NS/type",
		"/subscriptions/s/resourceGroups/rg/things/x"} {
		if id, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) = %v; want an error", bad, id)
		}
	}
}

func Parse2Key(t *testing.T, s string) string {
	t.Helper()
	id, err := Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return id.Key()
}

func TestIDRelations(t *testing.T) {
	srv := MustParse("/subscriptions/s/resourceGroups/RG/providers/Microsoft.DBforPostgreSQL/flexibleServers/DB")
	rule := srv.Child("firewallRules", "r1")
	if got, want := rule.Type(), TypeFirewallRule; got != want {
		t.Errorf("Child type = %q; want %q", got, want)
	}
	if !rule.Within(srv) || !rule.Within(srv.ResourceGroupID()) || !rule.Within(ID{}) {
		t.Error("rule not within its ancestors")
	}
	other := MustParse("/subscriptions/s/resourceGroups/RG/providers/Microsoft.DBforPostgreSQL/flexibleServers/DB2")
	if other.Within(srv) {
		t.Error("DB2 within DB: prefix match without a segment boundary")
	}
	rg := MustParse("/subscriptions/s/resourceGroups/rg")
	if got := rg.Child("Microsoft.Network/virtualNetworks", "v").String(); got != "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v" {
		t.Errorf("Child of a group = %q", got)
	}
}

func TestCheckTransition(t *testing.T) {
	for _, tc := range []struct {
		from, to ConnectionStatus
		ok       bool
		code     string
	}{
		{Pending, Approved, true, ""},
		{Pending, Rejected, true, ""},
		{Pending, Pending, true, ""},
		{Approved, Rejected, true, ""},
		{Approved, Approved, true, ""},
		{Rejected, Rejected, true, ""},
		{Rejected, Approved, false, "PrivateEndpointConnectionRejected"},
		{Approved, Pending, false, "InvalidPrivateEndpointConnectionStatus"},
		{Rejected, Pending, false, "InvalidPrivateEndpointConnectionStatus"},
	} {
		err := CheckTransition(tc.from, tc.to)
		if (err == nil) != tc.ok {
			t.Errorf("CheckTransition(%s, %s) = %v; want ok=%v", tc.from, tc.to, err, tc.ok)
			continue
		}
		if err != nil {
			e, _ := AsError(err)
			if e.Code != tc.code || e.Kind != Invalid {
				t.Errorf("CheckTransition(%s, %s) = %s/%d; want %s/Invalid", tc.from, tc.to, e.Code, e.Kind, tc.code)
			}
		}
	}
}

func TestRequireReady(t *testing.T) {
	if err := RequireReady("db", ServerReady, "x"); err != nil {
		t.Errorf("RequireReady(Ready) = %v", err)
	}
	for _, s := range []ServerState{ServerStopped, ServerUpdating, ServerStarting, ServerProvisioning} {
		err := RequireReady("db", s, "approve")
		e, ok := AsError(err)
		if !ok || e.Kind != Conflict || e.Code != "ServerIsNotReady" {
			t.Errorf("RequireReady(%s) = %v; want 409 ServerIsNotReady", s, err)
		}
	}
}

func TestParseConnectionStatus(t *testing.T) {
	for in, want := range map[string]ConnectionStatus{"approved": Approved, "REJECTED": Rejected, "Pending": Pending} {
		if got, ok := ParseConnectionStatus(in); !ok || got != want {
			t.Errorf("ParseConnectionStatus(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	if _, ok := ParseConnectionStatus("Disconnected"); ok {
		t.Error("Disconnected is settable")
	}
}
