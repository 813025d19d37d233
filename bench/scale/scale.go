package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/bench/internal/armclient"
	"github.com/pglink/pglink/internal/pgtest"
	"github.com/pglink/pglink/internal/server"
)

// lagGoal is the change-feed lag p99 the scale-out issue asks for.
const lagGoal = 50 * time.Millisecond

// config is what one run of the benchmark does.
type config struct {
	resources  int           // resource groups and servers stored
	groups     int           // resource groups
	rate       int           // API requests per second, in all
	duration   time.Duration // measured load per setup
	warmup     time.Duration // load before measuring
	replicas   int           // on the PostgreSQL store
	lagRate    int           // change-feed writes per second
	lagAlone   time.Duration // change-feed writes after the load, with no API requests
	durable    bool          // PostgreSQL with fsync on
	cpuProfile string        // prefix of CPU profile files, "" for none
	out        io.Writer     // the report
	log        *slog.Logger  // the replicas' logs
}

func defaultConfig() config {
	return config{resources: 100000, groups: 100, rate: 200, duration: 10 * time.Second, warmup: 2 * time.Second,
		replicas: 3, lagRate: 20, lagAlone: 5 * time.Second, durable: true, out: io.Discard, log: slog.New(slog.DiscardHandler)}
}

// serialRequests is how many requests each setup is sent one at a time before the load.
const serialRequests = 200

// errNoPostgres wraps the failure to start the PostgreSQL cluster.
var errNoPostgres = errors.New("no PostgreSQL cluster")

// setupResult is what the benchmark measured of one setup.
type setupResult struct {
	name     string
	replicas int
	seed     time.Duration // to seed the store
	serial   loadResult    // serialRequests requests one at a time, before the load
	load     loadResult
	lag      lagResult // while the load runs
	lagAlone lagResult // after it, with no API requests
	loadAvg  [2]string // /proc/loadavg before and after the measured load
}

// run measures the SQLite setup, then the PostgreSQL one, and prints the report.
func run(ctx context.Context, cfg config) error {
	if cfg.rate < kinds || cfg.lagRate < 1 || cfg.replicas < 1 || cfg.duration <= 0 {
		return fmt.Errorf("want -rate >= %d, -lag-rate >= 1, -replicas >= 1 and a positive -duration", kinds)
	}
	if _, err := newResourceSet("", cfg.resources, cfg.groups); err != nil {
		return err
	}
	fmt.Fprintf(cfg.out, "pglink scale-out: %d resources (%d resource groups, %d flexible servers), %d req/s open loop for %v per setup "+
		"(GET of a server and a LIST page of a group's servers in turn), %d change-feed writes/s\n",
		cfg.resources, cfg.groups, cfg.resources-cfg.groups, cfg.rate, cfg.duration, cfg.lagRate)
	fmt.Fprintf(cfg.out, "machine: %d CPUs, load average %s\n", runtime.NumCPU(), loadAvg())

	sqlite, err := runSetup(ctx, cfg, "SQLite", 1, "")
	if err != nil {
		return fmt.Errorf("SQLite setup: %w", err)
	}
	settings := map[string]string(nil)
	if cfg.durable {
		settings = pgtest.Durable
	}
	cluster, err := pgtest.StartWith(settings)
	if err != nil {
		return fmt.Errorf("%w: %w", errNoPostgres, err)
	}
	defer func() {
		if err := cluster.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop PostgreSQL:", err)
		}
	}()
	pg, err := runSetup(ctx, cfg, "PostgreSQL", cfg.replicas, cluster.URL("postgres"))
	if err != nil {
		return fmt.Errorf("PostgreSQL setup: %w", err)
	}
	return report(cfg, []setupResult{sqlite, pg})
}

// runSetup starts replicas pglink replicas on storeURL ("" for SQLite in the first one's data
// dir) with the records engine, seeds the resources, and measures the load and the lag.
func runSetup(ctx context.Context, cfg config, name string, replicas int, storeURL string) (res setupResult, err error) {
	res = setupResult{name: name, replicas: replicas}
	tmp, err := os.MkdirTemp("", "pglink-scale-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(tmp)
	var srvs []*server.Server
	defer func() {
		for i := len(srvs) - 1; i >= 0; i-- {
			if cerr := srvs[i].Close(); cerr != nil && err == nil && ctx.Err() == nil {
				err = fmt.Errorf("close replica %d: %w", i, cerr)
			}
		}
	}()
	var cas []string
	for i := range replicas {
		sc := server.DefaultConfig()
		sc.DataDir = filepath.Join(tmp, fmt.Sprintf("replica%d", i))
		sc.Listen, sc.Engine, sc.Store, sc.DNSListen = "127.0.0.1:0", "records", storeURL, ""
		sc.NodeName = fmt.Sprintf("replica%d", i)
		sc.Logger = cfg.log.With("replica", i)
		if err := os.Mkdir(sc.DataDir, 0o700); err != nil {
			return res, err
		}
		s, err := server.Start(ctx, sc)
		if err != nil {
			return res, fmt.Errorf("start replica %d: %w", i, err)
		}
		srvs = append(srvs, s)
		cas = append(cas, s.Bootstrap().CACertFile)
	}
	// Idle connections are kept for every request in flight: under overload a client that
	// closes and reopens connections spends the CPU the replicas need on TLS handshakes.
	hc, err := armclient.HTTPClient(4*cfg.rate, cas...)
	if err != nil {
		return res, err
	}
	defer hc.CloseIdleConnections()
	var clients []*armclient.Client
	for _, s := range srvs {
		c, err := armclient.New(ctx, hc, s.Bootstrap())
		if err != nil {
			return res, err
		}
		clients = append(clients, c)
	}
	set, _ := newResourceSet(srvs[0].Bootstrap().SubscriptionID, cfg.resources, cfg.groups)
	tmpl, err := makeTemplates(ctx, clients[0], srvs[0].Store(), set)
	if err != nil {
		return res, err
	}
	t0 := time.Now()
	if err := seed(ctx, srvs[0].Store(), set, tmpl); err != nil {
		return res, err
	}
	settled := ""
	if storeURL != "" {
		if err := settle(ctx, storeURL); err != nil {
			return res, err
		}
		settled = " and settled (VACUUM ANALYZE, CHECKPOINT)"
	}
	res.seed = time.Since(t0)
	fmt.Fprintf(cfg.out, "%s: %d replica(s) up, %d resources seeded%s in %v\n", name, replicas, cfg.resources, settled, res.seed.Round(time.Millisecond))

	pageSize := server.DefaultConfig().PageSize
	for _, c := range clients {
		if err := check(ctx, c, set, pageSize); err != nil {
			return res, err
		}
	}
	res.serial = serial(ctx, clients, set, pageSize, serialRequests, rand.New(rand.NewPCG(3, 3)))
	if cfg.warmup > 0 {
		load(ctx, clients, set, pageSize, cfg.rate, cfg.warmup, rand.New(rand.NewPCG(2, 2)))
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}

	// The change feed: writes through replica A, shown by replica B (A itself with one replica).
	a, b := srvs[0].Store(), srvs[min(1, len(srvs)-1)].Store()
	probe := tmpl.groupCopy(set, "scale-lag-probe")
	lagCtx, stopLag := context.WithCancel(ctx)
	lagDone := make(chan lagResult, 1)
	go func() { lagDone <- probeLag(lagCtx, a, b, probe, cfg.lagRate) }()

	if cfg.cpuProfile != "" {
		f, err := os.Create(cfg.cpuProfile + "-" + strings.ToLower(name) + ".pprof")
		if err != nil {
			stopLag()
			<-lagDone
			return res, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			stopLag()
			<-lagDone
			return res, err
		}
	}
	res.loadAvg[0] = loadAvg()
	res.load = load(ctx, clients, set, pageSize, cfg.rate, cfg.duration, rand.New(rand.NewPCG(1, 1)))
	res.loadAvg[1] = loadAvg()
	stopLag()
	res.lag = <-lagDone
	if cfg.cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	if cfg.lagAlone > 0 && ctx.Err() == nil {
		actx, cancel := context.WithTimeout(ctx, cfg.lagAlone)
		res.lagAlone = probeLag(actx, a, b, probe, cfg.lagRate)
		cancel()
	}
	return res, ctx.Err()
}

// settle brings the PostgreSQL database at url to the state a store that has held its resources
// for a while is in, so the load meets that rather than the aftermath of the bulk load: the
// planner's statistics, which autovacuum would gather in its own time (until then PostgreSQL
// may plan a group's list as a scan of every server), and no checkpoint pending.
func settle(ctx context.Context, url string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("settle the store: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for _, q := range []string{`VACUUM ANALYZE`, `CHECKPOINT`} {
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("settle the store: %s: %w", q, err)
		}
	}
	return nil
}

// check asks c for a server and the first page of group 0's servers, and checks that the page
// is full and its nextLink is the one listPath makes.
func check(ctx context.Context, c *armclient.Client, s resourceSet, pageSize int) error {
	if _, err := c.Expect(ctx, "GET", s.getPath(s.servers-1), nil, 200); err != nil {
		return fmt.Errorf("check: %w", err)
	}
	b, err := c.Expect(ctx, "GET", s.listPath(0, 0, pageSize), nil, 200)
	if err != nil {
		return fmt.Errorf("check: %w", err)
	}
	var page struct {
		Value    []struct{ Name string } `json:"value"`
		NextLink string                  `json:"nextLink"`
	}
	if err := json.Unmarshal(b, &page); err != nil {
		return fmt.Errorf("check: list: %w", err)
	}
	want := min(pageSize, s.inGroup(0))
	if len(page.Value) != want {
		return fmt.Errorf("check: first page of %s holds %d servers; want %d", s.groupName(0), len(page.Value), want)
	}
	if s.pages(0, pageSize) > 1 && page.NextLink != c.Base+s.listPath(0, 1, pageSize) {
		return fmt.Errorf("check: nextLink %s; want %s", page.NextLink, c.Base+s.listPath(0, 1, pageSize))
	}
	return nil
}

// loadAvg returns the first three fields of /proc/loadavg, or "unknown".
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}

// maxRSS returns the peak resident set size of this process in MiB, or 0 if unknown.
func maxRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Maxrss / 1024 // KiB on Linux
}

// report prints the tables and the verdict on the lag, and returns an error if any request or
// change-feed write failed.
func report(cfg config, results []setupResult) error {
	w := tabwriter.NewWriter(cfg.out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(cfg.out)
	fmt.Fprintln(w, "setup\treplicas\trequest\terrors\tn\tp50\tp90\tp99\tmax\tload avg before\tafter\t")
	failed := 0
	var firsts []string
	for _, r := range results {
		for k := range kinds {
			fmt.Fprintf(w, "%s\t%d\t%s\t%d\t%s\t%s\t%s\t\n", r.name, r.replicas, kindNames[k], r.load.errors[k], summary(r.load.lat[k]),
				r.loadAvg[0], r.loadAvg[1])
			failed += r.load.errors[k]
		}
		if r.load.first != "" {
			firsts = append(firsts, r.name+": "+r.load.first)
		}
	}
	w.Flush()
	fmt.Fprintln(cfg.out)
	fmt.Fprintf(cfg.out, "the same requests one at a time (%d, before the load): what a request costs without waiting for others\n", serialRequests)
	fmt.Fprintln(w, "setup\treplicas\trequest\terrors\tn\tp50\tp90\tp99\tmax\t")
	for _, r := range results {
		for k := range kinds {
			fmt.Fprintf(w, "%s\t%d\t%s\t%d\t%s\t\n", r.name, r.replicas, kindNames[k], r.serial.errors[k], summary(r.serial.lat[k]))
			failed += r.serial.errors[k]
		}
		if r.serial.first != "" {
			firsts = append(firsts, r.name+" (one at a time): "+r.serial.first)
		}
	}
	w.Flush()
	fmt.Fprintln(cfg.out)
	fmt.Fprintln(w, "change feed\twhen\tpath\tn\tp50\tp90\tp99\tmax\t")
	var verdicts []string
	for _, r := range results {
		for _, m := range []struct {
			when string
			lag  lagResult
		}{{"under the load", r.lag}, {"alone", r.lagAlone}} {
			path := "A → B"
			if r.replicas == 1 {
				path = "A → A"
			}
			if m.when == "alone" && len(m.lag.fromAck) == 0 && m.lag.failed == 0 {
				continue
			}
			fmt.Fprintf(w, "%s\t%s\t%s, from the start of A's Update\t%s\t\n", r.name, m.when, path, summary(m.lag.fromCall))
			fmt.Fprintf(w, "%s\t%s\t%s, from A's Update returning\t%s\t\n", r.name, m.when, path, summary(m.lag.fromAck))
			fmt.Fprintf(w, "%s\t%s\t%s, Notify's first signal, from the start of A's Update\t%s\t\n", r.name, m.when, path, summary(m.lag.signal))
			fmt.Fprintf(w, "%s\t%s\tA's Update (the write itself)\t%s\t\n", r.name, m.when, summary(m.lag.write))
			failed += m.lag.failed
			if m.lag.first != "" {
				firsts = append(firsts, r.name+" change feed "+m.when+": "+m.lag.first)
			}
			if r.replicas == 1 {
				continue
			}
			// A commit becomes visible just before PostgreSQL acknowledges it, so the time from
			// A's Update returning is the lag of the feed; the time from the start of the Update
			// adds the write itself (the writers' lock, the statements, the WAL flush).
			p99 := quantile(m.lag.fromAck, 0.99) // summary sorted it
			verdict := "MISS"
			if len(m.lag.fromAck) > 0 && p99 < lagGoal {
				verdict = "PASS"
			}
			verdicts = append(verdicts, fmt.Sprintf("%s change-feed lag p99 %s (goal < %v) %s: a commit acknowledged to replica A until replica B's Notify fired "+
				"and B's store showed its revision, %s with %d replicas, %d writes (%d shown by B before A's Update returned, counted as 0); "+
				"p99 %s counting from the start of A's Update, the write itself included",
				verdict, ms(p99), lagGoal, m.when, r.name, r.replicas, len(m.lag.fromAck), m.lag.early, ms(quantile(m.lag.fromCall, 0.99))))
		}
	}
	w.Flush()
	fmt.Fprintln(cfg.out)
	for _, r := range results {
		if r.load.late > 10*time.Millisecond {
			fmt.Fprintf(cfg.out, "note: %s: the load generator fell up to %v behind schedule (counted in the latencies)\n", r.name, r.load.late.Round(time.Millisecond))
		}
	}
	for _, v := range verdicts {
		fmt.Fprintln(cfg.out, v)
	}
	fmt.Fprintf(cfg.out, "benchmark process peak RSS %d MiB; load average now %s\n", maxRSS(), loadAvg())
	for _, f := range firsts {
		fmt.Fprintln(cfg.out, "first failure:", f)
	}
	if failed > 0 {
		return fmt.Errorf("%d requests or change-feed writes failed", failed)
	}
	return nil
}
