// Command pglink is a self-hosted, Azure-compatible control plane for PostgreSQL flexible
// servers with Private Link. `pglink serve` runs it; the other commands are its az-style
// command line (internal/cli).
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
	"time"

	"github.com/spf13/cobra"

	"github.com/pglink/pglink/internal/cli"
	"github.com/pglink/pglink/internal/server"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, serverCommands(os.Stderr)...)
	stop()
	os.Exit(code)
}

type usageError struct{ error }

// serverCommands are serve and gateway, which parse their own flags (the flag package) and
// print their errors as "pglink: …", exiting 2 on a usage error and 1 on a failure.
func serverCommands(stderr io.Writer) []*cobra.Command {
	wrap := func(fn func(ctx context.Context, args []string, stderr io.Writer) error) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			err := fn(cmd.Context(), args, stderr)
			if err == nil {
				return nil
			}
			fmt.Fprintln(stderr, "pglink:", err)
			if errors.As(err, new(usageError)) {
				return cli.Exit(2)
			}
			return cli.Exit(1)
		}
	}
	return []*cobra.Command{
		{
			Use:   "serve",
			Short: "Run the control plane (API, identity, operations) on the embedded store",
			Long: `Run the control plane (API, identity, operations) on the embedded store; it starts the
data-plane gateway as a process of its own, or re-attaches to it. Run 'pglink serve -h' for
the flags.`,
			DisableFlagParsing: true,
			RunE:               wrap(serve),
		},
		{
			Use:   "gateway [stop]",
			Short: "Run the data-plane gateway alone, or stop it for good",
			Long: `Run the data-plane gateway alone (pglink serve starts it; it outlives serve); with
--replace, take over from the running one without refusing a connection.
'pglink gateway stop' ends every session of the gateway with SQLSTATE 57P01 and stops it for
good. Run 'pglink gateway -h' for the flags.`,
			DisableFlagParsing: true,
			RunE:               wrap(gatewayCmd),
		},
		{
			Use:   "store migrate",
			Short: "Bring the store's schema up to this pglink's version, then exit",
			Long: `Bring the store's schema up to this pglink's version, then exit: run it once before a
rolling upgrade of replicas (pglink serve migrates at start too, and refuses a schema newer
than its own). Run 'pglink store migrate -h' for the flags.`,
			DisableFlagParsing: true,
			RunE:               wrap(storeCmd),
		},
	}
}

func storeCmd(ctx context.Context, args []string, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "migrate" {
		return usageError{errors.New("usage: pglink store migrate [--store URL] [--data-dir DIR]")}
	}
	cfg := server.DefaultConfig()
	fs := flag.NewFlagSet("pglink store migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "data dir whose SQLite store to migrate when --store is not given")
	fs.StringVar(&cfg.NodeURL, "node-url", "", "https://HOST[:PORT] other replicas reach this process itself at, when --public-url names a load balancer (default: https://LISTEN)")
	fs.StringVar(&cfg.Store, "store", cfg.Store, "store: sqlite:PATH or postgres://user:password@host:port/database (default $"+storeEnv+", else SQLite in the data dir)")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments: %v", fs.Args())}
	}
	cfg.Store = storeFlag(fs, os.Getenv)
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, nil))
	version, err := server.MigrateStore(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stdout, "schema version %d\n", version)
	return nil
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	cfg := server.DefaultConfig()
	fs := flag.NewFlagSet("pglink serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory for the store, keys, certificates and bootstrap.json")
	fs.StringVar(&cfg.Listen, "listen", cfg.Listen, "HTTPS address of the API, identity endpoints and portal")
	fs.StringVar(&cfg.PublicURL, "public-url", "", "https://HOST[:PORT] clients use when replicas serve behind one address (a load balancer); default: https://LISTEN")
	fs.StringVar(&cfg.NodeURL, "node-url", "", "https://HOST[:PORT] other replicas reach this process itself at, when --public-url names a load balancer (default: https://LISTEN)")
	fs.StringVar(&cfg.Store, "store", cfg.Store, "store: empty for SQLite in the data dir, sqlite:PATH, or postgres://user:password@host:port/database (default $"+storeEnv+")")
	fs.StringVar(&cfg.NodeName, "node-name", "", "name of this process's data-plane node among replicas on one store (default: the host name)")
	fs.StringVar(&cfg.Zone, "zone", "", "availability zone label of this node (servers placed on it report it)")
	fs.StringVar(&cfg.EndpointNetwork, "endpoint-network", cfg.EndpointNetwork, "loopback block for data-plane endpoint addresses")
	fs.IntVar(&cfg.EndpointPort, "endpoint-port", cfg.EndpointPort, "port of every data-plane endpoint")
	fs.StringVar(&cfg.DNSListen, "dns-listen", cfg.DNSListen, "address (UDP and TCP) of the nameserver's public view; \"\" for no nameserver")
	fs.StringVar(&cfg.DNSSuffix, "dns-suffix", cfg.DNSSuffix, "DNS suffix of servers' names (properties.fullyQualifiedDomainName)")
	fs.IntVar(&cfg.DNSResolverPort, "dns-resolver-port", cfg.DNSResolverPort, "port of virtual networks' resolvers (0: the port of --dns-listen)")
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
	fs.DurationVar(&cfg.ActivityRetention, "activity-retention", server.DefaultActivityRetention, "how long activity log events are kept")
	fs.DurationVar(&cfg.SigningKeyRotation, "signing-key-rotation", server.DefaultKeyRotation, "how often the token signing key rotates (the old key verifies for 2 hours more); 0 or less: never")
	fs.IntVar(&cfg.ActivityMaxEvents, "activity-max-events", server.DefaultActivityMaxEvents, "most activity log events kept; the oldest go first")
	fs.StringVar(&cfg.Gateway, "gateway", "process", "process: the data plane runs in a pglink gateway process that outlives restarts of serve; embedded: in this process")
	fs.IntVar(&cfg.EventLoops, "event-loops", 0, "event loops that relay data-plane sessions (0: one per CPU but one, at least one)")
	fs.BoolVar(&cfg.Demo, "demo", false, "on an empty data dir, seed a demo: a network admin and a database admin user (passwords printed and in bootstrap.json), a Ready server, a virtual network and a Pending private endpoint")
	verbose := fs.Bool("v", false, "log every request")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError{err}
	}
	if err := checkEventLoops(cfg.EventLoops); err != nil {
		return err
	}
	if cfg.SigningKeyRotation <= 0 {
		cfg.SigningKeyRotation = -1 // the flag's 0 means never; the Config's 0 means the default
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments: %v", fs.Args())}
	}
	cfg.Store = storeFlag(fs, os.Getenv)
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	cfg.DemoOut = stderr
	return server.Run(ctx, cfg)
}

// maxEventLoops bounds --event-loops: each loop is an OS thread with an epoll set.
const maxEventLoops = 64

func checkEventLoops(n int) error {
	if n < 0 || n > maxEventLoops {
		return usageError{fmt.Errorf("--event-loops %d: want 0 (the default) to %d", n, maxEventLoops)}
	}
	return nil
}

// storeEnv names the environment variable that gives the store when --store does not, so a
// password need not appear on a command line.
const storeEnv = "PGLINK_STORE"

// storeFlag returns the store fs's --store gives if it was set (even to ""), else $PGLINK_STORE.
func storeFlag(fs *flag.FlagSet, getenv func(string) string) string {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == "store" })
	if set {
		return fs.Lookup("store").Value.String()
	}
	return getenv(storeEnv)
}

func gatewayCmd(ctx context.Context, args []string, stderr io.Writer) error {
	stop := len(args) > 0 && args[0] == "stop"
	name := "pglink gateway"
	if stop {
		args, name = args[1:], "pglink gateway stop"
	}
	cfg := server.GatewayConfig{DataDir: server.DefaultConfig().DataDir}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "data dir of the pglink serve the gateway belongs to")
	fs.BoolVar(&cfg.Replace, "replace", false, "take over from the running gateway of the data dir (an upgrade): its listeners and plain sessions move here, its TLS sessions drain")
	fs.DurationVar(&cfg.DrainGrace, "drain-grace", server.DefaultDrainGrace, "once replaced, how long TLS sessions may go on before they get SQLSTATE 57P01")
	fs.IntVar(&cfg.EventLoops, "event-loops", 0, "event loops that relay sessions (0: one per CPU but one, at least one)")
	reason := fs.String("reason", "", "with stop: why, appended to the message sessions get")
	timeout := fs.Duration("timeout", time.Minute, "with stop: how long to wait for the gateway to exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments: %v", fs.Args())}
	}
	if err := checkEventLoops(cfg.EventLoops); err != nil {
		return err
	}
	if stop {
		ctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		return server.StopGateway(ctx, cfg.DataDir, *reason)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, nil))
	return server.RunGateway(ctx, cfg)
}
