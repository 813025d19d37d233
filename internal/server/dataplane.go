package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"

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
		gwTLS := serverTLS()
		gwTLS.GetCertificate = certs.GetCertificate
		s.gateway = gateway.New(gateway.Config{TLS: gwTLS, Logger: s.log, Reactors: s.cfg.EventLoops})
	case "process":
		pc, err := pemCerts(certs.ca, certs.fallback)
		if err != nil {
			return nil, nil, err
		}
		gp, err := startGatewayProc(ctx, s.cfg.DataDir, s.cfg.GatewayBin, s.cfg.EventLoops, pc, s.log)
		if err != nil {
			return nil, nil, err
		}
		s.gateway = gp
	default:
		return nil, nil, fmt.Errorf("unknown gateway mode %q: use embedded or process", s.cfg.Gateway)
	}
	maxEndpoints := s.cfg.MaxEndpoints
	if maxEndpoints <= 0 {
		maxEndpoints = DefaultMaxEndpoints
	}
	return eng, &dataplane.Allocator{Network: network.Masked(), Port: uint16(port), Max: maxEndpoints}, nil
}

// allocator is what both providers want from the address allocator.
type allocator interface {
	Place(ctx context.Context, tx store.Tx) (addr, node string, err error)
	AllocateOn(ctx context.Context, tx store.Tx, node string) (string, error)
}

// nilIfNone returns a, or a nil interface (not a nil pointer in an interface) when a is nil.
func nilIfNone(a *dataplane.Allocator) allocator {
	if a == nil {
		return nil
	}
	return a
}

// metrics serves Prometheus metrics of this replica: its store, operations, node and gateway.
func (s *Server) metrics(agent *nodeAgent) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}),
		replicaCollector{st: s.st, workers: s.workers, agent: agent})
	if s.gateway != nil {
		reg.MustRegister(gatewayCollector{s.gateway})
	}
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

// serversDir is where the PostgreSQL clusters live: DATA/servers, unless pglink runs as root
// and the clusters' OS users cannot traverse the data dir's parents (a checkout under /root,
// say): then /var/lib/pglink/servers-<hash of the data dir>, which they can.
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
	s.log.Warn("the clusters' OS users cannot reach the data dir; keeping PostgreSQL clusters elsewhere",
		"data_dir", abs, "servers_dir", alt, "fix", "chmod o+x the data dir's parent directories")
	if err := os.MkdirAll("/var/lib/pglink", 0o711); err != nil {
		return dir
	}
	if err := os.Chmod("/var/lib/pglink", 0o711); err != nil { // the umask is 0077
		return dir
	}
	return alt
}

// clustersInDataDir reports whether the PostgreSQL clusters live below the data dir and run as
// OS users other than pglink's (see serversDir), who must then traverse it.
func clustersInDataDir(cfg Config) bool {
	if cfg.Engine == "records" || os.Geteuid() != 0 {
		return false
	}
	abs, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return true
	}
	return othersCanTraverse(filepath.Dir(abs))
}

// secureDataDir makes the data dir pglink's alone. It sets the process's umask to 0077, so
// that everything pglink creates is readable by its own OS user only, and creates the data dir
// with mode 0700: 0711 when the clusters' OS users must traverse it to reach their clusters
// (they can list nothing in it, and open only their own cluster). Files and directories left
// by older versions lose every group and other permission bit, except the clusters' directory
// (the engine's: 0711). Directories pglink's OS user does not own (each cluster's, 0700 for
// its own OS user, which the engine keeps) and PostgreSQL data directories, which PostgreSQL
// keeps private itself, are not walked; nor are symlinks followed.
func secureDataDir(cfg Config) error {
	syscall.Umask(0o077)
	mode := os.FileMode(0o700)
	if clustersInDataDir(cfg) {
		mode = 0o711
	}
	if err := os.MkdirAll(cfg.DataDir, mode); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	if err := os.Chmod(cfg.DataDir, mode); err != nil {
		return fmt.Errorf("data dir permissions: %w", err)
	}
	servers := filepath.Join(cfg.DataDir, "servers")
	euid := os.Geteuid()
	err := filepath.WalkDir(cfg.DataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while we walk (a cluster's log rotated, say)
			}
			return err
		}
		if path == cfg.DataDir || path == servers {
			return nil
		}
		if d.IsDir() && d.Name() == "data" && filepath.Dir(filepath.Dir(path)) == servers {
			return fs.SkipDir
		}
		if !d.IsDir() && !d.Type().IsRegular() {
			return nil // symlinks, sockets, FIFOs
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != euid {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			if err := os.Chmod(path, perm&^0o077); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("data dir permissions: %w", err)
	}
	return nil
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
