package dataplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/pglink/pglink/internal/gateway"
	"github.com/pglink/pglink/internal/providers/network"
	"github.com/pglink/pglink/internal/resource"
	"github.com/pglink/pglink/internal/store"
	"github.com/pglink/pglink/internal/store/sqlite"
)

type fixedSockets struct{}

func (fixedSockets) Socket(id resource.ID) string { return "/run/" + id.Name() }

// TestPolicyIncremental: after every batch of random writes of the documents the policy is made
// of (servers in every state, public access, firewall rules, transport parameters, private
// endpoints on this node and on another, connection states, deletes of each), the policy kept
// from the change feed equals the one compiled whole, and a batch that touches none of them is
// reported unchanged.
func TestPolicyIncremental(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "store.db"), slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	scope := Scope{Node: "n1"}
	cache := newPolicyCache(fixedSockets{}, scope)
	rng := rand.New(rand.NewPCG(1, 2))

	const rg = "/subscriptions/s/resourceGroups/rg"
	server := func(i int) resource.ID {
		return resource.MustParse(fmt.Sprintf("%s/providers/Microsoft.DBforPostgreSQL/flexibleServers/db%d", rg, i))
	}
	pe := func(i int) resource.ID {
		return resource.MustParse(fmt.Sprintf("%s/providers/Microsoft.Network/privateEndpoints/pe%d", rg, i))
	}
	put := func(tx store.Tx, id resource.ID, body any) {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Put(ctx, store.Resource{Key: id.Key(), ID: id.String(), Type: id.Type(), Parent: id.Parent().Key(), Body: b}, ""); err != nil {
			t.Fatal(err)
		}
	}
	del := func(tx store.Tx, id resource.ID) {
		if err := tx.Delete(ctx, id.Key()); err != nil && !errors.Is(err, store.ErrNotFound) {
			t.Fatal(err)
		}
	}
	states := []resource.ServerState{resource.ServerReady, resource.ServerStopped, resource.ServerUpdating, resource.ServerStarting}
	statuses := []string{"Pending", "Approved", "Rejected", "Disconnected"}
	nodes := []string{"n1", "n1", "n2"}
	// One random write of a policy document.
	step := func(tx store.Tx) {
		s, p := rng.IntN(6), rng.IntN(10)
		sid := server(s)
		switch rng.IntN(11) {
		case 0, 1: // a server
			access := []string{"Enabled", "Disabled"}[rng.IntN(2)]
			put(tx, sid, map[string]any{"name": sid.Name(), "properties": map[string]any{
				"state":     states[rng.IntN(len(states))],
				"network":   map[string]any{"publicNetworkAccess": access},
				"dataPlane": map[string]any{"address": fmt.Sprintf("127.1.0.%d:5432", s+1), "node": nodes[rng.IntN(3)]}}})
		case 2:
			del(tx, sid)
		case 3: // a firewall rule
			put(tx, sid.Child("firewallRules", fmt.Sprint("r", rng.IntN(2))), map[string]any{"properties": map[string]any{
				"startIpAddress": fmt.Sprintf("10.0.0.%d", rng.IntN(9)), "endIpAddress": "10.0.0.9"}})
		case 4:
			del(tx, sid.Child("firewallRules", fmt.Sprint("r", rng.IntN(2))))
		case 5: // a transport parameter
			put(tx, sid.Child("configurations", "require_secure_transport"), map[string]any{
				"name": "require_secure_transport", "properties": map[string]any{"value": []string{"on", "off"}[rng.IntN(2)]}})
		case 6: // a private endpoint
			put(tx, pe(p), map[string]any{"name": pe(p).Name(), "properties": map[string]any{
				"resourceGuid": "g",
				"dataPlane":    map[string]any{"address": fmt.Sprintf("127.2.0.%d:5432", p+1), "node": nodes[rng.IntN(3)]},
				"manualPrivateLinkServiceConnections": []any{map[string]any{"name": "c", "properties": map[string]any{
					"privateLinkServiceId": sid.String()}}}}})
		case 7:
			del(tx, pe(p))
		case 8, 9, 10: // its connection, mostly on the server it names
			if r, err := tx.Get(ctx, pe(p).Key()); err == nil && rng.IntN(4) > 0 {
				var doc network.PrivateEndpoint
				if json.Unmarshal(r.Body, &doc) == nil {
					sid = resource.MustParse(doc.Properties.ManualPrivateLinkServiceConnections[0].Properties.PrivateLinkServiceID)
				}
			}
			cid := sid.Child("privateEndpointConnections", pe(p).Name()+".g")
			if rng.IntN(4) == 0 {
				del(tx, cid)
				return
			}
			put(tx, cid, map[string]any{"name": cid.Name(), "properties": map[string]any{
				"privateLinkServiceConnectionState": map[string]any{"status": statuses[rng.IntN(len(statuses))]}}})
		}
	}
	canon := func(s gateway.Snapshot) []gateway.Endpoint {
		eps := slices.Clone(s.Endpoints)
		slices.SortFunc(eps, func(a, b gateway.Endpoint) int { return strings.Compare(a.ID, b.ID) })
		for i := range eps {
			if len(eps[i].Allow) == 0 {
				eps[i].Allow = nil
			}
			slices.SortFunc(eps[i].Allow, func(a, b gateway.AddrRange) int { return a.Start.Compare(b.Start) })
		}
		return eps
	}
	var prev []gateway.Endpoint
	for round := range 500 {
		if err := st.Update(ctx, func(tx store.Tx) error {
			for range 1 + rng.IntN(3) {
				step(tx)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		changed, err := cache.update(ctx, st)
		if err != nil {
			t.Fatal(err)
		}
		whole, err := Build(ctx, st, fixedSockets{}, scope)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := canon(cache.snapshot()), canon(whole); !reflect.DeepEqual(got, want) {
			t.Fatalf("round %d: incremental policy differs from the whole one:\n got %+v\nwant %+v", round, got, want)
		}
		if cache.rev != whole.Revision {
			t.Fatalf("round %d: revision %d; want %d", round, cache.rev, whole.Revision)
		}
		if !changed && !reflect.DeepEqual(canon(cache.snapshot()), prev) {
			t.Fatalf("round %d: the policy changed but update reported it unchanged", round)
		}
		prev = canon(cache.snapshot())
	}

	// Writes the policy is not made of: unchanged, and the revision advances.
	before := cache.rev
	if err := st.Update(ctx, func(tx store.Tx) error {
		put(tx, resource.MustParse(rg+"/providers/Microsoft.Network/virtualNetworks/v"), map[string]any{"name": "v"})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	changed, err := cache.update(ctx, st)
	if err != nil || changed || cache.rev <= before {
		t.Errorf("update after an unrelated write = %v, %v, rev %d (was %d); want false, nil, a later revision", changed, err, cache.rev, before)
	}
}

// TestUnder: the server or private endpoint a changed key is or is under.
func TestUnder(t *testing.T) {
	const s = "/subscriptions/s/resourcegroups/g/providers/microsoft.dbforpostgresql/flexibleservers/db"
	for key, want := range map[string]string{
		s:                                    s,
		s + "/firewallrules/r":               s,
		s + "/privateendpointconnections/pe": s,
		"/subscriptions/s/resourcegroups/g/providers/microsoft.dbforpostgresql/flexibleservers/": "",
		"/subscriptions/s/resourcegroups/g/providers/microsoft.network/privateendpoints/pe":      "",
		"op:123": "",
	} {
		if got := under(key, serverSegment); got != want {
			t.Errorf("under(%q) = %q; want %q", key, got, want)
		}
	}
}
