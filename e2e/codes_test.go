package e2e

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// codeRedirectURI is where the sign-ins of these tests send their codes: a loopback URL that
// nothing serves; the tests read the code from the redirect.
const codeRedirectURI = "http://127.0.0.1:9/callback"

// codeClientID is the client of these sign-ins: any client id is a public client.
const codeClientID = "7c1e6d3a-5b2f-4e8d-9a10-3f4b5c6d7e8f"

// audience returns the ARM audience of in's tokens: its public URL, if it has one.
func (in *instance) audience() string {
	if in.cfg.PublicURL != "" {
		return strings.TrimSuffix(in.cfg.PublicURL, "/")
	}
	return in.boot.ARMEndpoint
}

// browserClient returns a client of in that does not follow redirects, as a browser sending a
// code to a native app's loopback URL would, and the test reads them.
func (in *instance) browserClient() *http.Client {
	c := in.httpClient()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c
}

var hiddenInput = regexp.MustCompile(`<input type="hidden" name="([^"]*)" value="([^"]*)">`)

// authorizationCode signs in at in's authorize endpoint as the bootstrap user, with a PKCE
// challenge, as a browser fills in the sign-in page, and returns the code and its verifier.
func (in *instance) authorizationCode(t *testing.T) (code, verifier string) {
	t.Helper()
	verifier = rand.Text() + rand.Text() // 52 base32 characters: a good code_verifier
	sum := sha256.Sum256([]byte(verifier))
	params := url.Values{
		"client_id": {codeClientID}, "response_type": {"code"}, "redirect_uri": {codeRedirectURI},
		"scope": {in.audience() + "/.default openid profile offline_access"}, "state": {"st"}, "nonce": {"n0nce"},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
	}
	authorize := in.boot.AuthorityHost + "/" + in.boot.TenantID + "/oauth2/v2.0/authorize"
	c := in.browserClient()
	resp, err := c.Get(authorize + "?" + params.Encode())
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET authorize = %d %s", resp.StatusCode, page)
	}
	form := url.Values{}
	for _, m := range hiddenInput.FindAllStringSubmatch(string(page), -1) {
		form.Set(html.UnescapeString(m[1]), html.UnescapeString(m[2]))
	}
	form.Set("username", in.boot.Username)
	form.Set("password", in.boot.Password)
	resp, err = c.PostForm(authorize, form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := resp.Location()
	if resp.StatusCode != http.StatusSeeOther || err != nil || !strings.HasPrefix(loc.String(), codeRedirectURI+"?") ||
		loc.Query().Get("code") == "" || loc.Query().Get("state") != "st" {
		t.Fatalf("sign-in = %d, Location %v (%v); want 303 to %s with a code and the state", resp.StatusCode, loc, err, codeRedirectURI)
	}
	return loc.Query().Get("code"), verifier
}

// postToken sends a token request to in's token endpoint and returns the status and the
// decoded answer.
func (in *instance) postToken(t *testing.T, form url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := in.httpClient().PostForm(in.boot.AuthorityHost+"/"+in.boot.TenantID+"/oauth2/v2.0/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("token answer: %d, %v", resp.StatusCode, err)
	}
	return resp.StatusCode, body
}

// redeemCode redeems code at in's token endpoint.
func (in *instance) redeemCode(t *testing.T, code, verifier string) (int, map[string]any) {
	t.Helper()
	return in.postToken(t, url.Values{"grant_type": {"authorization_code"}, "client_id": {codeClientID}, "code": {code},
		"redirect_uri": {codeRedirectURI}, "code_verifier": {verifier}, "scope": {in.audience() + "/.default openid profile offline_access"}})
}

// hasErrorCode reports whether a token error answer carries the AADSTS number code.
func hasErrorCode(body map[string]any, code int) bool {
	codes, _ := body["error_codes"].([]any)
	return len(codes) == 1 && codes[0] == float64(code)
}

// TestReplicasShareAuthorizationCodes: behind a load balancer without sticky sessions, a
// sign-in's authorization code issued by one replica is redeemed at another; a replay at any
// replica is refused and signs out the session the code started.
func TestReplicasShareAuthorizationCodes(t *testing.T) {
	a, _, atB, _ := replicasBehindOnePublicURL(t)
	code, verifier := a.authorizationCode(t)
	status, body := atB.redeemCode(t, code, verifier)
	at, _ := body["access_token"].(string)
	rt, _ := body["refresh_token"].(string)
	if status != http.StatusOK || at == "" || rt == "" || body["id_token"] == nil {
		t.Fatalf("redeem at replica B a code issued by A = %d %v; want 200 with access, refresh and ID tokens", status, body)
	}
	sub := "/subscriptions/" + a.boot.SubscriptionID + "?api-version=2022-12-01"
	if st, b := a.call(t, at, "GET", sub, nil); st != http.StatusOK {
		t.Fatalf("GET subscription at A with the code's access token = %d %s; want 200", st, b)
	}

	// A second code, redeemed where it was issued, is a session of its own.
	code2, verifier2 := atB.authorizationCode(t)
	status2, body2 := atB.redeemCode(t, code2, verifier2)
	other, _ := body2["access_token"].(string)
	if status2 != http.StatusOK || other == "" {
		t.Fatalf("redeem at B a code issued by B = %d %v; want 200", status2, body2)
	}

	// The replay, at A: refused, and the session the first redemption started is signed out
	// at every replica.
	status, body = a.redeemCode(t, code, verifier)
	if status != http.StatusBadRequest || body["error"] != "invalid_grant" || !hasErrorCode(body, 54005) {
		t.Errorf("replay at A of a code redeemed at B = %d %v; want 400 invalid_grant AADSTS54005", status, body)
	}
	if status, body := atB.postToken(t, url.Values{"grant_type": {"refresh_token"}, "client_id": {codeClientID},
		"refresh_token": {rt}, "scope": {a.audience() + "/.default"}}); status != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Errorf("refresh at B with the replayed code's refresh token = %d %v; want 400 invalid_grant", status, body)
	}
	for _, in := range []*instance{a, atB} {
		if st, b := in.call(t, at, "GET", sub, nil); st != http.StatusUnauthorized {
			t.Errorf("GET subscription at %s with the replayed code's access token = %d %s; want 401", in.boot.ARMEndpoint, st, b)
		}
	}
	if st, b := a.call(t, other, "GET", sub, nil); st != http.StatusOK {
		t.Errorf("GET subscription with another sign-in's token after the replay = %d %s; want 200", st, b)
	}
	// A code is not redeemed at all where it is malformed or unknown.
	for _, bad := range []string{"x", code + "x", strings.Repeat("A", 43)} {
		if status, body := atB.redeemCode(t, bad, verifier); status != http.StatusBadRequest || body["error"] != "invalid_grant" || !hasErrorCode(body, 70000) {
			t.Errorf("redeem %q = %d %v; want 400 invalid_grant AADSTS70000", bad, status, body)
		}
	}
}
