// Command dataplane measures pglink's data plane on this machine against two baselines, in one
// run: PostgreSQL's own unix socket ("direct") and PgBouncer in session mode, both pointing at
// the same PostgreSQL that pglink runs for a flexible server.
//
//	go run ./bench/dataplane [-rounds 5] [-duration 8s] [-warmup 6s] [-churn 5s] [-toggles 100] [-sessions 1000] [-keep]
//	go run ./bench/dataplane -pgbench-only -tests c=1,c=8 -paths "direct,PgBouncer TLS,pglink TLS"
//
// It builds cmd/pglink, runs `pglink serve` as a child process on a fresh data dir, and through
// the ARM API creates a flexible server and an approved private endpoint. Then:
//
//  1. pgbench -S -M simple at 1, 8 and 64 clients, and -C at 4 clients, on each path, plaintext
//     and TLS (PgBouncer with client_tls_*; libpq sslmode=require), PgBouncer with a warm pool
//     and with a cold one, rounds interleaved: TPS, latency, medians of per-round ratios, added
//     latency per query, proxy CPU and context switches per transaction, pglink's sysmon
//     wake-ups per second and RSS; each run but a cold one is measured after its warm-up, its
//     own first seconds, so that its sessions and their PostgreSQL backends are warm;
//  2. approve → first successful query and reject → open session cut, over many private
//     endpoints, timed from the request and from the API's answer;
//  3. pglink's RSS before and after opening many idle sessions through a private endpoint;
//  4. the goals of the data-plane issue, PASS or MISS.
//
// Every process it starts (pglink, PgBouncer, PostgreSQL) is stopped when it ends, on error
// and on SIGINT/SIGTERM too. It needs the PostgreSQL 15 server and client binaries, pgbench,
// and PgBouncer (installed with apt-get if missing); run it as root so that PgBouncer and
// PostgreSQL run as the server's own OS user.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"
)

// config is what the flags set.
type config struct {
	rounds   int           // interleaved pgbench rounds
	duration time.Duration // pgbench -T of the -S runs
	warmup   time.Duration // the first part of each run (but cold ones), not measured
	churn    time.Duration // pgbench -T of the -C runs
	scale    int           // pgbench -i -s
	toggles  int           // approve/reject toggles
	sessions int           // idle sessions for the memory measurement
	pgBin    string        // PostgreSQL binaries (pgbench)
	keep     bool          // keep the work directory
	profile  string        // directory for CPU profiles of pglink during the pgbench runs through it
	only     string        // comma-separated pgbench tests to run ("c=1,c=8"); "" for all
	paths    string        // comma-separated paths to run ("direct,PgBouncer TLS,pglink TLS"); "" for all
	short    bool          // pgbench only: no toggles, memory or goals
	hold     bool          // set up, print how to reach each path, wait for an interrupt
	loops    int           // pglink serve --event-loops
	perf     bool          // count the proxies' system calls with perf stat
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == profiledServe {
		if err := profiledServeMain(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "pglink:", err)
			os.Exit(1)
		}
		return
	}
	var cfg config
	flag.IntVar(&cfg.rounds, "rounds", 5, "interleaved pgbench rounds (medians are reported)")
	flag.DurationVar(&cfg.duration, "duration", 8*time.Second, "length of each pgbench -S run")
	flag.DurationVar(&cfg.warmup, "warmup", 6*time.Second, "the first part of each pgbench run (but cold ones), its warm-up, which is not measured (0: none)")
	flag.DurationVar(&cfg.churn, "churn", 5*time.Second, "length of each pgbench -C (connection setup) run")
	flag.IntVar(&cfg.scale, "scale", 10, "pgbench -i scale factor")
	flag.IntVar(&cfg.toggles, "toggles", 100, "approve/reject toggles, each on a fresh private endpoint")
	flag.IntVar(&cfg.sessions, "sessions", 1000, "idle sessions opened through the private endpoint for the memory measurement")
	flag.StringVar(&cfg.pgBin, "pg-bin", "/usr/lib/postgresql/15/bin", "directory of pgbench")
	flag.BoolVar(&cfg.keep, "keep", false, "keep the work directory (pglink's data dir and logs)")
	flag.StringVar(&cfg.profile, "cpuprofile", "", "write CPU profiles of pglink during each pgbench run through it to this `directory` (pglink then runs as this program, same server code, with a profiler)")
	flag.StringVar(&cfg.only, "tests", "", "comma-separated `list` of the pgbench tests to run, by client count (c=1,c=8,c=64,C; default all)")
	flag.StringVar(&cfg.paths, "paths", "", "comma-separated `list` of the paths to run (direct, PgBouncer, PgBouncer cold, pglink, PgBouncer TLS, PgBouncer TLS cold, pglink TLS; default all)")
	flag.BoolVar(&cfg.perf, "perf", false, "count each proxy's system calls, context switches and CPU migrations per transaction with perf stat")
	flag.BoolVar(&cfg.short, "pgbench-only", false, "run the pgbench tests only: no toggles, no memory measurement, no goals")
	flag.BoolVar(&cfg.hold, "hold", false, "set everything up, print how to reach each path (for pgbench, perf or strace by hand), and wait for Ctrl-C")
	flag.IntVar(&cfg.loops, "event-loops", 0, "pglink's event loops (pglink serve --event-loops; 0: its default, one per CPU but one)")
	flag.Parse()
	if cfg.rounds < 1 || cfg.toggles < 1 || cfg.sessions < 1 || cfg.duration < time.Second || cfg.churn < time.Second {
		fmt.Fprintln(os.Stderr, "bench: -rounds, -toggles and -sessions must be at least 1, -duration and -churn at least 1s")
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// A closed stdout (`| head`) must not kill the bench before it has stopped its children.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	err := run(ctx, cfg)
	stop()
	switch {
	case err == nil:
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(os.Stderr, "bench: interrupted")
		os.Exit(130)
	default:
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// run sets everything up, measures, prints, and tears everything down.
func run(ctx context.Context, cfg config) (err error) {
	started := time.Now()
	fmt.Printf("%d CPUs, load average %s at the start\n", runtime.NumCPU(), loadAvg())
	env, err := setUp(ctx, cfg)
	if env != nil {
		defer func() {
			if cerr := env.close(); cerr != nil && err == nil {
				err = cerr
			}
		}()
	}
	if err != nil {
		return err
	}
	loops := "default event loops"
	if cfg.loops > 0 {
		loops = fmt.Sprintf("%d event loops", cfg.loops)
	}
	fmt.Printf("pglink %s (pid %d, %s), server %q: PostgreSQL %s, socket %s\n",
		env.pglink.bin, env.pglink.pid(), loops, env.serverName, env.pgVersion, env.socketDir)
	fmt.Printf("private endpoint %s; PgBouncer %s (session mode, pool %d, client TLS prefer) on %s\n\n",
		env.peAddr, env.bouncer.version, bouncerPool, env.bouncer.addr)

	if cfg.hold {
		pm, _ := postmasterPID(env.socketDir)
		peHost, pePort, _ := net.SplitHostPort(env.peAddr)
		bHost, bPort, _ := net.SplitHostPort(env.bouncer.addr)
		fmt.Printf("holding: pglink pid %d, PgBouncer pid %d, postmaster pid %d; user %s, password %s\n"+
			"  %s/pgbench -i -s %d -h %s -U %s postgres   (once)\n"+
			"  pglink:    %s/pgbench -S -M simple -c 8 -j 2 -T 8 -h %s -p %s -U %s postgres   (PGSSLMODE=require for TLS)\n"+
			"  PgBouncer: %s/pgbench -S -M simple -c 8 -j 2 -T 8 -h %s -p %s -U %s postgres\n"+
			"  direct:    %s/pgbench -S -M simple -c 8 -j 2 -T 8 -h %s -U %s postgres\nCtrl-C ends it.\n",
			env.pglink.pid(), env.bouncer.pid(), pm, adminLogin, adminPassword,
			cfg.pgBin, cfg.scale, env.socketDir, adminLogin,
			cfg.pgBin, peHost, pePort, adminLogin, cfg.pgBin, bHost, bPort, adminLogin, cfg.pgBin, env.socketDir, adminLogin)
		<-ctx.Done()
		return nil
	}
	bench, err := runPgbench(ctx, env, cfg)
	if err != nil {
		return err
	}
	bench.print()
	if cfg.short {
		fmt.Printf("\ntotal run time %v; load average %s at the end\n", time.Since(started).Round(time.Second), loadAvg())
		return nil
	}

	tog, err := runToggles(ctx, env, cfg.toggles)
	if err != nil {
		return err
	}
	tog.print()

	mem, err := runMemory(ctx, env, cfg.sessions)
	if err != nil {
		return err
	}
	mem.print()

	printGoals(bench, tog, mem)
	fmt.Printf("\ntotal run time %v; load average %s at the end\n", time.Since(started).Round(time.Second), loadAvg())
	return nil
}
