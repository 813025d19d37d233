// Package directory is pglink's directory of principals: users and service principals kept in
// the store (store.Principal), with their credentials, whether they are enabled, and their
// sign-in sessions. It checks credentials and sessions for the token issuer (it implements
// identity.Directory) and serves the identity admin API, a Microsoft Graph–shaped subset at
// /v1.0/ (see Handler).
//
// Secrets at rest: user passwords and service principal secrets are stored only as bcrypt
// hashes (salted and slow); a secret's first three characters are kept as its hint, as Entra
// ID does, so a sign-in checks only the credentials it may match. Refresh tokens are 256 random
// bits and stored as SHA-256 digests: a fast hash cannot be guessed back from a random value
// of that size, and refreshing must not cost a slow hash. Pending authorization codes are kept
// the same way, in their user's document (see IssueCode), so that every process sharing the
// store redeems them.
package directory

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pglink/pglink/internal/identity"
	"github.com/pglink/pglink/internal/resource"
	"github.com/pglink/pglink/internal/store"
)

// Kinds of principal, as stored and as identity.Principal.Kind.
const (
	KindUser             = identity.KindUser
	KindServicePrincipal = identity.KindServicePrincipal
)

// Limits on what one principal may hold; each bounds the work of a sign-in and the size of the
// stored document.
const (
	MaxCredentials = 20 // password credentials of a service principal
	MaxSessions    = 50 // open sign-in sessions of a user; the oldest is closed for a new one
	// MaxPendingCodes bounds the authorization codes of a user that are not yet expired; see
	// IssueCode.
	MaxPendingCodes = 20
)

// Session lifetimes: a refresh extends a session by SessionIdle, up to SessionMax after sign-in.
const (
	SessionIdle = 14 * 24 * time.Hour
	SessionMax  = 90 * 24 * time.Hour
)

// doc is a principal's stored document (store.Principal.Body). Its zero Disabled means enabled,
// so documents written before the field existed are enabled.
type doc struct {
	Kind        string        `json:"kind"`
	DisplayName string        `json:"displayName"`
	AppID       string        `json:"appId,omitempty"`
	Disabled    bool          `json:"disabled,omitempty"`
	Created     time.Time     `json:"created,omitzero"`
	SecretHash  string        `json:"secretHash,omitempty"` // a user's password
	Credentials []credential  `json:"credentials,omitempty"`
	Sessions    []session     `json:"sessions,omitempty"`
	Codes       []pendingCode `json:"codes,omitempty"` // a user's authorization codes, oldest first
}

// credential is a service principal's password credential.
type credential struct {
	KeyID       string    `json:"keyId"`
	DisplayName string    `json:"displayName,omitempty"`
	Hint        string    `json:"hint"`
	Hash        string    `json:"hash"`
	Start       time.Time `json:"start"`
	End         time.Time `json:"end"`
}

// session is a user's sign-in session: the refresh token's digest and its lifetime.
type session struct {
	ID      string    `json:"id"`
	Digest  string    `json:"digest"` // hex SHA-256 of the refresh token's secret part
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
}

func decode(p store.Principal) (doc, error) {
	var d doc
	if err := json.Unmarshal(p.Body, &d); err != nil {
		return d, fmt.Errorf("decode principal %s: %w", p.ObjectID, err)
	}
	if d.Kind != KindUser && d.Kind != KindServicePrincipal {
		return d, fmt.Errorf("decode principal %s: unknown kind %q", p.ObjectID, d.Kind)
	}
	return d, nil
}

func encode(d doc) []byte {
	b, _ := json.Marshal(d) // a doc always encodes
	return b
}

// principal is the identity view of a stored principal.
func (d doc) principal(p store.Principal, tenantID string) identity.Principal {
	ip := identity.Principal{ObjectID: p.ObjectID, Kind: d.Kind, TenantID: tenantID, Name: d.DisplayName}
	if d.Kind == KindUser {
		ip.Name = strings.ToLower(p.Login)
	} else {
		ip.AppID = d.AppID
	}
	return ip
}

// Directory checks credentials and sessions against the principals in a store. It implements
// identity.Directory.
type Directory struct {
	st       store.Store
	tenantID string
	now      func() time.Time
}

// New returns the directory of the principals in st, for tenant tenantID.
func New(st store.Store, tenantID string) *Directory {
	return &Directory{st: st, tenantID: tenantID, now: time.Now}
}

// SetClock replaces the clock, for tests.
func (d *Directory) SetClock(now func() time.Time) { d.now = now }

// lookup returns the principal with login and its document, or ErrInvalidCredentials if there
// is none of kind, or it is disabled.
func (d *Directory) lookup(ctx context.Context, login, kind string) (store.Principal, doc, error) {
	var p store.Principal
	err := d.st.View(ctx, func(tx store.Tx) error {
		var err error
		p, err = tx.Principal(ctx, login)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return p, doc{}, identity.ErrInvalidCredentials
	}
	if err != nil {
		return p, doc{}, fmt.Errorf("look up principal: %w", err)
	}
	dd, err := decode(p)
	if err != nil {
		return p, dd, err
	}
	if dd.Kind != kind || dd.Disabled {
		return p, dd, identity.ErrInvalidCredentials
	}
	return p, dd, nil
}

// ServicePrincipal implements identity.Directory: secret must match one of the principal's
// credentials that is in force now.
func (d *Directory) ServicePrincipal(ctx context.Context, clientID, secret string) (identity.Principal, error) {
	p, dd, err := d.lookup(ctx, clientID, KindServicePrincipal)
	if err != nil {
		return identity.Principal{}, err
	}
	now := d.now()
	for _, c := range dd.Credentials {
		if now.Before(c.Start.Add(-time.Minute)) || !now.Before(c.End) || c.Hint != hint(secret) {
			continue
		}
		if identity.CheckSecret(c.Hash, secret) {
			return dd.principal(p, d.tenantID), nil
		}
	}
	// A principal from before credentials had one secret.
	if len(dd.Credentials) == 0 && dd.SecretHash != "" && identity.CheckSecret(dd.SecretHash, secret) {
		return dd.principal(p, d.tenantID), nil
	}
	return identity.Principal{}, identity.ErrInvalidCredentials
}

// User implements identity.Directory.
func (d *Directory) User(ctx context.Context, username, password string) (identity.Principal, error) {
	p, dd, err := d.lookup(ctx, username, KindUser)
	if err != nil {
		return identity.Principal{}, err
	}
	if dd.SecretHash == "" || !identity.CheckSecret(dd.SecretHash, password) {
		return identity.Principal{}, identity.ErrInvalidCredentials
	}
	return dd.principal(p, d.tenantID), nil
}

// Active implements identity.Directory: the principal exists, is enabled and, if sid is not
// "", has that session open.
func (d *Directory) Active(ctx context.Context, oid, sid string) error {
	var p store.Principal
	err := d.st.View(ctx, func(tx store.Tx) error {
		var err error
		p, err = tx.Principal(ctx, oid)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return identity.ErrInvalidCredentials
	}
	if err != nil {
		return fmt.Errorf("check principal %s: %w", oid, err)
	}
	if !strings.EqualFold(p.ObjectID, oid) { // a login that looks like an object id
		return identity.ErrInvalidCredentials
	}
	dd, err := decode(p)
	if err != nil {
		return err
	}
	if dd.Disabled {
		return identity.ErrInvalidCredentials
	}
	if sid == "" {
		return nil
	}
	now := d.now()
	for _, s := range dd.Sessions {
		if s.ID == sid && now.Before(s.Expires) {
			return nil
		}
	}
	return identity.ErrInvalidCredentials
}

// refreshPrefix starts every refresh token: "rt1.<oid>.<sid>.<secret>".
const refreshPrefix = "rt1."

func newRefreshToken(oid, sid string) (token, digest string) {
	secret := randomString(32)
	return refreshPrefix + oid + "." + sid + "." + secret, digestOf(secret)
}

func digestOf(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// parseRefreshToken splits a refresh token; ok is false if it is not one of ours.
func parseRefreshToken(token string) (oid, sid, secret string, ok bool) {
	rest, ok := strings.CutPrefix(token, refreshPrefix)
	if !ok {
		return "", "", "", false
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return "", "", "", false
	}
	return parts[0], parts[1], parts[2], true
}

// StartSession implements identity.Directory: it opens a session for user p, closing the
// oldest if p has MaxSessions open, and returns its id and refresh token.
func (d *Directory) StartSession(ctx context.Context, ip identity.Principal) (sid, refreshToken string, err error) {
	now := d.now()
	err = d.st.Update(ctx, func(tx store.Tx) error {
		p, err := tx.Principal(ctx, ip.ObjectID)
		if err != nil {
			return err
		}
		dd, err := decode(p)
		if err != nil {
			return err
		}
		if dd.Kind != KindUser || dd.Disabled {
			return identity.ErrInvalidCredentials
		}
		sid, refreshToken = dd.openSession(p.ObjectID, now)
		dd.Codes = liveCodes(dd.Codes, now)
		p.Body = encode(dd)
		return tx.PutPrincipal(ctx, p)
	})
	if err != nil {
		return "", "", fmt.Errorf("start session for %s: %w", ip.ObjectID, err)
	}
	return sid, refreshToken, nil
}

// openSession opens a session of user oid in dd at now, closing expired sessions and, if
// MaxSessions are open, the oldest, and returns its id and refresh token.
func (dd *doc) openSession(oid string, now time.Time) (sid, refreshToken string) {
	sid = randomString(12)
	refreshToken, digest := newRefreshToken(oid, sid)
	dd.Sessions = openSessions(dd.Sessions, now)
	if len(dd.Sessions) >= MaxSessions {
		dd.Sessions = dd.Sessions[len(dd.Sessions)-MaxSessions+1:]
	}
	dd.Sessions = append(dd.Sessions, session{ID: sid, Digest: digest, Created: now, Expires: now.Add(SessionIdle)})
	return sid, refreshToken
}

// closeSession removes the session sid from dd, if it is there.
func (dd *doc) closeSession(sid string) {
	if i := sessionIndex(dd.Sessions, sid); i >= 0 {
		dd.Sessions = append(dd.Sessions[:i], dd.Sessions[i+1:]...)
	}
}

// openSessions returns the sessions that have not expired at now, oldest first.
func openSessions(ss []session, now time.Time) []session {
	out := ss[:0:0]
	for _, s := range ss {
		if now.Before(s.Expires) {
			out = append(out, s)
		}
	}
	return out
}

// Refresh implements identity.Directory. A refresh token that was already rotated away is a
// sign it was stolen: its session is closed, so neither the thief nor the user keeps it.
func (d *Directory) Refresh(ctx context.Context, refreshToken string) (identity.Principal, string, string, error) {
	oid, sid, secret, ok := parseRefreshToken(refreshToken)
	if !ok {
		return identity.Principal{}, "", "", identity.ErrInvalidCredentials
	}
	now := d.now()
	var (
		out      identity.Principal
		newToken string
		invalid  bool
	)
	err := d.st.Update(ctx, func(tx store.Tx) error {
		invalid = false
		p, err := tx.Principal(ctx, oid)
		if errors.Is(err, store.ErrNotFound) || (err == nil && !strings.EqualFold(p.ObjectID, oid)) {
			invalid = true
			return nil
		}
		if err != nil {
			return err
		}
		dd, err := decode(p)
		if err != nil {
			return err
		}
		i := sessionIndex(dd.Sessions, sid)
		if i < 0 || dd.Kind != KindUser || dd.Disabled || !now.Before(dd.Sessions[i].Expires) {
			invalid = true
			return nil
		}
		s := &dd.Sessions[i]
		dd.Codes = liveCodes(dd.Codes, now)
		if subtle.ConstantTimeCompare([]byte(s.Digest), []byte(digestOf(secret))) != 1 {
			invalid = true // reuse of a rotated token: close the session
			dd.closeSession(sid)
			p.Body = encode(dd)
			return tx.PutPrincipal(ctx, p)
		}
		var digest string
		newToken, digest = newRefreshToken(p.ObjectID, sid)
		s.Digest = digest
		s.Expires = now.Add(SessionIdle)
		if limit := s.Created.Add(SessionMax); s.Expires.After(limit) {
			s.Expires = limit
		}
		p.Body = encode(dd)
		out = dd.principal(p, d.tenantID)
		return tx.PutPrincipal(ctx, p)
	})
	if err != nil {
		return identity.Principal{}, "", "", fmt.Errorf("refresh session: %w", err)
	}
	if invalid {
		return identity.Principal{}, "", "", identity.ErrInvalidCredentials
	}
	return out, sid, newToken, nil
}

func sessionIndex(ss []session, sid string) int {
	for i, s := range ss {
		if s.ID == sid {
			return i
		}
	}
	return -1
}

// EndSession implements identity.Directory: it closes the session of refreshToken if the token
// is its current one.
func (d *Directory) EndSession(ctx context.Context, refreshToken string) error {
	oid, sid, secret, ok := parseRefreshToken(refreshToken)
	if !ok {
		return nil
	}
	now := d.now()
	err := d.st.Update(ctx, func(tx store.Tx) error {
		p, err := tx.Principal(ctx, oid)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		dd, err := decode(p)
		if err != nil {
			return err
		}
		i := sessionIndex(dd.Sessions, sid)
		if i < 0 || subtle.ConstantTimeCompare([]byte(dd.Sessions[i].Digest), []byte(digestOf(secret))) != 1 {
			return nil
		}
		dd.closeSession(sid)
		dd.Codes = liveCodes(dd.Codes, now)
		p.Body = encode(dd)
		return tx.PutPrincipal(ctx, p)
	})
	if err != nil {
		return fmt.Errorf("end session: %w", err)
	}
	return nil
}

// EnsureBootstrap creates the bootstrap principal of kind with login (a user's UPN or a service
// principal's client id, which is also its app id) and secret unless it exists. A service
// principal stored before credentials existed gets its secret as a bcrypt-hashed credential.
func EnsureBootstrap(ctx context.Context, st store.Store, kind, login, secret, displayName string) error {
	return st.Update(ctx, func(tx store.Tx) error {
		p, err := tx.Principal(ctx, login)
		if err == nil {
			dd, err := decode(p)
			if err != nil {
				return err
			}
			if kind != KindServicePrincipal || len(dd.Credentials) > 0 {
				return nil
			}
			c, err := newCredential(secret, "bootstrap", time.Now(), time.Now().AddDate(100, 0, 0))
			if err != nil {
				return err
			}
			dd.SecretHash, dd.Credentials = "", []credential{c}
			p.Body = encode(dd)
			return tx.PutPrincipal(ctx, p)
		}
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		dd := doc{Kind: kind, DisplayName: displayName, Created: time.Now().UTC()}
		if kind == KindServicePrincipal {
			dd.AppID = login
			c, err := newCredential(secret, "bootstrap", time.Now(), time.Now().AddDate(100, 0, 0))
			if err != nil {
				return err
			}
			dd.Credentials = []credential{c}
		} else {
			if dd.SecretHash, err = identity.HashSecret(secret); err != nil {
				return err
			}
		}
		if err := tx.PutPrincipal(ctx, store.Principal{ObjectID: resource.NewGUID(), Login: login, Body: encode(dd)}); err != nil {
			return fmt.Errorf("create principal %s: %w", login, err)
		}
		return nil
	})
}

// hint is the part of a secret kept in clear to find its credential: its first 3 characters.
func hint(secret string) string {
	if len(secret) < 3 {
		return secret
	}
	return secret[:3]
}

// newCredential hashes secret into a credential valid from start until end.
func newCredential(secret, displayName string, start, end time.Time) (credential, error) {
	h, err := identity.HashSecret(secret)
	if err != nil {
		return credential{}, err
	}
	return credential{KeyID: resource.NewGUID(), DisplayName: displayName, Hint: hint(secret), Hash: h,
		Start: start.UTC().Truncate(time.Second), End: end.UTC().Truncate(time.Second)}, nil
}

// NewSecret returns a generated client secret: 40 characters, 3 of them a readable hint
// followed by "~", like Entra ID's ("abc8Q~…").
func NewSecret() string {
	s := randomString(30)
	return s[:3] + "8Q~" + s[3:]
}

// randomString returns n random bytes, base64url-encoded.
func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b)
}
