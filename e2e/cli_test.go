package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/authz"
	"github.com/pglink/pglink/internal/cli"
)

// pglinkCLI runs the pglink command line in-process with its own config directory.
type pglinkCLI struct {
	t   *testing.T
	dir string
}

// newCLI returns a command line whose profile lives in a fresh directory.
func newCLI(t *testing.T) *pglinkCLI {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "config")
	t.Setenv("PGLINK_CONFIG_DIR", dir)
	return &pglinkCLI{t: t, dir: dir}
}

// run runs args and returns stdout, stderr and the exit code.
func (c *pglinkCLI) run(args ...string) (stdout, stderr string, code int) {
	c.t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code = cli.Run(ctx, args, strings.NewReader(""), &out, &errb)
	return out.String(), errb.String(), code
}

// ok runs args, fails the test unless they exit 0, and decodes stdout (JSON) into out if not nil.
func (c *pglinkCLI) ok(out any, args ...string) string {
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

// fails runs args and checks that they exit 1 with want in stderr.
func (c *pglinkCLI) fails(want string, args ...string) {
	c.t.Helper()
	_, stderr, code := c.run(args...)
	if code != 1 || !strings.Contains(stderr, want) {
		c.t.Errorf("pglink %s: exit %d, stderr %q; want exit 1 and %q", strings.Join(args, " "), code, stderr, want)
	}
}

// TestCLI drives the command line against a real server: the bootstrap login, resource groups,
// roles and role assignments, a login as a service principal that holds only Reader, and a
// user's login.
func TestCLI(t *testing.T) {
	in := start(t, nil)
	c := newCLI(t)
	boot := filepath.Join(in.dir, "bootstrap.json")
	sub := "/subscriptions/" + in.boot.SubscriptionID

	var accounts []map[string]any
	c.ok(&accounts, "login", "--bootstrap", boot)
	if len(accounts) != 1 || accounts[0]["id"] != in.boot.SubscriptionID || accounts[0]["isDefault"] != true ||
		accounts[0]["tenantId"] != in.boot.TenantID {
		t.Errorf("login --bootstrap printed %v; want the one default subscription %s", accounts, in.boot.SubscriptionID)
	}
	if st, err := os.Stat(filepath.Join(c.dir, "profile.json")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("profile.json: %v, %v; want mode 0600", st, err)
	}
	var acct struct {
		ID, TenantID string
		User         struct{ Name, Type string }
	}
	c.ok(&acct, "account", "show")
	if acct.ID != in.boot.SubscriptionID || acct.User.Name != in.boot.ClientID || acct.User.Type != "servicePrincipal" {
		t.Errorf("account show = %+v; want subscription %s, service principal %s", acct, in.boot.SubscriptionID, in.boot.ClientID)
	}

	// Resource groups.
	var g map[string]any
	c.ok(&g, "group", "create", "-n", "cli-rg", "-l", "eastus", "--tags", "env=test", "team=db")
	if g["name"] != "cli-rg" || g["location"] != "eastus" || !strings.EqualFold(g["id"].(string), sub+"/resourceGroups/cli-rg") {
		t.Errorf("group create printed %v", g)
	}
	if tags, _ := g["tags"].(map[string]any); tags["env"] != "test" || tags["team"] != "db" {
		t.Errorf("group create: tags = %v; want env=test team=db", g["tags"])
	}
	c.ok(nil, "group", "create", "-n", "cli-other", "-l", "westus")
	if got := c.ok(nil, "group", "list", "--query", "sort([].name)", "-o", "tsv"); got != "cli-other\ncli-rg\n" {
		t.Errorf("group list --query sort([].name) -o tsv = %q; want both groups", got)
	}
	c.ok(&g, "group", "show", "-n", "cli-rg")
	if props, _ := g["properties"].(map[string]any); props["provisioningState"] != "Succeeded" {
		t.Errorf("group show printed %v; want provisioningState Succeeded", g)
	}
	if got := c.ok(nil, "group", "show", "-n", "cli-rg", "-o", "table"); !strings.HasPrefix(got, "Location  Name\n") || !strings.Contains(got, "eastus    cli-rg") {
		t.Errorf("group show -o table = %q", got)
	}
	c.fails("(ResourceGroupNotFound)", "group", "show", "-n", "no-such-group")
	c.ok(nil, "group", "delete", "-n", "cli-other", "--yes")
	c.fails("(ResourceGroupNotFound)", "group", "show", "-n", "cli-other")
	if _, stderr, code := c.run("group", "delete", "-n", "cli-rg"); code != 1 || !strings.Contains(stderr, "--yes") {
		t.Errorf("group delete without --yes and no input: exit %d, %q; want exit 1 naming --yes", code, stderr)
	}

	// Role definitions.
	var names []string
	c.ok(&names, "role", "definition", "list", "--query", "[].roleName")
	for _, want := range []string{"Owner", "Reader", "PostgreSQL Flexible Server Administrator"} {
		if !slices.Contains(names, want) {
			t.Errorf("role definition list: roles %v lack %q", names, want)
		}
	}
	var defs []map[string]any
	c.ok(&defs, "role", "definition", "list", "--name", "PostgreSQL Flexible Server Administrator")
	if len(defs) != 1 || defs[0]["name"] != authz.PostgreSQLAdministratorID || defs[0]["roleType"] != "BuiltInRole" {
		t.Errorf("role definition list --name: %v; want the one built-in %s", defs, authz.PostgreSQLAdministratorID)
	}
	var custom map[string]any
	c.ok(&custom, "role", "definition", "create", "--role-definition",
		`{"Name":"CLI Group Reader","Description":"reads groups","Actions":["Microsoft.Resources/subscriptions/resourceGroups/read"],"AssignableScopes":["`+sub+`"]}`)
	if custom["roleName"] != "CLI Group Reader" || custom["roleType"] != "CustomRole" {
		t.Errorf("role definition create printed %v", custom)
	}
	c.ok(&defs, "role", "definition", "list", "--custom-role-only")
	if len(defs) != 1 || defs[0]["roleName"] != "CLI Group Reader" {
		t.Errorf("role definition list --custom-role-only = %v; want the custom role", defs)
	}

	// Role assignments for a service principal of the directory.
	reader := in.addServicePrincipal(t, "cli-reader")
	var a map[string]any
	c.ok(&a, "role", "assignment", "create", "--assignee-object-id", reader.objectID, "--assignee-principal-type", "ServicePrincipal",
		"--role", "Reader", "--scope", sub+"/resourceGroups/cli-rg")
	if a["principalId"] != reader.objectID || !strings.HasSuffix(a["roleDefinitionId"].(string), authz.ReaderID) || a["resourceGroup"] != "cli-rg" {
		t.Errorf("role assignment create printed %v", a)
	}
	var list []map[string]any
	c.ok(&list, "role", "assignment", "list", "--assignee-object-id", reader.objectID, "--all")
	if len(list) != 1 || list[0]["id"] != a["id"] || list[0]["roleDefinitionName"] != "Reader" {
		t.Errorf("role assignment list --all = %v; want the Reader assignment", list)
	}
	c.ok(&list, "role", "assignment", "list", "--assignee-object-id", reader.objectID)
	if len(list) != 0 {
		t.Errorf("role assignment list (subscription scope only) = %v; want none", list)
	}

	// The service principal logs in (tenant and subscription found out) and may only read.
	rc := newCLI(t)
	rc.ok(&accounts, "login", "--service-principal", "-u", reader.clientID, "-p", reader.secret,
		"--endpoint", in.boot.ARMEndpoint, "--ca-file", in.boot.CACertFile)
	if len(accounts) != 1 || accounts[0]["tenantId"] != in.boot.TenantID || accounts[0]["id"] != in.boot.SubscriptionID {
		t.Errorf("login --service-principal printed %v; want tenant %s and subscription %s", accounts, in.boot.TenantID, in.boot.SubscriptionID)
	}
	rc.ok(nil, "group", "show", "-n", "cli-rg")
	rc.fails("(AuthorizationFailed)", "group", "create", "-n", "cli-rg", "-l", "eastus", "--tags", "by=reader")
	rc.ok(nil, "logout")
	if _, err := os.Stat(filepath.Join(rc.dir, "profile.json")); !os.IsNotExist(err) {
		t.Errorf("after logout, profile.json: %v; want it gone", err)
	}

	t.Setenv("PGLINK_CONFIG_DIR", c.dir)
	c.ok(nil, "role", "assignment", "delete", "--assignee-object-id", reader.objectID, "--role", "Reader", "-g", "cli-rg")
	c.ok(&list, "role", "assignment", "list", "--assignee-object-id", reader.objectID, "--all")
	if len(list) != 0 {
		t.Errorf("after delete, role assignment list = %v; want none", list)
	}
	c.ok(nil, "role", "definition", "delete", "--name", "CLI Group Reader")
	c.ok(nil, "group", "delete", "-n", "cli-rg", "--yes")

	// A user logs in with a password.
	uc := newCLI(t)
	uc.ok(&accounts, "login", "-u", in.boot.Username, "-p", in.boot.Password, "--endpoint", in.boot.ARMEndpoint, "--ca-file", in.boot.CACertFile)
	if len(accounts) != 1 || accounts[0]["user"].(map[string]any)["type"] != "user" {
		t.Errorf("login -u printed %v; want a user account", accounts)
	}
	uc.ok(nil, "group", "list")
	uc.fails("Error validating credentials", "login", "-u", in.boot.Username, "-p", "wrong", "--endpoint", in.boot.ARMEndpoint, "--ca-file", in.boot.CACertFile)
	uc.ok(nil, "logout")
	uc.fails("please run 'pglink login'", "group", "list")
}
