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
	IDToken      string `json:"id_token,omitempty"`
	ClientInfo   string `json:"client_info,omitempty"`
}

// oidcScopes are the OpenID Connect scopes MSAL adds to every request; they name no resource.
var oidcScopes = map[string]bool{"openid": true, "profile": true, "offline_access": true, "email": true}

// token performs a token request: it checks the grant type and scope, then the credentials,
// and issues the tokens.
func (i *Issuer) token(ctx context.Context, req tokenRequest) (*tokenResponse, *aadError) {
	switch req.grantType {
	case "client_credentials", "password":
	case "":
		return nil, errMissingParameter("grant_type")
	default:
		return nil, &aadError{status: http.StatusBadRequest, code: "unsupported_grant_type", aadsts: 70003,
			msg: fmt.Sprintf("The app requested an unsupported grant type '%s'. pglink supports client_credentials and password.", req.grantType)}
	}
	if req.clientID == "" {
		return nil, errMissingParameter("client_id")
	}
	audience, resourceScopes, openid, aerr := i.scopeAudience(req.scope)
	if aerr != nil {
		return nil, aerr
	}

	p, aerr := i.grantPrincipal(ctx, req)
	if aerr != nil {
		return nil, aerr
	}
	at, expires, err := i.Issue(p, audience)
	if err != nil {
		return nil, errServer(err)
	}
	resp := &tokenResponse{
		TokenType:    "Bearer",
		ExpiresIn:    int64(i.lifetime / time.Second),
		ExtExpiresIn: int64(i.lifetime / time.Second),
		AccessToken:  at,
	}
	if req.grantType == "password" {
		// MSAL's public client caches the token under the account that id_token and
		// client_info describe, and fails if a requested scope is missing from scope.
		resp.Scope = strings.Join(resourceScopes, " ")
		if openid {
			if resp.IDToken, err = i.idToken(p, req.clientID, expires); err != nil {
				return nil, errServer(err)
			}
		}
		if req.clientInfo {
			resp.ClientInfo = i.clientInfo(p)
		}
	}
	i.logger.Info("token issued", "grant", req.grantType, "principal", p.ObjectID, "kind", p.Kind, "audience", audience)
	return resp, nil
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
		p, err = i.throttle.checkCredentials(ctx, req.username, req.clientAddr, func() (Principal, error) {
			return i.dir.User(ctx, req.username, req.password)
		})
		if t := (*throttled)(nil); errors.As(err, &t) {
			return Principal{}, i.errThrottled(t, "invalid_grant", http.StatusBadRequest, "account")
		}
		if errors.Is(err, ErrInvalidCredentials) {
			return Principal{}, &aadError{status: http.StatusBadRequest, code: "invalid_grant", aadsts: 50126, cause: err,
				msg: "Error validating credentials due to invalid username or password."}
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

// scopeAudience returns the audience named by the resource scopes of a v2 scope parameter
// ("<audience>/.default", besides OIDC scopes), those scopes, and whether openid was asked for.
func (i *Issuer) scopeAudience(scope string) (audience string, resourceScopes []string, openid bool, aerr *aadError) {
	for _, s := range strings.Fields(scope) {
		if oidcScopes[s] {
			openid = openid || s == "openid"
			continue
		}
		resourceScopes = append(resourceScopes, s)
	}
	if strings.TrimSpace(scope) == "" {
		return "", nil, false, errMissingParameter("scope")
	}
	if len(resourceScopes) == 0 {
		return "", nil, false, i.errInvalidScope(scope, "it names no resource")
	}
	for _, s := range resourceScopes {
		a, ok := strings.CutSuffix(s, "/.default")
		if !ok {
			a, ok = strings.CutSuffix(s, ".default")
		}
		if !ok {
			return "", nil, false, i.errInvalidScope(s, "pglink only grants '<resource>/.default' scopes")
		}
		if !slices.Contains(i.audiences, a) {
			return "", nil, false, i.errInvalidScope(s, fmt.Sprintf("resource '%s' is not served here", a))
		}
		if audience != "" && audience != a {
			return "", nil, false, i.errInvalidScope(scope, "it names more than one resource")
		}
		audience = a
	}
	return audience, resourceScopes, openid, nil
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
	return &aadError{status: http.StatusInternalServerError, code: "temporarily_unavailable", aadsts: 50000,
		msg: "There was an error issuing a token. Try again; if it persists, see the pglink server log.", cause: err}
}

// idToken returns an OpenID Connect ID token for user p and client clientID, as MSAL reads it
// (aud is a string).
func (i *Issuer) idToken(p Principal, clientID string, expires time.Time) (string, error) {
	now := i.now().Truncate(time.Second)
	t, err := i.sign(jwt.MapClaims{
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
	})
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
