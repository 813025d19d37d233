package dataplane

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/resource"
	"github.com/pglink/pglink/internal/store"
	"github.com/pglink/pglink/internal/store/sqlite"
)

// TestAllocatorCap: with Max endpoints handed out, Allocate refuses with 409 QuotaExceeded
// inside the transaction, before anything is opened; deleting one frees a place.
func TestAllocatorCap(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "store.db"), slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	a := Allocator{Network: netip.MustParsePrefix("127.77.0.0/16"), Port: 5432, Max: 3}
	put := func(tx store.Tx, i int, addr string) error {
		id := resource.MustParse(fmt.Sprintf("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/privateEndpoints/pe%d", i))
		body := fmt.Sprintf(`{"properties":{"dataPlane":{"address":%q}}}`, addr)
		_, err := tx.Put(ctx, store.Resource{Key: id.Key(), ID: id.String(), Type: id.Type(), Parent: id.Parent().Key(), Body: []byte(body)}, "")
		return err
	}
	var got []string
	for i := range 4 {
		err := st.Update(ctx, func(tx store.Tx) error {
			addr, err := a.Allocate(ctx, tx)
			if err != nil {
				return err
			}
			got = append(got, addr)
			return put(tx, i, addr)
		})
		if i < 3 {
			if err != nil {
				t.Fatalf("Allocate #%d = %v; want an address", i+1, err)
			}
			continue
		}
		if e, ok := resource.AsError(err); !ok || e.Code != "QuotaExceeded" || e.Kind != resource.Conflict {
			t.Fatalf("Allocate #4 with Max 3 = %v; want 409 QuotaExceeded", err)
		}
	}
	if want := []string{"127.77.0.1:5432", "127.77.0.2:5432", "127.77.0.3:5432"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("addresses = %v; want %v", got, want)
	}
	// Deleting an endpoint frees its place.
	id := resource.MustParse("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/privateEndpoints/pe1")
	if err := st.Update(ctx, func(tx store.Tx) error { return tx.Delete(ctx, id.Key()) }); err != nil {
		t.Fatal(err)
	}
	err = st.Update(ctx, func(tx store.Tx) error {
		addr, err := a.Allocate(ctx, tx)
		if err == nil && addr != "127.77.0.2:5432" {
			return fmt.Errorf("got %s; want the freed 127.77.0.2:5432", addr)
		}
		return err
	})
	if err != nil {
		t.Errorf("Allocate after a delete = %v", err)
	}
}

// TestAllocatorResolvers: a virtual network's resolver takes an address of the same network,
// on the DNS port, and counts against the same cap as the endpoints (each is a listener).
func TestAllocatorResolvers(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "store.db"), slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	a := Allocator{Network: netip.MustParsePrefix("127.77.0.0/16"), Port: 5432, DNSPort: 8053, Max: 2}
	var got []string
	for i := range 3 {
		err := st.Update(ctx, func(tx store.Tx) error {
			addr, _, err := a.AllocateResolver(ctx, tx)
			if err != nil {
				return err
			}
			got = append(got, addr)
			id := resource.MustParse(fmt.Sprintf("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v%d", i))
			body := fmt.Sprintf(`{"properties":{"dataPlane":{"dnsResolver":%q}}}`, addr)
			_, err = tx.Put(ctx, store.Resource{Key: id.Key(), ID: id.String(), Type: id.Type(), Parent: id.Parent().Key(), Body: []byte(body)}, "")
			return err
		})
		if i == 2 {
			if e, ok := resource.AsError(err); !ok || e.Code != "QuotaExceeded" {
				t.Errorf("third resolver with Max 2 = %v; want 409 QuotaExceeded", err)
			}
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if want := []string{"127.77.0.1:8053", "127.77.0.2:8053"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("resolver addresses = %v; want %v", got, want)
	}
	err = st.View(ctx, func(tx store.Tx) error {
		_, err := a.Allocate(ctx, tx)
		return err
	})
	if e, ok := resource.AsError(err); !ok || e.Code != "QuotaExceeded" {
		t.Errorf("an endpoint once resolvers hold the cap = %v; want 409 QuotaExceeded", err)
	}
}

// TestAllocatorPlace: a new server goes to the live node with the fewest servers (a document
// without a node counts for the node whose network holds its address), its address from that
// node's network; a dead node gets none; AllocateOn takes the named node's network.
func TestAllocatorPlace(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "store.db"), slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	nodes := []store.Node{
		{Name: "a", Network: "127.77.0.0/16", Expires: now.Add(time.Second)},
		{Name: "b", Network: "127.78.0.0/16", Expires: now.Add(time.Second)},
		{Name: "c", Network: "127.79.0.0/16", Expires: now.Add(-time.Second)}, // down
	}
	for _, n := range nodes {
		if err := st.PutNode(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	a := Allocator{Network: netip.MustParsePrefix("127.77.0.0/16"), Port: 5432, Node: "a", Now: func() time.Time { return now }}
	put := func(tx store.Tx, typ, name, body string) error {
		id := resource.MustParse("/subscriptions/s/resourceGroups/rg/providers/" + typ + "/" + name)
		_, err := tx.Put(ctx, store.Resource{Key: id.Key(), ID: id.String(), Type: id.Type(), Parent: id.Parent().Key(), Body: []byte(body)}, "")
		return err
	}
	// A server from before nodes existed, in a's network: a has one.
	if err := st.Update(ctx, func(tx store.Tx) error {
		return put(tx, resource.TypeServer, "old", `{"properties":{"dataPlane":{"address":"127.77.0.1:5432"}}}`)
	}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := range 3 {
		err := st.Update(ctx, func(tx store.Tx) error {
			addr, node, err := a.Place(ctx, tx)
			if err != nil {
				return err
			}
			got = append(got, node+"="+addr)
			return put(tx, resource.TypeServer, fmt.Sprint("s", i), fmt.Sprintf(`{"properties":{"dataPlane":{"address":%q,"node":%q}}}`, addr, node))
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if want := "[b=127.78.0.1:5432 a=127.77.0.2:5432 b=127.78.0.2:5432]"; fmt.Sprint(got) != want {
		t.Errorf("placements = %v; want %s", got, want)
	}
	err = st.View(ctx, func(tx store.Tx) error {
		addr, err := a.AllocateOn(ctx, tx, "b")
		if err != nil || addr != "127.78.0.3:5432" {
			t.Errorf("AllocateOn(b) = %q, %v; want 127.78.0.3:5432", addr, err)
		}
		addr, err = a.AllocateOn(ctx, tx, "")
		if err != nil || addr != "127.77.0.3:5432" {
			t.Errorf("AllocateOn(\"\") = %q, %v; want this node's 127.77.0.3:5432", addr, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
