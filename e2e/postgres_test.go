package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	pg "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/postgresql/armpostgresqlflexibleservers/v4"
	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5"

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

// TestReplicasShareFirstStart: two pglink processes started together on one PostgreSQL store,
// each with a data dir of its own, are one control plane: the same tenant, subscription and
// administrator in each bootstrap.json (with its own armEndpoint), the same CA and token signing
// key, and one state.
func TestReplicasShareFirstStart(t *testing.T) {
	url := pgtest.New(t).CreateDatabase(t)
	const n = 2
	var logs syncBuffer
	ins := make([]*instance, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		cfg := server.DefaultConfig()
		cfg.DataDir = t.TempDir()
		cfg.Listen = "127.0.0.1:0"
		cfg.Engine = "records"
		cfg.Store = url
		cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		ins[i] = &instance{t: t, dir: cfg.DataDir, cfg: cfg}
		wg.Go(func() {
			var srv *server.Server
			if srv, errs[i] = server.Start(context.Background(), cfg); errs[i] == nil {
				ins[i].srv, ins[i].boot = srv, srv.Bootstrap()
			}
		})
	}
	wg.Wait()
	for i, in := range ins {
		t.Cleanup(in.stop)
		if errs[i] != nil {
			t.Fatalf("start replica %d: %v", i, errs[i])
		}
	}
	if got := bytes.Count(logs.Bytes(), []byte("stored the first-start state")); got != 1 {
		t.Errorf("%d replicas stored the first-start state; want 1\n%s", got, logs.Bytes())
	}
	a, b := ins[0], ins[1]
	same := func(x server.Bootstrap) server.Bootstrap {
		x.ARMEndpoint, x.AuthorityHost, x.CACertFile = "", "", ""
		return x
	}
	if same(a.boot) != same(b.boot) {
		t.Errorf("replicas' bootstrap.json differ: tenant %s, client %s vs tenant %s, client %s; want the same but the endpoints",
			a.boot.TenantID, a.boot.ClientID, b.boot.TenantID, b.boot.ClientID)
	}
	if a.boot.ARMEndpoint == b.boot.ARMEndpoint {
		t.Errorf("both replicas' armEndpoint = %s; want each its own", a.boot.ARMEndpoint)
	}
	for _, in := range ins {
		if disk, err := server.ReadBootstrap(in.dir); err != nil || disk != in.boot {
			t.Errorf("%s/bootstrap.json = %+v, %v; want %+v", in.dir, disk, err, in.boot)
		}
	}
	caA, errA := os.ReadFile(a.boot.CACertFile)
	caB, errB := os.ReadFile(b.boot.CACertFile)
	if errA != nil || errB != nil || !bytes.Equal(caA, caB) {
		t.Errorf("replicas' CA certificates differ (%v, %v); want one CA", errA, errB)
	}

	// The administrator is one principal with one secret: each replica's credential works at
	// it, and what one writes the other reads.
	ctx := ctxT(t)
	atB := newClients(t, b)
	atB.group(t, "rg")
	atA := newClients(t, a)
	srv := atA.server(t, "rg", "db1") // its operation is run by either replica's workers
	got, err := atB.servers.Get(ctx, "rg", "db1", nil)
	if err != nil || *got.ID != *srv.ID {
		t.Errorf("get at replica B of a server created at A = %v; want it", err)
	}

	// Both sign tokens with the one key (each names itself the issuer).
	type key struct{ Kid, N, E string }
	jwks := func(in *instance) []key {
		resp, err := in.httpClient().Get(in.boot.AuthorityHost + "/" + in.boot.TenantID + "/discovery/v2.0/keys")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var doc struct{ Keys []key }
		if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || resp.StatusCode != 200 || len(doc.Keys) == 0 {
			t.Fatalf("GET keys at %s = %d, %v", in.boot.AuthorityHost, resp.StatusCode, err)
		}
		return doc.Keys
	}
	if ka, kb := jwks(a), jwks(b); !slices.Equal(ka, kb) {
		t.Errorf("replicas' signing keys: %v and %v; want one key", ka, kb)
	}
}

// TestReplicasBehindOnePublicURL: replicas on one store that advertise one public URL issue
// and accept the same tokens, and what one writes the other serves: a client may land on any.
func TestReplicasBehindOnePublicURL(t *testing.T) {
	a, b, atB, public := replicasBehindOnePublicURL(t)
	for _, in := range []*instance{a, b} {
		if in.boot.ARMEndpoint != public || in.boot.AuthorityHost != public {
			t.Errorf("bootstrap endpoints = %s, %s; want the public URL %s", in.boot.ARMEndpoint, in.boot.AuthorityHost, public)
		}
	}
	// A token issued by replica A (the public URL) is good at replica B's own address.
	tok := a.token()
	sub := "/subscriptions/" + a.boot.SubscriptionID + "?api-version=2022-12-01"
	if st, body := atB.call(t, tok, "GET", sub, nil); st != 200 {
		t.Fatalf("GET subscription at replica B with A's token = %d %s; want 200", st, body)
	}
	// A write through A is served by B.
	if st, body := a.call(t, tok, "PUT", "/subscriptions/"+a.boot.SubscriptionID+"/resourceGroups/shared?api-version=2022-09-01",
		map[string]string{"location": "eastus"}); st != 201 {
		t.Fatalf("create a group at A = %d %s", st, body)
	}
	if st, body := atB.call(t, tok, "GET", "/subscriptions/"+a.boot.SubscriptionID+"/resourceGroups/shared?api-version=2022-09-01", nil); st != 200 {
		t.Errorf("read the group at B = %d %s; want 200", st, body)
	}
	// B's certificate names the public host as well as its own.
	if _, err := b.httpClient().Get(public + "/healthz"); err != nil {
		t.Errorf("healthz at the public URL: %v", err)
	}
}

// replicasBehindOnePublicURL starts two replicas on one new PostgreSQL store that advertise
// one public URL, replica A's address: it returns them, replica B as reached at its own
// address (atB: its endpoints are B's address, not the public URL), and the public URL.
func replicasBehindOnePublicURL(t *testing.T) (a, b, atB *instance, public string) {
	t.Helper()
	url := pgtest.New(t).CreateDatabase(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addrA := ln.Addr().String()
	ln.Close()
	public = "https://" + addrA
	var ins []*instance
	for _, listen := range []string{addrA, "127.0.0.1:0"} {
		cfg := server.DefaultConfig()
		cfg.DataDir, cfg.Listen, cfg.Engine, cfg.Store, cfg.PublicURL = t.TempDir(), listen, "records", url, public
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
		srv, err := server.Start(context.Background(), cfg)
		if err != nil {
			t.Fatalf("start replica on %s: %v", listen, err)
		}
		in := &instance{t: t, dir: cfg.DataDir, cfg: cfg, srv: srv, boot: srv.Bootstrap()}
		t.Cleanup(in.stop)
		ins = append(ins, in)
	}
	a, b = ins[0], ins[1]
	atB = &instance{t: t, dir: b.dir, cfg: b.cfg, srv: b.srv, boot: b.boot}
	atB.boot.ARMEndpoint = "https://" + b.srv.Addr()
	atB.boot.AuthorityHost = atB.boot.ARMEndpoint
	return a, b, atB, public
}

// TestStoreUnavailable: while the PostgreSQL store refuses connections, requests get 503
// ServiceUnavailable with Retry-After (not a 500, not a 401); once it is back, they succeed
// again, with no restart.
func TestStoreUnavailable(t *testing.T) {
	cluster := pgtest.New(t)
	dbURL := cluster.CreateDatabase(t)
	u, err := neturl.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	dbName := strings.TrimPrefix(u.Path, "/")
	in := start(t, func(c *server.Config) { c.Store = dbURL })
	tok := in.token()
	path := in.boot.ARMEndpoint + "/subscriptions/" + in.boot.SubscriptionID + "?api-version=2022-12-01"
	get := func() (int, string) {
		req, _ := http.NewRequest("GET", path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := in.httpClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}
	if st, _ := get(); st != 200 {
		t.Fatalf("GET subscription = %d; want 200", st)
	}
	admin, err := pgx.Connect(t.Context(), cluster.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	allow := func(on bool) {
		t.Helper()
		if _, err := admin.Exec(t.Context(), fmt.Sprintf(`ALTER DATABASE %s ALLOW_CONNECTIONS %v`, dbName, on)); err != nil {
			t.Fatal(err)
		}
	}
	allow(false)
	t.Cleanup(func() {
		admin.Exec(context.Background(), fmt.Sprintf(`ALTER DATABASE %s ALLOW_CONNECTIONS true`, dbName))
	})
	if _, err := admin.Exec(t.Context(), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1`, dbName); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		st, retry := get()
		if st == http.StatusServiceUnavailable && retry != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET while the store refuses connections = %d (Retry-After %q); want 503 with Retry-After", st, retry)
		}
		time.Sleep(100 * time.Millisecond)
	}
	allow(true)
	deadline = time.Now().Add(15 * time.Second)
	for {
		st, _ := get()
		if st == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET after the store came back = %d; want 200", st)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestReplicasRotateKeysTogether: replicas on one store share the signing key ring, so while
// keys rotate every token one replica issues is accepted by the other at every moment.
func TestReplicasRotateKeysTogether(t *testing.T) {
	dbURL := pgtest.New(t).CreateDatabase(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addrA := ln.Addr().String()
	ln.Close()
	public := "https://" + addrA
	var ins []*instance
	for _, listen := range []string{addrA, "127.0.0.1:0"} {
		cfg := server.DefaultConfig()
		cfg.DataDir, cfg.Listen, cfg.Engine, cfg.Store, cfg.PublicURL = t.TempDir(), listen, "records", dbURL, public
		cfg.SigningKeyRotation, cfg.SigningKeyLead, cfg.SigningKeyOverlap = 2*time.Second, time.Second, 3*time.Second
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
		srv, err := server.Start(context.Background(), cfg)
		if err != nil {
			t.Fatalf("start replica on %s: %v", listen, err)
		}
		in := &instance{t: t, dir: cfg.DataDir, cfg: cfg, srv: srv, boot: srv.Bootstrap()}
		t.Cleanup(in.stop)
		ins = append(ins, in)
	}
	a, b := ins[0], ins[1]
	atB := &instance{t: t, dir: b.dir, cfg: b.cfg, srv: b.srv, boot: b.boot}
	atB.boot.ARMEndpoint = "https://" + b.srv.Addr()
	sub := "/subscriptions/" + a.boot.SubscriptionID + "?api-version=2022-12-01"
	kids := map[string]bool{}
	for end := time.Now().Add(7 * time.Second); time.Now().Before(end); time.Sleep(150 * time.Millisecond) {
		tok := a.token()
		p, _, err := jwt.NewParser().ParseUnverified(tok, jwt.MapClaims{})
		if err != nil {
			t.Fatal(err)
		}
		kids[p.Header["kid"].(string)] = true
		if st, body := atB.call(t, tok, "GET", sub, nil); st != 200 {
			t.Fatalf("replica B refused a token replica A issued with key %v: %d %s", p.Header["kid"], st, body)
		}
	}
	if len(kids) < 2 {
		t.Errorf("tokens were signed by %d keys in 7 s; want the key to have rotated", len(kids))
	}
}
