package cli

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// fakeIdP is a token endpoint over TLS that answers with answer and records the forms posted.
type fakeIdP struct {
	srv    *httptest.Server
	caFile string

	mu     sync.Mutex
	forms  []url.Values
	answer func(form url.Values) (int, any)
}

func newFakeIdP(t *testing.T, answer func(form url.Values) (int, any)) *fakeIdP {
	t.Helper()
	f := &fakeIdP{answer: answer}
	f.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/tenant1/oauth2/v2.0/token" {
			http.NotFound(w, r)
			return
		}
		r.ParseForm()
		f.mu.Lock()
		f.forms = append(f.forms, r.PostForm)
		f.mu.Unlock()
		code, body := f.answer(r.PostForm)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(body)
	}))
	t.Cleanup(f.srv.Close)
	f.caFile = filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.srv.Certificate().Raw})
	if err := os.WriteFile(f.caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fakeIdP) posted() []url.Values {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.forms
}

var now0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

// credential returns a profileCredential over p (saved in a fresh directory) at now0.
func (f *fakeIdP) credential(t *testing.T, p *profile) *profileCredential {
	t.Helper()
	p.ARMEndpoint, p.AuthorityHost, p.TenantID, p.CAFile = f.srv.URL, f.srv.URL, "tenant1", f.caFile
	dir := t.TempDir()
	if err := p.save(dir); err != nil {
		t.Fatal(err)
	}
	hc, err := httpClient(p.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	return &profileCredential{dir: dir, p: p, hc: hc, now: func() time.Time { return now0 }}
}

func TestCredentialCachedToken(t *testing.T) {
	f := newFakeIdP(t, func(url.Values) (int, any) { return 500, nil })
	c := f.credential(t, &profile{Kind: kindUser, Name: "u", AccessToken: "cached", ExpiresOn: now0.Add(refreshMargin + time.Second), RefreshToken: "rt"})
	tok, err := c.GetToken(context.Background(), policy.TokenRequestOptions{})
	if err != nil || tok.Token != "cached" {
		t.Errorf("GetToken = %q, %v; want the cached token", tok.Token, err)
	}
	if n := len(f.posted()); n != 0 {
		t.Errorf("GetToken with %v left posted %d token requests; want none", refreshMargin+time.Second, n)
	}
}

func TestCredentialRefresh(t *testing.T) {
	tests := []struct {
		name     string
		p        profile
		answer   func(url.Values) (int, any)
		wantForm url.Values
		wantErr  error
		wantRT   string // refresh token in the saved profile
	}{{
		name: "service principal asks again",
		p:    profile{Kind: kindServicePrincipal, Name: "app1", ClientSecret: "s3cret", AccessToken: "old", ExpiresOn: now0.Add(refreshMargin)},
		answer: func(url.Values) (int, any) {
			return 200, map[string]any{"access_token": "new", "expires_in": 3600, "token_type": "Bearer"}
		},
		wantForm: url.Values{"grant_type": {"client_credentials"}, "client_id": {"app1"}, "client_secret": {"s3cret"}, "scope": {"ARM/.default"}},
	}, {
		name: "user refreshes and the refresh token rotates",
		p:    profile{Kind: kindUser, Name: "dana", AccessToken: "old", ExpiresOn: now0.Add(time.Minute), RefreshToken: "rt1"},
		answer: func(url.Values) (int, any) {
			return 200, map[string]any{"access_token": "new", "expires_in": 3600, "refresh_token": "rt2"}
		},
		wantForm: url.Values{"grant_type": {"refresh_token"}, "client_id": {"pglink-cli"}, "refresh_token": {"rt1"}, "scope": {"ARM/.default offline_access"}},
		wantRT:   "rt2",
	}, {
		name: "user refresh refused",
		p:    profile{Kind: kindUser, Name: "dana", AccessToken: "old", ExpiresOn: now0.Add(-time.Minute), RefreshToken: "rt1"},
		answer: func(url.Values) (int, any) {
			return 400, map[string]any{"error": "invalid_grant", "error_description": "AADSTS70008: The refresh token has expired."}
		},
		wantForm: url.Values{"grant_type": {"refresh_token"}, "client_id": {"pglink-cli"}, "refresh_token": {"rt1"}, "scope": {"ARM/.default offline_access"}},
		wantErr:  errLoginExpired,
		wantRT:   "rt1",
	}, {
		name:    "user without a refresh token",
		p:       profile{Kind: kindUser, Name: "dana", AccessToken: "old", ExpiresOn: now0},
		answer:  func(url.Values) (int, any) { return 500, nil },
		wantErr: errLoginExpired,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeIdP(t, tt.answer)
			p := tt.p
			c := f.credential(t, &p)
			tok, err := c.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{"ignored/.default"}})
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || err.Error() != "the login has expired: run pglink login" {
					t.Errorf("GetToken error = %v; want %v", err, tt.wantErr)
				}
			} else if err != nil || tok.Token != "new" || !tok.ExpiresOn.Equal(now0.Add(time.Hour)) {
				t.Errorf("GetToken = %q expiring %v, %v; want new, expiring in an hour", tok.Token, tok.ExpiresOn, err)
			}
			forms := f.posted()
			if tt.wantForm == nil {
				if len(forms) != 0 {
					t.Errorf("posted %v; want nothing", forms)
				}
				return
			}
			if len(forms) != 1 {
				t.Fatalf("posted %d token requests; want 1", len(forms))
			}
			want := tt.wantForm
			want.Set("scope", f.srv.URL+want.Get("scope")[len("ARM"):])
			for k := range want {
				if forms[0].Get(k) != want.Get(k) {
					t.Errorf("form %s = %q; want %q", k, forms[0].Get(k), want.Get(k))
				}
			}
			saved, err := loadProfile(c.dir)
			if err != nil {
				t.Fatal(err)
			}
			if saved.RefreshToken != tt.wantRT {
				t.Errorf("saved refresh token = %q; want %q", saved.RefreshToken, tt.wantRT)
			}
			if tt.wantErr == nil && (saved.AccessToken != "new" || !saved.ExpiresOn.Equal(now0.Add(time.Hour))) {
				t.Errorf("saved access token %q expiring %v; want new, in an hour", saved.AccessToken, saved.ExpiresOn)
			}
		})
	}
}

func TestHTTPClientCAFile(t *testing.T) {
	if _, err := httpClient(filepath.Join(t.TempDir(), "missing.pem")); err == nil {
		t.Error("httpClient(missing file) succeeded")
	}
	bad := filepath.Join(t.TempDir(), "bad.pem")
	os.WriteFile(bad, []byte("not a certificate"), 0o600)
	if _, err := httpClient(bad); err == nil {
		t.Error("httpClient(file without PEM) succeeded")
	}
}

// TestCredentialSeesAnotherProcessRenew: tokens another process saved since the profile was
// read are used, not renewed again with a refresh token that rotation has spent.
func TestCredentialSeesAnotherProcessRenew(t *testing.T) {
	f := newFakeIdP(t, func(url.Values) (int, any) {
		return 400, map[string]any{"error": "invalid_grant", "error_description": "the refresh token was used already"}
	})
	c := f.credential(t, &profile{Kind: kindUser, Name: "dana", AccessToken: "old", ExpiresOn: now0, RefreshToken: "rt1"})
	other := *c.p
	other.AccessToken, other.ExpiresOn, other.RefreshToken = "theirs", now0.Add(time.Hour), "rt2"
	if err := other.save(c.dir); err != nil {
		t.Fatal(err)
	}
	tok, err := c.GetToken(context.Background(), policy.TokenRequestOptions{})
	if err != nil || tok.Token != "theirs" {
		t.Errorf("GetToken = %q, %v; want the token the other process saved", tok.Token, err)
	}
	if n := len(f.posted()); n != 0 {
		t.Errorf("posted %d token requests; want none", n)
	}
}
