package network

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"testing"

	"github.com/pglink/pglink/internal/arm"
	"github.com/pglink/pglink/internal/resource"
	"github.com/pglink/pglink/internal/store"
	"github.com/pglink/pglink/internal/store/sqlite"
	"github.com/pglink/pglink/internal/store/storetest"
)

// TestStoreErrorsAreNotNotFound: a store failure other than ErrNotFound while reading a subnet
// is an error, never taken for "the subnet is not there" (which would skip giving a deleted
// endpoint's address back, or overwrite the subnet's address assignments).
func TestStoreErrorsAreNotNotFound(t *testing.T) {
	db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "pglink.db"), slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	subnet := resource.MustParse("/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/pe")
	pe := resource.MustParse("/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Network/privateEndpoints/pe1")
	s := Subnet{ID: subnet.String(), Name: "pe"}
	s.Properties.AddressPrefix = "10.0.0.0/24"
	var ipc IPConfiguration
	ipc.ID = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Network/networkInterfaces/n/ipConfigurations/c"
	ipc.Properties.PrivateIPAddress = "10.0.0.4"
	s.Properties.IPConfigurations = []IPConfiguration{ipc}
	if err := db.Update(t.Context(), func(tx store.Tx) error { _, err := arm.Save(t.Context(), tx, subnet, s); return err }); err != nil {
		t.Fatal(err)
	}
	var e PrivateEndpoint
	e.ID = pe.String()
	e.Properties.Subnet = &SubResource{ID: subnet.String()}

	tests := []struct {
		name string
		do   func(ctx context.Context, tx store.Tx) error
	}{
		{"release an endpoint's address", func(ctx context.Context, tx store.Tx) error { return release(ctx, tx, e) }},
		{"put a subnet", func(ctx context.Context, tx store.Tx) error {
			in := Subnet{Properties: SubnetProperties{AddressPrefix: "10.0.0.0/24"}}
			return putSubnet(ctx, tx, subnet, in, nil)
		}},
	}
	for _, tt := range tests {
		err := db.Update(t.Context(), func(tx store.Tx) error { return tt.do(t.Context(), storetest.FaultTx{Tx: tx, Key: subnet.Key()}) })
		if !errors.Is(err, storetest.ErrInjected) || resource.KindOf(err) != resource.Internal {
			t.Errorf("%s with a failing read of the subnet = %v; want the store's error (an internal error)", tt.name, err)
		}
	}
}

// TestReadsDoNotNest: serving GETs and lists opens one transaction at a time (a nested read
// holds a pooled connection while it waits for another, and enough of them at once exhaust
// the pool and hang every reader).
func TestReadsDoNotNest(t *testing.T) {
	db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "pglink.db"), slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rg := resource.MustParse("/subscriptions/s1/resourceGroups/rg")
	vnet := rg.Child("Microsoft.Network/virtualNetworks", "v")
	if err := db.Update(t.Context(), func(tx store.Tx) error {
		_, err := arm.Save(t.Context(), tx, vnet, VirtualNetwork{ID: vnet.String(), Name: "v"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	st := &storetest.NestGuard{Store: db}
	p := New(st, nil, slog.New(slog.NewTextHandler(t.Output(), nil)))
	for _, tc := range []struct {
		name string
		t    arm.Target
		h    arm.Handler
	}{
		{"list virtual networks in a group", arm.Target{ID: rg, Type: resource.TypeVirtualNetwork, Collection: true}, p.serveVirtualNetwork},
		{"list virtual networks in a subscription", arm.Target{ID: resource.ID{Subscription: "s1"}, Type: resource.TypeVirtualNetwork, Collection: true}, p.serveVirtualNetwork},
		{"get virtual network", arm.Target{ID: vnet, Type: resource.TypeVirtualNetwork}, p.serveVirtualNetwork},
		{"list private endpoints", arm.Target{ID: rg, Type: resource.TypePrivateEndpoint, Collection: true}, p.servePrivateEndpoint},
		{"list network interfaces", arm.Target{ID: rg, Type: resource.TypeNetworkInterface, Collection: true}, p.serveNetworkInterface},
		{"list subnets", arm.Target{ID: vnet, Type: resource.TypeSubnet, Collection: true}, p.serveSubnet},
	} {
		_, err := tc.h(t.Context(), &arm.Request{Method: http.MethodGet, Target: tc.t, Header: http.Header{}, Query: url.Values{}})
		if err != nil {
			t.Errorf("%s = %v; want nil", tc.name, err)
		}
	}
}
