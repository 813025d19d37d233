// Package identity is pglink's token issuer: a small Microsoft identity platform v2–compatible
// authority (OpenID configuration, token endpoint, JWKS) that the Azure SDK for Go
// (azidentity/MSAL) and the az CLI obtain tokens from, an App Service–style managed identity
// endpoint for `az login --identity`, the authorization code flow with PKCE and sign-out for the
// web portal and native apps, and the verification of those tokens for the API.
//
// Users' sign-ins (password and authorization code grants) open sessions that the Directory
// keeps: their refresh tokens rotate, their access tokens carry the session id (sid), and
// Authenticate refuses a token whose principal or session the Directory no longer holds active.
//
// The package is a leaf: it imports no other pglink package. Credentials are checked by a
// Directory that the caller implements over its store.
package identity

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Kinds of principal, the values of Principal.Kind.
const (
	KindUser             = "User"
	KindServicePrincipal = "ServicePrincipal"
)

// Principal is an authenticated caller.
type Principal struct {
	ObjectID string // oid claim
	AppID    string // appid claim: the client id of a service principal; "" for users
	Name     string // UPN of a user, display name of a service principal
	Kind     string // KindUser or KindServicePrincipal
	TenantID string // tid claim
	// SessionID is the sid claim: the sign-in session of a user's token from a password or
	// authorization code grant that started one, or a refresh; "" for tokens of no session.
	SessionID string
}

// Directory checks credentials. The caller implements it over its store; its methods may be
// called concurrently.
type Directory interface {
	// ServicePrincipal returns the service principal whose client id is clientID if secret is
	// one of its secrets. It returns ErrInvalidCredentials for an unknown client id or a wrong
	// secret, and any other error for a failure to check.
	ServicePrincipal(ctx context.Context, clientID, secret string) (Principal, error)
	// User returns the user whose name (UPN) is username if password is theirs. It returns
	// ErrInvalidCredentials for an unknown user or a wrong password, and any other error for a
	// failure to check.
	User(ctx context.Context, username, password string) (Principal, error)
	// StartSession opens a sign-in session for user p after a password or authorization code
	// grant and returns the session id and a refresh token for it.
	StartSession(ctx context.Context, p Principal) (sid, refreshToken string, err error)
	// Refresh checks refreshToken and rotates it: it returns the session's principal, its
	// session id and a new refresh token; the old token stops working. It returns
	// ErrInvalidCredentials if the token is unknown, expired or revoked, or its principal is
	// disabled or deleted; any other error is a failure to check.
	Refresh(ctx context.Context, refreshToken string) (p Principal, sid, newRefreshToken string, err error)
	// EndSession revokes the session that refreshToken belongs to (sign-out). An unknown or
	// already revoked token is not an error.
	EndSession(ctx context.Context, refreshToken string) error
	// Active returns nil if the principal with object id oid exists and is enabled and, if sid
	// is not "", its session sid is still open; ErrInvalidCredentials if not; any other error
	// is a failure to check.
	Active(ctx context.Context, oid, sid string) error
}

// ErrInvalidCredentials is returned by a Directory for an unknown principal or a wrong secret.
var ErrInvalidCredentials = errors.New("invalid credentials")

// Code is what an authorization code is bound to: the authorization request it answers and the
// user who signed in.
type Code struct {
	ClientID    string
	RedirectURI string
	Challenge   string // the PKCE code_challenge, S256
	Scope       string
	Nonce       string
	Principal   Principal // the user; the code is redeemed for a session of theirs
	Expires     time.Time // the code may be redeemed before then
}

// CodeKeeper is implemented by a Directory that also keeps the authorization codes issued and
// not yet expired, in the store it shares with other issuers: any of them then redeems a code
// any of them issued. An Issuer whose Directory is not a CodeKeeper keeps codes in its own
// memory, where only the process that issued a code can redeem it. Its methods may be called
// concurrently.
type CodeKeeper interface {
	// IssueCode stores c and returns a new code for it: at least 256 random bits, in URL-safe
	// characters, opaque to clients. Only a digest of the code is kept. It returns an error
	// wrapping ErrTooManyCodes if c's user has too many codes pending, ErrInvalidCredentials
	// if the user is no longer an enabled user, and any other error for a failure to store.
	IssueCode(ctx context.Context, c Code) (code string, err error)
	// RedeemCode redeems code at most once, however many issuers share the store. It calls
	// check with what the code is bound to; if check returns nil, it starts a session for the
	// code's user in the transaction that marks the code redeemed, and returns the user, with
	// the session's id as its SessionID, and the session's refresh token. check must have no
	// side effects: it may be called more than once. If check returns an error, the code is
	// used up all the same and RedeemCode returns that error.
	//
	// A code redeemed before is ErrCodeRedeemed, and the session its first redemption started
	// is closed; an expired code is ErrCodeExpired; a code unknown, forgotten or malformed is
	// ErrCodeInvalid; a code whose user was disabled since is ErrInvalidCredentials. Any other
	// error is a failure to redeem, after which the code is unchanged.
	RedeemCode(ctx context.Context, code string, check func(Code) error) (p Principal, refreshToken string, err error)
}

// Errors of a CodeKeeper.
var (
	ErrTooManyCodes = errors.New("too many authorization codes pending")
	ErrCodeInvalid  = errors.New("authorization code not valid")
	ErrCodeExpired  = errors.New("authorization code expired")
	ErrCodeRedeemed = errors.New("authorization code already redeemed")
)

// ErrInvalidToken is wrapped by every error of Verify and Authenticate.
var ErrInvalidToken = errors.New("invalid token")

// Config configures an Issuer.
type Config struct {
	// TenantID is the one tenant this issuer serves.
	TenantID string
	// Authority is the absolute base URL of the issuer, e.g. "https://127.0.0.1:8443", with no
	// path: Handler serves at the root. A trailing slash is ignored.
	Authority string
	// Key signs tokens (RS256). Persist it (MarshalKey) so tokens survive a restart.
	Key *rsa.PrivateKey
	// VerifyKeys are further keys whose tokens are accepted and which JWKS publishes, but which
	// sign nothing: the previous key for the overlap window after a rotation, and the next one
	// before it signs (so every replica knows it first). See SetKeys.
	VerifyKeys []*rsa.PublicKey
	// Audiences are the accepted token audiences; see DefaultAudiences.
	Audiences []string
	// Lifetime is the lifetime of an access token; zero means one hour.
	Lifetime time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// SignIn throttles failed sign-ins and bounds concurrent credential checks; zero fields
	// take DefaultSignInLimits.
	SignIn SignInLimits
	// MaxPendingCodes bounds the authorization codes kept in memory (issued and not yet
	// expired, redeemed or not) when the Directory is not a CodeKeeper; zero means 10,000.
	// When it is reached, sign-ins on the authorize endpoint are refused with
	// temporarily_unavailable until codes expire. A CodeKeeper bounds the codes it keeps
	// itself: no bound of this process could count the codes other processes issued.
	MaxPendingCodes int
}

// clockSkew is how far the clocks of the issuer and a verifier may disagree.
const clockSkew = time.Minute

// DefaultAudiences returns the audiences a pglink ARM endpoint accepts: armEndpoint (e.g.
// "https://127.0.0.1:8443") and Azure's public ARM and classic management audiences, each with
// and without a trailing slash.
func DefaultAudiences(armEndpoint string) []string {
	var auds []string
	for _, a := range []string{armEndpoint, "https://management.azure.com", "https://management.core.windows.net"} {
		a = strings.TrimSuffix(a, "/")
		if a == "" {
			continue
		}
		auds = append(auds, a+"/", a)
	}
	return auds
}

// Issuer issues and verifies access tokens. It is safe for concurrent use.
type Issuer struct {
	tenantID  string
	authority string // no trailing slash
	host      string // host name of the authority
	issuer    string // authority/tenant/v2.0
	keys      atomic.Pointer[keySet]
	audiences []string
	lifetime  time.Duration
	now       func() time.Time
	dir       Directory
	logger    *slog.Logger
	throttle  *throttle
	codes     CodeKeeper // the Directory, or memoryCodes over it
}

// New returns an Issuer for cfg that checks credentials with dir. A nil logger discards logs.
func New(cfg Config, dir Directory, logger *slog.Logger) (*Issuer, error) {
	if cfg.TenantID == "" {
		return nil, errors.New("new issuer: no tenant id")
	}
	if strings.ContainsAny(cfg.TenantID, "/?#") {
		return nil, fmt.Errorf("new issuer: tenant id %q is not a path segment", cfg.TenantID)
	}
	authority := strings.TrimSuffix(cfg.Authority, "/")
	u, err := url.Parse(authority)
	if err != nil || u.Scheme == "" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("new issuer: authority %q is not an absolute URL", cfg.Authority)
	}
	if u.Path != "" {
		// MSAL takes the first path segment of an authority for the tenant.
		return nil, fmt.Errorf("new issuer: authority %q has a path; serve the issuer at the root of a host", cfg.Authority)
	}
	if cfg.Key == nil {
		return nil, errors.New("new issuer: no signing key")
	}
	ks, err := newKeySet(cfg.Key, cfg.VerifyKeys)
	if err != nil {
		return nil, fmt.Errorf("new issuer: %w", err)
	}
	if len(cfg.Audiences) == 0 {
		return nil, errors.New("new issuer: no audiences")
	}
	if dir == nil {
		return nil, errors.New("new issuer: no directory")
	}
	if cfg.Lifetime == 0 {
		cfg.Lifetime = time.Hour
	}
	if cfg.Lifetime < 0 {
		return nil, fmt.Errorf("new issuer: negative lifetime %v", cfg.Lifetime)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxPendingCodes < 0 {
		return nil, fmt.Errorf("new issuer: negative MaxPendingCodes %d", cfg.MaxPendingCodes)
	}
	if cfg.MaxPendingCodes == 0 {
		cfg.MaxPendingCodes = defaultMaxPendingCodes
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	i := &Issuer{
		tenantID:  cfg.TenantID,
		authority: authority,
		host:      u.Hostname(),
		issuer:    authority + "/" + cfg.TenantID + "/v2.0",
		audiences: slices.Clone(cfg.Audiences),
		lifetime:  cfg.Lifetime,
		now:       cfg.Now,
		dir:       dir,
		logger:    logger.With("component", "identity"),
		throttle:  newThrottle(cfg.SignIn, cfg.Now),
	}
	if ck, ok := dir.(CodeKeeper); ok {
		i.codes = ck
	} else {
		i.codes = &memoryCodes{codes: newCodeStore(cfg.MaxPendingCodes), dir: dir, now: cfg.Now}
	}
	i.keys.Store(ks)
	return i, nil
}

// keySet is the issuer's keys: one signs, all verify. It is replaced whole (SetKeys), never
// changed.
type keySet struct {
	sign   *rsa.PrivateKey
	kid    string
	verify map[string]*rsa.PublicKey // by key id, the signing key's included
	order  []string                  // key ids, signing key first
}

func newKeySet(sign *rsa.PrivateKey, verify []*rsa.PublicKey) (*keySet, error) {
	if sign == nil {
		return nil, errors.New("no signing key")
	}
	ks := &keySet{sign: sign, kid: keyID(&sign.PublicKey), verify: map[string]*rsa.PublicKey{}}
	for _, k := range append([]*rsa.PublicKey{&sign.PublicKey}, verify...) {
		if k == nil {
			continue
		}
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("%d-bit RSA key is too small", k.N.BitLen())
		}
		id := keyID(k)
		if _, dup := ks.verify[id]; dup {
			continue
		}
		ks.verify[id] = k
		ks.order = append(ks.order, id)
	}
	return ks, nil
}

// SetKeys replaces the issuer's keys: sign signs from now on; tokens signed by sign or by any
// of verify are accepted, and JWKS publishes them all. Requests in flight finish with the keys
// they started with.
func (i *Issuer) SetKeys(sign *rsa.PrivateKey, verify []*rsa.PublicKey) error {
	ks, err := newKeySet(sign, verify)
	if err != nil {
		return fmt.Errorf("set keys: %w", err)
	}
	i.keys.Store(ks)
	return nil
}

// accessClaims are the claims of an access token. aud is a single string, as Azure writes it
// (jwt.RegisteredClaims would write an array).
type accessClaims struct {
	Audience  string           `json:"aud"`
	Issuer    string           `json:"iss"`
	IssuedAt  *jwt.NumericDate `json:"iat,omitempty"`
	NotBefore *jwt.NumericDate `json:"nbf,omitempty"`
	ExpiresAt *jwt.NumericDate `json:"exp,omitempty"`

	TenantID       string `json:"tid"`
	ObjectID       string `json:"oid"`
	Subject        string `json:"sub"`
	AppID          string `json:"appid,omitempty"`
	AuthorizedApp  string `json:"azp,omitempty"`
	AppDisplayName string `json:"app_displayname,omitempty"`
	UPN            string `json:"upn,omitempty"`
	UniqueName     string `json:"unique_name,omitempty"`
	Name           string `json:"name,omitempty"`
	SessionID      string `json:"sid,omitempty"`
	IdentityType   string `json:"idtyp"` // "app" or "user"
	Version        string `json:"ver"`
}

var _ jwt.Claims = (*accessClaims)(nil)

func (c *accessClaims) GetExpirationTime() (*jwt.NumericDate, error) { return c.ExpiresAt, nil }
func (c *accessClaims) GetIssuedAt() (*jwt.NumericDate, error)       { return c.IssuedAt, nil }
func (c *accessClaims) GetNotBefore() (*jwt.NumericDate, error)      { return c.NotBefore, nil }
func (c *accessClaims) GetIssuer() (string, error)                   { return c.Issuer, nil }
func (c *accessClaims) GetSubject() (string, error)                  { return c.Subject, nil }
func (c *accessClaims) GetAudience() (jwt.ClaimStrings, error) {
	return jwt.ClaimStrings{c.Audience}, nil
}

// Issue returns an access token for p with the given audience, which must be one of the
// configured audiences, and the time it expires. The token carries p.SessionID as its sid
// claim if it is not "".
func (i *Issuer) Issue(p Principal, audience string) (token string, expires time.Time, err error) {
	if !slices.Contains(i.audiences, audience) {
		return "", time.Time{}, fmt.Errorf("issue token: audience %q is not accepted", audience)
	}
	return i.issue(p, i.issuer, audience, i.lifetime)
}

// IssueFor returns a token for p, valid for lifetime, that the issuer of another replica
// accepts: one at authority (its absolute URL, also its ARM endpoint) that shares this issuer's
// tenant and signing keys. A replica uses it to ask another on a caller's behalf; the other
// authenticates and authorizes the caller as if it had called.
func (i *Issuer) IssueFor(p Principal, authority string, lifetime time.Duration) (string, error) {
	authority = strings.TrimSuffix(authority, "/")
	if u, err := url.Parse(authority); err != nil || !u.IsAbs() {
		return "", fmt.Errorf("issue token: authority %q is not an absolute URL", authority)
	}
	token, _, err := i.issue(p, authority+"/"+i.tenantID+"/v2.0", authority, lifetime)
	return token, err
}

// issue signs a token for p with the issuer and audience claims given.
func (i *Issuer) issue(p Principal, issuer, audience string, lifetime time.Duration) (token string, expires time.Time, err error) {
	if p.ObjectID == "" {
		return "", time.Time{}, errors.New("issue token: principal has no object id")
	}
	if p.TenantID != "" && !strings.EqualFold(p.TenantID, i.tenantID) {
		return "", time.Time{}, fmt.Errorf("issue token: principal %s is in tenant %s, not %s", p.ObjectID, p.TenantID, i.tenantID)
	}
	now := i.now().Truncate(time.Second)
	expires = now.Add(lifetime)
	c := &accessClaims{
		Audience:  audience,
		Issuer:    issuer,
		IssuedAt:  jwt.NewNumericDate(now),
		NotBefore: jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(expires),
		TenantID:  i.tenantID,
		ObjectID:  p.ObjectID,
		Subject:   p.ObjectID,
		SessionID: p.SessionID,
		Version:   "2.0",
	}
	switch p.Kind {
	case KindServicePrincipal:
		if p.AppID == "" {
			return "", time.Time{}, fmt.Errorf("issue token: service principal %s has no app id", p.ObjectID)
		}
		c.IdentityType = "app"
		c.AppID, c.AuthorizedApp, c.AppDisplayName = p.AppID, p.AppID, p.Name
	case KindUser:
		c.IdentityType = "user"
		c.UPN, c.UniqueName, c.Name = p.Name, p.Name, p.Name
	default:
		return "", time.Time{}, fmt.Errorf("issue token: principal %s has unknown kind %q", p.ObjectID, p.Kind)
	}
	token, err = i.sign(c)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("issue token for %s: %w", p.ObjectID, err)
	}
	return token, expires, nil
}

// sign returns claims as a JWT signed with the issuer's key.
func (i *Issuer) sign(claims jwt.Claims) (string, error) {
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	ks := i.keys.Load()
	t.Header["kid"] = ks.kid
	s, err := t.SignedString(ks.sign)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return s, nil
}

// Verify checks an access token issued by i — signature, key id, expiry and not-before (with
// a minute of clock skew), issuer, audience and tenant — and returns its principal, with the
// sid claim as its SessionID. Verify does not ask the Directory (see Authenticate). Every
// error wraps ErrInvalidToken.
func (i *Issuer) Verify(token string) (Principal, error) {
	var c accessClaims
	_, err := jwt.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		k, ok := i.keys.Load().verify[kid]
		if !ok {
			return nil, fmt.Errorf("unknown signing key %q", kid)
		}
		return k, nil
	},
		jwt.WithValidMethods([]string{jwt.SigningMethodRS256.Alg()}),
		jwt.WithIssuer(i.issuer),
		jwt.WithAudience(i.audiences...),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(clockSkew),
		jwt.WithTimeFunc(i.now),
	)
	if err != nil {
		return Principal{}, fmt.Errorf("verify token: %w: %w", ErrInvalidToken, err)
	}
	if !strings.EqualFold(c.TenantID, i.tenantID) {
		return Principal{}, fmt.Errorf("verify token: %w: tenant %q", ErrInvalidToken, c.TenantID)
	}
	if c.ObjectID == "" {
		return Principal{}, fmt.Errorf("verify token: %w: no oid", ErrInvalidToken)
	}
	p := Principal{ObjectID: c.ObjectID, TenantID: i.tenantID, SessionID: c.SessionID}
	switch c.IdentityType {
	case "app":
		if c.AppID == "" {
			return Principal{}, fmt.Errorf("verify token: %w: app token without appid", ErrInvalidToken)
		}
		p.Kind, p.AppID, p.Name = KindServicePrincipal, c.AppID, c.AppDisplayName
	case "user":
		p.Kind, p.Name = KindUser, c.UPN
	default:
		return Principal{}, fmt.Errorf("verify token: %w: identity type %q", ErrInvalidToken, c.IdentityType)
	}
	return p, nil
}

// Authenticate verifies the bearer token in r's Authorization header, then asks the Directory
// whether its principal, and its session if the token has one, are still active, and returns
// the principal. So a deleted or disabled principal's token, or a token of a signed-out
// session, stops working at once, before it expires.
//
// An invalid token, a missing header and an inactive principal or session are errors that wrap
// ErrInvalidToken (answer 401); a failure to ask the Directory is an error that does not (answer
// 500).
func (i *Issuer) Authenticate(r *http.Request) (Principal, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return Principal{}, fmt.Errorf("authenticate: %w: no authorization header", ErrInvalidToken)
	}
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return Principal{}, fmt.Errorf("authenticate: %w: authorization is not a bearer token", ErrInvalidToken)
	}
	p, err := i.Verify(strings.TrimSpace(token))
	if err != nil {
		return Principal{}, fmt.Errorf("authenticate: %w", err)
	}
	if err := i.dir.Active(r.Context(), p.ObjectID, p.SessionID); err != nil {
		if errors.Is(err, ErrInvalidCredentials) {
			return Principal{}, fmt.Errorf("authenticate: %w: principal %s or its session %q is no longer active", ErrInvalidToken, p.ObjectID, p.SessionID)
		}
		return Principal{}, fmt.Errorf("authenticate: check principal %s is active: %w", p.ObjectID, err)
	}
	return p, nil
}

// Challenge returns the WWW-Authenticate header value of a 401 from the API, in Azure Resource
// Manager's style: it names the authority clients get a token from.
func Challenge(authority, tenantID string) string {
	return fmt.Sprintf(`Bearer authorization_uri="%s/%s", error="invalid_token", error_description="The access token is missing, invalid or expired. Get a new one from the authorization_uri."`,
		strings.TrimSuffix(authority, "/"), tenantID)
}
