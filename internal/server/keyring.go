package server

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/pglink/pglink/internal/identity"
	"github.com/pglink/pglink/internal/store"
)

// Signing key rotation. The keys that sign tokens form a ring, oldest first. Each key becomes
// the signing key at its ActiveFrom, and a new key enters the ring rotationLead before it
// signs, so every replica (each reloads the ring at least every keyRingPoll) verifies its
// tokens before any replica issues one. A key leaves the ring keyOverlap after the next key
// took over, when no token it signed can still be valid. JWKS publishes every key in the
// ring.
//
// Where the ring lives: on a shared store, in the store setting keyRingSetting (so the key
// is in the store, as the shared first-start state already puts it); otherwise in
// DATA/identity-keys.json (mode 0600), so a SQLite store never holds a private key. Either
// way DATA/identity-key.pem is the current signing key, as before rotation existed.

// Defaults of the rotation settings.
const (
	DefaultKeyRotation = 30 * 24 * time.Hour
	defaultKeyLead     = 5 * time.Minute
	defaultKeyOverlap  = 2 * time.Hour // an access token lives an hour, plus clock skew
)

const keyRingSetting = "signing-keys"

type ringKey struct {
	Key        string    `json:"key"` // PEM, as identity.MarshalKey writes it
	ActiveFrom time.Time `json:"activeFrom"`
}

type keyRing struct {
	Keys []ringKey `json:"keys"` // by ActiveFrom, oldest first
}

// rotation says when keys rotate: every period (0: never), a new key lead ahead, the old one
// kept overlap after.
type rotation struct {
	period, lead, overlap time.Duration
}

// step returns the ring as of now: with a new key (made by gen) when the signing key is older
// than period and none is pending, and without the keys retired more than overlap ago.
// changed reports whether the ring differs from ring.
func (r rotation) step(ring keyRing, now time.Time, gen func() (string, error)) (out keyRing, changed bool, err error) {
	keys := append([]ringKey(nil), ring.Keys...)
	// Drop keys whose successor has signed for longer than overlap.
	for len(keys) > 1 && !keys[1].ActiveFrom.After(now.Add(-r.overlap)) {
		keys, changed = keys[1:], true
	}
	if r.period > 0 && len(keys) > 0 {
		last := keys[len(keys)-1]
		if !last.ActiveFrom.After(now) && !last.ActiveFrom.Add(r.period).After(now) {
			pem, err := gen()
			if err != nil {
				return ring, false, err
			}
			keys, changed = append(keys, ringKey{Key: pem, ActiveFrom: now.Add(r.lead).UTC()}), true
		}
	}
	return keyRing{Keys: keys}, changed, nil
}

// keys returns the ring's signing key at now (the newest active one) and every other key, to
// verify with.
func (ring keyRing) keys(now time.Time) (sign *rsa.PrivateKey, verify []*rsa.PublicKey, err error) {
	for _, k := range ring.Keys {
		pk, err := identity.ParseKey([]byte(k.Key))
		if err != nil {
			return nil, nil, err
		}
		if !k.ActiveFrom.After(now) || sign == nil {
			if sign != nil {
				verify = append(verify, &sign.PublicKey)
			}
			sign = pk
			continue
		}
		verify = append(verify, &pk.PublicKey)
	}
	if sign == nil {
		return nil, nil, errors.New("the signing key ring is empty")
	}
	return sign, verify, nil
}

func newRingKey() (string, error) {
	k, err := identity.GenerateKey()
	if err != nil {
		return "", err
	}
	pem, err := identity.MarshalKey(k)
	return string(pem), err
}

// keyRings keeps the ring of one process: in the store (shared) or in the data dir.
type keyRings struct {
	st     store.Store
	shared bool
	dir    string
	rot    rotation
}

// seed is the ring when there is none yet: the current identity-key.pem, its age counted from
// now.
func (k keyRings) seed(now time.Time) (keyRing, error) {
	data, err := os.ReadFile(filepath.Join(k.dir, "identity-key.pem"))
	if err != nil {
		return keyRing{}, fmt.Errorf("read signing key: %w", err)
	}
	return keyRing{Keys: []ringKey{{Key: string(data), ActiveFrom: now.UTC()}}}, nil
}

// advance moves the ring to now, stores it if it changed, and returns it.
func (k keyRings) advance(ctx context.Context, now time.Time) (keyRing, error) {
	if k.shared {
		var out keyRing
		err := k.st.Update(ctx, func(tx store.Tx) error {
			ring, seeded, err := k.readSetting(ctx, tx, now)
			if err != nil {
				return err
			}
			next, changed, err := k.rot.step(ring, now, newRingKey)
			if err != nil {
				return err
			}
			out = next
			if !changed && !seeded {
				return nil
			}
			data, _ := json.Marshal(next)
			return tx.PutSetting(ctx, keyRingSetting, data)
		})
		return out, err
	}
	path := filepath.Join(k.dir, "identity-keys.json")
	var ring keyRing
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if ring, err = k.seed(now); err != nil {
			return ring, err
		}
	case err != nil:
		return ring, fmt.Errorf("read key ring: %w", err)
	default:
		if err := json.Unmarshal(data, &ring); err != nil {
			return ring, fmt.Errorf("decode %s: %w", path, err)
		}
	}
	next, changed, err := k.rot.step(ring, now, newRingKey)
	if err != nil || (!changed && data != nil) {
		return next, err
	}
	out, _ := json.MarshalIndent(next, "", "  ")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, out, 0o600); err != nil {
		return next, fmt.Errorf("write key ring: %w", err)
	}
	return next, os.Rename(tmp, path)
}

// readSetting returns the ring in the store, or the seed (seeded) if there is none yet.
func (k keyRings) readSetting(ctx context.Context, tx store.Tx, now time.Time) (ring keyRing, seeded bool, err error) {
	data, err := tx.Setting(ctx, keyRingSetting)
	if errors.Is(err, store.ErrNotFound) {
		ring, err = k.seed(now)
		return ring, true, err
	}
	if err != nil {
		return keyRing{}, false, err
	}
	if err := json.Unmarshal(data, &ring); err != nil {
		return keyRing{}, false, fmt.Errorf("decode the key ring: %w", err)
	}
	return ring, false, nil
}

// applyKeys advances the ring and gives its keys to the issuer, and writes the signing key to
// identity-key.pem if it changed.
func (k keyRings) applyKeys(ctx context.Context, iss *identity.Issuer, now time.Time) error {
	ring, err := k.advance(ctx, now)
	if err != nil {
		return err
	}
	sign, verify, err := ring.keys(now)
	if err != nil {
		return err
	}
	if err := iss.SetKeys(sign, verify); err != nil {
		return err
	}
	pem, err := identity.MarshalKey(sign)
	if err != nil {
		return err
	}
	path := filepath.Join(k.dir, "identity-key.pem")
	if cur, err := os.ReadFile(path); err == nil && string(cur) == string(pem) {
		return nil
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, pem, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// rotateKeys applies the ring every poll until ctx ends.
func (s *Server) rotateKeys(ctx context.Context, k keyRings, iss *identity.Issuer, poll time.Duration) {
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := k.applyKeys(ctx, iss, time.Now()); err != nil && ctx.Err() == nil {
			s.log.Warn("rotate signing keys", "err", err)
		}
	}
}
