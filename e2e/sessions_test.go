package e2e

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	pg "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/postgresql/armpostgresqlflexibleservers/v4"
	"github.com/jackc/pgx/v5"
)

// TestSessionsDryRun: a server's open sessions are listed (`session list` and the API), and
// --dry-run on a rejection, a connection delete, disabling public access and firewall changes
// names exactly the sessions the change would cut, cutting none; a caller who may not list
// sessions still gets the plan, with a note. The real change then cuts what the plan said.
func TestSessionsDryRun(t *testing.T) {
	bin := buildPglink(t)
	in := startLocal(t)
	c := newClients(t, in)
	ctx := ctxT(t)
	c.group(t, "rg")
	srv := c.localServer(t, "rg", "orders-db")
	subnet := c.vnet(t, "rg", "vnet")
	if _, err := c.endpoint(t, "rg", "app-pe", subnet, *srv.ID, true, "for orders"); err != nil {
		t.Fatal(err)
	}
	pec := c.onlyConnection(t, "rg", "orders-db")
	if _, err := c.setStatus(ctx, "rg", "orders-db", *pec.Name, pg.PrivateEndpointServiceConnectionStatusApproved, "ok"); err != nil {
		t.Fatal(err)
	}
	for name, ip := range map[string]string{"me": "127.0.0.1", "other": "127.0.0.3"} {
		rp, err := c.rules.BeginCreateOrUpdate(ctx, "rg", "orders-db", name, pg.FirewallRule{Properties: &pg.FirewallRuleProperties{
			StartIPAddress: to.Ptr(ip), EndIPAddress: to.Ptr(ip)}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rp.PollUntilDone(ctx, &azcoreFast); err != nil {
			t.Fatal(err)
		}
	}
	private, err := connect(ctx, peAddress(t, c, "rg", "app-pe"), "", "require", adminPassword)
	if err != nil {
		t.Fatal(err)
	}
	defer private.Close(ctx)
	pub := serverAddress(t, c, "rg", "orders-db")
	public1, err := connect(ctx, pub, "127.0.0.1", "require", adminPassword)
	if err != nil {
		t.Fatal(err)
	}
	defer public1.Close(ctx)
	public3, err := connect(ctx, pub, "127.0.0.3", "require", adminPassword)
	if err != nil {
		t.Fatal(err)
	}
	defer public3.Close(ctx)

	cli := newBinCLI(t, bin)
	cli.ok(nil, "login", "--bootstrap", filepath.Join(in.dir, "bootstrap.json"))
	var sessions []map[string]any
	cli.ok(&sessions, "postgres", "flexible-server", "session", "list", "-g", "rg", "-n", "orders-db")
	kinds := map[string]int{}
	for _, s := range sessions {
		kinds[fmt.Sprint(s["kind"])]++
		if s["kind"] == "PrivateEndpoint" && (!strings.HasSuffix(fmt.Sprint(get(s, "privateEndpoint.id")), "/app-pe") ||
			!strings.EqualFold(fmt.Sprint(get(s, "privateEndpointConnection.id")), *pec.ID) || s["tls"] != true) {
			t.Errorf("private session = %v; want app-pe's, its connection, TLS", s)
		}
	}
	if len(sessions) != 3 || kinds["Public"] != 2 || kinds["PrivateEndpoint"] != 1 {
		t.Fatalf("session list = %v; want 2 public sessions and 1 through app-pe", sessions)
	}
	if got := cli.ok(nil, "postgres", "flexible-server", "session", "list", "-g", "rg", "-n", "orders-db", "-o", "table"); !strings.Contains(got, "ClientAddress") ||
		!strings.Contains(got, "PrivateEndpoint") || !strings.Contains(got, "app-pe") || !strings.Contains(got, "127.0.0.3:") {
		t.Errorf("session list -o table =\n%s", got)
	}
	cli.fails(1, "(ResourceNotFound)", "postgres", "flexible-server", "session", "list", "-g", "rg", "-n", "no-such-db")

	// cuts returns the client addresses (without ports) of a one-change plan's sessionsCut.
	cuts := func(args ...string) []string {
		t.Helper()
		var plan []map[string]any
		cli.ok(&plan, args...)
		if len(plan) != 1 {
			t.Fatalf("pglink %s printed %v; want one planned change", strings.Join(args, " "), plan)
		}
		list, ok := plan[0]["sessionsCut"].([]any)
		if !ok {
			t.Fatalf("pglink %s printed %v; want sessionsCut", strings.Join(args, " "), plan)
		}
		out := []string{}
		for _, s := range list {
			a := fmt.Sprint(get(s, "clientAddress"))
			out = append(out, a[:strings.LastIndex(a, ":")])
		}
		sort.Strings(out)
		return out
	}
	want := func(what string, got []string, addrs ...string) {
		t.Helper()
		if strings.Join(got, ",") != strings.Join(addrs, ",") {
			t.Errorf("%s: sessions cut %v; want %v", what, got, addrs)
		}
	}
	want("reject --dry-run", cuts("postgres", "flexible-server", "private-endpoint-connection", "reject", "-g", "rg", "-s", "orders-db",
		"-n", *pec.Name, "--description", "no", "--dry-run"), "127.0.0.1")
	want("network delete --dry-run", cuts("network", "private-endpoint-connection", "delete", "--id", *pec.ID, "--dry-run"), "127.0.0.1")
	want("public access Disabled --dry-run", cuts("postgres", "flexible-server", "update", "-g", "rg", "-n", "orders-db",
		"--public-access", "Disabled", "--dry-run"), "127.0.0.1", "127.0.0.3")
	want("firewall-rule delete me --dry-run", cuts("postgres", "flexible-server", "firewall-rule", "delete", "-g", "rg", "-n", "orders-db",
		"-r", "me", "--dry-run"), "127.0.0.1")
	want("firewall-rule update other (narrower) --dry-run", cuts("postgres", "flexible-server", "firewall-rule", "update", "-g", "rg", "-n", "orders-db",
		"-r", "other", "--start-ip-address", "127.0.0.4", "--dry-run"), "127.0.0.3")
	want("firewall-rule update me (wider) --dry-run", cuts("postgres", "flexible-server", "firewall-rule", "update", "-g", "rg", "-n", "orders-db",
		"-r", "me", "--start-ip-address", "127.0.0.0", "--end-ip-address", "127.0.0.255", "--dry-run"))
	if got := cli.ok(nil, "postgres", "flexible-server", "update", "-g", "rg", "-n", "orders-db", "--public-access", "Disabled", "--dry-run", "-o", "table"); !strings.Contains(got, "SessionsCut") ||
		!strings.Contains(got, "2 (127.0.0.") {
		t.Errorf("update --dry-run -o table =\n%s", got)
	}
	// Nothing was cut by the dry-runs.
	for what, conn := range map[string]*pgx.Conn{"private": private, "public 127.0.0.1": public1, "public 127.0.0.3": public3} {
		if err := selectOne(t, conn); err != nil {
			t.Errorf("%s session after the dry-runs: %v", what, err)
		}
	}

	// A caller who may read connections but not sessions gets the plan and a note.
	var custom map[string]any
	cli.ok(&custom, "role", "definition", "create", "--role-definition", fmt.Sprintf(`{"Name":"Connection Viewer","Actions":[
		"Microsoft.DBforPostgreSQL/flexibleServers/read","Microsoft.DBforPostgreSQL/flexibleServers/privateEndpointConnections/read"],
		"AssignableScopes":["/subscriptions/%s"]}`, in.boot.SubscriptionID))
	var viewer struct{ AppID, Password string }
	cli.ok(&viewer, "ad", "sp", "create-for-rbac", "--name", "viewer", "--role", "Connection Viewer", "--scopes", "/subscriptions/"+in.boot.SubscriptionID)
	vc := newBinCLI(t, bin)
	vc.ok(nil, "login", "--service-principal", "-u", viewer.AppID, "-p", viewer.Password, "--endpoint", in.boot.ARMEndpoint, "--ca-file", in.boot.CACertFile)
	var plan []map[string]any
	vc.ok(&plan, "postgres", "flexible-server", "private-endpoint-connection", "reject", "-g", "rg", "-s", "orders-db",
		"-n", *pec.Name, "--description", "no", "--dry-run")
	if len(plan) != 1 || plan[0]["wouldChange"] != true || plan[0]["sessionsCut"] != nil ||
		!strings.Contains(fmt.Sprint(plan[0]["note"]), "open sessions unknown: (AuthorizationFailed)") {
		t.Errorf("reject --dry-run by a caller who may not list sessions = %v; want the change, no sessionsCut, a note", plan)
	}
	vc.fails(1, "(AuthorizationFailed)", "postgres", "flexible-server", "session", "list", "-g", "rg", "-n", "orders-db")

	// The real rejection cuts what the plan named, and only that.
	if _, err := c.setStatus(ctx, "rg", "orders-db", *pec.Name, pg.PrivateEndpointServiceConnectionStatusRejected, "no"); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, private, 2*time.Second)
	cli.ok(&sessions, "postgres", "flexible-server", "session", "list", "-g", "rg", "-n", "orders-db")
	if len(sessions) != 2 || sessions[0]["kind"] != "Public" || sessions[1]["kind"] != "Public" {
		t.Errorf("session list after the rejection = %v; want the 2 public sessions", sessions)
	}
}
