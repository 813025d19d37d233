package authorization

import (
	"strings"
	"testing"
)

func TestParseFilter(t *testing.T) {
	const id = "5bbad2bb-07eb-4078-8ed0-f96b237574ac"
	tests := []struct {
		filter string
		want   filter
	}{
		{"", filter{}},
		{"atScope()", filter{AtScope: true}},
		{"atScopeAndBelow()", filter{AtScopeAndBelow: true}},
		{"principalId eq '" + id + "'", filter{PrincipalID: id}},
		{"assignedTo('" + id + "')", filter{PrincipalID: id}},
		{"atScope() and assignedTo('" + id + "')", filter{AtScope: true, PrincipalID: id}},
		{"atscope() AND principalid EQ '" + id + "'", filter{AtScope: true, PrincipalID: id}},
		{"roleName eq 'Network Contributor'", filter{RoleName: "Network Contributor"}},
		{"roleName eq 'Bob''s role'", filter{RoleName: "Bob's role"}},
		{"type eq 'CustomRole'", filter{RoleType: "CustomRole"}},
		{"roleName eq 'Reader' and type eq 'BuiltInRole'", filter{RoleName: "Reader", RoleType: "BuiltInRole"}},
	}
	for _, tt := range tests {
		got, err := parseFilter(tt.filter)
		if err != nil || got != tt.want {
			t.Errorf("parseFilter(%q) = %+v, %v; want %+v", tt.filter, got, err, tt.want)
		}
	}
	for _, bad := range []string{"principalId ne 'x'", "atScope() or atScope()", "displayName eq 'x'", "assignedTo(x)"} {
		if _, err := parseFilter(bad); err == nil || !strings.Contains(err.Error(), "InvalidFilter") {
			t.Errorf("parseFilter(%q) error = %v; want InvalidFilter", bad, err)
		}
	}
}

func TestFilterSelects(t *testing.T) {
	const (
		sub = "/subscriptions/s"
		rg  = sub + "/resourceGroups/rg"
		srv = rg + "/providers/Microsoft.DBforPostgreSQL/flexibleServers/pg"
	)
	tests := []struct {
		f           filter
		at, listing string
		principal   string
		want        bool
	}{
		{filter{}, "/", rg, "p", true},
		{filter{}, sub, rg, "p", true},
		{filter{}, rg, rg, "p", true},
		{filter{}, srv, rg, "p", true}, // below
		{filter{}, sub + "/resourceGroups/other", rg, "p", false},
		{filter{AtScope: true}, srv, rg, "p", false},
		{filter{AtScope: true}, "/", rg, "p", true},
		{filter{AtScope: true}, rg, rg, "p", true},
		{filter{PrincipalID: "P"}, srv, rg, "p", true},
		{filter{PrincipalID: "q"}, rg, rg, "p", false},
		{filter{AtScope: true, PrincipalID: "p"}, sub, "/", "p", false},
	}
	for _, tt := range tests {
		a := AssignmentProperties{Scope: tt.at, PrincipalID: tt.principal}
		if got := tt.f.selects(a, tt.listing); got != tt.want {
			t.Errorf("%+v.selects(assignment of %s at %s, list at %s) = %v; want %v", tt.f, tt.principal, tt.at, tt.listing, got, tt.want)
		}
	}
}

func TestGUIDOfDefinitionID(t *testing.T) {
	const g = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
	tests := []struct {
		id   string
		want string
		ok   bool
	}{
		{"/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/" + g, g, true},
		{"/providers/microsoft.authorization/roledefinitions/" + g, g, true},
		{"/subscriptions/s/resourceGroups/rg/providers/Microsoft.Authorization/roleDefinitions/" + g, g, true},
		{g, "", false},
		{"/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/Owner", "Owner", false},
	}
	for _, tt := range tests {
		got, ok := guidOfDefinitionID(tt.id)
		if got != tt.want || ok != tt.ok {
			t.Errorf("guidOfDefinitionID(%q) = %q, %v; want %q, %v", tt.id, got, ok, tt.want, tt.ok)
		}
	}
}
