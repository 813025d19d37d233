package identity

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// The authorization code flow (RFC 6749 §4.1) with PKCE (RFC 7636), as Microsoft Entra ID
// serves it to public clients: the web portal and native apps.
//
// There is no app registry: any client_id is accepted as a public client, and no client
// secret is asked for. What protects a code is where it may be sent — an https URL on the
// issuer's own origin, or a loopback http URL on any port (RFC 8252 §7.3), both of which only
// this host can serve — and PKCE, which makes a code worthless to anyone but the client that
// started the sign-in.

const (
	// codeLifetime is how long an authorization code may be redeemed.
	codeLifetime = 5 * time.Minute
	// defaultMaxPendingCodes is the default of Config.MaxPendingCodes.
	defaultMaxPendingCodes = 10000
)

// authCode is an authorization code kept in memory and what it is bound to.
type authCode struct {
	Code
	redeemed     bool
	refreshToken string // of the session its redemption started: revoked if the code is replayed
}

// codeState is the outcome of redeeming a code.
type codeState int

const (
	codeValid codeState = iota
	codeUnknown
	codeExpired
	codeRedeemed
)

// codeStore holds the authorization codes issued and not yet expired, at most max of them;
// expired ones are forgotten when it is full and at least every codeLifetime. It is safe for
// concurrent use.
type codeStore struct {
	max int

	mu      sync.Mutex
	codes   map[[sha256.Size]byte]*authCode // by SHA-256 of the code, so the codes themselves are not kept; guarded by mu
	pruneAt time.Time                       // when to forget expired codes next; guarded by mu
}

func newCodeStore(limit int) *codeStore {
	return &codeStore{max: limit, codes: map[[sha256.Size]byte]*authCode{}}
}

// add stores c, valid until c.Expires, and returns its code: 256 random bits, base64url. It
// returns false, storing nothing, if max codes are pending.
func (s *codeStore) add(c Code, now time.Time) (code string, ok bool) {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	code = b64(b[:])
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.codes) >= s.max || !now.Before(s.pruneAt) {
		for k, e := range s.codes {
			if !now.Before(e.Expires) {
				delete(s.codes, k)
			}
		}
		s.pruneAt = now.Add(codeLifetime)
	}
	if len(s.codes) >= s.max {
		return "", false
	}
	s.codes[sha256.Sum256([]byte(code))] = &authCode{Code: c}
	return code, true
}

// redeem marks code used and returns what it is bound to. A code redeemed before is
// codeRedeemed (with its refresh token, until it is forgotten), an expired one codeExpired,
// one never issued or forgotten codeUnknown.
func (s *codeStore) redeem(code string, now time.Time) (authCode, codeState) {
	k := sha256.Sum256([]byte(code))
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.codes[k]
	switch {
	case c == nil:
		return authCode{}, codeUnknown
	case c.redeemed:
		replayed := *c
		c.refreshToken = "" // revoked once
		return replayed, codeRedeemed
	case !now.Before(c.Expires):
		delete(s.codes, k)
		return authCode{}, codeExpired
	}
	c.redeemed = true
	return *c, codeValid
}

// setRefreshToken records the refresh token of the session that redeeming code started.
func (s *codeStore) setRefreshToken(code, refreshToken string) {
	k := sha256.Sum256([]byte(code))
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.codes[k]; c != nil {
		c.refreshToken = refreshToken
	}
}

// memoryCodes is the CodeKeeper of an Issuer whose Directory is not one: codes in this
// process's memory (a codeStore), sessions in the Directory. Unlike a CodeKeeper's, its
// redemption starts the session after it marks the code redeemed, not in one transaction: the
// code is used up all the same if starting the session fails.
type memoryCodes struct {
	codes *codeStore
	dir   Directory
	now   func() time.Time
}

// IssueCode implements CodeKeeper.
func (m *memoryCodes) IssueCode(ctx context.Context, c Code) (string, error) {
	code, ok := m.codes.add(c, m.now())
	if !ok {
		return "", fmt.Errorf("issue code for %s: %w: %d codes are pending in this process", c.Principal.ObjectID, ErrTooManyCodes, m.codes.max)
	}
	return code, nil
}

// RedeemCode implements CodeKeeper. The session of a replayed code is revoked by its refresh
// token, which only this process's memory holds.
func (m *memoryCodes) RedeemCode(ctx context.Context, code string, check func(Code) error) (Principal, string, error) {
	c, state := m.codes.redeem(code, m.now())
	switch state {
	case codeUnknown:
		return Principal{}, "", ErrCodeInvalid
	case codeExpired:
		return Principal{}, "", ErrCodeExpired
	case codeRedeemed:
		if c.refreshToken != "" {
			if err := m.dir.EndSession(ctx, c.refreshToken); err != nil {
				return Principal{}, "", errors.Join(ErrCodeRedeemed, fmt.Errorf("revoke the session it started: %w", err))
			}
		}
		return Principal{}, "", ErrCodeRedeemed
	}
	if err := check(c.Code); err != nil {
		return Principal{}, "", err
	}
	sid, rt, err := m.dir.StartSession(ctx, c.Principal)
	if err != nil {
		return Principal{}, "", fmt.Errorf("start session for %s: %w", c.Principal.ObjectID, err)
	}
	if sid == "" || rt == "" {
		return Principal{}, "", fmt.Errorf("start session for %s: directory returned no session id or refresh token", c.Principal.ObjectID)
	}
	m.codes.setRefreshToken(code, rt)
	p := c.Principal
	p.SessionID = sid
	return p, rt, nil
}

// checkRedirect returns raw, a redirect_uri or post_logout_redirect_uri, parsed if codes and
// users may be sent there: an https URL with the authority's origin (scheme, host and port),
// or a loopback http URL (http://127.0.0.1:PORT/…, http://localhost:PORT/…,
// http://[::1]:PORT/…, any port), without user info or fragment.
func (i *Issuer) checkRedirect(raw string) (*url.URL, error) {
	if strings.ContainsAny(raw, "\\ \t\r\n#") {
		return nil, errors.New("it has a backslash, white space or a fragment")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" || u.Host == "" {
		return nil, errors.New("it is not an absolute URL")
	}
	if u.User != nil {
		return nil, errors.New("it has user info")
	}
	authority, _ := url.Parse(i.authority) // parsed by New
	switch u.Scheme {
	case "https":
		if origin(u) == origin(authority) {
			return u, nil
		}
	case "http":
		if isLoopback(u.Hostname()) {
			return u, nil
		}
	}
	return nil, fmt.Errorf("it is neither an https URL on %s nor a loopback http URL (http://127.0.0.1:PORT/…, http://localhost:PORT/… or http://[::1]:PORT/…)", origin(authority))
}

func isLoopback(host string) bool {
	return host == "127.0.0.1" || host == "::1" || strings.EqualFold(host, "localhost")
}

// origin returns u's scheme, host and port, the port made explicit.
func origin(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = map[string]string{"https": "443", "http": "80"}[u.Scheme]
	}
	return u.Scheme + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

// withQuery returns u with params added to its query.
func withQuery(u *url.URL, params url.Values) string {
	v := *u
	if v.RawQuery != "" {
		v.RawQuery += "&" + params.Encode()
	} else {
		v.RawQuery = params.Encode()
	}
	return v.String()
}

// authorizeRequest is the request of the authorize endpoint, from the query of a GET or the
// form of a POST (which carries it in hidden fields).
type authorizeRequest struct {
	tenant       string
	clientID     string
	responseType string
	redirectURI  string
	redirect     *url.URL // set once redirect_uri is checked: errors may be sent there
	scope        string
	scopes       scopes
	state        string
	challenge    string
	method       string
	nonce        string
	prompt       string
	responseMode string
	loginHint    string
}

// hidden returns the parameters the sign-in form carries.
func (a *authorizeRequest) hidden() []hiddenField {
	var h []hiddenField
	for _, f := range []hiddenField{
		{"client_id", a.clientID}, {"response_type", a.responseType}, {"redirect_uri", a.redirectURI},
		{"scope", a.scope}, {"state", a.state}, {"code_challenge", a.challenge},
		{"code_challenge_method", a.method}, {"nonce", a.nonce}, {"prompt", a.prompt}, {"response_mode", a.responseMode},
	} {
		if f.Value != "" {
			h = append(h, f)
		}
	}
	return h
}

// parseAuthorize checks an authorization request. It always returns the request; on an error,
// the request's redirect is set if the error may be sent to its redirect_uri, nil if it must be
// shown to the user instead (RFC 6749 §4.1.2.1).
func (i *Issuer) parseAuthorize(tenant string, v url.Values) (*authorizeRequest, *aadError) {
	a := &authorizeRequest{
		tenant:       tenant,
		clientID:     v.Get("client_id"),
		responseType: v.Get("response_type"),
		redirectURI:  v.Get("redirect_uri"),
		scope:        v.Get("scope"),
		state:        v.Get("state"),
		challenge:    v.Get("code_challenge"),
		method:       v.Get("code_challenge_method"),
		nonce:        v.Get("nonce"),
		prompt:       v.Get("prompt"),
		responseMode: v.Get("response_mode"),
		loginHint:    v.Get("login_hint"),
	}
	if !i.knownTenant(tenant) {
		return a, errTenantNotFound(tenant)
	}
	if a.clientID == "" {
		return a, errMissingParameter("client_id")
	}
	if a.redirectURI == "" {
		return a, errMissingParameter("redirect_uri")
	}
	u, err := i.checkRedirect(a.redirectURI)
	if err != nil {
		return a, &aadError{status: http.StatusBadRequest, code: "invalid_request", aadsts: 50011,
			msg: fmt.Sprintf("The redirect URI '%s' specified in the request is not allowed: %s. pglink has no app registrations, so it only sends codes where only this host can receive them.", a.redirectURI, err)}
	}
	a.redirect = u
	switch {
	case a.responseType == "":
		return a, errMissingParameter("response_type")
	case a.responseType != "code":
		return a, &aadError{status: http.StatusBadRequest, code: "unsupported_response_type", aadsts: 700054,
			msg: fmt.Sprintf("response_type '%s' is not supported. pglink supports the authorization code flow with PKCE: response_type=code.", a.responseType)}
	case a.responseMode != "" && a.responseMode != "query" && a.responseMode != "form_post":
		return a, &aadError{status: http.StatusBadRequest, code: "invalid_request", aadsts: 90023,
			msg: fmt.Sprintf("response_mode '%s' is not supported. Send response_mode=query (the default) or form_post.", a.responseMode)}
	case a.challenge == "":
		return a, &aadError{status: http.StatusBadRequest, code: "invalid_request", aadsts: 9002325,
			msg: "Proof Key for Code Exchange is required. Send code_challenge=BASE64URL(SHA256(code_verifier)) and code_challenge_method=S256."}
	case a.method != "S256":
		return a, &aadError{status: http.StatusBadRequest, code: "invalid_request", aadsts: 90023,
			msg: fmt.Sprintf("code_challenge_method '%s' is not supported. pglink accepts only code_challenge_method=S256.", a.method)}
	case len(a.challenge) != 43 || !isBase64URL(a.challenge):
		return a, &aadError{status: http.StatusBadRequest, code: "invalid_request", aadsts: 501491,
			msg: "Invalid size of Code_Challenge parameter: an S256 code_challenge is 43 base64url characters, BASE64URL(SHA256(code_verifier))."}
	case a.prompt == "none":
		return a, &aadError{status: http.StatusBadRequest, code: "login_required", aadsts: 50058,
			msg: "A silent sign-in request was sent but no user is signed in: pglink keeps no browser session. Send the request without prompt=none."}
	}
	sc, aerr := i.parseScopes(a.scope)
	if aerr != nil {
		return a, aerr
	}
	a.scopes = sc
	return a, nil
}

func isBase64URL(s string) bool {
	for _, c := range []byte(s) {
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// isCodeVerifier reports whether s is a code_verifier as RFC 7636 §4.1 defines it: 43 to 128
// unreserved characters.
func isCodeVerifier(s string) bool {
	if len(s) < 43 || len(s) > 128 {
		return false
	}
	for _, c := range []byte(s) {
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
			return false
		}
	}
	return true
}

// handleAuthorize serves the sign-in page (GET) and checks its form (POST): a good password
// redirects to redirect_uri with a code, a wrong one shows the page again.
func (i *Issuer) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	params := r.URL.Query()
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		if err := r.ParseForm(); err != nil {
			aerr := &aadError{status: http.StatusBadRequest, code: "invalid_request", aadsts: 90023,
				msg: "The sign-in form could not be read. Go back and sign in again."}
			if tooLarge := (*http.MaxBytesError)(nil); errors.As(err, &tooLarge) {
				aerr.status = http.StatusRequestEntityTooLarge
				aerr.msg = fmt.Sprintf("The sign-in form is larger than %d KiB.", maxFormBytes>>10)
			}
			i.writeErrorPage(w, r, aerr)
			return
		}
		params = r.PostForm
	}
	a, aerr := i.parseAuthorize(r.PathValue("tenant"), params)
	if aerr != nil {
		if a.redirect != nil {
			i.redirectError(w, r, a, aerr)
		} else {
			i.writeErrorPage(w, r, aerr)
		}
		return
	}
	if r.Method == http.MethodGet {
		i.writeSignInPage(w, r, a, http.StatusOK, a.loginHint, "")
		return
	}
	i.signIn(w, r, a, params.Get("username"), params.Get("password"))
}

// signIn checks the password of a sign-in form and redirects with a code.
func (i *Issuer) signIn(w http.ResponseWriter, r *http.Request, a *authorizeRequest, username, password string) {
	if username == "" || password == "" {
		i.writeSignInPage(w, r, a, http.StatusBadRequest, username, "Enter your username and password.")
		return
	}
	p, err := i.checkUser(r.Context(), username, password, clientAddress(r))
	if t := (*throttled)(nil); errors.As(err, &t) {
		i.logger.Info("sign-in throttled", "client_id", a.clientID, "client_address", clientAddress(r), "error", err)
		if t.busy {
			w.Header().Set("Retry-After", "1")
			i.writeSignInPage(w, r, a, http.StatusTooManyRequests, username, "AADSTS90033: Too many sign-ins are being checked at once. Wait a moment and sign in again.")
			return
		}
		w.Header().Set("Retry-After", retryAfter(t.wait))
		i.writeSignInPage(w, r, a, http.StatusBadRequest, username, "AADSTS50053: "+lockedMessage("account", t.wait))
		return
	}
	if errors.Is(err, ErrInvalidCredentials) {
		i.logger.Info("sign-in refused", "client_id", a.clientID, "client_address", clientAddress(r), "error", err)
		i.writeSignInPage(w, r, a, http.StatusBadRequest, username, "AADSTS50126: Error validating credentials due to invalid username or password.")
		return
	}
	if err == nil && p.Kind != KindUser {
		err = fmt.Errorf("directory returned a %q principal %s", p.Kind, p.ObjectID)
	}
	if err != nil {
		i.logger.Error("sign-in failed", "client_id", a.clientID, "error", err)
		i.writeSignInPage(w, r, a, http.StatusInternalServerError, username, "AADSTS50000: There was an error signing you in. Try again; if it persists, see the pglink server log.")
		return
	}
	code, err := i.codes.IssueCode(r.Context(), Code{
		ClientID:    a.clientID,
		RedirectURI: a.redirectURI,
		Challenge:   a.challenge,
		Scope:       a.scope,
		Nonce:       a.nonce,
		Principal:   p,
		Expires:     i.now().Add(codeLifetime),
	})
	switch {
	case errors.Is(err, ErrTooManyCodes):
		i.logger.Warn("sign-in refused", "principal", p.ObjectID, "client_id", a.clientID, "error", err)
		i.redirectError(w, r, a, &aadError{status: http.StatusServiceUnavailable, code: "temporarily_unavailable", aadsts: 90033,
			msg: fmt.Sprintf("Too many sign-ins are waiting for their authorization code to be redeemed (codes expire %v after sign-in). Try again in a few minutes.", codeLifetime)})
		return
	case errors.Is(err, ErrInvalidCredentials):
		i.logger.Info("sign-in refused", "principal", p.ObjectID, "client_id", a.clientID, "error", err)
		i.writeSignInPage(w, r, a, http.StatusBadRequest, username, "AADSTS50057: The user account is disabled or was deleted. Ask an administrator to enable it.")
		return
	case err != nil:
		i.logger.Error("sign-in failed", "principal", p.ObjectID, "client_id", a.clientID, "error", err)
		i.writeSignInPage(w, r, a, http.StatusInternalServerError, username, "AADSTS50000: There was an error signing you in. Try again; if it persists, see the pglink server log.")
		return
	}
	i.logger.Info("authorization code issued", "principal", p.ObjectID, "client_id", a.clientID, "redirect_origin", origin(a.redirect))
	i.respond(w, r, a, url.Values{"code": {code}})
}

// respond sends the answer of an authorization request, params and the state, to its redirect
// URI: in the query of a 303 redirect, or, for response_mode=form_post, as a form the page
// posts there (by script, or by the user's click where scripts do not run).
func (i *Issuer) respond(w http.ResponseWriter, r *http.Request, a *authorizeRequest, params url.Values) {
	if a.state != "" {
		params.Set("state", a.state)
	}
	if a.responseMode != "form_post" {
		redirect(w, withQuery(a.redirect, params))
		return
	}
	var fields []hiddenField
	for _, k := range []string{"code", "error", "error_description", "state"} {
		if v := params.Get(k); v != "" {
			fields = append(fields, hiddenField{k, v})
		}
	}
	csp := "default-src 'none'; style-src 'unsafe-inline'; script-src '" + formPostScriptHash + "'; form-action 'self'"
	if a.redirect.Scheme == "http" {
		csp += " " + cspSource(a.redirect)
	}
	i.writePage(w, r, http.StatusOK, csp+"; frame-ancestors 'none'", formPostPage, formPostView{
		Action: a.redirect.String(),
		Return: origin(a.redirect),
		Hidden: fields,
	})
}

// redirect answers 303 See Other to target, which carries a code or an error.
func redirect(w http.ResponseWriter, target string) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("Location", target)
	w.WriteHeader(http.StatusSeeOther)
}

// redirectError sends e to a's redirect_uri (see respond), as OAuth does for errors of a
// request whose client and redirect URI are good.
func (i *Issuer) redirectError(w http.ResponseWriter, r *http.Request, a *authorizeRequest, e *aadError) {
	i.logger.Info("authorization request failed", "path", r.URL.Path, "error", e.code, "aadsts", e.aadsts,
		"client_id", a.clientID, "redirect_origin", origin(a.redirect))
	i.respond(w, r, a, url.Values{"error": {e.code}, "error_description": {fmt.Sprintf("AADSTS%d: %s", e.aadsts, e.msg)}})
}

// codeGrant performs an authorization_code grant: it redeems the code, checks what the code
// is bound to and the PKCE verifier, and starts a session for the code's user.
func (i *Issuer) codeGrant(ctx context.Context, req tokenRequest) (grant, *aadError) {
	for _, p := range []struct{ name, value string }{{"code", req.code}, {"redirect_uri", req.redirectURI}, {"code_verifier", req.codeVerifier}} {
		if p.value == "" {
			return grant{}, errMissingParameter(p.name)
		}
	}
	var (
		sc    scopes
		nonce string
	)
	p, rt, err := i.codes.RedeemCode(ctx, req.code, func(c Code) error {
		var aerr *aadError
		sc, aerr = i.checkCode(c, req)
		nonce = c.Nonce
		if aerr != nil {
			return aerr
		}
		return nil
	})
	if aerr := (*aadError)(nil); errors.As(err, &aerr) {
		return grant{}, aerr
	}
	switch {
	case errors.Is(err, ErrCodeInvalid):
		return grant{}, &aadError{status: http.StatusBadRequest, code: "invalid_grant", aadsts: 70000, cause: err,
			msg: "The provided authorization code is not valid: it was not issued by this server, or it expired. Sign in again."}
	case errors.Is(err, ErrCodeExpired):
		return grant{}, &aadError{status: http.StatusBadRequest, code: "invalid_grant", aadsts: 70008, cause: err,
			msg: fmt.Sprintf("The provided authorization code has expired: codes must be redeemed within %v. Sign in again.", codeLifetime)}
	case errors.Is(err, ErrCodeRedeemed):
		// RFC 6749 §4.1.2: the tokens issued for a replayed code are revoked, when possible.
		if err != ErrCodeRedeemed { // it says more: revoking the session failed
			i.logger.Error("revoke session of a replayed authorization code", "error", err)
		}
		return grant{}, &aadError{status: http.StatusBadRequest, code: "invalid_grant", aadsts: 54005, cause: err,
			msg: "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token. The session it started is signed out."}
	case errors.Is(err, ErrInvalidCredentials):
		return grant{}, &aadError{status: http.StatusBadRequest, code: "invalid_grant", aadsts: 50057, cause: err,
			msg: "The user account of the authorization code is disabled or was deleted. Ask an administrator to enable it, and sign in again."}
	case err != nil:
		return grant{}, errServer(fmt.Errorf("redeem authorization code: %w", err))
	}
	if p.Kind != KindUser || p.SessionID == "" || rt == "" {
		return grant{}, errServer(fmt.Errorf("redeem authorization code: directory returned a %q principal %s, session %q, and a refresh token: %t", p.Kind, p.ObjectID, p.SessionID, rt != ""))
	}
	return grant{p: p, scopes: sc, nonce: nonce, refreshToken: rt, user: true}, nil
}

// checkCode checks a token request against what its code is bound to — the client, the
// redirect URI, the PKCE verifier and the resource — and returns the scopes granted. It does
// no I/O: CodeKeeper.RedeemCode runs it inside a transaction.
func (i *Issuer) checkCode(c Code, req tokenRequest) (scopes, *aadError) {
	if req.clientID != c.ClientID {
		return scopes{}, &aadError{status: http.StatusBadRequest, code: "invalid_grant", aadsts: 70000,
			msg: fmt.Sprintf("The provided authorization code was issued to another client than '%s'.", req.clientID)}
	}
	if req.redirectURI != c.RedirectURI {
		return scopes{}, &aadError{status: http.StatusBadRequest, code: "invalid_grant", aadsts: 50011,
			msg: fmt.Sprintf("The redirect URI '%s' does not match the redirect URI of the authorization request.", req.redirectURI)}
	}
	sum := sha256.Sum256([]byte(req.codeVerifier))
	if !isCodeVerifier(req.codeVerifier) || subtle.ConstantTimeCompare([]byte(b64(sum[:])), []byte(c.Challenge)) != 1 {
		return scopes{}, &aadError{status: http.StatusBadRequest, code: "invalid_grant", aadsts: 501481,
			msg: "The Code_Verifier does not match the code_challenge supplied in the authorization request."}
	}
	sc, aerr := i.parseScopes(c.Scope) // checked by the authorize endpoint
	if aerr != nil {
		return scopes{}, aerr
	}
	if req.scope != "" {
		asked, aerr := i.parseScopes(req.scope)
		if aerr != nil {
			return scopes{}, aerr
		}
		if asked.audience != sc.audience {
			return scopes{}, &aadError{status: http.StatusBadRequest, code: "invalid_scope", aadsts: 70011,
				msg: fmt.Sprintf("The scope '%s' names another resource than the authorization request ('%s'). Ask for the same one; a refresh token gets tokens for the others.", req.scope, c.Scope)}
		}
		asked.openid = asked.openid || sc.openid
		sc = asked
	}
	return sc, nil
}

// handleLogout is the OIDC end-session endpoint. GET redirects to post_logout_redirect_uri if
// it is allowed (see checkRedirect), with state, or shows a "signed out" page; POST with a
// refresh_token also revokes that token's session — and so its access tokens, which carry its
// sid — then answers 204, or redirects as GET does. There is no browser session to end: the
// client's refresh token is the session.
func (i *Issuer) handleLogout(w http.ResponseWriter, r *http.Request) {
	tenant := r.PathValue("tenant")
	if r.Method == http.MethodGet {
		if !i.knownTenant(tenant) {
			i.writeErrorPage(w, r, errTenantNotFound(tenant))
			return
		}
		target, aerr := i.postLogoutRedirect(r.URL.Query())
		switch {
		case aerr != nil:
			i.writeErrorPage(w, r, aerr)
		case target != "":
			redirect(w, target)
		default:
			i.writePage(w, r, http.StatusOK, pageCSP, messagePage, messageView{Title: "Signed out", Heading: "You have signed out",
				Message: "You can close this window."})
		}
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		i.writeAADError(w, r, &aadError{status: http.StatusBadRequest, code: "invalid_request", aadsts: 900144,
			msg: "The request body must be a form-encoded sign-out request (application/x-www-form-urlencoded) with refresh_token."})
		return
	}
	if !i.knownTenant(tenant) {
		i.writeAADError(w, r, errTenantNotFound(tenant))
		return
	}
	target, aerr := i.postLogoutRedirect(r.Form)
	if aerr != nil {
		i.writeAADError(w, r, aerr)
		return
	}
	rt := r.PostForm.Get("refresh_token")
	if rt == "" {
		i.writeAADError(w, r, errMissingParameter("refresh_token"))
		return
	}
	if err := i.dir.EndSession(r.Context(), rt); err != nil {
		i.writeAADError(w, r, errServer(fmt.Errorf("end session: %w", err)))
		return
	}
	i.logger.Info("session signed out", "client_address", clientAddress(r))
	if target != "" {
		redirect(w, target)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// postLogoutRedirect returns where a sign-out sends the user: post_logout_redirect_uri with
// state, "" if there is none, or an error if it is not allowed.
func (i *Issuer) postLogoutRedirect(v url.Values) (string, *aadError) {
	raw := v.Get("post_logout_redirect_uri")
	if raw == "" {
		return "", nil
	}
	u, err := i.checkRedirect(raw)
	if err != nil {
		return "", &aadError{status: http.StatusBadRequest, code: "invalid_request", aadsts: 50011,
			msg: fmt.Sprintf("The post_logout_redirect_uri '%s' is not allowed: %s.", raw, err)}
	}
	if s := v.Get("state"); s != "" {
		return withQuery(u, url.Values{"state": {s}}), nil
	}
	return u.String(), nil
}

// hiddenField is a parameter the sign-in form carries.
type hiddenField struct{ Name, Value string }

// signInView is the sign-in page's data.
type signInView struct {
	Action   string // path the form posts to
	ClientID string
	Return   string // origin of the redirect URI
	Hidden   []hiddenField
	Username string
	Error    string
}

// formPostView is the data of the form_post answer.
type formPostView struct {
	Action string // the redirect URI
	Return string // its origin
	Hidden []hiddenField
}

// messageView is the data of a page that only says something.
type messageView struct {
	Title, Heading, Message string
}

// writeSignInPage shows the sign-in form of a, with username filled in and msg, if any, as
// the error. The password is never written back.
func (i *Issuer) writeSignInPage(w http.ResponseWriter, r *http.Request, a *authorizeRequest, status int, username, msg string) {
	// The form posts to this origin, which redirects to redirect_uri: browsers check that
	// redirect against form-action too, so a loopback redirect URI's origin is allowed there.
	formAction := ""
	if a.redirect.Scheme == "http" {
		formAction = " " + cspSource(a.redirect)
	}
	csp := "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'" + formAction + "; frame-ancestors 'none'"
	i.writePage(w, r, status, csp, signInPage, signInView{
		Action:   r.URL.Path,
		ClientID: a.clientID,
		Return:   origin(a.redirect),
		Hidden:   a.hidden(),
		Username: username,
		Error:    msg,
	})
}

// cspSource returns the CSP source expression of a loopback redirect URI's origin. CSP has no
// syntax for IPv6 literals: [::1] is allowed as http: (only this page's own form posts, to its
// own origin, are affected).
func cspSource(u *url.URL) string {
	if strings.Contains(u.Hostname(), ":") {
		return "http:"
	}
	return "http://" + u.Host
}

// writeErrorPage shows e to the user: an authorization request whose error must not be sent
// to its redirect URI.
func (i *Issuer) writeErrorPage(w http.ResponseWriter, r *http.Request, e *aadError) {
	i.logger.Info("authorization request refused", "path", r.URL.Path, "status", e.status, "error", e.code, "aadsts", e.aadsts)
	i.writePage(w, r, e.status, pageCSP, messagePage, messageView{Title: "Sign-in error", Heading: "Sorry, but we're having trouble signing you in.",
		Message: fmt.Sprintf("AADSTS%d: %s", e.aadsts, e.msg)})
}

// pageCSP is the Content-Security-Policy of a page: it loads nothing, runs no script, sends
// forms only to its own origin and may not be framed.
const pageCSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"

// writePage writes a self-contained HTML page with the Content-Security-Policy csp (pageCSP or
// a variant).
func (i *Issuer) writePage(w http.ResponseWriter, r *http.Request, status int, csp string, t *template.Template, data any) {
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		i.logger.Error("render page", "path", r.URL.Path, "error", err)
		http.Error(w, "There was an error showing this page; see the pglink server log.", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes()) // the status is sent; a failed write means the client went away
}

const pageStyle = `<style>
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#f2f2f2;color:#1b1b1b}
main{max-width:360px;margin:10vh auto;padding:32px 40px;background:#fff;box-shadow:0 2px 6px rgba(0,0,0,.2)}
h1{font-size:24px;font-weight:600;margin:0 0 8px}
p{margin:0 0 16px}
.sub{color:#555;font-size:14px;overflow-wrap:anywhere}
.error{color:#a80000;background:#fde7e9;padding:8px 12px}
label{display:block;font-weight:600;margin:12px 0 4px}
input[type=text],input[type=password]{box-sizing:border-box;width:100%;padding:8px;font:inherit;border:1px solid #8a8a8a}
button{margin-top:24px;padding:8px 24px;font:inherit;color:#fff;background:#0067b8;border:0;cursor:pointer}
</style>`

var signInPage = template.Must(template.New("signin").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Sign in to pglink</title>
` + pageStyle + `
</head>
<body>
<main>
<h1>Sign in</h1>
<p class="sub">to application {{.ClientID}}, which continues at {{.Return}}</p>
{{if .Error}}<p class="error" role="alert">{{.Error}}</p>{{end}}
<form method="post" action="{{.Action}}">
{{range .Hidden}}<input type="hidden" name="{{.Name}}" value="{{.Value}}">
{{end}}<label for="username">Username</label>
<input type="text" id="username" name="username" value="{{.Username}}" autocomplete="username" autocapitalize="none" spellcheck="false" required{{if not .Username}} autofocus{{end}}>
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required{{if .Username}} autofocus{{end}}>
<button type="submit">Sign in</button>
</form>
</main>
</body>
</html>
`))

var messagePage = template.Must(template.New("message").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{{.Title}} · pglink</title>
` + pageStyle + `
</head>
<body>
<main>
<h1>{{.Heading}}</h1>
<p>{{.Message}}</p>
</main>
</body>
</html>
`))

// formPostScript submits the form_post answer; formPostScriptHash is its CSP hash source.
const formPostScript = "document.forms[0].submit()"

var formPostScriptHash = func() string {
	sum := sha256.Sum256([]byte(formPostScript))
	return "sha256-" + base64.StdEncoding.EncodeToString(sum[:])
}()

var formPostPage = template.Must(template.New("formpost").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Signing in · pglink</title>
` + pageStyle + `
</head>
<body>
<main>
<h1>Signing you in</h1>
<form method="post" action="{{.Action}}">
{{range .Hidden}}<input type="hidden" name="{{.Name}}" value="{{.Value}}">
{{end}}<p>Select Continue to return to {{.Return}}.</p>
<button type="submit">Continue</button>
</form>
</main>
<script>` + formPostScript + `</script>
</body>
</html>
`))
