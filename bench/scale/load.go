package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pglink/pglink/bench/internal/armclient"
	"github.com/pglink/pglink/internal/store"
)

// Request kinds of the load, sent in turn.
const (
	kindGet = iota
	kindList
	kinds
)

var kindNames = [kinds]string{"GET server", "LIST page"}

// requestTimeout bounds one request of the load; a request that times out counts as failed.
const requestTimeout = 30 * time.Second

// loadResult is what one load run measured, per request kind.
type loadResult struct {
	lat    [kinds][]time.Duration // of the requests that succeeded
	errors [kinds]int             // transport errors and non-2xx answers
	first  string                 // the first failure, for the report
	late   time.Duration          // how far behind schedule the sender fell at worst
}

// load sends rate requests per second for dur, open loop: request n is due at start + n/rate
// and its latency counts from then, however late it is sent. Requests go to the clients
// round-robin; GETs and LISTs alternate; targets come from rng (so the same seed gives the
// same requests).
func load(ctx context.Context, clients []*armclient.Client, s resourceSet, pageSize, rate int, dur time.Duration, rng *rand.Rand) loadResult {
	var (
		res loadResult
		mu  sync.Mutex
		wg  sync.WaitGroup
	)
	interval := time.Second / time.Duration(rate)
	n := int(dur / interval)
	start := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for i := 0; i < n; i++ {
		kind, path := s.request(i, pageSize, rng)
		due := start.Add(time.Duration(i) * interval)
		if wait := time.Until(due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				wg.Wait()
				return res
			case <-timer.C:
			}
		} else if late := -wait; late > res.late {
			res.late = late
		}
		c := clients[i%len(clients)]
		wg.Go(func() {
			rctx, cancel := context.WithTimeout(ctx, requestTimeout)
			defer cancel()
			status, body, err := c.Do(rctx, "GET", path, nil)
			d := time.Since(due)
			mu.Lock()
			defer mu.Unlock()
			if err != nil || status/100 != 2 {
				res.errors[kind]++
				if res.first == "" {
					res.first = fmt.Sprintf("GET %s%s: %d %v %.200s", c.Base, path, status, err, body)
				}
				return
			}
			res.lat[kind] = append(res.lat[kind], d)
		})
	}
	wg.Wait()
	return res
}

// request returns the kind and path of request i of a load: GETs and LISTs in turn, targets
// from rng.
func (s resourceSet) request(i, pageSize int, rng *rand.Rand) (kind int, path string) {
	kind = i % kinds
	switch kind {
	case kindGet:
		path = s.getPath(rng.IntN(s.servers))
	case kindList:
		g := rng.IntN(s.groups)
		path = s.listPath(g, rng.IntN(s.pages(g, pageSize)), pageSize)
	}
	return kind, path
}

// serial sends n requests as load does, but one after another, each when the last is answered:
// what a request costs when it waits for nothing but itself.
func serial(ctx context.Context, clients []*armclient.Client, s resourceSet, pageSize, n int, rng *rand.Rand) loadResult {
	var res loadResult
	for i := 0; i < n && ctx.Err() == nil; i++ {
		kind, path := s.request(i, pageSize, rng)
		c := clients[i%len(clients)]
		start := time.Now()
		status, body, err := c.Do(ctx, "GET", path, nil)
		if err != nil || status/100 != 2 {
			res.errors[kind]++
			if res.first == "" {
				res.first = fmt.Sprintf("GET %s%s: %d %v %.200s", c.Base, path, status, err, body)
			}
			continue
		}
		res.lat[kind] = append(res.lat[kind], time.Since(start))
	}
	return res
}

// lagResult is what probeLag measured.
type lagResult struct {
	fromCall []time.Duration // from the start of A's Update until B shows the write
	fromAck  []time.Duration // from A's Update returning until B shows the write (0 if B was first)
	write    []time.Duration // A's Update
	signal   []time.Duration // from the start of A's Update until B's Notify first fired
	early    int             // writes B showed before A's Update returned
	failed   int             // writes that failed or that B did not show within lagTimeout
	first    string          // the first failure
}

// lagTimeout is how long probeLag waits for B to show a write before it counts it as failed.
const lagTimeout = 5 * time.Second

// probeLag commits a write of r through a every 1/rate until ctx is done, and times each until
// b's Notify channel fires and b's store shows the write's revision. a and b may be the same.
func probeLag(ctx context.Context, a, b store.Store, r store.Resource, rate int) lagResult {
	var res lagResult
	fail := func(format string, args ...any) {
		res.failed++
		if res.first == "" {
			res.first = fmt.Sprintf(format, args...)
		}
	}
	nctx, cancel := context.WithCancel(ctx)
	defer cancel()
	notify := b.Notify(nctx)
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return res
		case <-tick.C:
		}
		select { // a signal of an earlier commit
		case <-notify:
		default:
		}
		var rev int64
		t0 := time.Now()
		err := a.Update(ctx, func(tx store.Tx) error {
			w, err := tx.Put(ctx, r, "")
			rev = w.Revision
			return err
		})
		t1 := time.Now()
		if err != nil {
			if ctx.Err() == nil {
				fail("write %s at replica A: %v", r.ID, err)
			}
			continue
		}
		deadline := time.NewTimer(lagTimeout)
		signaled := time.Time{}
		for shown := false; !shown; {
			select {
			case <-ctx.Done():
				deadline.Stop()
				return res
			case <-deadline.C:
				fail("revision %d not shown by replica B within %v", rev, lagTimeout)
				shown = true
				continue
			case _, ok := <-notify:
				if !ok {
					return res
				}
				if signaled.IsZero() {
					signaled = time.Now()
				}
			}
			var got int64
			err := b.View(ctx, func(tx store.Tx) error {
				w, err := tx.Get(ctx, r.Key)
				got = w.Revision
				return err
			})
			if err != nil {
				if ctx.Err() == nil {
					fail("read %s at replica B: %v", r.ID, err)
				}
				break
			}
			if got >= rev {
				t2 := time.Now()
				shown = true
				res.fromCall = append(res.fromCall, t2.Sub(t0))
				res.write = append(res.write, t1.Sub(t0))
				res.signal = append(res.signal, signaled.Sub(t0))
				if t2.Before(t1) {
					res.early++
				}
				res.fromAck = append(res.fromAck, max(0, t2.Sub(t1)))
			}
		}
		deadline.Stop()
	}
}

// quantile returns the q-quantile of sorted (nearest rank), 0 if it is empty.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(float64(len(sorted))*q))]
}

// ms formats d in milliseconds.
func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000) }

// summary is "n p50 p90 p99 max" of d, tab-separated; it sorts d.
func summary(d []time.Duration) string {
	slices.Sort(d)
	return strings.Join([]string{fmt.Sprint(len(d)), ms(quantile(d, 0.5)), ms(quantile(d, 0.9)), ms(quantile(d, 0.99)), ms(quantile(d, 1))}, "\t")
}
