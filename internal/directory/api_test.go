package directory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/identity"
	"github.com/pglink/pglink/internal/store"
)

const subscription = "8ba6f1c2-6c4f-4d1e-9f0b-0a1b2c3d4e5f"

// apiHarness serves Handler with bearer tokens that are principals' object ids (checked against
// the directory, as the issuer's Authenticate does) and a set of principals allowed everything.
type apiHarness struct {
	t      *testing.T
	st     store.Store
	dir    *Directory
	srv    *httptest.Server
	admins map[string]bool // object ids allowed every action
}

func newAPI(t *testing.T) *apiHarness {
	h := &apiHarness{t: t, st: openStore(t), admins: map[string]bool{}}
	h.dir = New(h.st, tenant)
	auth := func(r *http.Request) (identity.Principal, error) {
		oid, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			return identity.Principal{}, fmt.Errorf("no token: %w", identity.ErrInvalidToken)
		}
		if err := h.dir.Active(r.Context(), oid, ""); err != nil {
			return identity.Principal{}, fmt.Errorf("%w: %w", identity.ErrInvalidToken, err)
		}
		var p store.Principal
		_ = h.st.View(r.Context(), func(tx store.Tx) error { p, _ = tx.Principal(r.Context(), oid); return nil })
		d, _ := decode(p)
		return d.principal(p, tenant), nil
	}
	allowed := func(_ context.Context, oid, action string) (bool, error) {
		return h.admins[oid] || (strings.HasSuffix(action, "/read") && h.admins["readers:"+oid]), nil
	}
	h.srv = httptest.NewServer(Handler(h.st, APIConfig{TenantID: tenant, Subscription: subscription, Authenticate: auth, Allowed: allowed}))
	t.Cleanup(h.srv.Close)
	return h
}

// principal creates a principal directly in the store and returns its object id.
func (h *apiHarness) principal(kind, login, secret string) string {
	h.t.Helper()
	if err := EnsureBootstrap(h.t.Context(), h.st, kind, login, secret, login); err != nil {
		h.t.Fatal(err)
	}
	p, _ := principalDoc(h.t, h.st, login)
	return p.ObjectID
}

// do sends a request as token and decodes the JSON answer into out (if not nil).
func (h *apiHarness) do(token, method, path, body string, out any) int {
	h.t.Helper()
	req, _ := http.NewRequest(method, h.srv.URL+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			h.t.Fatalf("%s %s: decode %s: %v", method, path, data, err)
		}
	}
	return resp.StatusCode
}

type graphError struct {
	Error struct{ Code, Message string } `json:"error"`
}

func (h *apiHarness) events() []map[string]any {
	h.t.Helper()
	evs, err := h.st.Events(h.t.Context(), store.EventQuery{Subscription: subscription})
	if err != nil {
		h.t.Fatal(err)
	}
	var out []map[string]any
	for _, e := range evs {
		var m map[string]any
		_ = json.Unmarshal(e.Body, &m)
		out = append(out, m)
	}
	return out
}

func TestAPIUsers(t *testing.T) {
	h := newAPI(t)
	admin := h.principal(KindUser, "admin@pglink.local", "Adm1n-pass")
	h.admins[admin] = true

	var u userOut
	if st := h.do(admin, "POST", "/v1.0/users", `{"userPrincipalName":"Dana@Example.com","displayName":"Dana","passwordProfile":{"password":"Dana-pa55"},"accountEnabled":true}`, &u); st != http.StatusCreated {
		t.Fatalf("create user = %d; want 201", st)
	}
	if u.ID == "" || u.UserPrincipalName != "Dana@Example.com" || !u.AccountEnabled {
		t.Errorf("created user = %+v", u)
	}
	if _, err := h.dir.User(t.Context(), "dana@example.com", "Dana-pa55"); err != nil {
		t.Errorf("sign in as the new user = %v; want nil", err)
	}
	var ge graphError
	if st := h.do(admin, "POST", "/v1.0/users", `{"userPrincipalName":"dana@example.com","displayName":"D2","passwordProfile":{"password":"Dana-pa55"}}`, &ge); st != 400 || !strings.Contains(ge.Error.Message, "already exists") {
		t.Errorf("create duplicate user = %d %+v; want 400 already exists", st, ge)
	}
	for _, bad := range []string{
		`{"userPrincipalName":"nodomain","passwordProfile":{"password":"Dana-pa55"}}`,
		`{"userPrincipalName":"e@example.com","passwordProfile":{"password":"short"}}`,
		`{"userPrincipalName":"e@example.com","passwordProfile":{"password":"alllowercase"}}`,
		`{"userPrincipalName":"e@example.com"}`,
		`{"userPrincipalName":"e@example.com","passwordProfile":{"password":"Dana-pa55"},"isAdmin":true}`,
		`{"userPrincipalName":42}`,
		`not json`,
	} {
		ge = graphError{}
		if st := h.do(admin, "POST", "/v1.0/users", bad, &ge); st != 400 || ge.Error.Code != "Request_BadRequest" || ge.Error.Message == "" {
			t.Errorf("create user %s = %d %+v; want 400 Request_BadRequest with a message", bad, st, ge)
		}
	}
	if st := h.do(admin, "POST", "/v1.0/users", `{"displayName":"`+strings.Repeat("x", maxBodyBytes)+`"}`, &ge); st != http.StatusRequestEntityTooLarge {
		t.Errorf("create user with a huge body = %d; want 413", st)
	}

	// Lists page and filter.
	h.principal(KindUser, "erin@example.com", "Erin-pa55")
	var list struct {
		Value    []userOut `json:"value"`
		NextLink string    `json:"@odata.nextLink"`
	}
	if st := h.do(admin, "GET", "/v1.0/users?$top=2", "", &list); st != 200 || len(list.Value) != 2 || list.NextLink == "" {
		t.Fatalf("list users $top=2 = %d %+v; want 2 and a next link", st, list)
	}
	next := list.NextLink[strings.Index(list.NextLink, "/v1.0/"):]
	seen := map[string]bool{list.Value[0].ID: true, list.Value[1].ID: true}
	list.Value, list.NextLink = nil, ""
	if st := h.do(admin, "GET", next, "", &list); st != 200 || len(list.Value) != 1 || list.NextLink != "" || seen[list.Value[0].ID] {
		t.Errorf("list users page 2 = %d %+v; want the third user and no next link", st, list)
	}
	list.Value = nil
	if st := h.do(admin, "GET", "/v1.0/users?$filter=userPrincipalName%20eq%20'DANA@example.com'", "", &list); st != 200 || len(list.Value) != 1 || list.Value[0].ID != u.ID {
		t.Errorf("list users filtered = %d %+v; want Dana", st, list)
	}
	if st := h.do(admin, "GET", "/v1.0/users?$filter=startswith(displayName,'D')", "", &ge); st != 400 {
		t.Errorf("list users with an unsupported filter = %d; want 400", st)
	}

	// Dana may read herself but not others, nor write.
	var me userOut
	if st := h.do(u.ID, "GET", "/v1.0/me", "", &me); st != 200 || me.ID != u.ID {
		t.Errorf("GET /me as Dana = %d %+v", st, me)
	}
	if st := h.do(u.ID, "GET", "/v1.0/users/dana@example.com", "", nil); st != 200 {
		t.Errorf("GET herself = %d; want 200", st)
	}
	for _, tt := range []struct{ method, path, body string }{
		{"GET", "/v1.0/users/erin@example.com", ""},
		{"GET", "/v1.0/users/nobody@example.com", ""}, // no probing for who exists
		{"GET", "/v1.0/users", ""},
		{"POST", "/v1.0/users", `{"userPrincipalName":"f@example.com","passwordProfile":{"password":"Dana-pa55"}}`},
		{"PATCH", "/v1.0/users/erin@example.com", `{"accountEnabled":false}`},
		{"DELETE", "/v1.0/users/erin@example.com", ""},
	} {
		ge = graphError{}
		if st := h.do(u.ID, tt.method, tt.path, tt.body, &ge); st != 403 || ge.Error.Code != "Authorization_RequestDenied" {
			t.Errorf("%s %s as Dana = %d %+v; want 403 Authorization_RequestDenied", tt.method, tt.path, st, ge)
		}
	}
	denied := 0
	for _, e := range h.events() {
		if e["caller"] == "dana@example.com" && e["status"].(map[string]any)["value"] == "Failed" {
			denied++
		}
	}
	if denied != 3 {
		t.Errorf("denied writes in the activity log = %d; want 3", denied)
	}

	// Disabling signs Dana out: sessions close, her token stops working, and her codes waiting
	// to be redeemed are forgotten.
	dana, _ := h.dir.User(t.Context(), "dana@example.com", "Dana-pa55")
	sid, _, err := h.dir.StartSession(t.Context(), dana)
	if err != nil {
		t.Fatal(err)
	}
	pending := identity.Code{ClientID: "portal", RedirectURI: "http://127.0.0.1:1/cb", Challenge: strings.Repeat("c", 43),
		Scope: "https://management.azure.com/.default", Principal: dana, Expires: time.Now().Add(5 * time.Minute)}
	code, err := h.dir.IssueCode(t.Context(), pending)
	if err != nil {
		t.Fatal(err)
	}
	if st := h.do(admin, "PATCH", "/v1.0/users/"+u.ID, `{"accountEnabled":false}`, nil); st != 204 {
		t.Fatalf("disable Dana = %d; want 204", st)
	}
	if _, _, err := h.dir.RedeemCode(t.Context(), code, func(identity.Code) error { return nil }); !errors.Is(err, identity.ErrCodeInvalid) {
		t.Errorf("RedeemCode(code of a user disabled since) = %v; want ErrCodeInvalid", err)
	}
	if err := h.dir.Active(t.Context(), u.ID, sid); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Errorf("Active(disabled user's session) = %v; want ErrInvalidCredentials", err)
	}
	if st := h.do(u.ID, "GET", "/v1.0/me", "", &ge); st != 401 || ge.Error.Code != "InvalidAuthenticationToken" {
		t.Errorf("GET /me as disabled Dana = %d %+v; want 401", st, ge)
	}
	if _, err := h.dir.User(t.Context(), "dana@example.com", "Dana-pa55"); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Errorf("sign in as disabled Dana = %v; want ErrInvalidCredentials", err)
	}
	// Re-enabled with a new password: only the new one works.
	if st := h.do(admin, "PATCH", "/v1.0/users/dana@example.com", `{"accountEnabled":true,"passwordProfile":{"password":"N3w-Passw0rd"}}`, nil); st != 204 {
		t.Fatalf("re-enable Dana = %d; want 204", st)
	}
	if _, err := h.dir.User(t.Context(), "dana@example.com", "N3w-Passw0rd"); err != nil {
		t.Errorf("sign in with the new password = %v", err)
	}
	// A password reset forgets the codes of sign-ins with the old one.
	if code, err = h.dir.IssueCode(t.Context(), pending); err != nil {
		t.Fatal(err)
	}
	if st := h.do(admin, "PATCH", "/v1.0/users/dana@example.com", `{"passwordProfile":{"password":"N3w-Passw0rd2"}}`, nil); st != 204 {
		t.Fatalf("reset Dana's password = %d; want 204", st)
	}
	if _, _, err := h.dir.RedeemCode(t.Context(), code, func(identity.Code) error { return nil }); !errors.Is(err, identity.ErrCodeInvalid) {
		t.Errorf("RedeemCode(code issued before a password reset) = %v; want ErrCodeInvalid", err)
	}
	if _, err := h.dir.User(t.Context(), "dana@example.com", "Dana-pa55"); err == nil {
		t.Errorf("sign in with the old password succeeded")
	}
	if st := h.do(admin, "DELETE", "/v1.0/users/dana@example.com", "", nil); st != 204 {
		t.Fatalf("delete Dana = %d; want 204", st)
	}
	if st := h.do(admin, "GET", "/v1.0/users/"+u.ID, "", &ge); st != 404 || ge.Error.Code != "Request_ResourceNotFound" {
		t.Errorf("GET deleted user = %d %+v; want 404", st, ge)
	}
	if st := h.do(u.ID, "GET", "/v1.0/me", "", nil); st != 401 {
		t.Errorf("GET /me as deleted Dana = %d; want 401", st)
	}
	if st := h.do(admin, "DELETE", "/v1.0/users/dana@example.com", "", nil); st != 404 {
		t.Errorf("delete twice = %d; want 404", st)
	}
	if st := h.do("", "GET", "/v1.0/users", "", nil); st != 401 {
		t.Errorf("list without a token = %d; want 401", st)
	}

	// Every change is in the activity log with its caller; no password anywhere.
	ops := map[string]int{}
	for _, e := range h.events() {
		if e["caller"] == "admin@pglink.local" && e["status"].(map[string]any)["value"] == "Succeeded" {
			ops[e["operationName"].(map[string]any)["value"].(string)]++
		}
		if b, _ := json.Marshal(e); strings.Contains(string(b), "Dana-pa55") || strings.Contains(string(b), "N3w-Passw0rd") {
			t.Errorf("activity event holds a password: %s", b)
		}
	}
	if ops[ActionUsersWrite] != 4 || ops[ActionUsersDelete] != 1 {
		t.Errorf("admin's recorded changes = %v; want 4 writes and 1 delete", ops)
	}
}

func TestAPIServicePrincipals(t *testing.T) {
	h := newAPI(t)
	admin := h.principal(KindServicePrincipal, "99999999-2222-4333-8444-555555555555", NewSecret())
	h.admins[admin] = true

	var sp spOut
	if st := h.do(admin, "POST", "/v1.0/servicePrincipals", `{"displayName":"ci"}`, &sp); st != 201 || sp.AppID == "" || sp.ID == "" || len(sp.PasswordCredentials) != 0 {
		t.Fatalf("create sp = %d %+v", st, sp)
	}
	var pw1, pw2 passwordCredentialOut
	if st := h.do(admin, "POST", "/v1.0/servicePrincipals/"+sp.AppID+"/addPassword", `{"passwordCredential":{"displayName":"one"}}`, &pw1); st != 200 || pw1.SecretText == nil {
		t.Fatalf("addPassword = %d %+v", st, pw1)
	}
	if st := h.do(admin, "POST", "/v1.0/servicePrincipals/"+sp.ID+"/addPassword", `{}`, &pw2); st != 200 || pw2.SecretText == nil {
		t.Fatalf("addPassword (2) = %d %+v", st, pw2)
	}
	for _, s := range []string{*pw1.SecretText, *pw2.SecretText} {
		if _, err := h.dir.ServicePrincipal(t.Context(), sp.AppID, s); err != nil {
			t.Errorf("sign in with secret %.3s… = %v", s, err)
		}
	}
	// Reads show the credentials, never the secrets.
	var got spOut
	raw := map[string]any{}
	h.do(admin, "GET", "/v1.0/servicePrincipals/"+sp.ID, "", &raw)
	h.do(admin, "GET", "/v1.0/servicePrincipals/"+sp.AppID, "", &got)
	if b, _ := json.Marshal(raw); strings.Contains(string(b), *pw1.SecretText) || strings.Contains(string(b), "$2a$") || len(got.PasswordCredentials) != 2 {
		t.Errorf("GET sp = %s; want two credentials without secrets or hashes", b)
	}
	var list struct{ Value []spOut }
	if st := h.do(admin, "GET", "/v1.0/servicePrincipals?$filter=displayName%20eq%20'ci'", "", &list); st != 200 || len(list.Value) != 1 || list.Value[0].AppID != sp.AppID {
		t.Errorf("list by displayName = %d %+v", st, list)
	}
	list.Value = nil
	if st := h.do(admin, "GET", "/v1.0/servicePrincipals?$filter=appId%20eq%20'"+sp.AppID+"'", "", &list); st != 200 || len(list.Value) != 1 {
		t.Errorf("list by appId = %d %+v", st, list)
	}
	// removePassword: that secret stops working, the other does not.
	if st := h.do(admin, "POST", "/v1.0/servicePrincipals/"+sp.ID+"/removePassword", `{"keyId":"`+pw1.KeyID+`"}`, nil); st != 204 {
		t.Fatalf("removePassword = %d", st)
	}
	if _, err := h.dir.ServicePrincipal(t.Context(), sp.AppID, *pw1.SecretText); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Errorf("sign in with a removed secret = %v; want ErrInvalidCredentials", err)
	}
	if _, err := h.dir.ServicePrincipal(t.Context(), sp.AppID, *pw2.SecretText); err != nil {
		t.Errorf("sign in with the kept secret = %v", err)
	}
	if st := h.do(admin, "POST", "/v1.0/servicePrincipals/"+sp.ID+"/removePassword", `{"keyId":"`+pw1.KeyID+`"}`, nil); st != 404 {
		t.Errorf("removePassword twice = %d; want 404", st)
	}
	// Bad credential requests.
	var ge graphError
	for _, body := range []string{`{"passwordCredential":{"endDateTime":"2001-01-01T00:00:00Z"}}`, `{"passwordCredential":{"endDateTime":"3000-01-01T00:00:00Z"}}`} {
		if st := h.do(admin, "POST", "/v1.0/servicePrincipals/"+sp.ID+"/addPassword", body, &ge); st != 400 {
			t.Errorf("addPassword %s = %d; want 400", body, st)
		}
	}
	// At most MaxCredentials.
	for range MaxCredentials - 1 {
		h.do(admin, "POST", "/v1.0/servicePrincipals/"+sp.ID+"/addPassword", `{}`, nil)
	}
	ge = graphError{}
	if st := h.do(admin, "POST", "/v1.0/servicePrincipals/"+sp.ID+"/addPassword", `{}`, &ge); st != 400 || !strings.Contains(ge.Error.Message, "most") {
		t.Errorf("addPassword beyond the cap = %d %+v; want 400", st, ge)
	}
	// Disable, then delete: the principal's own token stops working.
	if st := h.do(sp.ID, "GET", "/v1.0/me", "", nil); st != 200 {
		t.Errorf("GET /me as the sp = %d; want 200", st)
	}
	if st := h.do(admin, "PATCH", "/v1.0/servicePrincipals/"+sp.ID, `{"accountEnabled":false}`, nil); st != 204 {
		t.Fatalf("disable sp = %d", st)
	}
	if st := h.do(sp.ID, "GET", "/v1.0/me", "", nil); st != 401 {
		t.Errorf("GET /me as the disabled sp = %d; want 401", st)
	}
	if _, err := h.dir.ServicePrincipal(t.Context(), sp.AppID, *pw2.SecretText); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Errorf("sign in as the disabled sp = %v; want ErrInvalidCredentials", err)
	}
	if st := h.do(admin, "DELETE", "/v1.0/servicePrincipals/"+sp.AppID, "", nil); st != 204 {
		t.Fatalf("delete sp = %d", st)
	}
	if st := h.do(admin, "GET", "/v1.0/servicePrincipals/"+sp.ID, "", nil); st != 404 {
		t.Errorf("GET deleted sp = %d; want 404", st)
	}
	// A user's UPN is not a service principal.
	h.principal(KindUser, "gus@example.com", "Gus-pa55w")
	if st := h.do(admin, "GET", "/v1.0/servicePrincipals/gus@example.com", "", nil); st != 404 {
		t.Errorf("GET a user as a service principal = %d; want 404", st)
	}
	// Service principal events name the caller by app id.
	found := false
	for _, e := range h.events() {
		if e["caller"] == "99999999-2222-4333-8444-555555555555" {
			found = true
		}
		if b, _ := json.Marshal(e); strings.Contains(string(b), *pw2.SecretText) {
			t.Errorf("activity event holds a secret: %s", b)
		}
	}
	if !found {
		t.Errorf("no activity event names the caller's app id")
	}
}
