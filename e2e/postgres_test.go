package e2e

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	pg "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/postgresql/armpostgresqlflexibleservers/v4"

	"github.com/pglink/pglink/internal/pgtest"
	"github.com/pglink/pglink/internal/server"
	"github.com/pglink/pglink/internal/store"
	"github.com/pglink/pglink/internal/store/postgres"
)

// TestPostgresStore runs pglink on a PostgreSQL store (--store postgres://…): the seed's
// workflow through the Azure SDK, then a restart on the same database that finds everything,
// resumes an operation whose worker died, and never logs the store's password.
func TestPostgresStore(t *testing.T) {
	cluster := pgtest.New(t)
	url := cluster.CreateDatabase(t)
	var logs syncBuffer
	in := start(t, func(c *server.Config) {
		c.Store = url
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	if _, ok := in.srv.Store().(*postgres.DB); !ok {
		t.Fatalf("store = %T; want *postgres.DB", in.srv.Store())
	}
	c := newClients(t, in)
	ctx := ctxT(t)
	c.group(t, "rg")
	srv := c.server(t, "rg", "db1")
	subnet := c.vnet(t, "rg", "vnet")
	if _, err := c.endpoint(t, "rg", "pe1", subnet, *srv.ID, true, "hello"); err != nil {
		t.Fatal(err)
	}
	pec := c.onlyConnection(t, "rg", "db1")
	if _, err := c.setStatus(ctx, "rg", "db1", *pec.Name, pg.PrivateEndpointServiceConnectionStatusApproved, "ok"); err != nil {
		t.Fatal(err)
	}

	// A crash in the middle of a stop, made while pglink is down: the server is Stopping and
	// its operation is leased by a worker that no longer exists.
	in.stop()
	id := *srv.ID
	st, err := postgres.Open(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = st.Update(ctx, func(tx store.Tx) error {
		r, err := tx.Get(ctx, strings.ToLower(id))
		if err != nil {
			return err
		}
		r.Body = bytes.Replace(r.Body, []byte(`"state":"Ready"`), []byte(`"state":"Stopping"`), 1)
		if _, err := tx.Put(ctx, r, ""); err != nil {
			return err
		}
		input, _ := json.Marshal(map[string]any{"meta": map[string]any{"action": "Microsoft.DBforPostgreSQL/flexibleServers/stop/action"}, "data": "stop"})
		now := time.Now().UTC()
		_, err = tx.PutOperation(ctx, store.Operation{ID: "crashed-op", ResourceKey: strings.ToLower(id), ResourceID: id,
			Kind: "postgresql.server.action", Goal: "x", Status: store.OpInProgress, Input: input, Method: "POST",
			LeaseOwner: "dead-worker", LeaseUntil: now.Add(-time.Second), Attempts: 1, Created: now, Updated: now})
		return err
	})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}

	in.restart()
	c = newClients(t, in)
	deadline := time.Now().Add(15 * time.Second)
	for {
		got, err := c.servers.Get(ctx, "rg", "db1", nil)
		if err != nil {
			t.Fatalf("get server after restart: %v", err)
		}
		if *got.Properties.State == pg.ServerStateStopped {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("state after restart = %s; want the resumed stop to reach Stopped", *got.Properties.State)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if s := *c.onlyConnection(t, "rg", "db1").Properties.PrivateLinkServiceConnectionState.Status; s != pg.PrivateEndpointServiceConnectionStatusApproved {
		t.Errorf("connection after restart = %s; want Approved", s)
	}
	if _, err := c.pes.Get(ctx, "rg", "pe1", nil); err != nil {
		t.Errorf("get private endpoint after restart: %v", err)
	}

	log := logs.Bytes()
	if bytes.Contains(log, []byte(cluster.Password)) {
		t.Errorf("pglink's log holds the store's password")
	}
	if want := postgres.Redacted(url); !bytes.Contains(log, []byte(want)) {
		t.Errorf("pglink's log does not name the store as %s", want)
	}
}

// TestUnsupportedStoreHidesPassword: a store URL pglink does not know is refused without
// echoing its password.
func TestUnsupportedStoreHidesPassword(t *testing.T) {
	cfg := server.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	cfg.Engine = "records"
	cfg.Store = "postgress://pglink:s3cret@db.example.com/pglink"
	srv, err := server.Start(t.Context(), cfg)
	if err == nil {
		srv.Close()
		t.Fatalf("Start(store %s) = nil; want an error", cfg.Store)
	}
	if strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "postgress://pglink:xxxxx@db.example.com/pglink") {
		t.Errorf("Start(misspelled store URL) = %v; want an error naming the URL without its password", err)
	}
}
