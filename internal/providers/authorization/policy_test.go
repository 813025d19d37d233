package authorization

import (
	"encoding/json"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/pglink/pglink/internal/authz"
	"github.com/pglink/pglink/internal/resource"
	"github.com/pglink/pglink/internal/store"
	"github.com/pglink/pglink/internal/store/sqlite"
)

// TestEnsureAssignmentAndPolicy checks that EnsureAssignment is idempotent and that Policy
// gives authz.Decide what it needs to let the assigned principal act.
func TestEnsureAssignmentAndPolicy(t *testing.T) {
	db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "pglink.db"), slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx := t.Context()
	const (
		admin = "11111111-1111-1111-1111-111111111111"
		other = "22222222-2222-2222-2222-222222222222"
		vnet  = "/subscriptions/s/resourceGroups/net/providers/Microsoft.Network/virtualNetworks/v"
	)
	for range 3 {
		if err := EnsureAssignment(ctx, db, resource.ID{}, authz.OwnerID, admin, "ServicePrincipal"); err != nil {
			t.Fatalf("EnsureAssignment: %v", err)
		}
	}
	if err := EnsureAssignment(ctx, db, resource.MustParse("/subscriptions/s/resourceGroups/net"), authz.NetworkContributorID, other, "User"); err != nil {
		t.Fatalf("EnsureAssignment: %v", err)
	}
	// A custom role stored as the provider stores it.
	custom := Definition{ID: "/providers/Microsoft.Authorization/roleDefinitions/33333333-3333-3333-3333-333333333333",
		Name: "33333333-3333-3333-3333-333333333333", Type: TypeRoleDefinition, Properties: DefinitionProperties{
			RoleName: "Custom", Type: "CustomRole", AssignableScopes: []string{"/"},
			Permissions: []authz.Permission{{Actions: []string{"Microsoft.Network/*/read"}}}}}
	if err := db.Update(ctx, func(tx store.Tx) error {
		return put(ctx, tx, resource.ID{}, TypeRoleDefinition, custom.Name, custom)
	}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		principal, action string
		want              bool
		assignments       int
	}{
		{admin, "Microsoft.Authorization/roleAssignments/write", true, 1},
		{other, "Microsoft.Network/virtualNetworks/write", true, 1},
		{other, "Microsoft.Authorization/roleAssignments/write", false, 1},
		{"33333333-0000-0000-0000-000000000000", "Microsoft.Network/virtualNetworks/read", false, 0},
	}
	for _, tt := range tests {
		var as []authz.Assignment
		var roles []authz.Role
		if err := db.View(ctx, func(tx store.Tx) error {
			var err error
			as, roles, err = Policy(ctx, tx, tt.principal)
			return err
		}); err != nil {
			t.Fatalf("Policy(%s): %v", tt.principal, err)
		}
		if len(as) != tt.assignments {
			b, _ := json.Marshal(as)
			t.Errorf("Policy(%s) = %d assignments %s; want %d", tt.principal, len(as), b, tt.assignments)
		}
		if len(roles) != len(authz.BuiltIns())+1 {
			t.Errorf("Policy(%s) = %d roles; want the built-ins and the custom one", tt.principal, len(roles))
		}
		d := authz.Decide(authz.Request{PrincipalID: tt.principal, Action: tt.action, Scope: vnet}, as, roles)
		if d.Allowed != tt.want {
			t.Errorf("Decide(%s, %s) = %v (%s); want %v", tt.principal, tt.action, d.Allowed, d.Reason, tt.want)
		}
	}
}
