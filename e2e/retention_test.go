package e2e

import (
	"testing"
	"time"

	"github.com/pglink/pglink/internal/server"
	"github.com/pglink/pglink/internal/store"
)

// TestActivityRetention: pglink serve keeps at most --activity-max-events events, pruning the
// oldest when it starts (and hourly).
func TestActivityRetention(t *testing.T) {
	in := start(t, func(c *server.Config) { c.ActivityMaxEvents = 3 })
	sub := in.boot.SubscriptionID
	st := in.srv.Store()
	for i := range 10 {
		if err := st.Update(t.Context(), func(tx store.Tx) error {
			return tx.AppendEvent(t.Context(), store.Event{Subscription: sub, Time: time.Now(), Body: []byte(`{}`), Caller: "t", Status: "Succeeded", Provider: "x"})
		}); err != nil {
			t.Fatalf("append event %d: %v", i, err)
		}
	}
	in.restart()
	deadline := time.Now().Add(10 * time.Second)
	for {
		evs, err := in.srv.Store().Events(t.Context(), store.EventQuery{Subscription: sub})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) <= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("activity log after a restart with a cap of 3 holds %d events; want at most 3", len(evs))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
