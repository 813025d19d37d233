package identity_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"go/build"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/pglink/pglink/internal/identity"
)

const (
	testTenant   = "8f3c1a52-6d0e-4b7a-9c21-3e5f7a9b0d14"
	testClientID = "2b7e4c10-94d1-4f6a-8e3b-5a0c9d7f1e28"
	testSecret   = "s3cr3t-0123456789abcdefghijklmnopqrstuvwxyz" // long and random: fast hash
	testSPOID    = "c0a8f4e2-1b3d-4e5f-8a9b-0c1d2e3f4a5b"
	testUser     = "admin@pglink.example"
	testPassword = "correct horse battery staple"
	testUserOID  = "d1b9e5f3-2c4e-4f60-9bac-1d2e3f4a5b6c"
	// brokenClientID makes the fake directory fail as a broken store would.
	brokenClientID = "broken"
)

var (
	servicePrincipal = identity.Principal{ObjectID: testSPOID, AppID: testClientID, Name: "pglink-admin", Kind: identity.KindServicePrincipal, TenantID: testTenant}
	user             = identity.Principal{ObjectID: testUserOID, Name: testUser, Kind: identity.KindUser, TenantID: testTenant}
)

// testKey is one signing key for the whole test binary: RSA key generation is slow.
var testKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := identity.GenerateKey()
	if err != nil {
		panic(err)
	}
	return k
})

// fakeDirectory is an in-memory Directory holding hashed secrets, as the store does, and
// sign-in sessions whose refresh tokens rotate.
type fakeDirectory struct {
	sps   map[string]fakeEntry // by client id
	users map[string]fakeEntry // by UPN

	mu        sync.Mutex
	sessions  map[string]fakeSession // by current refresh token; guarded by mu
	open      map[string]bool        // ids of open sessions; guarded by mu
	disabled  map[string]bool        // object ids of disabled principals; guarded by mu
	activeErr error                  // if set, Active fails with it; guarded by mu
	nextSID   int                    // guarded by mu
}

type fakeEntry struct {
	hash string
	p    identity.Principal
}

type fakeSession struct {
	sid string
	p   identity.Principal
}

var _ identity.Directory = (*fakeDirectory)(nil)

// testHashes are the stored hashes of testSecret and testPassword, made once. The password's
// is a bcrypt hash of the lowest cost, which CheckSecret accepts as it would a HashSecret one:
// bcrypt at the default cost takes most of a second a check under the race detector.
var testHashes = sync.OnceValues(func() ([2]string, error) {
	sp, err := identity.HashRandomSecret(testSecret)
	if err != nil {
		return [2]string{}, err
	}
	u, err := bcrypt.GenerateFromPassword([]byte(testPassword), bcrypt.MinCost)
	return [2]string{sp, string(u)}, err
})

func newFakeDirectory(t *testing.T) *fakeDirectory {
	t.Helper()
	h, err := testHashes()
	if err != nil {
		t.Fatal(err)
	}
	return &fakeDirectory{
		sps:      map[string]fakeEntry{testClientID: {h[0], servicePrincipal}},
		users:    map[string]fakeEntry{testUser: {h[1], user}},
		sessions: map[string]fakeSession{},
		open:     map[string]bool{},
		disabled: map[string]bool{},
	}
}

func (d *fakeDirectory) ServicePrincipal(ctx context.Context, clientID, secret string) (identity.Principal, error) {
	if clientID == brokenClientID {
		return identity.Principal{}, errors.New("store unavailable")
	}
	e, ok := d.sps[clientID]
	if !ok || !identity.CheckSecret(e.hash, secret) {
		return identity.Principal{}, identity.ErrInvalidCredentials
	}
	return e.p, nil
}

func (d *fakeDirectory) User(ctx context.Context, username, password string) (identity.Principal, error) {
	e, ok := d.users[strings.ToLower(username)]
	if !ok || !identity.CheckSecret(e.hash, password) {
		return identity.Principal{}, identity.ErrInvalidCredentials
	}
	return e.p, nil
}

// brokenRefreshToken makes the fake directory's Refresh fail as a broken store would.
const brokenRefreshToken = "broken"

func newRefreshToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (d *fakeDirectory) StartSession(ctx context.Context, p identity.Principal) (sid, refreshToken string, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.nextSID++
	sid = fmt.Sprintf("session-%d", d.nextSID)
	refreshToken = newRefreshToken()
	d.sessions[refreshToken] = fakeSession{sid, p}
	d.open[sid] = true
	return sid, refreshToken, nil
}

func (d *fakeDirectory) Refresh(ctx context.Context, refreshToken string) (identity.Principal, string, string, error) {
	if refreshToken == brokenRefreshToken {
		return identity.Principal{}, "", "", errors.New("store unavailable")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	s, ok := d.sessions[refreshToken]
	if !ok || !d.open[s.sid] || d.disabled[s.p.ObjectID] {
		return identity.Principal{}, "", "", identity.ErrInvalidCredentials
	}
	delete(d.sessions, refreshToken)
	next := newRefreshToken()
	d.sessions[next] = s
	return s.p, s.sid, next, nil
}

func (d *fakeDirectory) EndSession(ctx context.Context, refreshToken string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if s, ok := d.sessions[refreshToken]; ok {
		delete(d.open, s.sid)
		delete(d.sessions, refreshToken)
	}
	return nil
}

func (d *fakeDirectory) Active(ctx context.Context, oid, sid string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.activeErr != nil {
		return d.activeErr
	}
	known := false
	for _, m := range []map[string]fakeEntry{d.sps, d.users} {
		for _, e := range m {
			known = known || e.p.ObjectID == oid
		}
	}
	if !known || d.disabled[oid] || sid != "" && !d.open[sid] {
		return identity.ErrInvalidCredentials
	}
	return nil
}

// disable disables the principal with object id oid.
func (d *fakeDirectory) disable(oid string) {
	d.mu.Lock()
	d.disabled[oid] = true
	d.mu.Unlock()
}

// failActive makes Active fail with err (nil: work again).
func (d *fakeDirectory) failActive(err error) {
	d.mu.Lock()
	d.activeErr = err
	d.mu.Unlock()
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), nil))
}

// newIssuer returns an Issuer for authority with the test key and directory and the given clock
// (nil: the real one).
func newIssuer(t *testing.T, authority string, now func() time.Time) *identity.Issuer {
	t.Helper()
	iss, _ := newIssuerWith(t, authority, serverOptions{now: now})
	return iss
}

// serverOptions are the options of a test issuer; zero values take the defaults.
type serverOptions struct {
	now             func() time.Time
	maxPendingCodes int
	logger          *slog.Logger
	signIn          identity.SignInLimits
	lifetime        time.Duration
	// directory, if set, wraps the fake directory into the issuer's Directory.
	directory func(*fakeDirectory) identity.Directory
}

// newIssuerWith returns an Issuer for authority with the test key, o, and its directory.
func newIssuerWith(t *testing.T, authority string, o serverOptions) (*identity.Issuer, *fakeDirectory) {
	t.Helper()
	if o.logger == nil {
		o.logger = testLogger(t)
	}
	dir := newFakeDirectory(t)
	var idir identity.Directory = dir
	if o.directory != nil {
		idir = o.directory(dir)
	}
	iss, err := identity.New(identity.Config{
		TenantID:        testTenant,
		Authority:       authority,
		Key:             testKey(),
		Audiences:       identity.DefaultAudiences(authority),
		Now:             o.now,
		MaxPendingCodes: o.maxPendingCodes,
		SignIn:          o.signIn,
		Lifetime:        o.lifetime,
	}, idir, o.logger)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return iss, dir
}

// testServer is an Issuer served over TLS on a loopback port, its Authority being the
// server's URL.
type testServer struct {
	*httptest.Server
	iss           *identity.Issuer
	dir           *fakeDirectory
	tokenRequests atomic.Int64 // POSTs to the token endpoints

	mu     sync.Mutex
	grantN map[string]int // token requests by grant_type; guarded by mu
}

// grants returns how many token requests of grantType ts had.
func (ts *testServer) grants(grantType string) int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.grantN[grantType]
}

func newTestServer(t *testing.T) *testServer {
	t.Helper()
	return newTestServerWith(t, serverOptions{})
}

func newTestServerWith(t *testing.T, o serverOptions) *testServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{grantN: map[string]int{}}
	ts.iss, ts.dir = newIssuerWith(t, "https://"+l.Addr().String(), o)
	h := ts.iss.Handler()
	ts.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/token") {
			ts.tokenRequests.Add(1)
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			form, _ := url.ParseQuery(string(body))
			ts.mu.Lock()
			ts.grantN[form.Get("grant_type")]++
			ts.mu.Unlock()
		}
		h.ServeHTTP(w, r)
	}))
	ts.Listener.Close()
	ts.Listener = l
	ts.StartTLS()
	t.Cleanup(ts.Close)
	return ts
}

// payload returns the decoded claims of a JWT without verifying it, as az does.
func payload(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts; want 3", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("decode payload: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("unmarshal payload: %v", err)
	}
	return m
}

var epoch = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestIssueClaims(t *testing.T) {
	const authority = "https://127.0.0.1:8443"
	iss := newIssuer(t, authority, func() time.Time { return epoch })
	tests := []struct {
		p        identity.Principal
		audience string
		want     map[string]any
	}{
		{servicePrincipal, "https://management.azure.com/", map[string]any{
			"aud": "https://management.azure.com/", "iss": authority + "/" + testTenant + "/v2.0",
			"iat": 1772366400.0, "nbf": 1772366400.0, "exp": 1772370000.0,
			"tid": testTenant, "oid": testSPOID, "sub": testSPOID,
			"appid": testClientID, "azp": testClientID, "app_displayname": "pglink-admin",
			"idtyp": "app", "ver": "2.0",
		}},
		{user, "https://127.0.0.1:8443", map[string]any{
			"aud": "https://127.0.0.1:8443", "iss": authority + "/" + testTenant + "/v2.0",
			"iat": 1772366400.0, "nbf": 1772366400.0, "exp": 1772370000.0,
			"tid": testTenant, "oid": testUserOID, "sub": testUserOID,
			"upn": testUser, "unique_name": testUser, "name": testUser,
			"idtyp": "user", "ver": "2.0",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.p.Kind, func(t *testing.T) {
			token, expires, err := iss.Issue(tt.p, tt.audience)
			if err != nil {
				t.Fatalf("Issue: %v", err)
			}
			if want := epoch.Add(time.Hour); !expires.Equal(want) {
				t.Errorf("Issue expires = %v; want %v", expires, want)
			}
			if got := payload(t, token); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("claims = %v\nwant %v", got, tt.want)
			}
			h, _, err := jwt.NewParser().ParseUnverified(token, jwt.MapClaims{})
			if err != nil {
				t.Fatal(err)
			}
			if h.Header["alg"] != "RS256" || h.Header["typ"] != "JWT" || h.Header["kid"] == "" {
				t.Errorf("header = %v; want alg RS256, typ JWT, a kid", h.Header)
			}
			got, err := iss.Verify(token)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if got != tt.p {
				t.Errorf("Verify = %+v; want %+v", got, tt.p)
			}
		})
	}
}

// TestIssueFor: a token one replica issues for another (same tenant and keys, another
// authority) verifies there, for the same principal and session, and expires as asked; the
// issuing replica itself does not accept it.
func TestIssueFor(t *testing.T) {
	a := newIssuer(t, "https://127.0.0.1:8443", func() time.Time { return epoch })
	b := newIssuer(t, "https://127.0.0.2:8443", func() time.Time { return epoch })
	p := user
	p.SessionID = "s1"
	token, err := a.IssueFor(p, "https://127.0.0.2:8443/", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	got, err := b.Verify(token)
	if err != nil || got.ObjectID != p.ObjectID || got.Name != p.Name || got.SessionID != "s1" {
		t.Errorf("the other replica verifies %+v, %v; want %+v", got, err, p)
	}
	if _, err := a.Verify(token); !errors.Is(err, identity.ErrInvalidToken) {
		t.Errorf("the issuing replica verifies its token for another: %v; want ErrInvalidToken", err)
	}
	late := newIssuer(t, "https://127.0.0.2:8443", func() time.Time { return epoch.Add(time.Minute + 2*time.Minute) })
	if _, err := late.Verify(token); !errors.Is(err, identity.ErrInvalidToken) {
		t.Errorf("verified after its lifetime (and the skew): %v; want ErrInvalidToken", err)
	}
	if _, err := a.IssueFor(p, "not a url", time.Minute); err == nil {
		t.Error("IssueFor a relative authority succeeded")
	}
}

func TestIssueRefuses(t *testing.T) {
	iss := newIssuer(t, "https://127.0.0.1:8443", nil)
	tests := []struct {
		name     string
		p        identity.Principal
		audience string
	}{
		{"unknown audience", user, "https://graph.microsoft.com"},
		{"no object id", identity.Principal{Kind: identity.KindUser, Name: "x"}, "https://management.azure.com/"},
		{"no kind", identity.Principal{ObjectID: "x"}, "https://management.azure.com/"},
		{"app without app id", identity.Principal{ObjectID: "x", Kind: identity.KindServicePrincipal}, "https://management.azure.com/"},
		{"other tenant", identity.Principal{ObjectID: "x", Kind: identity.KindUser, TenantID: "other"}, "https://management.azure.com/"},
	}
	for _, tt := range tests {
		if _, _, err := iss.Issue(tt.p, tt.audience); err == nil {
			t.Errorf("Issue(%s) succeeded; want an error", tt.name)
		}
	}
}

// badToken is a token an issuer must refuse at a given time.
type badToken struct {
	name  string
	token string
	at    time.Time
}

// badTokens returns tokens that an issuer with the test key, whose good token of
// servicePrincipal issued at epoch is good, must refuse.
func badTokens(t *testing.T, good string) []badToken {
	t.Helper()
	kid := func() string {
		h, _, err := jwt.NewParser().ParseUnverified(good, jwt.MapClaims{})
		if err != nil {
			t.Fatal(err)
		}
		return h.Header["kid"].(string)
	}()
	otherKey, err := identity.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	claims := func(edit func(jwt.MapClaims)) jwt.MapClaims {
		c := payload(t, good)
		edit(c)
		return jwt.MapClaims(c)
	}
	sign := func(method jwt.SigningMethod, key any, c jwt.MapClaims) string {
		t.Helper()
		tok := jwt.NewWithClaims(method, c)
		tok.Header["kid"] = kid
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	rs := func(edit func(jwt.MapClaims)) string { return sign(jwt.SigningMethodRS256, testKey(), claims(edit)) }
	pubDER := testKey().PublicKey.N.Bytes()
	pubPKIX, err := x509.MarshalPKIXPublicKey(&testKey().PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubPKIX})

	return []badToken{
		{"expired", good, epoch.Add(time.Hour + 2*time.Minute)},
		{"not yet valid", good, epoch.Add(-2 * time.Minute)},
		{"wrong audience", rs(func(c jwt.MapClaims) { c["aud"] = "https://graph.microsoft.com" }), epoch},
		{"audience array of unknown", rs(func(c jwt.MapClaims) { c["aud"] = []string{"https://graph.microsoft.com"} }), epoch},
		{"wrong issuer", rs(func(c jwt.MapClaims) { c["iss"] = "https://sts.windows.net/" + testTenant + "/" }), epoch},
		{"wrong tenant", rs(func(c jwt.MapClaims) { c["tid"] = "00000000-0000-0000-0000-000000000000" }), epoch},
		{"no exp", rs(func(c jwt.MapClaims) { delete(c, "exp") }), epoch},
		{"no oid", rs(func(c jwt.MapClaims) { delete(c, "oid") }), epoch},
		{"app without appid", rs(func(c jwt.MapClaims) { delete(c, "appid") }), epoch},
		{"unknown idtyp", rs(func(c jwt.MapClaims) { c["idtyp"] = "device" }), epoch},
		{"forged signature", sign(jwt.SigningMethodRS256, otherKey, claims(func(jwt.MapClaims) {})), epoch},
		{"alg none", sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(func(jwt.MapClaims) {})), epoch},
		{"alg HS256 keyed with the public key", sign(jwt.SigningMethodHS256, pubDER, claims(func(jwt.MapClaims) {})), epoch},
		{"alg HS256 keyed with the public key PEM", sign(jwt.SigningMethodHS256, pubPEM, claims(func(jwt.MapClaims) {})), epoch},
		{"alg RS512", sign(jwt.SigningMethodRS512, testKey(), claims(func(jwt.MapClaims) {})), epoch},
		{"tampered payload", func() string {
			p := strings.Split(good, ".")
			c := payload(t, good)
			c["oid"] = testUserOID
			b, _ := json.Marshal(c)
			return p[0] + "." + base64.RawURLEncoding.EncodeToString(b) + "." + p[2]
		}(), epoch},
		{"garbage", "not.a.jwt", epoch},
		{"empty", "", epoch},
	}
}

func TestVerifyRejects(t *testing.T) {
	const authority = "https://127.0.0.1:8443"
	now := epoch
	iss := newIssuer(t, authority, func() time.Time { return now })
	good, _, err := iss.Issue(servicePrincipal, "https://management.azure.com/")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range badTokens(t, good) {
		now = tt.at
		p, err := iss.Verify(tt.token)
		if !errors.Is(err, identity.ErrInvalidToken) {
			t.Errorf("Verify(%s) = %+v, %v; want ErrInvalidToken", tt.name, p, err)
		}
	}

	// Within the clock skew the token is still good, on both ends.
	for _, at := range []time.Time{epoch.Add(-30 * time.Second), epoch.Add(time.Hour + 30*time.Second)} {
		now = at
		if _, err := iss.Verify(good); err != nil {
			t.Errorf("Verify at %v = %v; want ok within the skew", at, err)
		}
	}

	// Another issuer (same key, other authority) does not accept the token.
	other := newIssuer(t, "https://pglink.example", func() time.Time { return epoch })
	if _, err := other.Verify(good); !errors.Is(err, identity.ErrInvalidToken) {
		t.Errorf("other issuer Verify = %v; want ErrInvalidToken", err)
	}
}

// bearer returns a request with token as its bearer token.
func bearer(token string) *http.Request {
	r := httptest.NewRequest("GET", "/subscriptions", nil)
	r.Header.Set("Authorization", "Bearer "+token)
	return r
}

// TestAuthenticateRejects: Authenticate refuses what Verify refuses, and tokens of principals
// or sessions the directory no longer knows as active, with ErrInvalidToken (401); a failure
// of the directory is another error (500).
func TestAuthenticateRejects(t *testing.T) {
	now := epoch
	iss, dir := newIssuerWith(t, "https://127.0.0.1:8443", serverOptions{now: func() time.Time { return now }})
	good, _, err := iss.Issue(servicePrincipal, "https://management.azure.com/")
	if err != nil {
		t.Fatal(err)
	}
	unknown, _, err := iss.Issue(identity.Principal{ObjectID: "0d2c4e6f-0000-4000-8000-000000000000", Kind: identity.KindUser, Name: "gone@pglink.example"}, "https://management.azure.com/")
	if err != nil {
		t.Fatal(err)
	}
	closed, _, err := iss.Issue(identity.Principal{ObjectID: testUserOID, Kind: identity.KindUser, Name: testUser, SessionID: "session-404"}, "https://management.azure.com/")
	if err != nil {
		t.Fatal(err)
	}
	tests := append(badTokens(t, good),
		badToken{"unknown principal", unknown, epoch},
		badToken{"closed session", closed, epoch})
	for _, tt := range tests {
		now = tt.at
		p, err := iss.Authenticate(bearer(tt.token))
		if !errors.Is(err, identity.ErrInvalidToken) {
			t.Errorf("Authenticate(%s) = %+v, %v; want ErrInvalidToken", tt.name, p, err)
		}
	}

	now = epoch
	if p, err := iss.Authenticate(bearer(good)); err != nil || p != servicePrincipal {
		t.Fatalf("Authenticate(good) = %+v, %v; want %+v", p, err, servicePrincipal)
	}
	dir.failActive(errors.New("store unavailable"))
	if _, err := iss.Authenticate(bearer(good)); err == nil || errors.Is(err, identity.ErrInvalidToken) {
		t.Errorf("Authenticate with a failing directory = %v; want an error that is not ErrInvalidToken", err)
	}
	dir.failActive(nil)
	dir.disable(testSPOID)
	if _, err := iss.Authenticate(bearer(good)); !errors.Is(err, identity.ErrInvalidToken) {
		t.Errorf("Authenticate(disabled principal's token) = %v; want ErrInvalidToken", err)
	}
}

func TestAuthenticate(t *testing.T) {
	iss := newIssuer(t, "https://127.0.0.1:8443", nil)
	token, _, err := iss.Issue(user, "https://management.azure.com")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		header string
		ok     bool
	}{
		{"Bearer " + token, true},
		{"bearer " + token, true},
		{"", false},
		{"Bearer", false},
		{"Bearer ", false},
		{"Basic " + token, false},
		{"Bearer x" + token, false},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/subscriptions", nil)
		if tt.header != "" {
			r.Header.Set("Authorization", tt.header)
		}
		p, err := iss.Authenticate(r)
		switch {
		case tt.ok && (err != nil || p != user):
			t.Errorf("Authenticate(%.20q) = %+v, %v; want %+v", tt.header, p, err, user)
		case !tt.ok && !errors.Is(err, identity.ErrInvalidToken):
			t.Errorf("Authenticate(%.20q) = %+v, %v; want ErrInvalidToken", tt.header, p, err)
		}
	}
}

func TestChallenge(t *testing.T) {
	got := identity.Challenge("https://127.0.0.1:8443/", testTenant)
	want := `Bearer authorization_uri="https://127.0.0.1:8443/` + testTenant + `", error="invalid_token", error_description="The access token is missing, invalid or expired. Get a new one from the authorization_uri."`
	if got != want {
		t.Errorf("Challenge = %s\nwant %s", got, want)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	good := identity.Config{TenantID: testTenant, Authority: "https://127.0.0.1:8443", Key: testKey(), Audiences: []string{"https://management.azure.com/"}}
	tests := []struct {
		name string
		edit func(*identity.Config)
	}{
		{"no tenant", func(c *identity.Config) { c.TenantID = "" }},
		{"tenant with slash", func(c *identity.Config) { c.TenantID = "a/b" }},
		{"relative authority", func(c *identity.Config) { c.Authority = "/aad" }},
		{"authority with a path", func(c *identity.Config) { c.Authority = "https://127.0.0.1:8443/aad" }},
		{"no key", func(c *identity.Config) { c.Key = nil }},
		{"no audiences", func(c *identity.Config) { c.Audiences = nil }},
		{"negative lifetime", func(c *identity.Config) { c.Lifetime = -time.Second }},
	}
	for _, tt := range tests {
		cfg := good
		tt.edit(&cfg)
		if _, err := identity.New(cfg, newFakeDirectory(t), nil); err == nil {
			t.Errorf("New(%s) succeeded; want an error", tt.name)
		}
	}
	if _, err := identity.New(good, nil, nil); err == nil {
		t.Errorf("New(nil directory) succeeded; want an error")
	}
	if _, err := identity.New(good, newFakeDirectory(t), nil); err != nil {
		t.Errorf("New(good) = %v", err)
	}
}

func TestDefaultAudiences(t *testing.T) {
	got := identity.DefaultAudiences("https://127.0.0.1:8443/")
	want := []string{
		"https://127.0.0.1:8443/", "https://127.0.0.1:8443",
		"https://management.azure.com/", "https://management.azure.com",
		"https://management.core.windows.net/", "https://management.core.windows.net",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("DefaultAudiences = %q; want %q", got, want)
	}
}

func TestKeyPersistence(t *testing.T) {
	pemBytes, err := identity.MarshalKey(testKey())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(pemBytes), "-----BEGIN PRIVATE KEY-----") {
		t.Errorf("MarshalKey = %.40q…; want a PKCS #8 PEM block", pemBytes)
	}
	k, err := identity.ParseKey(pemBytes)
	if err != nil {
		t.Fatalf("ParseKey: %v", err)
	}
	if !k.Equal(testKey()) {
		t.Fatalf("ParseKey(MarshalKey(k)) is not k")
	}

	// A token from before a restart verifies after it.
	before := newIssuer(t, "https://127.0.0.1:8443", nil)
	token, _, err := before.Issue(servicePrincipal, "https://management.azure.com/")
	if err != nil {
		t.Fatal(err)
	}
	after, err := identity.New(identity.Config{TenantID: testTenant, Authority: "https://127.0.0.1:8443", Key: k,
		Audiences: []string{"https://management.azure.com/"}}, newFakeDirectory(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := after.Verify(token); err != nil {
		t.Errorf("Verify after restart: %v", err)
	}

	for _, bad := range []string{"", "not pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
		"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"} {
		if _, err := identity.ParseKey([]byte(bad)); err == nil {
			t.Errorf("ParseKey(%.30q) succeeded; want an error", bad)
		}
	}
}

func TestSecrets(t *testing.T) {
	t.Parallel() // bcrypt is slow on purpose
	slow, err := identity.HashSecret(testPassword)
	if err != nil {
		t.Fatal(err)
	}
	if cost, err := bcrypt.Cost([]byte(slow)); err != nil || cost != bcrypt.DefaultCost {
		t.Errorf("HashSecret cost = %d, %v; want bcrypt at the default cost %d", cost, err, bcrypt.DefaultCost)
	}
	fast, err := identity.HashRandomSecret(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	fast2, err := identity.HashRandomSecret(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	if fast == fast2 {
		t.Errorf("HashRandomSecret twice gave %q both times; want distinct salts", fast)
	}
	tests := []struct {
		hash, secret string
		want         bool
	}{
		{slow, testPassword, true},
		{slow, testPassword + "x", false},
		{fast, testSecret, true},
		{fast2, testSecret, true},
		{fast, testSecret[:len(testSecret)-1], false},
		{fast, "", false},
		{"", "", false},
		{"sha256$", "", false},
		{"sha256$abc", testSecret, false},
		{"sha256$$", testSecret, false},
		{testSecret, testSecret, false}, // a plain-text "hash" never matches
	}
	for _, tt := range tests {
		if got := identity.CheckSecret(tt.hash, tt.secret); got != tt.want {
			t.Errorf("CheckSecret(%.20q, %.10q) = %v; want %v", tt.hash, tt.secret, got, tt.want)
		}
	}
	if _, err := identity.HashRandomSecret("short"); err == nil {
		t.Errorf("HashRandomSecret(short) succeeded; want an error")
	}
	if _, err := identity.HashSecret(strings.Repeat("x", 73)); err == nil {
		t.Errorf("HashSecret(73 bytes) succeeded; want an error")
	}
}

// TestImportsNoPglinkPackage keeps identity a leaf.
func TestImportsNoPglinkPackage(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range pkg.Imports {
		if strings.HasPrefix(imp, "github.com/pglink/pglink/") {
			t.Errorf("identity imports %s; it must import no other pglink package", imp)
		}
	}
}
