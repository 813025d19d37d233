package arm

import "testing"

func TestParseTarget(t *testing.T) {
	for _, tc := range []struct {
		path, id, typ, last string
		collection, ok      bool
	}{
		{"/subscriptions", "/", "Microsoft.Resources/subscriptions", "subscriptions", true, true},
		{"/subscriptions/s", "/subscriptions/s", "Microsoft.Resources/subscriptions", "", false, true},
		{"/subscriptions/s/resourcegroups", "/subscriptions/s", "Microsoft.Resources/resourceGroups", "resourcegroups", true, true},
		{"/subscriptions/s/resourceGroups/rg", "/subscriptions/s/resourceGroups/rg", "Microsoft.Resources/resourceGroups", "", false, true},
		{"/subscriptions/s/resourceGroups/rg/providers/Microsoft.DBforPostgreSQL/flexibleServers",
			"/subscriptions/s/resourceGroups/rg", "Microsoft.DBforPostgreSQL/flexibleServers", "flexibleServers", true, true},
		{"/subscriptions/s/providers/Microsoft.DBforPostgreSQL/flexibleServers",
			"/subscriptions/s", "Microsoft.DBforPostgreSQL/flexibleServers", "flexibleServers", true, true},
		{"/subscriptions/s/resourceGroups/rg/providers/Microsoft.DBforPostgreSQL/flexibleServers/db/start",
			"/subscriptions/s/resourceGroups/rg/providers/Microsoft.DBforPostgreSQL/flexibleServers/db", "Microsoft.DBforPostgreSQL/flexibleServers/start", "start", true, true},
		{"/subscriptions/s/resourceGroups/rg/providers/Microsoft.DBforPostgreSQL/flexibleServers/db/firewallRules/r",
			"/subscriptions/s/resourceGroups/rg/providers/Microsoft.DBforPostgreSQL/flexibleServers/db/firewallRules/r", "Microsoft.DBforPostgreSQL/flexibleServers/firewallRules", "", false, true},
		{"/subscriptions/s/providers/Microsoft.Insights/eventtypes/management/values",
			"/subscriptions/s/providers/Microsoft.Insights/eventtypes/management", "Microsoft.Insights/eventtypes/values", "values", true, true},
		{"/subscriptions/s/providers/Microsoft.Authorization/roleAssignments/x",
			"/subscriptions/s/providers/Microsoft.Authorization/roleAssignments/x", "Microsoft.Authorization/roleAssignments", "", false, true},
		{"/subscriptions/s/resourceGroups/rg/providers/Microsoft.Authorization/roleAssignments",
			"/subscriptions/s/resourceGroups/rg", "Microsoft.Authorization/roleAssignments", "roleAssignments", true, true},
		{"/subscriptions/s/resourceGroups/rg/providers/Microsoft.DBforPostgreSQL/flexibleServers/providers/firewallRules/r",
			"/subscriptions/s/resourceGroups/rg/providers/Microsoft.DBforPostgreSQL/flexibleServers/providers/firewallRules/r", "Microsoft.DBforPostgreSQL/flexibleServers/firewallRules", "", false, true},
		{"/providers/Microsoft.Authorization", "", "", "", false, false},
		{"/providers/Microsoft.Authorization/roleDefinitions/x/y", "", "", "", false, false},
		{"/", "", "", "", false, false},
		{"/healthz", "", "", "", false, false},
		{"/subscriptions/s/providers/Microsoft.DBforPostgreSQL", "", "", "", false, false},
	} {
		got, ok := ParseTarget(tc.path)
		if ok != tc.ok {
			t.Errorf("ParseTarget(%q) ok = %v; want %v", tc.path, ok, tc.ok)
			continue
		}
		if !ok {
			continue
		}
		if got.ID.String() != tc.id || got.Type != tc.typ || got.Last != tc.last || got.Collection != tc.collection {
			t.Errorf("ParseTarget(%q) = {%s %s %q %v}; want {%s %s %q %v}", tc.path, got.ID, got.Type, got.Last, got.Collection, tc.id, tc.typ, tc.last, tc.collection)
		}
	}
}

func TestParseExtensionTarget(t *testing.T) {
	const server = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.DBforPostgreSQL/flexibleServers/db"
	for _, tc := range []struct {
		path, scope, typ, name, last, addressed string
		collection                              bool
	}{
		{"/providers/Microsoft.Authorization/roleAssignments/x", "/", "Microsoft.Authorization/roleAssignments", "x", "",
			"/providers/Microsoft.Authorization/roleAssignments/x", false},
		{"/providers/Microsoft.Authorization/roleDefinitions", "/", "Microsoft.Authorization/roleDefinitions", "", "roleDefinitions", "/", true},
		{"/PROVIDERS/Microsoft.Authorization/roleAssignments/", "/", "Microsoft.Authorization/roleAssignments", "", "roleAssignments", "/", true},
		{server + "/providers/Microsoft.Authorization/roleAssignments/x", server, "Microsoft.Authorization/roleAssignments", "x", "",
			server + "/providers/Microsoft.Authorization/roleAssignments/x", false},
		{server + "/firewallRules/r/providers/Microsoft.Authorization/roleAssignments", server + "/firewallRules/r",
			"Microsoft.Authorization/roleAssignments", "", "roleAssignments", server + "/firewallRules/r", true},
	} {
		got, ok := ParseTarget(tc.path)
		if !ok || !got.Extension {
			t.Errorf("ParseTarget(%q) = %+v, %v; want an extension target", tc.path, got, ok)
			continue
		}
		if got.ID.String() != tc.scope || got.Type != tc.typ || got.Name != tc.name || got.Last != tc.last || got.Collection != tc.collection || got.Addressed() != tc.addressed {
			t.Errorf("ParseTarget(%q) = {%s %s %q %q %v %s}; want {%s %s %q %q %v %s}", tc.path,
				got.ID, got.Type, got.Name, got.Last, got.Collection, got.Addressed(),
				tc.scope, tc.typ, tc.name, tc.last, tc.collection, tc.addressed)
		}
	}
}

func TestTargetParent(t *testing.T) {
	const server = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.DBforPostgreSQL/flexibleServers/db"
	for _, path := range []string{server + "/firewallRules", server + "/firewallRules/r"} {
		got, ok := ParseTarget(path)
		if !ok || got.Parent().String() != server {
			t.Errorf("ParseTarget(%q).Parent() = %s (ok %v); want %s", path, got.Parent(), ok, server)
		}
	}
}
