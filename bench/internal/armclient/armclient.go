// Package armclient is the HTTPS client the benchmarks drive pglink's ARM API with: requests
// with a bearer token, the administrator's token from the client credentials grant, and an
// HTTP client that trusts a pglink's CA.
package armclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/pglink/pglink/internal/server"
)

// Client sends ARM requests to one pglink endpoint as one principal. It is safe for concurrent
// use.
type Client struct {
	HTTP  *http.Client
	Base  string // the ARM endpoint, e.g. https://127.0.0.1:8443
	Token string // bearer token
}

// HTTPClient returns an HTTP client that trusts the CAs in the PEM files caFiles and keeps up to
// idle connections per host open.
func HTTPClient(idle int, caFiles ...string) (*http.Client, error) {
	pool := x509.NewCertPool()
	for _, f := range caFiles {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read CA: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("read CA %s: no certificate", f)
		}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: idle}}, nil
}

// New returns a client of the administrator that b describes, with a token from b's identity
// provider.
func New(ctx context.Context, hc *http.Client, b server.Bootstrap) (*Client, error) {
	tok, err := Token(ctx, hc, b)
	if err != nil {
		return nil, err
	}
	return &Client{HTTP: hc, Base: b.ARMEndpoint, Token: tok}, nil
}

// Do sends a request for path (below Base) with body as JSON (none if nil) and returns the
// status and the response body.
func (c *Client) Do(ctx context.Context, method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// Expect sends a request as Do does and fails unless the status is one of want.
func (c *Client) Expect(ctx context.Context, method, path string, body any, want ...int) ([]byte, error) {
	status, b, err := c.Do(ctx, method, path, body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if !slices.Contains(want, status) {
		return nil, fmt.Errorf("%s %s: status %d, want %v: %s", method, path, status, want, b)
	}
	return b, nil
}

// Token gets the administrator's token with the client credentials grant.
func Token(ctx context.Context, hc *http.Client, b server.Bootstrap) (string, error) {
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {b.ClientID}, "client_secret": {b.ClientSecret},
		"scope": {b.ARMEndpoint + "/.default"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.AuthorityHost+"/"+b.TenantID+"/oauth2/v2.0/token",
		strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	defer resp.Body.Close()
	var t struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&t); err != nil || t.AccessToken == "" {
		return "", fmt.Errorf("token: status %d %v", resp.StatusCode, err)
	}
	return t.AccessToken, nil
}
