package directory

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pglink/pglink/internal/identity"
	"github.com/pglink/pglink/internal/store"
)

// Authorization codes live in their user's document (doc.Codes), so that every pglink process
// sharing the store redeems a code that any of them issued. A code is "<oid>.<secret>": the
// user's object id, which finds the document in one read, and 256 random bits, base64url. The
// document keeps only the code's SHA-256 digest. Clients treat the code as opaque; a code
// that does not parse is just not valid.
//
// A user has at most MaxPendingCodes codes that have not expired. Redeemed ones stay until
// they expire, so that a replay is recognized and closes the session the code started; they
// make room for a new code, oldest first, when the user has MaxPendingCodes. Codes that are
// not redeemed never do: a sign-in is refused (identity.ErrTooManyCodes) until one is redeemed
// or expires. This per-user bound replaces the issuer's global one (identity's
// Config.MaxPendingCodes), which no process could keep for codes other processes issued: the
// codes kept are at most MaxPendingCodes times the users, whom administrators create. Expired
// codes are dropped on every write of the document.

// pendingCode is an authorization code issued to a user and not yet expired, and what it is bound to.
type pendingCode struct {
	Digest      string    `json:"digest"` // hex SHA-256 of the code
	ClientID    string    `json:"clientId"`
	RedirectURI string    `json:"redirectUri"`
	Challenge   string    `json:"challenge"` // PKCE code_challenge, S256
	Scope       string    `json:"scope"`
	Nonce       string    `json:"nonce,omitempty"`
	Created     time.Time `json:"created"`
	Expires     time.Time `json:"expires"`
	Redeemed    bool      `json:"redeemed,omitempty"`
	// SessionID is the session its redemption started, closed if the code is replayed; ""
	// before, or once it is closed.
	SessionID string `json:"sessionId,omitempty"`
}

// codeSecretLen is the length of a code's secret part: 32 bytes, base64url.
const codeSecretLen = 43

var _ identity.CodeKeeper = (*Directory)(nil)

// IssueCode implements identity.CodeKeeper. It refuses a code, with an error wrapping
// identity.ErrTooManyCodes, if the user has MaxPendingCodes codes that are neither redeemed
// nor expired.
func (d *Directory) IssueCode(ctx context.Context, c identity.Code) (string, error) {
	oid := c.Principal.ObjectID
	if oid == "" || strings.Contains(oid, ".") {
		return "", fmt.Errorf("issue authorization code: principal object id %q", oid)
	}
	value := oid + "." + randomString(32)
	now := d.now()
	err := d.st.Update(ctx, func(tx store.Tx) error {
		p, dd, err := userDoc(ctx, tx, oid)
		if err != nil {
			return err
		}
		if dd.Kind != KindUser || dd.Disabled {
			return identity.ErrInvalidCredentials
		}
		dd.Codes = liveCodes(dd.Codes, now)
		if len(dd.Codes) >= MaxPendingCodes {
			i := redeemedIndex(dd.Codes)
			if i < 0 {
				return fmt.Errorf("%w: %d codes are waiting to be redeemed", identity.ErrTooManyCodes, len(dd.Codes))
			}
			dd.Codes = append(dd.Codes[:i], dd.Codes[i+1:]...)
		}
		dd.Codes = append(dd.Codes, pendingCode{
			Digest:      digestOf(value),
			ClientID:    c.ClientID,
			RedirectURI: c.RedirectURI,
			Challenge:   c.Challenge,
			Scope:       c.Scope,
			Nonce:       c.Nonce,
			Created:     now,
			Expires:     c.Expires,
		})
		p.Body = encode(dd)
		return tx.PutPrincipal(ctx, p)
	})
	if err != nil {
		return "", fmt.Errorf("issue authorization code for %s: %w", oid, err)
	}
	return value, nil
}

// RedeemCode implements identity.CodeKeeper: one serializable transaction finds the code,
// marks it redeemed and starts its session, or, for a replay, closes the session its first
// redemption started. Expiry is by the directory's clock.
func (d *Directory) RedeemCode(ctx context.Context, value string, check func(identity.Code) error) (identity.Principal, string, error) {
	oid, ok := parseCode(value)
	if !ok {
		return identity.Principal{}, "", identity.ErrCodeInvalid
	}
	digest := digestOf(value)
	// A read finds out a code that is not there, so that guesses take no write transaction
	// (writers take turns on a shared store); the write transaction checks everything again.
	err := d.st.View(ctx, func(tx store.Tx) error {
		_, dd, err := userDoc(ctx, tx, oid)
		if err == nil && codeIndex(dd.Codes, digest) < 0 {
			err = identity.ErrInvalidCredentials
		}
		return err
	})
	if errors.Is(err, identity.ErrInvalidCredentials) {
		return identity.Principal{}, "", identity.ErrCodeInvalid
	}
	if err != nil {
		return identity.Principal{}, "", fmt.Errorf("redeem authorization code of %s: %w", oid, err)
	}
	now := d.now()
	var (
		out          identity.Principal
		refreshToken string
		result       error // the outcome for the caller, when the transaction commits
	)
	err = d.st.Update(ctx, func(tx store.Tx) error {
		out, refreshToken, result = identity.Principal{}, "", nil
		p, dd, err := userDoc(ctx, tx, oid)
		if errors.Is(err, identity.ErrInvalidCredentials) {
			result = identity.ErrCodeInvalid
			return nil
		}
		if err != nil {
			return err
		}
		i := codeIndex(dd.Codes, digest)
		if i < 0 {
			result = identity.ErrCodeInvalid
			return nil
		}
		c := &dd.Codes[i]
		ip := dd.principal(p, d.tenantID)
		switch {
		case !now.Before(c.Expires):
			result = identity.ErrCodeExpired // dropped below, with the other expired codes
		case c.Redeemed:
			result = identity.ErrCodeRedeemed
			if c.SessionID != "" {
				dd.closeSession(c.SessionID)
				c.SessionID = ""
			}
		case dd.Kind != KindUser || dd.Disabled:
			c.Redeemed = true
			result = identity.ErrInvalidCredentials
		default:
			c.Redeemed = true
			if result = check(c.bound(ip)); result != nil {
				break
			}
			var sid string
			sid, refreshToken = dd.openSession(p.ObjectID, now)
			c.SessionID = sid
			out = ip
			out.SessionID = sid
		}
		dd.Codes = liveCodes(dd.Codes, now)
		p.Body = encode(dd)
		return tx.PutPrincipal(ctx, p)
	})
	if err != nil {
		return identity.Principal{}, "", fmt.Errorf("redeem authorization code of %s: %w", oid, err)
	}
	if result != nil {
		return identity.Principal{}, "", result
	}
	return out, refreshToken, nil
}

// bound returns what c is bound to, for user p.
func (c pendingCode) bound(p identity.Principal) identity.Code {
	return identity.Code{ClientID: c.ClientID, RedirectURI: c.RedirectURI, Challenge: c.Challenge, Scope: c.Scope,
		Nonce: c.Nonce, Principal: p, Expires: c.Expires}
}

// parseCode returns the object id a code names; ok is false if it is not one of ours.
func parseCode(s string) (oid string, ok bool) {
	oid, secret, ok := strings.Cut(s, ".")
	if !ok || oid == "" || len(secret) != codeSecretLen || !isBase64URL(secret) {
		return "", false
	}
	return oid, true
}

func isBase64URL(s string) bool {
	for _, c := range []byte(s) {
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// userDoc reads the principal whose object id is oid, and its document; ErrInvalidCredentials
// if there is none (a login that looks like an object id does not count).
func userDoc(ctx context.Context, tx store.Tx, oid string) (store.Principal, doc, error) {
	p, err := tx.Principal(ctx, oid)
	if errors.Is(err, store.ErrNotFound) || err == nil && !strings.EqualFold(p.ObjectID, oid) {
		return p, doc{}, identity.ErrInvalidCredentials
	}
	if err != nil {
		return p, doc{}, err
	}
	dd, err := decode(p)
	return p, dd, err
}

// liveCodes returns the codes that have not expired at now, oldest first.
func liveCodes(cs []pendingCode, now time.Time) []pendingCode {
	out := cs[:0:0]
	for _, c := range cs {
		if now.Before(c.Expires) {
			out = append(out, c)
		}
	}
	return out
}

func codeIndex(cs []pendingCode, digest string) int {
	for i, c := range cs {
		if subtle.ConstantTimeCompare([]byte(c.Digest), []byte(digest)) == 1 {
			return i
		}
	}
	return -1
}

// redeemedIndex returns the index of the oldest redeemed code, or -1.
func redeemedIndex(cs []pendingCode) int {
	for i, c := range cs {
		if c.Redeemed {
			return i
		}
	}
	return -1
}
