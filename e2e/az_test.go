package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// azTimeout bounds one az run; approve/reject alone sleep 10 s inside az.
const azTimeout = 90 * time.Second

// azCLI runs Debian's az 2.45 against one pglink instance, with its own config dir.
type azCLI struct {
	env []string
}

// newAzCLI prepares an AZURE_CONFIG_DIR and environment for in,
// registers in as a cloud and logs in with its managed identity endpoint. Any request az sends
// off the machine fails the test.
func newAzCLI(t *testing.T, in *instance) *azCLI {
	t.Helper()
	shim, err := filepath.Abs(filepath.Join("testdata", "azshim"))
	if err != nil {
		t.Fatal(err)
	}
	cfgDir := t.TempDir()
	// A fresh version check stops az's first-run HEAD https://azure.microsoft.com.
	versionCheck := fmt.Sprintf(`{"versions": {"azure-cli": {"local": "2.45.0"}, "core": {"local": "2.45.0"}, "telemetry": {"local": "1.0.8"}}, "update_time": %q}`,
		time.Now().Format("2006-01-02 15:04:05.000000"))
	if err := os.WriteFile(filepath.Join(cfgDir, "versionCheck.json"), []byte(versionCheck), 0o600); err != nil {
		t.Fatal(err)
	}
	catcher := strayCatcher(t)

	env := append(azFreeEnv(),
		"AZURE_CONFIG_DIR="+cfgDir,
		"AZURE_CORE_COLLECT_TELEMETRY=false",
		"AZURE_CORE_ERROR_RECOMMENDATION=off",
		"AZURE_CORE_SURVEY_MESSAGE=false",
		"AZURE_EXTENSION_USE_DYNAMIC_INSTALL=no",
		"AZURE_CORE_NO_COLOR=true",
		"AZURE_CORE_DISABLE_PROGRESS_BAR=true",
		"AZURE_CORE_OUTPUT=json",
		"REQUESTS_CA_BUNDLE="+in.boot.CACertFile,
		"MSI_ENDPOINT="+in.boot.ARMEndpoint+"/msi/token",
		"APPSETTING_WEBSITE_SITE_NAME=pglink",
		"MSI_SECRET="+in.boot.ClientID+":"+in.boot.ClientSecret,
		"HTTPS_PROXY="+catcher, "HTTP_PROXY="+catcher, "NO_PROXY=127.0.0.1,localhost",
		"PYTHONPATH="+shim,
		"PYTHONDONTWRITEBYTECODE=1",
	)
	c := &azCLI{env: env}

	arm := in.boot.ARMEndpoint + "/"
	c.az(t, "cloud", "register", "--name", "pglink",
		"--endpoint-resource-manager", arm,
		"--endpoint-active-directory", in.boot.AuthorityHost,
		"--endpoint-active-directory-resource-id", arm,
		"--endpoint-active-directory-graph-resource-id", arm)
	c.az(t, "cloud", "set", "--name", "pglink")
	var subs []struct {
		ID        string `json:"id"`
		TenantID  string `json:"tenantId"`
		State     string `json:"state"`
		IsDefault bool   `json:"isDefault"`
	}
	decode(t, c.az(t, "login", "--identity"), &subs)
	if len(subs) != 1 || subs[0].ID != in.boot.SubscriptionID || subs[0].TenantID != in.boot.TenantID || !subs[0].IsDefault || subs[0].State != "Enabled" {
		t.Fatalf("az login --identity = %+v; want the one enabled default subscription %s of tenant %s", subs, in.boot.SubscriptionID, in.boot.TenantID)
	}
	return c
}

// azFreeEnv returns this process's environment without anything that steers az, proxies or
// certificate trust, for a test to add its own.
func azFreeEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "AZURE_"), strings.HasPrefix(k, "MSI_"), strings.HasPrefix(k, "IDENTITY_"),
			strings.HasPrefix(k, "APPSETTING_"), strings.HasPrefix(k, "PYTHON"),
			strings.EqualFold(k, "HTTPS_PROXY"), strings.EqualFold(k, "HTTP_PROXY"), strings.EqualFold(k, "NO_PROXY"),
			strings.EqualFold(k, "ALL_PROXY"), k == "REQUESTS_CA_BUNDLE", k == "CURL_CA_BUNDLE", k == "SSL_CERT_FILE":
			continue
		}
		env = append(env, kv)
	}
	return env
}

// az runs az with args and returns its stdout; it fails the test if az exits non-zero.
func (c *azCLI) az(t *testing.T, args ...string) string {
	t.Helper()
	stdout, stderr, err := c.run(t, args)
	if err != nil {
		t.Fatalf("az %s: %v\nstderr:\n%s\nstdout:\n%s", strings.Join(args, " "), err, stderr, stdout)
	}
	return stdout
}

// azFail runs az with args, expecting it to fail, and returns its stderr; it fails the test if
// az exits zero.
func (c *azCLI) azFail(t *testing.T, args ...string) string {
	t.Helper()
	stdout, stderr, err := c.run(t, args)
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("az %s: err = %v; want a non-zero exit\nstderr:\n%s\nstdout:\n%s", strings.Join(args, " "), err, stderr, stdout)
	}
	t.Logf("expected failure, stderr:\n%s", stderr)
	return stderr
}

func (c *azCLI) run(t *testing.T, args []string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), azTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "az", args...)
	cmd.Env = c.env
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	began := time.Now()
	err = cmd.Run()
	rc := -1
	if cmd.ProcessState != nil {
		rc = cmd.ProcessState.ExitCode()
	}
	t.Logf("az %s: rc=%d in %.1fs", strings.Join(args, " "), rc, time.Since(began).Seconds())
	return out.String(), errOut.String(), err
}

// strayCatcher starts an HTTP proxy that fails the test on any request: az is given it as
// HTTPS_PROXY, with 127.0.0.1 exempt, so anything az tries to send off the machine lands here.
func strayCatcher(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("az sent a request off the machine: %s %s (host %s)", r.Method, r.URL, r.Host)
		http.Error(w, "pglink e2e: no requests off the machine", http.StatusForbidden)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func decode(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("decode az output: %v\n%s", err, s)
	}
}

// azServer is the part of `az postgres flexible-server show` output (properties flattened) the
// test reads.
type azServer struct {
	ID                 string `json:"id"`
	Name               string `json:"name"`
	Location           string `json:"location"`
	State              string `json:"state"`
	Version            string `json:"version"`
	AdministratorLogin string `json:"administratorLogin"`
	Sku                struct {
		Name string `json:"name"`
		Tier string `json:"tier"`
	} `json:"sku"`
	Network struct {
		PublicNetworkAccess string `json:"publicNetworkAccess"`
	} `json:"network"`
}

// azConnection is a private endpoint connection as ARM serves it.
type azConnection struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Type       string `json:"type"`
	Properties struct {
		GroupIDs        []string `json:"groupIds"`
		PrivateEndpoint struct {
			ID string `json:"id"`
		} `json:"privateEndpoint"`
		State struct {
			Status      string `json:"status"`
			Description string `json:"description"`
		} `json:"privateLinkServiceConnectionState"`
		ProvisioningState string `json:"provisioningState"`
	} `json:"properties"`
}

// TestAzCLI drives the real Debian az 2.45 through the flexible server and private endpoint
// lifecycle, with the shim in testdata/azshim for the `az network` commands.
func TestAzCLI(t *testing.T) {
	requireTool(t, "az") // .ci/install-deps installs it
	began := time.Now()
	in := start(t, nil)
	c := newAzCLI(t, in)
	sub := in.boot.SubscriptionID
	rgID := "/subscriptions/" + sub + "/resourceGroups/rg1"
	srvID := rgID + "/providers/Microsoft.DBforPostgreSQL/flexibleServers/srv1"

	// Resource group.
	var rg struct {
		Name       string `json:"name"`
		Location   string `json:"location"`
		Properties struct {
			ProvisioningState string `json:"provisioningState"`
		} `json:"properties"`
	}
	decode(t, c.az(t, "group", "create", "-n", "rg1", "-l", "eastus"), &rg)
	if rg.Name != "rg1" || rg.Location != "eastus" || rg.Properties.ProvisioningState != "Succeeded" {
		t.Errorf("az group create = %+v; want rg1 in eastus, Succeeded", rg)
	}

	// Flexible server: created with az rest, read with the postgres commands.
	var put azServer
	decode(t, c.az(t, "rest", "--method", "put", "--url", srvID+"?api-version=2024-08-01", "--body",
		`{"location":"eastus","sku":{"name":"Standard_D2s_v3","tier":"GeneralPurpose"},"properties":{"administratorLogin":"pgadmin","administratorLoginPassword":"S3cret-pass!","version":"16"}}`), &put)
	if !strings.EqualFold(put.ID, srvID) || put.Name != "srv1" {
		t.Errorf("az rest put server: id, name = %q, %q; want %q, srv1", put.ID, put.Name, srvID)
	}
	srv := c.waitServer(t, "Ready")
	if !strings.EqualFold(srv.ID, srvID) || srv.Location != "eastus" || srv.Version != "16" || srv.AdministratorLogin != "pgadmin" ||
		srv.Sku.Name != "Standard_D2s_v3" || srv.Sku.Tier != "GeneralPurpose" || srv.Network.PublicNetworkAccess != "Enabled" {
		t.Errorf("az postgres flexible-server show = %+v; want srv1 (eastus, 16, pgadmin, Standard_D2s_v3/GeneralPurpose, public access Enabled)", srv)
	}
	for _, args := range [][]string{{"-g", "rg1"}, nil} {
		var list []azServer
		decode(t, c.az(t, append([]string{"postgres", "flexible-server", "list"}, args...)...), &list)
		if len(list) != 1 || list[0].Name != "srv1" || list[0].State != "Ready" {
			t.Errorf("az postgres flexible-server list %s = %+v; want srv1, Ready", strings.Join(args, " "), list)
		}
	}

	// Firewall rules (before public access is disabled: az refuses them on such a server).
	type rule struct {
		Name           string `json:"name"`
		StartIPAddress string `json:"startIpAddress"`
		EndIPAddress   string `json:"endIpAddress"`
	}
	var fw rule
	decode(t, c.az(t, "postgres", "flexible-server", "firewall-rule", "create", "-g", "rg1", "-n", "srv1", "-r", "allow-local",
		"--start-ip-address", "127.0.0.1", "--end-ip-address", "127.0.0.1"), &fw)
	if want := (rule{"allow-local", "127.0.0.1", "127.0.0.1"}); fw != want {
		t.Errorf("az postgres flexible-server firewall-rule create = %+v; want %+v", fw, want)
	}
	var rules []rule
	decode(t, c.az(t, "postgres", "flexible-server", "firewall-rule", "list", "-g", "rg1", "-n", "srv1"), &rules)
	if len(rules) != 1 || rules[0] != fw {
		t.Errorf("az postgres flexible-server firewall-rule list = %+v; want [%+v]", rules, fw)
	}
	c.az(t, "postgres", "flexible-server", "firewall-rule", "delete", "-g", "rg1", "-n", "srv1", "-r", "allow-local", "--yes")
	decode(t, c.az(t, "postgres", "flexible-server", "firewall-rule", "list", "-g", "rg1", "-n", "srv1"), &rules)
	if len(rules) != 0 {
		t.Errorf("firewall-rule list after delete = %+v; want none", rules)
	}
	// 10.0.0.1 > 9.0.0.1, but az 2.45 compares the octets as strings ("10" < "9") and lets it
	// through, so this reaches pglink, which must refuse it.
	stderr := c.azFail(t, "postgres", "flexible-server", "firewall-rule", "create", "-g", "rg1", "-n", "srv1", "-r", "backwards",
		"--start-ip-address", "10.0.0.1", "--end-ip-address", "9.0.0.1")
	if !strings.Contains(stderr, "Code: InvalidParameterValue") || !strings.Contains(stderr, "The end IP address is smaller than the start IP address.") {
		t.Errorf("firewall-rule create with start > end: stderr = %q; want pglink's InvalidParameterValue error", stderr)
	}

	// Public network access, through the generic resource update (GET + full PUT).
	var upd struct {
		Properties struct {
			Network struct {
				PublicNetworkAccess string `json:"publicNetworkAccess"`
			} `json:"network"`
		} `json:"properties"`
	}
	decode(t, c.az(t, "resource", "update", "--ids", srvID, "--api-version", "2024-08-01",
		"--set", "properties.network.publicNetworkAccess=Disabled"), &upd)
	if got := upd.Properties.Network.PublicNetworkAccess; got != "Disabled" {
		t.Errorf("az resource update: publicNetworkAccess = %q; want Disabled", got)
	}
	if got := c.waitServer(t, "Ready").Network.PublicNetworkAccess; got != "Disabled" {
		t.Errorf("show after update: publicNetworkAccess = %q; want Disabled", got)
	}

	// Virtual network and a manual private endpoint to the server (need the shim).
	var vnet struct {
		NewVNet struct {
			Name    string `json:"name"`
			Subnets []struct {
				Name          string `json:"name"`
				AddressPrefix string `json:"addressPrefix"`
			} `json:"subnets"`
		} `json:"newVNet"`
	}
	decode(t, c.az(t, "network", "vnet", "create", "-g", "rg1", "-n", "vnet1", "--address-prefixes", "10.0.0.0/16",
		"--subnet-name", "pe", "--subnet-prefixes", "10.0.1.0/24"), &vnet)
	if vnet.NewVNet.Name != "vnet1" || len(vnet.NewVNet.Subnets) != 1 || vnet.NewVNet.Subnets[0].Name != "pe" || vnet.NewVNet.Subnets[0].AddressPrefix != "10.0.1.0/24" {
		t.Errorf("az network vnet create = %+v; want vnet1 with subnet pe 10.0.1.0/24", vnet.NewVNet)
	}
	peID := rgID + "/providers/Microsoft.Network/privateEndpoints/pe1"
	var pe azEndpoint
	decode(t, c.az(t, "network", "private-endpoint", "create", "-g", "rg1", "-n", "pe1", "--vnet-name", "vnet1", "--subnet", "pe",
		"--private-connection-resource-id", srvID, "--group-id", "postgresqlServer", "--connection-name", "c1",
		"--manual-request", "--request-message", "please approve"), &pe)
	pe.check(t, "az network private-endpoint create", peID, "Pending", "please approve")

	// The server side: one Pending connection, through az's private-endpoint-connection and az rest.
	pecArgs := []string{"-g", "rg1", "--resource-name", "srv1", "--type", "Microsoft.DBforPostgreSQL/flexibleServers"}
	var conns []azConnection
	decode(t, c.az(t, "network", "private-endpoint-connection", "list", "-g", "rg1", "-n", "srv1", "--type", "Microsoft.DBforPostgreSQL/flexibleServers"), &conns)
	if len(conns) != 1 {
		t.Fatalf("az network private-endpoint-connection list = %+v; want one connection", conns)
	}
	conn := conns[0]
	checkConnection(t, "private-endpoint-connection list", conn, srvID, peID, "Pending", "please approve")
	var page struct {
		Value []azConnection `json:"value"`
	}
	decode(t, c.az(t, "rest", "--method", "get", "--url", srvID+"/privateEndpointConnections?api-version=2024-08-01"), &page)
	if len(page.Value) != 1 {
		t.Fatalf("az rest get privateEndpointConnections = %+v; want one connection", page.Value)
	}
	checkConnection(t, "az rest get privateEndpointConnections", page.Value[0], srvID, peID, "Pending", "please approve")

	// Approve with az (GET, PUT of the whole body, sleep 10 s, GET).
	var approved azConnection
	decode(t, c.az(t, append([]string{"network", "private-endpoint-connection", "approve", "--description", "approved by dba", "--name", conn.Name}, pecArgs...)...), &approved)
	checkConnection(t, "private-endpoint-connection approve", approved, srvID, peID, "Approved", "approved by dba")
	decode(t, c.az(t, "network", "private-endpoint", "show", "-g", "rg1", "-n", "pe1"), &pe)
	pe.check(t, "az network private-endpoint show after approve", peID, "Approved", "approved by dba")

	// The approval in the activity log, through az monitor (whose default window is the last
	// 6 h, sent as unquoted timestamps without a zone).
	type azEvent struct {
		Caller        string `json:"caller"`
		Description   string `json:"description"`
		ResourceID    string `json:"resourceId"`
		OperationName *struct {
			Value string `json:"value"`
		} `json:"operationName"`
	}
	for _, args := range [][]string{
		{"--resource-id", conn.ID},
		{"--resource-group", "rg1", "--caller", in.boot.ClientID},
		{"--offset", "1h", "--status", "Succeeded"},
		{"--resource-id", conn.ID, "--select", "caller", "description", "resourceId"},
	} {
		var evs []azEvent
		decode(t, c.az(t, append([]string{"monitor", "activity-log", "list"}, args...)...), &evs)
		found := false
		for _, e := range evs {
			if e.Description == "approved by dba" && strings.EqualFold(e.ResourceID, conn.ID) && e.Caller == in.boot.ClientID {
				found = true
			}
			if slices.Contains(args, "--select") && e.OperationName != nil {
				t.Errorf("az monitor activity-log list %s: event has operationName %+v; want only the selected fields", strings.Join(args, " "), e.OperationName)
			}
		}
		if !found {
			t.Errorf("az monitor activity-log list %s = %+v; want the approval by %s", strings.Join(args, " "), evs, in.boot.ClientID)
		}
	}

	// Reject with az rest; a rejected connection cannot be approved again.
	connURL := conn.ID + "?api-version=2024-08-01"
	c.az(t, "rest", "--method", "put", "--url", connURL, "--body",
		`{"properties":{"privateLinkServiceConnectionState":{"status":"Rejected","description":"no"}}}`)
	var rejected azConnection
	decode(t, c.az(t, "rest", "--method", "get", "--url", connURL), &rejected)
	checkConnection(t, "az rest get after reject", rejected, srvID, peID, "Rejected", "no")
	stderr = c.azFail(t, append([]string{"network", "private-endpoint-connection", "approve", "--description", "again", "--name", conn.Name}, pecArgs...)...)
	if !strings.Contains(stderr, "PrivateEndpointConnectionRejected") {
		t.Errorf("approve of a rejected connection: stderr = %q; want pglink's PrivateEndpointConnectionRejected error", stderr)
	}
	decode(t, c.az(t, "network", "private-endpoint", "show", "-g", "rg1", "-n", "pe1"), &pe)
	pe.check(t, "az network private-endpoint show after reject", peID, "Rejected", "no")

	t.Logf("TestAzCLI: %.1fs", time.Since(began).Seconds())
}

// waitServer shows srv1 until it is in state (pglink may finish a change after answering).
func (c *azCLI) waitServer(t *testing.T, state string) azServer {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var s azServer
		decode(t, c.az(t, "postgres", "flexible-server", "show", "-g", "rg1", "-n", "srv1"), &s)
		if s.State == state {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("az postgres flexible-server show: state = %q; want %q", s.State, state)
		}
		time.Sleep(time.Second)
	}
}

func checkConnection(t *testing.T, what string, c azConnection, srvID, peID, status, description string) {
	t.Helper()
	p := c.Properties
	if !strings.EqualFold(c.ID, srvID+"/privateEndpointConnections/"+c.Name) || c.Type != "Microsoft.DBforPostgreSQL/flexibleServers/privateEndpointConnections" ||
		!strings.EqualFold(p.PrivateEndpoint.ID, peID) || len(p.GroupIDs) != 1 || p.GroupIDs[0] != "postgresqlServer" {
		t.Errorf("%s: connection %+v; want a postgresqlServer connection of %s to %s", what, c, srvID, peID)
	}
	if p.State.Status != status || p.State.Description != description || p.ProvisioningState != "Succeeded" {
		t.Errorf("%s: state %+v, provisioningState %q; want %s %q, Succeeded", what, p.State, p.ProvisioningState, status, description)
	}
}

// azEndpoint is az's (AAZ, properties flattened) view of a private endpoint with one manual
// connection.
type azEndpoint struct {
	ID                                  string `json:"id"`
	ProvisioningState                   string `json:"provisioningState"`
	ManualPrivateLinkServiceConnections []struct {
		Name                              string   `json:"name"`
		PrivateLinkServiceID              string   `json:"privateLinkServiceId"`
		GroupIDs                          []string `json:"groupIds"`
		RequestMessage                    string   `json:"requestMessage"`
		PrivateLinkServiceConnectionState struct {
			Status      string `json:"status"`
			Description string `json:"description"`
		} `json:"privateLinkServiceConnectionState"`
	} `json:"manualPrivateLinkServiceConnections"`
}

func (pe azEndpoint) check(t *testing.T, what, peID, status, description string) {
	t.Helper()
	if !strings.EqualFold(pe.ID, peID) || pe.ProvisioningState != "Succeeded" || len(pe.ManualPrivateLinkServiceConnections) != 1 {
		t.Fatalf("%s = %+v; want %s, Succeeded, with one manual connection", what, pe, peID)
	}
	mc := pe.ManualPrivateLinkServiceConnections[0]
	if mc.Name != "c1" || mc.RequestMessage != "please approve" || len(mc.GroupIDs) != 1 || mc.GroupIDs[0] != "postgresqlServer" {
		t.Errorf("%s: manual connection %+v; want c1, postgresqlServer, request message %q", what, mc, "please approve")
	}
	if got := mc.PrivateLinkServiceConnectionState; got.Status != status || got.Description != description {
		t.Errorf("%s: connection state %+v; want %s %q", what, got, status, description)
	}
}
