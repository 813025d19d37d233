package server

import (
	"testing"
	"time"

	"github.com/pglink/pglink/internal/identity"
)

func TestKeyRingStep(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := rotation{period: time.Hour, lead: 5 * time.Minute, overlap: 2 * time.Hour}
	gen := func() func() (string, error) {
		n := 0
		return func() (string, error) {
			n++
			k, err := identity.GenerateKey()
			if err != nil {
				return "", err
			}
			pem, err := identity.MarshalKey(k)
			return string(pem), err
		}
	}()
	first, err := gen()
	if err != nil {
		t.Fatal(err)
	}
	ring := keyRing{Keys: []ringKey{{Key: first, ActiveFrom: t0}}}
	step := func(at time.Duration, wantChanged bool, wantKeys int) {
		t.Helper()
		next, changed, err := r.step(ring, t0.Add(at), gen)
		if err != nil {
			t.Fatal(err)
		}
		if changed != wantChanged || len(next.Keys) != wantKeys {
			t.Fatalf("step at %v: changed %v, %d keys; want %v, %d", at, changed, len(next.Keys), wantChanged, wantKeys)
		}
		ring = next
	}
	step(30*time.Minute, false, 1) // young: nothing to do
	step(time.Hour, true, 2)       // a new key, pending for the lead
	step(time.Hour+time.Minute, false, 2)
	sign, verify, err := ring.keys(t0.Add(time.Hour + time.Minute))
	if err != nil || len(verify) != 1 || sign == nil {
		t.Fatalf("keys while the new one is pending: %v, %d verify keys", err, len(verify))
	}
	old := sign
	sign, verify, _ = ring.keys(t0.Add(time.Hour + 5*time.Minute))
	if sign.Equal(old) || len(verify) != 1 || !verify[0].Equal(&old.PublicKey) {
		t.Errorf("after the lead: the new key signs and the old one verifies")
	}
	step(time.Hour+5*time.Minute+59*time.Minute, false, 2) // the new key is not yet a period old
	step(3*time.Hour+5*time.Minute, true, 2)               // the old key leaves (overlap over), a new one is added
	if _, _, err := (keyRing{}).keys(t0); err == nil {
		t.Errorf("keys of an empty ring succeeded; want an error")
	}
	never := rotation{overlap: time.Hour}
	if _, changed, _ := never.step(keyRing{Keys: []ringKey{{Key: first, ActiveFrom: t0}}}, t0.Add(1000*time.Hour), gen); changed {
		t.Errorf("step without a period changed the ring")
	}
}
