package identity_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/identity"
)

// countingDirectory counts the credential checks (the slow hashes) a Directory is asked for;
// block, if set, holds each check until it is closed.
type countingDirectory struct {
	*fakeDirectory
	checks  atomic.Int64
	block   chan struct{}
	started chan struct{} // receives once per check that started, if set
}

func (d *countingDirectory) wait() {
	if d.started != nil {
		d.started <- struct{}{}
	}
	if d.block != nil {
		<-d.block
	}
}

func (d *countingDirectory) ServicePrincipal(ctx context.Context, clientID, secret string) (identity.Principal, error) {
	d.checks.Add(1)
	d.wait()
	return d.fakeDirectory.ServicePrincipal(ctx, clientID, secret)
}

func (d *countingDirectory) User(ctx context.Context, username, password string) (identity.Principal, error) {
	d.checks.Add(1)
	d.wait()
	return d.fakeDirectory.User(ctx, username, password)
}

// testClock is a settable clock.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type throttleFixture struct {
	iss   *identity.Issuer
	dir   *countingDirectory
	clock *testClock
}

func newThrottleFixture(t *testing.T, limits identity.SignInLimits) *throttleFixture {
	t.Helper()
	f := &throttleFixture{dir: &countingDirectory{fakeDirectory: newFakeDirectory(t)}, clock: &testClock{t: time.Unix(1_800_000_000, 0)}}
	iss, err := identity.New(identity.Config{
		TenantID:  testTenant,
		Authority: "https://127.0.0.1:8443",
		Key:       testKey(),
		Audiences: identity.DefaultAudiences("https://127.0.0.1:8443"),
		Now:       f.clock.now,
		SignIn:    limits,
	}, f.dir, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	f.iss = iss
	return f
}

// tokenResult is a token endpoint answer.
type tokenResult struct {
	status     int
	code       string
	aadsts     float64
	retryAfter string
	desc       string
}

// password asks for a token with the password grant from client address addr.
func (f *throttleFixture) password(t *testing.T, addr, username, password string) tokenResult {
	t.Helper()
	return f.post(t, "/"+testTenant+"/oauth2/v2.0/token", addr, url.Values{"grant_type": {"password"}, "client_id": {"04b07795-8ddb-461a-bbee-02f9e1bf7b46"},
		"username": {username}, "password": {password}, "scope": {"https://127.0.0.1:8443/.default"}})
}

func (f *throttleFixture) clientSecret(t *testing.T, addr, clientID, secret string) tokenResult {
	t.Helper()
	return f.post(t, "/"+testTenant+"/oauth2/v2.0/token", addr, url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID},
		"client_secret": {secret}, "scope": {"https://127.0.0.1:8443/.default"}})
}

func (f *throttleFixture) post(t *testing.T, path, addr string, form url.Values) tokenResult {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.RemoteAddr = addr
	w := httptest.NewRecorder()
	f.iss.Handler().ServeHTTP(w, r)
	var body struct {
		Error       string    `json:"error"`
		Description string    `json:"error_description"`
		Codes       []float64 `json:"error_codes"`
	}
	json.Unmarshal(w.Body.Bytes(), &body)
	res := tokenResult{status: w.Code, code: body.Error, retryAfter: w.Header().Get("Retry-After"), desc: body.Description}
	if len(body.Codes) > 0 {
		res.aadsts = body.Codes[0]
	}
	return res
}

const (
	addrA = "127.0.0.1:40001"
	addrB = "127.0.0.2:40002"
)

// TestWrongPasswordsLockTheLoginAtThatAddress: after PerLoginAddress wrong passwords from one
// address, the next attempt is refused without a credential check (even with the right
// password), the right password from another address still works, and the lock lifts as the
// window passes.
func TestWrongPasswordsLockTheLoginAtThatAddress(t *testing.T) {
	f := newThrottleFixture(t, identity.SignInLimits{Window: time.Minute, PerLoginAddress: 5, PerAddress: 100, PerLogin: 100})
	for n := range 5 {
		if r := f.password(t, addrA, testUser, "wrong"); r.status != 400 || r.code != "invalid_grant" || r.aadsts != 50126 {
			t.Fatalf("wrong password #%d = %+v; want 400 invalid_grant AADSTS50126", n+1, r)
		}
	}
	if got := f.dir.checks.Load(); got != 5 {
		t.Fatalf("credential checks after 5 attempts = %d; want 5", got)
	}
	for _, pw := range []string{"wrong", testPassword} {
		r := f.password(t, addrA, testUser, pw)
		if r.status != 400 || r.code != "invalid_grant" || r.aadsts != 50053 || r.retryAfter == "" || !strings.Contains(r.desc, "locked") {
			t.Errorf("attempt with %q after 5 failures = %+v; want 400 invalid_grant AADSTS50053 with Retry-After", pw, r)
		}
	}
	if got := f.dir.checks.Load(); got != 5 {
		t.Errorf("credential checks = %d; want 5: a locked sign-in must be refused before the hash", got)
	}
	// The same login from another address is not locked out.
	if r := f.password(t, addrB, testUser, testPassword); r.status != 200 {
		t.Errorf("right password from another address = %+v; want 200", r)
	}
	// Logins are case-insensitive: no way around the lock by changing case.
	if r := f.password(t, addrA, strings.ToUpper(testUser), testPassword); r.aadsts != 50053 {
		t.Errorf("upper-cased login from the locked address = %+v; want AADSTS50053", r)
	}
	f.clock.advance(time.Minute)
	if r := f.password(t, addrA, testUser, testPassword); r.status != 200 {
		t.Errorf("right password after the window = %+v; want 200", r)
	}
}

// TestWrongPasswordsLockTheAddress: failures over many logins from one address lock that
// address for every login, and only that address.
func TestWrongPasswordsLockTheAddress(t *testing.T) {
	f := newThrottleFixture(t, identity.SignInLimits{Window: time.Minute, PerLoginAddress: 100, PerAddress: 8, PerLogin: 100})
	for n := range 8 {
		f.password(t, addrA, fmt.Sprintf("user%d@pglink.example", n), "wrong")
	}
	checks := f.dir.checks.Load()
	if r := f.password(t, addrA, testUser, testPassword); r.aadsts != 50053 {
		t.Errorf("right password from an address with 8 failures = %+v; want AADSTS50053", r)
	}
	if got := f.dir.checks.Load(); got != checks {
		t.Errorf("a locked address still costs credential checks (%d, was %d)", got, checks)
	}
	if r := f.password(t, addrB, testUser, testPassword); r.status != 200 {
		t.Errorf("right password from another address = %+v; want 200", r)
	}
}

// TestWrongSecretsLockTheClient: client secrets are throttled like passwords, with
// invalid_client (401), which clients do not retry.
func TestWrongSecretsLockTheClient(t *testing.T) {
	f := newThrottleFixture(t, identity.SignInLimits{Window: time.Minute, PerLoginAddress: 3, PerAddress: 100, PerLogin: 100})
	for range 3 {
		if r := f.clientSecret(t, addrA, testClientID, "wrong"); r.status != 401 || r.aadsts != 7000215 {
			t.Fatalf("wrong secret = %+v; want 401 AADSTS7000215", r)
		}
	}
	if r := f.clientSecret(t, addrA, testClientID, testSecret); r.status != 401 || r.code != "invalid_client" || r.aadsts != 50053 {
		t.Errorf("right secret after 3 failures = %+v; want 401 invalid_client AADSTS50053", r)
	}
	if got := f.dir.checks.Load(); got != 3 {
		t.Errorf("credential checks = %d; want 3", got)
	}
	// The managed identity endpoint shares the counters.
	r := httptest.NewRequest(http.MethodGet, "/msi/token?resource=https://127.0.0.1:8443", nil)
	r.Header.Set("Secret", testClientID+":"+testSecret)
	r.RemoteAddr = addrA
	w := httptest.NewRecorder()
	f.iss.Handler().ServeHTTP(w, r)
	if w.Code != 401 || !strings.Contains(w.Body.String(), "locked") {
		t.Errorf("managed identity token from the locked address = %d %s; want 401 locked", w.Code, w.Body)
	}
	if got := f.dir.checks.Load(); got != 3 {
		t.Errorf("credential checks = %d; want 3", got)
	}
	if r := f.clientSecret(t, addrB, testClientID, testSecret); r.status != 200 {
		t.Errorf("right secret from another address = %+v; want 200", r)
	}
}

// TestCredentialChecksAreBounded: with MaxConcurrentChecks checks running and
// MaxWaitingChecks waiting, a further sign-in is answered 429 with Retry-After at once
// instead of queueing CPU work; once the checks finish, sign-ins work again.
func TestCredentialChecksAreBounded(t *testing.T) {
	f := newThrottleFixture(t, identity.SignInLimits{MaxConcurrentChecks: 1, MaxWaitingChecks: 1})
	f.dir.block = make(chan struct{})
	f.dir.started = make(chan struct{}, 4)
	results := make(chan tokenResult, 3)
	signIn := func() { results <- f.clientSecret(t, addrA, testClientID, testSecret) }
	go signIn()
	<-f.dir.started // one check runs and holds the only slot
	// Of two more sign-ins, one waits for the slot and the other finds the queue full.
	go signIn()
	go signIn()
	var r tokenResult
	select {
	case r = <-results:
	case <-time.After(30 * time.Second): // generous: the answer is due at once
		close(f.dir.block)
		t.Fatalf("no sign-in was refused with 1 check running and 1 waiting; all queued")
	}
	if r.status != http.StatusTooManyRequests || r.code != "temporarily_unavailable" || r.retryAfter == "" {
		t.Errorf("sign-in with 1 check running and 1 waiting = %+v; want 429 temporarily_unavailable with Retry-After", r)
	}
	close(f.dir.block)
	for range 2 {
		if r := <-results; r.status != 200 {
			t.Errorf("a sign-in that ran or waited for its check = %+v; want 200", r)
		}
	}
	if got := f.dir.checks.Load(); got != 2 {
		t.Errorf("credential checks = %d; want 2 (the refused sign-in costs none)", got)
	}
}

// TestThrottleMemoryIsBounded: failures from more addresses than MaxKeys neither grow the
// counters without bound nor lock anyone who has not failed.
func TestThrottleMemoryIsBounded(t *testing.T) {
	f := newThrottleFixture(t, identity.SignInLimits{Window: time.Minute, PerLoginAddress: 3, PerAddress: 3, PerLogin: 1000, MaxKeys: 50})
	for n := range 500 {
		f.password(t, fmt.Sprintf("127.1.%d.%d:1", n/250, n%250), fmt.Sprintf("u%d@x", n), "wrong")
	}
	if r := f.password(t, addrB, testUser, testPassword); r.status != 200 {
		t.Errorf("sign-in after a flood of other failures = %+v; want 200", r)
	}
}

// TestTokenFormBodyIsBounded: a token request over the form limit is refused with 413.
func TestTokenFormBodyIsBounded(t *testing.T) {
	f := newThrottleFixture(t, identity.SignInLimits{})
	r := f.post(t, "/"+testTenant+"/oauth2/v2.0/token", addrA, url.Values{"grant_type": {"password"}, "pad": {strings.Repeat("x", 1<<20)}})
	if r.status != http.StatusRequestEntityTooLarge || r.code != "invalid_request" {
		t.Errorf("1 MiB token request = %+v; want 413 invalid_request", r)
	}
}
