package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
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

// newCLI returns a command line whose profile lives in a fresh directory (PGLINK_CONFIG_DIR,
// set for each run).
func newCLI(t *testing.T) *pglinkCLI {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "config")
	return &pglinkCLI{t: t, dir: dir}
}

// run runs args and returns stdout, stderr and the exit code.
func (c *pglinkCLI) run(args ...string) (stdout, stderr string, code int) {
	c.t.Helper()
	c.t.Setenv("PGLINK_CONFIG_DIR", c.dir)
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

// profile returns the fields of the profile.
func (c *pglinkCLI) profile() map[string]string {
	c.t.Helper()
	data, err := os.ReadFile(filepath.Join(c.dir, "profile.json"))
	if err != nil {
		c.t.Fatal(err)
	}
	var p map[string]any
	if err := json.Unmarshal(data, &p); err != nil {
		c.t.Fatal(err)
	}
	out := map[string]string{}
	for k, v := range p {
		out[k], _ = v.(string)
	}
	return out
}

// restore writes the profile p.
func (c *pglinkCLI) restore(p map[string]string) {
	c.t.Helper()
	data, _ := json.Marshal(p)
	if err := os.WriteFile(filepath.Join(c.dir, "profile.json"), data, 0o600); err != nil {
		c.t.Fatal(err)
	}
}

// expire marks the profile's access token as expired and returns the profile as it was.
func (c *pglinkCLI) expire() map[string]string {
	c.t.Helper()
	p := c.profile()
	q := maps.Clone(p)
	q["expiresOn"] = time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	c.restore(q)
	return p
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
	var subs []map[string]any
	c.ok(&subs, "account", "list")
	if len(subs) != 1 || subs[0]["id"] != in.boot.SubscriptionID || subs[0]["isDefault"] != true {
		t.Errorf("account list = %v; want the one subscription, the default", subs)
	}
	c.ok(nil, "account", "set", "--subscription", in.boot.SubscriptionID)
	if _, stderr, code := c.run("account", "set", "--subscription", "00000000-0000-0000-0000-000000000000"); code == 0 {
		t.Errorf("account set to an unknown subscription succeeded: %q", stderr)
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
	if got := c.ok(nil, "group", "show", "-n", "cli-rg", "-o", "table"); got != "Name    Location  Status\n------  --------  ---------\ncli-rg  eastus    Succeeded\n" {
		t.Errorf("group show -o table = %q", got)
	}
	// A show of what does not exist exits 3, as az's show commands do.
	missing := func(args ...string) {
		t.Helper()
		if _, stderr, code := c.run(args...); code != 3 || !strings.Contains(stderr, "(ResourceGroupNotFound)") {
			t.Errorf("pglink %s: exit %d, %q; want exit 3 and (ResourceGroupNotFound)", strings.Join(args, " "), code, stderr)
		}
	}
	missing("group", "show", "-n", "no-such-group")
	for name, want := range map[string]string{"cli-other": "true", "no-such-group": "false"} {
		if out, stderr, code := c.run("group", "exists", "-n", name); code != 0 || strings.TrimSpace(out) != want {
			t.Errorf("group exists -n %s: exit %d, %q %q; want %s", name, code, out, stderr, want)
		}
	}
	c.ok(nil, "group", "delete", "-n", "cli-other", "--yes")
	missing("group", "show", "-n", "cli-other")
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

	// A service principal from the directory, assigned Reader on the group by its appId.
	var reader struct{ AppID, DisplayName, Password, Tenant string }
	c.ok(&reader, "ad", "sp", "create-for-rbac", "--name", "cli-reader")
	if reader.DisplayName != "cli-reader" || reader.Tenant != in.boot.TenantID || reader.AppID == "" || reader.Password == "" {
		t.Errorf("ad sp create-for-rbac printed %+v", reader)
	}
	var sp struct{ ID, AppID string }
	c.ok(&sp, "ad", "sp", "show", "--id", reader.AppID)
	var a map[string]any
	c.ok(&a, "role", "assignment", "create", "--assignee", reader.AppID, "--role", "Reader", "--scope", sub+"/resourceGroups/cli-rg")
	if a["principalId"] != sp.ID || a["principalType"] != "ServicePrincipal" || !strings.HasSuffix(a["roleDefinitionId"].(string), authz.ReaderID) || a["resourceGroup"] != "cli-rg" {
		t.Errorf("role assignment create printed %v; want Reader for %s", a, sp.ID)
	}
	var list []map[string]any
	c.ok(&list, "role", "assignment", "list", "--assignee", reader.AppID, "--all")
	if len(list) != 1 || list[0]["id"] != a["id"] || list[0]["roleDefinitionName"] != "Reader" || list[0]["principalName"] != reader.AppID {
		t.Errorf("role assignment list --all = %v; want the Reader assignment", list)
	}
	c.ok(&list, "role", "assignment", "list", "--assignee-object-id", sp.ID)
	if len(list) != 0 {
		t.Errorf("role assignment list (subscription scope only) = %v; want none", list)
	}

	// With --tenant the tenant is not asked of the server: the right one signs in, another fails.
	tc := newCLI(t)
	tc.ok(&accounts, "login", "--service-principal", "-u", reader.AppID, "-p", reader.Password, "--tenant", in.boot.TenantID,
		"--endpoint", in.boot.ARMEndpoint, "--ca-file", in.boot.CACertFile)
	if len(accounts) != 1 || accounts[0]["tenantId"] != in.boot.TenantID {
		t.Errorf("login --tenant printed %v; want tenant %s", accounts, in.boot.TenantID)
	}
	if _, stderr, code := newCLI(t).run("login", "--service-principal", "-u", reader.AppID, "-p", reader.Password,
		"--tenant", "11111111-1111-1111-1111-111111111111", "--endpoint", in.boot.ARMEndpoint, "--ca-file", in.boot.CACertFile); code == 0 {
		t.Errorf("login with another tenant succeeded: %q", stderr)
	}

	// The service principal logs in (tenant and subscription found out) and may only read.
	rc := newCLI(t)
	rc.ok(&accounts, "login", "--service-principal", "-u", reader.AppID, "-p", reader.Password,
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

	c.ok(nil, "role", "assignment", "delete", "--assignee", reader.AppID, "--role", "Reader", "-g", "cli-rg")
	c.ok(&list, "role", "assignment", "list", "--assignee", reader.AppID, "--all")
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

	// The access token is taken as expired: the refresh token renews it, and rotates.
	before := uc.expire()
	uc.ok(nil, "group", "list")
	after := uc.profile()
	if exp, err := time.Parse(time.RFC3339, after["expiresOn"]); err != nil || !exp.After(time.Now()) ||
		before["refreshToken"] == "" || after["refreshToken"] == before["refreshToken"] {
		t.Errorf("renewal: refresh token %q then %q, access token expiring %s; want a new refresh token and a token for later",
			before["refreshToken"], after["refreshToken"], after["expiresOn"])
	}
	// Logout ends the session on the server: its refresh token renews nothing afterwards.
	if _, stderr, code := uc.run("logout"); code != 0 || stderr != "" {
		t.Errorf("logout: exit %d, stderr %q; want 0 and nothing", code, stderr)
	}
	uc.restore(after)
	uc.expire()
	uc.fails("the login has expired: run pglink login", "group", "list")

	uc.fails("Error validating credentials", "login", "-u", in.boot.Username, "-p", "wrong", "--endpoint", in.boot.ARMEndpoint, "--ca-file", in.boot.CACertFile)
	uc.ok(nil, "logout")
	uc.fails("please run 'pglink login'", "group", "list")
}

// TestCLIDirectory drives the directory commands: a service principal created with a role at a
// scope, its passwords reset, a user created, disabled and deleted, each logging in.
func TestCLIDirectory(t *testing.T) {
	in := start(t, nil)
	c := newCLI(t)
	c.ok(nil, "login", "--bootstrap", filepath.Join(in.dir, "bootstrap.json"))
	sub := "/subscriptions/" + in.boot.SubscriptionID
	c.ok(nil, "group", "create", "-n", "db", "-l", "eastus")
	c.ok(nil, "group", "create", "-n", "net", "-l", "eastus")
	login := func(c *pglinkCLI, args ...string) (string, int) {
		t.Helper()
		_, stderr, code := c.run(append(args, "--endpoint", in.boot.ARMEndpoint, "--ca-file", in.boot.CACertFile)...)
		return stderr, code
	}

	// A database administrator: a service principal with the PostgreSQL role on db only.
	var dba struct{ AppID, DisplayName, Password, Tenant string }
	stdout, stderr, code := c.run("ad", "sp", "create-for-rbac", "--name", "dba", "--role", "PostgreSQL Flexible Server Administrator", "--scopes", sub+"/resourceGroups/db")
	if code != 0 || json.Unmarshal([]byte(stdout), &dba) != nil {
		t.Fatalf("ad sp create-for-rbac: exit %d: %s%s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "Creating 'PostgreSQL Flexible Server Administrator' role assignment under scope") || !strings.Contains(stderr, "credentials that you must protect") {
		t.Errorf("ad sp create-for-rbac stderr = %q; want az's warnings", stderr)
	}
	var keys map[string]any
	json.Unmarshal([]byte(stdout), &keys)
	if len(keys) != 4 || dba.DisplayName != "dba" || dba.Tenant != in.boot.TenantID {
		t.Errorf("ad sp create-for-rbac printed %s; want appId, displayName, password, tenant", stdout)
	}
	var sps []map[string]any
	c.ok(&sps, "ad", "sp", "list", "--display-name", "dba")
	if len(sps) != 1 || sps[0]["appId"] != dba.AppID {
		t.Errorf("ad sp list --display-name dba = %v; want the one service principal %s", sps, dba.AppID)
	}

	dc := newCLI(t)
	if stderr, code := login(dc, "login", "--service-principal", "-u", dba.AppID, "-p", dba.Password); code != 0 {
		t.Fatalf("login as dba: exit %d: %s", code, stderr)
	}
	dc.ok(nil, "group", "show", "-n", "db")
	dc.fails("(AuthorizationFailed)", "group", "show", "-n", "net")
	dc.fails("(AuthorizationFailed)", "group", "delete", "-n", "db", "--yes")
	dc.fails("(Authorization_RequestDenied)", "ad", "user", "list")

	// create-for-rbac of an existing name adds a password; reset without --append removes the others.
	var again struct{ AppID, Password string }
	c.ok(&again, "ad", "sp", "create-for-rbac", "--name", "dba")
	if again.AppID != dba.AppID || again.Password == dba.Password {
		t.Errorf("create-for-rbac again = %+v; want the same appId %s with a new password", again, dba.AppID)
	}
	var reset struct{ AppID, Password, Tenant string }
	c.ok(&reset, "ad", "sp", "credential", "reset", "--id", dba.AppID)
	var shown struct{ PasswordCredentials []any }
	c.ok(&shown, "ad", "sp", "show", "--id", dba.AppID)
	if reset.AppID != dba.AppID || len(shown.PasswordCredentials) != 1 {
		t.Errorf("credential reset = %+v, then %d password credentials; want one", reset, len(shown.PasswordCredentials))
	}
	if stderr, code := login(newCLI(t), "login", "--service-principal", "-u", dba.AppID, "-p", dba.Password); code != 1 || !strings.Contains(stderr, "invalid_client") {
		t.Errorf("login with the removed password: exit %d, %q; want exit 1, invalid_client", code, stderr)
	}
	c.ok(nil, "ad", "sp", "credential", "reset", "--id", dba.AppID, "--append", "--display-name", "second")
	c.ok(&shown, "ad", "sp", "show", "--id", dba.AppID)
	if len(shown.PasswordCredentials) != 2 {
		t.Errorf("credential reset --append: %d password credentials; want 2", len(shown.PasswordCredentials))
	}

	// A user: created, given Reader, logged in, disabled, deleted.
	var u struct{ ID, UserPrincipalName string }
	c.ok(&u, "ad", "user", "create", "--display-name", "Dana", "--password", "Dana-pass-1", "--user-principal-name", "dana@pglink.local")
	if u.UserPrincipalName != "dana@pglink.local" || u.ID == "" {
		t.Errorf("ad user create printed %+v", u)
	}
	c.ok(nil, "role", "assignment", "create", "--assignee", "dana@pglink.local", "--role", "Reader", "--scope", sub)
	var names []string
	c.ok(&names, "ad", "user", "list", "--query", "[].userPrincipalName")
	if !slices.Contains(names, "dana@pglink.local") {
		t.Errorf("ad user list = %v; want dana", names)
	}
	uc := newCLI(t)
	if stderr, code := login(uc, "login", "-u", "dana@pglink.local", "-p", "Dana-pass-1"); code != 0 {
		t.Fatalf("login as dana: exit %d: %s", code, stderr)
	}
	var acct struct{ User struct{ Name, Type string } }
	uc.ok(&acct, "account", "show")
	if acct.User.Name != "dana@pglink.local" || acct.User.Type != "user" {
		t.Errorf("account show as dana = %+v", acct)
	}
	uc.ok(nil, "group", "show", "-n", "net")
	uc.fails("(AuthorizationFailed)", "group", "create", "-n", "dana", "-l", "eastus")
	uc.ok(nil, "logout")

	c.ok(nil, "ad", "user", "update", "--id", "dana@pglink.local", "--account-enabled", "false")
	if stderr, code := login(newCLI(t), "login", "-u", "dana@pglink.local", "-p", "Dana-pass-1"); code != 1 {
		t.Errorf("login as disabled dana: exit %d, %q; want 1", code, stderr)
	}
	c.ok(nil, "ad", "user", "delete", "--id", "dana@pglink.local")
	c.fails("(Request_ResourceNotFound)", "ad", "user", "show", "--id", "dana@pglink.local")
	c.ok(nil, "ad", "sp", "delete", "--id", dba.AppID)
	c.fails("(Request_ResourceNotFound)", "ad", "sp", "show", "--id", dba.AppID)
	c.ok(nil, "logout")
}

// TestCLIDefaultConfigDir: without PGLINK_CONFIG_DIR the profile lives in ~/.pglink, private to
// its owner.
func TestCLIDefaultConfigDir(t *testing.T) {
	in := start(t, nil)
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("PGLINK_CONFIG_DIR", "")
	var out, errb bytes.Buffer
	if code := cli.Run(ctxT(t), []string{"login", "--bootstrap", filepath.Join(in.dir, "bootstrap.json")}, strings.NewReader(""), &out, &errb); code != 0 {
		t.Fatalf("login: exit %d: %s", code, errb.String())
	}
	fi, err := os.Stat(filepath.Join(home, ".pglink", "profile.json"))
	if err != nil || fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("~/.pglink/profile.json after login: %v, %v; want a file only its owner may read", fi, err)
	}
	out.Reset()
	if code := cli.Run(ctxT(t), []string{"account", "show"}, strings.NewReader(""), &out, &errb); code != 0 || !strings.Contains(out.String(), in.boot.SubscriptionID) {
		t.Errorf("account show from ~/.pglink: exit %d, %s %s", code, out.String(), errb.String())
	}
}
