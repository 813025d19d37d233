package server

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pglink/pglink/internal/dataplane"
	"github.com/pglink/pglink/internal/engine"
	"github.com/pglink/pglink/internal/gateway"
	"github.com/pglink/pglink/internal/providers/postgresql"
	"github.com/pglink/pglink/internal/store"
)

// dataPlane makes the engine and, with the local engine, the gateway and the address
// allocator. With the records engine there is no data plane: servers are records.
func (s *Server) dataPlane(ctx context.Context, certs *endpointCerts) (postgresql.Engine, *dataplane.Allocator, error) {
	switch s.cfg.Engine {
	case "records":
		return engine.Records{}, nil, nil
	case "", "local":
	default:
		return nil, nil, fmt.Errorf("unknown engine %q: use local or records", s.cfg.Engine)
	}
	network, err := netip.ParsePrefix(s.cfg.EndpointNetwork)
	if err != nil || !network.Addr().Is4() {
		return nil, nil, fmt.Errorf("endpoint network %q: want an IPv4 CIDR block such as 127.77.0.0/16", s.cfg.EndpointNetwork)
	}
	port := s.cfg.EndpointPort
	if port <= 0 || port > 65535 {
		return nil, nil, fmt.Errorf("endpoint port %d is not a TCP port", port)
	}
	eng, err := engine.NewLocal(engine.LocalConfig{Dir: s.serversDir(), PGBin: s.cfg.PGBin, Logger: s.log})
	if err != nil {
		return nil, nil, err
	}
	switch s.cfg.Gateway {
	case "", "embedded":
		s.gateway = gateway.New(gateway.Config{
			TLS:    &tls.Config{GetCertificate: certs.GetCertificate, MinVersion: tls.VersionTLS12},
			Logger: s.log,
		})
	case "process":
		pc, err := pemCerts(certs.ca, certs.fallback)
		if err != nil {
			return nil, nil, err
		}
		gp, err := startGatewayProc(ctx, s.cfg.DataDir, s.cfg.GatewayBin, pc, s.log)
		if err != nil {
			return nil, nil, err
		}
		s.gateway = gp
	default:
		return nil, nil, fmt.Errorf("unknown gateway mode %q: use embedded or process", s.cfg.Gateway)
	}
	return eng, &dataplane.Allocator{Network: network.Masked(), Port: uint16(port)}, nil
}

// allocator is what both providers want from the address allocator.
type allocator interface {
	Allocate(ctx context.Context, tx store.Tx) (string, error)
}

// nilIfNone returns a, or a nil interface (not a nil pointer in an interface) when a is nil.
func nilIfNone(a *dataplane.Allocator) allocator {
	if a == nil {
		return nil
	}
	return a
}

// metrics serves Prometheus metrics of the data plane.
func (s *Server) metrics() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	if s.gateway != nil {
		reg.MustRegister(gatewayCollector{s.gateway})
	}
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

// serversDir is where the PostgreSQL clusters live: DATA/servers, unless pglink runs as root
// and the postgres OS user cannot traverse the data dir's parents (a checkout under /root, say):
// then /var/lib/pglink/servers-<hash of the data dir>, which it can.
func (s *Server) serversDir() string {
	abs, err := filepath.Abs(s.cfg.DataDir)
	if err != nil {
		abs = s.cfg.DataDir
	}
	dir := filepath.Join(abs, "servers")
	if os.Geteuid() != 0 || othersCanTraverse(filepath.Dir(abs)) {
		return dir
	}
	sum := sha256.Sum256([]byte(abs))
	alt := filepath.Join("/var/lib/pglink", "servers-"+hex.EncodeToString(sum[:4]))
	s.log.Warn("the postgres OS user cannot reach the data dir; keeping PostgreSQL clusters elsewhere",
		"data_dir", abs, "servers_dir", alt, "fix", "chmod o+x the data dir's parent directories")
	if err := os.MkdirAll("/var/lib/pglink", 0o711); err != nil {
		return dir
	}
	return alt
}

// othersCanTraverse reports whether every directory from dir up to / has the x bit for others.
func othersCanTraverse(dir string) bool {
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		if d == filepath.Dir(d) {
			return true
		}
	}
}
