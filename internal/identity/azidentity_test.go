package identity_test

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/public"
)

// clientOptions points the Azure SDK at ts: its TLS client, and ts as the authority host.
func (ts *testServer) clientOptions() azcore.ClientOptions {
	return azcore.ClientOptions{
		Cloud: cloud.Configuration{
			ActiveDirectoryAuthorityHost: ts.URL + "/",
			Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
				cloud.ResourceManager: {Endpoint: ts.URL, Audience: ts.URL},
			},
		},
		Transport: ts.Client(),
		Retry:     policy.RetryOptions{MaxRetries: -1},
	}
}

func TestClientSecretCredential(t *testing.T) {
	ts := newTestServer(t)
	newCred := func(t *testing.T, tenant, clientID, secret string) *azidentity.ClientSecretCredential {
		t.Helper()
		cred, err := azidentity.NewClientSecretCredential(tenant, clientID, secret, &azidentity.ClientSecretCredentialOptions{
			ClientOptions:            ts.clientOptions(),
			DisableInstanceDiscovery: true,
		})
		if err != nil {
			t.Fatalf("NewClientSecretCredential: %v", err)
		}
		return cred
	}
	ctx := context.Background()

	t.Run("good", func(t *testing.T) {
		cred := newCred(t, testTenant, testClientID, testSecret)
		for _, scope := range []string{
			"https://management.azure.com/.default",
			"https://management.core.windows.net//.default", // az's classic ARM scope
			ts.URL + "/.default",
		} {
			tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{scope}})
			if err != nil {
				t.Fatalf("GetToken(%s): %v", scope, err)
			}
			if d := time.Until(tok.ExpiresOn); d < 59*time.Minute || d > time.Hour+time.Minute {
				t.Errorf("GetToken(%s) expires in %v; want about an hour", scope, d)
			}
			p, err := ts.iss.Verify(tok.Token)
			if err != nil {
				t.Fatalf("Verify(GetToken(%s)): %v", scope, err)
			}
			if p != servicePrincipal {
				t.Errorf("Verify(GetToken(%s)) = %+v; want %+v", scope, p, servicePrincipal)
			}
		}
		// The SDK caches the token: asking again costs no request.
		n := ts.tokenRequests.Load()
		if _, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://management.azure.com/.default"}}); err != nil {
			t.Fatal(err)
		}
		if got := ts.tokenRequests.Load(); got != n {
			t.Errorf("cached GetToken made %d token requests; want 0", got-n)
		}
	})

	t.Run("organizations tenant", func(t *testing.T) {
		cred := newCred(t, "organizations", testClientID, testSecret)
		tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://management.azure.com/.default"}})
		if err != nil {
			t.Fatalf("GetToken: %v", err)
		}
		if _, err := ts.iss.Verify(tok.Token); err != nil {
			t.Errorf("Verify: %v", err)
		}
	})

	tests := []struct {
		name, tenant, clientID, secret, scope string
		status                                int
	}{
		{"wrong secret", testTenant, testClientID, testSecret + "x", "https://management.azure.com/.default", http.StatusUnauthorized},
		{"unknown client", testTenant, "00000000-0000-0000-0000-000000000000", testSecret, "https://management.azure.com/.default", http.StatusUnauthorized},
		{"unknown scope", testTenant, testClientID, testSecret, "https://graph.microsoft.com/.default", http.StatusBadRequest},
		{"unknown tenant", "00000000-0000-0000-0000-000000000000", testClientID, testSecret, "https://management.azure.com/.default", http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cred := newCred(t, tt.tenant, tt.clientID, tt.secret)
			tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{tt.scope}})
			if err == nil {
				t.Fatalf("GetToken = %.20s…; want an error", tok.Token)
			}
			var afe *azidentity.AuthenticationFailedError
			if !errors.As(err, &afe) || afe.RawResponse == nil {
				t.Fatalf("GetToken error = %v; want an AuthenticationFailedError with a response", err)
			}
			if afe.RawResponse.StatusCode != tt.status {
				t.Errorf("GetToken status = %d; want %d (%v)", afe.RawResponse.StatusCode, tt.status, err)
			}
		})
	}
}

func TestUsernamePasswordCredential(t *testing.T) {
	ts := newTestServer(t)
	const azCLIClientID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
	newCred := func(t *testing.T, username, password string) *azidentity.UsernamePasswordCredential {
		t.Helper()
		// Deprecated (no MFA), but it is the SDK's password grant, which the portal's users take.
		cred, err := azidentity.NewUsernamePasswordCredential(testTenant, azCLIClientID, username, password,
			&azidentity.UsernamePasswordCredentialOptions{ClientOptions: ts.clientOptions(), DisableInstanceDiscovery: true})
		if err != nil {
			t.Fatalf("NewUsernamePasswordCredential: %v", err)
		}
		return cred
	}
	ctx := context.Background()
	scopes := []string{"https://management.azure.com/.default"}

	// Authenticate describes the account from the id_token and client_info of the answer.
	cred := newCred(t, testUser, testPassword)
	rec, err := cred.Authenticate(ctx, &policy.TokenRequestOptions{Scopes: scopes})
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	wantRec := azidentity.AuthenticationRecord{Authority: ts.URL, ClientID: azCLIClientID,
		HomeAccountID: testUserOID + "." + testTenant, TenantID: testTenant, Username: testUser, Version: "1.0"}
	if rec != wantRec {
		t.Errorf("Authenticate = %+v; want %+v", rec, wantRec)
	}

	// GetToken finds the token in MSAL's cache under that account.
	n := ts.tokenRequests.Load()
	tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: scopes})
	if err != nil {
		t.Fatalf("GetToken: %v", err)
	}
	if got := ts.tokenRequests.Load(); got != n {
		t.Errorf("GetToken after Authenticate made %d token requests; want 0 (served from the cache)", got-n)
	}
	p, err := ts.iss.Verify(tok.Token)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	// MSAL asks for offline_access: the token carries the session the sign-in started.
	if p.SessionID == "" {
		t.Errorf("Verify = %+v; want a SessionID", p)
	}
	if p.SessionID = ""; p != user {
		t.Errorf("Verify = %+v; want %+v", p, user)
	}

	// A fresh credential asks the token endpoint.
	tok, err = newCred(t, testUser, testPassword).GetToken(ctx, policy.TokenRequestOptions{Scopes: scopes})
	if err != nil {
		t.Fatalf("GetToken of a fresh credential: %v", err)
	}
	if got := ts.tokenRequests.Load(); got != n+1 {
		t.Errorf("GetToken of a fresh credential made %d token requests; want 1", got-n)
	}
	if _, err := ts.iss.Verify(tok.Token); err != nil {
		t.Errorf("Verify: %v", err)
	}

	bad := newCred(t, testUser, "wrong")
	_, err = bad.GetToken(ctx, policy.TokenRequestOptions{Scopes: scopes})
	var afe *azidentity.AuthenticationFailedError
	if !errors.As(err, &afe) || afe.RawResponse == nil || afe.RawResponse.StatusCode != http.StatusBadRequest {
		t.Errorf("GetToken with a wrong password = %v; want a 400 AuthenticationFailedError", err)
	}
}

// TestUsernamePasswordCredentialRefreshes: MSAL redeems the refresh token of the password
// grant once its access token is about to expire (MSAL takes a token with less than five
// minutes left as expired), and gets a token of the same session.
func TestUsernamePasswordCredentialRefreshes(t *testing.T) {
	ts := newTestServerWith(t, serverOptions{lifetime: 2 * time.Minute})
	cred, err := azidentity.NewUsernamePasswordCredential(testTenant, "04b07795-8ddb-461a-bbee-02f9e1bf7b46", testUser, testPassword,
		&azidentity.UsernamePasswordCredentialOptions{ClientOptions: ts.clientOptions(), DisableInstanceDiscovery: true})
	if err != nil {
		t.Fatalf("NewUsernamePasswordCredential: %v", err)
	}
	ctx := context.Background()
	scopes := []string{"https://management.azure.com/.default"}
	if _, err := cred.Authenticate(ctx, &policy.TokenRequestOptions{Scopes: scopes}); err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	first := ts.tokenRequests.Load()
	tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: scopes})
	if err != nil {
		t.Fatalf("GetToken: %v", err)
	}
	if got := ts.tokenRequests.Load() - first; got != 1 {
		t.Errorf("GetToken of an expiring token made %d token requests; want 1 (a refresh)", got)
	}
	if n := ts.grants("refresh_token"); n != 1 {
		t.Errorf("refresh_token grants = %d; want 1", n)
	}
	p, err := ts.iss.Verify(tok.Token)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if p.SessionID != "session-1" {
		t.Errorf("Verify = %+v; want the session the sign-in started, session-1", p)
	}
}

// formAction finds the action of a page's form.
var formAction = regexp.MustCompile(`<form method="post" action="([^"]*)">`)

// browse signs in as a browser would at authorizeURL, a sign-in page with response_mode
// form_post, and posts the answer to the redirect URI.
func (ts *testServer) browse(authorizeURL string) error {
	get, err := ts.browser().Get(authorizeURL)
	if err != nil {
		return err
	}
	page, _ := io.ReadAll(get.Body)
	get.Body.Close()
	if get.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s = %d %s", authorizeURL, get.StatusCode, page)
	}
	form := hidden(string(page))
	form.Set("username", testUser)
	form.Set("password", testPassword)
	post, err := ts.browser().PostForm(ts.URL+authorizePath, form)
	if err != nil {
		return err
	}
	page, _ = io.ReadAll(post.Body)
	post.Body.Close()
	m := formAction.FindStringSubmatch(string(page))
	if post.StatusCode != http.StatusOK || m == nil {
		return fmt.Errorf("POST sign-in form = %d %s; want the form_post page", post.StatusCode, page)
	}
	// The redirect URI is MSAL's own loopback server, plain HTTP.
	res, err := http.PostForm(html.UnescapeString(m[1]), hidden(string(page)))
	if err != nil {
		return err
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("POST to the redirect URI = %d", res.StatusCode)
	}
	return nil
}

// TestMSALInteractive: MSAL's interactive flow, as native apps run it (the authorization code
// flow with PKCE, its answer form-posted to a loopback server MSAL starts), signs in against
// the issuer, and the account's token is then served from MSAL's cache.
func TestMSALInteractive(t *testing.T) {
	ts := newTestServer(t)
	client, err := public.New("04b07795-8ddb-461a-bbee-02f9e1bf7b46", public.WithAuthority(ts.URL+"/"+testTenant),
		public.WithHTTPClient(ts.Client()), public.WithInstanceDiscovery(false))
	if err != nil {
		t.Fatalf("public.New: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	scopes := []string{"https://management.azure.com/.default"}
	browsed := make(chan error, 1)
	res, err := client.AcquireTokenInteractive(ctx, scopes, public.WithOpenURL(func(u string) error {
		go func() { browsed <- ts.browse(u) }()
		return nil
	}))
	if err != nil {
		t.Fatalf("AcquireTokenInteractive: %v (browser: %v)", err, <-browsed)
	}
	if err := <-browsed; err != nil {
		t.Fatalf("browser: %v", err)
	}
	if res.Account.PreferredUsername != testUser || res.Account.HomeAccountID != testUserOID+"."+testTenant {
		t.Errorf("account = %+v; want %s, %s.%s", res.Account, testUser, testUserOID, testTenant)
	}
	p, err := ts.authenticate(res.AccessToken)
	if err != nil || p.ObjectID != testUserOID || p.SessionID == "" {
		t.Errorf("Authenticate(interactive token) = %+v, %v; want the user with a session", p, err)
	}
	n := ts.tokenRequests.Load()
	if _, err := client.AcquireTokenSilent(ctx, scopes, public.WithSilentAccount(res.Account)); err != nil {
		t.Errorf("AcquireTokenSilent: %v", err)
	}
	if got := ts.tokenRequests.Load(); got != n {
		t.Errorf("AcquireTokenSilent made %d token requests; want 0 (served from the cache)", got-n)
	}
}
