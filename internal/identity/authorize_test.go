package identity_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/identity"
)

const (
	portalClientID = "7c1e6d3a-5b2f-4e8d-9a10-3f4b5c6d7e8f"
	loopback       = "http://127.0.0.1:51234/callback"
	armScope       = "https://management.azure.com/.default"
	authScope      = armScope + " openid profile offline_access"
	wantCSP        = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
)

// pkce returns a code verifier and its S256 challenge.
func pkce(t *testing.T) (verifier, challenge string) {
	t.Helper()
	verifier = newRefreshToken() // 43 random base64url characters
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// authorizeParams returns a good authorization request for redirectURI and challenge.
func authorizeParams(redirectURI, challenge string) url.Values {
	return url.Values{
		"client_id": {portalClientID}, "response_type": {"code"}, "redirect_uri": {redirectURI},
		"scope": {authScope}, "state": {"st&te"}, "nonce": {"n0nce"},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"},
	}
}

// browser returns a client of ts that does not follow redirects, as the test inspects them.
func (ts *testServer) browser() *http.Client {
	c := *ts.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

// page is an answer of the authorize or logout endpoint.
type page struct {
	status int
	header http.Header
	body   string
}

// location returns the parsed Location of a redirect, or nil.
func (p page) location(t *testing.T) *url.URL {
	t.Helper()
	l := p.header.Get("Location")
	if l == "" {
		return nil
	}
	u, err := url.Parse(l)
	if err != nil {
		t.Fatalf("Location %q: %v", l, err)
	}
	return u
}

func (ts *testServer) send(t *testing.T, method, path string, form url.Values) page {
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
	res, err := ts.browser().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return page{res.StatusCode, res.Header, string(b)}
}

var authorizePath = "/" + testTenant + "/oauth2/v2.0/authorize"

var hiddenField = regexp.MustCompile(`<input type="hidden" name="([^"]*)" value="([^"]*)">`)

// hidden returns the hidden fields of a sign-in page.
func hidden(body string) url.Values {
	v := url.Values{}
	for _, m := range hiddenField.FindAllStringSubmatch(body, -1) {
		v.Set(html.UnescapeString(m[1]), html.UnescapeString(m[2]))
	}
	return v
}

// signIn shows the sign-in page for params and submits it with username and password, as a
// browser would, and returns the answer to the form.
func (ts *testServer) signIn(t *testing.T, params url.Values, username, password string) page {
	t.Helper()
	p := ts.send(t, "GET", authorizePath+"?"+params.Encode(), nil)
	if p.status != http.StatusOK {
		t.Fatalf("GET authorize = %d %s", p.status, p.body)
	}
	form := hidden(p.body)
	form.Set("username", username)
	form.Set("password", password)
	return ts.send(t, "POST", authorizePath, form)
}

// code signs in with params and returns the code the redirect carries.
func (ts *testServer) code(t *testing.T, params url.Values) string {
	t.Helper()
	p := ts.signIn(t, params, testUser, testPassword)
	u := p.location(t)
	if p.status != http.StatusSeeOther || u == nil || u.Query().Get("code") == "" {
		t.Fatalf("sign-in = %d, Location %v; want 303 with a code\n%s", p.status, u, p.body)
	}
	return u.Query().Get("code")
}

var tokenPath = "/" + testTenant + "/oauth2/v2.0/token"

// redeem exchanges code at the token endpoint.
func (ts *testServer) redeem(t *testing.T, code, redirectURI, verifier string) (int, map[string]any) {
	t.Helper()
	return ts.do(t, "POST", tokenPath, nil, url.Values{
		"grant_type": {"authorization_code"}, "client_id": {portalClientID}, "code": {code},
		"redirect_uri": {redirectURI}, "code_verifier": {verifier}, "scope": {authScope}, "client_info": {"1"},
	})
}

// refresh redeems a refresh token for scope.
func (ts *testServer) refresh(t *testing.T, refreshToken, scope string) (int, map[string]any) {
	t.Helper()
	return ts.do(t, "POST", tokenPath, nil, url.Values{
		"grant_type": {"refresh_token"}, "client_id": {portalClientID}, "refresh_token": {refreshToken},
		"scope": {scope}, "client_info": {"1"},
	})
}

// authenticate runs Authenticate on a request with token.
func (ts *testServer) authenticate(token string) (identity.Principal, error) {
	r, _ := http.NewRequest("GET", ts.URL+"/subscriptions", nil)
	r.Header.Set("Authorization", "Bearer "+token)
	return ts.iss.Authenticate(r)
}

func TestAuthorizationCodeFlow(t *testing.T) {
	ts := newTestServer(t)
	verifier, challenge := pkce(t)
	params := authorizeParams(loopback, challenge)

	// The sign-in page.
	p := ts.send(t, "GET", authorizePath+"?"+params.Encode(), nil)
	if p.status != http.StatusOK {
		t.Fatalf("GET authorize = %d %s", p.status, p.body)
	}
	for h, want := range map[string]string{
		"Content-Type":            "text/html; charset=utf-8",
		"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' http://127.0.0.1:51234; frame-ancestors 'none'",
		"X-Frame-Options":         "DENY",
		"Cache-Control":           "no-store",
	} {
		if got := p.header.Get(h); got != want {
			t.Errorf("GET authorize %s = %q; want %q", h, got, want)
		}
	}
	for _, want := range []string{`<label for="username">Username</label>`, `<label for="password">Password</label>`,
		`<input type="password" id="password" name="password"`, `<button type="submit">Sign in</button>`,
		`<form method="post" action="` + authorizePath + `">`} {
		if !strings.Contains(p.body, want) {
			t.Errorf("sign-in page lacks %s\n%s", want, p.body)
		}
	}
	for _, forbidden := range []string{"<script", "src=", "href=", "@import", "url("} {
		if strings.Contains(p.body, forbidden) {
			t.Errorf("sign-in page has %q; want a self-contained page", forbidden)
		}
	}
	if got := hidden(p.body); got.Encode() != params.Encode() {
		t.Errorf("hidden fields = %v; want the request's parameters %v", got, params)
	}

	// The form redirects with a code and the state.
	form := hidden(p.body)
	form.Set("username", testUser)
	form.Set("password", testPassword)
	p = ts.send(t, "POST", authorizePath, form)
	u := p.location(t)
	if p.status != http.StatusSeeOther || u == nil {
		t.Fatalf("POST authorize = %d %v; want 303", p.status, p.header)
	}
	code := u.Query().Get("code")
	if u.Scheme+"://"+u.Host+u.Path != loopback || len(code) != 43 || u.Query().Get("state") != "st&te" {
		t.Errorf("Location = %s; want %s with a 256-bit code and state", u, loopback)
	}

	// The code buys an access token of a new session, an id token and a refresh token.
	status, body := ts.redeem(t, code, loopback, verifier)
	if status != http.StatusOK {
		t.Fatalf("redeem = %d %v", status, body)
	}
	at := payload(t, body["access_token"].(string))
	sid, _ := at["sid"].(string)
	if at["oid"] != testUserOID || at["aud"] != "https://management.azure.com" || sid == "" {
		t.Errorf("access token claims = %v; want the user's, for ARM, with a sid", at)
	}
	id := payload(t, body["id_token"].(string))
	if id["aud"] != portalClientID || id["nonce"] != "n0nce" || id["sid"] != sid || id["oid"] != testUserOID {
		t.Errorf("id token claims = %v; want aud %s, the nonce and the sid", id, portalClientID)
	}
	if body["client_info"] == nil || body["scope"] != armScope {
		t.Errorf("body = %v; want client_info and scope %s", body, armScope)
	}
	rt1, _ := body["refresh_token"].(string)
	if rt1 == "" {
		t.Fatalf("redeem answered no refresh_token: %v", body)
	}
	access1 := body["access_token"].(string)
	p1, err := ts.authenticate(access1)
	if err != nil {
		t.Fatalf("Authenticate(code's access token): %v", err)
	}
	if want := (identity.Principal{ObjectID: testUserOID, Name: testUser, Kind: identity.KindUser, TenantID: testTenant, SessionID: sid}); p1 != want {
		t.Errorf("Authenticate = %+v; want %+v", p1, want)
	}

	// A refresh rotates the refresh token: the old one stops working.
	status, body = ts.refresh(t, rt1, ts.URL+"/.default openid offline_access")
	if status != http.StatusOK {
		t.Fatalf("refresh = %d %v", status, body)
	}
	rt2, _ := body["refresh_token"].(string)
	if rt2 == "" || rt2 == rt1 {
		t.Errorf("refresh answered refresh_token %.8q…; want a new one", rt2)
	}
	if c := payload(t, body["access_token"].(string)); c["sid"] != sid || c["aud"] != ts.URL {
		t.Errorf("refreshed access token claims = %v; want sid %s and aud %s", c, sid, ts.URL)
	}
	if body["id_token"] == nil || body["client_info"] == nil {
		t.Errorf("refresh = %v; want id_token and client_info", body)
	}
	access2 := body["access_token"].(string)
	if status, body := ts.refresh(t, rt1, armScope); status != http.StatusBadRequest || body["error"] != "invalid_grant" || !hasCode(body, 70008) {
		t.Errorf("refresh with the rotated-out token = %d %v; want 400 invalid_grant AADSTS70008", status, body)
	}

	// Signing out ends the session: its refresh token and its access tokens stop working.
	p = ts.send(t, "POST", "/"+testTenant+"/oauth2/v2.0/logout", url.Values{"refresh_token": {rt2}})
	if p.status != http.StatusNoContent {
		t.Fatalf("POST logout = %d %s; want 204", p.status, p.body)
	}
	if status, body := ts.refresh(t, rt2, armScope); status != http.StatusBadRequest || !hasCode(body, 70008) {
		t.Errorf("refresh after logout = %d %v; want 400 AADSTS70008", status, body)
	}
	for _, tok := range []string{access1, access2} {
		if _, err := ts.iss.Verify(tok); err != nil {
			t.Errorf("Verify(access token) after logout = %v; want ok: Verify does not ask the directory", err)
		}
		if _, err := ts.authenticate(tok); !errors.Is(err, identity.ErrInvalidToken) {
			t.Errorf("Authenticate(access token) after logout = %v; want ErrInvalidToken", err)
		}
	}
}

func TestSignInPageOnSameOrigin(t *testing.T) {
	ts := newTestServer(t)
	_, challenge := pkce(t)
	portal := ts.URL + "/portal/signed-in?x=1"
	p := ts.send(t, "GET", authorizePath+"?"+authorizeParams(portal, challenge).Encode(), nil)
	if p.status != http.StatusOK || p.header.Get("Content-Security-Policy") != wantCSP {
		t.Errorf("GET authorize for the portal = %d, CSP %q; want 200, %q", p.status, p.header.Get("Content-Security-Policy"), wantCSP)
	}
	_, challenge = pkce(t)
	u := ts.signIn(t, authorizeParams(portal, challenge), testUser, testPassword).location(t)
	if u == nil || u.Path != "/portal/signed-in" || u.Query().Get("x") != "1" || u.Query().Get("code") == "" {
		t.Errorf("sign-in redirect = %v; want the portal URL, its query kept, with a code", u)
	}
}

func TestRedirectURIRules(t *testing.T) {
	ts := newTestServer(t)
	host := strings.TrimPrefix(ts.URL, "https://")
	_, port, _ := strings.Cut(host, ":")
	tests := []struct {
		uri string
		ok  bool
	}{
		{ts.URL + "/portal/", true},
		{ts.URL + "/portal/cb?a=b", true},
		{"HTTPS://" + host + "/x", true},
		{"http://127.0.0.1:1/cb", true},
		{"http://127.0.0.1/cb", true},
		{"http://localhost:65535/", true},
		{"http://LOCALHOST:8400", true},
		{"http://[::1]:8080/cb", true},
		{"https://localhost:" + port + "/", false}, // another host than the authority's
		{"https://127.0.0.1:1/", false},            // another port
		{"https://127.0.0.1/", false},
		{"https://evil.example/cb", false},
		{"http://evil.example:51234/cb", false},
		{"http://127.0.0.2:1/cb", false},
		{"http://127.0.0.1.evil.example/", false},
		{"http://localhost.evil.example:80/", false},
		{"http://127.0.0.1@evil.example/", false},
		{"http://127.0.0.1:1\\@evil.example/", false},
		{"https://user@" + host + "/", false},
		{"http://127.0.0.1:1/cb#fragment", false},
		{"//127.0.0.1:1/cb", false},
		{"/portal/", false},
		{"ftp://127.0.0.1/", false},
		{"javascript:alert(1)", false},
		{"http:127.0.0.1:1", false},
	}
	for _, tt := range tests {
		_, challenge := pkce(t)
		p := ts.send(t, "GET", authorizePath+"?"+authorizeParams(tt.uri, challenge).Encode(), nil)
		switch {
		case tt.ok && p.status != http.StatusOK:
			t.Errorf("redirect_uri %q: GET authorize = %d; want 200\n%s", tt.uri, p.status, p.body)
		case !tt.ok && (p.status != http.StatusBadRequest || p.location(t) != nil || !strings.Contains(p.body, "AADSTS50011")):
			t.Errorf("redirect_uri %q: GET authorize = %d, Location %q; want a 400 error page (AADSTS50011), no redirect", tt.uri, p.status, p.header.Get("Location"))
		}
	}
}

// TestAuthorizeRefusals: errors about the client or the redirect URI are shown on a page and
// never redirected; the others are sent to the redirect URI with the state.
func TestAuthorizeRefusals(t *testing.T) {
	ts := newTestServer(t)
	_, challenge := pkce(t)
	tests := []struct {
		name   string
		tenant string
		edit   func(url.Values)
		error  string // "" for an error page
		code   string // AADSTS code in the page or the description
	}{
		{"plain method", testTenant, func(v url.Values) { v.Set("code_challenge_method", "plain") }, "invalid_request", "AADSTS90023"},
		{"no method", testTenant, func(v url.Values) { v.Del("code_challenge_method") }, "invalid_request", "AADSTS90023"},
		{"no challenge", testTenant, func(v url.Values) { v.Del("code_challenge") }, "invalid_request", "AADSTS9002325"},
		{"short challenge", testTenant, func(v url.Values) { v.Set("code_challenge", "abc") }, "invalid_request", "AADSTS501491"},
		{"token response type", testTenant, func(v url.Values) { v.Set("response_type", "token") }, "unsupported_response_type", "AADSTS700054"},
		{"no response type", testTenant, func(v url.Values) { v.Del("response_type") }, "invalid_request", "AADSTS900144"},
		{"fragment response mode", testTenant, func(v url.Values) { v.Set("response_mode", "fragment") }, "invalid_request", "AADSTS90023"},
		{"prompt none", testTenant, func(v url.Values) { v.Set("prompt", "none") }, "login_required", "AADSTS50058"},
		{"unknown resource", testTenant, func(v url.Values) { v.Set("scope", "https://graph.microsoft.com/.default openid") }, "invalid_scope", "AADSTS70011"},
		{"no scope", testTenant, func(v url.Values) { v.Del("scope") }, "invalid_request", "AADSTS900144"},
		{"no client id", testTenant, func(v url.Values) { v.Del("client_id") }, "", "AADSTS900144"},
		{"no redirect uri", testTenant, func(v url.Values) { v.Del("redirect_uri") }, "", "AADSTS900144"},
		{"foreign redirect uri", testTenant, func(v url.Values) { v.Set("redirect_uri", "https://evil.example/cb") }, "", "AADSTS50011"},
		{"unknown tenant", "contoso.onmicrosoft.com", nil, "", "AADSTS90002"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			params := authorizeParams(loopback, challenge)
			if tt.edit != nil {
				tt.edit(params)
			}
			for _, method := range []string{"GET", "POST"} {
				var p page
				path := "/" + tt.tenant + "/oauth2/v2.0/authorize"
				if method == "GET" {
					p = ts.send(t, method, path+"?"+params.Encode(), nil)
				} else { // the hidden fields, tampered with
					form := url.Values{"username": {testUser}, "password": {testPassword}}
					for k, v := range params {
						form[k] = v
					}
					p = ts.send(t, method, path, form)
				}
				u := p.location(t)
				if tt.error == "" {
					if p.status != http.StatusBadRequest || u != nil || !strings.Contains(p.body, tt.code) ||
						p.header.Get("Content-Security-Policy") != wantCSP || p.header.Get("X-Frame-Options") != "DENY" {
						t.Errorf("%s = %d, Location %v; want a 400 error page with %s, no redirect\n%s", method, p.status, u, tt.code, p.body)
					}
					continue
				}
				if p.status != http.StatusSeeOther || u == nil || u.Scheme+"://"+u.Host+u.Path != loopback {
					t.Fatalf("%s = %d, Location %v; want a redirect to %s\n%s", method, p.status, u, loopback, p.body)
				}
				q := u.Query()
				if q.Get("error") != tt.error || !strings.HasPrefix(q.Get("error_description"), tt.code+": ") || q.Get("state") != "st&te" || q.Has("code") {
					t.Errorf("%s redirect query = %v; want error %s, %s, the state, no code", method, q, tt.error, tt.code)
				}
			}
		})
	}
}

func TestSignInFormErrors(t *testing.T) {
	ts := newTestServerWith(t, serverOptions{signIn: identity.SignInLimits{PerLoginAddress: 2, PerAddress: 100, PerLogin: 100}})
	_, challenge := pkce(t)
	params := authorizeParams(loopback, challenge)
	const wrong = "Tr0ub4dor&3-wrong"

	p := ts.signIn(t, params, testUser, wrong)
	if p.status != http.StatusBadRequest || p.location(t) != nil ||
		!strings.Contains(p.body, "AADSTS50126: Error validating credentials due to invalid username or password.") {
		t.Errorf("wrong password = %d, Location %q; want the page again with AADSTS50126\n%s", p.status, p.header.Get("Location"), p.body)
	}
	if strings.Contains(p.body, html.EscapeString(wrong)) || strings.Contains(p.body, "Tr0ub4dor") {
		t.Errorf("the page echoes the password\n%s", p.body)
	}
	if !strings.Contains(p.body, `value="`+testUser+`"`) || hidden(p.body).Encode() != params.Encode() {
		t.Errorf("the page again lacks the username or the request's parameters\n%s", p.body)
	}

	if p := ts.signIn(t, params, "", ""); p.status != http.StatusBadRequest || !strings.Contains(p.body, "Enter your username and password.") {
		t.Errorf("empty form = %d; want 400 asking for username and password\n%s", p.status, p.body)
	}

	// The password grant's throttle: a second failure locks the login at this address, for
	// both the page and the token endpoint.
	ts.signIn(t, params, testUser, wrong)
	p = ts.signIn(t, params, testUser, testPassword)
	if p.location(t) != nil || !strings.Contains(p.body, "AADSTS50053") || p.header.Get("Retry-After") == "" {
		t.Errorf("right password after 2 failures = %d %v; want the page with AADSTS50053 and Retry-After\n%s", p.status, p.header, p.body)
	}
	status, body := ts.do(t, "POST", tokenPath, nil, url.Values{"grant_type": {"password"}, "client_id": {portalClientID},
		"username": {testUser}, "password": {testPassword}, "scope": {armScope}})
	if status != http.StatusBadRequest || !hasCode(body, 50053) {
		t.Errorf("password grant after 2 failures on the page = %d %v; want AADSTS50053", status, body)
	}

	// The form body is bounded.
	form := hidden(ts.send(t, "GET", authorizePath+"?"+params.Encode(), nil).body)
	form.Set("password", strings.Repeat("x", 1<<20))
	if p := ts.send(t, "POST", authorizePath, form); p.status != http.StatusRequestEntityTooLarge || p.location(t) != nil {
		t.Errorf("1 MiB form = %d; want a 413 page", p.status)
	}
}

func TestCodeRedemption(t *testing.T) {
	clock := &testClock{t: time.Now()}
	ts := newTestServerWith(t, serverOptions{now: clock.now})
	newCode := func(t *testing.T, redirectURI string) (code, verifier string) {
		t.Helper()
		verifier, challenge := pkce(t)
		return ts.code(t, authorizeParams(redirectURI, challenge)), verifier
	}
	form := func(code, verifier string, edit func(url.Values)) url.Values {
		v := url.Values{"grant_type": {"authorization_code"}, "client_id": {portalClientID}, "code": {code},
			"redirect_uri": {loopback}, "code_verifier": {verifier}, "scope": {authScope}}
		if edit != nil {
			edit(v)
		}
		return v
	}

	t.Run("replay", func(t *testing.T) {
		code, verifier := newCode(t, loopback)
		status, body := ts.redeem(t, code, loopback, verifier)
		if status != http.StatusOK {
			t.Fatalf("redeem = %d %v", status, body)
		}
		status, replay := ts.redeem(t, code, loopback, verifier)
		if status != http.StatusBadRequest || replay["error"] != "invalid_grant" || !hasCode(replay, 54005) ||
			!strings.Contains(replay["error_description"].(string), "OAuth2 Authorization code was already redeemed") {
			t.Errorf("replayed code = %d %v; want 400 invalid_grant AADSTS54005", status, replay)
		}
		// The tokens the code bought are revoked.
		if status, _ := ts.refresh(t, body["refresh_token"].(string), armScope); status != http.StatusBadRequest {
			t.Errorf("refresh token of a replayed code = %d; want 400", status)
		}
		if _, err := ts.authenticate(body["access_token"].(string)); !errors.Is(err, identity.ErrInvalidToken) {
			t.Errorf("Authenticate(access token of a replayed code) = %v; want ErrInvalidToken", err)
		}
	})

	// Each case gets its own code: a failed redemption uses the code up.
	tests := []struct {
		name  string
		edit  func(v url.Values, verifier string)
		error string
		code  int
	}{
		{"wrong verifier", func(v url.Values, _ string) { v.Set("code_verifier", newRefreshToken()) }, "invalid_grant", 501481},
		{"verifier too short", func(v url.Values, _ string) { v.Set("code_verifier", "abc") }, "invalid_grant", 501481},
		{"challenge as verifier", func(v url.Values, verifier string) {
			sum := sha256.Sum256([]byte(verifier))
			v.Set("code_verifier", base64.RawURLEncoding.EncodeToString(sum[:]))
		}, "invalid_grant", 501481},
		{"no verifier", func(v url.Values, _ string) { v.Del("code_verifier") }, "invalid_request", 900144},
		{"no redirect uri", func(v url.Values, _ string) { v.Del("redirect_uri") }, "invalid_request", 900144},
		{"unknown code", func(v url.Values, _ string) { v.Set("code", newRefreshToken()) }, "invalid_grant", 70000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, verifier := newCode(t, loopback)
			status, body := ts.do(t, "POST", tokenPath, nil, form(code, verifier, func(v url.Values) { tt.edit(v, verifier) }))
			if status != http.StatusBadRequest || body["error"] != tt.error || !hasCode(body, tt.code) || body["access_token"] != nil {
				t.Errorf("redeem = %d %v; want 400 %s AADSTS%d", status, body, tt.error, tt.code)
			}
		})
	}
	t.Run("wrong verifier text", func(t *testing.T) {
		code, _ := newCode(t, loopback)
		_, body := ts.do(t, "POST", tokenPath, nil, form(code, newRefreshToken(), nil))
		if d, _ := body["error_description"].(string); !strings.Contains(d, "The Code_Verifier does not match the code_challenge supplied in the authorization request.") {
			t.Errorf("error_description = %q; want Entra's PKCE message", d)
		}
	})

	// Codes are bound to their client, redirect URI and resource; a failed redemption uses the
	// code up.
	for _, tt := range []struct {
		name  string
		edit  func(url.Values)
		error string
		code  int
	}{
		{"other client", func(v url.Values) { v.Set("client_id", "04b07795-8ddb-461a-bbee-02f9e1bf7b46") }, "invalid_grant", 70000},
		{"other redirect uri", func(v url.Values) { v.Set("redirect_uri", "http://127.0.0.1:51235/callback") }, "invalid_grant", 50011},
		{"other resource", func(v url.Values) { v.Set("scope", "https://management.core.windows.net//.default") }, "invalid_scope", 70011},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, verifier := newCode(t, loopback)
			status, body := ts.do(t, "POST", tokenPath, nil, form(code, verifier, tt.edit))
			if status != http.StatusBadRequest || body["error"] != tt.error || !hasCode(body, tt.code) {
				t.Errorf("redeem = %d %v; want 400 %s AADSTS%d", status, body, tt.error, tt.code)
			}
			if status, body := ts.redeem(t, code, loopback, verifier); !hasCode(body, 54005) {
				t.Errorf("redeem after a failed redemption = %d %v; want AADSTS54005", status, body)
			}
		})
	}

	t.Run("expired", func(t *testing.T) {
		code, verifier := newCode(t, loopback)
		clock.advance(5*time.Minute + time.Second)
		status, body := ts.redeem(t, code, loopback, verifier)
		if status != http.StatusBadRequest || body["error"] != "invalid_grant" || !hasCode(body, 70008) {
			t.Errorf("redeem after 5 minutes = %d %v; want 400 invalid_grant AADSTS70008", status, body)
		}
	})

	t.Run("just in time", func(t *testing.T) {
		code, verifier := newCode(t, loopback)
		clock.advance(5*time.Minute - time.Second)
		if status, body := ts.redeem(t, code, loopback, verifier); status != http.StatusOK {
			t.Errorf("redeem within 5 minutes = %d %v; want 200", status, body)
		}
	})
}

// TestPendingCodesAreBounded: at most MaxPendingCodes codes are kept; once full, sign-ins are
// refused with temporarily_unavailable until codes expire.
func TestPendingCodesAreBounded(t *testing.T) {
	clock := &testClock{t: time.Now()}
	ts := newTestServerWith(t, serverOptions{now: clock.now, maxPendingCodes: 3})
	_, challenge := pkce(t)
	params := authorizeParams(loopback, challenge)
	for range 3 {
		ts.code(t, params)
	}
	p := ts.signIn(t, params, testUser, testPassword)
	u := p.location(t)
	if p.status != http.StatusSeeOther || u == nil || u.Query().Get("error") != "temporarily_unavailable" || u.Query().Has("code") ||
		u.Query().Get("state") != "st&te" {
		t.Fatalf("fourth sign-in with 3 codes pending = %d, Location %v; want a redirect with temporarily_unavailable", p.status, u)
	}
	clock.advance(5 * time.Minute)
	ts.code(t, params) // the expired codes make room
}

func TestRefreshTokenGrant(t *testing.T) {
	ts := newTestServer(t)
	password := func(scope string) (int, map[string]any) {
		return ts.do(t, "POST", tokenPath, nil, url.Values{"grant_type": {"password"}, "client_id": {portalClientID},
			"username": {testUser}, "password": {testPassword}, "scope": {scope}, "client_info": {"1"}})
	}

	status, body := password(armScope)
	if status != http.StatusOK || body["refresh_token"] != nil || payload(t, body["access_token"].(string))["sid"] != nil {
		t.Errorf("password grant without offline_access = %d %v; want no refresh token and no sid", status, body)
	}

	status, body = password(armScope + " offline_access")
	if status != http.StatusOK {
		t.Fatalf("password grant = %d %v", status, body)
	}
	rt, _ := body["refresh_token"].(string)
	sid := payload(t, body["access_token"].(string))["sid"]
	if rt == "" || sid == nil {
		t.Fatalf("password grant with offline_access = %v; want a refresh token and a sid", body)
	}

	status, body = ts.refresh(t, rt, "https://management.core.windows.net//.default offline_access")
	if status != http.StatusOK {
		t.Fatalf("refresh = %d %v", status, body)
	}
	if c := payload(t, body["access_token"].(string)); c["sid"] != sid || c["aud"] != "https://management.core.windows.net/" || c["upn"] != testUser {
		t.Errorf("refreshed claims = %v; want sid %v, the classic audience, the user", c, sid)
	}
	if body["id_token"] != nil {
		t.Errorf("refresh without openid answered an id_token")
	}
	rt = body["refresh_token"].(string)

	for _, tt := range []struct {
		name   string
		form   url.Values
		status int
		error  string
		code   int
	}{
		{"unknown", url.Values{"refresh_token": {"nope"}, "scope": {armScope}}, 400, "invalid_grant", 70008},
		{"no refresh token", url.Values{"scope": {armScope}}, 400, "invalid_request", 900144},
		{"no scope", url.Values{"refresh_token": {rt}}, 400, "invalid_request", 900144},
		{"unknown resource", url.Values{"refresh_token": {rt}, "scope": {"https://graph.microsoft.com/.default"}}, 400, "invalid_scope", 70011},
		{"directory failure", url.Values{"refresh_token": {brokenRefreshToken}, "scope": {armScope}}, 500, "temporarily_unavailable", 50000},
	} {
		tt.form.Set("grant_type", "refresh_token")
		tt.form.Set("client_id", portalClientID)
		status, body := ts.do(t, "POST", tokenPath, nil, tt.form)
		if status != tt.status || body["error"] != tt.error || !hasCode(body, tt.code) {
			t.Errorf("refresh (%s) = %d %v; want %d %s AADSTS%d", tt.name, status, body, tt.status, tt.error, tt.code)
		}
	}

	// A disabled user's refresh token and access tokens stop working.
	status, body = ts.refresh(t, rt, armScope)
	if status != http.StatusOK {
		t.Fatalf("refresh = %d %v", status, body)
	}
	access := body["access_token"].(string)
	ts.dir.disable(testUserOID)
	if status, body := ts.refresh(t, body["refresh_token"].(string), armScope); status != http.StatusBadRequest || !hasCode(body, 70008) {
		t.Errorf("refresh of a disabled user = %d %v; want 400 AADSTS70008", status, body)
	}
	if _, err := ts.authenticate(access); !errors.Is(err, identity.ErrInvalidToken) {
		t.Errorf("Authenticate(disabled user's token) = %v; want ErrInvalidToken", err)
	}
}

func TestLogout(t *testing.T) {
	ts := newTestServer(t)
	logout := "/" + testTenant + "/oauth2/v2.0/logout"

	p := ts.send(t, "GET", logout, nil)
	if p.status != http.StatusOK || !strings.Contains(p.body, "You have signed out") || p.header.Get("Content-Security-Policy") != wantCSP {
		t.Errorf("GET logout = %d %v; want the signed-out page\n%s", p.status, p.header, p.body)
	}
	p = ts.send(t, "GET", logout+"?"+url.Values{"post_logout_redirect_uri": {ts.URL + "/portal/"}, "state": {"s1"}}.Encode(), nil)
	if u := p.location(t); p.status != http.StatusSeeOther || u == nil || u.String() != ts.URL+"/portal/?state=s1" {
		t.Errorf("GET logout with the portal as post_logout_redirect_uri = %d, Location %v; want 303 to it with the state", p.status, u)
	}
	p = ts.send(t, "GET", logout+"?"+url.Values{"post_logout_redirect_uri": {"https://evil.example/"}}.Encode(), nil)
	if p.status != http.StatusBadRequest || p.location(t) != nil || !strings.Contains(p.body, "AADSTS50011") {
		t.Errorf("GET logout with a foreign post_logout_redirect_uri = %d %v; want a 400 page, no redirect", p.status, p.header)
	}
	if p := ts.send(t, "GET", "/contoso/oauth2/v2.0/logout", nil); p.status != http.StatusBadRequest {
		t.Errorf("GET logout of an unknown tenant = %d; want 400", p.status)
	}

	session := func() (refreshToken, accessToken string) {
		status, body := ts.do(t, "POST", tokenPath, nil, url.Values{"grant_type": {"password"}, "client_id": {portalClientID},
			"username": {testUser}, "password": {testPassword}, "scope": {armScope + " offline_access"}})
		if status != http.StatusOK {
			t.Fatalf("password grant = %d %v", status, body)
		}
		return body["refresh_token"].(string), body["access_token"].(string)
	}
	rt, at := session()
	otherRT, otherAT := session()
	p = ts.send(t, "POST", logout, url.Values{"refresh_token": {rt}, "post_logout_redirect_uri": {loopback}})
	if u := p.location(t); p.status != http.StatusSeeOther || u == nil || u.String() != loopback {
		t.Errorf("POST logout with post_logout_redirect_uri = %d, Location %v; want 303 to %s", p.status, u, loopback)
	}
	if _, err := ts.authenticate(at); !errors.Is(err, identity.ErrInvalidToken) {
		t.Errorf("Authenticate(signed-out session's token) = %v; want ErrInvalidToken", err)
	}
	// Other sessions of the user go on.
	if _, err := ts.authenticate(otherAT); err != nil {
		t.Errorf("Authenticate(another session's token) = %v; want ok", err)
	}
	if status, _ := ts.refresh(t, otherRT, armScope); status != http.StatusOK {
		t.Errorf("refresh of another session = %d; want 200", status)
	}
	// Signing out twice, or with an unknown token, is fine.
	for _, tok := range []string{rt, "unknown"} {
		if p := ts.send(t, "POST", logout, url.Values{"refresh_token": {tok}}); p.status != http.StatusNoContent {
			t.Errorf("POST logout again = %d %s; want 204", p.status, p.body)
		}
	}
	status, body := ts.do(t, "POST", logout, nil, url.Values{"post_logout_redirect_uri": {loopback}})
	if status != http.StatusBadRequest || !hasCode(body, 900144) {
		t.Errorf("POST logout without refresh_token = %d %v; want 400 AADSTS900144", status, body)
	}
	status, body = ts.do(t, "POST", logout, nil, url.Values{"refresh_token": {otherRT}, "post_logout_redirect_uri": {"https://evil.example/"}})
	if status != http.StatusBadRequest || !hasCode(body, 50011) {
		t.Errorf("POST logout with a foreign post_logout_redirect_uri = %d %v; want 400 AADSTS50011", status, body)
	}
}

func TestOpenIDConfigurationAdvertisesCodeFlow(t *testing.T) {
	ts := newTestServer(t)
	status, doc := ts.do(t, "GET", "/"+testTenant+"/v2.0/.well-known/openid-configuration", nil, nil)
	if status != http.StatusOK {
		t.Fatalf("GET = %d %v", status, doc)
	}
	b, _ := json.Marshal(map[string]any{"g": doc["grant_types_supported"], "c": doc["code_challenge_methods_supported"]})
	want := `{"c":["S256"],"g":["authorization_code","refresh_token","client_credentials","password"]}`
	if string(b) != want {
		t.Errorf("grant types and code challenge methods = %s; want %s", b, want)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestSecretsAreNotLogged runs every flow, failing and succeeding, and checks that no password,
// client secret, code, code verifier, refresh token or access token reaches the log.
func TestSecretsAreNotLogged(t *testing.T) {
	var log syncBuffer
	logger := slog.New(slog.NewTextHandler(io.MultiWriter(&log, t.Output()), &slog.HandlerOptions{Level: slog.LevelDebug}))
	ts := newTestServerWith(t, serverOptions{logger: logger})
	secrets := []string{testPassword, testSecret}
	keep := func(body map[string]any) {
		for _, k := range []string{"access_token", "refresh_token", "id_token"} {
			if s, _ := body[k].(string); s != "" {
				secrets = append(secrets, s)
			}
		}
	}

	// Password and client credentials grants, good and bad.
	const wrongPassword, wrongSecret = "wrong-password-5f1e", "wrong-secret-0123456789abcdefghijklmnop"
	secrets = append(secrets, wrongPassword, wrongSecret)
	_, body := ts.do(t, "POST", tokenPath, nil, url.Values{"grant_type": {"password"}, "client_id": {portalClientID},
		"username": {testUser}, "password": {testPassword}, "scope": {authScope}})
	keep(body)
	ts.do(t, "POST", tokenPath, nil, url.Values{"grant_type": {"password"}, "client_id": {portalClientID},
		"username": {testUser}, "password": {wrongPassword}, "scope": {authScope}})
	_, body = ts.do(t, "POST", tokenPath, nil, url.Values{"grant_type": {"client_credentials"}, "client_id": {testClientID},
		"client_secret": {testSecret}, "scope": {armScope}})
	keep(body)
	ts.do(t, "POST", tokenPath, nil, url.Values{"grant_type": {"client_credentials"}, "client_id": {testClientID},
		"client_secret": {wrongSecret}, "scope": {armScope}})

	// The code flow: a wrong password, a code, refresh, a stale refresh, sign-out.
	newCode := func() (code, verifier string) {
		verifier, challenge := pkce(t)
		code = ts.code(t, authorizeParams(loopback, challenge))
		secrets = append(secrets, code, verifier)
		return code, verifier
	}
	_, challenge := pkce(t)
	ts.signIn(t, authorizeParams(loopback, challenge), testUser, wrongPassword)
	code, verifier := newCode()
	_, body = ts.redeem(t, code, loopback, verifier)
	keep(body)
	rt := body["refresh_token"].(string)
	_, body = ts.refresh(t, rt, armScope)
	keep(body)
	ts.refresh(t, rt, armScope)
	ts.send(t, "POST", "/"+testTenant+"/oauth2/v2.0/logout", url.Values{"refresh_token": {body["refresh_token"].(string)}})
	ts.refresh(t, body["refresh_token"].(string), armScope)

	// A wrong verifier; a replayed code.
	code, _ = newCode()
	ts.redeem(t, code, loopback, newRefreshToken())
	code, verifier = newCode()
	_, body = ts.redeem(t, code, loopback, verifier)
	keep(body)
	ts.redeem(t, code, loopback, verifier)

	got := log.String()
	for _, want := range []string{"token issued", "authorization code issued", "token request failed", "sign-in refused", "session signed out"} {
		if !strings.Contains(got, want) {
			t.Errorf("log lacks %q: the flows did not run as planned", want)
		}
	}
	for _, s := range secrets {
		if strings.Contains(got, s) || strings.Contains(got, url.QueryEscape(s)) {
			t.Errorf("log contains the secret %.12q…", s)
		}
	}
}

// TestFormPostResponseMode: with response_mode=form_post the answer, a code or an error, comes
// as a page whose form posts it to the redirect URI; its one script, which submits the form,
// is allowed by its hash alone.
func TestFormPostResponseMode(t *testing.T) {
	ts := newTestServer(t)
	_, challenge := pkce(t)
	params := authorizeParams(loopback, challenge)
	params.Set("response_mode", "form_post")
	script := regexp.MustCompile(`<script>([^<]*)</script>`)
	check := func(t *testing.T, p page) url.Values {
		t.Helper()
		if p.status != http.StatusOK || p.location(t) != nil {
			t.Fatalf("answer = %d, Location %q; want 200, no redirect", p.status, p.header.Get("Location"))
		}
		if !strings.Contains(p.body, `<form method="post" action="`+loopback+`">`) || !strings.Contains(p.body, `<button type="submit">Continue</button>`) {
			t.Errorf("answer lacks a form to %s with a Continue button\n%s", loopback, p.body)
		}
		m := script.FindStringSubmatch(p.body)
		if m == nil {
			t.Fatalf("answer has no script\n%s", p.body)
		}
		sum := sha256.Sum256([]byte(m[1]))
		want := "default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) +
			"'; form-action 'self' http://127.0.0.1:51234; frame-ancestors 'none'"
		if got := p.header.Get("Content-Security-Policy"); got != want {
			t.Errorf("CSP = %q; want %q", got, want)
		}
		return hidden(p.body)
	}

	got := check(t, ts.signIn(t, params, testUser, testPassword))
	if len(got["code"]) != 1 || len(got.Get("code")) != 43 || got.Get("state") != "st&te" || len(got) != 2 {
		t.Errorf("posted fields = %v; want code and state", got)
	}

	params.Set("code_challenge_method", "plain")
	got = check(t, ts.send(t, "GET", authorizePath+"?"+params.Encode(), nil))
	if got.Get("error") != "invalid_request" || !strings.HasPrefix(got.Get("error_description"), "AADSTS90023: ") || got.Get("state") != "st&te" || got.Has("code") {
		t.Errorf("posted fields = %v; want invalid_request AADSTS90023 and the state", got)
	}
}

// keeperDirectory is the fake directory with codes of its own (a CodeKeeper), as a directory
// over a shared store has: it issues "k.<random>" and answers with the errors it is told to.
type keeperDirectory struct {
	*fakeDirectory

	mu        sync.Mutex
	codes     map[string]identity.Code // by code; guarded by mu
	issueErr  error                    // if set, IssueCode fails with it; guarded by mu
	redeemErr error                    // if set, RedeemCode fails with it; guarded by mu
}

var _ identity.CodeKeeper = (*keeperDirectory)(nil)

func (d *keeperDirectory) IssueCode(ctx context.Context, c identity.Code) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.issueErr != nil {
		return "", d.issueErr
	}
	code := "k." + newRefreshToken()
	d.codes[code] = c
	return code, nil
}

func (d *keeperDirectory) RedeemCode(ctx context.Context, code string, check func(identity.Code) error) (identity.Principal, string, error) {
	d.mu.Lock()
	c, ok := d.codes[code]
	delete(d.codes, code)
	err := d.redeemErr
	d.mu.Unlock()
	switch {
	case err != nil:
		return identity.Principal{}, "", err
	case !ok:
		return identity.Principal{}, "", identity.ErrCodeInvalid
	}
	if err := check(c); err != nil {
		return identity.Principal{}, "", err
	}
	sid, rt, err := d.StartSession(ctx, c.Principal)
	p := c.Principal
	p.SessionID = sid
	return p, rt, err
}

func (d *keeperDirectory) fail(issue, redeem error) {
	d.mu.Lock()
	d.issueErr, d.redeemErr = issue, redeem
	d.mu.Unlock()
}

// TestCodeKeeper: an Issuer whose Directory keeps codes issues and redeems them there, checks
// the token request inside the redemption, and answers the directory's errors as OAuth ones.
func TestCodeKeeper(t *testing.T) {
	clock := &testClock{t: time.Now()}
	var keeper *keeperDirectory
	ts := newTestServerWith(t, serverOptions{now: clock.now, directory: func(d *fakeDirectory) identity.Directory {
		keeper = &keeperDirectory{fakeDirectory: d, codes: map[string]identity.Code{}}
		return keeper
	}})
	verifier, challenge := pkce(t)
	code := ts.code(t, authorizeParams(loopback, challenge))
	keeper.mu.Lock()
	c, ok := keeper.codes[code]
	keeper.mu.Unlock()
	want := identity.Code{ClientID: portalClientID, RedirectURI: loopback, Challenge: challenge, Scope: authScope, Nonce: "n0nce",
		Principal: user, Expires: clock.now().Add(5 * time.Minute)}
	if !ok || c != want {
		t.Fatalf("code %q kept as %+v, %t; want %+v", code, c, ok, want)
	}
	status, body := ts.redeem(t, code, loopback, verifier)
	if status != http.StatusOK || body["refresh_token"] == nil || body["id_token"] == nil {
		t.Fatalf("redeem = %d %v; want 200 with refresh and ID tokens", status, body)
	}
	if p, err := ts.authenticate(body["access_token"].(string)); err != nil || p.SessionID == "" {
		t.Errorf("Authenticate(the code's access token) = %+v, %v; want a session", p, err)
	}
	if claims := payload(t, body["id_token"].(string)); claims["nonce"] != "n0nce" {
		t.Errorf("id_token nonce = %v; want n0nce", claims["nonce"])
	}

	// The request is checked inside the redemption.
	code = ts.code(t, authorizeParams(loopback, challenge))
	if status, body := ts.redeem(t, code, loopback, newRefreshToken()); status != http.StatusBadRequest || !hasCode(body, 501481) {
		t.Errorf("redeem with a wrong verifier = %d %v; want 400 AADSTS501481", status, body)
	}

	for _, tt := range []struct {
		err    error
		status int
		code   string
		aadsts int
	}{
		{identity.ErrCodeInvalid, http.StatusBadRequest, "invalid_grant", 70000},
		{fmt.Errorf("redeem: %w", identity.ErrCodeExpired), http.StatusBadRequest, "invalid_grant", 70008},
		{identity.ErrCodeRedeemed, http.StatusBadRequest, "invalid_grant", 54005},
		{identity.ErrInvalidCredentials, http.StatusBadRequest, "invalid_grant", 50057},
		{errors.New("store unavailable"), http.StatusInternalServerError, "temporarily_unavailable", 50000},
	} {
		keeper.fail(nil, tt.err)
		code := ts.code(t, authorizeParams(loopback, challenge))
		if status, body := ts.redeem(t, code, loopback, verifier); status != tt.status || body["error"] != tt.code || !hasCode(body, tt.aadsts) {
			t.Errorf("redeem when RedeemCode fails with %v = %d %v; want %d %s AADSTS%d", tt.err, status, body, tt.status, tt.code, tt.aadsts)
		}
	}

	// Too many codes pending: the sign-in goes back to the client with temporarily_unavailable.
	keeper.fail(fmt.Errorf("issue: %w", identity.ErrTooManyCodes), nil)
	p := ts.signIn(t, authorizeParams(loopback, challenge), testUser, testPassword)
	if u := p.location(t); p.status != http.StatusSeeOther || u == nil || u.Query().Get("error") != "temporarily_unavailable" || u.Query().Has("code") {
		t.Errorf("sign-in with too many codes pending = %d, Location %v; want a redirect with temporarily_unavailable", p.status, u)
	}
	keeper.fail(identity.ErrInvalidCredentials, nil)
	if p := ts.signIn(t, authorizeParams(loopback, challenge), testUser, testPassword); p.status != http.StatusBadRequest || p.location(t) != nil ||
		!strings.Contains(p.body, "AADSTS50057") {
		t.Errorf("sign-in of a user disabled meanwhile = %d, Location %v; want the sign-in page, 400, AADSTS50057", p.status, p.location(t))
	}
	keeper.fail(errors.New("store unavailable"), nil)
	if p := ts.signIn(t, authorizeParams(loopback, challenge), testUser, testPassword); p.status != http.StatusInternalServerError || p.location(t) != nil {
		t.Errorf("sign-in when IssueCode fails = %d, Location %v; want the sign-in page, 500", p.status, p.location(t))
	}
}
