package gateway

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// BenchmarkRelay measures `select 1` round trips (simple query protocol, as pgbench -S -M
// simple) straight to PostgreSQL's unix socket and through the gateway, with 1 client and with
// 8 clients in parallel. ns/op of the -1 cases is the per-query latency; the difference
// between direct and gateway is what the gateway adds.
func BenchmarkRelay(b *testing.B) {
	pg := startPostgres(b)
	g := quietGateway(b, Config{})
	addr := freeAddr(b)
	if err := g.Apply(Snapshot{Revision: 1, Endpoints: []Endpoint{{Addr: addr, Kind: Private, ServerName: "srv", Upstream: pg.Socket}}}); err != nil {
		b.Fatal(err)
	}
	targets := []struct{ name, conn string }{
		{"direct", fmt.Sprintf("host=%s user=postgres dbname=postgres password=%s", pg.Socket, pg.Password)},
		{"gateway", fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres password=%s sslmode=disable", addr.Addr(), addr.Port(), pg.Password)},
	}
	connect := func(b *testing.B, conn string) *pgconn.PgConn {
		c, err := pgconn.Connect(context.Background(), conn)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close(context.Background()) })
		return c
	}
	query := func(b *testing.B, c *pgconn.PgConn) {
		if _, err := c.Exec(context.Background(), "select 1").ReadAll(); err != nil {
			b.Fatal(err)
		}
	}
	for _, tg := range targets {
		b.Run(tg.name+"-1", func(b *testing.B) {
			c := connect(b, tg.conn)
			query(b, c)
			sm := startSysmonCounter()
			for b.Loop() {
				query(b, c)
			}
			b.ReportMetric(sm.perSecond(), "sysmon-wakeups/s")
		})
	}
	for _, tg := range targets {
		b.Run(tg.name+"-8", func(b *testing.B) {
			par := (8 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0)
			clients := par * runtime.GOMAXPROCS(0) // 8 on this project's 2-core machines
			conns := make(chan *pgconn.PgConn, clients)
			for range clients {
				conns <- connect(b, tg.conn)
			}
			b.SetParallelism(par)
			sm := startSysmonCounter()
			b.ResetTimer()
			defer func() { b.ReportMetric(sm.perSecond(), "sysmon-wakeups/s") }()
			b.RunParallel(func(pb *testing.PB) {
				c := <-conns
				for pb.Next() {
					if _, err := c.Exec(context.Background(), "select 1").ReadAll(); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
