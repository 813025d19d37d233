package postgresql_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/arm"
	"github.com/pglink/pglink/internal/engine"
	"github.com/pglink/pglink/internal/identity"
	"github.com/pglink/pglink/internal/operation"
	"github.com/pglink/pglink/internal/providers/network"
	"github.com/pglink/pglink/internal/providers/postgresql"
	"github.com/pglink/pglink/internal/providers/resources"
	"github.com/pglink/pglink/internal/resource"
	"github.com/pglink/pglink/internal/store"
	"github.com/pglink/pglink/internal/store/sqlite"
)

// fakeEngine is an engine whose servers are records that may be running, and whose methods
// fail on demand. It is safe for concurrent use.
type fakeEngine struct {
	mu       sync.Mutex
	clusters map[string]bool          // guarded by mu: server key -> running
	fail     map[string]error         // guarded by mu: method -> error it returns
	hook     map[string]func()        // guarded by mu: method -> run before it returns
	calls    map[string]int           // guarded by mu: method -> times called
	block    map[string]chan struct{} // guarded by mu: method -> closed when it may return
}

func newFakeEngine() *fakeEngine {
	return &fakeEngine{clusters: map[string]bool{}, fail: map[string]error{}, hook: map[string]func(){},
		calls: map[string]int{}, block: map[string]chan struct{}{}}
}

// call records a call of method and returns the error to fail it with, after running change
// (what the method does to the cluster, which a failing method may have half done).
func (e *fakeEngine) call(method string, change func()) error {
	e.mu.Lock()
	e.calls[method]++
	hook, block := e.hook[method], e.block[method]
	e.mu.Unlock()
	if block != nil {
		<-block
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if change != nil {
		change()
	}
	if hook != nil {
		hook()
	}
	return e.fail[method]
}

func (e *fakeEngine) setFail(method string, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err == nil {
		delete(e.fail, method)
	} else {
		e.fail[method] = err
	}
}

func (e *fakeEngine) setHook(method string, f func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if f == nil {
		delete(e.hook, method)
	} else {
		e.hook[method] = f
	}
}

func (e *fakeEngine) cluster(id resource.ID) (exists, running bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	running, exists = e.clusters[id.Key()]
	return exists, running
}

func (e *fakeEngine) Create(ctx context.Context, s engine.Spec) error {
	return e.call("create", func() { e.clusters[s.ID.Key()] = true })
}
func (e *fakeEngine) Start(ctx context.Context, id resource.ID) error {
	return e.call("start", func() {
		if _, ok := e.clusters[id.Key()]; ok && e.fail["start"] == nil {
			e.clusters[id.Key()] = true
		}
	})
}
func (e *fakeEngine) Stop(ctx context.Context, id resource.ID) error {
	return e.call("stop", func() {
		if _, ok := e.clusters[id.Key()]; ok && e.fail["stop"] == nil {
			e.clusters[id.Key()] = false
		}
	})
}
func (e *fakeEngine) Restart(ctx context.Context, id resource.ID) error {
	return e.call("restart", func() {
		if _, ok := e.clusters[id.Key()]; ok && e.fail["restart"] != nil {
			e.clusters[id.Key()] = false // stopped, then failed to start again
		}
	})
}
func (e *fakeEngine) Delete(ctx context.Context, id resource.ID) error {
	err := e.call("delete", func() {
		if e.fail["delete"] == nil && e.fail["delete "+id.Name()] == nil {
			delete(e.clusters, id.Key())
		}
	})
	if err == nil {
		e.mu.Lock()
		err = e.fail["delete "+id.Name()]
		e.mu.Unlock()
	}
	return err
}
func (e *fakeEngine) SetPassword(ctx context.Context, id resource.ID, login, password string) error {
	return e.call("setpassword", nil)
}
func (e *fakeEngine) MinorVersion(string) string { return "1" }
func (e *fakeEngine) Versions() []string         { return []string{"16"} }
func (e *fakeEngine) Running(id resource.ID) bool {
	_, running := e.cluster(id)
	return running
}

// faultyStore fails a write of a resource whose key contains a given string: what a commit
// that fails looks like.
type faultyStore struct {
	store.Store
	mu    sync.Mutex
	armed []fault // guarded by mu
}

type fault struct {
	keyPart string
	skip    int // writes of the key to let through first
}

// failWrite makes the write of a key containing keyPart fail once, after skip writes of it.
func (s *faultyStore) failWrite(keyPart string, skip int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.armed = append(s.armed, fault{strings.ToLower(keyPart), skip})
}

func (s *faultyStore) trip(key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.armed {
		f := &s.armed[i]
		if !strings.Contains(key, f.keyPart) {
			continue
		}
		if f.skip > 0 {
			f.skip--
			return nil
		}
		s.armed = append(s.armed[:i], s.armed[i+1:]...)
		return fmt.Errorf("write %s: %w", key, errors.New("injected storage failure"))
	}
	return nil
}

func (s *faultyStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	return s.Store.Update(ctx, func(tx store.Tx) error { return fn(faultyTx{tx, s}) })
}

type faultyTx struct {
	store.Tx
	s *faultyStore
}

func (t faultyTx) Put(ctx context.Context, r store.Resource, ifETag string) (store.Resource, error) {
	if err := t.s.trip(r.Key); err != nil {
		return r, err
	}
	return t.Tx.Put(ctx, r, ifETag)
}

func (t faultyTx) Delete(ctx context.Context, key string) error {
	if err := t.s.trip(key); err != nil {
		return err
	}
	return t.Tx.Delete(ctx, key)
}

type anyone struct{}

func (anyone) Authenticate(*http.Request) (identity.Principal, error) {
	return identity.Principal{ObjectID: "oid", AppID: "app", Name: "tester", Kind: "ServicePrincipal", TenantID: "t"}, nil
}

// rig is the control plane of one test: the real store, front door, operation workers and
// providers, with a fake engine and a store that can fail writes.
type rig struct {
	t     *testing.T
	eng   *fakeEngine
	st    *faultyStore
	url   string
	start func() // starts the workers, if newRig did not
}

const sub = "/subscriptions/00000000-0000-0000-0000-000000000001"

func newRig(t *testing.T) *rig { return newRigWith(t, 20*time.Second, true) }

// newRigWith is newRig with requests that wait at most inlineWait for their operation, and
// workers that start only when rig.start is called, unless run.
func newRigWith(t *testing.T, inlineWait time.Duration, run bool) *rig {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithCancel(context.Background())
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "pglink.db"), log)
	if err != nil {
		t.Fatal(err)
	}
	st := &faultyStore{Store: db}
	if err := resources.EnsureSubscription(ctx, st, strings.TrimPrefix(sub, "/subscriptions/"), "t", "test"); err != nil {
		t.Fatal(err)
	}
	eng := newFakeEngine()
	w := operation.NewWorkers(st, log, operation.Options{RetryDelay: time.Millisecond})
	front := arm.New(arm.Config{Endpoint: "http://unused", TenantID: "t", InlineWait: inlineWait}, st, anyone{}, w, log)
	net := network.New(st, nil, log)
	pg := postgresql.New(st, eng, net, nil, log)
	net.AddTarget(resource.TypeServer, pg)
	rs := resources.New(st, log, []resources.Remover{
		{Type: resource.TypePrivateEndpoint, Remove: net.RemoveEndpoint},
		{Type: resource.TypeConnection, Remove: pg.RemoveConnection},
		{Type: resource.TypeServer, Cleanup: pg.Cleanup, Remove: pg.RemoveServer},
		{Type: resource.TypeSubnet, Remove: net.RemoveSubnet},
		{Type: resource.TypeVirtualNetwork, Remove: net.RemoveVirtualNetwork},
	})
	front.Register(rs.Types()...)
	front.Register(pg.Types()...)
	front.Register(net.Types()...)
	front.RegisterOperationStatus(postgresql.Namespace, postgresql.APIVersions)
	front.RegisterOperationStatus("Microsoft.Resources", resources.APIVersions)
	rs.Register(w)
	pg.Register(w)
	srv := httptest.NewServer(front)
	done := make(chan struct{})
	var once sync.Once
	startWorkers := func() { once.Do(func() { go func() { w.Run(ctx); close(done) }() }) }
	if run {
		startWorkers()
	}
	t.Cleanup(func() {
		srv.Close()
		cancel()
		startWorkers() // so that done closes
		<-done
		db.Close()
	})
	return &rig{t: t, eng: eng, st: st, url: srv.URL, start: startWorkers}
}

// reply is an API answer.
type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (r reply) code() string {
	e, _ := r.body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

// str returns the string at a dotted path of the body, "" if there is none.
func (r reply) str(path string) string {
	var v any = r.body
	for _, k := range strings.Split(path, ".") {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	s, _ := v.(string)
	return s
}

// do sends a request to path (below the subscription) and returns the answer.
func (g *rig) do(method, path string, body any) reply {
	g.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	api := "2025-08-01"
	switch {
	case strings.Contains(path, "Microsoft.Network"):
		api = "2024-05-01"
	case !strings.Contains(path, "/providers/"):
		api = "2021-04-01"
	}
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	req, err := http.NewRequest(method, g.url+sub+path+sep+"api-version="+api, rd)
	if err != nil {
		g.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		g.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	json.Unmarshal(raw, &r.body)
	return r
}

// must sends a request that must succeed.
func (g *rig) must(method, path string, body any) reply {
	g.t.Helper()
	r := g.do(method, path, body)
	if r.status >= 300 {
		g.t.Fatalf("%s %s = %d %s; want success", method, path, r.status, r.raw)
	}
	return r
}

const server = "/resourceGroups/rg/providers/Microsoft.DBforPostgreSQL/flexibleServers/db1"

func serverBody() map[string]any {
	return map[string]any{"location": "eastus", "properties": map[string]any{
		"administratorLogin": "dbadmin", "administratorLoginPassword": "S3cret-pass!", "version": "16"}}
}

// setup makes group rg with server db1 (Ready), firewall rule r1, and a private endpoint pe1
// whose connection on db1 is Pending; it returns the connection's path.
func (g *rig) setup() string {
	g.t.Helper()
	g.must("PUT", "/resourceGroups/rg", map[string]any{"location": "eastus"})
	if r := g.must("PUT", server, serverBody()); r.str("properties.state") != "Ready" {
		g.t.Fatalf("new server: %s", r.raw)
	}
	g.must("PUT", server+"/firewallRules/r1", map[string]any{"properties": map[string]any{"startIpAddress": "10.0.0.1", "endIpAddress": "10.0.0.1"}})
	g.must("PUT", "/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/vnet", map[string]any{"location": "eastus",
		"properties": map[string]any{"addressSpace": map[string]any{"addressPrefixes": []string{"10.0.0.0/16"}},
			"subnets": []any{map[string]any{"name": "pe", "properties": map[string]any{"addressPrefix": "10.0.1.0/24"}}}}})
	g.must("PUT", "/resourceGroups/rg/providers/Microsoft.Network/privateEndpoints/pe1", map[string]any{"location": "eastus",
		"properties": map[string]any{"subnet": map[string]any{"id": sub + "/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/vnet/subnets/pe"},
			"manualPrivateLinkServiceConnections": []any{map[string]any{"name": "c", "properties": map[string]any{
				"privateLinkServiceId": sub + server, "groupIds": []string{"postgresqlServer"}}}}}})
	list := g.must("GET", server+"/privateEndpointConnections", nil)
	conns, _ := list.body["value"].([]any)
	if len(conns) != 1 {
		g.t.Fatalf("connections: %s", list.raw)
	}
	name, _ := conns[0].(map[string]any)["name"].(string)
	return server + "/privateEndpointConnections/" + name
}

var (
	userErr     = resource.Errorf(resource.Invalid, "EngineRefused", "the engine refused")
	internalErr = errors.New("engine crashed")
)

// TestEveryOperationKindFailsSanely injects a failure into each kind of operation — an error
// for the user, an internal error retried until the attempts run out, and a commit that
// fails — and checks that the resource ends in a sane state and that the next request works.
func TestEveryOperationKindFailsSanely(t *testing.T) {
	approve := map[string]any{"properties": map[string]any{"privateLinkServiceConnectionState": map[string]any{"status": "Approved", "description": "ok"}}}
	type check func(g *rig, conn string)
	state := func(want string) check {
		return func(g *rig, conn string) {
			g.t.Helper()
			if got := g.must("GET", server, nil).str("properties.state"); got != want {
				g.t.Errorf("server state after the failure = %s; want %s", got, want)
			}
		}
	}
	for _, tc := range []struct {
		name string
		// inject arms the failure, given the engine method or key to fail.
		engine    string
		engineErr error
		failWrite string // key part whose write fails during the operation: the commit's
		skip      int    // writes of failWrite to let through first (the request's own)
		method    string
		path      func(conn string) string
		body      any
		wantCode  string
		after     check  // the state the failure leaves
		again     string // the next request, if not the same one
		fresh     bool   // no setup: the create itself is the operation
		stopped   bool   // stop the server first
	}{
		{name: "create/user", fresh: true, engine: "create", engineErr: userErr, method: "PUT", wantCode: "EngineRefused"},
		{name: "create/internal", fresh: true, engine: "create", engineErr: internalErr, method: "PUT", wantCode: "InternalServerError"},
		{name: "create/commit", fresh: true, engine: "create", failWrite: "flexibleservers/db1", method: "PUT", wantCode: "InternalServerError"},
		{name: "update/user", engine: "setpassword", engineErr: userErr, method: "PATCH", wantCode: "EngineRefused", after: state("Ready")},
		{name: "update/internal", engine: "setpassword", engineErr: internalErr, method: "PATCH", wantCode: "InternalServerError", after: state("Ready")},
		{name: "update/commit", engine: "setpassword", failWrite: "flexibleservers/db1", method: "PATCH", wantCode: "InternalServerError", after: state("Ready")},
		{name: "stop/user", engine: "stop", engineErr: userErr, method: "POST", path: func(string) string { return server + "/stop" }, wantCode: "EngineRefused", after: state("Ready")},
		{name: "stop/internal", engine: "stop", engineErr: internalErr, method: "POST", path: func(string) string { return server + "/stop" }, wantCode: "InternalServerError", after: state("Ready")},
		{name: "stop/commit", engine: "stop", failWrite: "flexibleservers/db1", method: "POST", path: func(string) string { return server + "/stop" }, wantCode: "InternalServerError", after: state("Stopped"), again: "/start"},
		{name: "start/user", engine: "start", engineErr: userErr, method: "POST", path: func(string) string { return server + "/start" }, wantCode: "EngineRefused", after: state("Stopped"), stopped: true},
		{name: "restart/internal", engine: "restart", engineErr: internalErr, method: "POST", path: func(string) string { return server + "/restart" }, wantCode: "InternalServerError", after: state("Stopped"), again: "/start"},
		{name: "restart/commit", engine: "restart", failWrite: "flexibleservers/db1", method: "POST", path: func(string) string { return server + "/restart" }, wantCode: "InternalServerError", after: state("Ready")},
		{name: "delete/user", engine: "delete", engineErr: userErr, method: "DELETE", path: func(string) string { return server }, wantCode: "EngineRefused", after: state("Ready")},
		{name: "delete/internal", engine: "delete", engineErr: internalErr, method: "DELETE", path: func(string) string { return server }, wantCode: "InternalServerError", after: state("Ready")},
		{name: "firewall put/commit", failWrite: "firewallrules/r2", method: "PUT", path: func(string) string { return server + "/firewallRules/r2" },
			body: map[string]any{"properties": map[string]any{"startIpAddress": "10.0.0.2", "endIpAddress": "10.0.0.2"}}, wantCode: "InternalServerError",
			after: func(g *rig, conn string) {
				state("Ready")(g, conn)
				if r := g.do("GET", server+"/firewallRules/r2", nil); r.status != http.StatusNotFound {
					g.t.Errorf("rule after a failed put: %d %s; want 404", r.status, r.raw)
				}
			}},
		{name: "firewall delete/commit", failWrite: "firewallrules/r1", method: "DELETE", path: func(string) string { return server + "/firewallRules/r1" }, wantCode: "InternalServerError",
			after: func(g *rig, conn string) {
				state("Ready")(g, conn)
				g.must("GET", server+"/firewallRules/r1", nil)
			}},
		{name: "connection update/commit", failWrite: "privateendpointconnections/", skip: 1, method: "PUT", path: func(c string) string { return c }, body: approve, wantCode: "InternalServerError",
			after: func(g *rig, conn string) {
				r := g.must("GET", conn, nil)
				if s, p := r.str("properties.privateLinkServiceConnectionState.status"), r.str("properties.provisioningState"); s != "Pending" || p != "Succeeded" {
					g.t.Errorf("connection after a failed update: %s/%s; want Pending/Succeeded", s, p)
				}
			}},
		{name: "connection delete/commit", failWrite: "privateendpointconnections/", skip: 1, method: "DELETE", path: func(c string) string { return c }, wantCode: "InternalServerError",
			after: func(g *rig, conn string) {
				if p := g.must("GET", conn, nil).str("properties.provisioningState"); p != "Succeeded" {
					g.t.Errorf("connection after a failed delete: provisioningState %s; want Succeeded", p)
				}
			}},
		{name: "group delete/internal", engine: "delete", engineErr: internalErr, method: "DELETE", path: func(string) string { return "/resourceGroups/rg" }, wantCode: "InternalServerError",
			after: func(g *rig, conn string) {
				if p := g.must("GET", "/resourceGroups/rg", nil).str("properties.provisioningState"); p != "Succeeded" {
					g.t.Errorf("group after a failed delete: provisioningState %s; want Succeeded", p)
				}
				state("Ready")(g, conn)
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newRig(t)
			conn := ""
			if tc.fresh {
				g.must("PUT", "/resourceGroups/rg", map[string]any{"location": "eastus"})
			} else {
				conn = g.setup()
			}
			if tc.stopped {
				g.must("POST", server+"/stop", nil)
			}
			path, body := server, tc.body
			if tc.path != nil {
				path = tc.path(conn)
			}
			if body == nil && tc.method == "PUT" && path == server {
				body = serverBody()
			}
			if tc.method == "PATCH" {
				body = map[string]any{"tags": map[string]string{"env": "new"}, "properties": map[string]any{"administratorLoginPassword": "N3w-pass-word"}}
			}
			if tc.engine != "" {
				g.eng.setFail(tc.engine, tc.engineErr)
			}
			switch {
			case tc.failWrite != "" && tc.engine != "":
				// The commit is the first write of the key after the engine step.
				g.eng.setHook(tc.engine, func() { g.st.failWrite(tc.failWrite, 0) })
			case tc.failWrite != "":
				g.st.failWrite(tc.failWrite, tc.skip)
			}
			r := g.do(tc.method, path, body)
			if r.code() != tc.wantCode {
				t.Fatalf("%s %s = %d %s; want error %s", tc.method, path, r.status, r.raw, tc.wantCode)
			}
			g.eng.setFail(tc.engine, nil)
			g.eng.setHook(tc.engine, nil)
			if tc.fresh {
				// A failed create leaves neither a record nor a cluster; the same create works.
				if r := g.do("GET", server, nil); r.status != http.StatusNotFound {
					t.Errorf("server after a failed create: %d %s; want 404", r.status, r.raw)
				}
				if exists, _ := g.eng.cluster(resource.MustParse(sub + server)); exists {
					t.Errorf("a failed create left a cluster behind")
				}
				if r := g.must("PUT", server, serverBody()); r.str("properties.state") != "Ready" {
					t.Errorf("create after a failed one: %s", r.raw)
				}
				return
			}
			tc.after(g, conn)
			if tc.method == "PATCH" {
				if tags := g.must("GET", server, nil).body["tags"]; tags != nil {
					t.Errorf("tags after a failed update = %v; want the server as it was (none)", tags)
				}
			}
			// The same request (or the one the state calls for) works now.
			if tc.again != "" {
				path, body = server+tc.again, nil
			}
			if r := g.do(tc.method, path, body); r.status >= 300 {
				t.Errorf("%s %s next = %d %s; want success", tc.method, path, r.status, r.raw)
			}
		})
	}
}

// eventually fails the test unless cond holds within a generous deadline.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not so after 20s", what)
		}
	}
}

// TestCreateRetryJoinsTheCreate: an identical PUT while the create runs joins its operation
// (201/202 with the same polling URL), where it used to be taken for an update and get 409.
func TestCreateRetryJoinsTheCreate(t *testing.T) {
	g := newRigWith(t, 0, true)
	g.must("PUT", "/resourceGroups/rg", map[string]any{"location": "eastus"})
	block := make(chan struct{})
	g.eng.mu.Lock()
	g.eng.block["create"] = block
	g.eng.mu.Unlock()
	first := g.do("PUT", server, serverBody())
	if first.status != http.StatusCreated && first.status != http.StatusAccepted {
		t.Fatalf("create = %d %s; want 201 or 202", first.status, first.raw)
	}
	again := g.do("PUT", server, serverBody())
	if again.status != first.status || again.header.Get("Azure-AsyncOperation") != first.header.Get("Azure-AsyncOperation") {
		t.Errorf("identical retry = %d %s (operation %q); want %d joining operation %q",
			again.status, again.raw, again.header.Get("Azure-AsyncOperation"), first.status, first.header.Get("Azure-AsyncOperation"))
	}
	changed := serverBody()
	changed["tags"] = map[string]string{"x": "y"}
	if r := g.do("PUT", server, changed); r.status != http.StatusConflict {
		t.Errorf("different PUT during the create = %d %s; want 409", r.status, r.raw)
	}
	close(block)
	eventually(t, "server Ready", func() bool { return g.must("GET", server, nil).str("properties.state") == "Ready" })
	g.eng.mu.Lock()
	n := g.eng.calls["create"]
	g.eng.mu.Unlock()
	if n != 1 {
		t.Errorf("engine Create ran %d times; want 1", n)
	}
}

// TestServerCreateRacingGroupDelete: a server whose create was accepted just before its group's
// delete began leaves no cluster behind, whether its create runs before or after the delete
// began; and no server can be created in the group once its delete has begun.
func TestServerCreateRacingGroupDelete(t *testing.T) {
	id := resource.MustParse(sub + server)
	t.Run("create queued", func(t *testing.T) {
		g := newRigWith(t, 0, false) // workers start once both requests are in
		g.must("PUT", "/resourceGroups/rg", map[string]any{"location": "eastus"})
		g.must("PUT", server, serverBody())
		if r := g.do("DELETE", "/resourceGroups/rg", nil); r.status >= 300 {
			t.Fatalf("delete group = %d %s", r.status, r.raw)
		}
		if r := g.do("PUT", "/resourceGroups/rg/providers/Microsoft.DBforPostgreSQL/flexibleServers/db2", serverBody()); r.code() != "ResourceGroupBeingDeleted" {
			t.Errorf("create in a Deleting group = %d %s; want 409 ResourceGroupBeingDeleted", r.status, r.raw)
		}
		g.start()
		eventually(t, "group gone", func() bool { return g.do("GET", "/resourceGroups/rg", nil).status == http.StatusNotFound })
		if exists, _ := g.eng.cluster(id); exists {
			t.Errorf("the group delete left the server's cluster behind")
		}
		g.eng.mu.Lock()
		n := g.eng.calls["create"]
		g.eng.mu.Unlock()
		if n != 0 {
			t.Errorf("engine Create ran %d times for a server whose group was being deleted; want 0", n)
		}
	})
	t.Run("create running", func(t *testing.T) {
		g := newRigWith(t, 0, true)
		g.must("PUT", "/resourceGroups/rg", map[string]any{"location": "eastus"})
		block := make(chan struct{})
		g.eng.mu.Lock()
		g.eng.block["create"] = block
		g.eng.mu.Unlock()
		g.must("PUT", server, serverBody())
		eventually(t, "engine create called", func() bool {
			g.eng.mu.Lock()
			defer g.eng.mu.Unlock()
			return g.eng.calls["create"] == 1
		})
		if r := g.do("DELETE", "/resourceGroups/rg", nil); r.status >= 300 {
			t.Fatalf("delete group = %d %s", r.status, r.raw)
		}
		close(block)
		eventually(t, "group gone", func() bool { return g.do("GET", "/resourceGroups/rg", nil).status == http.StatusNotFound })
		if exists, _ := g.eng.cluster(id); exists {
			t.Errorf("the group delete left the server's cluster behind")
		}
	})
}

// TestLoginsAndPasswordsPostgreSQLRefuses are refused with 400 before any operation starts.
func TestLoginsAndPasswordsPostgreSQLRefuses(t *testing.T) {
	g := newRig(t)
	g.must("PUT", "/resourceGroups/rg", map[string]any{"location": "eastus"})
	for _, tc := range []struct{ login, password string }{
		{"none", "S3cret-pass!"},
		{"NONE", "S3cret-pass!"},
		{"public", "S3cret-pass!"},
		{"current_user", "S3cret-pass!"},
		{"session_user", "S3cret-pass!"},
		{"current_role", "S3cret-pass!"},
		{"pg_monitor", "S3cret-pass!"},
		{"pglink", "S3cret-pass!"},
		{"azure_superuser", "S3cret-pass!"},
		{"ad\x00min", "S3cret-pass!"},
		{strings.Repeat("a", 64), "S3cret-pass!"},
		{"dbadmin", "S3cret\x00pass!"},
		{"dbadmin", "S3cret\npass!"},
		{"dbadmin", "S3cret-pass!" + strings.Repeat("x", 120)},
	} {
		body := serverBody()
		body["properties"] = map[string]any{"administratorLogin": tc.login, "administratorLoginPassword": tc.password, "version": "16"}
		r := g.do("PUT", server, body)
		if r.status != http.StatusBadRequest || r.code() != "InvalidParameterValue" {
			t.Errorf("create with login %q password %q = %d %s; want 400 InvalidParameterValue", tc.login, tc.password, r.status, r.raw)
		}
	}
	g.eng.mu.Lock()
	n := g.eng.calls["create"]
	g.eng.mu.Unlock()
	if n != 0 {
		t.Errorf("engine Create ran %d times; want 0", n)
	}
	g.must("PUT", server, serverBody())
	r := g.do("PATCH", server, map[string]any{"properties": map[string]any{"administratorLoginPassword": "N3w\x00pass-word"}})
	if r.status != http.StatusBadRequest || r.code() != "InvalidParameterValue" {
		t.Errorf("update to a password with NUL = %d %s; want 400 InvalidParameterValue", r.status, r.raw)
	}
}

// TestGroupDeleteFailingHalfway: a group delete whose cleanup fails for one server (for good)
// removes what it had cleaned up, keeps the rest as it was, and the group works again.
func TestGroupDeleteFailingHalfway(t *testing.T) {
	g := newRig(t)
	g.must("PUT", "/resourceGroups/rg", map[string]any{"location": "eastus"})
	db2 := "/resourceGroups/rg/providers/Microsoft.DBforPostgreSQL/flexibleServers/db2"
	g.must("PUT", server, serverBody())
	g.must("PUT", db2, serverBody())
	g.eng.setFail("delete db2", internalErr)
	if r := g.do("DELETE", "/resourceGroups/rg", nil); r.code() != "InternalServerError" {
		t.Fatalf("group delete = %d %s; want it to fail", r.status, r.raw)
	}
	if p := g.must("GET", "/resourceGroups/rg", nil).str("properties.provisioningState"); p != "Succeeded" {
		t.Errorf("group after a failed delete: provisioningState %s; want Succeeded", p)
	}
	if r := g.do("GET", server, nil); r.status != http.StatusNotFound {
		t.Errorf("server whose cluster the failed delete removed: %d %s; want 404", r.status, r.raw)
	}
	if exists, _ := g.eng.cluster(resource.MustParse(sub + server)); exists {
		t.Errorf("cluster of db1 left")
	}
	if s := g.must("GET", db2, nil).str("properties.state"); s != "Ready" {
		t.Errorf("server the failed delete did not reach: state %s; want Ready", s)
	}
	if exists, running := g.eng.cluster(resource.MustParse(sub + db2)); !exists || !running {
		t.Errorf("cluster of db2: exists %v running %v; want it running", exists, running)
	}
	g.eng.setFail("delete db2", nil)
	g.must("DELETE", "/resourceGroups/rg", nil)
	if r := g.do("GET", "/resourceGroups/rg", nil); r.status != http.StatusNotFound {
		t.Errorf("group after the second delete: %d %s; want 404", r.status, r.raw)
	}
}
