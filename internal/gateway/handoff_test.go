package gateway

import (
	"context"
	"strings"
	"testing"
)

// TestHandoff hands a gateway's listeners and plain sessions to a successor in the same
// process, as two gateway processes do: plain sessions carry on (an open transaction, a query
// in flight), new clients reach the successor, revocation works on adopted sessions, and the
// TLS session stays with the old gateway until it shuts down.
func TestHandoff(t *testing.T) {
	pg := startPostgres(t)
	ctx := t.Context()
	old := newGateway(t, Config{TLS: testTLS(t)})
	a := freeAddr(t)
	apply(t, old, 1, private(a, "a", pg.Socket))

	inTx := mustConnect(t, a, pg, connOpts{})
	for _, q := range []string{"begin", "create temp table t(x int)", "insert into t values (1)"} {
		if _, err := inTx.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	tlsConn := mustConnect(t, a, pg, connOpts{sslmode: "require"})
	busy := mustConnect(t, a, pg, connOpts{})
	answer := make(chan error, 1)
	go func() {
		var n int
		err := busy.QueryRow(ctx, "select 42 from pg_sleep(0.5)").Scan(&n)
		if err == nil && n != 42 {
			err = context.Canceled
		}
		answer <- err
	}()

	files, err := old.ListenerFiles()
	if err != nil {
		t.Fatal(err)
	}
	nu := newGateway(t, Config{TLS: testTLS(t)})
	if err := nu.Inherit(files); err != nil {
		t.Fatal(err)
	}
	apply(t, nu, 1, private(a, "a", pg.Socket))
	hs, socks := old.DetachPlain()
	if len(hs) != 2 {
		t.Fatalf("DetachPlain() = %d sessions; want the 2 plain ones", len(hs))
	}
	if err := nu.Adopt(hs, socks); err != nil {
		t.Fatal(err)
	}
	old.StopAccepting()

	if got := len(nu.Sessions()); got != 2 {
		t.Errorf("successor has %d sessions; want 2", got)
	}
	if got := old.Sessions(); len(got) != 1 || !got[0].TLS {
		t.Errorf("old gateway keeps %+v; want the TLS session only", got)
	}
	if err := <-answer; err != nil {
		t.Errorf("query in flight during the handoff: %v", err)
	}
	var n int
	if err := inTx.QueryRow(ctx, "select count(*) from t").Scan(&n); err != nil || n != 1 {
		t.Errorf("transaction across the handoff: count = %d, %v; want 1", n, err)
	}
	if _, err := inTx.Exec(ctx, "commit"); err != nil {
		t.Errorf("commit after the handoff: %v", err)
	}
	if err := selectOne(ctx, tlsConn); err != nil {
		t.Errorf("TLS session on the old gateway: %v", err)
	}
	admitted := nu.Stats().Admitted
	c := mustConnect(t, a, pg, connOpts{})
	if err := selectOne(ctx, c); err != nil {
		t.Fatal(err)
	}
	if got := nu.Stats().Admitted; got != admitted+1 {
		t.Errorf("successor admitted %d; want %d: new clients go to it", got, admitted+1)
	}

	// Revocation reaches adopted sessions.
	refused := private(a, "a", pg.Socket)
	refused.Refuse = `private endpoint connection "x" was Rejected`
	apply(t, nu, 2, refused)
	if err := selectOne(ctx, busy); err == nil {
		t.Error("adopted session still works after a revocation")
	} else if pe := pgError(t, err); pe.Code != "57P01" || !strings.Contains(pe.Message, "Rejected") {
		t.Errorf("adopted session after a revocation: %s %q; want 57P01 Rejected", pe.Code, pe.Message)
	}

	// The old gateway ends its TLS session with 57P01 when it is done draining.
	if err := old.Shutdown("pglink gateway is being replaced; reconnect", ""); err != nil {
		t.Fatal(err)
	}
	if err := selectOne(ctx, tlsConn); err == nil {
		t.Error("TLS session works after the old gateway shut down")
	} else if pe := pgError(t, err); pe.Code != "57P01" || !strings.Contains(pe.Message, "being replaced") {
		t.Errorf("TLS session after the old gateway shut down: %s %q; want 57P01", pe.Code, pe.Message)
	}
}
