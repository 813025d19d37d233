package server

import (
	"context"
	"net"
	"net/http"
	"time"

	"golang.org/x/net/netutil"
)

// Defaults of the HTTPS listener's limits. Every request is short: ARM clients wait at most
// the inline wait (2 s) plus the data-plane barrier (2 s) for an answer and otherwise poll.
const (
	// DefaultMaxConns caps concurrent HTTPS connections; more wait in the kernel's accept
	// queue until one closes.
	DefaultMaxConns = 1000
	// DefaultReadTimeout bounds reading one request, headers and body (4 MiB at most).
	DefaultReadTimeout = 30 * time.Second
	// readHeaderTimeout bounds reading the request line and headers (and the TLS handshake).
	readHeaderTimeout = 10 * time.Second
	// writeTimeout bounds handling a request and writing its answer; ARM itself gives up on
	// a request after 60 s. A longer --lro-inline-wait lengthens it.
	writeTimeout = 60 * time.Second
	// idleTimeout closes a keep-alive connection that sends no new request.
	idleTimeout = 2 * time.Minute
	// maxHeaderBytes bounds the request line and headers (a bearer token is about 2 KB).
	maxHeaderBytes = 64 << 10
)

// applyHTTPLimits sets the timeouts and header limit of srv from cfg.
func applyHTTPLimits(srv *http.Server, cfg Config) {
	srv.ReadHeaderTimeout = readHeaderTimeout
	srv.ReadTimeout = cfg.ReadTimeout
	if srv.ReadTimeout <= 0 {
		srv.ReadTimeout = DefaultReadTimeout
	}
	srv.ReadHeaderTimeout = min(srv.ReadHeaderTimeout, srv.ReadTimeout)
	// A request may wait for its operation (InlineWait) and then for the data plane (as
	// long again) before it answers.
	srv.WriteTimeout = max(writeTimeout, 2*cfg.InlineWait+10*time.Second)
	srv.IdleTimeout = idleTimeout
	srv.MaxHeaderBytes = maxHeaderBytes
}

// limitConns caps the connections ln hands out at cfg.MaxConns (default DefaultMaxConns):
// Accept waits while that many are open.
func limitConns(ln net.Listener, cfg Config) net.Listener {
	n := cfg.MaxConns
	if n <= 0 {
		n = DefaultMaxConns
	}
	return netutil.LimitListener(ln, n)
}

// DefaultMaxEndpoints caps the data-plane endpoints (one listener and file descriptor each:
// every server's public endpoint and every private endpoint).
const DefaultMaxEndpoints = 4096

// Activity log retention: Azure keeps 90 days. The count bound keeps a flood of requests (each
// write, and each denied write, is an event) from filling the disk within that time.
const (
	DefaultActivityRetention = 90 * 24 * time.Hour
	DefaultActivityMaxEvents = 1_000_000
	pruneEvery               = time.Hour
)

// pruneActivity removes old activity log events now and every pruneEvery until ctx ends.
func (s *Server) pruneActivity(ctx context.Context) {
	retention, keep := s.cfg.ActivityRetention, s.cfg.ActivityMaxEvents
	if retention <= 0 {
		retention = DefaultActivityRetention
	}
	if keep <= 0 {
		keep = DefaultActivityMaxEvents
	}
	t := time.NewTicker(pruneEvery)
	defer t.Stop()
	for {
		n, err := s.st.PruneEvents(ctx, time.Now().Add(-retention), keep)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("prune activity log", "err", err)
		} else if n > 0 {
			s.log.Info("pruned activity log", "events", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
