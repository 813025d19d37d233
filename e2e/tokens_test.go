package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/golang-jwt/jwt/v5"

	"github.com/pglink/pglink/internal/identity"
)

// call sends a request with a bearer token (none if token is "") and returns the status and
// body.
func (in *instance) call(t *testing.T, token, method, path string, body any) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, in.boot.ARMEndpoint+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := in.httpClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

// newSP creates a service principal with one secret through the identity admin API and
// returns its object id, app id and secret.
func (in *instance) newSP(t *testing.T, name string) (oid, appID, secret string) {
	t.Helper()
	admin := in.token()
	st, body := in.call(t, admin, "POST", "/v1.0/servicePrincipals", map[string]string{"displayName": name})
	var sp struct{ ID, AppID string }
	if err := json.Unmarshal(body, &sp); st != 201 || err != nil {
		t.Fatalf("create service principal: %d %s", st, body)
	}
	st, body = in.call(t, admin, "POST", "/v1.0/servicePrincipals/"+sp.ID+"/addPassword", map[string]any{})
	var pw struct{ SecretText string }
	if err := json.Unmarshal(body, &pw); st != 200 || err != nil || pw.SecretText == "" {
		t.Fatalf("add password: %d %s", st, body)
	}
	return sp.ID, sp.AppID, pw.SecretText
}

func (in *instance) tokenFor(t *testing.T, appID, secret string) string {
	t.Helper()
	tok, err := in.credentialFor(appID, secret).GetToken(t.Context(), policy.TokenRequestOptions{Scopes: []string{in.boot.ARMEndpoint + "/.default"}})
	if err != nil {
		t.Fatalf("token for %s: %v", appID, err)
	}
	return tok.Token
}

// TestTokenRevocation: a disabled or deleted principal's unexpired token stops working at its
// next request; re-enabling restores it; a removed secret signs in no more.
func TestTokenRevocation(t *testing.T) {
	in := start(t, nil)
	admin := in.token()
	oid, appID, secret := in.newSP(t, "revocable")
	tok := in.tokenFor(t, appID, secret)
	sub := "/subscriptions/" + in.boot.SubscriptionID + "?api-version=2022-12-01"
	// Authenticated, but without a role: 403, not 401.
	if st, body := in.call(t, tok, "GET", sub, nil); st != 403 {
		t.Fatalf("GET subscription without a role = %d %s; want 403", st, body)
	}
	if st, body := in.call(t, tok, "GET", "/v1.0/me", nil); st != 200 || !strings.Contains(string(body), appID) {
		t.Fatalf("GET /v1.0/me = %d %s; want 200 naming the app", st, body)
	}
	if st, body := in.call(t, admin, "PATCH", "/v1.0/servicePrincipals/"+oid, map[string]bool{"accountEnabled": false}); st != 204 {
		t.Fatalf("disable: %d %s", st, body)
	}
	for _, path := range []string{sub, "/v1.0/me"} {
		if st, body := in.call(t, tok, "GET", path, nil); st != 401 {
			t.Errorf("GET %s with a disabled principal's token = %d %s; want 401", path, st, body)
		}
	}
	if _, err := in.credentialFor(appID, secret).GetToken(t.Context(), policy.TokenRequestOptions{Scopes: []string{in.boot.ARMEndpoint + "/.default"}}); err == nil {
		t.Errorf("a disabled principal got a token")
	}
	if st, body := in.call(t, admin, "PATCH", "/v1.0/servicePrincipals/"+oid, map[string]bool{"accountEnabled": true}); st != 204 {
		t.Fatalf("enable: %d %s", st, body)
	}
	if st, _ := in.call(t, tok, "GET", "/v1.0/me", nil); st != 200 {
		t.Errorf("GET /v1.0/me after re-enabling = %d; want 200", st)
	}
	if st, body := in.call(t, admin, "DELETE", "/v1.0/servicePrincipals/"+appID, nil); st != 204 {
		t.Fatalf("delete: %d %s", st, body)
	}
	if st, _ := in.call(t, tok, "GET", sub, nil); st != 401 {
		t.Errorf("GET subscription with a deleted principal's token = %d; want 401", st)
	}
}

// TestTokenForgeries: the API refuses tokens that are forged, expired, for another audience,
// from another issuer or tenant, or whose oid names no principal — even when signed with
// pglink's own key.
func TestTokenForgeries(t *testing.T) {
	in := start(t, nil)
	keyPEM, err := os.ReadFile(filepath.Join(in.dir, "identity-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := identity.ParseKey(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	good := in.token()
	parsed, _, err := jwt.NewParser().ParseUnverified(good, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	base := parsed.Claims.(jwt.MapClaims)
	kid := parsed.Header["kid"]
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(k *rsa.PrivateKey, edit func(jwt.MapClaims)) string {
		c := jwt.MapClaims{}
		for n, v := range base {
			c[n] = v
		}
		edit(c)
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
		tok.Header["kid"] = kid
		s, err := tok.SignedString(k)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	now := time.Now()
	tests := []struct{ name, token string }{
		{"another key", sign(other, func(jwt.MapClaims) {})},
		{"expired", sign(key, func(c jwt.MapClaims) {
			c["exp"], c["nbf"], c["iat"] = now.Add(-2*time.Hour).Unix(), now.Add(-3*time.Hour).Unix(), now.Add(-3*time.Hour).Unix()
		})},
		{"not yet valid", sign(key, func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Hour).Unix() })},
		{"wrong audience", sign(key, func(c jwt.MapClaims) { c["aud"] = "https://vault.azure.net" })},
		{"wrong issuer", sign(key, func(c jwt.MapClaims) { c["iss"] = "https://login.microsoftonline.com/x/v2.0" })},
		{"wrong tenant", sign(key, func(c jwt.MapClaims) { c["tid"] = "00000000-0000-4000-8000-000000000000" })},
		{"oid names no principal", sign(key, func(c jwt.MapClaims) {
			c["oid"], c["sub"] = "00000000-0000-4000-8000-0000000000aa", "00000000-0000-4000-8000-0000000000aa"
		})},
		{"oid is a login, not an object id", sign(key, func(c jwt.MapClaims) { c["oid"] = in.boot.ClientID })},
		{"unsigned", func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodNone, base)
			s, _ := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
			return s
		}()},
		{"garbage", "not.a.token"},
	}
	sub := "/subscriptions/" + in.boot.SubscriptionID + "?api-version=2022-12-01"
	if st, body := in.call(t, good, "GET", sub, nil); st != 200 {
		t.Fatalf("GET subscription with a good token = %d %s", st, body)
	}
	for _, tt := range tests {
		for _, path := range []string{sub, "/v1.0/me"} {
			if st, body := in.call(t, tt.token, "GET", path, nil); st != 401 {
				t.Errorf("%s: GET %s = %d %s; want 401", tt.name, path, st, body)
			}
		}
	}
}
