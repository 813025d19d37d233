package identity

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// maxFormBytes bounds the body of a token request.
const maxFormBytes = 64 << 10

// Handler returns the HTTP handler of the issuer's endpoints, rooted at "/":
//
//	GET  /{tenant}/v2.0/.well-known/openid-configuration  OpenID configuration (MSAL's tenant discovery)
//	GET  /{tenant}/.well-known/openid-configuration       the same document
//	GET  /{tenant}/discovery/v2.0/keys                    JWKS
//	POST /{tenant}/oauth2/v2.0/token                      client_credentials, password, authorization_code
//	                                                      and refresh_token grants
//	GET  /{tenant}/oauth2/v2.0/authorize                  sign-in page of the authorization code flow (PKCE)
//	POST /{tenant}/oauth2/v2.0/authorize                  its form: checks the password, redirects with a code
//	GET  /{tenant}/oauth2/v2.0/logout                     OIDC end-session: redirects or shows "signed out"
//	POST /{tenant}/oauth2/v2.0/logout  (form refresh_token=…)  revokes that session
//	GET  /common/UserRealm/{username}                     user realm discovery (MSAL's password flow)
//	GET  /msi/token?resource=…                            App Service–style managed identity
//	POST /msi/token  (form resource=…)                    the same, az's legacy flavour
//
// {tenant} is the configured tenant id, "organizations" or "common"; any other is answered
// with AADSTS90002.
func (i *Issuer) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{tenant}/v2.0/.well-known/openid-configuration", i.handleOpenIDConfiguration)
	mux.HandleFunc("GET /{tenant}/.well-known/openid-configuration", i.handleOpenIDConfiguration)
	mux.HandleFunc("GET /{tenant}/discovery/v2.0/keys", i.handleKeys)
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/token", i.handleToken)
	mux.HandleFunc("GET /{tenant}/oauth2/v2.0/authorize", i.handleAuthorize)
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/authorize", i.handleAuthorize)
	mux.HandleFunc("GET /{tenant}/oauth2/v2.0/logout", i.handleLogout)
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/logout", i.handleLogout)
	// MSAL Go asks for /common/UserRealm/…, MSAL Python (az) for /common/userrealm/….
	mux.HandleFunc("GET /common/UserRealm/{username}", i.handleUserRealm)
	mux.HandleFunc("GET /common/userrealm/{username}", i.handleUserRealm)
	// MSI_ENDPOINT may be given with or without a trailing slash; clients append "/?resource=…"
	// or "?resource=…".
	for _, p := range []string{"/msi/token", "/msi/token/{$}"} {
		mux.HandleFunc("GET "+p, i.handleManagedIdentity)
		mux.HandleFunc("POST "+p, i.handleManagedIdentity)
	}
	return mux
}

// knownTenant reports whether the path segment t names this issuer's tenant.
func (i *Issuer) knownTenant(t string) bool {
	return strings.EqualFold(t, i.tenantID) || t == "organizations" || t == "common"
}

// openIDConfiguration is the subset of Microsoft's OpenID configuration that MSAL and OIDC
// clients read.
type openIDConfiguration struct {
	Issuer                            string   `json:"issuer"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	DeviceAuthorizationEndpoint       string   `json:"device_authorization_endpoint"`
	EndSessionEndpoint                string   `json:"end_session_endpoint"`
	JWKSURI                           string   `json:"jwks_uri"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	CodeChallengeMethodsSupported     []string `json:"code_challenge_methods_supported"`
	ResponseModesSupported            []string `json:"response_modes_supported"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	ScopesSupported                   []string `json:"scopes_supported"`
	SubjectTypesSupported             []string `json:"subject_types_supported"`
	IDTokenSigningAlgValuesSupported  []string `json:"id_token_signing_alg_values_supported"`
	ClaimsSupported                   []string `json:"claims_supported"`
	RequestURIParameterSupported      bool     `json:"request_uri_parameter_supported"`
	TenantRegionScope                 string   `json:"tenant_region_scope"`
	CloudInstanceName                 string   `json:"cloud_instance_name"`
}

func (i *Issuer) handleOpenIDConfiguration(w http.ResponseWriter, r *http.Request) {
	tenant := r.PathValue("tenant")
	if !i.knownTenant(tenant) {
		i.writeAADError(w, r, errTenantNotFound(tenant))
		return
	}
	writeJSON(w, http.StatusOK, i.openIDConfiguration(tenant))
}

// openIDConfiguration returns the configuration for requests to /{tenant}/…: endpoints keep
// the tenant segment the client used, the issuer always names the configured tenant.
func (i *Issuer) openIDConfiguration(tenant string) openIDConfiguration {
	base := i.authority + "/" + tenant
	return openIDConfiguration{
		Issuer:                            i.issuer,
		AuthorizationEndpoint:             base + "/oauth2/v2.0/authorize",
		TokenEndpoint:                     base + "/oauth2/v2.0/token",
		DeviceAuthorizationEndpoint:       base + "/oauth2/v2.0/devicecode",
		EndSessionEndpoint:                base + "/oauth2/v2.0/logout",
		JWKSURI:                           base + "/discovery/v2.0/keys",
		TokenEndpointAuthMethodsSupported: []string{"client_secret_post", "client_secret_basic", "none"},
		GrantTypesSupported:               []string{"authorization_code", "refresh_token", "client_credentials", "password"},
		CodeChallengeMethodsSupported:     []string{"S256"},
		ResponseModesSupported:            []string{"query", "form_post"},
		ResponseTypesSupported:            []string{"code"},
		ScopesSupported:                   []string{"openid", "profile", "email", "offline_access"},
		SubjectTypesSupported:             []string{"pairwise"},
		IDTokenSigningAlgValuesSupported:  []string{"RS256"},
		ClaimsSupported: []string{"sub", "iss", "aud", "exp", "iat", "nbf", "name", "oid", "tid",
			"upn", "unique_name", "preferred_username", "appid", "azp", "idtyp", "ver", "sid", "nonce"},
		TenantRegionScope: "WW",
		CloudInstanceName: i.host,
	}
}

func (i *Issuer) handleKeys(w http.ResponseWriter, r *http.Request) {
	tenant := r.PathValue("tenant")
	if !i.knownTenant(tenant) {
		i.writeAADError(w, r, errTenantNotFound(tenant))
		return
	}
	ks := i.keys.Load()
	keys := make([]jwk, 0, len(ks.order))
	for _, id := range ks.order {
		keys = append(keys, newJWK(ks.verify[id], id, i.issuer))
	}
	writeJSON(w, http.StatusOK, struct {
		Keys []jwk `json:"keys"`
	}{keys})
}

// userRealm is the answer of the user realm discovery endpoint: every user is a cloud
// ("Managed") user, whose password the token endpoint checks.
type userRealm struct {
	Version           string `json:"ver"`
	AccountType       string `json:"account_type"`
	DomainName        string `json:"domain_name"`
	CloudInstanceName string `json:"cloud_instance_name"`
	CloudAudienceURN  string `json:"cloud_audience_urn"`
}

func (i *Issuer) handleUserRealm(w http.ResponseWriter, r *http.Request) {
	domain := i.host
	if _, d, ok := strings.Cut(r.PathValue("username"), "@"); ok && d != "" {
		domain = d
	}
	writeJSON(w, http.StatusOK, userRealm{
		Version:           "1.0",
		AccountType:       "Managed",
		DomainName:        domain,
		CloudInstanceName: i.host,
		CloudAudienceURN:  "urn:federation:MicrosoftOnline",
	})
}

func (i *Issuer) handleToken(w http.ResponseWriter, r *http.Request) {
	if tenant := r.PathValue("tenant"); !i.knownTenant(tenant) {
		i.writeAADError(w, r, errTenantNotFound(tenant))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		if tooLarge := (*http.MaxBytesError)(nil); errors.As(err, &tooLarge) {
			i.writeAADError(w, r, &aadError{status: http.StatusRequestEntityTooLarge, code: "invalid_request", aadsts: 900144,
				msg: fmt.Sprintf("The token request body is larger than %d KiB.", maxFormBytes>>10)})
			return
		}
		i.writeAADError(w, r, &aadError{status: http.StatusBadRequest, code: "invalid_request", aadsts: 900144,
			msg: "The request body must be a form-encoded token request (application/x-www-form-urlencoded)."})
		return
	}
	req := tokenRequest{
		grantType:    r.PostForm.Get("grant_type"),
		clientID:     r.PostForm.Get("client_id"),
		clientSecret: r.PostForm.Get("client_secret"),
		username:     r.PostForm.Get("username"),
		password:     r.PostForm.Get("password"),
		code:         r.PostForm.Get("code"),
		redirectURI:  r.PostForm.Get("redirect_uri"),
		codeVerifier: r.PostForm.Get("code_verifier"),
		refreshToken: r.PostForm.Get("refresh_token"),
		scope:        r.PostForm.Get("scope"),
		clientInfo:   r.PostForm.Get("client_info") == "1",
		clientAddr:   clientAddress(r),
	}
	if id, secret, ok := r.BasicAuth(); ok && req.clientSecret == "" { // client_secret_basic
		if id, err := url.QueryUnescape(id); err == nil && (req.clientID == "" || req.clientID == id) {
			req.clientID = id
			req.clientSecret, _ = url.QueryUnescape(secret)
		}
	}
	resp, aerr := i.token(r.Context(), req)
	if aerr != nil {
		i.writeAADError(w, r, aerr)
		return
	}
	w.Header().Set("Cache-Control", "no-store, no-cache")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, resp)
}

// msiResponse is the App Service managed identity token response (api-version 2017-09-01),
// with IMDS's expires_in and client_id added.
type msiResponse struct {
	AccessToken string `json:"access_token"`
	ExpiresOn   string `json:"expires_on"` // unix seconds
	ExpiresIn   string `json:"expires_in"` // seconds
	NotBefore   string `json:"not_before"` // unix seconds
	Resource    string `json:"resource"`
	TokenType   string `json:"token_type"`
	ClientID    string `json:"client_id"`
}

// handleManagedIdentity serves a token for the service principal whose credentials come in the
// "secret: <clientId>:<clientSecret>" header (App Service flavour, MSI_SECRET) or as HTTP Basic
// credentials (az's legacy POST flavour sends none of its own, but python-requests turns the
// user info of MSI_ENDPOINT, https://<clientId>:<clientSecret>@host/msi/token, into Basic).
func (i *Issuer) handleManagedIdentity(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		writeMSIError(w, &msiError{http.StatusBadRequest, "invalid_request", "The request body must be form-encoded."})
		return
	}
	clientID, secret, ok := msiCredentials(r)
	if !ok {
		writeMSIError(w, &msiError{http.StatusUnauthorized, "invalid_client",
			`The request carries no credentials. Send the header "secret: <clientId>:<clientSecret>" (MSI_SECRET) or put them in MSI_ENDPOINT as https://<clientId>:<clientSecret>@host/msi/token.`})
		return
	}
	tok, merr := i.managedIdentityToken(r.Context(), clientID, secret, r.Form.Get("resource"), clientAddress(r))
	if merr != nil {
		writeMSIError(w, merr)
		return
	}
	w.Header().Set("Cache-Control", "no-store, no-cache")
	writeJSON(w, http.StatusOK, tok)
}

// msiCredentials returns the service principal credentials of a managed identity request.
func msiCredentials(r *http.Request) (clientID, secret string, ok bool) {
	if h := r.Header.Get("Secret"); h != "" {
		clientID, secret, ok = strings.Cut(h, ":")
	} else {
		clientID, secret, ok = r.BasicAuth()
	}
	return clientID, secret, ok && clientID != "" && secret != ""
}

// msiError is an error of the managed identity endpoint, in IMDS's shape.
type msiError struct {
	status int
	code   string
	msg    string
}

func writeMSIError(w http.ResponseWriter, e *msiError) {
	if e.status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, e.status, struct {
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
	}{e.code, e.msg})
}

// aadError is an error of the token endpoints, written in Microsoft Entra ID's shape.
type aadError struct {
	status int
	code   string // OAuth error code, e.g. "invalid_client"
	aadsts int    // AADSTS number
	msg    string // for the client: what went wrong and what to do
	cause  error  // for the log only
	// retryAfter, if set, is sent as the Retry-After header.
	retryAfter time.Duration
}

// Error returns e's OAuth error code and message, so that e may travel as an error (see
// checkCode).
func (e *aadError) Error() string { return e.code + ": " + e.msg }

func errTenantNotFound(tenant string) *aadError {
	return &aadError{status: http.StatusBadRequest, code: "invalid_request", aadsts: 90002,
		msg: fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud: use the tenantId of this pglink server.", tenant)}
}

// writeAADError writes e with a fresh trace id and the client's correlation id, and logs it.
func (i *Issuer) writeAADError(w http.ResponseWriter, r *http.Request, e *aadError) {
	traceID := newUUID()
	correlationID := r.Header.Get("client-request-id")
	if correlationID == "" {
		correlationID = newUUID()
	}
	ts := i.now().UTC().Format("2006-01-02 15:04:05Z")
	level := slog.LevelInfo
	if e.status >= 500 {
		level = slog.LevelError
	}
	attrs := []any{"path", r.URL.Path, "status", e.status, "error", e.code, "aadsts", e.aadsts, "trace_id", traceID}
	if id := r.PostForm.Get("client_id"); id != "" {
		attrs = append(attrs, "client_id", id)
	}
	if e.cause != nil {
		attrs = append(attrs, "cause", e.cause)
	}
	i.logger.Log(r.Context(), level, "token request failed", attrs...)
	w.Header().Set("Cache-Control", "no-store, no-cache")
	w.Header().Set("Pragma", "no-cache")
	if e.retryAfter > 0 {
		w.Header().Set("Retry-After", retryAfter(e.retryAfter))
	}
	w.Header().Set("x-ms-request-id", traceID)
	w.Header().Set("client-request-id", correlationID)
	writeJSON(w, e.status, struct {
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
		ErrorCodes       []int  `json:"error_codes"`
		Timestamp        string `json:"timestamp"`
		TraceID          string `json:"trace_id"`
		CorrelationID    string `json:"correlation_id"`
		ErrorURI         string `json:"error_uri"`
	}{
		Error: e.code,
		ErrorDescription: fmt.Sprintf("AADSTS%d: %s Trace ID: %s Correlation ID: %s Timestamp: %s",
			e.aadsts, e.msg, traceID, correlationID, ts),
		ErrorCodes:    []int{e.aadsts},
		Timestamp:     ts,
		TraceID:       traceID,
		CorrelationID: correlationID,
		ErrorURI:      i.authority + "/error?code=" + strconv.Itoa(e.aadsts),
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // messages quote "<clientId>" and the like
	// The status is sent; a failed write means the client went away.
	_ = enc.Encode(v)
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
