package server

import (
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/pglink/pglink/internal/authz"
	"github.com/pglink/pglink/internal/providers/authorization"
	"github.com/pglink/pglink/internal/resource"
	"github.com/pglink/pglink/internal/store"
	"github.com/pglink/pglink/internal/store/sqlite"
)

// TestAuthorizer: the front door's Authorizer decides over the stored assignments: inheritance
// down the scope tree, deny by default, and Reaches above and below an assignment.
func TestAuthorizer(t *testing.T) {
	db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "pglink.db"), slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	const (
		netAdmin = "11111111-1111-1111-1111-111111111111"
		nobody   = "22222222-2222-2222-2222-222222222222"
		sub      = "/subscriptions/s"
		netRG    = sub + "/resourceGroups/net"
		subnet   = netRG + "/providers/Microsoft.Network/virtualNetworks/v/subnets/pe"
		server   = sub + "/resourceGroups/db/providers/Microsoft.DBforPostgreSQL/flexibleServers/pg"
	)
	if err := authorization.EnsureAssignment(t.Context(), db, resource.MustParse(netRG), authz.NetworkContributorID, netAdmin, "ServicePrincipal"); err != nil {
		t.Fatal(err)
	}
	a := newAuthorizer(db)
	tests := []struct {
		principal, action, scope string
		allowed, reaches         bool
	}{
		{netAdmin, "Microsoft.Network/virtualNetworks/subnets/join/action", subnet, true, true},
		{netAdmin, "Microsoft.Resources/subscriptions/resourceGroups/read", netRG, true, true},
		{netAdmin, authz.ActionApprove, server, false, false},
		{netAdmin, "Microsoft.Network/virtualNetworks/read", sub, false, true}, // reaches below the subscription
		{netAdmin, "Microsoft.Resources/subscriptions/read", "/", false, true},
		{nobody, "Microsoft.Network/virtualNetworks/read", subnet, false, false},
	}
	for _, tc := range tests {
		p, err := a.Permissions(t.Context(), tc.principal)
		if err != nil {
			t.Fatalf("Permissions(%s): %v", tc.principal, err)
		}
		if got := p.Allowed(tc.action, tc.scope); got != tc.allowed {
			t.Errorf("Allowed(%s, %s) for %s = %v; want %v", tc.action, tc.scope, tc.principal, got, tc.allowed)
		}
		if got := p.Reaches(tc.scope); got != tc.reaches {
			t.Errorf("Reaches(%s) for %s = %v; want %v", tc.scope, tc.principal, got, tc.reaches)
		}
	}
}

// TestAuthorizerSeesEveryCommit: the authorizer's cached policy never outlives a commit: an
// assignment made after a decision counts for the next one.
func TestAuthorizerSeesEveryCommit(t *testing.T) {
	db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "pglink.db"), slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	const who, rg = "33333333-3333-3333-3333-333333333333", "/subscriptions/s/resourceGroups/rg"
	a := newAuthorizer(db)
	allowed := func() bool {
		p, err := a.Permissions(t.Context(), who)
		if err != nil {
			t.Fatal(err)
		}
		return p.Allowed("Microsoft.Resources/subscriptions/resourceGroups/read", rg)
	}
	for range 3 { // cached decisions
		if allowed() {
			t.Fatalf("allowed before any assignment")
		}
	}
	// Commits that touch no role keep the cached policy, and an assignment after them counts.
	unrelated := func() {
		id := resource.MustParse(rg + "/providers/Microsoft.Network/virtualNetworks/v")
		if err := db.Update(t.Context(), func(tx store.Tx) error {
			_, err := tx.Put(t.Context(), store.Resource{Key: id.Key(), ID: id.String(), Type: id.Type(), Parent: id.Parent().Key(), Body: []byte(`{}`)}, "")
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	unrelated()
	if allowed() {
		t.Fatalf("allowed after an unrelated commit")
	}
	unrelated()
	if err := authorization.EnsureAssignment(t.Context(), db, resource.MustParse(rg), authz.ReaderID, who, "User"); err != nil {
		t.Fatal(err)
	}
	if !allowed() {
		t.Errorf("not allowed right after the Reader assignment was committed")
	}
	unrelated()
	if !allowed() {
		t.Errorf("not allowed after an unrelated commit that followed the assignment")
	}
}
