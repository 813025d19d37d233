package server

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/pglink/pglink/internal/arm"
	"github.com/pglink/pglink/internal/dataplane"
	"github.com/pglink/pglink/internal/gateway"
	"github.com/pglink/pglink/internal/identity"
	"github.com/pglink/pglink/internal/providers/postgresql"
	"github.com/pglink/pglink/internal/resource"
	"github.com/pglink/pglink/internal/store"
)

// forwardedHeader marks a sessions request one replica sent to the replica of the server's
// node, naming the sender's node; the receiver answers it itself or fails, never forwards it.
const forwardedHeader = "X-Pglink-Forwarded-By"

// Bounds of a forwarded sessions request.
const (
	forwardTimeout = 10 * time.Second
	forwardMaxBody = 64 << 20
)

// sessionSource finds servers' open sessions for the sessions type: in this node's gateway, or
// by asking the replica of the node that holds the server, at the node's own address,
// with a short-lived token for the caller that this replica issues for that one (the replicas
// share their signing keys), so that replica authenticates and authorizes the caller again.
type sessionSource struct {
	st     store.Store
	gate   gate
	issuer *identity.Issuer
	self   string // this process's node
	tls    *tls.Config
	log    *slog.Logger

	mu      sync.Mutex
	clients map[string]*http.Client // by the TLS server name they verify: one per public host
}

// newSessionSource returns the source of node self; ca (zero with an operator's certificate,
// then the system's roots are trusted) is the local CA the replicas' certificates come from.
func newSessionSource(st store.Store, g gate, issuer *identity.Issuer, self string, ca tls.Certificate, log *slog.Logger) (*sessionSource, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if len(ca.Certificate) > 0 {
		c, err := x509.ParseCertificate(ca.Certificate[0])
		if err != nil {
			return nil, fmt.Errorf("local CA: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		tc.RootCAs.AddCert(c)
	}
	return &sessionSource{st: st, gate: g, issuer: issuer, self: self, tls: tc, log: log.With("component", "sessions"),
		clients: map[string]*http.Client{}}, nil
}

// client returns the HTTP client that verifies the certificate of the replicas reached for
// serverName (the host of their --public-url when they have one: every replica's certificate
// names it, whatever address it is dialled at).
func (s *sessionSource) client(serverName string) *http.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.clients[serverName]; ok {
		return c
	}
	tc := s.tls.Clone()
	tc.ServerName = serverName
	tr := &http.Transport{TLSClientConfig: tc, MaxIdleConnsPerHost: 2, IdleConnTimeout: time.Minute,
		ResponseHeaderTimeout: forwardTimeout}
	c := &http.Client{Transport: tr, Timeout: forwardTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	s.clients[serverName] = c
	return c
}

var _ postgresql.Sessions = (*sessionSource)(nil)

func (s *sessionSource) Local(ctx context.Context, server resource.ID) ([]postgresql.OpenSession, error) {
	ss, err := s.gate.ServerSessions(ctx, server.String())
	if err != nil {
		s.log.Warn("list sessions", "server", server.String(), "err", err)
		return nil, resource.Errorf(resource.Unavailable, "DataPlaneUnavailable",
			"The gateway of node '%s' did not answer; retry in a few seconds.", s.self)
	}
	out := make([]postgresql.OpenSession, 0, len(ss))
	for _, g := range ss {
		o := postgresql.OpenSession{ID: g.ID, Client: g.Client.String(), Listen: g.Listen.String(), TLS: g.TLS,
			Started: g.Started, BytesIn: g.BytesIn, BytesOut: g.BytesOut}
		if g.Kind == gateway.Private {
			o.PrivateEndpoint = g.Endpoint
		}
		out = append(out, o)
	}
	return out, nil
}

func (s *sessionSource) Owner(ctx context.Context, tx store.Tx, node, address string) (string, error) {
	if node != "" {
		return node, nil
	}
	nodes, err := tx.Nodes(ctx)
	if err != nil {
		return "", err
	}
	return dataplane.NodeOf(node, address, nodes), nil
}

func (s *sessionSource) Forward(ctx context.Context, req *arm.Request, node string) (*arm.Response, error) {
	unreachable := func(why string) error {
		return resource.Errorf(resource.Unavailable, "NodeUnreachable",
			"The open sessions of server '%s' are known to its data-plane node '%s' only, %s.", req.Target.Parent().Name(), node, why)
	}
	if by := req.Header.Get(forwardedHeader); by != "" {
		s.log.Warn("sessions request forwarded to the wrong replica", "from", by, "node", node)
		return nil, unreachable("and the replica at that node's registered address is not it (check its --node-url)")
	}
	var n *store.Node
	err := s.st.View(ctx, func(tx store.Tx) error {
		nodes, err := tx.Nodes(ctx)
		for i := range nodes {
			if nodes[i].Name == node {
				n = &nodes[i]
			}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	// Dial the node's own address; its endpoint may be the load balancer every replica serves
	// behind, which would hand the request to any of them.
	var base string
	if n != nil {
		base = cmp.Or(n.Address, n.Endpoint)
	}
	if n == nil || !n.Live(time.Now()) || base == "" {
		return nil, unreachable("which is Unreachable; retry once it is back")
	}
	path := req.Target.ID.String()
	if req.Target.Collection {
		path += "/sessions"
	}
	fctx, cancel := context.WithTimeout(ctx, forwardTimeout)
	defer cancel()
	hr, err := http.NewRequestWithContext(fctx, http.MethodGet, strings.TrimSuffix(base, "/")+path+"?api-version="+req.APIVersion, nil)
	if err != nil {
		return nil, err
	}
	token, err := s.issuer.IssueFor(req.Caller, n.Endpoint, forwardTimeout+time.Minute)
	if err != nil {
		return nil, err
	}
	hr.Header.Set("Authorization", "Bearer "+token)
	hr.Header.Set("Accept", "application/json")
	hr.Header.Set("x-ms-correlation-request-id", req.CorrelationID)
	hr.Header.Set(forwardedHeader, s.self)
	resp, err := s.client(hostOf(n.Endpoint)).Do(hr)
	if err != nil {
		s.log.Warn("forward sessions request", "node", node, "address", base, "err", err)
		return nil, unreachable("which did not answer; retry in a few seconds")
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, forwardMaxBody+1))
	if err != nil || len(body) > forwardMaxBody {
		s.log.Warn("read forwarded sessions answer", "node", node, "err", err, "bytes", len(body))
		return nil, unreachable("whose answer could not be read")
	}
	if resp.StatusCode == http.StatusOK && json.Valid(body) {
		return &arm.Response{Body: json.RawMessage(body)}, nil
	}
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil || e.Error.Code == "" {
		s.log.Warn("forwarded sessions request failed", "node", node, "status", resp.StatusCode)
		return nil, unreachable("which answered with an error")
	}
	return nil, &resource.Error{Kind: arm.KindOfStatus(resp.StatusCode), Code: e.Error.Code, Message: e.Error.Message}
}
