package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	pg "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/postgresql/armpostgresqlflexibleservers/v4"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pglink/pglink/internal/server"
)

// configurations returns the SDK's client for server parameters.
func (c *clients) configurations(t *testing.T) *pg.ConfigurationsClient {
	t.Helper()
	cc, err := pg.NewConfigurationsClient(c.in.boot.SubscriptionID, c.in.credential(), c.in.armOptions())
	if err != nil {
		t.Fatal(err)
	}
	return cc
}

// setParameter sets a server parameter with the SDK's PUT (BeginPut) and waits for it.
func setParameter(t *testing.T, cc *pg.ConfigurationsClient, rg, srv, name, value string) pg.Configuration {
	t.Helper()
	ctx := ctxT(t)
	p, err := cc.BeginPut(ctx, rg, srv, name, pg.Configuration{Properties: &pg.ConfigurationProperties{
		Value: to.Ptr(value), Source: to.Ptr("user-override")}}, nil)
	if err != nil {
		t.Fatalf("put %s=%s: %v", name, value, err)
	}
	res, err := p.PollUntilDone(ctx, &azcoreFast)
	if err != nil {
		t.Fatalf("put %s=%s: %v", name, value, err)
	}
	return res.Configuration
}

// TestConfigurations: server parameters through the Azure SDK's ConfigurationsClient: Get,
// ListByServer with paging, BeginPut and BeginUpdate, defaults, validation and errors.
func TestConfigurations(t *testing.T) {
	in := start(t, func(c *server.Config) { c.PageSize = 3 })
	c := newClients(t, in)
	ctx := ctxT(t)
	c.group(t, "rg")
	c.server(t, "rg", "cfg-db")
	cc := c.configurations(t)

	got, err := cc.Get(ctx, "rg", "cfg-db", "require_secure_transport", nil)
	if err != nil {
		t.Fatal(err)
	}
	p := got.Properties
	if *got.Name != "require_secure_transport" || *got.Type != "Microsoft.DBforPostgreSQL/flexibleServers/configurations" ||
		!strings.HasSuffix(*got.ID, "/flexibleServers/cfg-db/configurations/require_secure_transport") ||
		*p.Value != "on" || *p.DefaultValue != "on" || *p.Source != "system-default" || *p.DataType != pg.ConfigurationDataTypeBoolean ||
		*p.AllowedValues != "on,off" || !*p.IsDynamicConfig || *p.IsReadOnly || *p.IsConfigPendingRestart || *p.Description == "" || p.DocumentationLink == nil {
		t.Errorf("Get(require_secure_transport) = %s; want on, system-default, Boolean, on,off, dynamic, writable", show(got.Configuration))
	}
	got, err = cc.Get(ctx, "rg", "cfg-db", "SSL_Min_Protocol_Version", nil)
	if err != nil {
		t.Fatal(err)
	}
	if p := got.Properties; *got.Name != "ssl_min_protocol_version" || *p.Value != "TLSv1.2" || *p.AllowedValues != "TLSv1.2,TLSv1.3" || *p.DataType != pg.ConfigurationDataTypeEnumeration {
		t.Errorf("Get(ssl_min_protocol_version) = %s; want TLSv1.2 of TLSv1.2,TLSv1.3", show(got.Configuration))
	}

	// Puts: PUT (final state via Location) and PATCH (via Azure-AsyncOperation).
	set := setParameter(t, cc, "rg", "cfg-db", "require_secure_transport", "OFF")
	if *set.Properties.Value != "off" || *set.Properties.Source != "user-override" {
		t.Errorf("BeginPut(require_secure_transport=OFF) = %s; want off, user-override", show(set))
	}
	up, err := cc.BeginUpdate(ctx, "rg", "cfg-db", "ssl_min_protocol_version", pg.ConfigurationForUpdate{Properties: &pg.ConfigurationProperties{
		Value: to.Ptr("tlsv1.3"), Source: to.Ptr("user-override")}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	upd, err := up.PollUntilDone(ctx, &azcoreFast)
	if err != nil {
		t.Fatal(err)
	}
	if *upd.Properties.Value != "TLSv1.3" || *upd.Properties.Source != "user-override" {
		t.Errorf("BeginUpdate(ssl_min_protocol_version=tlsv1.3) = %s; want TLSv1.3, user-override", show(upd.Configuration))
	}
	srv, err := c.servers.Get(ctx, "rg", "cfg-db", nil)
	if err != nil || *srv.Properties.State != pg.ServerStateReady {
		t.Errorf("server after parameter changes: %v, %v; want Ready", srv.Properties.State, err)
	}

	// The list has every parameter, the overrides included, over several pages.
	pager := cc.NewListByServerPager("rg", "cfg-db", nil)
	var names []string
	pages := 0
	values := map[string]string{}
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, v := range page.Value {
			names = append(names, *v.Name)
			values[*v.Name] = *v.Properties.Value + "/" + *v.Properties.Source
		}
	}
	if pages < 2 || !slices.IsSorted(names) || len(slices.Compact(slices.Clone(names))) != len(names) {
		t.Errorf("ListByServer: %d pages, names %v; want several pages of sorted, distinct names", pages, names)
	}
	for name, want := range map[string]string{"require_secure_transport": "off/user-override", "ssl_min_protocol_version": "TLSv1.3/user-override",
		"statement_timeout": "0/system-default"} {
		if values[name] != want {
			t.Errorf("ListByServer: %s = %q; want %q", name, values[name], want)
		}
	}

	// source system-default restores the default.
	rp, err := cc.BeginPut(ctx, "rg", "cfg-db", "require_secure_transport", pg.Configuration{Properties: &pg.ConfigurationProperties{
		Source: to.Ptr("system-default")}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	reset, err := rp.PollUntilDone(ctx, &azcoreFast)
	if err != nil {
		t.Fatal(err)
	}
	if *reset.Properties.Value != "on" || *reset.Properties.Source != "system-default" {
		t.Errorf("reset to system-default = %s; want on, system-default", show(reset.Configuration))
	}

	// Errors.
	_, err = cc.Get(ctx, "rg", "cfg-db", "no_such_parameter", nil)
	wantErr(t, "get an unknown parameter", err, "ConfigurationNotExists", http.StatusNotFound)
	_, err = cc.BeginPut(ctx, "rg", "cfg-db", "no_such_parameter", pg.Configuration{Properties: &pg.ConfigurationProperties{Value: to.Ptr("1")}}, nil)
	wantErr(t, "put an unknown parameter", err, "ConfigurationNotExists", http.StatusNotFound)
	_, err = cc.Get(ctx, "rg", "no-such-db", "require_secure_transport", nil)
	wantErr(t, "get a parameter of a missing server", err, "ResourceNotFound", http.StatusNotFound)
	for _, tc := range []struct{ name, value string }{
		{"require_secure_transport", "maybe"}, {"require_secure_transport", ""},
		{"ssl_min_protocol_version", "TLSv1.1"}, {"ssl_min_protocol_version", "TLSv1"}, {"ssl_min_protocol_version", "SSLv3"},
	} {
		_, err = cc.BeginPut(ctx, "rg", "cfg-db", tc.name, pg.Configuration{Properties: &pg.ConfigurationProperties{Value: to.Ptr(tc.value), Source: to.Ptr("user-override")}}, nil)
		wantErr(t, "put "+tc.name+"="+tc.value, err, "InvalidParameterValue", http.StatusBadRequest)
		if !strings.Contains(err.Error(), "allowed values") {
			t.Errorf("put %s=%s: error does not list the allowed values: %v", tc.name, tc.value, err)
		}
	}
	_, err = cc.BeginPut(ctx, "rg", "cfg-db", "require_secure_transport", pg.Configuration{Properties: &pg.ConfigurationProperties{Value: to.Ptr("on"), Source: to.Ptr("somewhere")}}, nil)
	wantErr(t, "put with an unknown source", err, "InvalidParameterValue", http.StatusBadRequest)
	_, err = cc.BeginPut(ctx, "rg", "cfg-db", "work_mem", pg.Configuration{Properties: &pg.ConfigurationProperties{Value: to.Ptr("8192"), Source: to.Ptr("user-override")}}, nil)
	wantErr(t, "put a read-only parameter", err, "ConfigurationIsReadOnly", http.StatusBadRequest)

	// A write needs a Ready server.
	sp, err := c.servers.BeginStop(ctx, "rg", "cfg-db", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sp.PollUntilDone(ctx, &azcoreFast); err != nil {
		t.Fatal(err)
	}
	_, err = cc.BeginPut(ctx, "rg", "cfg-db", "require_secure_transport", pg.Configuration{Properties: &pg.ConfigurationProperties{Value: to.Ptr("off"), Source: to.Ptr("user-override")}}, nil)
	wantErr(t, "put on a Stopped server", err, "ServerIsNotReady", http.StatusConflict)
	if _, err := cc.Get(ctx, "rg", "cfg-db", "require_secure_transport", nil); err != nil {
		t.Errorf("get on a Stopped server: %v", err)
	}
}

// TestHTTPSOffersOnlyAEAD: the API's TLS 1.2 cipher suites are ECDHE with AES-GCM or
// ChaCha20-Poly1305; a client that offers only CBC suites (or static RSA) fails the handshake.
func TestHTTPSOffersOnlyAEAD(t *testing.T) {
	in := start(t, nil)
	u, err := url.Parse(in.boot.ARMEndpoint)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(in.boot.CACertFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	for _, tc := range []struct {
		name    string
		max     uint16
		suites  []uint16
		succeed bool
	}{
		{"TLS 1.2 CBC only", tls.VersionTLS12, []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,
			tls.TLS_RSA_WITH_AES_128_CBC_SHA, tls.TLS_RSA_WITH_AES_256_CBC_SHA, tls.TLS_RSA_WITH_AES_128_CBC_SHA256}, false},
		{"TLS 1.2 static RSA with GCM", tls.VersionTLS12, []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_RSA_WITH_AES_256_GCM_SHA384}, false},
		{"TLS 1.1", tls.VersionTLS11, nil, false},
		{"TLS 1.2 ECDHE AES-GCM", tls.VersionTLS12, []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}, true},
		{"TLS 1.2 ECDHE ChaCha20-Poly1305", tls.VersionTLS12, []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}, true},
		{"TLS 1.3", tls.VersionTLS13, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: &tls.Config{
				RootCAs: pool, ServerName: u.Hostname(), MinVersion: tls.VersionTLS10, MaxVersion: tc.max, CipherSuites: tc.suites}}
			conn, err := d.DialContext(ctxT(t), "tcp", u.Host)
			if !tc.succeed {
				if err == nil {
					st := conn.(*tls.Conn).ConnectionState()
					conn.Close()
					t.Fatalf("handshake succeeded with %s %s; want a failure", tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite))
				}
				return
			}
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			defer conn.Close()
			st := conn.(*tls.Conn).ConnectionState()
			if tc.max == tls.VersionTLS12 && st.CipherSuite != tc.suites[0] {
				t.Errorf("negotiated %s; want %s", tls.CipherSuiteName(st.CipherSuite), tls.CipherSuiteName(tc.suites[0]))
			}
		})
	}
}

// TestDataPlaneRequireSecureTransport: require_secure_transport is on by default; plaintext
// clients get FATAL 28000 on the public endpoint and on a private endpoint; turning it off
// through the API admits them; turning it on again cuts their open sessions (57P01) before the
// API answers; ssl_min_protocol_version TLSv1.3 refuses a TLS 1.2 handshake; TLS 1.2 suites are
// AEAD only.
func TestDataPlaneRequireSecureTransport(t *testing.T) {
	in := startLocal(t)
	c := newClients(t, in)
	ctx := ctxT(t)
	c.group(t, "rg")
	srv := c.localServer(t, "rg", "tls-db")
	cc := c.configurations(t)
	pub := serverAddress(t, c, "rg", "tls-db")
	rp, err := c.rules.BeginCreateOrUpdate(ctx, "rg", "tls-db", "me", pg.FirewallRule{Properties: &pg.FirewallRuleProperties{
		StartIPAddress: to.Ptr("127.0.0.1"), EndIPAddress: to.Ptr("127.0.0.1")}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rp.PollUntilDone(ctx, &azcoreFast); err != nil {
		t.Fatal(err)
	}
	subnet := c.vnet(t, "rg", "vnet")
	if _, err := c.endpoint(t, "rg", "app-pe", subnet, *srv.ID, false, ""); err != nil {
		t.Fatal(err)
	}
	priv := peAddress(t, c, "rg", "app-pe")

	const refusal = `connection requires TLS: server "tls-db" has require_secure_transport on`
	for name, addr := range map[string]string{"public": pub, "private": priv} {
		wantPlainRefused(t, name+" endpoint, default", addr, refusal)
		conn, err := connect(ctx, addr, "127.0.0.1", "require", adminPassword)
		if err != nil {
			t.Fatalf("%s endpoint over TLS: %v", name, err)
		}
		if err := selectOne(t, conn); err != nil {
			t.Error(err)
		}
		conn.Close(ctx)
	}

	// The gateway, like the API, offers only AEAD suites on TLS 1.2.
	cbc := dsnConfig(t, pub, "require")
	cbc.TLSConfig.MaxVersion = tls.VersionTLS12
	cbc.TLSConfig.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, tls.TLS_RSA_WITH_AES_128_CBC_SHA, tls.TLS_RSA_WITH_AES_128_GCM_SHA256}
	if conn, err := pgx.ConnectConfig(ctx, cbc); err == nil {
		conn.Close(ctx)
		t.Error("a TLS 1.2 client offering only CBC and static-RSA suites connected")
	}
	gcm := dsnConfig(t, pub, "require")
	gcm.TLSConfig.MaxVersion = tls.VersionTLS12
	gcm.TLSConfig.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}
	if conn, err := pgx.ConnectConfig(ctx, gcm); err != nil {
		t.Errorf("a TLS 1.2 client offering ECDHE AES-GCM: %v", err)
	} else {
		conn.Close(ctx)
	}

	setParameter(t, cc, "rg", "tls-db", "require_secure_transport", "off")
	open := map[string]*pgx.Conn{}
	for name, addr := range map[string]string{"public": pub, "private": priv} {
		conn, err := connect(ctx, addr, "127.0.0.1", "disable", adminPassword)
		if err != nil {
			t.Fatalf("%s endpoint in plaintext with require_secure_transport off: %v", name, err)
		}
		if err := selectOne(t, conn); err != nil {
			t.Fatal(err)
		}
		open[name] = conn
	}
	tlsConn, err := connect(ctx, priv, "127.0.0.1", "require", adminPassword)
	if err != nil {
		t.Fatal(err)
	}

	// On again: once the API answers, the plaintext sessions are cut and plaintext refused.
	setParameter(t, cc, "rg", "tls-db", "require_secure_transport", "on")
	for name, conn := range open {
		err := selectOne(t, conn)
		if err == nil {
			t.Errorf("%s plaintext session still works after require_secure_transport on", name)
			continue
		}
		var pe *pgconn.PgError
		if errors.As(err, &pe) && (pe.Code != "57P01" || pe.Message != "terminating connection: "+refusal) {
			t.Errorf("%s plaintext session ended with %s %q; want 57P01 %q", name, pe.Code, pe.Message, "terminating connection: "+refusal)
		}
		wantPlainRefused(t, name+" endpoint, on again", map[string]string{"public": pub, "private": priv}[name], refusal)
	}
	if err := selectOne(t, tlsConn); err != nil {
		t.Errorf("TLS session after require_secure_transport on: %v", err)
	}

	// ssl_min_protocol_version TLSv1.3: a TLS 1.2 client fails its handshake.
	setParameter(t, cc, "rg", "tls-db", "ssl_min_protocol_version", "TLSv1.3")
	for name, addr := range map[string]string{"public": pub, "private": priv} {
		cfg := dsnConfig(t, addr, "require")
		cfg.TLSConfig.MaxVersion = tls.VersionTLS12
		if conn, err := pgx.ConnectConfig(ctx, cfg); err == nil {
			conn.Close(ctx)
			t.Errorf("%s endpoint: TLS 1.2 client connected with ssl_min_protocol_version TLSv1.3", name)
		}
		conn, err := connect(ctx, addr, "127.0.0.1", "require", adminPassword)
		if err != nil {
			t.Fatalf("%s endpoint, TLS 1.3 client: %v", name, err)
		}
		if v := conn.PgConn().Conn().(*tls.Conn).ConnectionState().Version; v != tls.VersionTLS13 {
			t.Errorf("%s endpoint: negotiated %s; want TLS 1.3", name, tls.VersionName(v))
		}
		conn.Close(ctx)
	}
}

// wantPlainRefused checks that a plaintext client of addr gets FATAL 28000 with message msg
// and a hint that says how to connect.
func wantPlainRefused(t *testing.T, what, addr, msg string) {
	t.Helper()
	conn, err := connect(ctxT(t), addr, "127.0.0.1", "disable", adminPassword)
	if err == nil {
		conn.Close(context.Background())
		t.Fatalf("%s: plaintext client connected; want 28000 %q", what, msg)
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "28000" || pe.Severity != "FATAL" || pe.Message != msg || !strings.Contains(pe.Hint, "sslmode=require") {
		t.Fatalf("%s: plaintext client got %v; want FATAL 28000 %q with a hint naming sslmode=require", what, err, msg)
	}
}

// dsnConfig is connect's configuration for addr as the administrator from 127.0.0.1.
func dsnConfig(t *testing.T, addr, sslmode string) *pgx.ConnConfig {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	cfg, err := pgx.ParseConfig("host=" + host + " port=" + port + " user=pgadmin password='" + adminPassword + "' dbname=postgres sslmode=" + sslmode + " connect_timeout=5")
	if err != nil {
		t.Fatal(err)
	}
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.1")}, Timeout: 5 * time.Second}
	cfg.DialFunc = d.DialContext
	return cfg
}

// show renders v as JSON, for failure messages.
func show(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%+v", v)
	}
	return string(b)
}

// TestAzParameters: az postgres flexible-server parameter show, list and set.
func TestAzParameters(t *testing.T) {
	requireTool(t, "az") // .ci/install-deps installs it
	in := start(t, nil)
	c := newAzCLI(t, in)
	srvID := "/subscriptions/" + in.boot.SubscriptionID + "/resourceGroups/rg1/providers/Microsoft.DBforPostgreSQL/flexibleServers/srv1"
	c.az(t, "group", "create", "-n", "rg1", "-l", "eastus")
	c.az(t, "rest", "--method", "put", "--url", srvID+"?api-version=2024-08-01", "--body",
		`{"location":"eastus","properties":{"administratorLogin":"pgadmin","administratorLoginPassword":"S3cret-pass!","version":"16"}}`)
	c.waitServer(t, "Ready")

	type param struct {
		Name   string `json:"name"`
		Value  string `json:"value"`
		Source string `json:"source"`
	}
	var p param
	decode(t, c.az(t, "postgres", "flexible-server", "parameter", "show", "-g", "rg1", "-s", "srv1", "-n", "require_secure_transport"), &p)
	if p != (param{"require_secure_transport", "on", "system-default"}) {
		t.Errorf("az parameter show require_secure_transport = %+v; want on, system-default", p)
	}
	decode(t, c.az(t, "postgres", "flexible-server", "parameter", "set", "-g", "rg1", "-s", "srv1", "-n", "require_secure_transport", "--value", "off"), &p)
	if p != (param{"require_secure_transport", "off", "user-override"}) {
		t.Errorf("az parameter set require_secure_transport off = %+v; want off, user-override", p)
	}
	var list []param
	decode(t, c.az(t, "postgres", "flexible-server", "parameter", "list", "-g", "rg1", "-s", "srv1"), &list)
	if !slices.Contains(list, param{"require_secure_transport", "off", "user-override"}) || !slices.Contains(list, param{"ssl_min_protocol_version", "TLSv1.2", "system-default"}) {
		t.Errorf("az parameter list = %+v; want require_secure_transport off (user-override) and ssl_min_protocol_version TLSv1.2", list)
	}
	// Without --value, az sends the default with source system-default: back to the default.
	decode(t, c.az(t, "postgres", "flexible-server", "parameter", "set", "-g", "rg1", "-s", "srv1", "-n", "require_secure_transport"), &p)
	if p != (param{"require_secure_transport", "on", "system-default"}) {
		t.Errorf("az parameter set require_secure_transport (no value) = %+v; want on, system-default", p)
	}
	stderr := c.azFail(t, "postgres", "flexible-server", "parameter", "set", "-g", "rg1", "-s", "srv1", "-n", "ssl_min_protocol_version", "--value", "TLSv1.1")
	if !strings.Contains(stderr, "InvalidParameterValue") || !strings.Contains(stderr, "TLSv1.2,TLSv1.3") {
		t.Errorf("az parameter set ssl_min_protocol_version TLSv1.1: stderr = %q; want InvalidParameterValue naming the allowed values", stderr)
	}
	stderr = c.azFail(t, "postgres", "flexible-server", "parameter", "show", "-g", "rg1", "-s", "srv1", "-n", "no_such_parameter")
	if !strings.Contains(stderr, "ConfigurationNotExists") {
		t.Errorf("az parameter show no_such_parameter: stderr = %q; want ConfigurationNotExists", stderr)
	}
}
