package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v6"
	pg "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/postgresql/armpostgresqlflexibleservers/v4"

	"github.com/pglink/pglink/internal/server"
	"github.com/pglink/pglink/internal/store"
	"github.com/pglink/pglink/internal/store/sqlite"
)

// response is a raw HTTP answer.
type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (r response) code() string {
	if e, ok := r.body["error"].(map[string]any); ok {
		s, _ := e["code"].(string)
		return s
	}
	return ""
}

// do sends a raw request (for what no SDK client expresses: missing api-versions, bad
// tokens, conditional headers). token "" sends no Authorization header.
func (in *instance) do(t *testing.T, method, path, token string, body any, hdr map[string]string) response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	u := path
	if !strings.HasPrefix(u, "https://") {
		u = in.boot.ARMEndpoint + path
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := in.httpClient().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := response{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	json.Unmarshal(raw, &out.body)
	if resp.Header.Get("x-ms-request-id") == "" {
		t.Errorf("%s %s: no x-ms-request-id header", method, path)
	}
	return out
}

func TestAuthenticationRequired(t *testing.T) {
	in := start(t, nil)
	path := "/subscriptions/" + in.boot.SubscriptionID + "/resourcegroups?api-version=2021-04-01"
	for _, tc := range []struct{ name, token string }{
		{"missing", ""},
		{"garbage", "not-a-jwt"},
		{"forged", "eyJhbGciOiJub25lIn0.eyJ0aWQiOiJ4In0."},
	} {
		r := in.do(t, "GET", path, tc.token, nil, nil)
		if r.status != http.StatusUnauthorized || r.code() != "AuthenticationFailed" {
			t.Errorf("%s token: got %d %s; want 401 AuthenticationFailed", tc.name, r.status, r.code())
		}
		if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer ") {
			t.Errorf("%s token: WWW-Authenticate = %q", tc.name, r.header.Get("WWW-Authenticate"))
		}
	}
	if r := in.do(t, "GET", path, in.token(), nil, nil); r.status != http.StatusOK {
		t.Errorf("valid token: got %d %s", r.status, r.raw)
	}
}

func TestRequestErrors(t *testing.T) {
	in := start(t, nil)
	c := newClients(t, in)
	c.group(t, "rg")
	c.server(t, "rg", "srv1")
	tok := in.token()
	sub := "/subscriptions/" + in.boot.SubscriptionID
	srv := sub + "/resourceGroups/rg/providers/Microsoft.DBforPostgreSQL/flexibleServers/srv1"
	goodServer := map[string]any{"location": "eastus", "properties": map[string]any{
		"administratorLogin": "pgadmin", "administratorLoginPassword": "S3cret-pass!", "version": "16"}}
	for _, tc := range []struct {
		name, method, path string
		body               any
		hdr                map[string]string
		status             int
		code               string
	}{
		{"no api-version", "GET", srv, nil, nil, 400, "MissingApiVersionParameter"},
		{"unknown api-version", "GET", srv + "?api-version=2099-01-01", nil, nil, 400, "NoRegisteredProviderFound"},
		{"unknown api-version for groups", "GET", sub + "/resourcegroups/rg?api-version=1999-01-01", nil, nil, 400, "InvalidApiVersionParameter"},
		{"unknown type", "GET", sub + "/resourceGroups/rg/providers/Microsoft.DBforPostgreSQL/widgets/x?api-version=2024-08-01", nil, nil, 400, "InvalidResourceType"},
		{"missing group", "GET", sub + "/resourceGroups/nope/providers/Microsoft.DBforPostgreSQL/flexibleServers/srv1?api-version=2024-08-01", nil, nil, 404, "ResourceGroupNotFound"},
		{"missing subscription", "GET", "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups?api-version=2021-04-01", nil, nil, 404, "SubscriptionNotFound"},
		{"missing server", "GET", sub + "/resourceGroups/rg/providers/Microsoft.DBforPostgreSQL/flexibleServers/nope?api-version=2024-08-01", nil, nil, 404, "ResourceNotFound"},
		{"upper-case server name", "PUT", sub + "/resourceGroups/rg/providers/Microsoft.DBforPostgreSQL/flexibleServers/BadName?api-version=2024-08-01", goodServer, nil, 400, "InvalidParameterValue"},
		{"weak password", "PUT", sub + "/resourceGroups/rg/providers/Microsoft.DBforPostgreSQL/flexibleServers/srv2?api-version=2024-08-01",
			map[string]any{"location": "eastus", "properties": map[string]any{"administratorLogin": "pgadmin", "administratorLoginPassword": "short"}}, nil, 400, "InvalidParameterValue"},
		{"reserved login", "PUT", sub + "/resourceGroups/rg/providers/Microsoft.DBforPostgreSQL/flexibleServers/srv2?api-version=2024-08-01",
			map[string]any{"location": "eastus", "properties": map[string]any{"administratorLogin": "azure_superuser", "administratorLoginPassword": "S3cret-pass!"}}, nil, 400, "InvalidParameterValue"},
		{"unsupported version", "PUT", sub + "/resourceGroups/rg/providers/Microsoft.DBforPostgreSQL/flexibleServers/srv2?api-version=2024-08-01",
			map[string]any{"location": "eastus", "properties": map[string]any{"administratorLogin": "pgadmin", "administratorLoginPassword": "S3cret-pass!", "version": "9"}}, nil, 400, "InvalidParameterValue"},
		{"bad json", "PUT", sub + "/resourceGroups/rg/providers/Microsoft.DBforPostgreSQL/flexibleServers/srv2?api-version=2024-08-01", "not an object", nil, 400, "InvalidRequestContent"},
		{"name taken", "PUT", sub + "/resourceGroups/other/providers/Microsoft.DBforPostgreSQL/flexibleServers/srv1?api-version=2024-08-01", goodServer, nil, 404, "ResourceGroupNotFound"},
		{"firewall start after end", "PUT", srv + "/firewallRules/r1?api-version=2024-08-01",
			map[string]any{"properties": map[string]any{"startIpAddress": "10.0.0.9", "endIpAddress": "10.0.0.1"}}, nil, 400, "InvalidParameterValue"},
		{"firewall IPv6", "PUT", srv + "/firewallRules/r1?api-version=2024-08-01",
			map[string]any{"properties": map[string]any{"startIpAddress": "::1", "endIpAddress": "::1"}}, nil, 400, "InvalidParameterValue"},
		{"firewall bad name", "PUT", srv + "/firewallRules/bad%20name?api-version=2025-08-01",
			map[string]any{"properties": map[string]any{"startIpAddress": "10.0.0.1", "endIpAddress": "10.0.0.1"}}, nil, 400, "InvalidParameterValue"},
		{"if-none-match on existing", "PUT", srv + "?api-version=2024-08-01", goodServer, map[string]string{"If-None-Match": "*"}, 412, "PreconditionFailed"},
		{"if-match on missing", "PUT", srv + "/firewallRules/r9?api-version=2024-08-01",
			map[string]any{"properties": map[string]any{"startIpAddress": "10.0.0.1", "endIpAddress": "10.0.0.1"}}, map[string]string{"If-Match": "*"}, 412, "PreconditionFailed"},
		{"connection cannot be created directly", "PUT", srv + "/privateEndpointConnections/pe.0000?api-version=2024-08-01",
			map[string]any{"properties": map[string]any{"privateLinkServiceConnectionState": map[string]any{"status": "Approved"}}}, nil, 404, "PrivateEndpointConnectionNotFound"},
		{"server action unknown", "POST", srv + "/explode?api-version=2024-08-01", nil, nil, 404, "InvalidRequestUri"},
	} {
		r := in.do(t, tc.method, tc.path, tok, tc.body, tc.hdr)
		if r.status != tc.status || r.code() != tc.code {
			t.Errorf("%s: got %d %s; want %d %s (%s)", tc.name, r.status, r.code(), tc.status, tc.code, r.raw)
		}
		if msg, _ := r.body["error"].(map[string]any)["message"].(string); msg == "" {
			t.Errorf("%s: error has no message", tc.name)
		}
	}
	// Server names are unique across resource groups, as their DNS names are.
	c.group(t, "other")
	if r := in.do(t, "PUT", sub+"/resourceGroups/other/providers/Microsoft.DBforPostgreSQL/flexibleServers/srv1?api-version=2024-08-01", tok, goodServer, nil); r.status != 409 || r.code() != "ServerNameAlreadyExists" {
		t.Errorf("duplicate server name: got %d %s", r.status, r.raw)
	}
}

// TestServerMustBeReady: networking changes on a server that is not Ready get 409
// ServerIsNotReady naming the state.
func TestServerMustBeReady(t *testing.T) {
	in := start(t, nil)
	c := newClients(t, in)
	ctx := ctxT(t)
	c.group(t, "rg")
	srv := c.server(t, "rg", "db1")
	subnet := c.vnet(t, "rg", "vnet")
	if _, err := c.endpoint(t, "rg", "pe1", subnet, *srv.ID, true, "hi"); err != nil {
		t.Fatal(err)
	}
	pec := c.onlyConnection(t, "rg", "db1")

	stop, err := c.servers.BeginStop(ctx, "rg", "db1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stop.PollUntilDone(ctx, &azcoreFast); err != nil {
		t.Fatal(err)
	}
	got, _ := c.servers.Get(ctx, "rg", "db1", nil)
	if *got.Properties.State != pg.ServerStateStopped {
		t.Fatalf("state after stop = %s", *got.Properties.State)
	}
	_, err = c.setStatus(ctx, "rg", "db1", *pec.Name, pg.PrivateEndpointServiceConnectionStatusApproved, "ok")
	wantErr(t, "approve on a stopped server", err, "ServerIsNotReady", http.StatusConflict)
	if !strings.Contains(err.Error(), "Stopped") {
		t.Errorf("error does not name the state: %v", err)
	}
	_, err = c.rules.BeginCreateOrUpdate(ctx, "rg", "db1", "r1", pg.FirewallRule{Properties: &pg.FirewallRuleProperties{
		StartIPAddress: to.Ptr("127.0.0.1"), EndIPAddress: to.Ptr("127.0.0.1")}}, nil)
	wantErr(t, "firewall rule on a stopped server", err, "ServerIsNotReady", http.StatusConflict)
	_, err = c.servers.BeginUpdate(ctx, "rg", "db1", pg.ServerForUpdate{Properties: &pg.ServerPropertiesForUpdate{
		Network: &pg.Network{PublicNetworkAccess: to.Ptr(pg.ServerPublicNetworkAccessStateDisabled)}}}, nil)
	wantErr(t, "public access on a stopped server", err, "ServerIsNotReady", http.StatusConflict)
	_, err = c.servers.BeginStop(ctx, "rg", "db1", nil)
	wantErr(t, "stop a stopped server", err, "ServerIsNotReady", http.StatusConflict)

	startP, err := c.servers.BeginStart(ctx, "rg", "db1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := startP.PollUntilDone(ctx, &azcoreFast); err != nil {
		t.Fatal(err)
	}
	if _, err := c.setStatus(ctx, "rg", "db1", *pec.Name, pg.PrivateEndpointServiceConnectionStatusApproved, "ok"); err != nil {
		t.Fatalf("approve after start: %v", err)
	}
	rp, err := c.servers.BeginRestart(ctx, "rg", "db1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rp.PollUntilDone(ctx, &azcoreFast); err != nil {
		t.Fatal(err)
	}
}

// TestServerSettings covers PATCH of public access and tags, firewall rules and paging.
func TestServerSettings(t *testing.T) {
	in := start(t, func(c *server.Config) { c.PageSize = 2 })
	c := newClients(t, in)
	ctx := ctxT(t)
	c.group(t, "rg")
	srv := c.server(t, "rg", "db1")
	if got := *srv.Properties.Network.PublicNetworkAccess; got != pg.ServerPublicNetworkAccessStateEnabled {
		t.Errorf("default public access = %s; want Enabled", got)
	}
	up, err := c.servers.BeginUpdate(ctx, "rg", "db1", pg.ServerForUpdate{
		Tags:       map[string]*string{"env": to.Ptr("test")},
		Properties: &pg.ServerPropertiesForUpdate{Network: &pg.Network{PublicNetworkAccess: to.Ptr(pg.ServerPublicNetworkAccessStateDisabled)}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := up.PollUntilDone(ctx, &azcoreFast)
	if err != nil {
		t.Fatal(err)
	}
	if got := *res.Properties.Network.PublicNetworkAccess; got != pg.ServerPublicNetworkAccessStateDisabled {
		t.Errorf("public access after PATCH = %s; want Disabled", got)
	}
	if *res.Tags["env"] != "test" || *res.Properties.State != pg.ServerStateReady {
		t.Errorf("after PATCH: tags %v state %s", res.Tags, *res.Properties.State)
	}
	if res.Properties.AdministratorLoginPassword != nil {
		t.Error("GET returned the administrator password")
	}
	for i := 0; i < 5; i++ {
		p, err := c.rules.BeginCreateOrUpdate(ctx, "rg", "db1", fmt.Sprintf("rule-%d", i), pg.FirewallRule{Properties: &pg.FirewallRuleProperties{
			StartIPAddress: to.Ptr(fmt.Sprintf("10.0.%d.1", i)), EndIPAddress: to.Ptr(fmt.Sprintf("10.0.%d.255", i))}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.PollUntilDone(ctx, &azcoreFast); err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	pager := c.rules.NewListByServerPager("rg", "db1", nil)
	pages := 0
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, r := range page.Value {
			names = append(names, *r.Name)
		}
	}
	if len(names) != 5 || pages != 3 {
		t.Errorf("listed %v in %d pages; want 5 rules in 3 pages of 2", names, pages)
	}
	// Overwriting a rule is an update, not an error.
	p, err := c.rules.BeginCreateOrUpdate(ctx, "rg", "db1", "rule-0", pg.FirewallRule{Properties: &pg.FirewallRuleProperties{
		StartIPAddress: to.Ptr("127.0.0.1"), EndIPAddress: to.Ptr("127.0.0.1")}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.PollUntilDone(ctx, &azcoreFast); err != nil {
		t.Fatal(err)
	}
	r, err := c.rules.Get(ctx, "rg", "db1", "RULE-0", nil)
	if err != nil {
		t.Fatal(err)
	}
	if *r.Properties.StartIPAddress != "127.0.0.1" {
		t.Errorf("rule after overwrite = %s", *r.Properties.StartIPAddress)
	}
	dp, err := c.rules.BeginDelete(ctx, "rg", "db1", "rule-0", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dp.PollUntilDone(ctx, &azcoreFast); err != nil {
		t.Fatal(err)
	}
	if _, err := c.rules.Get(ctx, "rg", "db1", "rule-0", nil); err == nil {
		t.Error("rule still there after delete")
	}
}

// TestPrivateEndpointValidation covers the target checks a private endpoint must pass.
func TestPrivateEndpointValidation(t *testing.T) {
	in := start(t, nil)
	c := newClients(t, in)
	ctx := ctxT(t)
	c.group(t, "rg")
	srv := c.server(t, "rg", "db1")
	subnet := c.vnet(t, "rg", "vnet")
	_, err := c.endpoint(t, "rg", "pe-missing", subnet, strings.Replace(*srv.ID, "db1", "nope", 1), true, "")
	wantErr(t, "endpoint to a missing server", err, "PrivateLinkServiceNotFound", http.StatusBadRequest)
	_, err = c.endpoint(t, "rg", "pe-badsubnet", subnet+"x", *srv.ID, true, "")
	wantErr(t, "endpoint in a missing subnet", err, "InvalidResourceReference", http.StatusBadRequest)

	poller, err := c.pes.BeginCreateOrUpdate(ctx, "rg", "pe-group", armnetwork.PrivateEndpoint{Location: to.Ptr("eastus"), Properties: &armnetwork.PrivateEndpointProperties{
		Subnet: &armnetwork.Subnet{ID: to.Ptr(subnet)},
		ManualPrivateLinkServiceConnections: []*armnetwork.PrivateLinkServiceConnection{{Name: to.Ptr("c"), Properties: &armnetwork.PrivateLinkServiceConnectionProperties{
			PrivateLinkServiceID: srv.ID, GroupIDs: []*string{to.Ptr("sqlServer")}}}}}}, nil)
	if err == nil {
		_, err = poller.PollUntilDone(ctx, &azcoreFast)
	}
	wantErr(t, "endpoint with a wrong group id", err, "InvalidPrivateEndpointGroupId", http.StatusBadRequest)

	// A VNet-integrated server offers no private link.
	vsrv := serverSpec("eastus")
	vsrv.Properties.Network = &pg.Network{DelegatedSubnetResourceID: to.Ptr(subnet)}
	vp, err := c.servers.BeginCreate(ctx, "rg", "vnet-db", vsrv, nil)
	if err != nil {
		t.Fatal(err)
	}
	vres, err := vp.PollUntilDone(ctx, &azcoreFast)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.endpoint(t, "rg", "pe-vnet", subnet, *vres.ID, true, "")
	wantErr(t, "endpoint to a VNet-integrated server", err, "PrivateEndpointFeatureNotSupportedOnServer", http.StatusBadRequest)
	_, err = c.rules.BeginCreateOrUpdate(ctx, "rg", "vnet-db", "r1", pg.FirewallRule{Properties: &pg.FirewallRuleProperties{
		StartIPAddress: to.Ptr("127.0.0.1"), EndIPAddress: to.Ptr("127.0.0.1")}}, nil)
	wantErr(t, "firewall rule on a private access server", err, "FirewallRuleNotSupported", http.StatusBadRequest)

	// A subnet in use cannot be deleted.
	if _, err := c.endpoint(t, "rg", "pe-ok", subnet, *srv.ID, true, ""); err != nil {
		t.Fatal(err)
	}
	_, err = c.subnets.BeginDelete(ctx, "rg", "vnet", "pe", nil)
	wantErr(t, "delete a subnet in use", err, "InUseSubnetCannotBeDeleted", http.StatusBadRequest)
}

// TestOperationsAreIdempotent: with operations left in flight (no inline wait), an identical
// retry joins the running operation and a different request gets 409.
func TestOperationsAreIdempotent(t *testing.T) {
	in := start(t, func(c *server.Config) { c.InlineWait = 0 })
	c := newClients(t, in)
	c.group(t, "rg")
	c.server(t, "rg", "db1")
	tok := in.token()
	rule := "/subscriptions/" + in.boot.SubscriptionID + "/resourceGroups/rg/providers/Microsoft.DBforPostgreSQL/flexibleServers/db1/firewallRules/r1?api-version=2025-08-01"
	body := map[string]any{"properties": map[string]any{"startIpAddress": "10.0.0.1", "endIpAddress": "10.0.0.2"}}
	first := in.do(t, "PUT", rule, tok, body, nil)
	if first.status != http.StatusAccepted && first.status != http.StatusCreated {
		t.Fatalf("first PUT: %d %s", first.status, first.raw)
	}
	if first.status == http.StatusAccepted {
		for _, h := range []string{"Azure-AsyncOperation", "Location"} {
			u, err := url.Parse(first.header.Get(h))
			if err != nil || !u.IsAbs() {
				t.Errorf("%s = %q; want an absolute URL", h, first.header.Get(h))
			}
		}
		if first.header.Get("Retry-After") != "1" {
			t.Errorf("Retry-After = %q", first.header.Get("Retry-After"))
		}
		// Poll the status URL to the end.
		deadline := time.Now().Add(10 * time.Second)
		for {
			st := in.do(t, "GET", first.header.Get("Azure-AsyncOperation"), tok, nil, nil)
			if st.body["status"] == "Succeeded" {
				break
			}
			if time.Now().After(deadline) || st.status != 200 {
				t.Fatalf("operation status: %d %s", st.status, st.raw)
			}
			time.Sleep(20 * time.Millisecond)
		}
		loc := in.do(t, "GET", first.header.Get("Location"), tok, nil, nil)
		if loc.status != 200 || loc.body["name"] != "r1" {
			t.Errorf("operation result: %d %s", loc.status, loc.raw)
		}
	}
	// Same body again once done: 200, no new operation.
	if again := in.do(t, "PUT", rule, tok, body, nil); again.status != http.StatusOK {
		t.Errorf("identical PUT after completion: %d %s", again.status, again.raw)
	}
}

// TestRestartKeepsStateAndResumesOperations: everything survives a restart, and an operation
// that a crashed process left in flight is finished by the next one.
func TestRestartKeepsStateAndResumesOperations(t *testing.T) {
	in := start(t, nil)
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
	// Simulate a crash in the middle of a stop: the server is Stopping and its operation is
	// leased by a worker that no longer exists. The data is edited while pglink is down.
	in.stop()
	id := *srv.ID
	st, err := sqlite.Open(ctx, filepath.Join(in.dir, "pglink.db"), slog.New(slog.NewTextHandler(io.Discard, nil)))
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
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	in.restart()
	c = newClients(t, in)
	deadline := time.Now().Add(15 * time.Second)
	for {
		got, err := c.servers.Get(ctx, "rg", "db1", nil)
		if err != nil {
			t.Fatal(err)
		}
		if *got.Properties.State == pg.ServerStateStopped {
			break
		}
		if time.Now().After(deadline) {
			var op store.Operation
			in.srv.Store().View(ctx, func(tx store.Tx) error { op, _ = tx.Operation(ctx, "crashed-op"); return nil })
			t.Fatalf("state after restart = %s; want the resumed stop to reach Stopped (operation: %+v %s)", *got.Properties.State, op, op.Error)
		}
		time.Sleep(50 * time.Millisecond)
	}
	pec2 := c.onlyConnection(t, "rg", "db1")
	if s := *pec2.Properties.PrivateLinkServiceConnectionState.Status; s != pg.PrivateEndpointServiceConnectionStatusApproved {
		t.Errorf("connection after restart = %s; want Approved", s)
	}
	b2, err := server.ReadBootstrap(in.dir)
	if err != nil || b2.ClientSecret != in.boot.ClientSecret || b2.TenantID != in.boot.TenantID {
		t.Errorf("bootstrap changed across restart: %v", err)
	}
}

// TestActivityLog: writes are recorded with caller, operation, status, correlation id and, for
// connections, the description.
func TestActivityLog(t *testing.T) {
	in := start(t, nil)
	c := newClients(t, in)
	ctx := ctxT(t)
	since := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	c.group(t, "rg")
	srv := c.server(t, "rg", "db1")
	subnet := c.vnet(t, "rg", "vnet")
	if _, err := c.endpoint(t, "rg", "pe1", subnet, *srv.ID, true, ""); err != nil {
		t.Fatal(err)
	}
	pec := c.onlyConnection(t, "rg", "db1")
	if _, err := c.setStatus(ctx, "rg", "db1", *pec.Name, pg.PrivateEndpointServiceConnectionStatusApproved, "ticket 42"); err != nil {
		t.Fatal(err)
	}
	// A failed write is recorded too.
	c.setStatus(ctx, "rg", "db1", *pec.Name, pg.PrivateEndpointServiceConnectionStatus("Bogus"), "x")

	q := url.Values{"api-version": {"2015-04-01"}, "$filter": {"eventTimestamp ge '" + since + "'"}}
	r := in.do(t, "GET", "/subscriptions/"+in.boot.SubscriptionID+"/providers/Microsoft.Insights/eventtypes/management/values?"+q.Encode(), in.token(), nil, nil)
	if r.status != 200 {
		t.Fatalf("activity log: %d %s", r.status, r.raw)
	}
	var approved, failed bool
	for _, v := range r.body["value"].([]any) {
		e := v.(map[string]any)
		op := e["operationName"].(map[string]any)["value"]
		status := e["status"].(map[string]any)["value"]
		if op == "Microsoft.DBforPostgreSQL/flexibleServers/privateEndpointConnections/write" {
			if status == "Succeeded" && e["description"] == "ticket 42" && e["caller"] == in.boot.ClientID && e["correlationId"] != "" {
				approved = true
			}
			if status == "Failed" {
				failed = true
			}
		}
	}
	if !approved || !failed {
		t.Errorf("activity log lacks the approval (%v) or the failed write (%v): %s", approved, failed, r.raw)
	}
	if r := in.do(t, "GET", "/subscriptions/"+in.boot.SubscriptionID+"/providers/Microsoft.Insights/eventtypes/management/values?api-version=2015-04-01", in.token(), nil, nil); r.status != 400 {
		t.Errorf("activity log without $filter: %d; want 400", r.status)
	}
	_ = context.Background
}

// TestResourceGroupDelete removes everything inside a group as one operation.
func TestResourceGroupDelete(t *testing.T) {
	in := start(t, nil)
	c := newClients(t, in)
	ctx := ctxT(t)
	c.group(t, "doomed")
	srv := c.server(t, "doomed", "db1")
	subnet := c.vnet(t, "doomed", "vnet")
	if _, err := c.endpoint(t, "doomed", "pe1", subnet, *srv.ID, true, ""); err != nil {
		t.Fatal(err)
	}
	p, err := c.groups.BeginDelete(ctx, "doomed", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.PollUntilDone(ctx, &azcoreFast); err != nil {
		t.Fatal(err)
	}
	if _, err := c.groups.Get(ctx, "doomed", nil); err == nil {
		t.Fatal("group still exists")
	} else {
		wantErr(t, "get deleted group", err, "ResourceGroupNotFound", http.StatusNotFound)
	}
	var left int
	in.srv.Store().View(ctx, func(tx store.Tx) error {
		all, _ := tx.List(ctx, store.ListOptions{Prefix: "/subscriptions/" + strings.ToLower(in.boot.SubscriptionID) + "/resourcegroups/doomed"})
		left = len(all)
		return nil
	})
	if left != 0 {
		t.Errorf("%d resources left after the group delete", left)
	}
	// Deleting what is not there is a 204, as ARM does.
	r := in.do(t, "DELETE", "/subscriptions/"+in.boot.SubscriptionID+"/resourcegroups/doomed?api-version=2021-04-01", in.token(), nil, nil)
	if r.status != http.StatusNotFound && r.status != http.StatusNoContent {
		t.Errorf("delete missing group: %d", r.status)
	}
}

func TestCorrelationHeaders(t *testing.T) {
	in := start(t, nil)
	r := in.do(t, "GET", "/subscriptions/"+in.boot.SubscriptionID+"?api-version=2021-04-01", in.token(), nil,
		map[string]string{"x-ms-correlation-request-id": "corr-123", "x-ms-client-request-id": "cli-9", "x-ms-return-client-request-id": "true"})
	if r.status != 200 || r.header.Get("x-ms-correlation-request-id") != "corr-123" || r.header.Get("x-ms-client-request-id") != "cli-9" {
		t.Errorf("headers: %d %v", r.status, r.header)
	}
	if r.body["subscriptionId"] != in.boot.SubscriptionID || r.body["tenantId"] != in.boot.TenantID {
		t.Errorf("subscription body: %s", r.raw)
	}
}

// TestBringYourOwnCertificate serves the operator's certificate.
func TestBringYourOwnCertificate(t *testing.T) {
	first := start(t, nil) // a local CA to issue the operator's certificate from
	tlsDir := filepath.Join(first.dir, "tls")
	in := start(t, func(c *server.Config) {
		c.TLSCert, c.TLSKey = filepath.Join(tlsDir, "server.pem"), filepath.Join(tlsDir, "server-key.pem")
	})
	if in.boot.CACertFile != filepath.Join(tlsDir, "server.pem") {
		t.Errorf("caCertFile = %s; want the operator's certificate file", in.boot.CACertFile)
	}
	if r := in.do(t, "GET", "/subscriptions?api-version=2021-04-01", in.token(), nil, nil); r.status != 200 {
		t.Errorf("list subscriptions over the operator's certificate: %d", r.status)
	}
}

// TestServerListAndDelete lists servers by group and subscription and deletes one, which
// disconnects its private endpoints.
func TestServerListAndDelete(t *testing.T) {
	in := start(t, nil)
	c := newClients(t, in)
	ctx := ctxT(t)
	c.group(t, "a")
	c.group(t, "b")
	srv := c.server(t, "a", "db-a1")
	c.server(t, "a", "db-a2")
	c.server(t, "b", "db-b1")
	count := func(p interface {
		More() bool
	}, next func() (int, error)) int {
		n := 0
		for p.More() {
			k, err := next()
			if err != nil {
				t.Fatal(err)
			}
			n += k
		}
		return n
	}
	byGroup := c.servers.NewListByResourceGroupPager("a", nil)
	if n := count(byGroup, func() (int, error) { p, err := byGroup.NextPage(ctx); return len(p.Value), err }); n != 2 {
		t.Errorf("servers in group a = %d; want 2", n)
	}
	all := c.servers.NewListPager(nil)
	if n := count(all, func() (int, error) { p, err := all.NextPage(ctx); return len(p.Value), err }); n != 3 {
		t.Errorf("servers in the subscription = %d; want 3", n)
	}
	subnet := c.vnet(t, "b", "vnet")
	if _, err := c.endpoint(t, "b", "pe1", subnet, *srv.ID, false, ""); err != nil {
		t.Fatal(err)
	}
	dp, err := c.servers.BeginDelete(ctx, "a", "db-a1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dp.PollUntilDone(ctx, &azcoreFast); err != nil {
		t.Fatal(err)
	}
	_, err = c.servers.Get(ctx, "a", "db-a1", nil)
	wantErr(t, "get deleted server", err, "ResourceNotFound", http.StatusNotFound)
	pe, err := c.pes.Get(ctx, "b", "pe1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if s := *pe.Properties.PrivateLinkServiceConnections[0].Properties.PrivateLinkServiceConnectionState.Status; s != "Disconnected" {
		t.Errorf("endpoint of a deleted server = %s; want Disconnected", s)
	}
}
