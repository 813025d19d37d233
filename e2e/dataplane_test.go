package e2e

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	pg "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/postgresql/armpostgresqlflexibleservers/v4"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pglink/pglink/internal/server"
)

const adminPassword = "S3cret-pass!"

// startLocal runs pglink with the local engine (real PostgreSQL clusters) and the gateway on
// its own loopback block. The data dir is traversable by the postgres OS user. mutate may
// adjust the configuration further.
func startLocal(t *testing.T, mutate ...func(*server.Config)) *instance {
	t.Helper()
	dir := traversableDir(t)
	block := fmt.Sprintf("127.%d.%d.0/24", 100+rand.IntN(100), rand.IntN(250))
	return start(t, func(c *server.Config) {
		c.Engine = "local"
		c.DataDir = dir
		c.EndpointNetwork = block
		for _, m := range mutate {
			m(c)
		}
	})
}

// localServer creates a server with the installed PostgreSQL version.
func (c *clients) localServer(t *testing.T, rg, name string) pg.Server {
	t.Helper()
	ctx := ctxT(t)
	spec := serverSpec(c.location)
	spec.Properties.Version = nil // the engine picks the installed version
	poller, err := c.servers.BeginCreate(ctx, rg, name, spec, nil)
	if err != nil {
		t.Fatalf("create server %s: %v", name, err)
	}
	res, err := poller.PollUntilDone(ctx, &azcoreFast)
	if err != nil {
		t.Fatalf("create server %s: %v", name, err)
	}
	if serverAddress(t, c, rg, name) == "" {
		t.Fatalf("server %s has no properties.dataPlane.address", name)
	}
	return res.Server
}

// connect opens a PostgreSQL session to addr as the administrator, from source address from
// ("" for the default), with sslmode.
func connect(ctx context.Context, addr, from, sslmode, password string) (*pgx.Conn, error) {
	host, port, _ := net.SplitHostPort(addr)
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%s user=pgadmin password='%s' dbname=postgres sslmode=%s connect_timeout=5", host, port, password, sslmode))
	if err != nil {
		return nil, err
	}
	if from != "" {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
		cfg.DialFunc = d.DialContext
	}
	return pgx.ConnectConfig(ctx, cfg)
}

func pgCode(err error) (string, string) {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code, pe.Message
	}
	return "", ""
}

// wantRefused checks that connecting over TLS fails with SQLSTATE code and a message
// containing want.
func wantRefused(t *testing.T, what, addr, from, code, want string) {
	t.Helper()
	conn, err := connect(ctxT(t), addr, from, "require", adminPassword)
	if err == nil {
		conn.Close(context.Background())
		t.Fatalf("%s: connected; want refusal %s %q", what, code, want)
	}
	gotCode, msg := pgCode(err)
	if gotCode != code || !strings.Contains(msg, want) {
		t.Fatalf("%s: got %s %q (%v); want %s containing %q", what, gotCode, msg, err, code, want)
	}
}

func selectOne(t *testing.T, conn *pgx.Conn) error {
	t.Helper()
	var n int
	return conn.QueryRow(ctxT(t), "select 1").Scan(&n)
}

// waitClosed waits until a query on conn fails (the session was cut) and returns the error.
func waitClosed(t *testing.T, conn *pgx.Conn, within time.Duration) error {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if err := selectOne(t, conn); err != nil {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("session still works %v after the change", within)
	return nil
}

// TestDataPlanePrivateEndpoint: only an approved private endpoint carries traffic; reject
// cuts open sessions; delete refuses with "removed"; psql and TLS work.
func TestDataPlanePrivateEndpoint(t *testing.T) {
	in := startLocal(t)
	c := newClients(t, in)
	ctx := ctxT(t)
	c.group(t, "rg")
	srv := c.localServer(t, "rg", "orders-db")
	subnet := c.vnet(t, "rg", "vnet")
	pe, err := c.endpoint(t, "rg", "app-pe", subnet, *srv.ID, true, "for orders")
	if err != nil {
		t.Fatal(err)
	}
	addr := peAddress(t, c, "rg", "app-pe")
	if pe.Properties == nil || addr == "" {
		t.Fatal("private endpoint has no data-plane address")
	}
	wantRefused(t, "pending endpoint", addr, "", "28000", "Pending approval")

	pec := c.onlyConnection(t, "rg", "orders-db")
	if _, err := c.setStatus(ctx, "rg", "orders-db", *pec.Name, pg.PrivateEndpointServiceConnectionStatusApproved, "ok"); err != nil {
		t.Fatal(err)
	}
	// Approved: the new rule is in force as soon as the operation says Succeeded.
	conn, err := connect(ctx, addr, "", "require", adminPassword)
	if err != nil {
		t.Fatalf("connect after approve: %v", err)
	}
	if err := selectOne(t, conn); err != nil {
		t.Fatal(err)
	}
	var user string
	conn.QueryRow(ctx, "select current_user").Scan(&user)
	if user != "pgadmin" {
		t.Errorf("current_user = %q; want pgadmin", user)
	}
	// require_secure_transport is on by default: a plaintext client is refused.
	wantPlainRefused(t, "plaintext client of an approved endpoint", addr, `connection requires TLS: server "orders-db" has require_secure_transport on`)
	// TLS, checked.
	tlsConn, err := connect(ctx, addr, "", "require", adminPassword)
	if err != nil {
		t.Fatalf("sslmode=require: %v", err)
	}
	if _, ok := tlsConn.PgConn().Conn().(*tls.Conn); !ok {
		t.Errorf("sslmode=require session is not over TLS: %T", tlsConn.PgConn().Conn())
	}
	if err := selectOne(t, tlsConn); err != nil {
		t.Errorf("query over TLS: %v", err)
	}
	tlsConn.Close(ctx)
	// A wrong password is PostgreSQL's answer, through the gateway.
	if _, err := connect(ctx, addr, "", "require", "wrong-password"); err == nil {
		t.Fatal("wrong password connected")
	} else if code, _ := pgCode(err); code != "28P01" {
		t.Errorf("wrong password: %v; want 28P01", err)
	}
	// psql, the real client, with verify-full against the pglink CA.
	host, port, _ := net.SplitHostPort(addr)
	psql := exec.Command("psql", fmt.Sprintf("host=%s port=%s user=pgadmin dbname=postgres sslmode=verify-full sslrootcert=%s", host, port, in.boot.CACertFile),
		"-tAc", "select 40 + 2")
	psql.Env = append(os.Environ(), "PGPASSWORD="+adminPassword)
	out, err := psql.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "42" {
		t.Errorf("psql: %v %s", err, out)
	}

	// Reject cuts the open session and refuses new ones.
	start := time.Now()
	if _, err := c.setStatus(ctx, "rg", "orders-db", *pec.Name, pg.PrivateEndpointServiceConnectionStatusRejected, "no longer needed"); err != nil {
		t.Fatal(err)
	}
	err = waitClosed(t, conn, time.Second)
	t.Logf("session cut %v after the reject request began: %v", time.Since(start), err)
	if code, _ := pgCode(err); code != "" && code != "57P01" {
		t.Errorf("cut session got SQLSTATE %s; want 57P01 or a closed connection", code)
	}
	wantRefused(t, "rejected endpoint", addr, "", "28000", "Rejected")

	// Deleting the connection: the endpoint is Disconnected and refused as "removed".
	dp, err := c.conn.BeginDelete(ctx, "rg", "orders-db", *pec.Name, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dp.PollUntilDone(ctx, &azcoreFast); err != nil {
		t.Fatal(err)
	}
	wantRefused(t, "deleted connection", addr, "", "28000", "removed")
}

// peAddress reads properties.dataPlane.address of a private endpoint (a pglink property the
// SDK model does not know).
func peAddress(t *testing.T, c *clients, rg, name string) string {
	t.Helper()
	r := c.in.do(t, "GET", "/subscriptions/"+c.in.boot.SubscriptionID+"/resourceGroups/"+rg+"/providers/Microsoft.Network/privateEndpoints/"+name+"?api-version=2022-01-01", c.in.token(), nil, nil)
	props, _ := r.body["properties"].(map[string]any)
	dp, _ := props["dataPlane"].(map[string]any)
	addr, _ := dp["address"].(string)
	return addr
}

// serverAddress reads properties.dataPlane.address of a server.
func serverAddress(t *testing.T, c *clients, rg, name string) string {
	t.Helper()
	r := c.in.do(t, "GET", "/subscriptions/"+c.in.boot.SubscriptionID+"/resourceGroups/"+rg+"/providers/Microsoft.DBforPostgreSQL/flexibleServers/"+name+"?api-version=2024-08-01", c.in.token(), nil, nil)
	props, _ := r.body["properties"].(map[string]any)
	dp, _ := props["dataPlane"].(map[string]any)
	addr, _ := dp["address"].(string)
	return addr
}

// TestDataPlanePublicAccess: firewall rules admit public clients by source address; turning
// public access off cuts and refuses; stopping the server cuts and refuses naming Stopped;
// data survives stop/start and a pglink restart.
func TestDataPlanePublicAccess(t *testing.T) {
	in := startLocal(t)
	c := newClients(t, in)
	ctx := ctxT(t)
	c.group(t, "rg")
	c.localServer(t, "rg", "pub-db")
	addr := serverAddress(t, c, "rg", "pub-db")
	wantRefused(t, "no firewall rule", addr, "127.0.0.1", "28000", "no firewall rule")

	rp, err := c.rules.BeginCreateOrUpdate(ctx, "rg", "pub-db", "me", pg.FirewallRule{Properties: &pg.FirewallRuleProperties{
		StartIPAddress: to.Ptr("127.0.0.1"), EndIPAddress: to.Ptr("127.0.0.1")}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rp.PollUntilDone(ctx, &azcoreFast); err != nil {
		t.Fatal(err)
	}
	conn, err := connect(ctx, addr, "127.0.0.1", "require", adminPassword)
	if err != nil {
		t.Fatalf("client 127.0.0.1 with a rule for it: %v", err)
	}
	if _, err := conn.Exec(ctx, "create table orders(id int primary key, item text); insert into orders values (1, 'tea')"); err != nil {
		t.Fatal(err)
	}
	wantRefused(t, "client outside the rule", addr, "127.0.0.2", "28000", "127.0.0.2")

	// Removing the rule cuts the session it admitted; a rule for the address brings it back.
	dr, err := c.rules.BeginDelete(ctx, "rg", "pub-db", "me", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dr.PollUntilDone(ctx, &azcoreFast); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, conn, time.Second)
	wantRefused(t, "rule removed", addr, "127.0.0.1", "28000", "no firewall rule")
	rp, err = c.rules.BeginCreateOrUpdate(ctx, "rg", "pub-db", "loopback", pg.FirewallRule{Properties: &pg.FirewallRuleProperties{
		StartIPAddress: to.Ptr("127.0.0.1"), EndIPAddress: to.Ptr("127.0.0.1")}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rp.PollUntilDone(ctx, &azcoreFast); err != nil {
		t.Fatal(err)
	}
	conn, err = connect(ctx, addr, "127.0.0.1", "require", adminPassword)
	if err != nil {
		t.Fatal(err)
	}

	// Public access off: the open session is cut, new ones refused.
	up, err := c.servers.BeginUpdate(ctx, "rg", "pub-db", pg.ServerForUpdate{Properties: &pg.ServerPropertiesForUpdate{
		Network: &pg.Network{PublicNetworkAccess: to.Ptr(pg.ServerPublicNetworkAccessStateDisabled)}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := up.PollUntilDone(ctx, &azcoreFast); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, conn, time.Second)
	wantRefused(t, "public access disabled", addr, "127.0.0.1", "28000", "Disabled")
	up, err = c.servers.BeginUpdate(ctx, "rg", "pub-db", pg.ServerForUpdate{Properties: &pg.ServerPropertiesForUpdate{
		Network: &pg.Network{PublicNetworkAccess: to.Ptr(pg.ServerPublicNetworkAccessStateEnabled)}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := up.PollUntilDone(ctx, &azcoreFast); err != nil {
		t.Fatal(err)
	}

	// Stop cuts and refuses naming Stopped; start brings the data back.
	conn, err = connect(ctx, addr, "127.0.0.1", "require", adminPassword)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := c.servers.BeginStop(ctx, "rg", "pub-db", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sp.PollUntilDone(ctx, &azcoreFast); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, conn, time.Second)
	wantRefused(t, "stopped server", addr, "127.0.0.1", "28000", "Stopped")
	st, err := c.servers.BeginStart(ctx, "rg", "pub-db", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.PollUntilDone(ctx, &azcoreFast); err != nil {
		t.Fatal(err)
	}
	checkData := func(when string) {
		t.Helper()
		conn, err := connect(ctx, addr, "127.0.0.1", "require", adminPassword)
		if err != nil {
			t.Fatalf("%s: connect: %v", when, err)
		}
		defer conn.Close(ctx)
		var item string
		if err := conn.QueryRow(ctx, "select item from orders where id = 1").Scan(&item); err != nil || item != "tea" {
			t.Fatalf("%s: data = %q, %v", when, item, err)
		}
	}
	checkData("after stop/start")

	// The gateway's counters and the replica's view of the store and nodes are on /metrics.
	resp, err := in.httpClient().Get(in.boot.ARMEndpoint + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"pglink_gateway_admitted_total", `pglink_gateway_refused_total{reason="firewall"}`, "pglink_gateway_revoked_total", "pglink_gateway_sessions_open",
		"pglink_store_ping_seconds", "pglink_operations_leased", "pglink_change_feed_lag_revisions", `pglink_nodes{status="Available"} 1`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// The admin API lists this replica's data-plane node, holding the server.
	nodes := in.do(t, "GET", "/pglink/v1/nodes", in.token(), nil, nil)
	if vals, _ := nodes.body["value"].([]any); nodes.status != 200 || len(vals) != 1 {
		t.Errorf("GET /pglink/v1/nodes = %d %s; want one node", nodes.status, nodes.raw)
	} else if n, _ := vals[0].(map[string]any); n["status"] != "Available" || n["servers"] != float64(1) {
		t.Errorf("node = %v; want Available with 1 server", n)
	}
	if r := in.do(t, "GET", "/pglink/v1/nodes", "", nil, nil); r.status != 401 {
		t.Errorf("GET /pglink/v1/nodes without a token = %d; want 401", r.status)
	}

	// A pglink restart keeps servers, their data and the rules.
	in.restart()
	c = newClients(t, in)
	checkData("after a pglink restart")
	wantRefused(t, "client outside the rule after restart", addr, "127.0.0.2", "28000", "127.0.0.2")

	// The password can be changed through the API.
	pp, err := c.servers.BeginUpdate(ctx, "rg", "pub-db", pg.ServerForUpdate{Properties: &pg.ServerPropertiesForUpdate{
		AdministratorLoginPassword: to.Ptr("N3w-secret-pass")}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pp.PollUntilDone(ctx, &azcoreFast); err != nil {
		t.Fatal(err)
	}
	if _, err := connect(ctx, addr, "127.0.0.1", "require", adminPassword); err == nil {
		t.Error("old password still works")
	}
	if conn, err := connect(ctx, addr, "127.0.0.1", "require", "N3w-secret-pass"); err != nil {
		t.Errorf("new password: %v", err)
	} else {
		conn.Close(ctx)
	}
}

// TestDataPlaneVersionNotInstalled: a version that is not installed is refused at create.
func TestDataPlaneVersionNotInstalled(t *testing.T) {
	in := startLocal(t)
	c := newClients(t, in)
	c.group(t, "rg")
	spec := serverSpec("eastus")
	spec.Properties.Version = to.Ptr(pg.ServerVersion("11"))
	_, err := c.servers.BeginCreate(ctxT(t), "rg", "old-db", spec, nil)
	wantErr(t, "create with a version that is not installed", err, "InvalidParameterValue", http.StatusBadRequest)
	if !strings.Contains(err.Error(), "Installed versions") {
		t.Errorf("error does not name the installed versions: %v", err)
	}
}
