package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armsubscriptions"
	"github.com/spf13/cobra"
)

// bootstrapFile is the part of pglink serve's DIR/bootstrap.json that login reads.
type bootstrapFile struct {
	TenantID       string `json:"tenantId"`
	SubscriptionID string `json:"subscriptionId"`
	ClientID       string `json:"clientId"`
	ClientSecret   string `json:"clientSecret"`
	ARMEndpoint    string `json:"armEndpoint"`
	AuthorityHost  string `json:"authorityHost"`
	CACertFile     string `json:"caCertFile"`
}

func (e *env) loginCmd() *cobra.Command {
	var (
		bootstrap, username, password, tenant, endpoint, caFile, subscription string
		sp                                                                    bool
	)
	c := &cobra.Command{
		Use:   "login",
		Short: "Log in to a pglink server as a service principal or a user",
		Long: `Log in to a pglink server. The login is kept in $PGLINK_CONFIG_DIR/profile.json (default
~/.pglink), readable only by you: it holds the tokens and, for a service principal, its secret.
Without --tenant the tenant is asked of the server; without --subscription the first
subscription the login can list becomes the default.`,
		Example: `  pglink login --bootstrap data/bootstrap.json
  pglink login --service-principal -u APP_ID -p SECRET --tenant TENANT --endpoint https://127.0.0.1:8443 --ca-file data/tls/ca.pem
  pglink login -u admin@pglink.local -p PASSWORD --endpoint https://127.0.0.1:8443 --ca-file data/tls/ca.pem`,
		Args: cobra.NoArgs,
	}
	f := c.Flags()
	f.StringVar(&bootstrap, "bootstrap", "", "bootstrap.json of a pglink server: log in as its administrator service principal")
	f.BoolVar(&sp, "service-principal", false, "log in as a service principal: -u is its client id (appId), -p its secret")
	f.StringVarP(&username, "username", "u", "", "user name, or a service principal's client id")
	f.StringVarP(&password, "password", "p", "", "password, or a service principal's secret (read from stdin if left out)")
	f.StringVarP(&tenant, "tenant", "t", "", "tenant id (default: asked of the server)")
	f.StringVar(&endpoint, "endpoint", "", "URL of the pglink server, e.g. https://127.0.0.1:8443")
	f.StringVar(&caFile, "ca-file", "", "PEM file of the CA that issued the server's certificate (default: the system's roots)")
	f.StringVar(&subscription, "subscription", "", "default subscription, by id or name (default: the first one listed)")
	c.RunE = e.run(func(ctx context.Context, cmd *cobra.Command) error {
		p := &profile{}
		switch {
		case bootstrap != "":
			if username != "" || password != "" || sp || endpoint != "" {
				return usagef("--bootstrap takes the login from the file: leave out -u, -p, --service-principal and --endpoint")
			}
			data, err := os.ReadFile(bootstrap)
			if err != nil {
				return fmt.Errorf("read bootstrap: %w", err)
			}
			var b bootstrapFile
			if err := json.Unmarshal(data, &b); err != nil {
				return fmt.Errorf("decode bootstrap %s: %w", bootstrap, err)
			}
			if b.ARMEndpoint == "" || b.ClientID == "" || b.ClientSecret == "" {
				return fmt.Errorf("bootstrap %s has no armEndpoint, clientId or clientSecret", bootstrap)
			}
			ca := b.CACertFile
			if ca != "" && !filepath.IsAbs(ca) {
				ca = filepath.Join(filepath.Dir(bootstrap), ca)
			}
			if caFile != "" {
				ca = caFile
			}
			*p = profile{ARMEndpoint: b.ARMEndpoint, AuthorityHost: b.AuthorityHost, TenantID: b.TenantID,
				SubscriptionID: b.SubscriptionID, CAFile: ca, Kind: kindServicePrincipal, Name: b.ClientID, ClientSecret: b.ClientSecret}
			if tenant != "" {
				p.TenantID = tenant
			}
			if subscription != "" {
				p.SubscriptionID = subscription
			}
		case username == "":
			return usagef("give --bootstrap FILE, or -u and --endpoint")
		case endpoint == "":
			return usagef("--endpoint is required with -u")
		default:
			p.ARMEndpoint, p.Name, p.TenantID, p.SubscriptionID, p.CAFile = endpoint, username, tenant, subscription, caFile
			p.Kind = kindUser
			if sp {
				p.Kind = kindServicePrincipal
			}
			if password == "" {
				var err error
				if password, err = e.prompt("Password: "); err != nil {
					return err
				}
			}
		}
		p.ARMEndpoint = strings.TrimSuffix(p.ARMEndpoint, "/")
		if p.CAFile != "" {
			abs, err := filepath.Abs(p.CAFile)
			if err != nil {
				return fmt.Errorf("CA file: %w", err)
			}
			p.CAFile = abs
		}
		hc, err := httpClient(p.CAFile)
		if err != nil {
			return err
		}
		if p.AuthorityHost == "" {
			if p.AuthorityHost, err = loginEndpoint(ctx, hc, p.ARMEndpoint); err != nil {
				return err
			}
		}
		p.AuthorityHost = strings.TrimSuffix(p.AuthorityHost, "/")
		if p.TenantID == "" {
			if p.TenantID, err = discoverTenant(ctx, hc, p.ARMEndpoint); err != nil {
				return err
			}
		}

		form := url.Values{"scope": {p.ARMEndpoint + "/.default"}}
		if p.Kind == kindServicePrincipal {
			if bootstrap == "" {
				p.ClientSecret = password
			}
			form.Set("grant_type", "client_credentials")
			form.Set("client_id", p.Name)
			form.Set("client_secret", p.ClientSecret)
		} else {
			form.Set("grant_type", "password")
			form.Set("client_id", userClientID)
			form.Set("username", p.Name)
			form.Set("password", password)
			form.Set("scope", p.ARMEndpoint+"/.default offline_access")
		}
		tok, err := requestToken(ctx, hc, p.AuthorityHost, p.TenantID, form)
		if err != nil {
			return fmt.Errorf("log in as %s: %w", p.Name, err)
		}
		p.AccessToken, p.RefreshToken, p.ExpiresOn = tok.AccessToken, tok.RefreshToken, tok.expiresOn(e.now())

		s := &session{e: e, p: p, hc: hc, cred: &profileCredential{dir: e.configDir, p: p, hc: hc, now: e.now}}
		subs, err := s.subscriptions(ctx)
		if err != nil {
			return err
		}
		var chosen *armsubscriptions.Subscription
		for _, sub := range subs {
			if p.SubscriptionID == "" || strings.EqualFold(deref(sub.SubscriptionID), p.SubscriptionID) || deref(sub.DisplayName) == p.SubscriptionID {
				chosen = sub
				break
			}
		}
		if chosen == nil {
			if p.SubscriptionID != "" {
				return fmt.Errorf("subscription %s not found for %s", p.SubscriptionID, p.Name)
			}
			return fmt.Errorf("no subscriptions found for %s", p.Name)
		}
		p.SubscriptionID, p.SubscriptionName = deref(chosen.SubscriptionID), deref(chosen.DisplayName)
		if err := p.save(e.configDir); err != nil {
			return err
		}
		out := make([]account, 0, len(subs))
		for _, sub := range subs {
			a := s.account(sub, sub == chosen)
			a.CloudName, a.EnvironmentName = "pglink", ""
			out = append(out, a)
		}
		return e.print(out)
	})
	return c
}

// loginEndpoint reads the authority host from the server's cloud metadata.
func loginEndpoint(ctx context.Context, hc *http.Client, endpoint string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint+"/metadata/endpoints?api-version=2022-09-01", nil)
	if err != nil {
		return "", fmt.Errorf("endpoint %q: %w", endpoint, err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("read cloud metadata: %w", err)
	}
	defer resp.Body.Close()
	var m struct {
		Authentication struct {
			LoginEndpoint string `json:"loginEndpoint"`
		} `json:"authentication"`
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("read cloud metadata: %s answered %s", endpoint, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&m); err != nil || m.Authentication.LoginEndpoint == "" {
		return "", fmt.Errorf("read cloud metadata: %s names no login endpoint", endpoint)
	}
	return m.Authentication.LoginEndpoint, nil
}

var authorizationURIRE = regexp.MustCompile(`authorization_uri="([^"]+)"`)

// discoverTenant asks the ARM endpoint without a token: its 401 challenge names the tenant's
// authority (authorization_uri="{authority}/{tenant}").
func discoverTenant(ctx context.Context, hc *http.Client, endpoint string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint+"/subscriptions?api-version=2022-12-01", nil)
	if err != nil {
		return "", fmt.Errorf("endpoint %q: %w", endpoint, err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("discover the tenant: %w", err)
	}
	resp.Body.Close()
	m := authorizationURIRE.FindStringSubmatch(resp.Header.Get("WWW-Authenticate"))
	if m == nil {
		return "", errors.New("discover the tenant: the server names no authorization_uri: give --tenant")
	}
	u, err := url.Parse(m[1])
	if err != nil {
		return "", fmt.Errorf("discover the tenant: authorization_uri %q: %w", m[1], err)
	}
	tenant := u.Path[strings.LastIndex(u.Path, "/")+1:]
	if tenant == "" {
		return "", fmt.Errorf("discover the tenant: authorization_uri %q names no tenant: give --tenant", m[1])
	}
	return tenant, nil
}

// subscriptions lists the subscriptions the login can see.
func (s *session) subscriptions(ctx context.Context) ([]*armsubscriptions.Subscription, error) {
	client, err := armsubscriptions.NewClient(s.cred, s.armOptions())
	if err != nil {
		return nil, err
	}
	var subs []*armsubscriptions.Subscription
	for pager := client.NewListPager(nil); pager.More(); {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list subscriptions: %w", err)
		}
		subs = append(subs, page.Value...)
	}
	return subs, nil
}

func (e *env) logoutCmd() *cobra.Command {
	c := &cobra.Command{
		Use:     "logout",
		Short:   "Log out: end a user's sign-in on the server and delete the profile",
		Example: `  pglink logout`,
		Args:    cobra.NoArgs,
	}
	c.RunE = e.run(func(ctx context.Context, cmd *cobra.Command) error {
		p, err := loadProfile(e.configDir)
		if errors.Is(err, errNoLogin) {
			return errors.New("there are no active accounts")
		}
		if err != nil {
			return err
		}
		if p.Kind == kindUser && p.RefreshToken != "" {
			if err := revoke(ctx, p); err != nil {
				e.warn("the sign-in was not ended on the server: %v", err)
			}
		}
		return deleteProfile(e.configDir)
	})
	return c
}

// revoke ends a user's refresh token at {authority}/{tenant}/oauth2/v2.0/logout.
func revoke(ctx context.Context, p *profile) error {
	hc, err := httpClient(p.CAFile)
	if err != nil {
		return err
	}
	resp, err := postForm(ctx, hc, p.AuthorityHost+"/"+url.PathEscape(p.TenantID)+"/oauth2/v2.0/logout", url.Values{"refresh_token": {p.RefreshToken}})
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("the server answered %s", resp.Status)
	}
	return nil
}

func deref[T any](p *T) T {
	if p == nil {
		var z T
		return z
	}
	return *p
}
