package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// binCLI runs the built pglink binary as a process, with its own config directory.
type binCLI struct {
	t        *testing.T
	bin, dir string
}

func newBinCLI(t *testing.T, bin string) *binCLI {
	t.Helper()
	return &binCLI{t: t, bin: bin, dir: filepath.Join(t.TempDir(), "config")}
}

// run runs pglink args and returns stdout, stderr and the exit code.
func (c *binCLI) run(args ...string) (stdout, stderr string, code int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Env = append(os.Environ(), "PGLINK_CONFIG_DIR="+c.dir)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return out.String(), errb.String(), ee.ExitCode()
	} else if err != nil {
		c.t.Fatalf("run pglink %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errb.String(), 0
}

// ok runs args, fails the test unless they exit 0, and decodes stdout (JSON) into out if not nil.
func (c *binCLI) ok(out any, args ...string) string {
	c.t.Helper()
	stdout, stderr, code := c.run(args...)
	if code != 0 {
		c.t.Fatalf("pglink %s: exit %d\nstderr: %s", strings.Join(args, " "), code, stderr)
	}
	if out != nil {
		if err := json.Unmarshal([]byte(stdout), out); err != nil {
			c.t.Fatalf("pglink %s: output is not JSON: %v\n%s", strings.Join(args, " "), err, stdout)
		}
	}
	return stdout
}

// fails runs args and checks that they exit with code and print want on stderr.
func (c *binCLI) fails(code int, want string, args ...string) {
	c.t.Helper()
	_, stderr, got := c.run(args...)
	if got != code || !strings.Contains(stderr, want) {
		c.t.Errorf("pglink %s: exit %d, stderr %q; want exit %d and %q", strings.Join(args, " "), got, stderr, code, want)
	}
}

// lastSeg returns the last segment of an ARM ID.
func lastSeg(id string) string { return id[strings.LastIndex(id, "/")+1:] }

// sameLines reports whether a and b hold the same lines in any order.
func sameLines(a, b string) bool {
	x, y := strings.Split(strings.TrimSpace(a), "\n"), strings.Split(strings.TrimSpace(b), "\n")
	sort.Strings(x)
	sort.Strings(y)
	return strings.Join(x, "\n") == strings.Join(y, "\n")
}

// get returns the value at a dotted path of a decoded JSON object ("a.b.0.c").
func get(v any, path string) any {
	for _, k := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			v = x[k]
		case []any:
			i := 0
			for _, ch := range k {
				i = i*10 + int(ch-'0')
			}
			if i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

// TestCLIFlexibleServer runs the built pglink binary against a real server through the whole
// workflow: a flexible server and its firewall rules, a virtual network and private endpoints,
// their connections approved (the seed's command, verbatim), rejected and deleted, the activity
// log, and every error case: a missing resource (exit 3), a server that is not Ready, a caller
// without the role, a bad --type, a missing --description (exit 2).
func TestCLIFlexibleServer(t *testing.T) {
	bin := buildPglink(t)
	in := start(t, nil)
	c := newBinCLI(t, bin)
	c.ok(nil, "login", "--bootstrap", filepath.Join(in.dir, "bootstrap.json"))
	sub := "/subscriptions/" + in.boot.SubscriptionID
	c.ok(nil, "group", "create", "-n", "db-rg", "-l", "eastus")
	c.ok(nil, "group", "create", "-n", "net-rg", "-l", "eastus")

	// The flexible server.
	var srv map[string]any
	c.ok(&srv, "postgres", "flexible-server", "create", "-g", "db-rg", "-n", "orders-db",
		"--admin-user", "pgadmin", "--admin-password", "S3cret-pass!")
	srvID, _ := srv["id"].(string)
	if srv["name"] != "orders-db" || srv["state"] != "Ready" || srv["location"] != "eastus" || srv["resourceGroup"] != "db-rg" ||
		!strings.EqualFold(srvID, sub+"/resourceGroups/db-rg/providers/Microsoft.DBforPostgreSQL/flexibleServers/orders-db") {
		t.Errorf("flexible-server create printed %v; want orders-db Ready in eastus (location of db-rg)", srv)
	}
	if out := c.ok(nil, "postgres", "flexible-server", "create", "-g", "db-rg", "-n", "later-db", "--admin-user", "pgadmin",
		"--admin-password", "S3cret-pass!", "--no-wait"); out != "" {
		t.Errorf("flexible-server create --no-wait printed %q; want nothing", out)
	}
	c.ok(&srv, "postgres", "flexible-server", "show", "-g", "db-rg", "-n", "orders-db")
	if srv["administratorLogin"] != "pgadmin" || srv["properties"] != nil {
		t.Errorf("flexible-server show printed %v; want properties flattened", srv)
	}
	if got := c.ok(nil, "postgres", "flexible-server", "show", "-g", "db-rg", "-n", "orders-db", "--query", "{name:name, state:state}", "-o", "tsv"); got != "orders-db\tReady\n" {
		t.Errorf("flexible-server show --query {name:name, state:state} -o tsv = %q", got)
	}
	if got := c.ok(nil, "postgres", "flexible-server", "list", "-o", "table"); !strings.HasPrefix(got, "Name       ResourceGroup  Location  Version") ||
		!strings.Contains(got, "orders-db  db-rg          eastus") {
		t.Errorf("flexible-server list -o table =\n%s", got)
	}
	var names []string
	c.ok(&names, "postgres", "flexible-server", "list", "-g", "db-rg", "--query", "sort([].name)")
	if len(names) != 2 || names[0] != "later-db" || names[1] != "orders-db" {
		t.Errorf("flexible-server list -g db-rg = %v", names)
	}
	c.fails(3, "(ResourceNotFound)", "postgres", "flexible-server", "show", "-g", "db-rg", "-n", "no-such-db")
	c.fails(2, "required flag(s) \"name\" not set", "postgres", "flexible-server", "show", "-g", "db-rg")

	c.ok(&srv, "postgres", "flexible-server", "update", "-g", "db-rg", "-n", "orders-db", "--tags", "env=prod", "team=db")
	if get(srv, "tags.env") != "prod" || get(srv, "tags.team") != "db" {
		t.Errorf("flexible-server update --tags: tags = %v", srv["tags"])
	}
	var plan []map[string]any
	c.ok(&plan, "postgres", "flexible-server", "update", "-g", "db-rg", "-n", "orders-db", "--public-access", "Disabled", "--dry-run")
	if len(plan) != 1 || plan[0]["current"] != "Enabled" || plan[0]["new"] != "Disabled" || plan[0]["wouldChange"] != true {
		t.Errorf("update --public-access Disabled --dry-run = %v", plan)
	}
	if got := c.ok(nil, "postgres", "flexible-server", "show", "-g", "db-rg", "-n", "orders-db", "--query", "network.publicNetworkAccess", "-o", "tsv"); got != "Enabled\n" {
		t.Errorf("after --dry-run, publicNetworkAccess = %q; want Enabled (unchanged)", got)
	}
	c.ok(&srv, "postgres", "flexible-server", "update", "-g", "db-rg", "-n", "orders-db", "--public-access", "Disabled")
	if get(srv, "network.publicNetworkAccess") != "Disabled" {
		t.Errorf("update --public-access Disabled printed %v", srv["network"])
	}
	c.ok(nil, "postgres", "flexible-server", "update", "-g", "db-rg", "-n", "orders-db", "--public-access", "enabled", "--admin-password", "N3w-pass!")
	c.fails(2, "--public-access", "postgres", "flexible-server", "update", "-g", "db-rg", "-n", "orders-db", "--public-access", "Sometimes")

	var cs struct{ ConnectionStrings map[string]string }
	c.ok(&cs, "postgres", "flexible-server", "show-connection-string", "-g", "db-rg", "-s", "orders-db", "-d", "orders")
	if !strings.Contains(cs.ConnectionStrings["psql_cmd"], "user=pgadmin") || !strings.Contains(cs.ConnectionStrings["psql_cmd"], "dbname=orders") {
		t.Errorf("show-connection-string = %v", cs.ConnectionStrings)
	}

	// Firewall rules.
	var rule map[string]any
	c.ok(&rule, "postgres", "flexible-server", "firewall-rule", "create", "-g", "db-rg", "-n", "orders-db", "-r", "office",
		"--start-ip-address", "203.0.113.0", "--end-ip-address", "203.0.113.255")
	if rule["name"] != "office" || rule["startIpAddress"] != "203.0.113.0" || rule["endIpAddress"] != "203.0.113.255" {
		t.Errorf("firewall-rule create printed %v", rule)
	}
	c.ok(&plan, "postgres", "flexible-server", "firewall-rule", "update", "-g", "db-rg", "-n", "orders-db", "-r", "office",
		"--start-ip-address", "203.0.113.0", "--end-ip-address", "203.0.113.127", "--dry-run")
	if len(plan) != 1 || plan[0]["current"] != "203.0.113.0-203.0.113.255" || plan[0]["new"] != "203.0.113.0-203.0.113.127" || plan[0]["wouldChange"] != true {
		t.Errorf("firewall-rule update --dry-run = %v", plan)
	}
	c.ok(&rule, "postgres", "flexible-server", "firewall-rule", "update", "-g", "db-rg", "-n", "orders-db", "-r", "office",
		"--start-ip-address", "203.0.113.0", "--end-ip-address", "203.0.113.127")
	if rule["endIpAddress"] != "203.0.113.127" {
		t.Errorf("firewall-rule update printed %v", rule)
	}
	if out := c.ok(nil, "postgres", "flexible-server", "firewall-rule", "create", "-g", "db-rg", "-n", "orders-db", "-r", "local",
		"--start-ip-address", "127.0.0.1", "--no-wait"); out != "" {
		t.Errorf("firewall-rule create --no-wait printed %q; want nothing", out)
	}
	if got := c.ok(nil, "postgres", "flexible-server", "firewall-rule", "list", "-g", "db-rg", "-n", "orders-db", "-o", "table"); !strings.Contains(got, "StartIpAddress") ||
		!strings.Contains(got, "office  db-rg          203.0.113.0     203.0.113.127") {
		t.Errorf("firewall-rule list -o table =\n%s", got)
	}
	c.ok(&plan, "postgres", "flexible-server", "firewall-rule", "delete", "-g", "db-rg", "-n", "orders-db", "-r", "office", "--dry-run")
	if len(plan) != 1 || plan[0]["new"] != nil || plan[0]["wouldChange"] != true {
		t.Errorf("firewall-rule delete --dry-run = %v", plan)
	}
	c.ok(nil, "postgres", "flexible-server", "firewall-rule", "show", "-g", "db-rg", "-n", "orders-db", "-r", "office")
	c.ok(nil, "postgres", "flexible-server", "firewall-rule", "delete", "-g", "db-rg", "-n", "orders-db", "-r", "office", "--yes")
	c.fails(3, "ERROR: (", "postgres", "flexible-server", "firewall-rule", "show", "-g", "db-rg", "-n", "orders-db", "-r", "office")
	c.fails(1, "--yes", "postgres", "flexible-server", "firewall-rule", "delete", "-g", "db-rg", "-n", "orders-db", "-r", "local")

	// The network: a virtual network, subnets, private endpoints asking to connect.
	var vnet struct{ NewVNet map[string]any }
	c.ok(&vnet, "network", "vnet", "create", "-g", "net-rg", "-n", "app-vnet", "--address-prefix", "10.0.0.0/16",
		"--subnet-name", "pe", "--subnet-prefix", "10.0.1.0/24")
	if vnet.NewVNet["name"] != "app-vnet" || get(vnet.NewVNet, "subnets.0.name") != "pe" || get(vnet.NewVNet, "subnets.0.addressPrefix") != "10.0.1.0/24" {
		t.Errorf("vnet create printed %v", vnet.NewVNet)
	}
	if got := c.ok(nil, "network", "vnet", "list", "-g", "net-rg", "-o", "table"); !strings.Contains(got, "app-vnet  net-rg         eastus    10.0.0.0/16") {
		t.Errorf("vnet list -o table =\n%s", got)
	}
	c.ok(nil, "network", "vnet", "show", "-g", "net-rg", "-n", "app-vnet")
	c.fails(3, "ERROR: (", "network", "vnet", "show", "-g", "net-rg", "-n", "no-vnet")
	c.ok(nil, "network", "vnet", "create", "-g", "net-rg", "-n", "spare-vnet", "--address-prefix", "10.9.0.0/16")
	c.ok(nil, "network", "vnet", "delete", "-g", "net-rg", "-n", "spare-vnet")
	c.fails(3, "ERROR: (", "network", "vnet", "show", "-g", "net-rg", "-n", "spare-vnet")
	c.ok(nil, "network", "vnet", "subnet", "create", "-g", "net-rg", "--vnet-name", "app-vnet", "-n", "apps", "--address-prefixes", "10.0.2.0/24")
	if got := c.ok(nil, "network", "vnet", "subnet", "list", "-g", "net-rg", "--vnet-name", "app-vnet", "--query", "sort([].name)", "-o", "tsv"); got != "apps\npe\n" {
		t.Errorf("subnet list --query sort([].name) -o tsv = %q", got)
	}
	if got := c.ok(nil, "network", "vnet", "subnet", "show", "-g", "net-rg", "--vnet-name", "app-vnet", "-n", "apps", "--query", "addressPrefix", "-o", "tsv"); got != "10.0.2.0/24\n" {
		t.Errorf("subnet show --query addressPrefix = %q", got)
	}
	c.ok(nil, "network", "vnet", "subnet", "delete", "-g", "net-rg", "--vnet-name", "app-vnet", "-n", "apps")
	c.fails(3, "ERROR: (", "network", "vnet", "subnet", "show", "-g", "net-rg", "--vnet-name", "app-vnet", "-n", "apps")

	var pe map[string]any
	for _, name := range []string{"app-pe", "batch-pe", "report-pe"} {
		c.ok(&pe, "network", "private-endpoint", "create", "-g", "net-rg", "-n", name, "--vnet-name", "app-vnet", "--subnet", "pe",
			"--private-connection-resource-id", srvID, "--group-id", "postgresqlServer", "--connection-name", "orders",
			"--manual-request", "--request-message", "for the "+name+" app")
	}
	if get(pe, "manualPrivateLinkServiceConnections.0.privateLinkServiceConnectionState.status") != "Pending" {
		t.Errorf("private-endpoint create printed %v; want a Pending manual connection", pe)
	}
	if got := c.ok(nil, "network", "private-endpoint", "list", "-g", "net-rg", "--query", "length(@)", "-o", "tsv"); got != "3\n" {
		t.Errorf("private-endpoint list: %q endpoints; want 3", got)
	}

	// The connections: listed by status, approved with the seed's command, as written.
	var conns []map[string]any
	c.ok(&conns, "network", "private-endpoint-connection", "list", "-g", "db-rg", "-n", "orders-db", "--type", "Microsoft.DBforPostgreSQL/flexibleServers", "--status", "Pending")
	if len(conns) != 3 {
		t.Fatalf("private-endpoint-connection list --status Pending = %v; want 3", conns)
	}
	conn := ""
	for _, m := range conns {
		if strings.HasPrefix(m["name"].(string), "app-pe.") {
			conn = m["name"].(string)
		}
	}
	var approved map[string]any
	c.ok(&approved, strings.Fields("network private-endpoint-connection approve --description approved-by-the-DBA-team --resource-group db-rg --resource-name orders-db --type Microsoft.DBforPostgreSQL/flexibleServers --name "+conn)...)
	if get(approved, "properties.privateLinkServiceConnectionState.status") != "Approved" ||
		get(approved, "properties.privateLinkServiceConnectionState.description") != "approved-by-the-DBA-team" || get(approved, "properties.provisioningState") != "Succeeded" {
		t.Errorf("the seed's approve printed %v; want the Approved connection", approved)
	}
	if got := c.ok(nil, "network", "private-endpoint", "show", "-g", "net-rg", "-n", "app-pe", "--query",
		"manualPrivateLinkServiceConnections[0].privateLinkServiceConnectionState.status", "-o", "tsv"); got != "Approved\n" {
		t.Errorf("the private endpoint's connection status = %q; want Approved", got)
	}
	table := c.ok(nil, "postgres", "flexible-server", "private-endpoint-connection", "list", "-g", "db-rg", "-s", "orders-db", "--status", "Approved", "-o", "table")
	if lines := strings.Split(strings.TrimSpace(table), "\n"); len(lines) != 3 || !strings.HasPrefix(lines[0], "Name") ||
		!strings.Contains(lines[0], "Status    Description               PrivateEndpoint  ProvisioningState") ||
		!strings.Contains(lines[2], "Approved  approved-by-the-DBA-team  app-pe           Succeeded") {
		t.Errorf("private-endpoint-connection list --status Approved -o table =\n%s", table)
	}
	c.fails(2, "--status", "network", "private-endpoint-connection", "list", "-g", "db-rg", "-n", "orders-db", "--type", "Microsoft.DBforPostgreSQL/flexibleServers", "--status", "Sleeping")

	// show by --id; errors: a bad --type, a missing --description, a missing connection.
	connID := srvID + "/privateEndpointConnections/" + conn
	var shownConn map[string]any
	c.ok(&shownConn, "network", "private-endpoint-connection", "show", "--id", connID)
	if shownConn["name"] != conn {
		t.Errorf("private-endpoint-connection show --id printed %v", shownConn)
	}
	c.ok(&shownConn, "postgres", "flexible-server", "private-endpoint-connection", "show", "-g", "db-rg", "-s", "orders-db", "-n", conn)
	if shownConn["privateLinkServiceConnectionState"] == nil {
		t.Errorf("postgres ... private-endpoint-connection show printed %v; want properties flattened", shownConn)
	}
	c.fails(2, "Supported values: Microsoft.DBforPostgreSQL/flexibleServers", "network", "private-endpoint-connection", "approve", "--description", "d",
		"-g", "db-rg", "--resource-name", "orders-db", "--type", "Microsoft.Sql/servers", "-n", conn)
	c.fails(2, `required flag(s) "description" not set`, "network", "private-endpoint-connection", "approve",
		"-g", "db-rg", "--resource-name", "orders-db", "--type", "Microsoft.DBforPostgreSQL/flexibleServers", "-n", conn)
	c.fails(3, "(ResourceNotFound)", "network", "private-endpoint-connection", "show",
		"-g", "db-rg", "--resource-name", "orders-db", "--type", "Microsoft.DBforPostgreSQL/flexibleServers", "-n", "no-such.conn")
	c.fails(1, "(PrivateEndpointConnectionNotFound)", "network", "private-endpoint-connection", "approve", "--description", "d",
		"-g", "db-rg", "--resource-name", "orders-db", "--type", "Microsoft.DBforPostgreSQL/flexibleServers", "-n", "no-such.conn")
	c.fails(1, "(ResourceNotFound)", "postgres", "flexible-server", "private-endpoint-connection", "list", "-g", "db-rg", "-s", "no-such-db")

	// Dry runs change nothing; --all-pending approves the rest, one line each.
	var pending []string
	c.ok(&pending, "postgres", "flexible-server", "private-endpoint-connection", "list", "-g", "db-rg", "-s", "orders-db", "--status", "Pending", "--query", "[].name")
	c.ok(&plan, "network", "private-endpoint-connection", "reject", "--description", "no", "-g", "db-rg", "--resource-name", "orders-db",
		"--type", "Microsoft.DBforPostgreSQL/flexibleServers", "-n", pending[0], "--dry-run")
	if len(plan) != 1 || plan[0]["current"] != "Pending" || plan[0]["new"] != "Rejected" || plan[0]["wouldChange"] != true {
		t.Errorf("reject --dry-run = %v", plan)
	}
	c.ok(&plan, "postgres", "flexible-server", "private-endpoint-connection", "approve", "-g", "db-rg", "-s", "orders-db", "--all-pending", "--description", "bulk", "--dry-run")
	if len(plan) != 2 {
		t.Errorf("approve --all-pending --dry-run = %v; want the 2 Pending connections", plan)
	}
	if got := c.ok(nil, "postgres", "flexible-server", "private-endpoint-connection", "list", "-g", "db-rg", "-s", "orders-db", "--status", "Pending", "--query", "length(@)", "-o", "tsv"); got != "2\n" {
		t.Errorf("after the dry runs, %q Pending; want 2", got)
	}
	bulk := c.ok(nil, "postgres", "flexible-server", "private-endpoint-connection", "approve", "-g", "db-rg", "-s", "orders-db", "--all-pending", "--description", "bulk", "-o", "table")
	if lines := strings.Split(strings.TrimSpace(bulk), "\n"); len(lines) != 4 || !strings.Contains(bulk, "batch-pe") || !strings.Contains(bulk, "report-pe") ||
		strings.Count(bulk, "Succeeded") != 2 {
		t.Errorf("approve --all-pending -o table =\n%s", bulk)
	}
	c.ok(&conns, "network", "private-endpoint-connection", "list", "--id", srvID, "--status", "Approved")
	if len(conns) != 3 {
		t.Errorf("after --all-pending, %d Approved; want 3", len(conns))
	}
	// A failure does not stop the rest: a caller who may approve one of two Pending connections
	// (Reader and the approval action on the server, write on that connection alone) gets one
	// line each, exit 1.
	for _, name := range []string{"late-a-pe", "late-b-pe"} {
		c.ok(nil, "network", "private-endpoint", "create", "-g", "net-rg", "-n", name, "--vnet-name", "app-vnet", "--subnet", "pe",
			"--private-connection-resource-id", srvID, "--group-id", "postgresqlServer", "--connection-name", "orders", "--manual-request")
	}
	var late []map[string]any
	c.ok(&late, "postgres", "flexible-server", "private-endpoint-connection", "list", "-g", "db-rg", "-s", "orders-db", "--status", "Pending")
	if len(late) != 2 {
		t.Fatalf("Pending connections = %v; want late-a-pe's and late-b-pe's", late)
	}
	var okConn, failConn string // the one pat may approve, the other
	for _, m := range late {
		if strings.HasPrefix(m["name"].(string), "late-a-pe.") {
			okConn = m["id"].(string)
		} else {
			failConn = m["name"].(string)
		}
	}
	c.ok(nil, "ad", "user", "create", "--display-name", "Pat", "--password", "Pat-pass-1", "--user-principal-name", "pat@pglink.local")
	c.ok(nil, "role", "assignment", "create", "--assignee", "pat@pglink.local", "--role", "Reader", "--scope", srvID)
	c.ok(nil, "role", "definition", "create", "--role-definition", fmt.Sprintf(`{"Name":"Approval Action","Actions":[
		"Microsoft.DBforPostgreSQL/flexibleServers/privateEndpointConnectionsApproval/action"],"AssignableScopes":["%s"]}`, sub))
	c.ok(nil, "role", "assignment", "create", "--assignee", "pat@pglink.local", "--role", "Approval Action", "--scope", srvID)
	c.ok(nil, "role", "assignment", "create", "--assignee", "pat@pglink.local", "--role", "PostgreSQL Private Link Approver", "--scope", okConn)
	pc := newBinCLI(t, bin)
	pc.ok(nil, "login", "-u", "pat@pglink.local", "-p", "Pat-pass-1", "--endpoint", in.boot.ARMEndpoint, "--ca-file", in.boot.CACertFile)
	stdout, stderr, code := pc.run("postgres", "flexible-server", "private-endpoint-connection", "approve", "-g", "db-rg", "-s", "orders-db",
		"--all-pending", "--description", "partly", "-o", "tsv", "--query", "[].[name, result]")
	if want := fmt.Sprintf("%s\tSucceeded\n%s\tFailed\n", lastSeg(okConn), failConn); code != 1 || !sameLines(stdout, want) ||
		!strings.Contains(stderr, "ERROR: approve private endpoint connection "+failConn+": (AuthorizationFailed)") {
		t.Errorf("approve --all-pending with one refused: exit %d\nstdout:\n%s\nstderr:\n%s\nwant exit 1, stdout (any order):\n%s", code, stdout, stderr, want)
	}
	if got := c.ok(nil, "postgres", "flexible-server", "private-endpoint-connection", "list", "-g", "db-rg", "-s", "orders-db", "--status", "Pending", "--query", "[].name", "-o", "tsv"); got != failConn+"\n" {
		t.Errorf("Pending after the partial bulk approval = %q; want only %s", got, failConn)
	}
	c.ok(nil, "postgres", "flexible-server", "private-endpoint-connection", "approve", "-g", "db-rg", "-s", "orders-db", "--all-pending", "--description", "rest")
	c.ok(&conns, "network", "private-link-resource", "list", "-g", "db-rg", "-n", "orders-db", "--type", "Microsoft.DBforPostgreSQL/flexibleServers")
	if len(conns) != 1 || get(conns[0], "properties.groupId") != "postgresqlServer" {
		t.Errorf("network private-link-resource list = %v", conns)
	}
	if got := c.ok(nil, "postgres", "flexible-server", "private-link-resource", "list", "-g", "db-rg", "-s", "orders-db", "--query", "[].groupId", "-o", "tsv"); got != "postgresqlServer\n" {
		t.Errorf("postgres private-link-resource list = %q", got)
	}
	if got := c.ok(nil, "postgres", "flexible-server", "private-link-resource", "show", "-g", "db-rg", "-s", "orders-db", "-n", "postgresqlServer", "--query", "groupId", "-o", "tsv"); got != "postgresqlServer\n" {
		t.Errorf("postgres private-link-resource show = %q", got)
	}

	// A caller without the role: may read, may not approve.
	var reader struct{ AppID, Password string }
	c.ok(&reader, "ad", "sp", "create-for-rbac", "--name", "net-reader", "--role", "Reader", "--scopes", sub+"/resourceGroups/db-rg")
	rc := newBinCLI(t, bin)
	rc.ok(nil, "login", "--service-principal", "-u", reader.AppID, "-p", reader.Password, "--endpoint", in.boot.ARMEndpoint, "--ca-file", in.boot.CACertFile)
	rc.ok(nil, "network", "private-endpoint-connection", "show", "--id", connID)
	rc.fails(1, "(AuthorizationFailed)", "network", "private-endpoint-connection", "reject", "--description", "no", "--id", connID)
	c.ok(nil, "ad", "user", "create", "--display-name", "Dana", "--password", "Dana-pass-1", "--user-principal-name", "dana@pglink.local")
	c.ok(nil, "role", "assignment", "create", "--assignee", "dana@pglink.local", "--role", "Reader", "--scope", sub+"/resourceGroups/db-rg")
	uc := newBinCLI(t, bin)
	uc.ok(nil, "login", "-u", "dana@pglink.local", "-p", "Dana-pass-1", "--endpoint", in.boot.ARMEndpoint, "--ca-file", in.boot.CACertFile)
	uc.ok(nil, "postgres", "flexible-server", "private-endpoint-connection", "list", "-g", "db-rg", "-s", "orders-db")
	uc.fails(1, "(AuthorizationFailed)", "postgres", "flexible-server", "private-endpoint-connection", "approve", "-g", "db-rg", "-s", "orders-db",
		"-n", conn, "--description", "mine now")
	uc.fails(1, "(AuthorizationFailed)", "postgres", "flexible-server", "update", "-g", "db-rg", "-n", "orders-db", "--public-access", "Disabled")

	// A server that is not Ready refuses changes; start and stop are refused from the wrong state.
	c.fails(1, "(ServerIsNotReady)", "postgres", "flexible-server", "start", "-g", "db-rg", "-n", "orders-db")
	c.ok(nil, "postgres", "flexible-server", "stop", "-g", "db-rg", "-n", "orders-db")
	c.fails(1, "(ServerIsNotReady)", "network", "private-endpoint-connection", "reject", "--description", "no", "--id", connID)
	c.fails(1, "(ServerIsNotReady)", "postgres", "flexible-server", "stop", "-g", "db-rg", "-n", "orders-db")
	c.ok(nil, "postgres", "flexible-server", "start", "-g", "db-rg", "-n", "orders-db")
	if stdout, stderr, code := c.run("postgres", "flexible-server", "restart", "-g", "db-rg", "-n", "orders-db"); code != 0 || stdout != "" || stderr != "" {
		t.Errorf("restart: exit %d, stdout %q, stderr %q; want 0 and nothing (no spinner: stderr is not a terminal)", code, stdout, stderr)
	}
	// On a terminal, a spinner shows while the command waits.
	script := requireTool(t, "script")
	cmd := exec.Command(script, "-qec", bin+" postgres flexible-server restart -g db-rg -n orders-db", "/dev/null")
	cmd.Env = append(os.Environ(), "PGLINK_CONFIG_DIR="+c.dir)
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "Running ..") {
		t.Errorf("restart on a terminal: %v, %q; want the spinner", err, out)
	}

	// Reject, then delete a connection.
	var rejected map[string]any
	c.ok(&rejected, "network", "private-endpoint-connection", "reject", "--description", "not this one", "--id", connID)
	if get(rejected, "properties.privateLinkServiceConnectionState.status") != "Rejected" {
		t.Errorf("reject printed %v", rejected)
	}
	c.ok(&plan, "postgres", "flexible-server", "private-endpoint-connection", "delete", "-g", "db-rg", "-s", "orders-db", "-n", conn, "--dry-run")
	if len(plan) != 1 || plan[0]["current"] != "Rejected" || plan[0]["wouldChange"] != true {
		t.Errorf("delete --dry-run = %v", plan)
	}
	c.ok(nil, "network", "private-endpoint-connection", "delete", "--id", connID, "--yes")
	c.fails(3, "(ResourceNotFound)", "network", "private-endpoint-connection", "show", "--id", connID)
	if got := c.ok(nil, "network", "private-endpoint", "show", "-g", "net-rg", "-n", "app-pe", "--query",
		"manualPrivateLinkServiceConnections[0].privateLinkServiceConnectionState.status", "-o", "tsv"); got != "Disconnected\n" {
		t.Errorf("after delete, the private endpoint's connection = %q; want Disconnected", got)
	}

	// The activity log.
	var events []map[string]any
	c.ok(&events, "monitor", "activity-log", "list", "-g", "db-rg", "--offset", "1h")
	if len(events) == 0 {
		t.Fatal("activity-log list -g db-rg: no events")
	}
	c.ok(&events, "monitor", "activity-log", "list", "--resource-id", srvID, "--status", "Failed", "--caller", reader.AppID)
	if len(events) == 0 || events[0]["caller"] != reader.AppID {
		t.Errorf("activity-log list --caller reader --status Failed = %v; want the refused reject", events)
	}
	if got := c.ok(nil, "monitor", "activity-log", "list", "-g", "db-rg", "--start-time", time.Now().Add(-time.Hour).UTC().Format(time.RFC3339),
		"--max-events", "1", "--query", "[].resourceGroupName", "-o", "tsv"); got != "db-rg\n" {
		t.Errorf("activity-log list --max-events 1 --query = %q", got)
	}
	if got := c.ok(nil, "monitor", "activity-log", "list", "-g", "db-rg", "-o", "table"); !strings.HasPrefix(got, "EventTimestamp") {
		t.Errorf("activity-log list -o table =\n%s", got)
	}
	c.fails(2, "--offset", "monitor", "activity-log", "list", "--offset", "soon")

	// Help, completion, clean-up.
	if got := c.ok(nil, "network", "private-endpoint-connection", "approve", "-h"); !strings.Contains(got, "Examples:") || !strings.Contains(got, "--description") {
		t.Errorf("approve -h =\n%s", got)
	}
	for _, sh := range []string{"bash", "zsh", "fish"} {
		if got := c.ok(nil, "completion", sh); !strings.Contains(got, "pglink") {
			t.Errorf("completion %s printed no script", sh)
		}
	}
	c.fails(2, "bash, zsh, fish", "completion", "tcsh")
	c.ok(nil, "network", "private-endpoint", "delete", "-g", "net-rg", "-n", "app-pe")
	c.fails(3, "ERROR: (", "network", "private-endpoint", "show", "-g", "net-rg", "-n", "app-pe")
	c.ok(nil, "postgres", "flexible-server", "delete", "-g", "db-rg", "-n", "orders-db", "--yes")
	c.fails(3, "(ResourceNotFound)", "postgres", "flexible-server", "show", "-g", "db-rg", "-n", "orders-db")
}
