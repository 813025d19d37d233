package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
)

// userClientID is the client id of the CLI in user grants.
const userClientID = "pglink-cli"

// refreshMargin is how long before it expires a cached access token is replaced.
const refreshMargin = 5 * time.Minute

// errLoginExpired is returned when a user's tokens can no longer be refreshed.
var errLoginExpired = errors.New("the login has expired: run pglink login")

// httpClient returns a client that trusts the PEM certificates in caFile (the system's roots
// if caFile is empty).
func httpClient(caFile string) (*http.Client, error) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", caFile)
		}
		t.TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	return &http.Client{Transport: t, Timeout: 2 * time.Minute}, nil
}

// session is a logged-in profile with the clients built over it.
type session struct {
	e    *env
	p    *profile
	hc   *http.Client
	cred *profileCredential
}

// session loads the profile and builds the HTTP client and credential over it.
func (e *env) session() (*session, error) {
	p, err := loadProfile(e.configDir)
	if err != nil {
		return nil, err
	}
	hc, err := httpClient(p.CAFile)
	if err != nil {
		return nil, err
	}
	return &session{e: e, p: p, hc: hc, cred: &profileCredential{dir: e.configDir, p: p, hc: hc, now: e.now}}, nil
}

// cloudConfig points the Azure SDK at the endpoints of a profile.
func cloudConfig(p *profile) cloud.Configuration {
	return cloud.Configuration{
		ActiveDirectoryAuthorityHost: p.AuthorityHost + "/",
		Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
			cloud.ResourceManager: {Endpoint: p.ARMEndpoint, Audience: p.ARMEndpoint},
		},
	}
}

// armOptions are the options of every ARM client.
func armOptions(p *profile, hc *http.Client) *arm.ClientOptions {
	return &arm.ClientOptions{ClientOptions: policy.ClientOptions{
		Cloud:     cloudConfig(p),
		Transport: hc,
		Telemetry: policy.TelemetryOptions{ApplicationID: "pglink-cli"},
	}}
}

func (s *session) armOptions() *arm.ClientOptions { return armOptions(s.p, s.hc) }

// subscriptionScope is the ARM scope of the profile's subscription.
func (s *session) subscriptionScope() string { return "/subscriptions/" + s.p.SubscriptionID }

// profileCredential is an azcore.TokenCredential over a profile: it returns the cached access
// token while it has more than refreshMargin left, else gets a new one (client credentials for a
// service principal, the refresh token for a user) and saves it to the profile. It is safe for
// concurrent use.
type profileCredential struct {
	dir string
	hc  *http.Client
	now func() time.Time

	mu sync.Mutex // guards p
	p  *profile
}

var _ azcore.TokenCredential = (*profileCredential)(nil)

// GetToken returns an access token for the profile's ARM endpoint, whatever the scopes.
func (c *profileCredential) GetToken(ctx context.Context, _ policy.TokenRequestOptions) (azcore.AccessToken, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.p
	if p.AccessToken != "" && p.ExpiresOn.Sub(c.now()) > refreshMargin {
		return azcore.AccessToken{Token: p.AccessToken, ExpiresOn: p.ExpiresOn}, nil
	}
	// Another pglink process may have renewed the tokens (and rotated the refresh token) since
	// this one read the profile.
	if fresh, err := loadProfile(c.dir); err == nil && fresh.Kind == p.Kind && fresh.Name == p.Name && fresh.TenantID == p.TenantID {
		p.AccessToken, p.ExpiresOn, p.RefreshToken = fresh.AccessToken, fresh.ExpiresOn, fresh.RefreshToken
		if p.AccessToken != "" && p.ExpiresOn.Sub(c.now()) > refreshMargin {
			return azcore.AccessToken{Token: p.AccessToken, ExpiresOn: p.ExpiresOn}, nil
		}
	}
	var (
		tok *tokenResponse
		err error
	)
	switch p.Kind {
	case kindServicePrincipal:
		tok, err = requestToken(ctx, c.hc, p.AuthorityHost, p.TenantID, url.Values{
			"grant_type": {"client_credentials"}, "client_id": {p.Name}, "client_secret": {p.ClientSecret},
			"scope": {p.ARMEndpoint + "/.default"},
		})
		if err != nil {
			return azcore.AccessToken{}, fmt.Errorf("get a token for service principal %s: %w", p.Name, err)
		}
	case kindUser:
		if p.RefreshToken == "" {
			return azcore.AccessToken{}, errLoginExpired
		}
		tok, err = requestToken(ctx, c.hc, p.AuthorityHost, p.TenantID, url.Values{
			"grant_type": {"refresh_token"}, "client_id": {userClientID}, "refresh_token": {p.RefreshToken},
			"scope": {p.ARMEndpoint + "/.default offline_access"},
		})
		if err != nil {
			var te *tokenError
			if errors.As(err, &te) {
				return azcore.AccessToken{}, errLoginExpired
			}
			return azcore.AccessToken{}, fmt.Errorf("refresh the login of %s: %w", p.Name, err)
		}
		if tok.RefreshToken != "" {
			p.RefreshToken = tok.RefreshToken
		}
	default:
		return azcore.AccessToken{}, fmt.Errorf("profile has login kind %q: run pglink login", p.Kind)
	}
	p.AccessToken, p.ExpiresOn = tok.AccessToken, tok.expiresOn(c.now())
	if err := p.save(c.dir); err != nil {
		return azcore.AccessToken{}, err
	}
	return azcore.AccessToken{Token: p.AccessToken, ExpiresOn: p.ExpiresOn}, nil
}

// tokenResponse is a successful answer of the v2 token endpoint.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	ExpiresIn    int64  `json:"expires_in"`
}

func (t *tokenResponse) expiresOn(now time.Time) time.Time {
	return now.Add(time.Duration(t.ExpiresIn) * time.Second).UTC().Truncate(time.Second)
}

// tokenError is an error answer of the token endpoint.
type tokenError struct {
	Code        string `json:"error"`
	Description string `json:"error_description"`
}

func (e *tokenError) Error() string { return fmt.Sprintf("(%s) %s", e.Code, e.Description) }

// requestToken posts form to {authority}/{tenant}/oauth2/v2.0/token.
func requestToken(ctx context.Context, hc *http.Client, authority, tenant string, form url.Values) (*tokenResponse, error) {
	resp, err := postForm(ctx, hc, authority+"/"+url.PathEscape(tenant)+"/oauth2/v2.0/token", form)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("read token response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		te := &tokenError{}
		if json.Unmarshal(body, te) != nil || te.Code == "" {
			return nil, fmt.Errorf("token endpoint answered %s", resp.Status)
		}
		return nil, te
	}
	var tok tokenResponse
	if err := json.Unmarshal(body, &tok); err != nil || tok.AccessToken == "" {
		return nil, fmt.Errorf("token endpoint answered without an access token")
	}
	return &tok, nil
}

func postForm(ctx context.Context, hc *http.Client, u string, form url.Values) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("post %s: %w", u, err)
	}
	return resp, nil
}

// graph is a client of pglink's Microsoft Graph-shaped directory API at {armEndpoint}/v1.0,
// authenticated with the ARM audience.
type graph struct {
	base string
	pl   runtime.Pipeline
}

// graphError is an error answer of the directory API.
type graphError struct {
	Status  int
	Code    string
	Message string
}

func (e *graphError) Error() string { return fmt.Sprintf("(%s) %s", e.Code, e.Message) }

func (s *session) graph() *graph { return s.jsonAPI("/v1.0") }

// admin is a client of pglink's own admin API (/pglink/v1), which answers as the directory's does.
func (s *session) admin() *graph { return s.jsonAPI("/pglink/v1") }

// jsonAPI is a client of the JSON API at path under the endpoint, with the session's token.
func (s *session) jsonAPI(path string) *graph {
	pl := runtime.NewPipeline("pglink-cli", "v1", runtime.PipelineOptions{
		PerRetry: []policy.Policy{runtime.NewBearerTokenPolicy(s.cred, []string{s.p.ARMEndpoint + "/.default"}, nil)},
	}, &policy.ClientOptions{Transport: s.hc})
	return &graph{base: s.p.ARMEndpoint + path, pl: pl}
}

// do sends a request to path (below the API's base, with its query) with body as JSON if not nil, and
// decodes a JSON answer into out if not nil. A status of 400 or more is a *graphError.
func (g *graph) do(ctx context.Context, method, path string, body, out any) error {
	req, err := runtime.NewRequest(ctx, method, g.base+path)
	if err != nil {
		return err
	}
	req.Raw().Header.Set("Accept", "application/json")
	if body != nil {
		if err := runtime.MarshalAsJSON(req, body); err != nil {
			return err
		}
	}
	resp, err := g.pl.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("read answer of %s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 400 {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(data, &e) != nil || e.Error.Code == "" {
			return &graphError{Status: resp.StatusCode, Code: http.StatusText(resp.StatusCode), Message: strings.TrimSpace(string(data))}
		}
		return &graphError{Status: resp.StatusCode, Code: e.Error.Code, Message: e.Error.Message}
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decode answer of %s %s: %w", method, path, err)
		}
	}
	return nil
}

// notFound reports whether err is the directory's 404.
func notFound(err error) bool {
	var ge *graphError
	return errors.As(err, &ge) && ge.Status == http.StatusNotFound
}

// describe is how an error is printed after "ERROR: ": az's "(Code) Message" with the code
// and message repeated on lines of their own for service errors.
func describe(err error) string {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		code, msg := re.ErrorCode, ""
		if re.RawResponse != nil {
			if body, rerr := runtime.Payload(re.RawResponse); rerr == nil {
				var e struct {
					Error struct{ Code, Message string } `json:"error"`
				}
				if json.Unmarshal(body, &e) == nil && e.Error.Code != "" {
					code, msg = e.Error.Code, e.Error.Message
				}
			}
		}
		if code == "" {
			code = http.StatusText(re.StatusCode)
		}
		return fmt.Sprintf("(%s) %s\nCode: %s\nMessage: %s", code, msg, code, msg)
	}
	var ge *graphError
	if errors.As(err, &ge) {
		return fmt.Sprintf("(%s) %s\nCode: %s\nMessage: %s", ge.Code, ge.Message, ge.Code, ge.Message)
	}
	return err.Error()
}
