package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// path is one way to the server's PostgreSQL.
type path struct {
	name string
	host string // unix socket directory or IP address
	port string
	pid  int // the proxy's process, whose CPU time is measured; 0 for none
}

// test is one pgbench configuration.
type test struct {
	name string
	args []string // after -S -M simple; -T is added
	long bool     // -T is the -S duration, else the churn duration
}

var tests = []test{
	{"-S c=1", []string{"-c", "1", "-j", "1"}, true},
	{"-S c=8", []string{"-c", "8", "-j", "2"}, true},
	{"-S -C c=4", []string{"-C", "-c", "4", "-j", "2"}, false},
}

// sample is what one pgbench run reports.
type sample struct {
	tps     float64
	latency float64 // average latency, ms
	connect float64 // average connection time, ms (-C)
	txns    int64   // transactions processed
	proxy   usage   // what the proxy used during the run
}

// cpuPerTx is the proxy's CPU time per transaction, µs.
func cpuPerTx(s sample) float64 { return perTx(s, float64(s.proxy.cpu.Microseconds())) }

// csPerTx is the proxy's context switches per transaction.
func csPerTx(s sample) float64 { return perTx(s, float64(s.proxy.switches)) }

func perTx(s sample, x float64) float64 {
	if s.txns == 0 {
		return 0
	}
	return x / float64(s.txns)
}

// benchResult holds every sample, by test and path, in round order.
type benchResult struct {
	rounds   int
	duration time.Duration
	churn    time.Duration
	scale    int
	paths    []path
	samples  map[string]map[string][]sample // test name -> path name -> rounds
}

// median of the field f of the samples of (t, p).
func (r *benchResult) median(t, p string, f func(sample) float64) float64 {
	var xs []float64
	for _, s := range r.samples[t][p] {
		xs = append(xs, f(s))
	}
	return median(xs)
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func tps(s sample) float64      { return s.tps }
func latency(s sample) float64  { return s.latency }
func connTime(s sample) float64 { return s.connect }

// runPgbench initializes the pgbench tables through the unix socket, then runs every test on
// every path, rounds interleaved: direct, PgBouncer, pglink, direct, …
func runPgbench(ctx context.Context, e *env, cfg config) (*benchResult, error) {
	pgbench := filepath.Join(cfg.pgBin, "pgbench")
	peHost, pePort, _ := net.SplitHostPort(e.peAddr)
	bHost, bPort, _ := net.SplitHostPort(e.bouncer.addr)
	r := &benchResult{rounds: cfg.rounds, duration: cfg.duration, churn: cfg.churn, scale: cfg.scale,
		paths: []path{
			{"direct", e.socketDir, "5432", 0},
			{"PgBouncer", bHost, bPort, e.bouncer.pid()},
			{"pglink", peHost, pePort, e.pglink.pid()},
		},
		samples: map[string]map[string][]sample{},
	}
	began := time.Now()
	if _, err := runOne(ctx, pgbench, r.paths[0], "-i", "-q", "-s", strconv.Itoa(cfg.scale)); err != nil {
		return nil, err
	}
	fmt.Printf("pgbench -i -s %d through the unix socket: %v\n", cfg.scale, time.Since(began).Round(time.Millisecond))
	// What each proxy uses when idle (pglink's control plane polls) is subtracted from what it
	// uses during a run, so that the per-transaction figures are the relay's work.
	idle := map[int]usage{}
	before := map[int]usage{}
	for _, p := range r.paths {
		before[p.pid] = procUsage(p.pid)
	}
	const idleFor = 3 * time.Second
	time.Sleep(idleFor)
	for _, p := range r.paths[1:] {
		idle[p.pid] = procUsage(p.pid).minus(before[p.pid])
		fmt.Printf("%s idle for %v: %v CPU, %d context switches\n", p.name, idleFor, idle[p.pid].cpu, idle[p.pid].switches)
	}
	perRound := time.Duration(len(r.paths)) * (2*cfg.duration + cfg.churn)
	fmt.Printf("pgbench: %d rounds of %d runs, about %v\n", cfg.rounds, len(tests)*len(r.paths), time.Duration(cfg.rounds)*perRound)
	for round := 1; round <= cfg.rounds; round++ {
		for _, t := range tests {
			d := cfg.churn
			if t.long {
				d = cfg.duration
			}
			for _, p := range r.paths {
				args := append([]string{"-S", "-M", "simple", "-T", strconv.Itoa(int(d.Seconds()))}, t.args...)
				var prof string
				if p.name == "pglink" {
					var err error
					if prof, err = e.prof.start(fmt.Sprintf("r%d %s", round, t.name)); err != nil {
						return nil, err
					}
				}
				u0, t0 := procUsage(p.pid), time.Now()
				out, err := runOne(ctx, pgbench, p, args...)
				if p.name == "pglink" {
					e.prof.stop()
				}
				if err != nil {
					return nil, err
				}
				s, err := parse(out)
				if err != nil {
					return nil, fmt.Errorf("pgbench %s via %s: %w\n%s", t.name, p.name, err, out)
				}
				s.proxy = procUsage(p.pid).minus(u0).minus(idle[p.pid].scale(time.Since(t0), idleFor))
				if r.samples[t.name] == nil {
					r.samples[t.name] = map[string][]sample{}
				}
				r.samples[t.name][p.name] = append(r.samples[t.name][p.name], s)
				fmt.Printf("  round %d %-10s %-10s %9.0f TPS %8.3f ms", round, t.name, p.name, s.tps, s.latency)
				if s.connect > 0 {
					fmt.Printf("  connect %.3f ms", s.connect)
				}
				if p.pid != 0 {
					fmt.Printf("  proxy per tx: %.1f µs CPU, %.1f context switches", cpuPerTx(s), csPerTx(s))
				}
				if prof != "" {
					fmt.Printf("  profile %s", prof)
				}
				fmt.Printf("  (load %s)", loadAvg())
				fmt.Println()
			}
		}
	}
	return r, nil
}

// runOne runs pgbench against p as the administrator, without TLS (the unix socket and
// PgBouncer have none; pglink's gateway would offer it), and returns its output.
func runOne(ctx context.Context, pgbench string, p path, args ...string) (string, error) {
	args = append(append([]string{"-h", p.host, "-p", p.port, "-U", adminLogin}, args...), "postgres")
	cmd := exec.CommandContext(ctx, pgbench, args...)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+adminPassword, "PGSSLMODE=disable")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return "", ctx.Err()
	}
	if err != nil {
		return "", fmt.Errorf("pgbench %s via %s: %w\n%s", strings.Join(args, " "), p.name, err, out)
	}
	return string(out), nil
}

var (
	reTPS     = regexp.MustCompile(`(?m)^tps = ([0-9.]+)`)
	reLatency = regexp.MustCompile(`(?m)^latency average = ([0-9.]+) ms`)
	reConnect = regexp.MustCompile(`(?m)^average connection time = ([0-9.]+) ms`)
	reFailed  = regexp.MustCompile(`(?m)^number of failed transactions: ([0-9]+)`)
	reTxns    = regexp.MustCompile(`(?m)^number of transactions actually processed: ([0-9]+)`)
)

// parse reads pgbench's summary.
func parse(out string) (sample, error) {
	var s sample
	m := reTPS.FindStringSubmatch(out)
	if m == nil {
		return s, fmt.Errorf("no tps line")
	}
	s.tps, _ = strconv.ParseFloat(m[1], 64)
	if m := reLatency.FindStringSubmatch(out); m != nil {
		s.latency, _ = strconv.ParseFloat(m[1], 64)
	}
	if m := reConnect.FindStringSubmatch(out); m != nil {
		s.connect, _ = strconv.ParseFloat(m[1], 64)
	}
	if m := reTxns.FindStringSubmatch(out); m != nil {
		s.txns, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := reFailed.FindStringSubmatch(out); m != nil && m[1] != "0" {
		return s, fmt.Errorf("%s failed transactions", m[1])
	}
	return s, nil
}

// print writes the table of medians and ratios.
func (r *benchResult) print() {
	fmt.Printf("\npgbench -S -M simple, scale %d, sslmode=disable; -S runs %v, -C runs %v; median of %d interleaved rounds\n",
		r.scale, r.duration, r.churn, r.rounds)
	fmt.Printf("%-10s %-10s %10s %10s %9s %9s %11s %11s %10s  %s\n",
		"test", "path", "TPS", "latency", "TPS/dir", "TPS/bnc", "lat-dir", "lat-bnc", "connect", "proxy per tx: CPU, context switches")
	for _, t := range tests {
		dTPS, bTPS := r.median(t.name, "direct", tps), r.median(t.name, "PgBouncer", tps)
		dLat, bLat := r.median(t.name, "direct", latency), r.median(t.name, "PgBouncer", latency)
		for _, p := range r.paths {
			pt, pl := r.median(t.name, p.name, tps), r.median(t.name, p.name, latency)
			conn := "-"
			if c := r.median(t.name, p.name, connTime); c > 0 {
				conn = fmt.Sprintf("%.3f ms", c)
			}
			cpu := "-"
			if p.pid != 0 {
				cpu = fmt.Sprintf("%7.1f µs %5.1f", r.median(t.name, p.name, cpuPerTx), r.median(t.name, p.name, csPerTx))
			}
			fmt.Printf("%-10s %-10s %10.0f %7.3f ms %8.1f%% %8.1f%% %+8.1f µs %+8.1f µs %10s  %s\n",
				t.name, p.name, pt, pl, 100*pt/dTPS, 100*pt/bTPS, 1000*(pl-dLat), 1000*(pl-bLat), conn, cpu)
		}
	}
	added := r.addedLatency("pglink")
	fmt.Printf("\nadded latency per query at 1 client, median latency minus direct's: pglink %+.1f µs, PgBouncer %+.1f µs\n",
		added, r.addedLatency("PgBouncer"))
	var perRound []string
	for i := range r.samples["-S c=1"]["pglink"] {
		d := 1000 * (r.samples["-S c=1"]["pglink"][i].latency - r.samples["-S c=1"]["direct"][i].latency)
		perRound = append(perRound, fmt.Sprintf("%+.1f", d))
	}
	fmt.Printf("  pglink − direct per round: %s µs\n", strings.Join(perRound, ", "))
	ct := "-S -C c=4"
	fmt.Printf("added connection setup at 4 clients (-C, average connection time minus direct's): pglink %+.3f ms, PgBouncer %+.3f ms\n",
		r.median(ct, "pglink", connTime)-r.median(ct, "direct", connTime), r.median(ct, "PgBouncer", connTime)-r.median(ct, "direct", connTime))
}

// addedLatency is the median 1-client latency of path p minus direct's, in µs.
func (r *benchResult) addedLatency(p string) float64 {
	return 1000 * (r.median("-S c=1", p, latency) - r.median("-S c=1", "direct", latency))
}

// usage is what a process has used so far: CPU time and context switches of all its threads.
type usage struct {
	cpu      time.Duration
	switches int64
}

func (u usage) minus(v usage) usage { return usage{u.cpu - v.cpu, u.switches - v.switches} }

// scale returns u, measured over period, as over d.
func (u usage) scale(d, period time.Duration) usage {
	f := float64(d) / float64(period)
	return usage{time.Duration(float64(u.cpu) * f), int64(float64(u.switches) * f)}
}

// procUsage reads pid's usage from /proc (zero for pid 0; missing parts stay zero).
func procUsage(pid int) usage {
	var u usage
	if pid == 0 {
		return u
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		// Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
		i := strings.LastIndexByte(string(b), ')')
		if f := strings.Fields(string(b)[i+1:]); len(f) >= 13 {
			ut, _ := strconv.ParseInt(f[11], 10, 64)
			st, _ := strconv.ParseInt(f[12], 10, 64)
			u.cpu = time.Duration(ut+st) * time.Second / clockTicks
		}
	}
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			k, v, _ := strings.Cut(line, ":")
			if k == "voluntary_ctxt_switches" || k == "nonvoluntary_ctxt_switches" {
				n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				u.switches += n
			}
		}
	}
	return u
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times: 100 on Linux.
const clockTicks = 100

// loadAvg is the 1-minute load average: other work on the machine skews every number here.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}
