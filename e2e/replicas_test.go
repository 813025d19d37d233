package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/netip"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	pg "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/postgresql/armpostgresqlflexibleservers/v4"
	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/pgtest"
	"github.com/pglink/pglink/internal/server"
)

// replica is one `pglink serve` process of TestThreeReplicas: its own data dir, API address,
// data-plane node and endpoint network, on the shared store.
type replica struct {
	name, dir, addr, network string
	cmd                      *exec.Cmd
	in                       *instance
	c                        *clients
}

// TestThreeReplicas runs three `pglink serve` processes on one PostgreSQL store, each its own
// data-plane node with its own endpoint network: servers are spread over the nodes; the seed's
// workflow works with every request sent to a random replica; 100 concurrent approve/reject
// races end in one state each that the gateway enforces, with no 5xx; a killed owning node
// makes its server report Unreachable while approvals are still accepted, and enforced at once
// when it is back; a replica killed while it holds an operation's lease loses nothing: another
// finishes the operation, once.
func TestThreeReplicas(t *testing.T) {
	if testing.Short() && os.Getenv("CI") != "true" { // under CI it always runs
		t.Skip("-short: builds and runs the pglink binary three times")
	}
	store := pgtest.New(t)
	url := store.CreateDatabase(t)
	bin := buildPglink(t)
	a, b := 100+rand.IntN(100), rand.IntN(240)
	rs := make([]*replica, 3)
	run := func(r *replica) {
		t.Helper()
		r.cmd, r.in = serveProcess(t, bin, r.dir, r.addr, "--store", url, "--node-name", r.name,
			"--endpoint-network", r.network, "--gateway", "embedded")
		r.c = newClients(t, r.in)
	}
	for i := range rs {
		rs[i] = &replica{name: fmt.Sprintf("node-%d", i+1), dir: traversableDir(t), addr: freeAddr(t),
			network: fmt.Sprintf("127.%d.%d.0/24", a, b+i)}
		run(rs[i])
	}
	any := func() *clients { return rs[rand.IntN(len(rs))].c }
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// Servers are spread over the nodes, each with an address in its node's network.
	any().group(t, "rg")
	owner := map[string]*replica{} // server name -> the replica whose node holds it
	for i := range rs {
		name := fmt.Sprintf("db%d", i)
		any().localServer(t, "rg", name)
		dp := serverDataPlane(t, any(), "rg", name)
		for _, r := range rs {
			if dp["node"] == r.name {
				owner[name] = r
			}
		}
		r := owner[name]
		if r == nil || dp["nodeStatus"] != "Available" || !inNetwork(t, dp["address"], r.network) {
			t.Fatalf("server %s: dataPlane %v; want a node of %v, Available, its address in the node's network", name, dp, rs)
		}
	}
	if len(map[*replica]bool{owner["db0"]: true, owner["db1"]: true, owner["db2"]: true}) != 3 {
		t.Fatalf("servers on nodes %s, %s, %s; want one on each", owner["db0"].name, owner["db1"].name, owner["db2"].name)
	}

	// The seed's workflow, every request to a random replica: the endpoint listens on the node
	// of its server, Pending refuses, Approved carries traffic.
	subnet := any().vnet(t, "rg", "vnet")
	target := "db2"
	srv, err := any().servers.Get(ctx, "rg", target, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := any().endpoint(t, "rg", "pe-seed", subnet, *srv.ID, true, "please"); err != nil {
		t.Fatal(err)
	}
	addr := peAddress(t, any(), "rg", "pe-seed")
	if !inNetwork(t, addr, owner[target].network) {
		t.Fatalf("private endpoint address %s is not in the network of %s's node %s", addr, target, owner[target].network)
	}
	wantRefused(t, "pending connection", addr, "", "28000", "Pending")
	conn := any().onlyConnection(t, "rg", target)
	if _, err := any().setStatus(ctx, "rg", target, *conn.Name, pg.PrivateEndpointServiceConnectionStatusApproved, "ok"); err != nil {
		t.Fatal(err)
	}
	db, err := connect(ctx, addr, "", "require", adminPassword)
	if err != nil {
		t.Fatalf("connect through the approved endpoint right after the approval: %v", err)
	}
	// Its open session is listed through every replica: the others ask the owning node's.
	for _, r := range rs {
		got := r.in.do(t, "GET", *srv.ID+"/sessions?api-version=2024-08-01", r.in.token(), nil, nil)
		v, _ := get(got.body, "value").([]interface{})
		if got.status != 200 || len(v) != 1 || get(v[0], "properties.node") != owner[target].name ||
			get(v[0], "properties.kind") != "PrivateEndpoint" || !strings.HasSuffix(fmt.Sprint(get(v[0], "properties.privateEndpoint.id")), "/pe-seed") {
			t.Errorf("sessions of %s through %s (its node %s) = %d %s; want the one session through pe-seed", target, r.name, owner[target].name, got.status, got.raw)
		}
	}
	db.Close(ctx)

	// An operation started through one replica is polled through another.
	restart := rs[0].in.do(t, "POST", *srv.ID+"/restart?api-version=2024-08-01", rs[0].in.token(), nil, nil)
	poll := restart.header.Get("Azure-AsyncOperation")
	if restart.status != 202 && restart.status != 200 {
		t.Fatalf("restart through %s = %d %s", rs[0].name, restart.status, restart.raw)
	}
	if restart.status == 202 {
		if poll == "" {
			t.Fatalf("restart answered 202 without Azure-AsyncOperation")
		}
		poll = strings.Replace(poll, rs[0].in.boot.ARMEndpoint, rs[1].in.boot.ARMEndpoint, 1)
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			r := rs[1].in.do(t, "GET", poll, rs[1].in.token(), nil, nil)
			if r.status != 200 {
				t.Fatalf("poll through %s = %d %s", rs[1].name, r.status, r.raw)
			}
			if r.body["status"] == "Succeeded" {
				break
			}
			if r.body["status"] != "InProgress" || time.Now().After(deadline) {
				t.Fatalf("restart polled through %s: %s", rs[1].name, r.raw)
			}
		}
	}

	// Races: an approval and a rejection of the same connection at once, through different
	// replicas, for 100 connections.
	const n = 100
	races := "db0"
	raceSrv, err := any().servers.Get(ctx, "rg", races, nil)
	if err != nil {
		t.Fatal(err)
	}
	forEach(t, n, 8, func(i int) error {
		_, err := rs[i%3].c.endpoint(t, "rg", fmt.Sprintf("race-%d", i), subnet, *raceSrv.ID, true, "race")
		return err
	})
	names := map[string]int{} // connection name -> race
	pager := any().conns.NewListByServerPager("rg", races, nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range page.Value {
			var i int
			if _, err := fmt.Sscanf(*c.Name, "race-%d.", &i); err == nil {
				names[*c.Name] = i
			}
		}
	}
	if len(names) != n {
		t.Fatalf("server %s has %d race connections; want %d", races, len(names), n)
	}
	var mu sync.Mutex
	var fivexx []string
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for name, i := range names {
		for k, st := range []pg.PrivateEndpointServiceConnectionStatus{pg.PrivateEndpointServiceConnectionStatusApproved, pg.PrivateEndpointServiceConnectionStatusRejected} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				_, err := rs[(i+k)%3].c.setStatus(ctx, "rg", races, name, st, strings.ToLower(string(st)))
				var re *azcore.ResponseError
				if errors.As(err, &re) && re.StatusCode >= 500 {
					mu.Lock()
					fivexx = append(fivexx, fmt.Sprintf("%s %s: %d %s", name, st, re.StatusCode, re.ErrorCode))
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	if len(fivexx) > 0 {
		t.Errorf("%d requests of the races failed with 5xx: %v", len(fivexx), fivexx)
	}
	forEach(t, n, 8, func(i int) error {
		var name string
		for nm, j := range names {
			if j == i {
				name = nm
			}
		}
		c, err := any().conns.Get(ctx, "rg", races, name, nil)
		if err != nil {
			return err
		}
		state := c.Properties.PrivateLinkServiceConnectionState
		addr := peAddress(t, any(), "rg", fmt.Sprintf("race-%d", i))
		switch *state.Status {
		case pg.PrivateEndpointServiceConnectionStatusApproved:
			db, err := connect(ctx, addr, "", "require", adminPassword)
			if err != nil {
				return fmt.Errorf("%s is Approved but the gateway refuses: %v", name, err)
			}
			db.Close(ctx)
		case pg.PrivateEndpointServiceConnectionStatusRejected:
			db, err := connect(ctx, addr, "", "require", adminPassword)
			if code, msg := pgCode(err); err == nil || code != "28000" || !strings.Contains(msg, "Rejected") {
				if db != nil {
					db.Close(ctx)
				}
				return fmt.Errorf("%s is Rejected but the gateway answers %v", name, err)
			}
		default:
			return fmt.Errorf("%s ends %s; want Approved or Rejected", name, *state.Status)
		}
		if want := strings.ToLower(string(*state.Status)); *state.Description != want {
			return fmt.Errorf("%s is %s with description %q, which the other request set", name, *state.Status, *state.Description)
		}
		return nil
	})

	// The owning node dies: its server reports Unreachable; an approval through another
	// replica is accepted, and enforced as soon as the node is back.
	late := "db1"
	lateOwner := owner[late]
	lateSrv, err := any().servers.Get(ctx, "rg", late, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := any().endpoint(t, "rg", "pe-late", subnet, *lateSrv.ID, true, "later"); err != nil {
		t.Fatal(err)
	}
	lateAddr := peAddress(t, any(), "rg", "pe-late")
	lateConn := any().onlyConnection(t, "rg", late)
	lateOwner.cmd.Process.Kill()
	lateOwner.cmd.Wait()
	var others []*replica
	for _, r := range rs {
		if r != lateOwner {
			others = append(others, r)
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for serverDataPlane(t, others[0].c, "rg", late)["nodeStatus"] != "Unreachable" {
		if time.Now().After(deadline) {
			t.Fatalf("server %s still reports %v 15s after its node was killed; want nodeStatus Unreachable", late, serverDataPlane(t, others[0].c, "rg", late))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := others[0].in.do(t, "GET", *lateSrv.ID+"/sessions?api-version=2024-08-01", others[0].in.token(), nil, nil); got.status != 503 ||
		get(got.body, "error.code") != "NodeUnreachable" {
		t.Errorf("sessions of %s while its node is down = %d %s; want 503 NodeUnreachable", late, got.status, got.raw)
	}
	if _, err := others[1].c.setStatus(ctx, "rg", late, *lateConn.Name, pg.PrivateEndpointServiceConnectionStatusApproved, "while down"); err != nil {
		t.Fatalf("approve while the owning node is down: %v", err)
	}
	run(lateOwner)
	back := time.Now()
	for {
		db, err := connect(ctx, lateAddr, "", "require", adminPassword)
		if err == nil {
			db.Close(ctx)
			break
		}
		if time.Since(back) > time.Second {
			t.Fatalf("the approval is not enforced 1s after the node is back: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if s := serverDataPlane(t, others[0].c, "rg", late)["nodeStatus"]; s != "Available" {
		t.Errorf("server %s reports nodeStatus %v once its node is back; want Available", late, s)
	}

	// The store restarts under load: every replica answers 503 with Retry-After meanwhile, never
	// a 500, and serves again once it is back, without a restart of its own.
	storeRestart(t, store, rs)

	// A replica killed while it holds the lease of the resource group's delete: another
	// replica finishes it, once; the killed node removes its cluster when it is back.
	deleter := any()
	go deleter.groups.BeginDelete(ctx, "rg", nil) // answers once it is done or 2s have passed
	holder := leaseHolder(t, url, rs, "/resourcegroups/rg")
	holder.cmd.Process.Kill()
	holder.cmd.Wait()
	var rest *replica
	for _, r := range rs {
		if r != holder {
			rest = r
		}
	}
	deadline = time.Now().Add(40 * time.Second)
	for {
		if _, err := rest.c.groups.Get(ctx, "rg", nil); err != nil {
			var re *azcore.ResponseError
			if errors.As(err, &re) && re.StatusCode == 404 {
				break
			}
			t.Fatalf("get the group being deleted: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatal("the resource group delete did not finish 40s after its lease holder was killed")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := succeededGroupDeletes(t, rest); got != 1 {
		t.Errorf("activity log: %d Succeeded events for the group's delete; want exactly 1", got)
	}
	run(holder)
	deadline = time.Now().Add(20 * time.Second)
	for {
		left := clusterDirs(t, holder.dir)
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s still keeps clusters %v of deleted servers", holder.name, left)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// serverDataPlane reads properties.dataPlane of a server.
func serverDataPlane(t *testing.T, c *clients, rg, name string) map[string]any {
	t.Helper()
	r := c.in.do(t, "GET", "/subscriptions/"+c.in.boot.SubscriptionID+"/resourceGroups/"+rg+"/providers/Microsoft.DBforPostgreSQL/flexibleServers/"+name+"?api-version=2024-08-01", c.in.token(), nil, nil)
	props, _ := r.body["properties"].(map[string]any)
	dp, _ := props["dataPlane"].(map[string]any)
	return dp
}

func inNetwork(t *testing.T, addr any, network string) bool {
	t.Helper()
	s, _ := addr.(string)
	ap, err := netip.ParseAddrPort(s)
	return err == nil && netip.MustParsePrefix(network).Contains(ap.Addr())
}

// forEach runs fn(0..n-1), at most par at once, and fails t with the errors.
func forEach(t *testing.T, n, par int, fn func(i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	sem := make(chan struct{}, par)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := fn(i); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d of %d failed: %v", len(errs), n, errors.Join(errs...))
	}
}

// leaseHolder waits until an InProgress operation on a resource whose key ends with suffix is
// leased, and returns the replica whose workers hold it (their names start with the node's).
func leaseHolder(t *testing.T, url string, rs []*replica, suffix string) *replica {
	t.Helper()
	ctx := ctxT(t)
	db, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var owner string
		err := db.QueryRow(ctx, `SELECT lease_owner FROM operations WHERE status = 'InProgress' AND resource_key LIKE '%' || $1
			AND lease_owner <> '' AND lease_until > now()`, suffix).Scan(&owner)
		if err == nil {
			for _, r := range rs {
				if strings.HasPrefix(owner, r.name+"-") {
					return r
				}
			}
			t.Fatalf("lease owner %q names no replica", owner)
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("no lease on an operation on %s", suffix)
	return nil
}

// succeededGroupDeletes counts the Succeeded resource group delete events of group rg in the
// activity log.
func succeededGroupDeletes(t *testing.T, r *replica) int {
	t.Helper()
	since := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	q := neturl.Values{"api-version": {"2015-04-01"}, "$filter": {"eventTimestamp ge '" + since + "' and resourceGroupName eq 'rg'"}}
	path := "/subscriptions/" + r.in.boot.SubscriptionID + "/providers/Microsoft.Insights/eventtypes/management/values?" + q.Encode()
	count := 0
	for path != "" {
		resp := r.in.do(t, "GET", path, r.in.token(), nil, nil)
		if resp.status != 200 {
			t.Fatalf("activity log: %d %s", resp.status, resp.raw)
		}
		values, _ := resp.body["value"].([]any)
		for _, v := range values {
			e, _ := v.(map[string]any)
			op, _ := e["operationName"].(map[string]any)
			st, _ := e["status"].(map[string]any)
			if strings.EqualFold(fmt.Sprint(op["value"]), "Microsoft.Resources/subscriptions/resourceGroups/delete") &&
				st["value"] == "Succeeded" {
				count++
			}
		}
		next, _ := resp.body["nextLink"].(string)
		path = strings.TrimPrefix(next, r.in.boot.ARMEndpoint)
	}
	return count
}

// clusterDirs lists the PostgreSQL clusters kept in a data dir.
func clusterDirs(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, "servers"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() && e.Name() != "superuser" {
			out = append(out, e.Name())
		}
	}
	return out
}

// storeRestart restarts the store's PostgreSQL while every replica takes writes (resource group
// creates), and checks each answer: 2xx, or 503 ServiceUnavailable with Retry-After; then that
// every replica takes writes again within 15 s.
func storeRestart(t *testing.T, store *pgtest.Cluster, rs []*replica) {
	t.Helper()
	toks := make([]string, len(rs))
	for i, r := range rs {
		toks[i] = r.in.token()
	}
	write := func(i, n int) (int, string, error) {
		r := rs[i]
		path := fmt.Sprintf("%s/subscriptions/%s/resourceGroups/load-%d-%d?api-version=2022-09-01", r.in.boot.ARMEndpoint, r.in.boot.SubscriptionID, i, n)
		req, _ := http.NewRequest("PUT", path, strings.NewReader(`{"location":"eastus"}`))
		req.Header.Set("Authorization", "Bearer "+toks[i])
		req.Header.Set("Content-Type", "application/json")
		resp, err := r.in.httpClient().Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == 503 && resp.Header.Get("Retry-After") == "" {
			return resp.StatusCode, "503 without Retry-After: " + string(body), nil
		}
		return resp.StatusCode, string(body), nil
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var bad []string
	counts := map[int]int{}
	for i := range rs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				st, body, err := write(i, n)
				mu.Lock()
				counts[st]++
				if err != nil || (st/100 != 2 && st != 503) || strings.HasPrefix(body, "503 without") {
					bad = append(bad, fmt.Sprintf("%s: %d %v %.200s", rs[i].name, st, err, body))
				}
				mu.Unlock()
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	if err := store.Restart(); err != nil {
		close(stop)
		wg.Wait()
		t.Fatalf("restart the store: %v", err)
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	if len(bad) > 0 {
		t.Errorf("while the store restarted, %d answers were neither 2xx nor 503 with Retry-After: %v", len(bad), bad)
	}
	t.Logf("answers while the store restarted, by status: %v", counts)
	for i, r := range rs {
		deadline := time.Now().Add(15 * time.Second)
		for n := 1000; ; n++ {
			st, body, err := write(i, n)
			if err == nil && st/100 == 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s does not take writes 15s after the store is back: %d %v %s", r.name, st, err, body)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// TestSessionsBehindOnePublicURL: two replicas with real data planes serve behind one public
// URL (replica A's address, as a load balancer would be). Asking either for the open sessions
// of a server held by the other's node reaches that node at its own address (the listener's,
// --node-url's default), not the public URL, which would lead back to the asker.
func TestSessionsBehindOnePublicURL(t *testing.T) {
	url := pgtest.New(t).CreateDatabase(t)
	addrA := freeAddr(t)
	public := "https://" + addrA
	var ins []*instance
	for i, listen := range []string{addrA, "127.0.0.1:0"} {
		ins = append(ins, startLocal(t, func(c *server.Config) {
			c.Listen, c.Store, c.PublicURL, c.Gateway = listen, url, public, "embedded"
			c.NodeName = fmt.Sprintf("node-%c", 'a'+i)
		}))
	}
	a, b := ins[0], ins[1]
	atB := &instance{t: t, dir: b.dir, cfg: b.cfg, srv: b.srv, boot: b.boot}
	atB.boot.ARMEndpoint = "https://" + b.srv.Addr()
	atB.boot.AuthorityHost = atB.boot.ARMEndpoint

	c := newClients(t, a)
	c.group(t, "rg")
	owner := map[string]string{} // node -> a server it holds
	for _, name := range []string{"db1", "db2"} {
		c.localServer(t, "rg", name)
		node, _ := serverDataPlane(t, c, "rg", name)["node"].(string)
		owner[node] = name
	}
	if owner["node-a"] == "" || owner["node-b"] == "" {
		t.Fatalf("servers by node = %v; want one on node-a and one on node-b", owner)
	}
	nodes := a.do(t, "GET", "/pglink/v1/nodes", a.token(), nil, nil)
	for _, n := range get(nodes.body, "value").([]any) {
		if want := map[string]string{"node-a": "https://" + addrA, "node-b": "https://" + b.srv.Addr()}[get(n, "name").(string)]; get(n, "address") != want || get(n, "endpoint") != public {
			t.Errorf("node %v: address %v, endpoint %v; want %s, %s", get(n, "name"), get(n, "address"), get(n, "endpoint"), want, public)
		}
	}
	for _, via := range []*instance{a, atB} {
		for node, name := range owner {
			path := "/subscriptions/" + a.boot.SubscriptionID + "/resourceGroups/rg/providers/Microsoft.DBforPostgreSQL/flexibleServers/" + name + "/sessions?api-version=2024-08-01"
			got := via.do(t, "GET", path, a.token(), nil, nil) // tokens name the public URL
			if _, ok := get(got.body, "value").([]any); got.status != 200 || !ok {
				t.Errorf("sessions of %s (on %s) through %s = %d %s; want 200 and a list", name, node, via.boot.ARMEndpoint, got.status, got.raw)
			}
		}
	}
}
