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
