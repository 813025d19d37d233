package postgresql

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/pglink/pglink/internal/arm"
	"github.com/pglink/pglink/internal/resource"
	"github.com/pglink/pglink/internal/store"
	"github.com/pglink/pglink/internal/store/sqlite"
)

// TestServerNameClaims: a server name is taken across groups and subscriptions, by servers
// created before claims existed too; it is free again once its server is removed, and a claim
// left behind by a server that is gone is taken over.
func TestServerNameClaims(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "store.db"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	p := &Provider{}
	id := func(s string) resource.ID { return resource.MustParse(s) }
	old := id("/subscriptions/s1/resourceGroups/a/providers/Microsoft.DBforPostgreSQL/flexibleServers/Orders")
	clash := id("/subscriptions/s2/resourceGroups/b/providers/Microsoft.DBforPostgreSQL/flexibleServers/orders")
	other := id("/subscriptions/s1/resourceGroups/b/providers/Microsoft.DBforPostgreSQL/flexibleServers/billing")
	create := func(s resource.ID) error {
		return st.Update(ctx, func(tx store.Tx) error {
			if err := p.checkNameFree(ctx, tx, s); err != nil {
				return err
			}
			_, err := arm.Save(ctx, tx, s, Server{Name: s.Name()})
			return err
		})
	}
	conflict := func(err error) bool {
		e, ok := resource.AsError(err)
		return ok && e.Code == "ServerNameAlreadyExists" && e.Kind == resource.Conflict
	}
	// A server written before names were claimed.
	if err := st.Update(ctx, func(tx store.Tx) error { _, err := arm.Save(ctx, tx, old, Server{Name: old.Name()}); return err }); err != nil {
		t.Fatal(err)
	}
	if err := create(clash); !conflict(err) {
		t.Fatalf("create %s while %s exists = %v; want 409 ServerNameAlreadyExists", clash, old, err)
	}
	if err := create(other); err != nil {
		t.Fatalf("create %s = %v", other, err)
	}
	if err := st.Update(ctx, func(tx store.Tx) error { return p.remove(ctx, tx, old) }); err != nil {
		t.Fatal(err)
	}
	if err := create(clash); err != nil {
		t.Fatalf("create %s after %s was removed = %v", clash, old, err)
	}
	// A delete that leaves the claim behind: the claim is stale and taken over.
	if err := st.Update(ctx, func(tx store.Tx) error { return arm.Delete(ctx, tx, clash) }); err != nil {
		t.Fatal(err)
	}
	if err := create(old); err != nil {
		t.Fatalf("create %s over a stale claim = %v", old, err)
	}
	if err := create(clash); !conflict(err) {
		t.Fatalf("create %s after the name was claimed again = %v; want 409", clash, err)
	}
}
