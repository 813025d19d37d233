// Package server wires pglink's components together from a Config. It is imported only by
// cmd/pglink and end-to-end tests.
package server

import (
	"context"
	"crypto/rsa"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/pglink/pglink/internal/arm"
	"github.com/pglink/pglink/internal/dataplane"
	"github.com/pglink/pglink/internal/directory"
	"github.com/pglink/pglink/internal/identity"
	"github.com/pglink/pglink/internal/operation"
	"github.com/pglink/pglink/internal/portal"
	"github.com/pglink/pglink/internal/providers/authorization"
	"github.com/pglink/pglink/internal/providers/insights"
	"github.com/pglink/pglink/internal/providers/network"
	"github.com/pglink/pglink/internal/providers/postgresql"
	"github.com/pglink/pglink/internal/providers/resources"
	"github.com/pglink/pglink/internal/resource"
	"github.com/pglink/pglink/internal/store"
	"github.com/pglink/pglink/internal/store/sqlite"
)

// Config is pglink serve's configuration. Zero values pick the defaults in DefaultConfig.
type Config struct {
	DataDir         string        // where everything is kept
	Listen          string        // HTTPS listen address for the API, identity and portal
	Store           string        // "" for SQLite in DataDir, or a store URL
	EndpointNetwork string        // address block for data-plane endpoints
	DNSListen       string        // address of the private DNS server
	TLSCert, TLSKey string        // bring-your-own certificate; "" for the local CA
	EndpointPort    int           // port of every data-plane endpoint
	Engine          string        // "local" (real PostgreSQL clusters) or "records" (API only, no data plane)
	PGBin           string        // directory of initdb/pg_ctl/postgres; "" to search PATH and /usr/lib/postgresql
	InlineWait      time.Duration // how long an API request waits for its operation before 202
	PageSize        int           // list page size
	Logger          *slog.Logger

	// Limits (see limits.go); zero means the default.
	MaxConns                int           // concurrent HTTPS connections (DefaultMaxConns)
	ReadTimeout             time.Duration // to read one request, headers and body (DefaultReadTimeout)
	MaxEndpoints            int           // data-plane endpoints (listeners) in all (DefaultMaxEndpoints)
	MaxEndpointsPerSubnet   int           // private endpoints per subnet (network.DefaultLimits)
	MaxConnectionsPerServer int           // private endpoint connections per server (postgresql.DefaultLimits)
	MaxFirewallRules        int           // firewall rules per server (postgresql.DefaultLimits)
	// ActivityRetention is how long activity log events are kept (DefaultActivityRetention);
	// ActivityMaxEvents bounds how many are kept (DefaultActivityMaxEvents), the oldest going
	// first.
	ActivityRetention time.Duration
	ActivityMaxEvents int
	// Gateway is where the data plane runs with the local engine: "embedded" (or "") in this
	// process, whose Close ends every session; or "process": a `pglink gateway` process that
	// this one starts or re-attaches to and supervises, and that keeps serving sessions while
	// pglink serve restarts. GatewayBin is the pglink executable it runs ("" for this one).
	Gateway    string
	GatewayBin string
	// Demo seeds, on an empty data dir, the demo of the seed's flow (see Demo): two users, a
	// Ready server, a virtual network and a Pending private endpoint connection.
	Demo bool
	// DemoOut is where Run prints, with Demo, where to sign in and the demo's users; nil for
	// nowhere.
	DemoOut io.Writer
}

// DefaultConfig returns the configuration `pglink serve` uses without flags.
func DefaultConfig() Config {
	return Config{
		DataDir:         "data",
		Listen:          "127.0.0.1:8443",
		EndpointNetwork: "127.77.0.0/16",
		DNSListen:       "127.0.0.1:8053",
		EndpointPort:    5432,
		Engine:          "local",
		InlineWait:      2 * time.Second,
		PageSize:        100,
	}
}

// Server is a running pglink.
type Server struct {
	cfg       Config
	log       *slog.Logger
	st        store.Store
	bootstrap Bootstrap
	ln        net.Listener
	http      *http.Server
	workers   *operation.Workers
	gateway   gate // nil with the records engine
	ready     chan struct{}
	wg        sync.WaitGroup
	cancel    context.CancelFunc
	errOnce   sync.Once
	err       error
}

// Start opens the store, makes first-start state, and starts serving. It returns once the
// listener is bound; /healthz answers 200 when every component is up. Stop it with Close.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	def := DefaultConfig()
	if cfg.Listen == "" {
		cfg.Listen = def.Listen
	}
	if cfg.DataDir == "" {
		cfg.DataDir = def.DataDir
	}
	if cfg.PageSize == 0 {
		cfg.PageSize = def.PageSize
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	log := cfg.Logger
	if err := secureDataDir(cfg); err != nil {
		return nil, err
	}
	st, err := openStore(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	_, err = os.Stat(filepath.Join(cfg.DataDir, "bootstrap.json"))
	fresh := errors.Is(err, os.ErrNotExist)
	s := &Server{cfg: cfg, log: log, st: st, ready: make(chan struct{})}
	if err := s.start(ctx); err != nil {
		if s.gateway != nil {
			s.gateway.Close()
		}
		st.Close()
		return nil, err
	}
	if cfg.Demo {
		switch {
		case fresh:
			if err := s.seedDemo(ctx); err != nil {
				s.Close()
				return nil, err
			}
		case s.bootstrap.Demo == nil:
			log.Warn("--demo seeds only an empty data dir; this one is not: nothing seeded", "data_dir", cfg.DataDir)
		}
	}
	return s, nil
}

func openStore(ctx context.Context, cfg Config, log *slog.Logger) (store.Store, error) {
	switch {
	case cfg.Store == "" || strings.HasPrefix(cfg.Store, "sqlite:"):
		path := strings.TrimPrefix(cfg.Store, "sqlite:")
		if path == "" {
			path = filepath.Join(cfg.DataDir, "pglink.db")
		}
		db, err := sqlite.Open(ctx, path, log)
		if err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
		return db, nil
	}
	return nil, fmt.Errorf("unsupported store %q: use sqlite:PATH (PostgreSQL stores come later)", cfg.Store)
}

func (s *Server) start(ctx context.Context) error {
	cfg := s.cfg
	b, err := firstStart(ctx, s.st, cfg.DataDir)
	if err != nil {
		return err
	}
	host, _, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen address %q: %w", cfg.Listen, err)
	}
	cert, ca, caFile, err := ensureTLS(cfg.DataDir, host, cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	ln = limitConns(ln, cfg)
	s.ln = ln
	endpoint := "https://" + ln.Addr().String()
	if caFile, err = filepath.Abs(caFile); err != nil {
		return err
	}
	b.ARMEndpoint, b.AuthorityHost, b.CACertFile = endpoint, endpoint, caFile
	if err := writeBootstrap(cfg.DataDir, b); err != nil {
		return err
	}
	s.bootstrap = b

	key, err := loadSigningKey(cfg.DataDir)
	if err != nil {
		return err
	}
	dir := directory.New(s.st, b.TenantID)
	issuer, err := identity.New(identity.Config{TenantID: b.TenantID, Authority: endpoint, Key: key,
		Audiences: identity.DefaultAudiences(endpoint)}, dir, s.log)
	if err != nil {
		return fmt.Errorf("identity: %w", err)
	}

	s.workers = operation.NewWorkers(s.st, s.log, operation.Options{})
	eng, dp, err := s.dataPlane(ctx, &endpointCerts{ca: ca, fallback: cert, byIP: map[string]*tls.Certificate{}})
	if err != nil {
		return err
	}
	auth := newAuthorizer(s.st)
	armCfg := arm.Config{Endpoint: endpoint, TenantID: b.TenantID, InlineWait: cfg.InlineWait, PageSize: cfg.PageSize,
		Authorizer: auth}
	if s.gateway != nil {
		armCfg.Barrier = s.gateway
	}
	front := arm.New(armCfg, s.st, issuer, s.workers, s.log)

	var addrs *dataplane.Allocator
	if dp != nil {
		addrs = dp
	}
	// Providers write through the audited store: each write request's activity log event is
	// appended in the transaction that makes its change.
	audited := arm.Audited(s.st)
	net := network.New(audited, nilIfNone(addrs), s.log)
	net.SetLimits(network.Limits{EndpointsPerSubnet: cfg.MaxEndpointsPerSubnet})
	pg := postgresql.New(audited, eng, net, nilIfNone(addrs), s.log)
	pg.SetLimits(postgresql.Limits{ConnectionsPerServer: cfg.MaxConnectionsPerServer, FirewallRulesPerServer: cfg.MaxFirewallRules})
	net.AddTarget(resource.TypeServer, pg)
	rs := resources.New(audited, s.log, []resources.Remover{ // dependents first
		{Type: resource.TypePrivateEndpoint, Remove: net.RemoveEndpoint},
		{Type: resource.TypeConnection, Remove: pg.RemoveConnection},
		{Type: resource.TypeServer, Cleanup: pg.Cleanup, Remove: pg.RemoveServer},
		{Type: resource.TypeSubnet, Remove: net.RemoveSubnet},
		{Type: resource.TypeVirtualNetwork, Remove: net.RemoveVirtualNetwork},
	})
	front.Register(rs.Types()...)
	front.Register(pg.Types()...)
	front.Register(net.Types()...)
	front.Register(insights.Type(s.st))
	front.Register(authorization.New(audited, s.log).Types()...)
	front.RegisterOperationStatus(postgresql.Namespace, postgresql.APIVersions)
	front.RegisterOperationStatus("Microsoft.Network", network.APIVersions)
	front.RegisterOperationStatus("Microsoft.Resources", resources.APIVersions)
	rs.Register(s.workers)
	pg.Register(s.workers)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /metadata/endpoints", s.metadata)
	mux.Handle("GET /metrics", s.metrics())
	mux.Handle("/subscriptions", front)
	mux.Handle("/subscriptions/", front)
	mux.Handle("/providers/", front) // extension resources at the root scope (role assignments)
	mux.Handle("/v1.0/", directory.Handler(s.st, directory.APIConfig{TenantID: b.TenantID, Subscription: b.SubscriptionID,
		Authenticate: issuer.Authenticate, Allowed: auth.allowedAtRoot, Logger: s.log}))
	// The portal owns GET / and /portal/…; everything else at the root is the issuer's.
	ui := portal.Handler()
	mux.Handle("GET /{$}", ui)
	mux.Handle("GET /portal/", ui)
	mux.Handle("/", issuer.Handler())
	s.http = &http.Server{
		Handler:           mux,
		TLSConfig:         apiTLS(cert),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	applyHTTPLimits(s.http, cfg)
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	s.wg.Add(3)
	go func() {
		defer s.wg.Done()
		s.workers.Run(rctx)
	}()
	go func() {
		defer s.wg.Done()
		s.pruneActivity(rctx)
	}()
	if s.gateway != nil {
		rec := &dataplane.Reconciler{St: s.st, Gate: s.gateway, Engine: eng.(dataplane.Engine), Log: s.log}
		// The first policy is in force before the API answers.
		if snap, err := dataplane.Build(ctx, s.st, rec.Engine); err != nil {
			cancel()
			return fmt.Errorf("build data-plane policy: %w", err)
		} else if err := s.gateway.Apply(snap); err != nil {
			cancel()
			return fmt.Errorf("apply data-plane policy: %w", err)
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			rec.Run(rctx)
		}()
	}
	go func() {
		defer s.wg.Done()
		if err := s.http.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.fail(fmt.Errorf("serve: %w", err))
		}
	}()
	close(s.ready)
	s.log.Info("pglink serving", "endpoint", endpoint, "data_dir", cfg.DataDir)
	return nil
}

func (s *Server) fail(err error) {
	s.errOnce.Do(func() { s.err = err; s.cancel() })
}

func loadSigningKey(dir string) (*rsa.PrivateKey, error) {
	path := filepath.Join(dir, "identity-key.pem")
	data, err := os.ReadFile(path)
	if err == nil {
		return identity.ParseKey(data)
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read signing key: %w", err)
	}
	key, err := identity.GenerateKey()
	if err != nil {
		return nil, err
	}
	pemData, err := identity.MarshalKey(key)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, pemData, 0o600); err != nil {
		return nil, fmt.Errorf("write signing key: %w", err)
	}
	return key, nil
}

// Bootstrap returns the first-start facts, with the endpoint this process serves.
func (s *Server) Bootstrap() Bootstrap { return s.bootstrap }

// Store returns the server's store (for tests).
func (s *Server) Store() store.Store { return s.st }

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	select {
	case <-s.ready:
	default:
		http.Error(w, "starting", http.StatusServiceUnavailable)
		return
	}
	if _, err := s.st.Revision(r.Context()); err != nil {
		http.Error(w, "store unavailable", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(`{"status":"ok"}` + "\n"))
}

// metadata serves the cloud metadata az reads when registering a cloud.
func (s *Server) metadata(w http.ResponseWriter, r *http.Request) {
	e := s.bootstrap.ARMEndpoint
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"galleryEndpoint":"%[1]s/","graphEndpoint":"%[1]s/","authentication":{"loginEndpoint":"%[1]s/","audiences":["%[1]s/"]},"name":"pglink","resourceManager":"%[1]s/"}`, e)
}

// Wait blocks until the server stops and returns why.
func (s *Server) Wait() error {
	s.wg.Wait()
	return s.err
}

// Close stops serving gracefully and closes the store.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := s.http.Shutdown(ctx)
	s.cancel()
	s.wg.Wait()
	if s.gateway != nil {
		s.gateway.Close()
	}
	if cerr := s.st.Close(); err == nil {
		err = cerr
	}
	return err
}

// Run serves until ctx is done, then shuts down.
func Run(ctx context.Context, cfg Config) error {
	s, err := Start(ctx, cfg)
	if err != nil {
		return err
	}
	if cfg.Demo && cfg.DemoOut != nil && s.bootstrap.Demo != nil {
		PrintDemo(cfg.DemoOut, s.bootstrap)
	}
	select {
	case <-ctx.Done():
	case <-waitChan(s):
	}
	if err := s.Close(); err != nil {
		return err
	}
	return s.err
}

func waitChan(s *Server) <-chan struct{} {
	ch := make(chan struct{})
	go func() { s.wg.Wait(); close(ch) }()
	return ch
}
