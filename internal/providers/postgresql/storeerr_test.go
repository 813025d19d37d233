package postgresql

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"testing"

	"github.com/pglink/pglink/internal/arm"
	"github.com/pglink/pglink/internal/operation"
	"github.com/pglink/pglink/internal/resource"
	"github.com/pglink/pglink/internal/store"
	"github.com/pglink/pglink/internal/store/sqlite"
	"github.com/pglink/pglink/internal/store/storetest"
)

const (
	testServer = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.DBforPostgreSQL/flexibleServers/db1"
	testRule   = testServer + "/firewallRules/r1"
	testConn   = testServer + "/privateEndpointConnections/pe1.x"
)

// newStore returns a real store with a Ready server, one of its firewall rules and a
// connection.
func newStore(t *testing.T) store.Store {
	t.Helper()
	db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "pglink.db"), slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	srv := resource.MustParse(testServer)
	err = db.Update(t.Context(), func(tx store.Tx) error {
		s := Server{ID: srv.String(), Name: srv.Name(), Type: resource.TypeServer, Location: "eastus"}
		s.Properties.State = resource.ServerReady
		if _, err := arm.Save(t.Context(), tx, srv, s); err != nil {
			return err
		}
		rule := FirewallRule{ID: testRule, Name: "r1", Type: resource.TypeFirewallRule}
		if _, err := arm.Save(t.Context(), tx, resource.MustParse(testRule), rule); err != nil {
			return err
		}
		_, err := arm.Save(t.Context(), tx, resource.MustParse(testConn), Connection{ID: testConn, Name: "pe1.x", Type: resource.TypeConnection})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// TestStoreErrorsAreNotNotFound: a store failure other than ErrNotFound is an error, never
// taken for "the resource is not there".
func TestStoreErrorsAreNotNotFound(t *testing.T) {
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	rule, srv, conn := resource.MustParse(testRule), resource.MustParse(testServer), resource.MustParse(testConn)
	commit := func(p *Provider, run operation.Func, kind string, data any) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			op, err := operation.New(kind, rule, "eastus", http.MethodPut, "g", operation.Meta{}, data)
			if err != nil {
				return err
			}
			// The worker hands its Func the input the starter gave it.
			c, err := run(ctx, operation.Op{Operation: op, Data: mustJSON(t, data)})
			if err != nil {
				return err
			}
			return p.st.Update(ctx, func(tx store.Tx) error { return c(ctx, tx) })
		}
	}
	tests := []struct {
		name string
		key  string // the key whose read fails
		do   func(ctx context.Context, p *Provider) error
	}{
		{"delete firewall rule", rule.Key(), func(ctx context.Context, p *Provider) error {
			_, err := p.deleteFirewallRule(ctx, &arm.Request{Method: http.MethodDelete, Target: arm.Target{ID: rule, Type: resource.TypeFirewallRule}, Header: http.Header{}})
			return err
		}},
		{"firewall rule put commit", srv.Key(), func(ctx context.Context, p *Provider) error {
			return commit(p, p.runFirewallPut, kindFirewallPut, FirewallRule{ID: testRule, Name: "r1"})(ctx)
		}},
		{"firewall rule delete commit", srv.Key(), func(ctx context.Context, p *Provider) error {
			return commit(p, p.runFirewallDelete, kindFirewallDelete, nil)(ctx)
		}},
		{"disconnect", conn.Key(), func(ctx context.Context, p *Provider) error {
			return p.st.Update(ctx, func(tx store.Tx) error { return p.Disconnect(ctx, tx, conn) })
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := storetest.FaultStore{Store: newStore(t), Key: tt.key}
			p := New(st, nil, nil, nil, log)
			err := tt.do(t.Context(), p)
			if !errors.Is(err, storetest.ErrInjected) || resource.KindOf(err) != resource.Internal {
				t.Errorf("%s with a failing read of %s = %v; want the store's error (an internal error)", tt.name, tt.key, err)
			}
		})
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestReadsDoNotNest: serving GETs and lists opens one transaction at a time (a nested read
// holds a pooled connection while it waits for another, and enough of them at once exhaust
// the pool and hang every reader).
func TestReadsDoNotNest(t *testing.T) {
	st := &storetest.NestGuard{Store: newStore(t)}
	p := New(st, nil, nil, nil, slog.New(slog.NewTextHandler(t.Output(), nil)))
	srv, rg := resource.MustParse(testServer), resource.MustParse(testServer).ResourceGroupID()
	for _, tc := range []struct {
		name string
		t    arm.Target
		h    arm.Handler
	}{
		{"list servers in a group", arm.Target{ID: rg, Type: resource.TypeServer, Collection: true}, p.serveServer},
		{"list servers in a subscription", arm.Target{ID: resource.ID{Subscription: "s1"}, Type: resource.TypeServer, Collection: true}, p.serveServer},
		{"get server", arm.Target{ID: srv, Type: resource.TypeServer}, p.serveServer},
		{"list firewall rules", arm.Target{ID: srv, Type: resource.TypeFirewallRule, Collection: true}, p.serveFirewallRule},
		{"list connections", arm.Target{ID: srv, Type: resource.TypeConnection, Collection: true}, p.serveConnection},
	} {
		_, err := tc.h(t.Context(), &arm.Request{Method: http.MethodGet, Target: tc.t, Header: http.Header{}, Query: url.Values{}})
		if err != nil {
			t.Errorf("%s = %v; want nil", tc.name, err)
		}
	}
}
