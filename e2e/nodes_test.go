package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/store"
)

// TestNodeRemove: the delete of a server whose node is gone waits for the node; removing the
// node (DELETE /pglink/v1/nodes/{name}, `pglink node remove`) hands the operation to another
// node and the delete finishes. An Available node cannot be removed, an unknown one is 404, a
// caller without Microsoft.Pglink/nodes/delete at the root is 403, and the removal is in the
// activity log.
func TestNodeRemove(t *testing.T) {
	in := start(t, nil)
	c := newClients(t, in)
	ctx := ctxT(t)
	st := in.srv.Store()
	c.group(t, "rg")
	srv := c.server(t, "rg", "orphan")
	key := strings.ToLower(*srv.ID)

	// The server lives on node "gone", whose heartbeats stopped; node "alive" is Available.
	now := time.Now()
	for _, n := range []store.Node{
		{Name: "gone", Network: "127.201.0.0/24", Started: now.Add(-time.Hour), Heartbeat: now.Add(-time.Minute), Expires: now.Add(-55 * time.Second)},
		{Name: "alive", Network: "127.202.0.0/24", Started: now, Heartbeat: now, Expires: now.Add(time.Hour)},
	} {
		if err := st.PutNode(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Update(ctx, func(tx store.Tx) error {
		r, err := tx.Get(ctx, key)
		if err != nil {
			return err
		}
		var doc map[string]any
		if err := json.Unmarshal(r.Body, &doc); err != nil {
			return err
		}
		doc["properties"].(map[string]any)["dataPlane"] = map[string]any{"address": "127.201.0.1:5432", "node": "gone"}
		if r.Body, err = json.Marshal(doc); err != nil {
			return err
		}
		_, err = tx.Put(ctx, r, "")
		return err
	}); err != nil {
		t.Fatal(err)
	}

	del := in.do(t, "DELETE", *srv.ID+"?api-version=2024-08-01", in.token(), nil, nil)
	if del.status != http.StatusAccepted {
		t.Fatalf("DELETE server = %d %s; want 202", del.status, del.raw)
	}
	time.Sleep(1500 * time.Millisecond)
	if r := in.do(t, "GET", *srv.ID+"?api-version=2024-08-01", in.token(), nil, nil); r.status != 200 {
		t.Fatalf("GET server while its node is gone = %d %s; want 200: the delete waits for the node", r.status, r.raw)
	}

	_, appID, secret := in.newSP(t, "no-roles")
	for _, tc := range []struct {
		name, node, token string
		status            int
		code              string
	}{
		{"without the role", "gone", in.tokenFor(t, appID, secret), 403, "AuthorizationFailed"},
		{"Available", "alive", in.token(), 409, "NodeIsAvailable"},
		{"unknown", "nowhere", in.token(), 404, "NodeNotFound"},
		{"without a token", "gone", "", 401, "InvalidAuthenticationToken"},
	} {
		if r := in.do(t, "DELETE", "/pglink/v1/nodes/"+tc.node, tc.token, nil, nil); r.status != tc.status || r.code() != tc.code {
			t.Errorf("remove node %s %s = %d %s; want %d %s", tc.node, tc.name, r.status, r.raw, tc.status, tc.code)
		}
	}

	if r := in.do(t, "DELETE", "/pglink/v1/nodes/gone", in.token(), nil, nil); r.status != http.StatusNoContent {
		t.Fatalf("remove node gone = %d %s; want 204", r.status, r.raw)
	}
	nodes := in.do(t, "GET", "/pglink/v1/nodes", in.token(), nil, nil)
	if strings.Contains(string(nodes.raw), `"gone"`) || !strings.Contains(string(nodes.raw), `"alive"`) {
		t.Errorf("nodes after the removal = %s; want alive only", nodes.raw)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := in.do(t, "GET", *srv.ID+"?api-version=2024-08-01", in.token(), nil, nil)
		if r.status == http.StatusNotFound {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server 30 s after its node was removed: %d %s; want it deleted", r.status, r.raw)
		}
		time.Sleep(100 * time.Millisecond)
	}

	evs, err := st.Events(context.Background(), store.EventQuery{Subscription: in.boot.SubscriptionID,
		ResourceID: "/providers/Microsoft.Pglink/nodes/gone"})
	if err != nil || len(evs) != 1 || !strings.Contains(string(evs[0].Body), "Microsoft.Pglink/nodes/delete") {
		t.Errorf("activity log of the removal = %d events, %v; want one Microsoft.Pglink/nodes/delete", len(evs), err)
	}
}
