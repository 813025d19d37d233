package cli

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeGraph is a directory API (and logout endpoint) over TLS with one user and one service
// principal; it records the requests it gets.
type fakeGraph struct {
	srv  *httptest.Server
	dir  string // config dir with a logged-in user profile
	mu   sync.Mutex
	reqs []string // "METHOD path?query body"
}

const (
	userID = "11111111-1111-1111-1111-111111111111"
	spID   = "22222222-2222-2222-2222-222222222222"
	appID  = "33333333-3333-3333-3333-333333333333"
)

func newFakeGraph(t *testing.T, logoutStatus int) *fakeGraph {
	t.Helper()
	f := &fakeGraph{}
	notFound := func(w http.ResponseWriter) {
		w.WriteHeader(404)
		io.WriteString(w, `{"error":{"code":"Request_ResourceNotFound","message":"Resource not found."}}`)
	}
	f.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.reqs = append(f.reqs, strings.TrimSpace(r.Method+" "+r.URL.RequestURI()+" "+string(body)))
		f.mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer cached" && !strings.HasSuffix(r.URL.Path, "/logout") {
			w.WriteHeader(401)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch p := r.URL.Path; {
		case strings.HasSuffix(p, "/oauth2/v2.0/logout"):
			w.WriteHeader(logoutStatus)
		case p == "/v1.0/users/dana@pglink.local" || p == "/v1.0/users/"+userID:
			io.WriteString(w, `{"id":"`+userID+`","userPrincipalName":"dana@pglink.local"}`)
		case p == "/v1.0/servicePrincipals/"+appID || p == "/v1.0/servicePrincipals/"+spID:
			io.WriteString(w, `{"id":"`+spID+`","appId":"`+appID+`","displayName":"ci","passwordCredentials":[{"keyId":"k1"},{"keyId":"k2"}]}`)
		case p == "/v1.0/servicePrincipals/"+spID+"/addPassword":
			io.WriteString(w, `{"keyId":"k3","secretText":"new-secret"}`)
		case p == "/v1.0/servicePrincipals/"+spID+"/removePassword":
			w.WriteHeader(204)
		case p == "/v1.0/users" && r.Method == "POST":
			w.WriteHeader(400)
			io.WriteString(w, `{"error":{"code":"Request_BadRequest","message":"The specified password does not comply with password complexity requirements."}}`)
		default:
			notFound(w)
		}
	}))
	t.Cleanup(f.srv.Close)
	f.dir = t.TempDir()
	ca := filepath.Join(f.dir, "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.srv.Certificate().Raw}), 0o600)
	p := &profile{ARMEndpoint: f.srv.URL, AuthorityHost: f.srv.URL, TenantID: "tenant1", SubscriptionID: "sub1", CAFile: ca,
		Kind: kindUser, Name: "admin@pglink.local", AccessToken: "cached", ExpiresOn: time.Now().Add(time.Hour), RefreshToken: "rt1"}
	if err := p.save(f.dir); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fakeGraph) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.reqs
	f.reqs = nil
	return r
}

func (f *fakeGraph) run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	t.Setenv("PGLINK_CONFIG_DIR", f.dir)
	var stdout, stderr bytes.Buffer
	code := Run(t.Context(), args, strings.NewReader(""), &stdout, &stderr)
	return stdout.String(), stderr.String(), code
}

func TestResolveAssignee(t *testing.T) {
	f := newFakeGraph(t, 200)
	t.Setenv("PGLINK_CONFIG_DIR", f.dir)
	s, err := (&env{configDir: f.dir, now: time.Now}).session()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		assignee, wantID, wantType string
		wantReqs                   []string
	}{
		{"dana@pglink.local", userID, "User", []string{"GET /v1.0/users/dana@pglink.local"}},
		{appID, spID, "ServicePrincipal", []string{"GET /v1.0/servicePrincipals/" + appID}},
		{userID, userID, "User", []string{"GET /v1.0/servicePrincipals/" + userID, "GET /v1.0/users/" + userID}},
	}
	for _, tt := range tests {
		id, typ, err := s.resolveAssignee(t.Context(), tt.assignee)
		if err != nil || id != tt.wantID || typ != tt.wantType {
			t.Errorf("resolveAssignee(%q) = %q, %q, %v; want %q, %q", tt.assignee, id, typ, err, tt.wantID, tt.wantType)
		}
		if got := f.requests(); strings.Join(got, "\n") != strings.Join(tt.wantReqs, "\n") {
			t.Errorf("resolveAssignee(%q) sent %q; want %q", tt.assignee, got, tt.wantReqs)
		}
	}
	if _, _, err := s.resolveAssignee(t.Context(), "nobody@pglink.local"); err == nil || !strings.Contains(err.Error(), "cannot find user or service principal") {
		t.Errorf("resolveAssignee(unknown) = %v; want cannot find", err)
	}
}

func TestCredentialReset(t *testing.T) {
	f := newFakeGraph(t, 200)
	stdout, stderr, code := f.run(t, "ad", "sp", "credential", "reset", "--id", appID, "--years", "2")
	if code != 0 {
		t.Fatalf("credential reset: exit %d: %s", code, stderr)
	}
	var out map[string]string
	json.Unmarshal([]byte(stdout), &out)
	if len(out) != 3 || out["appId"] != appID || out["password"] != "new-secret" || out["tenant"] != "tenant1" {
		t.Errorf("credential reset printed %s; want appId, password, tenant", stdout)
	}
	if !strings.Contains(stderr, "WARNING: The output includes credentials") {
		t.Errorf("credential reset stderr = %q; want the credentials warning", stderr)
	}
	reqs := f.requests()
	want := []string{
		"GET /v1.0/servicePrincipals/" + appID,
		"POST /v1.0/servicePrincipals/" + spID + "/addPassword",
		"POST /v1.0/servicePrincipals/" + spID + `/removePassword {"keyId":"k1"}`,
		"POST /v1.0/servicePrincipals/" + spID + `/removePassword {"keyId":"k2"}`,
	}
	if len(reqs) != len(want) {
		t.Fatalf("credential reset sent %q; want %q", reqs, want)
	}
	for i := range want {
		if !strings.HasPrefix(reqs[i], want[i]) {
			t.Errorf("request %d = %q; want %q", i, reqs[i], want[i])
		}
	}
	if !strings.Contains(reqs[1], `"endDateTime":"`+time.Now().AddDate(2, 0, 0).UTC().Format("2006-01-02")) {
		t.Errorf("addPassword %q: want an end two years away", reqs[1])
	}

	f.run(t, "ad", "sp", "credential", "reset", "--id", appID, "--append")
	if reqs := f.requests(); len(reqs) != 2 {
		t.Errorf("credential reset --append sent %q; want no removePassword", reqs)
	}
}

func TestGraphErrors(t *testing.T) {
	f := newFakeGraph(t, 200)
	_, stderr, code := f.run(t, "ad", "user", "create", "--display-name", "D", "--password", "short", "--user-principal-name", "d@pglink.local")
	want := "ERROR: (Request_BadRequest) The specified password does not comply with password complexity requirements.\nCode: Request_BadRequest\n"
	if code != 1 || !strings.HasPrefix(stderr, want) {
		t.Errorf("ad user create: exit %d, stderr %q; want 1 and %q", code, stderr, want)
	}
	_, stderr, code = f.run(t, "ad", "sp", "show", "--id", "nope")
	if code != 1 || !strings.Contains(stderr, "(Request_ResourceNotFound) Resource not found.") {
		t.Errorf("ad sp show nope: exit %d, stderr %q", code, stderr)
	}
}

func TestLogout(t *testing.T) {
	for _, status := range []int{204, 500} {
		f := newFakeGraph(t, status)
		_, stderr, code := f.run(t, "logout")
		if code != 0 {
			t.Fatalf("logout (server answers %d): exit %d: %s", status, code, stderr)
		}
		if reqs := f.requests(); len(reqs) != 1 || reqs[0] != "POST /tenant1/oauth2/v2.0/logout refresh_token=rt1" {
			t.Errorf("logout sent %q; want the refresh token posted to the logout endpoint", reqs)
		}
		if gotWarning := strings.Contains(stderr, "WARNING:"); gotWarning != (status != 204) {
			t.Errorf("logout (server answers %d): stderr %q", status, stderr)
		}
		if _, err := os.Stat(filepath.Join(f.dir, profileFile)); !os.IsNotExist(err) {
			t.Errorf("logout (server answers %d): profile %v; want it deleted", status, err)
		}
	}
}
