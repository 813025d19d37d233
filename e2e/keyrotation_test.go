package e2e

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/pglink/pglink/internal/identity"
	"github.com/pglink/pglink/internal/server"
)

// TestSigningKeyRotation: the signing key rotates on schedule; a token of the old key keeps
// working through the overlap and is refused after it; new tokens carry the new key, which
// JWKS published before it signed.
func TestSigningKeyRotation(t *testing.T) {
	in := start(t, func(c *server.Config) {
		c.SigningKeyRotation, c.SigningKeyLead, c.SigningKeyOverlap = 2*time.Second, time.Second, 3*time.Second
	})
	kid := func(tok string) string {
		p, _, err := jwt.NewParser().ParseUnverified(tok, jwt.MapClaims{})
		if err != nil {
			t.Fatal(err)
		}
		return p.Header["kid"].(string)
	}
	sub := "/subscriptions/" + in.boot.SubscriptionID + "?api-version=2022-12-01"
	old := in.token()
	oldKid := kid(old)
	deadline := time.Now().Add(20 * time.Second)
	var fresh string
	for {
		fresh = in.token()
		if kid(fresh) != oldKid {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the signing key did not rotate within 20 s")
		}
		time.Sleep(200 * time.Millisecond)
	}
	// In the overlap both work (the old token may already be past it on a slow machine: then
	// only the refusal below is checked).
	if st, body := in.call(t, fresh, "GET", sub, nil); st != 200 {
		t.Errorf("GET with the new key's token = %d %s; want 200", st, body)
	}
	// identity-key.pem follows the signing key.
	data, err := os.ReadFile(filepath.Join(in.dir, "identity-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if k, err := identity.ParseKey(data); err != nil || k == nil {
		t.Errorf("identity-key.pem after rotation: %v", err)
	}
	deadline = time.Now().Add(20 * time.Second)
	for {
		st, _ := in.call(t, old, "GET", sub, nil)
		if st == 401 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a token of the retired key still works %v after rotation (status %d)", 20*time.Second, st)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if st, body := in.call(t, in.token(), "GET", sub, nil); st != 200 {
		t.Errorf("GET with a current token after the overlap = %d %s; want 200", st, body)
	}
}
