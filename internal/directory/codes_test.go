package directory

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/identity"
	"github.com/pglink/pglink/internal/pgtest"
	"github.com/pglink/pglink/internal/store"
	"github.com/pglink/pglink/internal/store/postgres"
	"github.com/pglink/pglink/internal/store/sqlite"
)

// pg is the PostgreSQL cluster of this test binary, started by the first test that needs one
// and stopped by TestMain.
var pg struct {
	once    sync.Once
	cluster *pgtest.Cluster
	err     error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if pg.cluster != nil {
		if err := pg.cluster.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop PostgreSQL:", err)
		}
	}
	os.Exit(code)
}

// backend is a kind of store to run a test against.
type backend struct {
	name string
	// open opens a new, empty store and returns it with a function that opens another handle
	// on it, as each pglink process sharing a store has its own (for SQLite, which one process
	// owns, it returns the same handle). Handles are closed when t ends.
	open func(t *testing.T) (st store.Store, another func() store.Store)
}

func backends() []backend {
	logger := func(t *testing.T) *slog.Logger { return slog.New(slog.NewTextHandler(t.Output(), nil)) }
	return []backend{
		{"sqlite", func(t *testing.T) (store.Store, func() store.Store) {
			t.Helper()
			db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "pglink.db"), logger(t))
			if err != nil {
				t.Fatalf("open store: %v", err)
			}
			t.Cleanup(func() { db.Close() })
			return db, func() store.Store { return db }
		}},
		{"postgres", func(t *testing.T) (store.Store, func() store.Store) {
			t.Helper()
			pg.once.Do(func() { pg.cluster, pg.err = pgtest.Start() })
			pgtest.Require(t, pg.err)
			url := pg.cluster.CreateDatabase(t)
			open := func() store.Store {
				db, err := postgres.Open(t.Context(), url, logger(t))
				if err != nil {
					t.Fatalf("open store: %v", err)
				}
				t.Cleanup(func() { db.Close() })
				return db
			}
			return open(), open
		}},
	}
}

// codeFixture is a store with user alice and a directory over it with a settable clock.
type codeFixture struct {
	st    store.Store
	d     *Directory
	clock *clock
	alice identity.Principal
}

func newCodeFixture(t *testing.T, st store.Store) *codeFixture {
	t.Helper()
	if err := EnsureBootstrap(t.Context(), st, KindUser, "alice@example.com", "Passw0rd!x", "Alice"); err != nil {
		t.Fatal(err)
	}
	f := &codeFixture{st: st, d: New(st, tenant), clock: &clock{time.Now()}}
	f.d.SetClock(f.clock.now)
	p, dd := principalDoc(t, st, "alice@example.com")
	f.alice = dd.principal(p, tenant)
	return f
}

// request returns what a code for alice is bound to, valid for five minutes from now.
func (f *codeFixture) request(n int) identity.Code {
	return identity.Code{ClientID: "portal", RedirectURI: fmt.Sprintf("http://127.0.0.1:%d/callback", 50000+n),
		Challenge: strings.Repeat("c", 43), Scope: "https://management.azure.com/.default openid", Nonce: fmt.Sprintf("nonce-%d", n),
		Principal: f.alice, Expires: f.clock.t.Add(5 * time.Minute)}
}

func (f *codeFixture) issue(t *testing.T, n int) string {
	t.Helper()
	c, err := f.d.IssueCode(t.Context(), f.request(n))
	if err != nil {
		t.Fatalf("IssueCode = %v", err)
	}
	return c
}

// accept is a check that accepts any code and records what it was given.
func accept(got *identity.Code) func(identity.Code) error {
	return func(c identity.Code) error {
		*got = c
		return nil
	}
}

func noCheck(t *testing.T) func(identity.Code) error {
	return func(c identity.Code) error {
		t.Errorf("check called with %+v; want no call", c)
		return nil
	}
}

func TestAuthorizationCodes(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			for _, tt := range []struct {
				name string
				test func(*testing.T, *codeFixture)
			}{
				{"redeem", testRedeemCode},
				{"replay", testReplayedCode},
				{"refused", testRefusedCode},
				{"expiry", testCodeExpiry},
				{"bounds", testCodeBounds},
				{"malformed", testMalformedCodes},
				{"disabled", testCodeOfDisabledUser},
			} {
				t.Run(tt.name, func(t *testing.T) {
					st, _ := b.open(t)
					tt.test(t, newCodeFixture(t, st))
				})
			}
		})
	}
}

var codeFormat = regexp.MustCompile(`^([0-9a-f-]{36})\.[A-Za-z0-9_-]{43}$`)

func testRedeemCode(t *testing.T, f *codeFixture) {
	ctx := t.Context()
	code := f.issue(t, 1)
	if m := codeFormat.FindStringSubmatch(code); m == nil || m[1] != f.alice.ObjectID {
		t.Fatalf("IssueCode = %q; want %s.<43 base64url characters>", code, f.alice.ObjectID)
	}
	p, dd := principalDoc(t, f.st, "alice@example.com")
	if len(dd.Codes) != 1 || dd.Codes[0].Digest != digestOf(code) || strings.Contains(string(p.Body), code[37:]) {
		t.Fatalf("stored codes = %+v; want one, its digest only", dd.Codes)
	}

	var got identity.Code
	u, rt, err := f.d.RedeemCode(ctx, code, accept(&got))
	if err != nil {
		t.Fatalf("RedeemCode = %v", err)
	}
	want := f.request(1)
	if got.Expires.Equal(want.Expires) {
		want.Expires = got.Expires // the stored time has no monotonic reading
	}
	if got != want {
		t.Errorf("check got %+v; want %+v", got, want)
	}
	if u.ObjectID != f.alice.ObjectID || u.Kind != KindUser || u.Name != "alice@example.com" || u.SessionID == "" || rt == "" {
		t.Fatalf("RedeemCode = %+v, refresh token %t; want alice with a session and a refresh token", u, rt != "")
	}
	// The code is marked redeemed, with the session it started, in the write that opened it.
	_, dd = principalDoc(t, f.st, "alice@example.com")
	if len(dd.Codes) != 1 || !dd.Codes[0].Redeemed || dd.Codes[0].SessionID != u.SessionID || sessionIndex(dd.Sessions, u.SessionID) < 0 {
		t.Errorf("after RedeemCode: codes %+v, sessions %+v; want the code redeemed with session %s, which is open", dd.Codes, dd.Sessions, u.SessionID)
	}
	if err := f.d.Active(ctx, u.ObjectID, u.SessionID); err != nil {
		t.Errorf("Active(the code's session) = %v; want nil", err)
	}
	if _, sid, _, err := f.d.Refresh(ctx, rt); err != nil || sid != u.SessionID {
		t.Errorf("Refresh(the code's refresh token) = %q, %v; want session %s", sid, err, u.SessionID)
	}
}

func testReplayedCode(t *testing.T, f *codeFixture) {
	ctx := t.Context()
	code := f.issue(t, 1)
	var got identity.Code
	u, rt, err := f.d.RedeemCode(ctx, code, accept(&got))
	if err != nil {
		t.Fatal(err)
	}
	other, otherRT, err := f.d.StartSession(ctx, f.alice) // a session the replay leaves alone
	if err != nil {
		t.Fatal(err)
	}
	for n := range 2 {
		if _, _, err := f.d.RedeemCode(ctx, code, noCheck(t)); !errors.Is(err, identity.ErrCodeRedeemed) {
			t.Errorf("RedeemCode(replay %d) = %v; want ErrCodeRedeemed", n+1, err)
		}
	}
	if err := f.d.Active(ctx, u.ObjectID, u.SessionID); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Errorf("Active(session of a replayed code) = %v; want ErrInvalidCredentials", err)
	}
	if _, _, _, err := f.d.Refresh(ctx, rt); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Errorf("Refresh(token of a replayed code) = %v; want ErrInvalidCredentials", err)
	}
	if err := f.d.Active(ctx, u.ObjectID, other); err != nil {
		t.Errorf("Active(another session) = %v; want nil", err)
	}
	p, dd := principalDoc(t, f.st, "alice@example.com")
	if body := string(p.Body); strings.Contains(body, rt) || strings.Contains(body, otherRT) {
		t.Errorf("stored principal = %s; want no refresh token in clear", body)
	}
	if len(dd.Codes) != 1 || dd.Codes[0].SessionID != "" {
		t.Errorf("codes after a replay = %+v; want the code, its session forgotten", dd.Codes)
	}
}

// testRefusedCode: a code whose check fails is used up, and starts no session.
func testRefusedCode(t *testing.T, f *codeFixture) {
	ctx := t.Context()
	code := f.issue(t, 1)
	refused := errors.New("wrong verifier")
	if _, _, err := f.d.RedeemCode(ctx, code, func(identity.Code) error { return refused }); err != refused {
		t.Fatalf("RedeemCode(check fails) = %v; want the check's error", err)
	}
	if _, dd := principalDoc(t, f.st, "alice@example.com"); len(dd.Sessions) != 0 || len(dd.Codes) != 1 || !dd.Codes[0].Redeemed {
		t.Errorf("after a refused redemption: sessions %+v, codes %+v; want no session and the code used up", dd.Sessions, dd.Codes)
	}
	if _, _, err := f.d.RedeemCode(ctx, code, noCheck(t)); !errors.Is(err, identity.ErrCodeRedeemed) {
		t.Errorf("RedeemCode(after a refused redemption) = %v; want ErrCodeRedeemed", err)
	}
}

func testCodeExpiry(t *testing.T, f *codeFixture) {
	ctx := t.Context()
	start := f.clock.t
	late, inTime := f.issue(t, 1), f.issue(t, 2)
	f.clock.t = start.Add(5*time.Minute - time.Second)
	var got identity.Code
	if _, _, err := f.d.RedeemCode(ctx, inTime, accept(&got)); err != nil {
		t.Errorf("RedeemCode(within 5 minutes) = %v; want nil", err)
	}
	f.clock.t = start.Add(5 * time.Minute)
	if _, _, err := f.d.RedeemCode(ctx, late, noCheck(t)); !errors.Is(err, identity.ErrCodeExpired) {
		t.Errorf("RedeemCode(after 5 minutes) = %v; want ErrCodeExpired", err)
	}
	// Expired codes, redeemed or not, are dropped by the write that found them out.
	if _, dd := principalDoc(t, f.st, "alice@example.com"); len(dd.Codes) != 0 {
		t.Errorf("codes after they expired = %+v; want none", dd.Codes)
	}
	if _, _, err := f.d.RedeemCode(ctx, late, noCheck(t)); !errors.Is(err, identity.ErrCodeInvalid) {
		t.Errorf("RedeemCode(expired and dropped) = %v; want ErrCodeInvalid", err)
	}
	// Any write of the user's document drops expired codes: here, a new session's.
	f.issue(t, 3)
	f.clock.t = f.clock.t.Add(time.Hour)
	if _, _, err := f.d.StartSession(ctx, f.alice); err != nil {
		t.Fatal(err)
	}
	if _, dd := principalDoc(t, f.st, "alice@example.com"); len(dd.Codes) != 0 {
		t.Errorf("codes after a session started an hour later = %+v; want none", dd.Codes)
	}
}

// testCodeBounds: a user has at most MaxPendingCodes codes; redeemed ones make room, oldest
// first; ones waiting to be redeemed do not, until they expire.
func testCodeBounds(t *testing.T, f *codeFixture) {
	ctx := t.Context()
	codes := make([]string, MaxPendingCodes)
	for n := range codes {
		codes[n] = f.issue(t, n)
	}
	if _, err := f.d.IssueCode(ctx, f.request(99)); !errors.Is(err, identity.ErrTooManyCodes) {
		t.Fatalf("IssueCode(with %d codes waiting) = %v; want ErrTooManyCodes", MaxPendingCodes, err)
	}
	var got identity.Code
	for _, c := range codes[3:5] {
		if _, _, err := f.d.RedeemCode(ctx, c, accept(&got)); err != nil {
			t.Fatal(err)
		}
	}
	f.issue(t, 100) // drops codes[3], the oldest redeemed
	if _, _, err := f.d.RedeemCode(ctx, codes[3], noCheck(t)); !errors.Is(err, identity.ErrCodeInvalid) {
		t.Errorf("RedeemCode(redeemed code dropped for a new one) = %v; want ErrCodeInvalid", err)
	}
	if _, _, err := f.d.RedeemCode(ctx, codes[4], noCheck(t)); !errors.Is(err, identity.ErrCodeRedeemed) {
		t.Errorf("RedeemCode(redeemed code kept) = %v; want ErrCodeRedeemed", err)
	}
	f.issue(t, 101) // drops codes[4]
	if _, err := f.d.IssueCode(ctx, f.request(102)); !errors.Is(err, identity.ErrTooManyCodes) {
		t.Errorf("IssueCode(with %d codes waiting) = %v; want ErrTooManyCodes", MaxPendingCodes, err)
	}
	if _, dd := principalDoc(t, f.st, "alice@example.com"); len(dd.Codes) != MaxPendingCodes {
		t.Errorf("stored codes = %d; want %d", len(dd.Codes), MaxPendingCodes)
	}
	f.clock.t = f.clock.t.Add(5 * time.Minute)
	f.issue(t, 103) // the expired codes make room
	if _, dd := principalDoc(t, f.st, "alice@example.com"); len(dd.Codes) != 1 {
		t.Errorf("stored codes after the others expired = %d; want 1", len(dd.Codes))
	}
}

// testMalformedCodes: anything but a code issued is not valid, and costs no store error.
func testMalformedCodes(t *testing.T, f *codeFixture) {
	good := f.issue(t, 1)
	oid, secret, _ := strings.Cut(good, ".")
	if err := EnsureBootstrap(t.Context(), f.st, KindServicePrincipal, "11111111-2222-4333-8444-555555555555", NewSecret(), "app"); err != nil {
		t.Fatal(err)
	}
	other := strings.Repeat("A", 43)
	for _, bad := range []string{
		"", ".", oid, oid + ".", "." + secret, secret, oid + "." + secret[:42], oid + "." + secret + "A",
		oid + "." + secret[:42] + "=", oid + "." + secret[:42] + ".", oid + ".." + secret[1:],
		oid + "." + other, strings.ToUpper(oid) + "." + other,
		"00000000-0000-4000-8000-000000000000." + secret,
		"11111111-2222-4333-8444-555555555555." + secret, // a service principal's client id, not an object id
		"alice@example.com." + secret, "alice@example." + secret,
		"rt1." + oid + ".sid." + secret,
	} {
		if _, _, err := f.d.RedeemCode(t.Context(), bad, noCheck(t)); !errors.Is(err, identity.ErrCodeInvalid) {
			t.Errorf("RedeemCode(%q) = %v; want ErrCodeInvalid", bad, err)
		}
	}
	var got identity.Code
	if _, _, err := f.d.RedeemCode(t.Context(), good, accept(&got)); err != nil {
		t.Errorf("RedeemCode(the good code after the bad ones) = %v; want nil", err)
	}
}

func testCodeOfDisabledUser(t *testing.T, f *codeFixture) {
	ctx := t.Context()
	code := f.issue(t, 1)
	p, dd := principalDoc(t, f.st, "alice@example.com")
	dd.Disabled = true
	putDoc(t, f.st, p, dd)
	if _, _, err := f.d.RedeemCode(ctx, code, noCheck(t)); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Errorf("RedeemCode(code of a user disabled since) = %v; want ErrInvalidCredentials", err)
	}
	if _, err := f.d.IssueCode(ctx, f.request(2)); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Errorf("IssueCode(disabled user) = %v; want ErrInvalidCredentials", err)
	}
	sp := identity.Principal{ObjectID: "00000000-0000-4000-8000-000000000000", Kind: KindUser}
	if _, err := f.d.IssueCode(ctx, identity.Code{Principal: sp, Expires: f.clock.t.Add(time.Minute)}); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Errorf("IssueCode(unknown user) = %v; want ErrInvalidCredentials", err)
	}
}

// TestCodeRedeemedOnce: processes that share a store, each with its own handle on it, redeem a
// code at the same time; exactly one starts a session, the others find it redeemed.
func TestCodeRedeemedOnce(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			st, another := b.open(t)
			f := newCodeFixture(t, st)
			handles := []store.Store{st, another()}
			const n = 6
			for round := range 3 {
				code := f.issue(t, round)
				var (
					wg             sync.WaitGroup
					mu             sync.Mutex
					wins, redeemed int
					others         []error
				)
				for i := range n {
					d := New(handles[i%len(handles)], tenant)
					wg.Go(func() {
						var got identity.Code
						_, _, err := d.RedeemCode(t.Context(), code, accept(&got))
						mu.Lock()
						defer mu.Unlock()
						switch {
						case err == nil:
							wins++
						case errors.Is(err, identity.ErrCodeRedeemed):
							redeemed++
						default:
							others = append(others, err)
						}
					})
				}
				wg.Wait()
				if wins != 1 || redeemed != n-1 || len(others) > 0 {
					t.Errorf("round %d: %d redemptions, %d found it redeemed, errors %v; want 1, %d, none", round, wins, redeemed, others, n-1)
				}
			}
		})
	}
}
