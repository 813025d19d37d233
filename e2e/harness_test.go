// Package e2e holds black-box tests: a real pglink server started in-process on free ports,
// driven by real clients (the Azure SDK for Go, az, psql).
package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/pglink/pglink/internal/server"
)

// instance is a pglink server under test.
type instance struct {
	t    *testing.T
	dir  string
	cfg  server.Config
	srv  *server.Server
	boot server.Bootstrap
}

// start runs pglink in-process on a free port with its own data dir and the records engine
// (an API without a data plane: fast). mutate may adjust the configuration. The server is
// closed when the test ends.
func start(t *testing.T, mutate func(*server.Config)) *instance {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	cfg.DNSListen = "127.0.0.1:0" // with the local engine: a free port, shared by the VNets' resolvers
	cfg.Engine = "records"
	cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	if mutate != nil {
		mutate(&cfg)
	}
	in := &instance{t: t, dir: cfg.DataDir, cfg: cfg}
	in.boot_()
	t.Cleanup(func() { in.stop() })
	return in
}

func (in *instance) boot_() {
	in.t.Helper()
	srv, err := server.Start(context.Background(), in.cfg)
	if err != nil {
		in.t.Fatalf("start pglink: %v", err)
	}
	in.srv, in.boot = srv, srv.Bootstrap()
}

func (in *instance) stop() {
	if in.srv != nil {
		if err := in.srv.Close(); err != nil {
			in.t.Errorf("close pglink: %v", err)
		}
		in.srv = nil
	}
}

// restart stops the server and starts it again on the same data dir and address.
func (in *instance) restart() {
	in.t.Helper()
	addr := in.boot.ARMEndpoint[len("https://"):]
	in.stop()
	in.cfg.Listen = addr
	in.boot_()
}

// httpClient trusts the instance's CA.
func (in *instance) httpClient() *http.Client {
	in.t.Helper()
	pem, err := os.ReadFile(in.boot.CACertFile)
	if err != nil {
		in.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// cloudConfig points the Azure SDK at the instance.
func (in *instance) cloudConfig() cloud.Configuration {
	return cloud.Configuration{
		ActiveDirectoryAuthorityHost: in.boot.AuthorityHost + "/",
		Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
			cloud.ResourceManager: {Endpoint: in.boot.ARMEndpoint, Audience: in.boot.ARMEndpoint},
		},
	}
}

// credential is the administrator service principal's credential.
func (in *instance) credential() azcore.TokenCredential {
	in.t.Helper()
	return in.credentialFor(in.boot.ClientID, in.boot.ClientSecret)
}

func (in *instance) credentialFor(clientID, secret string) azcore.TokenCredential {
	in.t.Helper()
	cred, err := azidentity.NewClientSecretCredential(in.boot.TenantID, clientID, secret,
		&azidentity.ClientSecretCredentialOptions{
			ClientOptions:            azcore.ClientOptions{Cloud: in.cloudConfig(), Transport: in.httpClient()},
			DisableInstanceDiscovery: true,
		})
	if err != nil {
		in.t.Fatal(err)
	}
	return cred
}

// armOptions are client options for the SDK's ARM clients.
func (in *instance) armOptions() *arm.ClientOptions {
	return &arm.ClientOptions{ClientOptions: policy.ClientOptions{
		Cloud:     in.cloudConfig(),
		Transport: in.httpClient(),
		Retry:     policy.RetryOptions{MaxRetries: -1},
	}}
}

// token returns a bearer token for raw HTTP requests.
func (in *instance) token() string {
	in.t.Helper()
	tok, err := in.credential().GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{in.boot.ARMEndpoint + "/.default"}})
	if err != nil {
		in.t.Fatal(err)
	}
	return tok.Token
}

// azcoreFast polls long-running operations often when the server gives no Retry-After.
var azcoreFast = runtime.PollUntilDoneOptions{Frequency: 200 * time.Millisecond}
