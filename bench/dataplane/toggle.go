package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// toggleResult holds, per toggle, the times of approve → first query and reject → session cut.
type toggleResult struct {
	n           int
	approveReq  []time.Duration // approval request sent → first `select 1` through the endpoint answered
	approveAPI  []time.Duration // approval API answered → first `select 1` answered (negative: before)
	approveCall []time.Duration // the approval request itself
	// admitted: approval request sent → the first admitted connection attempt began, an upper
	// bound of when the gateway started admitting (refused attempts take well under 1 ms).
	admitted    []time.Duration
	connectCost []time.Duration // the successful attempt: connect (SCRAM through the gateway) + select 1
	attempts    []int           // connection attempts until the first success
	rejectReq   []time.Duration // rejection request sent → the open session's query failed
	rejectAPI   []time.Duration // rejection API answered → query failed (negative: before)
	rejectCall  []time.Duration
	cutCodes    map[string]int // how the cut showed: SQLSTATE, or "closed"
	// listening: PUT privateEndpoints answered → its address refuses with 28000 (Pending).
	listening []time.Duration
	elapsed   time.Duration
}

// runToggles creates n private endpoints one after the other; on each it times approval until
// a new client gets an answer, and rejection until the session that client holds fails. It
// deletes each endpoint before the next.
func runToggles(ctx context.Context, e *env, n int) (*toggleResult, error) {
	r := &toggleResult{n: n, cutCodes: map[string]int{}}
	began := time.Now()
	fmt.Printf("\napprove/reject: %d toggles, each on a fresh private endpoint…\n", n)
	for i := 0; i < n; i++ {
		if err := r.toggle(ctx, e, fmt.Sprintf("tog-%d", i)); err != nil {
			return nil, fmt.Errorf("toggle %d: %w", i, err)
		}
	}
	r.elapsed = time.Since(began)
	return r, nil
}

// connected is what the connect poller found.
type connected struct {
	conn     *pgx.Conn
	done     time.Time     // when select 1 answered
	began    time.Time     // when the successful attempt began
	cost     time.Duration // the successful attempt
	attempts int
	err      error
}

func (r *toggleResult) toggle(ctx context.Context, e *env, name string) error {
	ep, err := e.createEndpoint(ctx, name)
	if err != nil {
		return err
	}
	created := time.Now()
	dsn := tcpDSN(ep.addr)
	// Pending: refused with 28000 once the gateway listens on the new address. PUT
	// privateEndpoints is not a long-running operation, so its answer does not wait for the
	// gateway: until then the address may refuse TCP connections.
	for {
		c, err := connect(ctx, dsn)
		if err == nil {
			c.Close(ctx)
			return fmt.Errorf("%s: a client got in before approval", ep.addr)
		}
		if sqlstate(err) == "28000" {
			break
		}
		if time.Since(created) > 5*time.Second {
			return fmt.Errorf("%s before approval: %v; want SQLSTATE 28000", ep.addr, err)
		}
		time.Sleep(time.Millisecond)
	}
	r.listening = append(r.listening, time.Since(created))

	// Approve while a client keeps trying to connect.
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	got := make(chan connected, 1)
	t0 := time.Now()
	go func() { got <- pollConnect(pctx, dsn) }()
	if _, err := e.setStatus(ctx, ep.connection, "Approved"); err != nil {
		cancel()
		<-got
		return err
	}
	tAPI := time.Now()
	c := <-got
	if c.err != nil {
		return fmt.Errorf("no session through %s after approval: %w", ep.addr, c.err)
	}
	defer c.conn.Close(context.Background())
	r.approveReq = append(r.approveReq, c.done.Sub(t0))
	r.approveAPI = append(r.approveAPI, c.done.Sub(tAPI))
	r.approveCall = append(r.approveCall, tAPI.Sub(t0))
	r.admitted = append(r.admitted, c.began.Sub(t0))
	r.connectCost = append(r.connectCost, c.cost)
	r.attempts = append(r.attempts, c.attempts)

	// Reject while the session keeps querying.
	cut := make(chan struct {
		at  time.Time
		err error
	}, 1)
	t1 := time.Now()
	go func() {
		for {
			qctx, qcancel := context.WithTimeout(pctx, 2*time.Second)
			var one int
			err := c.conn.QueryRow(qctx, "select 1").Scan(&one)
			qcancel()
			if err != nil {
				cut <- struct {
					at  time.Time
					err error
				}{time.Now(), err}
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	if _, err := e.setStatus(ctx, ep.connection, "Rejected"); err != nil {
		cancel()
		<-cut // the querying goroutine is done with the session before it is closed
		return err
	}
	tAPI = time.Now()
	res := <-cut
	if errors.Is(res.err, context.DeadlineExceeded) || pctx.Err() != nil {
		return fmt.Errorf("session through %s still open after rejection: %v", ep.addr, res.err)
	}
	r.rejectReq = append(r.rejectReq, res.at.Sub(t1))
	r.rejectAPI = append(r.rejectAPI, res.at.Sub(tAPI))
	r.rejectCall = append(r.rejectCall, tAPI.Sub(t1))
	code := sqlstate(res.err)
	if code == "" {
		code = "closed"
	}
	r.cutCodes[code]++

	_, err = e.api.call(ctx, "DELETE", ep.path+netAPI, nil)
	return err
}

// pollConnect connects to dsn about every millisecond until a session answers select 1.
func pollConnect(ctx context.Context, dsn string) connected {
	var last error
	for attempt := 1; ; attempt++ {
		began := time.Now()
		conn, err := connect(ctx, dsn)
		if err == nil {
			var one int
			if err = conn.QueryRow(ctx, "select 1").Scan(&one); err == nil {
				now := time.Now()
				return connected{conn: conn, done: now, began: began, cost: now.Sub(began), attempts: attempt}
			}
			conn.Close(context.Background())
		}
		last = err
		select {
		case <-ctx.Done():
			return connected{err: fmt.Errorf("%d attempts, last: %v", attempt, last)}
		case <-time.After(time.Millisecond):
		}
	}
}

func sqlstate(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// pct returns the p-quantile (nearest rank) of ds.
func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(p*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

func (r *toggleResult) print() {
	fmt.Printf("\napprove/reject on %d fresh private endpoints (%v in all; client polls every ~1 ms)\n", r.n, r.elapsed.Round(time.Millisecond))
	fmt.Printf("%-52s %10s %10s %10s\n", "", "p50", "p99", "max")
	row := func(name string, ds []time.Duration) {
		fmt.Printf("%-52s %10s %10s %10s\n", name, ms(pct(ds, 0.5)), ms(pct(ds, 0.99)), ms(pct(ds, 1)))
	}
	row("endpoint created (PUT → 201) → address answers 28000", r.listening)
	row("approve request sent → first select 1 answered", r.approveReq)
	row("approve API answered → first select 1 answered", r.approveAPI)
	row("  approve request (PUT → 200, Succeeded)", r.approveCall)
	row("  the successful connect + select 1 itself", r.connectCost)
	row("  approve request sent → first admitted attempt began", r.admitted)
	row("reject request sent → open session's query failed", r.rejectReq)
	row("reject API answered → open session's query failed", r.rejectAPI)
	row("  reject request (PUT → 200, Succeeded)", r.rejectCall)
	att := make([]float64, len(r.attempts))
	for i, a := range r.attempts {
		att[i] = float64(a)
	}
	fmt.Printf("connection attempts until the first success: median %.0f, max %.0f; the cut session saw: %v\n",
		median(att), slices.Max(att), r.cutCodes)
	fmt.Println("(negative \"API answered →\" times: enforcement came before the API's answer)")
}
