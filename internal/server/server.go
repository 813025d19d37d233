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
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pglink/pglink/internal/arm"
	"github.com/pglink/pglink/internal/dataplane"
	"github.com/pglink/pglink/internal/directory"
	"github.com/pglink/pglink/internal/dns"
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
	"github.com/pglink/pglink/internal/store/postgres"
	"github.com/pglink/pglink/internal/store/sqlite"
)

// Config is pglink serve's configuration. Zero values pick the defaults in DefaultConfig.
type Config struct {
	DataDir string // where everything is kept
	Listen  string // HTTPS listen address for the API, identity and portal
	// PublicURL is the address clients use when replicas serve behind one name (a load
	// balancer), e.g. "https://pglink.example.com": the token issuer, the accepted audience, the
	// polling URLs and bootstrap.json's endpoints name it, so a token or an operation from one
	// replica is good at every other. "" means this process's own https://LISTEN address.
	PublicURL string
	// NodeURL is the https://HOST[:PORT] at which the other replicas reach this process itself
	// (to ask the node that holds a server for its open sessions) when PublicURL names a load
	// balancer. "" means https://LISTEN, or, when Listen is on every address, PublicURL.
	NodeURL         string
	Store           string // "" for SQLite in DataDir, sqlite:PATH, or a postgres:// or postgresql:// URL
	EndpointNetwork string // address block for data-plane endpoints
	DNSListen       string // address of the nameserver's public view (UDP and TCP); "" for no nameserver
	DNSSuffix       string // servers' names are <server>.<DNSSuffix> (default postgres.database.azure.com)
	// DNSResolverPort is the port of virtual networks' resolvers; 0 means the port --dns-listen
	// is bound to.
	DNSResolverPort int
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
	// SigningKeyRotation is how often the token signing key rotates (DefaultKeyRotation when
	// zero; never when negative). SigningKeyLead is how long a new key is published before it
	// signs, SigningKeyOverlap how long the old one verifies after (zero: 5 minutes, 2 hours).
	SigningKeyRotation, SigningKeyLead, SigningKeyOverlap time.Duration
	// Gateway is where the data plane runs with the local engine: "embedded" (or "") in this
	// process, whose Close ends every session; or "process": a `pglink gateway` process that
	// this one starts or re-attaches to and supervises, and that keeps serving sessions while
	// pglink serve restarts. GatewayBin is the pglink executable it runs ("" for this one).
	Gateway    string
	GatewayBin string
	// EventLoops is how many event loops relay sessions in the gateway; zero means one per
	// CPU but one, at least one (see gateway.Config.Reactors). A gateway process that serve
	// attaches to keeps the number it was started with.
	EventLoops int
	// NodeName names this process's data-plane node (default: the host name), Zone its
	// availability zone label (default none). Replicas on one store that run servers need
	// distinct names and distinct endpoint networks.
	NodeName string
	Zone     string
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
		DNSSuffix:       postgresql.DefaultDNSSuffix,
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
	gateway   gate        // nil with the records engine
	ns        *dns.Server // nil without a data plane or --dns-listen
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
		if s.ns != nil {
			s.ns.Close()
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

// sharedStore is a store that several processes share (postgres.DB). Exclusive runs fn in one
// of them at a time.
type sharedStore interface {
	Exclusive(ctx context.Context, name string, fn func(context.Context) error) error
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
	case strings.HasPrefix(cfg.Store, "postgres://") || strings.HasPrefix(cfg.Store, "postgresql://"):
		db, err := postgres.Open(ctx, cfg.Store, log) // logs and errors name it without its password
		if err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
		return db, nil
	}
	return nil, fmt.Errorf("unsupported store %s: use sqlite:PATH or postgres://user:password@host:port/database",
		redactURL(cfg.Store))
}

// redactURL returns s, quoted, if it is a URL, with any password replaced by "xxxxx"; for
// anything else, which might hold a password where this function cannot tell, a placeholder.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		return "(not a URL)"
	}
	if u.Opaque != "" {
		return strconv.Quote(u.Scheme + ":…")
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return strconv.Quote(u.Redacted())
}

func (s *Server) start(ctx context.Context) error {
	cfg := s.cfg
	var b Bootstrap
	var err error
	if x, ok := s.st.(sharedStore); ok {
		// The tenant, the administrator, the signing key and the CA come from the store, so
		// that every process on it is one control plane; the data dir mirrors them. Processes
		// make the first-start state one at a time (each step is safe at once too: it is one
		// serializable transaction that creates what is missing).
		err = x.Exclusive(ctx, "first start", func(ctx context.Context) error {
			if _, err := shareFirstStart(ctx, s.st, cfg.DataDir, s.log); err != nil {
				return err
			}
			var err error
			b, err = firstStart(ctx, s.st, cfg.DataDir)
			return err
		})
	} else {
		// A store of this process alone: the data dir holds the first-start state, and the
		// store never holds the administrator's credentials in clear.
		b, err = firstStart(ctx, s.st, cfg.DataDir)
	}
	if err != nil {
		return err
	}
	host, _, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen address %q: %w", cfg.Listen, err)
	}
	public, err := publicURL(cfg.PublicURL)
	if err != nil {
		return err
	}
	hosts := []string{host}
	if public != "" {
		hosts = append(hosts, hostOf(public))
	}
	cert, ca, caFile, err := ensureTLS(cfg.DataDir, hosts, cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	ln = limitConns(ln, cfg)
	s.ln = ln
	local := "https://" + ln.Addr().String()
	endpoint := local
	if public != "" {
		endpoint = public
	}
	address, err := nodeURL(cfg.NodeURL, ln.Addr(), endpoint)
	if err != nil {
		return err
	}
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
		Audiences: audiences(endpoint, local)}, dir, s.log)
	if err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	_, shared := s.st.(sharedStore)
	rings := keyRings{st: s.st, shared: shared, dir: cfg.DataDir, rot: rotationOf(cfg)}
	if err := rings.applyKeys(ctx, issuer, time.Now()); err != nil {
		return fmt.Errorf("signing keys: %w", err)
	}

	eng, dp, err := s.dataPlane(ctx, &endpointCerts{ca: ca, fallback: cert, byIP: map[string]*tls.Certificate{}})
	if err != nil {
		return err
	}
	var scope dataplane.Scope // this node's part of the data plane; none with the records engine
	if dp != nil {
		if scope, err = nodeScope(cfg, dp.Network); err != nil {
			return err
		}
		dp.Node = scope.Node
	}
	owner := "" // the workers' lease owner name: the node's with a random suffix
	if scope.Node != "" {
		owner = scope.Node + "-" + resource.NewGUID()[:8]
	}
	s.workers = operation.NewWorkers(s.st, s.log, operation.Options{Node: scope.Node, Owner: owner})
	auth := newAuthorizer(s.st)
	armCfg := arm.Config{Endpoint: endpoint, TenantID: b.TenantID, InlineWait: cfg.InlineWait, PageSize: cfg.PageSize,
		Authorizer: auth}
	if s.gateway != nil && cfg.DNSListen != "" {
		ns, err := dns.New(dns.Config{Listen: cfg.DNSListen, Logger: s.log})
		if err != nil {
			return err
		}
		s.ns = ns
		port := cfg.DNSResolverPort
		if port <= 0 || port > 65535 {
			port = int(netip.MustParseAddrPort(ns.Addr()).Port())
		}
		dp.DNSPort = uint16(port)
	}
	var agent *nodeAgent
	var rec *dataplane.Reconciler // keeps the gateway in line with the store
	if s.gateway != nil {
		parts := []string{"gateway"}
		if s.ns != nil {
			parts = append(parts, "dns")
		}
		agent = newNodeAgent(s.st, s.log, store.Node{Name: scope.Node, Zone: cfg.Zone, Network: scope.Network.String(),
			Endpoint: endpoint, Address: address, Started: time.Now()}, shared, parts...)
		rec = &dataplane.Reconciler{St: s.st, Gate: s.gateway, Engine: eng.(dataplane.Engine), Scope: scope, Log: s.log,
			Applied: agent.setApplied("gateway")}
		// A change is enforced, and resolvable, here and on every other live node before it is
		// acknowledged.
		bs := barriers{gatewayBarrier{s.gateway, rec}}
		if s.ns != nil {
			bs = append(bs, s.ns)
		}
		if shared {
			bs = append(bs, nodeBarrier{st: s.st, self: scope.Node})
		}
		armCfg.Barrier = bs
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
	if s.ns != nil {
		net.SetResolvers(addrs)
	}
	pg := postgresql.New(audited, eng, net, nilIfNone(addrs), s.log)
	pg.SetDNSSuffix(cfg.DNSSuffix)
	pg.SetNode(scope.Node)
	if agent != nil {
		pg.SetNodeStatus(new(nodeStatus).status)
		src, err := newSessionSource(s.st, s.gateway, issuer, scope.Node, ca, s.log)
		if err != nil {
			return err
		}
		pg.SetSessions(src)
	}
	pg.SetLimits(postgresql.Limits{ConnectionsPerServer: cfg.MaxConnectionsPerServer, FirewallRulesPerServer: cfg.MaxFirewallRules})
	net.AddTarget(resource.TypeServer, pg)
	rs := resources.New(audited, s.log, []resources.Remover{ // dependents first
		{Type: resource.TypePrivateEndpoint, Remove: net.RemoveEndpoint},
		{Type: resource.TypeConnection, Remove: pg.RemoveConnection},
		{Type: resource.TypeServer, Cleanup: pg.Cleanup, Remove: pg.RemoveServer},
		{Type: resource.TypeSubnet, Remove: net.RemoveSubnet},
		{Type: resource.TypeVirtualNetwork, Remove: net.RemoveVirtualNetwork},
		{Type: resource.TypePrivateDNSZone, Remove: net.RemoveZone},
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
	mux.Handle("GET /metrics", s.metrics(agent))
	mux.Handle("/subscriptions", front)
	mux.Handle("/subscriptions/", front)
	mux.Handle("/providers/", front) // extension resources at the root scope (role assignments)
	mux.Handle("/v1.0/", directory.Handler(s.st, directory.APIConfig{TenantID: b.TenantID, Subscription: b.SubscriptionID,
		Authenticate: issuer.Authenticate, Allowed: auth.allowedAtRoot, Logger: s.log}))
	nodes := &nodesAPI{st: s.st, authenticate: issuer.Authenticate, allowed: auth.allowedAtRoot, tenant: b.TenantID,
		subscription: b.SubscriptionID, log: s.log}
	mux.HandleFunc("GET /pglink/v1/nodes", nodes.list)
	mux.HandleFunc("DELETE /pglink/v1/nodes/{name}", nodes.remove)
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
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.rotateKeys(rctx, rings, issuer, min(rings.rot.lead/3, 30*time.Second))
	}()
	if s.gateway != nil {
		// The first policy is in force before the API answers.
		if err := rec.Sync(ctx); err != nil {
			cancel()
			return fmt.Errorf("apply data-plane policy: %w", err)
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			rec.Run(rctx)
		}()
	}
	if s.ns != nil {
		// The first names are answered before the API answers.
		rec := &dataplane.DNSReconciler{St: s.st, NS: s.ns, Suffix: pg.DNSSuffix(), Scope: scope, Log: s.log,
			Applied: agent.setApplied("dns")}
		if err := rec.Sync(ctx); errors.Is(err, dataplane.ErrDNSBuild) {
			cancel()
			return err
		} else if err != nil {
			s.log.Error("dns round", "err", err) // a resolver that could not bind: retried
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			rec.Run(rctx)
		}()
		s.log.Info("dns serving", "public", s.ns.Addr(), "resolver_port", dp.DNSPort)
	}
	if agent != nil {
		// The node is known, with what it enforces, before the API answers: placement and
		// the other replicas' barriers count on it.
		if err := agent.report(ctx); err != nil {
			cancel()
			return fmt.Errorf("register data-plane node %s: %w", scope.Node, err)
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			agent.run(rctx)
		}()
	}
	go func() {
		defer s.wg.Done()
		if err := s.http.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.fail(fmt.Errorf("serve: %w", err))
		}
	}()
	close(s.ready)
	s.log.Info("pglink serving", "endpoint", endpoint, "listen", local, "data_dir", cfg.DataDir)
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

// DNSAddr returns the address ("host:port") of the nameserver's public view, "" if there is
// none.
func (s *Server) DNSAddr() string {
	if s.ns == nil {
		return ""
	}
	return s.ns.Addr()
}

// barriers waits for every part of the data plane: the gateway and the nameserver.
type barriers []arm.Barrier

// WaitApplied implements arm.Barrier.
func (b barriers) WaitApplied(ctx context.Context, rev int64) error {
	for _, x := range b {
		if err := x.WaitApplied(ctx, rev); err != nil {
			return err
		}
	}
	return nil
}

// Bootstrap returns the first-start facts, with the endpoint this process serves.
func (s *Server) Bootstrap() Bootstrap { return s.bootstrap }

// Store returns the server's store (for tests).
func (s *Server) Store() store.Store { return s.st }

// Addr returns the address the HTTPS listener is bound to (with --public-url, the endpoint in
// bootstrap.json names the public address instead).
func (s *Server) Addr() string { return s.ln.Addr().String() }

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
	if s.ns != nil {
		s.ns.Close()
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

// publicURL checks and normalizes --public-url: an https URL with a host and no path, query or
// fragment, without a trailing slash; "" stays "".
func publicURL(raw string) (string, error) {
	if raw == "" {
		return "", nil
	}
	u, err := url.Parse(strings.TrimSuffix(raw, "/"))
	if err != nil || u.Scheme != "https" || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("public URL %q: want https://HOST[:PORT] with no path", raw)
	}
	return u.Scheme + "://" + u.Host, nil
}

// nodeURL returns the address other replicas dial this process at: --node-url (checked as
// --public-url is), else the listener's own address unless it listens on every address of the
// host (no one address names it), else endpoint.
func nodeURL(raw string, ln net.Addr, endpoint string) (string, error) {
	if raw != "" {
		u, err := publicURL(raw)
		if err != nil {
			return "", fmt.Errorf("node URL %q: want https://HOST[:PORT] with no path", raw)
		}
		return u, nil
	}
	if a, ok := ln.(*net.TCPAddr); ok && a.IP.IsUnspecified() {
		return endpoint, nil
	}
	return "https://" + ln.String(), nil
}

// hostOf returns the host name of an absolute URL.
func hostOf(u string) string {
	p, _ := url.Parse(u)
	return p.Hostname()
}

// audiences are the token audiences a replica accepts: the public URL's and its own address's
// (for clients that dial it directly), with Azure's.
func audiences(public, local string) []string {
	auds := identity.DefaultAudiences(public)
	if local != public {
		auds = append(auds, local, local+"/")
	}
	return auds
}

// rotationOf returns cfg's signing key rotation settings, defaults filled in.
func rotationOf(cfg Config) rotation {
	r := rotation{period: cfg.SigningKeyRotation, lead: cfg.SigningKeyLead, overlap: cfg.SigningKeyOverlap}
	switch {
	case r.period == 0:
		r.period = DefaultKeyRotation
	case r.period < 0:
		r.period = 0
	}
	if r.lead <= 0 {
		r.lead = defaultKeyLead
	}
	if r.overlap <= 0 {
		r.overlap = defaultKeyOverlap
	}
	return r
}

// MigrateStore opens cfg's store, which brings its schema up to this pglink's version, closes
// it, and returns that version. A SQLite store must exist already: migrating creates none.
func MigrateStore(ctx context.Context, cfg Config) (int, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	version := sqlite.SchemaVersion()
	if cfg.Store == "" || strings.HasPrefix(cfg.Store, "sqlite:") {
		path := strings.TrimPrefix(cfg.Store, "sqlite:")
		if path == "" {
			path = filepath.Join(cfg.DataDir, "pglink.db")
		}
		if _, err := os.Stat(path); err != nil {
			return 0, fmt.Errorf("no SQLite store at %s: %w", path, err)
		}
		cfg.Store = "sqlite:" + path
	} else {
		version = postgres.SchemaVersion()
	}
	st, err := openStore(ctx, cfg, cfg.Logger)
	if err != nil {
		return 0, err
	}
	return version, st.Close()
}

// gatewayBarrier is the gateway's barrier, whose failure says why the gateway lags when its
// reconciler could not build the policy (the store is unavailable, say).
type gatewayBarrier struct {
	g   gate
	rec *dataplane.Reconciler
}

// WaitApplied implements arm.Barrier.
func (b gatewayBarrier) WaitApplied(ctx context.Context, rev int64) error {
	err := b.g.WaitApplied(ctx, rev)
	if err != nil {
		if why := b.rec.Err(); why != nil {
			return fmt.Errorf("%w (the data plane's last round failed: %w)", err, why)
		}
	}
	return err
}
