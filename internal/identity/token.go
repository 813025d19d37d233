package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// tokenRequest is a request to the v2 token endpoint.
type tokenRequest struct {
	grantType    string
	clientID     string
	clientSecret string
	username     string
	password     string
	code         string // authorization_code grant
	redirectURI  string // authorization_code grant
	codeVerifier string // authorization_code grant (PKCE)
	refreshToken string // refresh_token grant
	scope        string // space-separated
	clientInfo   bool   // client_info=1: the client wants client_info back (MSAL's user flows)
	clientAddr   string // IP address of the client, for sign-in throttling
}

// tokenResponse is a successful answer of the v2 token endpoint.
type tokenResponse struct {
	TokenType    string `json:"token_type"`
	Scope        string `json:"scope,omitempty"`
	ExpiresIn    int64  `json:"expires_in"`
	ExtExpiresIn int64  `json:"ext_expires_in"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token,omitempty"`
	IDToken      string `json:"id_token,omitempty"`
	ClientInfo   string `json:"client_info,omitempty"`
}

// oidcScopes are the OpenID Connect scopes MSAL adds to every request; they name no resource.
var oidcScopes = map[string]bool{"openid": true, "profile": true, "offline_access": true, "email": true}

// grant is what a token request was granted.
type grant struct {
	p            Principal // with the SessionID of a session the grant started or refreshed
	scopes       scopes
	nonce        string // of the authorization request, for the id_token
	refreshToken string // "" for grants that start no session
	user         bool   // a user grant: answer with scope, id_token and client_info as MSAL expects
}

// token performs a token request: it checks the grant type, the scope and the credentials,
// and issues the tokens.
func (i *Issuer) token(ctx context.Context, req tokenRequest) (*tokenResponse, *aadError) {
	switch req.grantType {
	case "client_credentials", "password", "authorization_code", "refresh_token":
	case "":
		return nil, errMissingParameter("grant_type")
	default:
		return nil, &aadError{status: http.StatusBadRequest, code: "unsupported_grant_type", aadsts: 70003,
			msg: fmt.Sprintf("The app requested an unsupported grant type '%s'. pglink supports client_credentials, password, authorization_code and refresh_token.", req.grantType)}
	}
	if req.clientID == "" {
		return nil, errMissingParameter("client_id")
	}
	var (
		g    grant
		aerr *aadError
	)
	switch req.grantType {
	case "client_credentials", "password":
		g, aerr = i.credentialsGrant(ctx, req)
	case "authorization_code":
		g, aerr = i.codeGrant(ctx, req)
	case "refresh_token":
		g, aerr = i.refreshGrant(ctx, req)
	}
	if aerr != nil {
		return nil, aerr
	}
	at, expires, err := i.Issue(g.p, g.scopes.audience)
	if err != nil {
		return nil, errServer(err)
	}
	resp := &tokenResponse{
		TokenType:    "Bearer",
		ExpiresIn:    int64(i.lifetime / time.Second),
		ExtExpiresIn: int64(i.lifetime / time.Second),
		AccessToken:  at,
		RefreshToken: g.refreshToken,
	}
	if g.user {
		// MSAL's public client caches the token under the account that id_token and
		// client_info describe, and fails if a requested scope is missing from scope.
		resp.Scope = strings.Join(g.scopes.resource, " ")
		if g.scopes.openid {
			if resp.IDToken, err = i.idToken(g.p, req.clientID, g.nonce, expires); err != nil {
				return nil, errServer(err)
			}
		}
		if req.clientInfo {
			resp.ClientInfo = i.clientInfo(g.p)
		}
	}
	attrs := []any{"grant", req.grantType, "principal", g.p.ObjectID, "kind", g.p.Kind, "audience", g.scopes.audience}
	if g.p.SessionID != "" {
		attrs = append(attrs, "session", g.p.SessionID)
	}
	i.logger.Info("token issued", attrs...)
	return resp, nil
}

// credentialsGrant performs a client_credentials or password grant. A password grant whose
// scope has offline_access starts a session and answers with its refresh token.
func (i *Issuer) credentialsGrant(ctx context.Context, req tokenRequest) (grant, *aadError) {
	sc, aerr := i.parseScopes(req.scope)
	if aerr != nil {
		return grant{}, aerr
	}
	p, aerr := i.grantPrincipal(ctx, req)
	if aerr != nil {
		return grant{}, aerr
	}
	g := grant{p: p, scopes: sc, user: req.grantType == "password"}
	if g.user && sc.offline {
		if aerr := i.startSession(ctx, &g); aerr != nil {
			return grant{}, aerr
		}
	}
	return g, nil
}

// startSession starts a session for g's user and records it in g.
func (i *Issuer) startSession(ctx context.Context, g *grant) *aadError {
	sid, rt, err := i.dir.StartSession(ctx, g.p)
	if err != nil {
		return errServer(fmt.Errorf("start session for %s: %w", g.p.ObjectID, err))
	}
	if sid == "" || rt == "" {
		return errServer(fmt.Errorf("start session for %s: directory returned no session id or refresh token", g.p.ObjectID))
	}
	g.p.SessionID, g.refreshToken = sid, rt
	return nil
}

// refreshGrant performs a refresh_token grant: the directory rotates the refresh token and the
// session's user gets new tokens. Refresh tokens are not counted as failed sign-ins (there is
// no login to count them against, and a client retrying a stale token must not lock its
// address out), but their checks share the bound on concurrent credential checks.
func (i *Issuer) refreshGrant(ctx context.Context, req tokenRequest) (grant, *aadError) {
	if req.refreshToken == "" {
		return grant{}, errMissingParameter("refresh_token")
	}
	sc, aerr := i.parseScopes(req.scope)
	if aerr != nil {
		return grant{}, aerr
	}
	release, ok := i.throttle.acquire(ctx)
	if !ok {
		return grant{}, errBusy(&throttled{busy: true})
	}
	p, sid, rt, err := i.dir.Refresh(ctx, req.refreshToken)
	release()
	if errors.Is(err, ErrInvalidCredentials) {
		return grant{}, &aadError{status: http.StatusBadRequest, code: "invalid_grant", aadsts: 70008, cause: err,
			msg: "The refresh token has expired, was revoked (signed out), was already used, or its user is disabled or deleted. Refresh tokens are single use: each refresh answers with a new one. Sign in again."}
	}
	if err != nil {
		return grant{}, errServer(fmt.Errorf("refresh session: %w", err))
	}
	if p.Kind != KindUser || sid == "" || rt == "" {
		return grant{}, errServer(fmt.Errorf("refresh session: directory returned a %q principal %s, session %q, and a refresh token: %t", p.Kind, p.ObjectID, sid, rt != ""))
	}
	p.SessionID = sid
	return grant{p: p, scopes: sc, refreshToken: rt, user: true}, nil
}

// grantPrincipal checks the credentials of a client_credentials or password grant and returns
// their principal.
func (i *Issuer) grantPrincipal(ctx context.Context, req tokenRequest) (Principal, *aadError) {
	var (
		p        Principal
		err      error
		wantKind string
	)
	switch req.grantType {
	case "client_credentials":
		if req.clientSecret == "" {
			return Principal{}, &aadError{status: http.StatusUnauthorized, code: "invalid_client", aadsts: 7000218,
				msg: "The request body must contain the following parameter: 'client_assertion' or 'client_secret'. pglink accepts client_secret."}
		}
		wantKind = KindServicePrincipal
		p, err = i.throttle.checkCredentials(ctx, req.clientID, req.clientAddr, func() (Principal, error) {
			return i.dir.ServicePrincipal(ctx, req.clientID, req.clientSecret)
		})
		if t := (*throttled)(nil); errors.As(err, &t) {
			return Principal{}, i.errThrottled(t, "invalid_client", http.StatusUnauthorized, "application")
		}
		if errors.Is(err, ErrInvalidCredentials) {
			return Principal{}, &aadError{status: http.StatusUnauthorized, code: "invalid_client", aadsts: 7000215, cause: err,
				msg: fmt.Sprintf("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", req.clientID)}
		}
	case "password":
		if req.username == "" {
			return Principal{}, errMissingParameter("username")
		}
		if req.password == "" {
			return Principal{}, errMissingParameter("password")
		}
		wantKind = KindUser
		p, err = i.checkUser(ctx, req.username, req.password, req.clientAddr)
		if t := (*throttled)(nil); errors.As(err, &t) {
			return Principal{}, i.errThrottled(t, "invalid_grant", http.StatusBadRequest, "account")
		}
		if errors.Is(err, ErrInvalidCredentials) {
			return Principal{}, errBadPassword(err)
		}
	}
	if err != nil {
		return Principal{}, errServer(fmt.Errorf("check credentials of %s grant: %w", req.grantType, err))
	}
	if p.Kind != wantKind {
		return Principal{}, errServer(fmt.Errorf("check credentials of %s grant: directory returned a %q principal %s", req.grantType, p.Kind, p.ObjectID))
	}
	return p, nil
}

// checkUser checks a user's password under the sign-in throttle (see throttle.checkCredentials).
func (i *Issuer) checkUser(ctx context.Context, username, password, clientAddr string) (Principal, error) {
	return i.throttle.checkCredentials(ctx, username, clientAddr, func() (Principal, error) {
		return i.dir.User(ctx, username, password)
	})
}

func errBadPassword(cause error) *aadError {
	return &aadError{status: http.StatusBadRequest, code: "invalid_grant", aadsts: 50126, cause: cause,
		msg: "Error validating credentials due to invalid username or password."}
}

// scopes is a parsed v2 scope parameter.
type scopes struct {
	audience string   // the resource the scopes name
	resource []string // the resource scopes, as given
	openid   bool     // openid was asked for: answer with an id_token
	offline  bool     // offline_access was asked for: answer with a refresh token
}

// parseScopes parses a v2 scope parameter: the resource scopes ("<audience>/.default") must
// name one accepted audience; OIDC scopes may come besides.
func (i *Issuer) parseScopes(scope string) (scopes, *aadError) {
	var sc scopes
	for _, s := range strings.Fields(scope) {
		if oidcScopes[s] {
			sc.openid = sc.openid || s == "openid"
			sc.offline = sc.offline || s == "offline_access"
			continue
		}
		sc.resource = append(sc.resource, s)
	}
	if strings.TrimSpace(scope) == "" {
		return scopes{}, errMissingParameter("scope")
	}
	if len(sc.resource) == 0 {
		return scopes{}, i.errInvalidScope(scope, "it names no resource")
	}
	for _, s := range sc.resource {
		a, ok := strings.CutSuffix(s, "/.default")
		if !ok {
			a, ok = strings.CutSuffix(s, ".default")
		}
		if !ok {
			return scopes{}, i.errInvalidScope(s, "pglink only grants '<resource>/.default' scopes")
		}
		if !slices.Contains(i.audiences, a) {
			return scopes{}, i.errInvalidScope(s, fmt.Sprintf("resource '%s' is not served here", a))
		}
		if sc.audience != "" && sc.audience != a {
			return scopes{}, i.errInvalidScope(scope, "it names more than one resource")
		}
		sc.audience = a
	}
	return sc, nil
}

func (i *Issuer) errInvalidScope(scope, why string) *aadError {
	return &aadError{status: http.StatusBadRequest, code: "invalid_scope", aadsts: 70011,
		msg: fmt.Sprintf("The provided value for the input parameter 'scope' is not valid. The scope '%s' is not valid: %s. Ask for one of: %s.",
			scope, why, strings.Join(i.defaultScopes(), ", "))}
}

// defaultScopes returns the ".default" scope of each accepted audience.
func (i *Issuer) defaultScopes() []string {
	s := make([]string, len(i.audiences))
	for n, a := range i.audiences {
		s[n] = a + "/.default"
	}
	return s
}

func errMissingParameter(name string) *aadError {
	return &aadError{status: http.StatusBadRequest, code: "invalid_request", aadsts: 900144,
		msg: fmt.Sprintf("The request body must contain the following parameter: '%s'.", name)}
}

func errServer(err error) *aadError {
	var u interface{ Unavailable() bool }
	if errors.As(err, &u) && u.Unavailable() { // the store's ErrUnavailable
		return &aadError{status: http.StatusServiceUnavailable, code: "temporarily_unavailable", aadsts: 50000,
			msg: "pglink cannot reach its store right now. Retry after the time in the Retry-After header.", cause: err,
			retryAfter: time.Second}
	}
	return &aadError{status: http.StatusInternalServerError, code: "temporarily_unavailable", aadsts: 50000,
		msg: "There was an error issuing a token. Try again; if it persists, see the pglink server log.", cause: err}
}

// idToken returns an OpenID Connect ID token for user p and client clientID, as MSAL reads it
// (aud is a string), with the nonce of the authorization request and p's session, if any.
func (i *Issuer) idToken(p Principal, clientID, nonce string, expires time.Time) (string, error) {
	now := i.now().Truncate(time.Second)
	c := jwt.MapClaims{
		"aud":                clientID,
		"iss":                i.issuer,
		"iat":                now.Unix(),
		"nbf":                now.Unix(),
		"exp":                expires.Unix(),
		"tid":                i.tenantID,
		"oid":                p.ObjectID,
		"sub":                p.ObjectID,
		"name":               p.Name,
		"preferred_username": p.Name,
		"ver":                "2.0",
	}
	if nonce != "" {
		c["nonce"] = nonce
	}
	if p.SessionID != "" {
		c["sid"] = p.SessionID
	}
	t, err := i.sign(c)
	if err != nil {
		return "", fmt.Errorf("issue id token for %s: %w", p.ObjectID, err)
	}
	return t, nil
}

// clientInfo returns MSAL's client_info for p: base64url JSON of its object and tenant ids.
func (i *Issuer) clientInfo(p Principal) string {
	b, _ := json.Marshal(struct {
		UID  string `json:"uid"`
		UTID string `json:"utid"`
	}{p.ObjectID, i.tenantID}) // cannot fail: two strings
	return b64(b)
}

// managedIdentityToken answers a managed identity request: an access token for resource
// for the service principal with the given credentials.
func (i *Issuer) managedIdentityToken(ctx context.Context, clientID, secret, resource, clientAddr string) (*msiResponse, *msiError) {
	if resource == "" {
		return nil, &msiError{http.StatusBadRequest, "invalid_request", "Required query variable 'resource' is missing."}
	}
	if !slices.Contains(i.audiences, resource) {
		return nil, &msiError{http.StatusBadRequest, "invalid_resource",
			fmt.Sprintf("Resource '%s' is not served here. Ask for one of: %s.", resource, strings.Join(i.audiences, ", "))}
	}
	p, err := i.throttle.checkCredentials(ctx, clientID, clientAddr, func() (Principal, error) {
		return i.dir.ServicePrincipal(ctx, clientID, secret)
	})
	if t := (*throttled)(nil); errors.As(err, &t) {
		i.logger.Info("managed identity token throttled", "client_id", clientID, "client_address", clientAddr, "error", err)
		if t.busy {
			return nil, &msiError{http.StatusTooManyRequests, "temporarily_unavailable", "Too many sign-ins are being checked. Retry after the time in the Retry-After header."}
		}
		return nil, &msiError{http.StatusUnauthorized, "invalid_client", lockedMessage("application", t.wait)}
	}
	if errors.Is(err, ErrInvalidCredentials) {
		i.logger.Info("managed identity token refused", "client_id", clientID, "error", err)
		return nil, &msiError{http.StatusUnauthorized, "invalid_client",
			fmt.Sprintf("Invalid client id or secret for '%s'. Send a service principal's credentials as the header \"secret: <clientId>:<clientSecret>\" (MSI_SECRET) or in MSI_ENDPOINT as https://<clientId>:<clientSecret>@host/msi/token.", clientID)}
	}
	if err == nil && p.Kind != KindServicePrincipal {
		err = fmt.Errorf("directory returned a %q principal %s", p.Kind, p.ObjectID)
	}
	if err != nil {
		i.logger.Error("managed identity token failed", "client_id", clientID, "error", err)
		return nil, &msiError{http.StatusInternalServerError, "server_error", "There was an error issuing a token. Try again; if it persists, see the pglink server log."}
	}
	at, expires, err := i.Issue(p, resource)
	if err != nil {
		i.logger.Error("managed identity token failed", "client_id", clientID, "error", err)
		return nil, &msiError{http.StatusInternalServerError, "server_error", "There was an error issuing a token. Try again; if it persists, see the pglink server log."}
	}
	now := i.now().Truncate(time.Second)
	i.logger.Info("token issued", "grant", "managed_identity", "principal", p.ObjectID, "kind", p.Kind, "audience", resource)
	return &msiResponse{
		AccessToken: at,
		ExpiresOn:   strconv.FormatInt(expires.Unix(), 10),
		ExpiresIn:   strconv.FormatInt(int64(expires.Sub(now)/time.Second), 10),
		NotBefore:   strconv.FormatInt(now.Unix(), 10),
		Resource:    resource,
		TokenType:   "Bearer",
		ClientID:    p.AppID,
	}, nil
}
