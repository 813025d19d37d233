package main

import (
	"bufio"
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// memResult is pglink's memory before and after opening idle sessions.
type memResult struct {
	want, opened    int
	note            string
	before, after   int64              // VmRSS, KiB
	mBefore, mAfter map[string]float64 // selected /metrics values
	openTook        time.Duration
}

// metricNames are the /metrics series the memory report shows.
var metricNames = []string{"pglink_gateway_sessions_open", "go_goroutines", "go_memstats_heap_inuse_bytes", "go_memstats_stack_inuse_bytes", "go_memstats_sys_bytes"}

// runMemory raises max_connections if it must (ALTER SYSTEM through the unix socket, then a
// restart through the API), then opens n idle sessions through the private endpoint and reads
// pglink's RSS before and after.
func runMemory(ctx context.Context, e *env, n int) (*memResult, error) {
	r := &memResult{want: n}
	fmt.Printf("\nmemory: %d idle sessions through the private endpoint…\n", n)
	if err := e.ensureMaxConnections(ctx, n+50); err != nil {
		// The administrator may not raise it (no ALTER SYSTEM): measure what fits.
		fmt.Printf("max_connections stays: %v\n", err)
	}
	time.Sleep(time.Second) // let the restart's churn settle
	var err error
	if r.before, err = rss(e.pglink.pid()); err != nil {
		return nil, err
	}
	r.mBefore = e.metrics(ctx)

	conns := make([]*pgx.Conn, 0, n)
	var mu sync.Mutex
	var firstErr error
	jobs := make(chan struct{})
	var wg sync.WaitGroup
	began := time.Now()
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				c, err := connect(ctx, tcpDSN(e.peAddr))
				if err == nil {
					_, err = c.Exec(ctx, "select 1")
				}
				mu.Lock()
				if err != nil {
					if firstErr == nil {
						firstErr = err
					}
				} else {
					conns = append(conns, c)
				}
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < n; i++ {
		mu.Lock()
		stop := firstErr != nil
		mu.Unlock()
		if stop || ctx.Err() != nil {
			break
		}
		jobs <- struct{}{}
	}
	close(jobs)
	wg.Wait()
	r.openTook = time.Since(began)
	defer func() {
		for _, c := range conns {
			c.Close(context.Background())
		}
	}()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	r.opened = len(conns)
	if firstErr != nil {
		r.note = fmt.Sprintf("stopped at %d sessions: %v", len(conns), firstErr)
	}
	if r.opened == 0 {
		return nil, fmt.Errorf("no idle session opened: %v", firstErr)
	}
	time.Sleep(2 * time.Second) // idle
	if r.after, err = rss(e.pglink.pid()); err != nil {
		return nil, err
	}
	r.mAfter = e.metrics(ctx)
	return r, nil
}

// ensureMaxConnections makes the server's max_connections at least want.
func (e *env) ensureMaxConnections(ctx context.Context, want int) error {
	conn, err := connect(ctx, e.directDSN())
	if err != nil {
		return fmt.Errorf("connect to the unix socket: %w", err)
	}
	var cur int
	err = conn.QueryRow(ctx, "select current_setting('max_connections')::int").Scan(&cur)
	if err == nil && cur < want {
		_, err = conn.Exec(ctx, fmt.Sprintf("alter system set max_connections = %d", want))
	}
	conn.Close(ctx)
	if err != nil || cur >= want {
		return err
	}
	began := time.Now()
	if _, err := e.api.call(ctx, "POST", e.serverPath+"/restart"+pgAPI, nil); err != nil {
		return fmt.Errorf("restart server: %w", err)
	}
	// Back through the gateway, with the new setting.
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := connect(ctx, tcpDSN(e.peAddr))
		if err == nil {
			var got int
			err = c.QueryRow(ctx, "select current_setting('max_connections')::int").Scan(&got)
			c.Close(ctx)
			if err == nil && got >= want {
				break
			}
			if err == nil {
				return fmt.Errorf("max_connections is %d after the restart; want %d", got, want)
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("server not back through the gateway 60s after the restart: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	fmt.Printf("max_connections %d → %d (ALTER SYSTEM, restart through the API: %v)\n", cur, want, time.Since(began).Round(time.Millisecond))
	return nil
}

// metrics reads the metricNames series from pglink's /metrics; errors leave them out.
func (e *env) metrics(ctx context.Context) map[string]float64 {
	m := map[string]float64{}
	status, _, b, err := e.api.do(ctx, "GET", "/metrics", nil)
	if err != nil || status != 200 {
		return m
	}
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		for _, want := range metricNames {
			if name == want {
				m[name], _ = strconv.ParseFloat(val, 64)
			}
		}
	}
	return m
}

func (r *memResult) print() {
	fmt.Printf("\npglink memory with idle sessions through one private endpoint (opened in %v)\n", r.openTook.Round(time.Millisecond))
	if r.note != "" {
		fmt.Println("note:", r.note)
	}
	per := float64(r.after-r.before) / float64(r.opened)
	fmt.Printf("VmRSS before %.1f MiB, with %d idle sessions %.1f MiB: %+.1f KiB per session\n",
		float64(r.before)/1024, r.opened, float64(r.after)/1024, per)
	for _, name := range metricNames {
		b, a := r.mBefore[name], r.mAfter[name]
		if strings.HasSuffix(name, "_bytes") {
			fmt.Printf("  %-32s %10.1f MiB → %10.1f MiB  (%+.1f KiB per session)\n", name, b/(1<<20), a/(1<<20), (a-b)/1024/float64(r.opened))
		} else {
			fmt.Printf("  %-32s %10.0f     → %10.0f      (%+.2f per session)\n", name, b, a, (a-b)/float64(r.opened))
		}
	}
}
