package directory

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/identity"
	"github.com/pglink/pglink/internal/store"
	"github.com/pglink/pglink/internal/store/sqlite"
)

const tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"

func openStore(t *testing.T) store.Store {
	t.Helper()
	db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "pglink.db"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// clock is a settable clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func principalDoc(t *testing.T, st store.Store, login string) (store.Principal, doc) {
	t.Helper()
	var p store.Principal
	if err := st.View(t.Context(), func(tx store.Tx) error {
		var err error
		p, err = tx.Principal(t.Context(), login)
		return err
	}); err != nil {
		t.Fatalf("Principal(%s) = %v", login, err)
	}
	d, err := decode(p)
	if err != nil {
		t.Fatal(err)
	}
	return p, d
}

func putDoc(t *testing.T, st store.Store, p store.Principal, d doc) {
	t.Helper()
	p.Body = encode(d)
	if err := st.Update(t.Context(), func(tx store.Tx) error { return tx.PutPrincipal(t.Context(), p) }); err != nil {
		t.Fatal(err)
	}
}

func TestServicePrincipalCredentials(t *testing.T) {
	st := openStore(t)
	ctx := t.Context()
	const appID = "11111111-2222-4333-8444-555555555555"
	first := NewSecret()
	if err := EnsureBootstrap(ctx, st, KindServicePrincipal, appID, first, "app"); err != nil {
		t.Fatal(err)
	}
	c := &clock{time.Now()}
	d := New(st, tenant)
	d.SetClock(c.now)

	p, err := d.ServicePrincipal(ctx, appID, first)
	if err != nil || p.AppID != appID || p.Kind != KindServicePrincipal || p.TenantID != tenant {
		t.Fatalf("ServicePrincipal(first secret) = %+v, %v; want the app", p, err)
	}
	// A second credential that ends in an hour: both work until then, only the first after.
	stored, dd := principalDoc(t, st, appID)
	second := NewSecret()
	cred, err := newCredential(second, "ci", c.t, c.t.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	dd.Credentials = append(dd.Credentials, cred)
	putDoc(t, st, stored, dd)
	for _, s := range []string{first, second} {
		if _, err := d.ServicePrincipal(ctx, appID, s); err != nil {
			t.Errorf("ServicePrincipal(secret %.3s…) = %v; want nil", s, err)
		}
	}
	c.t = c.t.Add(2 * time.Hour)
	if _, err := d.ServicePrincipal(ctx, appID, second); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Errorf("ServicePrincipal(expired secret) = %v; want ErrInvalidCredentials", err)
	}
	if _, err := d.ServicePrincipal(ctx, appID, first); err != nil {
		t.Errorf("ServicePrincipal(first secret after the second expired) = %v; want nil", err)
	}
	for _, bad := range []string{"", "x", first[:3] + "wrong", first + "x", strings.ToUpper(first)} {
		if _, err := d.ServicePrincipal(ctx, appID, bad); !errors.Is(err, identity.ErrInvalidCredentials) {
			t.Errorf("ServicePrincipal(%q) = %v; want ErrInvalidCredentials", bad, err)
		}
	}
	if _, err := d.User(ctx, appID, first); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Errorf("User(service principal's app id) = %v; want ErrInvalidCredentials", err)
	}
	// Secrets are stored as bcrypt hashes only.
	stored, _ = principalDoc(t, st, appID)
	if body := string(stored.Body); strings.Contains(body, first) || strings.Contains(body, second) || !strings.Contains(body, "$2a$") {
		t.Errorf("stored principal = %s; want bcrypt hashes and no secret", body)
	}
	// Disabled: refused, and Active says so.
	stored, dd = principalDoc(t, st, appID)
	if err := d.Active(ctx, stored.ObjectID, ""); err != nil {
		t.Errorf("Active(enabled) = %v; want nil", err)
	}
	dd.Disabled = true
	putDoc(t, st, stored, dd)
	if _, err := d.ServicePrincipal(ctx, appID, first); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Errorf("ServicePrincipal(disabled) = %v; want ErrInvalidCredentials", err)
	}
	if err := d.Active(ctx, stored.ObjectID, ""); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Errorf("Active(disabled) = %v; want ErrInvalidCredentials", err)
	}
	if err := d.Active(ctx, appID, ""); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Errorf("Active(an app id as oid) = %v; want ErrInvalidCredentials", err)
	}
	if err := d.Active(ctx, "00000000-0000-4000-8000-000000000000", ""); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Errorf("Active(unknown oid) = %v; want ErrInvalidCredentials", err)
	}
}

func TestEnsureBootstrapMigratesFastHash(t *testing.T) {
	st := openStore(t)
	ctx := t.Context()
	const appID = "11111111-2222-4333-8444-666666666666"
	secret := NewSecret()
	legacy, err := identity.HashRandomSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	putDoc(t, st, store.Principal{ObjectID: "aaaaaaaa-2222-4333-8444-666666666666", Login: appID},
		doc{Kind: KindServicePrincipal, DisplayName: "old", AppID: appID, SecretHash: legacy})
	if err := EnsureBootstrap(ctx, st, KindServicePrincipal, appID, secret, "pglink-admin"); err != nil {
		t.Fatal(err)
	}
	_, dd := principalDoc(t, st, appID)
	if dd.SecretHash != "" || len(dd.Credentials) != 1 || !strings.HasPrefix(dd.Credentials[0].Hash, "$2a$") {
		t.Fatalf("after EnsureBootstrap: %+v; want one bcrypt credential and no fast hash", dd)
	}
	if _, err := New(st, tenant).ServicePrincipal(ctx, appID, secret); err != nil {
		t.Errorf("ServicePrincipal after migration = %v; want nil", err)
	}
}

func TestSessions(t *testing.T) {
	st := openStore(t)
	ctx := t.Context()
	if err := EnsureBootstrap(ctx, st, KindUser, "Alice@Example.com", "Passw0rd!x", "Alice"); err != nil {
		t.Fatal(err)
	}
	c := &clock{time.Now()}
	d := New(st, tenant)
	d.SetClock(c.now)
	alice, err := d.User(ctx, "alice@example.com", "Passw0rd!x")
	if err != nil || alice.Name != "alice@example.com" || alice.Kind != KindUser {
		t.Fatalf("User = %+v, %v; want alice", alice, err)
	}
	if _, err := d.User(ctx, "alice@example.com", "passw0rd!x"); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Errorf("User(wrong password) = %v; want ErrInvalidCredentials", err)
	}

	sid, rt1, err := d.StartSession(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Active(ctx, alice.ObjectID, sid); err != nil {
		t.Errorf("Active(open session) = %v; want nil", err)
	}
	p, sid2, rt2, err := d.Refresh(ctx, rt1)
	if err != nil || sid2 != sid || p.ObjectID != alice.ObjectID || rt2 == rt1 {
		t.Fatalf("Refresh = %+v, %q, %v; want alice, the same session, a new token", p, sid2, err)
	}
	// The rotated-away token is refused, and its use closes the session.
	if _, _, _, err := d.Refresh(ctx, rt1); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Errorf("Refresh(rotated token) = %v; want ErrInvalidCredentials", err)
	}
	if _, _, _, err := d.Refresh(ctx, rt2); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Errorf("Refresh(current token after a replay) = %v; want ErrInvalidCredentials (session closed)", err)
	}
	if err := d.Active(ctx, alice.ObjectID, sid); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Errorf("Active(session closed by replay) = %v; want ErrInvalidCredentials", err)
	}

	// EndSession closes a session; its token and access tokens stop working.
	sid, rt, err := d.StartSession(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.EndSession(ctx, "rt1.nonsense"); err != nil {
		t.Errorf("EndSession(garbage) = %v; want nil", err)
	}
	if err := d.EndSession(ctx, rt); err != nil {
		t.Fatal(err)
	}
	if err := d.Active(ctx, alice.ObjectID, sid); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Errorf("Active(ended session) = %v; want ErrInvalidCredentials", err)
	}
	if _, _, _, err := d.Refresh(ctx, rt); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Errorf("Refresh(ended session) = %v; want ErrInvalidCredentials", err)
	}

	// Sessions expire after SessionIdle without a refresh.
	sid, rt, err = d.StartSession(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	c.t = c.t.Add(SessionIdle + time.Second)
	if err := d.Active(ctx, alice.ObjectID, sid); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Errorf("Active(idle session) = %v; want ErrInvalidCredentials", err)
	}
	if _, _, _, err := d.Refresh(ctx, rt); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Errorf("Refresh(idle session) = %v; want ErrInvalidCredentials", err)
	}

	// At most MaxSessions are open: the oldest closes.
	var sids []string
	for range MaxSessions + 2 {
		s, _, err := d.StartSession(ctx, alice)
		if err != nil {
			t.Fatal(err)
		}
		sids = append(sids, s)
	}
	if _, dd := principalDoc(t, st, "alice@example.com"); len(dd.Sessions) != MaxSessions {
		t.Errorf("open sessions = %d; want %d", len(dd.Sessions), MaxSessions)
	}
	if err := d.Active(ctx, alice.ObjectID, sids[0]); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Errorf("Active(oldest session beyond the cap) = %v; want ErrInvalidCredentials", err)
	}
	if err := d.Active(ctx, alice.ObjectID, sids[len(sids)-1]); err != nil {
		t.Errorf("Active(newest session) = %v; want nil", err)
	}

	// Malformed or foreign refresh tokens are refused without a store error.
	for _, bad := range []string{"", "rt1.", "rt1.a.b", "x.y.z.w", "rt1." + alice.ObjectID + ".nosuch.secret",
		"rt1.00000000-0000-4000-8000-000000000000.s.x"} {
		if _, _, _, err := d.Refresh(ctx, bad); !errors.Is(err, identity.ErrInvalidCredentials) {
			t.Errorf("Refresh(%q) = %v; want ErrInvalidCredentials", bad, err)
		}
	}
	// Service principals have no sessions.
	if err := EnsureBootstrap(ctx, st, KindServicePrincipal, "11111111-2222-4333-8444-777777777777", NewSecret(), "app"); err != nil {
		t.Fatal(err)
	}
	sp, _ := principalDoc(t, st, "11111111-2222-4333-8444-777777777777")
	if _, _, err := d.StartSession(context.Background(), identity.Principal{ObjectID: sp.ObjectID}); err == nil {
		t.Errorf("StartSession(service principal) succeeded; want an error")
	}
}
