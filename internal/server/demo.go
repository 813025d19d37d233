package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/pglink/pglink/internal/authz"
	"github.com/pglink/pglink/internal/providers/network"
	"github.com/pglink/pglink/internal/providers/postgresql"
	"github.com/pglink/pglink/internal/providers/resources"
	"github.com/pglink/pglink/internal/resource"
)

// Demo is what `pglink serve --demo` seeded: two users, a Ready server and a Pending private
// endpoint connection to it. It is kept in bootstrap.json.
type Demo struct {
	// Users are the demo's users and their passwords.
	Users []DemoUser `json:"users"`
	// Server is the resource ID of the demo's flexible server.
	Server string `json:"server"`
	// ServerAdminPassword is the password of the server's administrator login (pgadmin).
	ServerAdminPassword string `json:"serverAdminPassword"`
	// PrivateEndpoint is the resource ID of the network administrator's private endpoint.
	PrivateEndpoint string `json:"privateEndpoint"`
}

// DemoUser is one user of the demo.
type DemoUser struct {
	Role     string `json:"role"` // what the user does: "network administrator" or "database administrator"
	Username string `json:"username"`
	Password string `json:"password"`
}

// The demo's names.
const (
	demoLocation  = "eastus"
	demoDBGroup   = "db-rg"
	demoNetGroup  = "net-rg"
	demoServer    = "orders-db"
	demoVNet      = "app-vnet"
	demoEndpoint  = "orders-app-pe"
	demoNetAdmin  = "netadmin@pglink.local"
	demoDBAdmin   = "dba@pglink.local"
	demoSeedLimit = 5 * time.Minute
)

// seedDemo seeds the demo on an empty data dir through the public API, as the administrator
// and then as the network administrator, and records it in bootstrap.json.
func (s *Server) seedDemo(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, demoSeedLimit)
	defer cancel()
	c, err := newSelfClient(s.bootstrap)
	if err != nil {
		return err
	}
	b := s.bootstrap
	admin, err := c.token(ctx, url.Values{"grant_type": {"client_credentials"}, "client_id": {b.ClientID}, "client_secret": {b.ClientSecret}})
	if err != nil {
		return fmt.Errorf("demo: administrator token: %w", err)
	}
	d := &Demo{ServerAdminPassword: "Pg1-" + randomSecret(12)}
	sub := "/subscriptions/" + b.SubscriptionID
	roleID := func(id string) string { return sub + "/providers/Microsoft.Authorization/roleDefinitions/" + id }
	users := []struct {
		role, login, display string
		roles                []string
	}{
		{"network administrator", demoNetAdmin, "Network administrator", []string{authz.NetworkContributorID, authz.ReaderID}},
		{"database administrator", demoDBAdmin, "Database administrator", []string{authz.PostgreSQLAdministratorID, authz.ReaderID}},
	}
	for _, u := range users {
		pw := "Pg1-" + randomSecret(12)
		var out struct {
			ID string `json:"id"`
		}
		body := map[string]any{"userPrincipalName": u.login, "displayName": u.display, "accountEnabled": true,
			"passwordProfile": map[string]any{"password": pw}}
		if err := c.do(ctx, admin, http.MethodPost, "/v1.0/users", "", body, &out); err != nil {
			return fmt.Errorf("demo: create user %s: %w", u.login, err)
		}
		for _, r := range u.roles {
			path := sub + "/providers/Microsoft.Authorization/roleAssignments/" + resource.NewGUID()
			body := map[string]any{"properties": map[string]any{"roleDefinitionId": roleID(r), "principalId": out.ID}}
			if err := c.do(ctx, admin, http.MethodPut, path, "2022-04-01", body, nil); err != nil {
				return fmt.Errorf("demo: assign a role to %s: %w", u.login, err)
			}
		}
		d.Users = append(d.Users, DemoUser{Role: u.role, Username: u.login, Password: pw})
	}
	rv, pv, nv := latest(resources.APIVersions), latest(postgresql.APIVersions), latest(network.APIVersions)
	for _, g := range []string{demoDBGroup, demoNetGroup} {
		if err := c.do(ctx, admin, http.MethodPut, sub+"/resourcegroups/"+g, rv, map[string]any{"location": demoLocation}, nil); err != nil {
			return fmt.Errorf("demo: create resource group %s: %w", g, err)
		}
	}
	d.Server = sub + "/resourceGroups/" + demoDBGroup + "/providers/Microsoft.DBforPostgreSQL/flexibleServers/" + demoServer
	srv := map[string]any{"location": demoLocation, "sku": map[string]any{"name": "Standard_D2s_v3", "tier": "GeneralPurpose"},
		"properties": map[string]any{"administratorLogin": "pgadmin", "administratorLoginPassword": d.ServerAdminPassword}} // the newest PostgreSQL installed
	if err := c.lro(ctx, admin, http.MethodPut, d.Server, pv, srv); err != nil {
		return fmt.Errorf("demo: create server: %w", err)
	}
	vnet := sub + "/resourceGroups/" + demoNetGroup + "/providers/Microsoft.Network/virtualNetworks/" + demoVNet
	vbody := map[string]any{"location": demoLocation, "properties": map[string]any{
		"addressSpace": map[string]any{"addressPrefixes": []string{"10.0.0.0/16"}},
		"subnets":      []any{map[string]any{"name": "pe", "properties": map[string]any{"addressPrefix": "10.0.1.0/24"}}}}}
	if err := c.lro(ctx, admin, http.MethodPut, vnet, nv, vbody); err != nil {
		return fmt.Errorf("demo: create virtual network: %w", err)
	}
	// The network administrator asks for the connection, as in the seed.
	net := d.Users[0]
	netTok, err := c.token(ctx, url.Values{"grant_type": {"password"}, "client_id": {"04b07795-8ddb-461a-bbee-02f9e1bf7b46"},
		"username": {net.Username}, "password": {net.Password}})
	if err != nil {
		return fmt.Errorf("demo: network administrator token: %w", err)
	}
	d.PrivateEndpoint = sub + "/resourceGroups/" + demoNetGroup + "/providers/Microsoft.Network/privateEndpoints/" + demoEndpoint
	pe := map[string]any{"location": demoLocation, "properties": map[string]any{
		"subnet": map[string]any{"id": vnet + "/subnets/pe"},
		"manualPrivateLinkServiceConnections": []any{map[string]any{"name": demoEndpoint + "-conn", "properties": map[string]any{
			"privateLinkServiceId": d.Server, "groupIds": []string{"postgresqlServer"},
			"requestMessage": "Orders app in app-vnet asks for access"}}}}}
	if err := c.lro(ctx, netTok, http.MethodPut, d.PrivateEndpoint, nv, pe); err != nil {
		return fmt.Errorf("demo: create private endpoint: %w", err)
	}
	b.Demo = d
	if err := writeBootstrap(s.cfg.DataDir, b); err != nil {
		return err
	}
	s.bootstrap = b
	return nil
}

func latest(versions []string) string { return versions[len(versions)-1] }

// selfClient calls this server's public API over HTTPS, trusting its CA.
type selfClient struct {
	base, tenant string
	http         *http.Client
}

func newSelfClient(b Bootstrap) (*selfClient, error) {
	pem, err := os.ReadFile(b.CACertFile)
	if err != nil {
		return nil, fmt.Errorf("demo: read CA: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &selfClient{base: b.ARMEndpoint, tenant: b.TenantID,
		http: &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}}, nil
}

func (c *selfClient) token(ctx context.Context, form url.Values) (string, error) {
	form.Set("scope", c.base+"/.default")
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/"+c.tenant+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	var out struct {
		AccessToken string `json:"access_token"`
	}
	if _, err := c.send(req, &out); err != nil {
		return "", err
	}
	return out.AccessToken, nil
}

// do sends one request with a JSON body and decodes the answer into out (if not nil).
func (c *selfClient) do(ctx context.Context, token, method, path, version string, body, out any) error {
	_, err := c.request(ctx, token, method, path, version, body, out)
	return err
}

func (c *selfClient) request(ctx context.Context, token, method, path, version string, body, out any) (http.Header, error) {
	u := c.base + path
	if version != "" {
		u += "?api-version=" + version
	}
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return c.send(req, out)
}

func (c *selfClient) send(req *http.Request, out any) (http.Header, error) {
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		return nil, fmt.Errorf("%s %s: %s: %s", req.Method, req.URL.Path, resp.Status, bytes.TrimSpace(data))
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return nil, fmt.Errorf("decode %s %s: %w", req.Method, req.URL.Path, err)
		}
	}
	return resp.Header, nil
}

// lro sends a request that may start a long-running operation and waits for it to succeed.
func (c *selfClient) lro(ctx context.Context, token, method, path, version string, body any) error {
	h, err := c.request(ctx, token, method, path, version, body, nil)
	if err != nil {
		return err
	}
	poll := h.Get("Azure-AsyncOperation")
	if poll == "" {
		return nil
	}
	pu, err := url.Parse(poll)
	if err != nil {
		return fmt.Errorf("operation URL %q: %w", poll, err)
	}
	for {
		var st struct {
			Status string `json:"status"`
			Error  *struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := c.do(ctx, token, http.MethodGet, pu.RequestURI(), "", nil, &st); err != nil {
			return err
		}
		switch st.Status {
		case "Succeeded":
			return nil
		case "Failed", "Canceled":
			if st.Error != nil {
				return fmt.Errorf("%s %s: %s: %s", method, path, st.Error.Code, st.Error.Message)
			}
			return fmt.Errorf("%s %s: operation %s", method, path, st.Status)
		}
		select {
		case <-ctx.Done():
			return errors.Join(fmt.Errorf("%s %s: waiting for the operation", method, path), ctx.Err())
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// PrintDemo writes where to sign in to the portal and the demo's users.
func PrintDemo(w io.Writer, b Bootstrap) {
	fmt.Fprintf(w, "\npglink demo: open %s/ in a browser (trust %s) and sign in as\n", b.ARMEndpoint, b.CACertFile)
	for _, u := range b.Demo.Users {
		fmt.Fprintf(w, "  %-24s password %-22s (%s)\n", u.Username, u.Password, u.Role)
	}
	fmt.Fprintf(w, "The database administrator approves the Pending private endpoint connection on %s:\n", demoServer)
	fmt.Fprintf(w, "Resources > %s > Networking. These are also in %s.\n\n", demoServer, "bootstrap.json")
}
