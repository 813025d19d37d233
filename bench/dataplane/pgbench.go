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
	"syscall"
	"time"
)

// path is one way to the server's PostgreSQL.
type path struct {
	name    string
	host    string // unix socket directory or IP address
	port    string
	sslmode string // disable or require
	pid     int    // the proxy's process, whose CPU time is measured; 0 for none
	cold    bool   // PgBouncer with its server connections closed before the run, and no warm-up
	go_     bool   // a Go process: its sysmon thread's wake-ups are counted
}

// test is one pgbench configuration.
type test struct {
	name    string
	args    []string // after -S -M simple; -T is added
	clients int
	churn   bool // -C: a new connection per transaction
}

var tests = []test{
	{"-S c=1", []string{"-c", "1", "-j", "1"}, 1, false},
	{"-S c=8", []string{"-c", "8", "-j", "2"}, 8, false},
	{"-S c=64", []string{"-c", "64", "-j", "2"}, 64, false},
	{"-S -C c=4", []string{"-C", "-c", "4", "-j", "2"}, 4, true},
}

// The paths' names.
const (
	pDirect      = "direct"
	pBouncer     = "PgBouncer"
	pBouncerCold = "PgBouncer cold"
	pPglink      = "pglink"
	pBouncerTLS  = "PgBouncer TLS"
	pBouncerTLSc = "PgBouncer TLS cold"
	pPglinkTLS   = "pglink TLS"
)

// sample is what one pgbench run reports.
type sample struct {
	tps     float64
	latency float64 // average latency, ms
	connect float64 // average connection time, ms (-C)
	txns    int64   // transactions processed
	proxy   usage   // what the proxy used during the run
	sysmon  float64 // wake-ups per second of the proxy's sysmon thread (Go proxies)
	rss     int64   // the proxy's VmRSS at the end of the run, KiB
	host    hostCPU // what every CPU of the host did during the run
	client  usage   // what pgbench used
	pg      usage   // what the server's PostgreSQL used (postmaster, backends, background processes)
}

// hostCPU is the host's CPU time during a run, from /proc/stat, over all CPUs: busy (user,
// nice, system, irq, softirq), idle (idle, iowait) and steal (time a hypervisor gave to
// other guests: a noisy neighbour, which makes runs of a VM incomparable).
type hostCPU struct{ busy, idle, steal time.Duration }

// readHostCPU reads the host's CPU times so far (zero if /proc/stat cannot be read).
func readHostCPU() hostCPU {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return hostCPU{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal …
	if len(f) < 9 || f[0] != "cpu" {
		return hostCPU{}
	}
	tick := func(i int) time.Duration {
		n, _ := strconv.ParseInt(f[i], 10, 64)
		return time.Duration(n) * time.Second / clockTicks
	}
	return hostCPU{busy: tick(1) + tick(2) + tick(3) + tick(6) + tick(7), idle: tick(4) + tick(5), steal: tick(8)}
}

func (h hostCPU) minus(o hostCPU) hostCPU {
	return hostCPU{h.busy - o.busy, h.idle - o.idle, h.steal - o.steal}
}

// stealShare is the share of the host's CPU time stolen by the hypervisor during the run, %.
func stealShare(s sample) float64 {
	if all := s.host.busy + s.host.idle + s.host.steal; all > 0 {
		return 100 * float64(s.host.steal) / float64(all)
	}
	return 0
}

// hostPerTx is the host's busy CPU time per transaction, µs: the proxy's, the clients' and
// PostgreSQL's together.
func hostPerTx(s sample) float64 { return perTx(s, float64(s.host.busy.Microseconds())) }

// pgPerTx is what the server's PostgreSQL used per transaction, µs.
func pgPerTx(s sample) float64 { return perTx(s, float64(s.pg.cpu.Microseconds())) }

// clientPerTx is pgbench's CPU time per transaction, µs.
func clientPerTx(s sample) float64 { return perTx(s, float64(s.client.cpu.Microseconds())) }

// idleShare is the share of the host's CPU time that was idle during the run, %.
func idleShare(s sample) float64 {
	if all := s.host.busy + s.host.idle + s.host.steal; all > 0 {
		return 100 * float64(s.host.idle) / float64(all)
	}
	return 0
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
	warmup   time.Duration
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

// ratio is the median over the rounds of f(p)/f(q) within each round: rounds are interleaved,
// so that the other load on the machine affects both sides of a ratio alike.
func (r *benchResult) ratio(t, p, q string, f func(sample) float64) float64 {
	ps, qs := r.samples[t][p], r.samples[t][q]
	var xs []float64
	for i := range min(len(ps), len(qs)) {
		if d := f(qs[i]); d != 0 {
			xs = append(xs, f(ps[i])/d)
		}
	}
	return median(xs)
}

// diff is the median over the rounds of f(p)-f(q) within each round.
func (r *benchResult) diff(t, p, q string, f func(sample) float64) float64 {
	ps, qs := r.samples[t][p], r.samples[t][q]
	var xs []float64
	for i := range min(len(ps), len(qs)) {
		xs = append(xs, f(ps[i])-f(qs[i]))
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
func sysmon(s sample) float64   { return s.sysmon }
func rssMiB(s sample) float64   { return float64(s.rss) / 1024 }

// runPgbench initializes the pgbench tables through the unix socket, then runs every test on
// every path, rounds interleaved (in runOrder): each
// run but a cold one is measured after its own first -warmup seconds (warmProgress). PgBouncer's
// pool is emptied after each of its runs, so that 64 clients on the next path find
// PostgreSQL's max_connections (100) free.
func runPgbench(ctx context.Context, e *env, cfg config) (*benchResult, error) {
	pgbench := filepath.Join(cfg.pgBin, "pgbench")
	peHost, pePort, _ := net.SplitHostPort(e.peAddr)
	bHost, bPort, _ := net.SplitHostPort(e.bouncer.addr)
	bp, pp := e.bouncer.pid(), e.pglink.pid()
	r := &benchResult{rounds: cfg.rounds, duration: cfg.duration, warmup: cfg.warmup, churn: cfg.churn, scale: cfg.scale,
		paths: []path{
			{name: pDirect, host: e.socketDir, port: "5432", sslmode: "disable"},
			{name: pBouncer, host: bHost, port: bPort, sslmode: "disable", pid: bp},
			{name: pBouncerCold, host: bHost, port: bPort, sslmode: "disable", pid: bp, cold: true},
			{name: pPglink, host: peHost, port: pePort, sslmode: "disable", pid: pp, go_: true},
			{name: pBouncerTLS, host: bHost, port: bPort, sslmode: "require", pid: bp},
			{name: pBouncerTLSc, host: bHost, port: bPort, sslmode: "require", pid: bp, cold: true},
			{name: pPglinkTLS, host: peHost, port: pePort, sslmode: "require", pid: pp, go_: true},
		},
		samples: map[string]map[string][]sample{},
	}
	if cfg.paths != "" {
		want := strings.Split(cfg.paths, ",")
		var keep []path
		for _, p := range r.paths {
			if slices.Contains(want, p.name) {
				keep = append(keep, p)
			}
		}
		if len(keep) != len(want) {
			return nil, fmt.Errorf("-paths %q: unknown or repeated path", cfg.paths)
		}
		r.paths = keep
	}
	// The tests selected by -tests, by client count ("c=8") or "C" for the churn test.
	run := tests
	if cfg.only != "" {
		want := strings.Split(cfg.only, ",")
		run = nil
		for _, t := range tests {
			name := fmt.Sprintf("c=%d", t.clients)
			if t.churn {
				name = "C"
			}
			if slices.Contains(want, name) {
				run = append(run, t)
			}
		}
		if len(run) != len(want) {
			return nil, fmt.Errorf("-tests %q: unknown or repeated test", cfg.only)
		}
	}
	began := time.Now()
	if _, _, err := runOne(ctx, pgbench, path{name: pDirect, host: e.socketDir, port: "5432", sslmode: "disable"}, "-i", "-q", "-s", strconv.Itoa(cfg.scale)); err != nil {
		return nil, err
	}
	fmt.Printf("pgbench -i -s %d through the unix socket: %v\n", cfg.scale, time.Since(began).Round(time.Millisecond))
	pm, err := postmasterPID(e.socketDir)
	if err != nil {
		return nil, err
	}
	sm := newSysmonCounter(pp)
	fmt.Printf("pglink's sysmon thread: %s (%s)\n", sm.tid, sm.how)
	// What each proxy uses when idle (pglink's control plane polls) is subtracted from what it
	// uses during a run, so that the per-transaction figures are the relay's work.
	idle := map[int]usage{}
	before := map[int]usage{}
	for _, pid := range []int{bp, pp} {
		before[pid] = procUsage(pid)
	}
	sm0 := sm.count()
	const idleFor = 3 * time.Second
	time.Sleep(idleFor)
	for _, p := range []struct {
		name string
		pid  int
	}{{pBouncer, bp}, {pPglink, pp}} {
		idle[p.pid] = procUsage(p.pid).minus(before[p.pid])
		fmt.Printf("%s idle for %v: %v CPU, %d context switches\n", p.name, idleFor, idle[p.pid].cpu, idle[p.pid].switches)
	}
	fmt.Printf("pglink's sysmon idle: %.1f wake-ups/s\n", float64(sm.count()-sm0)/idleFor.Seconds())

	runs := 0
	for _, t := range run {
		for _, p := range r.paths {
			if !(t.churn && p.cold) {
				runs++
			}
		}
	}
	perRound := time.Duration(runs) * (cfg.duration + cfg.warmup)
	fmt.Printf("pgbench: %d rounds of %d runs, about %v\n", cfg.rounds, runs, time.Duration(cfg.rounds)*perRound)
	for round := 1; round <= cfg.rounds; round++ {
		for _, t := range run {
			d := cfg.duration
			if t.churn {
				d = cfg.churn
			}
			for _, p := range runOrder(r.paths, round) {
				if t.churn && p.cold {
					continue // PgBouncer keeps its pool through a churn run: cold is warm after the first
				}
				args := append([]string{"-S", "-M", "simple"}, t.args...)
				// Every run but a cold one begins with its warm-up: the same clients, the same
				// sessions, the same PostgreSQL backends, not measured (see warmProgress).
				warm := cfg.warmup
				if p.cold {
					warm = 0
					if err := e.bouncer.emptyPool(ctx, cfg.pgBin); err != nil {
						return nil, err
					}
				}
				args = append(args, "-T", secs(d+warm))
				if warm > 0 {
					args = append(args, "-P", "1")
				}
				bench, err := startPgbench(ctx, pgbench, p, args...)
				if err != nil {
					return nil, err
				}
				if warm > 0 {
					select {
					case <-ctx.Done():
						bench.wait()
						return nil, ctx.Err()
					case <-time.After(warm):
					}
				}
				var prof string
				if p.pid == pp {
					var err error
					if prof, err = e.prof.start(fmt.Sprintf("r%d %s %s", round, t.name, p.name)); err != nil {
						bench.wait()
						return nil, err
					}
				}
				var ps *perfStat
				if cfg.perf && p.pid != 0 {
					var err error
					if ps, err = startPerf(e.work, p.pid); err != nil {
						bench.wait()
						return nil, err
					}
				}
				c0 := procUsage(bench.cmd.Process.Pid)
				u0, s0, t0, h0, pgm := procUsage(p.pid), sm.count(), time.Now(), readHostCPU(), startPgMeter(pm)
				out, client, err := bench.wait()
				client = client.minus(c0)
				took := time.Since(t0)
				host := readHostCPU().minus(h0)
				pgUse := pgm.finish()
				counts := ps.stop()
				if p.pid == pp {
					e.prof.stop()
				}
				if err != nil {
					return nil, err
				}
				if p.pid == bp {
					if err := e.bouncer.emptyPool(ctx, cfg.pgBin); err != nil {
						return nil, err
					}
				}
				s, err := parse(out)
				if err == nil && warm > 0 {
					err = warmProgress(&s, out, warm)
				}
				if err != nil {
					return nil, fmt.Errorf("pgbench %s via %s: %w\n%s", t.name, p.name, err, out)
				}
				s.proxy = procUsage(p.pid).minus(u0).minus(idle[p.pid].scale(took, idleFor))
				s.host, s.client, s.pg = host, client, pgUse
				if p.go_ {
					s.sysmon = float64(sm.count()-s0) / took.Seconds()
				}
				if p.pid != 0 {
					s.rss, _ = rss(p.pid)
				}
				if r.samples[t.name] == nil {
					r.samples[t.name] = map[string][]sample{}
				}
				r.samples[t.name][p.name] = append(r.samples[t.name][p.name], s)
				fmt.Printf("  round %d %-10s %-18s %8.0f TPS %7.3f ms", round, t.name, p.name, s.tps, s.latency)
				if s.connect > 0 {
					fmt.Printf("  connect %.3f ms", s.connect)
				}
				if p.pid != 0 {
					fmt.Printf("  proxy per tx: %.1f µs CPU, %.2f cs", cpuPerTx(s), csPerTx(s))
				}
				if p.go_ {
					fmt.Printf(", sysmon %.0f/s", s.sysmon)
				}
				if prof != "" {
					fmt.Printf("  profile %s", prof)
				}
				fmt.Printf("  host %.1f µs/tx (PostgreSQL %.1f, %.2f cs), %.0f%% idle, %.0f%% steal  (load %s)\n", hostPerTx(s), pgPerTx(s),
					perTx(s, float64(s.pg.switches)), idleShare(s), stealShare(s), loadAvg())
				if l := perfLine(counts, s.txns); l != "" {
					fmt.Printf("      per tx: %s\n", l)
				}
			}
		}
	}
	return r, nil
}

// runOrder is the order of the paths' runs in a round: the runs whose TPS are compared (pglink
// and direct, pglink and PgBouncer, pglink TLS and PgBouncer TLS) next to each other, so that
// the machine's drift over a round (on a VM, ±10 % from minute to minute) falls between them
// as little as it can; and reversed every other round, so that no path always goes first.
func runOrder(paths []path, round int) []path {
	order := []string{pDirect, pPglink, pBouncer, pBouncerCold, pBouncerTLSc, pBouncerTLS, pPglinkTLS}
	var out []path
	for _, name := range order {
		for _, p := range paths {
			if p.name == name {
				out = append(out, p)
			}
		}
	}
	if round%2 == 0 {
		slices.Reverse(out)
	}
	return out
}

func secs(d time.Duration) string { return strconv.Itoa(int(d.Seconds())) }

// running is a pgbench that runs.
type running struct {
	ctx  context.Context
	cmd  *exec.Cmd
	out  strings.Builder
	args []string
	p    path
}

// startPgbench starts pgbench against p as the administrator, with p's sslmode.
func startPgbench(ctx context.Context, pgbench string, p path, args ...string) (*running, error) {
	r := &running{ctx: ctx, p: p, args: append(append([]string{"-h", p.host, "-p", p.port, "-U", adminLogin}, args...), "postgres")}
	r.cmd = exec.CommandContext(ctx, pgbench, r.args...)
	r.cmd.Env = append(os.Environ(), "PGPASSWORD="+adminPassword, "PGSSLMODE="+p.sslmode)
	r.cmd.Stdout, r.cmd.Stderr = &r.out, &r.out
	if err := r.cmd.Start(); err != nil {
		return nil, fmt.Errorf("pgbench via %s: %w", p.name, err)
	}
	return r, nil
}

// wait waits for pgbench to end and returns its output and what it used in all.
func (r *running) wait() (string, usage, error) {
	err := r.cmd.Wait()
	if r.ctx.Err() != nil {
		return "", usage{}, r.ctx.Err()
	}
	if err != nil {
		return "", usage{}, fmt.Errorf("pgbench %s via %s: %w\n%s", strings.Join(r.args, " "), r.p.name, err, r.out.String())
	}
	var u usage
	if ru, ok := r.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		u.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		u.switches = ru.Nvcsw + ru.Nivcsw
	}
	return r.out.String(), u, nil
}

// reProgress matches pgbench's -P 1 lines: the end of the interval, its TPS and its average
// latency.
var reProgress = regexp.MustCompile(`(?m)^progress: ([0-9.]+) s, ([0-9.]+) tps, lat ([0-9.]+) ms`)

// warmProgress replaces s's TPS, latency and transaction count (pgbench's summary, over the
// whole run) with those of the run after its first warm seconds, from its -P 1 lines. The
// warm-up is part of the run, so that it warms what is measured: the clients' sessions and
// the PostgreSQL backends behind them. A fresh backend faults in the shared memory pages it
// touches (about 8 µs each on the development VM, 32,768 pages for 128 MB of shared buffers),
// which costs each path whose backends are new (direct, pglink, PgBouncer cold) seconds of CPU
// that a warm PgBouncer pool has paid in an earlier run.
func warmProgress(s *sample, out string, warm time.Duration) error {
	var txns, latSum float64
	n := 0
	for _, m := range reProgress.FindAllStringSubmatch(out, -1) {
		end, _ := strconv.ParseFloat(m[1], 64)
		if end <= warm.Seconds() {
			continue
		}
		tps, _ := strconv.ParseFloat(m[2], 64)
		lat, _ := strconv.ParseFloat(m[3], 64)
		txns += tps
		latSum += tps * lat
		n++
	}
	if n == 0 || txns == 0 {
		return fmt.Errorf("no progress after the %v warm-up (raise -duration)", warm)
	}
	s.tps, s.latency, s.txns = txns/float64(n), latSum/txns, int64(txns)
	return nil
}

// runOne runs pgbench against p as the administrator, with p's sslmode, and returns its
// output.
// runOne runs pgbench and returns its output and what it used (CPU, context switches).
func runOne(ctx context.Context, pgbench string, p path, args ...string) (string, usage, error) {
	args = append(append([]string{"-h", p.host, "-p", p.port, "-U", adminLogin}, args...), "postgres")
	cmd := exec.CommandContext(ctx, pgbench, args...)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+adminPassword, "PGSSLMODE="+p.sslmode)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return "", usage{}, ctx.Err()
	}
	if err != nil {
		return "", usage{}, fmt.Errorf("pgbench %s via %s: %w\n%s", strings.Join(args, " "), p.name, err, out)
	}
	var u usage
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		u.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		u.switches = ru.Nvcsw + ru.Nivcsw
	}
	return string(out), u, nil
}

var (
	reTPS     = regexp.MustCompile(`(?m)^tps = ([0-9.]+)`)
	reLatency = regexp.MustCompile(`(?m)^latency average = ([0-9.]+) ms`)
	reConnect = regexp.MustCompile(`(?m)^average connection time = ([0-9.]+) ms`)
	reFailed  = regexp.MustCompile(`(?m)^number of failed transactions: ([0-9]+)`)
	reTxns    = regexp.MustCompile(`(?m)^number of transactions actually processed: ([0-9]+)`)
)

// parse reads pgbench's summary. Failed transactions are an error.
func parse(out string) (sample, error) {
	var s sample
	m := reTPS.FindStringSubmatch(out)
	if m == nil {
		if m := reTxns.FindStringSubmatch(out); m != nil && m[1] == "0" {
			return s, fmt.Errorf("no transaction completed: the clients were still connecting when the run ended (raise -duration)")
		}
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

// print writes the table of medians and of medians of per-round ratios.
func (r *benchResult) print() {
	fmt.Printf("\npgbench -S -M simple, scale %d; -S runs measured for %v after their first %v (their warm-up; none for cold), -C runs %v; %d interleaved rounds\n",
		r.scale, r.duration, r.warmup, r.churn, r.rounds)
	fmt.Println("TPS and latency are medians; ratios are medians of per-round ratios; proxy figures are medians per transaction")
	fmt.Printf("%-10s %-18s %9s %10s %8s %8s %8s %10s %10s %9s %8s %s\n",
		"test", "path", "TPS", "latency", "×direct", "×bnc", "×bnc-cold", "connect", "proxy CPU", "cs/tx", "RSS", "sysmon/s")
	for _, t := range tests {
		for _, p := range r.paths {
			if len(r.samples[t.name][p.name]) == 0 {
				continue
			}
			// TLS paths compare with PgBouncer over TLS.
			warm, cold := pBouncer, pBouncerCold
			if p.sslmode == "require" {
				warm, cold = pBouncerTLS, pBouncerTLSc
			}
			ratio := func(q string) string {
				if q == p.name || len(r.samples[t.name][q]) == 0 {
					return "-"
				}
				return fmt.Sprintf("%.3f", r.ratio(t.name, p.name, q, tps))
			}
			conn := "-"
			if c := r.median(t.name, p.name, connTime); c > 0 {
				conn = fmt.Sprintf("%.3f ms", c)
			}
			cpu, cs, mem, sm := "-", "-", "-", "-"
			if p.pid != 0 {
				cpu = fmt.Sprintf("%.1f µs", r.median(t.name, p.name, cpuPerTx))
				cs = fmt.Sprintf("%.2f", r.median(t.name, p.name, csPerTx))
				mem = fmt.Sprintf("%.0f MiB", r.median(t.name, p.name, rssMiB))
			}
			if p.go_ {
				sm = fmt.Sprintf("%.0f", r.median(t.name, p.name, sysmon))
			}
			fmt.Printf("%-10s %-18s %9.0f %7.3f ms %8s %8s %8s %10s %10s %9s %8s %s\n",
				t.name, p.name, r.median(t.name, p.name, tps), r.median(t.name, p.name, latency),
				ratio(pDirect), ratio(warm), ratio(cold), conn, cpu, cs, mem, sm)
		}
	}
	fmt.Println("\nCPU per transaction (medians): the host's (every process), pgbench's, PostgreSQL's (postmaster, backends,\nbackground processes), the rest (the proxy: its own column above, and the kernel's interrupt work),\npgbench's and PostgreSQL's context switches, and the host's idle and stolen shares:")
	for _, t := range tests {
		for _, p := range r.paths {
			if len(r.samples[t.name][p.name]) > 0 {
				fmt.Printf("  %-10s %-18s host %6.1f µs  pgbench %5.1f µs  PostgreSQL %5.1f µs  rest %6.1f µs  cs pgbench %.2f PostgreSQL %.2f  %4.1f%% idle  %4.1f%% steal\n", t.name, p.name,
					r.median(t.name, p.name, hostPerTx), r.median(t.name, p.name, clientPerTx),
					r.median(t.name, p.name, pgPerTx),
					r.median(t.name, p.name, func(s sample) float64 { return hostPerTx(s) - clientPerTx(s) - pgPerTx(s) }),
					r.median(t.name, p.name, func(s sample) float64 { return perTx(s, float64(s.client.switches)) }),
					r.median(t.name, p.name, func(s sample) float64 { return perTx(s, float64(s.pg.switches)) }),
					r.median(t.name, p.name, idleShare), r.median(t.name, p.name, stealShare))
			}
		}
	}
	fmt.Println("\nadded latency per query at 1 client over direct (medians of per-round differences):")
	for _, p := range r.paths {
		if p.name == pDirect || len(r.samples["-S c=1"][p.name]) == 0 || len(r.samples["-S c=1"][pDirect]) == 0 {
			continue
		}
		fmt.Printf("  %-18s %+7.1f µs\n", p.name, r.addedLatency(p.name))
	}
	var perRound []string
	for i := range min(len(r.samples["-S c=1"][pPglink]), len(r.samples["-S c=1"][pDirect])) {
		perRound = append(perRound, fmt.Sprintf("%+.1f", 1000*(r.samples["-S c=1"][pPglink][i].latency-r.samples["-S c=1"][pDirect][i].latency)))
	}
	fmt.Printf("  pglink − direct per round: %s µs\n", strings.Join(perRound, ", "))
	for _, pq := range [][2]string{{pPglink, pBouncer}, {pPglinkTLS, pBouncerTLS}} {
		if len(r.samples["-S c=1"][pq[0]]) > 0 && len(r.samples["-S c=1"][pq[1]]) > 0 {
			fmt.Printf("  %s − %s, paired in each round: %+.1f µs\n", pq[0], pq[1], 1000*r.diff("-S c=1", pq[0], pq[1], latency))
		}
	}
	ct := "-S -C c=4"
	fmt.Printf("connection churn (-C c=4; PgBouncer reuses its server connections, so its clients skip PostgreSQL's backend start that direct and pglink pay):\n")
	for _, p := range r.paths {
		if p.name != pDirect && len(r.samples[ct][p.name]) > 0 {
			fmt.Printf("  %-18s connect %+.3f ms over direct, %.3f× direct's TPS\n", p.name,
				r.diff(ct, p.name, pDirect, connTime), r.ratio(ct, p.name, pDirect, tps))
		}
	}
}

// addedLatency is the median over the rounds of path p's 1-client latency minus direct's, in
// µs.
func (r *benchResult) addedLatency(p string) float64 {
	return 1000 * r.diff("-S c=1", p, pDirect, latency)
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
		u.switches += switches(t, "voluntary_ctxt_switches") + switches(t, "nonvoluntary_ctxt_switches")
	}
	return u
}

// switches reads one context switch counter from a /proc status file; 0 if it cannot.
func switches(statusFile, key string) int64 {
	b, err := os.ReadFile(statusFile)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, _ := strings.Cut(line, ":"); k == key {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// sysmonCounter counts the wake-ups of a Go process's sysmon thread. sysmon sleeps in
// nanosleep between its checks (usleep, 20 µs to 10 ms) and in a futex when everything is
// idle, so each wake-up is one voluntary context switch of that thread, which
// /proc/PID/task/TID/status counts. sysmon is the first thread the Go runtime starts: the
// lowest TID after the main thread's; the counter says whether that thread was also seen in
// nanosleep (system call 35 on amd64, 101 on arm64), as sysmon and no other Go thread sleeps.
type sysmonCounter struct {
	pid int
	tid string
	how string
}

func newSysmonCounter(pid int) *sysmonCounter {
	c := &sysmonCounter{pid: pid, how: "not found"}
	dirs, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
	var tids []int
	for _, d := range dirs {
		if n, err := strconv.Atoi(filepath.Base(d)); err == nil && n != pid {
			tids = append(tids, n)
		}
	}
	if len(tids) == 0 {
		return c
	}
	c.tid = strconv.Itoa(slices.Min(tids))
	c.how = "lowest TID after the main thread's; not seen in nanosleep"
	for range 200 {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/syscall", pid, c.tid))
		if f := strings.Fields(string(b)); len(f) > 0 && (f[0] == "35" || f[0] == "101") {
			c.how = "lowest TID after the main thread's, seen in nanosleep"
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	return c
}

// count is the sysmon thread's voluntary context switches so far.
func (c *sysmonCounter) count() int64 {
	if c.tid == "" {
		return 0
	}
	return switches(fmt.Sprintf("/proc/%d/task/%s/status", c.pid, c.tid), "voluntary_ctxt_switches")
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
