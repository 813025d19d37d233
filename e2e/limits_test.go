package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v6"
	pg "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/postgresql/armpostgresqlflexibleservers/v4"

	"github.com/pglink/pglink/internal/server"
)

// rawPut sends body (any reader; chunked unless size >= 0) to path and returns the answer.
func (in *instance) rawPut(t *testing.T, path, token string, body io.Reader, size int64) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, in.boot.ARMEndpoint+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := in.httpClient().Do(req)
	if err != nil {
		t.Fatalf("PUT %s: %v", path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := response{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	if err := json.Unmarshal(raw, &out.body); err != nil {
		t.Errorf("PUT %s: answer is not JSON: %q", path, raw)
	}
	return out
}

// TestOversizeBodyIsRefused: a body over 4 MiB gets 413 RequestContentTooLarge, whether its
// length is announced or not, and nothing of it is applied (before, the first 4 MiB were
// taken: a valid document padded with 50 MB of spaces created the resource group).
func TestOversizeBodyIsRefused(t *testing.T) {
	in := start(t, nil)
	tok := in.token()
	sub := "/subscriptions/" + in.boot.SubscriptionID
	doc := `{"location":"eastus"}`
	pad := 50 << 20
	for _, tc := range []struct {
		name  string
		group string
		size  int64 // -1: chunked
	}{
		{"announced", "big1", int64(len(doc) + pad)},
		{"chunked", "big2", -1},
	} {
		body := io.MultiReader(strings.NewReader(doc), io.LimitReader(spaces{}, int64(pad)))
		path := sub + "/resourcegroups/" + tc.group + "?api-version=2021-04-01"
		r := in.rawPut(t, path, tok, body, tc.size)
		if r.status != http.StatusRequestEntityTooLarge || r.code() != "RequestContentTooLarge" {
			t.Errorf("%s: PUT of a 50 MB body = %d %s; want 413 RequestContentTooLarge", tc.name, r.status, r.raw)
		}
		if g := in.do(t, "GET", path, tok, nil, nil); g.status != http.StatusNotFound {
			t.Errorf("%s: after a refused PUT, GET = %d; want 404 (nothing applied)", tc.name, g.status)
		}
	}
	// Just under the limit is accepted.
	body := doc + strings.Repeat(" ", 4<<20-len(doc))
	if r := in.rawPut(t, sub+"/resourcegroups/fits?api-version=2021-04-01", tok, strings.NewReader(body), int64(len(body))); r.status != http.StatusCreated {
		t.Errorf("PUT of a 4 MiB body = %d %s; want 201", r.status, r.raw)
	}
}

type spaces struct{}

func (spaces) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}

// TestInputLimits: names, tags, property sizes and decode errors, as the API reports them.
func TestInputLimits(t *testing.T) {
	in := start(t, nil)
	c := newClients(t, in)
	c.group(t, "rg")
	srv := c.server(t, "rg", "db1")
	subnet := c.vnet(t, "rg", "vnet")
	tok := in.token()
	sub := "/subscriptions/" + in.boot.SubscriptionID
	net := sub + "/resourceGroups/rg/providers/Microsoft.Network"
	const nv = "?api-version=2024-05-01"
	vnetBody := map[string]any{"location": "eastus", "properties": map[string]any{
		"addressSpace": map[string]any{"addressPrefixes": []string{"10.1.0.0/16"}}}}
	peBody := func(msg string) map[string]any {
		return map[string]any{"location": "eastus", "properties": map[string]any{
			"subnet": map[string]any{"id": subnet},
			"manualPrivateLinkServiceConnections": []any{map[string]any{"name": "c", "properties": map[string]any{
				"privateLinkServiceId": *srv.ID, "groupIds": []string{"postgresqlServer"}, "requestMessage": msg}}}}}
	}
	tags := func(n int, name, value string) map[string]any {
		m := map[string]any{"location": "eastus", "properties": vnetBody["properties"]}
		tg := map[string]string{}
		for i := range n {
			tg[fmt.Sprintf("t%d", i)] = "v"
		}
		if name != "" {
			tg[name] = value
		}
		m["tags"] = tg
		return m
	}
	esc := url.PathEscape
	for _, tc := range []struct {
		name, method, path string
		body               any
		status             int
		code               string
	}{
		{"vnet name with NUL", "PUT", net + "/virtualNetworks/" + esc("a\x00b") + nv, vnetBody, 400, "InvalidResourceName"},
		{"vnet name with emoji", "PUT", net + "/virtualNetworks/" + esc("net😀") + nv, vnetBody, 400, "InvalidResourceName"},
		{"vnet name of 5000", "PUT", net + "/virtualNetworks/" + strings.Repeat("v", 5000) + nv, vnetBody, 400, "InvalidResourceName"},
		{"vnet name of 65", "PUT", net + "/virtualNetworks/" + strings.Repeat("v", 65) + nv, vnetBody, 400, "InvalidResourceName"},
		{"vnet name of 64", "PUT", net + "/virtualNetworks/" + strings.Repeat("v", 64) + nv, vnetBody, 201, ""},
		{"vnet name ending in '-'", "PUT", net + "/virtualNetworks/vnet-" + nv, vnetBody, 400, "InvalidResourceName"},
		{"embedded subnet name", "PUT", net + "/virtualNetworks/v2" + nv, map[string]any{"location": "eastus", "properties": map[string]any{
			"addressSpace": map[string]any{"addressPrefixes": []string{"10.1.0.0/16"}},
			"subnets":      []any{map[string]any{"name": "bad\x01", "properties": map[string]any{"addressPrefix": "10.1.0.0/24"}}}}}, 400, "InvalidResourceName"},
		{"subnet name with control character", "PUT", net + "/virtualNetworks/vnet/subnets/" + esc("s\x7f") + nv,
			map[string]any{"properties": map[string]any{"addressPrefix": "10.0.9.0/24"}}, 400, "InvalidResourceName"},
		{"subnet name of 81", "PUT", net + "/virtualNetworks/vnet/subnets/" + strings.Repeat("s", 81) + nv,
			map[string]any{"properties": map[string]any{"addressPrefix": "10.0.9.0/24"}}, 400, "InvalidResourceName"},
		{"private endpoint name of 65", "PUT", net + "/privateEndpoints/" + strings.Repeat("p", 65) + nv, peBody(""), 400, "InvalidResourceName"},
		{"private endpoint name with NUL", "PUT", net + "/privateEndpoints/" + esc("p\x00e") + nv, peBody(""), 400, "InvalidResourceName"},
		{"request message of 141", "PUT", net + "/privateEndpoints/pe1" + nv, peBody(strings.Repeat("m", 141)), 400, "InvalidParameterValue"},
		{"connection name with NUL", "PUT", *srv.ID + "/privateEndpointConnections/" + esc("pe.\x00") + "?api-version=2024-08-01",
			map[string]any{"properties": map[string]any{"privateLinkServiceConnectionState": map[string]any{"status": "Approved"}}}, 400, "InvalidResourceName"},
		{"too many address prefixes", "PUT", net + "/virtualNetworks/v3" + nv, map[string]any{"location": "eastus", "properties": map[string]any{
			"addressSpace": map[string]any{"addressPrefixes": prefixes(101)}}}, 400, "InvalidParameterValue"},
		{"50 tags", "PUT", net + "/virtualNetworks/tagged" + nv, tags(50, "", ""), 201, ""},
		{"51 tags", "PUT", net + "/virtualNetworks/tagged" + nv, tags(51, "", ""), 400, "InvalidTagCount"},
		{"tag name with '/'", "PUT", net + "/virtualNetworks/tagged" + nv, tags(1, "a/b", "v"), 400, "InvalidTagNameCharacters"},
		{"tag name of 513", "PUT", sub + "/resourcegroups/rg?api-version=2021-04-01", tags(0, strings.Repeat("n", 513), "v"), 400, "InvalidTagNameLength"},
		{"tag value of 257", "PATCH", *srv.ID + "?api-version=2024-08-01", map[string]any{"tags": map[string]string{"n": strings.Repeat("v", 257)}}, 400, "InvalidTagValueLength"},
	} {
		r := in.do(t, tc.method, tc.path, tok, tc.body, nil)
		if r.status != tc.status || r.code() != tc.code {
			t.Errorf("%s: got %d %s; want %d %s (%.300s)", tc.name, r.status, r.code(), tc.status, tc.code, r.raw)
		}
		if tc.code != "" {
			e, _ := r.body["error"].(map[string]any)
			msg, _ := e["message"].(string)
			if msg == "" || len(msg) > 1000 || strings.ContainsRune(msg, 0) {
				t.Errorf("%s: message %q; want a short one that states the rule", tc.name, msg)
			}
		}
	}
	// Nothing of a refused private endpoint is left behind.
	if r := in.do(t, "GET", net+"/privateEndpoints/pe1"+nv, tok, nil, nil); r.status != 404 {
		t.Errorf("refused private endpoint: GET = %d; want 404", r.status)
	}

	// Decode errors speak JSON, not Go.
	bad := `{"location":"eastus","properties":{"administratorLogin":"pgadmin","version":16}}`
	r := in.rawPut(t, *srv.ID+"?api-version=2024-08-01", tok, strings.NewReader(bad), int64(len(bad)))
	e, _ := r.body["error"].(map[string]any)
	msg, _ := e["message"].(string)
	if r.status != 400 || r.code() != "InvalidRequestContent" || !strings.Contains(msg, "property 'properties.version' must be a string, got a number (near line 1, column ") {
		t.Errorf("version as a number: got %d %s; want 400 InvalidRequestContent naming properties.version", r.status, r.raw)
	}
	if strings.Contains(msg, "Go ") || strings.Contains(msg, "struct") || strings.Contains(msg, "json:") {
		t.Errorf("decode error %q mentions Go", msg)
	}
}

func prefixes(n int) []string {
	var p []string
	for i := range n {
		p = append(p, fmt.Sprintf("10.%d.0.0/16", i))
	}
	return p
}

// TestEndpointQuotas: private endpoints per subnet and connections per server are capped,
// and a refused endpoint leaves nothing behind (no address, no connection).
func TestEndpointQuotas(t *testing.T) {
	in := start(t, func(c *server.Config) {
		c.MaxEndpointsPerSubnet = 2
		c.MaxConnectionsPerServer = 3
	})
	c := newClients(t, in)
	ctx := ctxT(t)
	c.group(t, "rg")
	srv := c.server(t, "rg", "db1")
	subnetA := c.vnet(t, "rg", "vnet")
	p, err := c.subnets.BeginCreateOrUpdate(ctx, "rg", "vnet", "b", armnetwork.Subnet{Properties: &armnetwork.SubnetPropertiesFormat{
		AddressPrefix: to.Ptr("10.0.2.0/24")}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	resB, err := p.PollUntilDone(ctx, &azcoreFast)
	if err != nil {
		t.Fatal(err)
	}
	subnetB := *resB.ID
	for _, name := range []string{"pe1", "pe2"} {
		if _, err := c.endpoint(t, "rg", name, subnetA, *srv.ID, true, ""); err != nil {
			t.Fatalf("endpoint %s: %v", name, err)
		}
	}
	_, err = c.endpoint(t, "rg", "pe3", subnetA, *srv.ID, true, "")
	wantErr(t, "third endpoint in a subnet of 2", err, "QuotaExceeded", http.StatusConflict)

	if _, err := c.endpoint(t, "rg", "pe4", subnetB, *srv.ID, true, ""); err != nil {
		t.Fatalf("endpoint pe4 in another subnet: %v", err)
	}
	_, err = c.endpoint(t, "rg", "pe5", subnetB, *srv.ID, true, "")
	wantErr(t, "fourth connection on a server of 3", err, "QuotaExceeded", http.StatusConflict)

	tok := in.token()
	for _, name := range []string{"pe3", "pe5"} {
		if r := in.do(t, "GET", "/subscriptions/"+in.boot.SubscriptionID+"/resourceGroups/rg/providers/Microsoft.Network/privateEndpoints/"+name+"?api-version=2024-05-01", tok, nil, nil); r.status != 404 {
			t.Errorf("refused endpoint %s: GET = %d; want 404", name, r.status)
		}
	}
	sb, err := c.subnets.Get(ctx, "rg", "vnet", "b", nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(sb.Properties.IPConfigurations); n != 1 {
		t.Errorf("subnet b holds %d addresses after a refused endpoint; want 1", n)
	}
	// Deleting one frees its place.
	dp, err := c.pes.BeginDelete(ctx, "rg", "pe1", nil)
	if err == nil {
		_, err = dp.PollUntilDone(ctx, &azcoreFast)
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.endpoint(t, "rg", "pe3", subnetA, *srv.ID, true, ""); err != nil {
		t.Errorf("endpoint after a delete freed a place: %v", err)
	}
}

// stall opens a TLS connection to in and sends the start of a request, never its end: with
// headersDone, all headers of a PUT announcing a body of 1000 bytes and 10 of them; otherwise
// half a header block.
func (in *instance) stall(t *testing.T, headersDone bool) *tls.Conn {
	t.Helper()
	pem, err := os.ReadFile(in.boot.CACertFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	addr := strings.TrimPrefix(in.boot.ARMEndpoint, "https://")
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	head := "PUT /subscriptions/" + in.boot.SubscriptionID + "/resourcegroups/slow?api-version=2021-04-01 HTTP/1.1\r\nHost: " + addr + "\r\n"
	if headersDone {
		head += "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"locatio"
	} else {
		head += "X-Slow: 1\r\n"
	}
	if _, err := conn.Write([]byte(head)); err != nil {
		t.Fatalf("write: %v", err)
	}
	return conn
}

// waitClosedByServer reads from each of conns until the server closes it, failing if that
// has not happened by a generous deadline.
func waitClosedByServer(t *testing.T, conns []*tls.Conn) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for i, conn := range conns {
		conn.SetReadDeadline(deadline)
		if _, err := io.Copy(io.Discard, conn); err != nil {
			t.Errorf("stalled connection %d: the server did not close it: %v", i, err)
		}
	}
}

// TestSlowClientsAreCutOff: connections that send a request slowly (headers unfinished, or a
// body never finished) are closed once the read timeout passes, and while they are open the
// API keeps answering other clients.
func TestSlowClientsAreCutOff(t *testing.T) {
	in := start(t, func(c *server.Config) {
		c.ReadTimeout = 5 * time.Second
		c.MaxConns = 100
	})
	tok := in.token()
	var stalled []*tls.Conn
	for i := range 40 {
		stalled = append(stalled, in.stall(t, i%2 == 0))
	}
	// The API answers a normal client while 40 stalled connections are open.
	if r := in.do(t, "GET", "/subscriptions/"+in.boot.SubscriptionID+"/resourcegroups?api-version=2021-04-01", tok, nil, nil); r.status != 200 {
		t.Errorf("GET while 40 connections stall: %d %s", r.status, r.raw)
	}
	waitClosedByServer(t, stalled)
	if r := in.do(t, "GET", "/subscriptions/"+in.boot.SubscriptionID+"/resourcegroups/slow?api-version=2021-04-01", tok, nil, nil); r.status != 404 {
		t.Errorf("a stalled PUT created its resource group: GET = %d", r.status)
	}
}

// TestConnectionCap: with MaxConns connections open, the next one is not served until one of
// them closes; then it is.
func TestConnectionCap(t *testing.T) {
	in := start(t, func(c *server.Config) {
		c.ReadTimeout = 8 * time.Second // the fifth dial below happens well within it
		c.MaxConns = 4
	})
	client := in.httpClient() // no keep-alive connection of its own yet
	var stalled []*tls.Conn
	for range 4 {
		stalled = append(stalled, in.stall(t, true))
	}
	// A fifth connection waits in the accept queue: its TLS handshake gets no answer.
	pem, _ := os.ReadFile(in.boot.CACertFile)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	addr := strings.TrimPrefix(in.boot.ARMEndpoint, "https://")
	d := &tls.Dialer{Config: &tls.Config{RootCAs: pool}}
	raw, err := tlsDialTimeout(d, addr, time.Second)
	if err == nil {
		raw.Close()
		t.Errorf("a fifth connection was served while 4 of 4 were open")
	}
	waitClosedByServer(t, stalled)
	req, _ := http.NewRequest("GET", in.boot.ARMEndpoint+"/healthz", nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET /healthz once the stalled connections closed: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET /healthz = %d; want 200", resp.StatusCode)
	}
}

func tlsDialTimeout(d *tls.Dialer, addr string, timeout time.Duration) (io.Closer, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return d.DialContext(ctx, "tcp", addr)
}

// TestFirewallRuleQuota: a server holds at most MaxFirewallRules rules; replacing one is not a
// new rule.
func TestFirewallRuleQuota(t *testing.T) {
	in := start(t, func(c *server.Config) { c.MaxFirewallRules = 2 })
	c := newClients(t, in)
	ctx := ctxT(t)
	c.group(t, "rg")
	c.server(t, "rg", "db1")
	rule := func(name, ip string) error {
		p, err := c.rules.BeginCreateOrUpdate(ctx, "rg", "db1", name, pg.FirewallRule{Properties: &pg.FirewallRuleProperties{
			StartIPAddress: to.Ptr(ip), EndIPAddress: to.Ptr(ip)}}, nil)
		if err == nil {
			_, err = p.PollUntilDone(ctx, &azcoreFast)
		}
		return err
	}
	for _, name := range []string{"r1", "r2"} {
		if err := rule(name, "10.0.0.1"); err != nil {
			t.Fatalf("rule %s: %v", name, err)
		}
	}
	wantErr(t, "third rule of 2", rule("r3", "10.0.0.3"), "QuotaExceeded", http.StatusConflict)
	if err := rule("r2", "10.0.0.2"); err != nil {
		t.Errorf("replacing rule r2 at the quota: %v", err)
	}
}

// TestSignInLockout: through azidentity, ten wrong client secrets lock the client at this
// address; the eleventh attempt, even with the right secret, fails at once with AADSTS50053
// (not retried, and no hash computed), while the API keeps serving tokens already issued.
func TestSignInLockout(t *testing.T) {
	in := start(t, nil)
	tok := in.token() // issued before the lock
	ctx := ctxT(t)
	opts := policy.TokenRequestOptions{Scopes: []string{in.boot.ARMEndpoint + "/.default"}}
	wrong := in.credentialFor(in.boot.ClientID, "not-the-secret")
	for n := range 10 {
		_, err := wrong.GetToken(ctx, opts)
		if err == nil || !strings.Contains(err.Error(), "AADSTS7000215") {
			t.Fatalf("wrong secret #%d: %v; want AADSTS7000215", n+1, err)
		}
	}
	_, err := in.credential().GetToken(ctx, opts)
	if err == nil || !strings.Contains(err.Error(), "AADSTS50053") {
		t.Errorf("right secret after 10 wrong ones: %v; want AADSTS50053 (locked)", err)
	}
	if r := in.do(t, "GET", "/subscriptions/"+in.boot.SubscriptionID+"/resourcegroups?api-version=2021-04-01", tok, nil, nil); r.status != 200 {
		t.Errorf("API with a token issued before the lock = %d; want 200", r.status)
	}
}
