package identity_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/pglink/pglink/internal/identity"
)

// do sends a request to ts and returns the status and the decoded JSON body.
func (ts *testServer) do(t *testing.T, method, path string, header http.Header, form url.Values) (int, map[string]any) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, ts.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	res, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s %s: Content-Type = %q; want JSON", method, path, ct)
	}
	var m map[string]any
	if err := json.NewDecoder(res.Body).Decode(&m); err != nil {
		t.Fatalf("%s %s: decode body: %v", method, path, err)
	}
	return res.StatusCode, m
}

func TestOpenIDConfiguration(t *testing.T) {
	ts := newTestServer(t)
	for _, tt := range []struct{ path, tenant string }{
		{"/" + testTenant + "/v2.0/.well-known/openid-configuration", testTenant},
		{"/" + testTenant + "/.well-known/openid-configuration", testTenant},
		{"/organizations/v2.0/.well-known/openid-configuration", "organizations"},
		{"/common/v2.0/.well-known/openid-configuration", "common"},
	} {
		status, doc := ts.do(t, "GET", tt.path, nil, nil)
		if status != http.StatusOK {
			t.Fatalf("GET %s = %d %v", tt.path, status, doc)
		}
		want := map[string]string{
			"issuer":                        ts.URL + "/" + testTenant + "/v2.0",
			"token_endpoint":                ts.URL + "/" + tt.tenant + "/oauth2/v2.0/token",
			"jwks_uri":                      ts.URL + "/" + tt.tenant + "/discovery/v2.0/keys",
			"authorization_endpoint":        ts.URL + "/" + tt.tenant + "/oauth2/v2.0/authorize",
			"device_authorization_endpoint": ts.URL + "/" + tt.tenant + "/oauth2/v2.0/devicecode",
			"end_session_endpoint":          ts.URL + "/" + tt.tenant + "/oauth2/v2.0/logout",
			"tenant_region_scope":           "WW",
			"cloud_instance_name":           "127.0.0.1",
		}
		for k, v := range want {
			if doc[k] != v {
				t.Errorf("GET %s: %s = %v; want %v", tt.path, k, doc[k], v)
			}
		}
		for _, k := range []string{"response_types_supported", "subject_types_supported", "id_token_signing_alg_values_supported"} {
			if l, _ := doc[k].([]any); len(l) == 0 {
				t.Errorf("GET %s: %s = %v; want a list", tt.path, k, doc[k])
			}
		}
	}

	status, body := ts.do(t, "GET", "/other-tenant/v2.0/.well-known/openid-configuration", nil, nil)
	if status != http.StatusBadRequest || body["error"] != "invalid_request" || !hasCode(body, 90002) {
		t.Errorf("GET unknown tenant = %d %v; want 400 invalid_request AADSTS90002", status, body)
	}
}

func TestJWKSVerifiesTokens(t *testing.T) {
	ts := newTestServer(t)
	status, body := ts.do(t, "GET", "/"+testTenant+"/discovery/v2.0/keys", nil, nil)
	if status != http.StatusOK {
		t.Fatalf("GET keys = %d %v", status, body)
	}
	keys, _ := body["keys"].([]any)
	if len(keys) != 1 {
		t.Fatalf("keys = %v; want one", body["keys"])
	}
	k := keys[0].(map[string]any)
	for f, want := range map[string]string{"kty": "RSA", "use": "sig", "alg": "RS256"} {
		if k[f] != want {
			t.Errorf("key %s = %v; want %s", f, k[f], want)
		}
	}
	n, err1 := base64.RawURLEncoding.DecodeString(k["n"].(string))
	e, err2 := base64.RawURLEncoding.DecodeString(k["e"].(string))
	if err1 != nil || err2 != nil {
		t.Fatalf("decode n, e: %v, %v", err1, err2)
	}
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}

	// A token from the token endpoint verifies with the published key alone, as any OIDC
	// resource server would check it.
	status, tok := ts.do(t, "POST", "/"+testTenant+"/oauth2/v2.0/token", nil, url.Values{
		"grant_type": {"client_credentials"}, "client_id": {testClientID}, "client_secret": {testSecret},
		"scope": {"https://management.azure.com/.default"},
	})
	if status != http.StatusOK {
		t.Fatalf("POST token = %d %v", status, tok)
	}
	parsed, err := jwt.Parse(tok["access_token"].(string), func(tk *jwt.Token) (any, error) {
		if tk.Header["kid"] != k["kid"] {
			t.Errorf("token kid = %v; JWKS kid = %v", tk.Header["kid"], k["kid"])
		}
		return pub, nil
	}, jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuer(ts.URL+"/"+testTenant+"/v2.0"))
	if err != nil || !parsed.Valid {
		t.Errorf("verify with the JWKS key: %v", err)
	}
}

func hasCode(body map[string]any, code int) bool {
	codes, _ := body["error_codes"].([]any)
	return len(codes) == 1 && codes[0] == float64(code) &&
		strings.HasPrefix(body["error_description"].(string), "AADSTS"+strconv.Itoa(code)+": ")
}

func TestTokenEndpoint(t *testing.T) {
	ts := newTestServer(t)
	path := "/" + testTenant + "/oauth2/v2.0/token"
	sp := func(edit func(url.Values)) url.Values {
		v := url.Values{"grant_type": {"client_credentials"}, "client_id": {testClientID}, "client_secret": {testSecret},
			"scope": {"https://management.azure.com/.default"}}
		if edit != nil {
			edit(v)
		}
		return v
	}
	pw := func(edit func(url.Values)) url.Values {
		v := url.Values{"grant_type": {"password"}, "client_id": {"04b07795-8ddb-461a-bbee-02f9e1bf7b46"},
			"username": {testUser}, "password": {testPassword}, "client_info": {"1"},
			"scope": {"https://management.core.windows.net//.default offline_access openid profile"}}
		if edit != nil {
			edit(v)
		}
		return v
	}

	t.Run("client credentials", func(t *testing.T) {
		status, body := ts.do(t, "POST", path, nil, sp(nil))
		if status != http.StatusOK {
			t.Fatalf("POST = %d %v", status, body)
		}
		if body["token_type"] != "Bearer" || body["expires_in"] != 3600.0 || body["ext_expires_in"] != 3600.0 {
			t.Errorf("body = %v; want Bearer, expires_in 3600, ext_expires_in 3600", body)
		}
		if _, ok := body["id_token"]; ok {
			t.Errorf("client credentials answered with an id_token")
		}
		if c := payload(t, body["access_token"].(string)); c["aud"] != "https://management.azure.com" || c["appid"] != testClientID {
			t.Errorf("claims = %v; want aud https://management.azure.com, appid %s", c, testClientID)
		}
	})

	t.Run("client_secret_basic", func(t *testing.T) {
		h := http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(testClientID+":"+testSecret))}}
		status, body := ts.do(t, "POST", path, h, sp(func(v url.Values) { v.Del("client_id"); v.Del("client_secret") }))
		if status != http.StatusOK {
			t.Errorf("POST = %d %v", status, body)
		}
	})

	t.Run("password", func(t *testing.T) {
		status, body := ts.do(t, "POST", path, nil, pw(nil))
		if status != http.StatusOK {
			t.Fatalf("POST = %d %v", status, body)
		}
		if body["scope"] != "https://management.core.windows.net//.default" {
			t.Errorf("scope = %v; want the requested resource scope", body["scope"])
		}
		c := payload(t, body["access_token"].(string))
		if c["aud"] != "https://management.core.windows.net/" || c["upn"] != testUser || c["tid"] != testTenant || c["idtyp"] != "user" {
			t.Errorf("access token claims = %v", c)
		}
		id := payload(t, body["id_token"].(string))
		if id["aud"] != "04b07795-8ddb-461a-bbee-02f9e1bf7b46" || id["oid"] != testUserOID || id["preferred_username"] != testUser {
			t.Errorf("id token claims = %v", id)
		}
		ci, err := base64.RawURLEncoding.DecodeString(body["client_info"].(string))
		if err != nil || string(ci) != `{"uid":"`+testUserOID+`","utid":"`+testTenant+`"}` {
			t.Errorf("client_info = %s, %v", ci, err)
		}
	})

	tests := []struct {
		name   string
		tenant string
		form   url.Values
		status int
		error  string
		code   int
	}{
		{"wrong secret", testTenant, sp(func(v url.Values) { v.Set("client_secret", "nope") }), 401, "invalid_client", 7000215},
		{"unknown client", testTenant, sp(func(v url.Values) { v.Set("client_id", "nobody") }), 401, "invalid_client", 7000215},
		{"no secret", testTenant, sp(func(v url.Values) { v.Del("client_secret") }), 401, "invalid_client", 7000218},
		{"no client id", testTenant, sp(func(v url.Values) { v.Del("client_id") }), 400, "invalid_request", 900144},
		{"no scope", testTenant, sp(func(v url.Values) { v.Del("scope") }), 400, "invalid_request", 900144},
		{"unknown resource", testTenant, sp(func(v url.Values) { v.Set("scope", "https://graph.microsoft.com/.default") }), 400, "invalid_scope", 70011},
		{"not .default", testTenant, sp(func(v url.Values) { v.Set("scope", "https://management.azure.com/user_impersonation") }), 400, "invalid_scope", 70011},
		{"only openid", testTenant, sp(func(v url.Values) { v.Set("scope", "openid profile") }), 400, "invalid_scope", 70011},
		{"two resources", testTenant, sp(func(v url.Values) {
			v.Set("scope", "https://management.azure.com/.default https://management.core.windows.net//.default")
		}), 400, "invalid_scope", 70011},
		{"no grant type", testTenant, sp(func(v url.Values) { v.Del("grant_type") }), 400, "invalid_request", 900144},
		{"device code grant", testTenant, sp(func(v url.Values) { v.Set("grant_type", "urn:ietf:params:oauth:grant-type:device_code") }), 400, "unsupported_grant_type", 70003},
		{"wrong tenant", "contoso.onmicrosoft.com", sp(nil), 400, "invalid_request", 90002},
		{"directory failure", testTenant, sp(func(v url.Values) { v.Set("client_id", brokenClientID) }), 500, "temporarily_unavailable", 50000},
		{"wrong password", testTenant, pw(func(v url.Values) { v.Set("password", "nope") }), 400, "invalid_grant", 50126},
		{"unknown user", testTenant, pw(func(v url.Values) { v.Set("username", "eve@pglink.example") }), 400, "invalid_grant", 50126},
		{"no password", testTenant, pw(func(v url.Values) { v.Del("password") }), 400, "invalid_request", 900144},
	}
	timestamp := regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$`)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{"Client-Request-Id": {"9f1c7c4e-0000-4000-8000-000000000001"}}
			status, body := ts.do(t, "POST", "/"+tt.tenant+"/oauth2/v2.0/token", h, tt.form)
			if status != tt.status || body["error"] != tt.error || !hasCode(body, tt.code) {
				t.Errorf("POST = %d %v; want %d %s AADSTS%d", status, body, tt.status, tt.error, tt.code)
			}
			if body["correlation_id"] != "9f1c7c4e-0000-4000-8000-000000000001" {
				t.Errorf("correlation_id = %v; want the client-request-id", body["correlation_id"])
			}
			if s, _ := body["trace_id"].(string); len(s) != 36 {
				t.Errorf("trace_id = %v; want a UUID", body["trace_id"])
			}
			if s, _ := body["timestamp"].(string); !timestamp.MatchString(s) {
				t.Errorf("timestamp = %v; want AAD's format", body["timestamp"])
			}
			if _, ok := body["access_token"]; ok {
				t.Errorf("error response carries an access token")
			}
		})
	}
}

func TestUserRealm(t *testing.T) {
	ts := newTestServer(t)
	for _, path := range []string{"/common/UserRealm/" + testUser + "?api-version=1.0", "/common/userrealm/" + testUser + "?api-version=1.0"} {
		status, body := ts.do(t, "GET", path, nil, nil)
		if status != http.StatusOK || body["account_type"] != "Managed" || body["domain_name"] != "pglink.example" ||
			body["cloud_instance_name"] == "" || body["cloud_audience_urn"] == "" {
			t.Errorf("GET %s = %d %v; want a Managed realm", path, status, body)
		}
	}
}

func TestManagedIdentity(t *testing.T) {
	ts := newTestServer(t)
	secretHeader := http.Header{"Secret": {testClientID + ":" + testSecret}}
	arm := "https://management.azure.com/"
	classic := "https://management.core.windows.net/"

	tests := []struct {
		name     string
		method   string
		path     string
		header   http.Header
		form     url.Values
		userinfo bool // credentials in MSI_ENDPOINT's user info, which python-requests sends as Basic
		status   int
		resource string // of a good answer
	}{
		{"GET App Service flavour", "GET", "/msi/token?api-version=2017-09-01&resource=" + url.QueryEscape(arm), secretHeader, nil, false, 200, arm},
		{"GET with trailing slash", "GET", "/msi/token/?resource=" + url.QueryEscape(arm) + "&api-version=2017-09-01", secretHeader, nil, false, 200, arm},
		{"GET resource without slash", "GET", "/msi/token?resource=https://management.azure.com", secretHeader, nil, false, 200, "https://management.azure.com"},
		{"POST legacy flavour", "POST", "/msi/token", http.Header{"Secret": secretHeader["Secret"], "Metadata": {"true"}}, url.Values{"resource": {classic}}, false, 200, classic},
		{"POST with credentials in MSI_ENDPOINT", "POST", "/msi/token", http.Header{"Metadata": {"true"}}, url.Values{"resource": {classic}}, true, 200, classic},
		{"wrong secret", "GET", "/msi/token?resource=" + url.QueryEscape(arm), http.Header{"Secret": {testClientID + ":nope"}}, nil, false, 401, ""},
		{"unknown client", "GET", "/msi/token?resource=" + url.QueryEscape(arm), http.Header{"Secret": {"nobody:" + testSecret}}, nil, false, 401, ""},
		{"secret without client id", "GET", "/msi/token?resource=" + url.QueryEscape(arm), http.Header{"Secret": {testSecret}}, nil, false, 401, ""},
		{"no secret", "POST", "/msi/token", http.Header{"Metadata": {"true"}}, url.Values{"resource": {classic}}, false, 401, ""},
		{"no resource", "GET", "/msi/token?api-version=2017-09-01", secretHeader, nil, false, 400, ""},
		{"unknown resource", "GET", "/msi/token?resource=https://vault.azure.net", secretHeader, nil, false, 400, ""},
		{"directory failure", "GET", "/msi/token?resource=" + url.QueryEscape(arm), http.Header{"Secret": {brokenClientID + ":" + testSecret}}, nil, false, 500, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.path
			if tt.userinfo {
				tt.header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(testClientID+":"+testSecret)))
			}
			status, body := ts.do(t, tt.method, path, tt.header, tt.form)
			if status != tt.status {
				t.Fatalf("%s %s = %d %v; want %d", tt.method, path, status, body, tt.status)
			}
			if tt.status != http.StatusOK {
				if body["error"] == "" || body["error_description"] == "" || body["access_token"] != nil {
					t.Errorf("error body = %v; want error and error_description", body)
				}
				return
			}
			if body["token_type"] != "Bearer" || body["resource"] != tt.resource {
				t.Errorf("body = %v; want Bearer token for %s", body, tt.resource)
			}
			expiresOn, err := strconv.ParseInt(body["expires_on"].(string), 10, 64)
			if d := time.Until(time.Unix(expiresOn, 0)); err != nil || d < 59*time.Minute || d > time.Hour+time.Minute {
				t.Errorf("expires_on = %v (%v); want unix seconds about an hour ahead", body["expires_on"], err)
			}
			token := body["access_token"].(string)
			if c := payload(t, token); c["tid"] != testTenant || c["aud"] != tt.resource || c["appid"] != testClientID {
				t.Errorf("claims = %v; want tid %s, aud %s, appid %s", c, testTenant, tt.resource, testClientID)
			}
			if p, err := ts.iss.Verify(token); err != nil || p != servicePrincipal {
				t.Errorf("Verify = %+v, %v; want %+v", p, err, servicePrincipal)
			}
		})
	}
}

// TestKeyRotation: after SetKeys with a new signing key and the old one to verify, tokens of
// both keys verify and JWKS publishes both; once the old key leaves, its tokens fail, while
// the new key's keep working.
func TestKeyRotation(t *testing.T) {
	ts := newTestServer(t)
	aud := "https://management.azure.com/"
	old, _, err := ts.iss.Issue(servicePrincipal, aud)
	if err != nil {
		t.Fatal(err)
	}
	next, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jwksKids := func() []string {
		_, body := ts.do(t, "GET", "/"+testTenant+"/discovery/v2.0/keys", nil, nil)
		var kids []string
		for _, k := range body["keys"].([]any) {
			kids = append(kids, k.(map[string]any)["kid"].(string))
		}
		return kids
	}
	if err := ts.iss.SetKeys(next, []*rsa.PublicKey{&testKey().PublicKey}); err != nil {
		t.Fatal(err)
	}
	fresh, _, err := ts.iss.Issue(servicePrincipal, aud)
	if err != nil {
		t.Fatal(err)
	}
	if h := strings.Split(fresh, ".")[0]; h == strings.Split(old, ".")[0] {
		t.Errorf("the token after SetKeys has the old header %s; want the new key's id", h)
	}
	for name, tok := range map[string]string{"old key": old, "new key": fresh} {
		if _, err := ts.iss.Verify(tok); err != nil {
			t.Errorf("Verify(token of the %s) in the overlap = %v; want nil", name, err)
		}
	}
	if kids := jwksKids(); len(kids) != 2 {
		t.Errorf("JWKS in the overlap = %v; want both keys, the signing key first", kids)
	}
	// The overlap ends.
	if err := ts.iss.SetKeys(next, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.iss.Verify(old); !errors.Is(err, identity.ErrInvalidToken) {
		t.Errorf("Verify(token of the retired key) = %v; want ErrInvalidToken", err)
	}
	if _, err := ts.iss.Verify(fresh); err != nil {
		t.Errorf("Verify(token of the current key) = %v; want nil", err)
	}
	if kids := jwksKids(); len(kids) != 1 {
		t.Errorf("JWKS after the overlap = %v; want one key", kids)
	}
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	if err := ts.iss.SetKeys(next, []*rsa.PublicKey{&small.PublicKey}); err == nil {
		t.Errorf("SetKeys with a 1024-bit key succeeded; want an error")
	}
	if err := ts.iss.SetKeys(nil, nil); err == nil {
		t.Errorf("SetKeys without a signing key succeeded; want an error")
	}
}
