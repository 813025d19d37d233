// Command pglink is a self-hosted, Azure-compatible control plane for PostgreSQL flexible
// servers with Private Link. `pglink serve` runs it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/pglink/pglink/internal/server"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "pglink:", err)
		var u usageError
		if errors.As(err, &u) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

type usageError struct{ error }

const usage = `usage: pglink serve [flags]

Commands:
  serve    run the control plane (API, identity, operations) on the embedded store

Run 'pglink serve -h' for the flags.`

func run(ctx context.Context, args []string, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{errors.New(usage)}
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stderr)
	case "-h", "--help", "help":
		fmt.Fprintln(stderr, usage)
		return nil
	}
	return usageError{fmt.Errorf("unknown command %q\n%s", args[0], usage)}
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	cfg := server.DefaultConfig()
	fs := flag.NewFlagSet("pglink serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory for the store, keys, certificates and bootstrap.json")
	fs.StringVar(&cfg.Listen, "listen", cfg.Listen, "HTTPS address of the API, identity endpoints and portal")
	fs.StringVar(&cfg.Store, "store", cfg.Store, "store URL: empty for SQLite in the data dir, or sqlite:PATH")
	fs.StringVar(&cfg.EndpointNetwork, "endpoint-network", cfg.EndpointNetwork, "loopback block for data-plane endpoint addresses")
	fs.IntVar(&cfg.EndpointPort, "endpoint-port", cfg.EndpointPort, "port of every data-plane endpoint")
	fs.StringVar(&cfg.DNSListen, "dns-listen", cfg.DNSListen, "reserved for the private DNS server, which is not served yet: accepted and ignored")
	fs.StringVar(&cfg.Engine, "engine", cfg.Engine, "local: run a real PostgreSQL per server; records: API only, servers are records")
	fs.StringVar(&cfg.PGBin, "pg-bin", "", "directory of initdb, pg_ctl and postgres (default: PATH, then /usr/lib/postgresql/*/bin)")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "TLS certificate file (PEM); default: issued by a local CA in the data dir")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "TLS private key file (PEM), with --tls-cert")
	fs.DurationVar(&cfg.InlineWait, "lro-inline-wait", cfg.InlineWait, "how long a request waits for its long-running operation before answering 202")
	fs.IntVar(&cfg.MaxConns, "max-http-conns", server.DefaultMaxConns, "most concurrent HTTPS connections; more wait until one closes")
	fs.DurationVar(&cfg.ReadTimeout, "http-read-timeout", server.DefaultReadTimeout, "how long a client may take to send one request, headers and body")
	fs.IntVar(&cfg.MaxEndpoints, "max-endpoints", server.DefaultMaxEndpoints, "most data-plane endpoints (listeners): server public endpoints plus private endpoints")
	fs.IntVar(&cfg.MaxEndpointsPerSubnet, "max-endpoints-per-subnet", 1000, "most private endpoints in one subnet")
	fs.IntVar(&cfg.MaxConnectionsPerServer, "max-connections-per-server", 1000, "most private endpoint connections on one flexible server")
	fs.IntVar(&cfg.MaxFirewallRules, "max-firewall-rules", 128, "most firewall rules on one flexible server")
	verbose := fs.Bool("v", false, "log every request")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments: %v", fs.Args())}
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	return server.Run(ctx, cfg)
}
