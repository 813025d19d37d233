package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
)

const (
	serverID   = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.DBforPostgreSQL/flexibleServers/srv"
	peID       = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/privateEndpoints/pe-"
	serverName = "srv"
)

func private(addr netip.AddrPort, name, upstream string) Endpoint {
	return Endpoint{Addr: addr, Kind: Private, ID: peID + name, Server: serverID, ServerName: serverName, Upstream: upstream}
}

func public(addr netip.AddrPort, upstream string, allow ...string) Endpoint {
	ep := Endpoint{Addr: addr, Kind: Public, ID: serverID, Server: serverID, ServerName: serverName, Upstream: upstream}
	for _, a := range allow {
		start, end, _ := strings.Cut(a, "-")
		if end == "" {
			end = start
		}
		ep.Allow = append(ep.Allow, AddrRange{netip.MustParseAddr(start), netip.MustParseAddr(end)})
	}
	return ep
}

func apply(t *testing.T, g *Gateway, rev int64, eps ...Endpoint) {
	t.Helper()
	if err := g.Apply(Snapshot{Revision: rev, Endpoints: eps}); err != nil {
		t.Fatalf("Apply(revision %d): %v", rev, err)
	}
}

type connOpts struct {
	password string
	sslmode  string        // default disable
	source   string        // source address to bind, e.g. 127.0.0.2
	cancel   bool          // cancel queries with a CancelRequest on ctx cancel
	timeout  time.Duration // connect timeout, default 5s
}

func connConfig(t *testing.T, addr netip.AddrPort, pg *cluster, o connOpts) *pgx.ConnConfig {
	t.Helper()
	if o.password == "" {
		o.password = pg.Password
	}
	if o.sslmode == "" {
		o.sslmode = "disable"
	}
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres password=%s sslmode=%s connect_timeout=5",
		addr.Addr(), addr.Port(), o.password, o.sslmode))
	if err != nil {
		t.Fatal(err)
	}
	if o.source != "" {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(o.source)}, Timeout: 5 * time.Second}
		cfg.DialFunc = d.DialContext
	}
	if o.cancel {
		cfg.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
			return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: 5 * time.Second}
		}
	}
	return cfg
}

func connect(t *testing.T, addr netip.AddrPort, pg *cluster, o connOpts) (*pgx.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, err := pgx.ConnectConfig(ctx, connConfig(t, addr, pg, o))
	if err == nil {
		t.Cleanup(func() { c.Close(context.Background()) })
	}
	return c, err
}

func mustConnect(t *testing.T, addr netip.AddrPort, pg *cluster, o connOpts) *pgx.Conn {
	t.Helper()
	c, err := connect(t, addr, pg, o)
	if err != nil {
		t.Fatalf("connect to %s: %v", addr, err)
	}
	return c
}

func selectOne(ctx context.Context, c *pgx.Conn) error {
	var n int
	if err := c.QueryRow(ctx, "select 1").Scan(&n); err != nil {
		return err
	}
	if n != 1 {
		return fmt.Errorf("select 1 = %d", n)
	}
	return nil
}

// pgError returns err's PgError or fails.
func pgError(t *testing.T, err error) *pgconn.PgError {
	t.Helper()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a PostgreSQL error", err, err)
	}
	return pe
}

func wantRefused(t *testing.T, err error, msg string) {
	t.Helper()
	if err == nil {
		t.Fatalf("connect succeeded; want FATAL 28000 %q", msg)
	}
	pe := pgError(t, err)
	if pe.Code != "28000" || pe.Severity != "FATAL" || pe.Message != msg {
		t.Fatalf("refusal = %s %s %q; want FATAL 28000 %q", pe.Severity, pe.Code, pe.Message, msg)
	}
}

func psql(t *testing.T, addr netip.AddrPort, pg *cluster, sslmode string, args ...string) (string, error) {
	t.Helper()
	bin, err := exec.LookPath("psql")
	if err != nil {
		requirePart(t, "psql is not installed: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	conn := fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres sslmode=%s connect_timeout=5", addr.Addr(), addr.Port(), sslmode)
	cmd := exec.CommandContext(ctx, bin, append([]string{conn, "-X", "-At", "-v", "ON_ERROR_STOP=1"}, args...)...)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+pg.Password, "PGGSSENCMODE=disable")
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func TestGateway(t *testing.T) {
	pg := startPostgres(t)

	t.Run("PrivateAdmitted", func(t *testing.T) {
		g := newGateway(t, Config{})
		addr := freeAddr(t)
		apply(t, g, 1, private(addr, "a", pg.Socket))
		c := mustConnect(t, addr, pg, connOpts{})
		if err := selectOne(t.Context(), c); err != nil {
			t.Fatal(err)
		}
		ss := g.Sessions()
		if len(ss) != 1 || ss[0].Endpoint != peID+"a" || ss[0].Client.Addr() != netip.MustParseAddr("127.0.0.1") || ss[0].BytesIn == 0 || ss[0].BytesOut == 0 {
			t.Errorf("Sessions() = %+v; want one session on %s from 127.0.0.1 with bytes both ways", ss, peID+"a")
		}
		out, err := psql(t, addr, pg, "disable", "-c", "select 1")
		if err != nil || out != "1" {
			t.Errorf("psql select 1 = %q, %v; want 1", out, err)
		}
		c.Close(t.Context())
		st := g.Stats()
		if st.Admitted != 2 || st.Listeners != 1 || st.Revision != 1 || st.BytesIn == 0 || st.BytesOut == 0 || st.Decisions.Count != 2 {
			t.Errorf("Stats() = %+v; want 2 admitted, 1 listener, revision 1, bytes, 2 decisions", st)
		}
	})

	t.Run("Refused", func(t *testing.T) {
		g := newGateway(t, Config{})
		addr := freeAddr(t)
		ep := private(addr, "a", pg.Socket)
		ep.Refuse = `private endpoint connection "pe-a.1" to server "srv" is Pending approval`
		ep.Hint = "Ask the server's administrator to approve the connection."
		apply(t, g, 1, ep)
		_, err := connect(t, addr, pg, connOpts{})
		wantRefused(t, err, ep.Refuse)
		if pe := pgError(t, err); pe.Hint != ep.Hint {
			t.Errorf("hint = %q; want %q", pe.Hint, ep.Hint)
		}
		out, err := psql(t, addr, pg, "disable", "-c", "select 1")
		if err == nil || !strings.Contains(out, ep.Refuse) {
			t.Errorf("psql = %q, %v; want an error naming %q", out, err, ep.Refuse)
		}
		if st := g.Stats(); st.Refused[ReasonPending] != 2 || st.Admitted != 0 {
			t.Errorf("Stats() = %+v; want 2 refused as pending", st)
		}
	})

	t.Run("Stopped", func(t *testing.T) {
		g := newGateway(t, Config{})
		addr := freeAddr(t)
		apply(t, g, 1, private(addr, "a", ""))
		_, err := connect(t, addr, pg, connOpts{})
		wantRefused(t, err, `server "srv" is not running`)
		if st := g.Stats(); st.Refused[ReasonStopped] != 1 {
			t.Errorf("Refused = %v; want 1 stopped", st.Refused)
		}
	})

	t.Run("Firewall", func(t *testing.T) {
		g := newGateway(t, Config{})
		addr := freeAddr(t)
		apply(t, g, 1, public(addr, pg.Socket, "127.0.0.1"))
		c := mustConnect(t, addr, pg, connOpts{source: "127.0.0.1"})
		if err := selectOne(t.Context(), c); err != nil {
			t.Fatal(err)
		}
		_, err := connect(t, addr, pg, connOpts{source: "127.0.0.2"})
		wantRefused(t, err, `no firewall rule of server "srv" admits client address 127.0.0.2`)
		if pe := pgError(t, err); !strings.Contains(pe.Hint, "firewall rule") {
			t.Errorf("hint = %q; want advice to add a firewall rule", pe.Hint)
		}
		if st := g.Stats(); st.Refused[ReasonFirewall] != 1 || st.Admitted != 1 {
			t.Errorf("Stats() = %+v; want 1 admitted, 1 refused by the firewall", st)
		}
	})

	t.Run("SSLRequire", func(t *testing.T) {
		g := newGateway(t, Config{TLS: testTLS(t)})
		addr, refused := freeAddr(t), freeAddr(t)
		ep := private(refused, "b", pg.Socket)
		ep.Refuse = `private endpoint connection "pe-b.1" to server "srv" was Rejected`
		apply(t, g, 1, private(addr, "a", pg.Socket), ep)
		c := mustConnect(t, addr, pg, connOpts{sslmode: "require"})
		if err := selectOne(t.Context(), c); err != nil {
			t.Fatal(err)
		}
		if _, ok := c.PgConn().Conn().(*tls.Conn); !ok {
			t.Errorf("pgx connection is %T; want *tls.Conn", c.PgConn().Conn())
		}
		if ss := g.Sessions(); len(ss) != 1 || !ss[0].TLS {
			t.Errorf("Sessions() = %+v; want one TLS session", ss)
		}
		out, err := psql(t, addr, pg, "require", "-c", `\conninfo`)
		if err != nil || !strings.Contains(out, "SSL connection") {
			t.Errorf("psql sslmode=require \\conninfo = %q, %v; want an SSL connection", out, err)
		}
		out, err = psql(t, addr, pg, "require", "-c", "select 40+2")
		if err != nil || out != "42" {
			t.Errorf("psql sslmode=require select = %q, %v; want 42", out, err)
		}
		_, err = connect(t, refused, pg, connOpts{sslmode: "require"})
		wantRefused(t, err, ep.Refuse)
		out, err = psql(t, refused, pg, "require", "-c", "select 1")
		if err == nil || !strings.Contains(out, ep.Refuse) {
			t.Errorf("psql sslmode=require on a refused endpoint = %q, %v; want %q", out, err, ep.Refuse)
		}
	})

	t.Run("RequireTLS", func(t *testing.T) {
		proxy := newSocketProxy(t, pg.Socket)
		g := newGateway(t, Config{TLS: testTLS(t)})
		pe, pub := freeAddr(t), freeAddr(t)
		open := []Endpoint{private(pe, "a", proxy.Dir), public(pub, proxy.Dir, "127.0.0.1")}
		apply(t, g, 1, open...)
		plainPE := mustConnect(t, pe, pg, connOpts{})
		plainPub := mustConnect(t, pub, pg, connOpts{})
		tlsPE := mustConnect(t, pe, pg, connOpts{sslmode: "require"})
		before := proxy.accepted.Load()

		// require_secure_transport on: open plaintext sessions are revoked on both kinds of
		// endpoint, the TLS session stays, new plaintext clients are refused before PostgreSQL
		// sees a byte.
		required := []Endpoint{private(pe, "a", proxy.Dir), public(pub, proxy.Dir, "127.0.0.1")}
		for i := range required {
			required[i].RequireTLS = true
		}
		apply(t, g, 2, required...)
		const msg = `connection requires TLS: server "srv" has require_secure_transport on`
		for name, c := range map[string]*pgx.Conn{"private": plainPE, "public": plainPub} {
			err := selectOne(t.Context(), c)
			if err == nil {
				t.Errorf("%s plaintext session: select 1 after require_secure_transport on succeeded", name)
				continue
			}
			var pe *pgconn.PgError
			if errors.As(err, &pe) {
				if pe.Code != "57P01" || pe.Message != "terminating connection: "+msg {
					t.Errorf("%s plaintext session: %s %q; want 57P01 %q", name, pe.Code, pe.Message, "terminating connection: "+msg)
				}
			} else if !c.IsClosed() {
				t.Errorf("%s plaintext session: error %v is neither 57P01 nor a closed connection", name, err)
			}
		}
		if err := selectOne(t.Context(), tlsPE); err != nil {
			t.Errorf("TLS session after require_secure_transport on: %v", err)
		}
		for _, addr := range []netip.AddrPort{pe, pub} {
			_, err := connect(t, addr, pg, connOpts{})
			wantRefused(t, err, msg)
			if pe := pgError(t, err); !strings.Contains(pe.Hint, "sslmode=require") || !strings.Contains(pe.Hint, "require_secure_transport") {
				t.Errorf("hint = %q; want advice to use sslmode=require or turn require_secure_transport off", pe.Hint)
			}
			out, err := psql(t, addr, pg, "disable", "-c", "select 1")
			if err == nil || !strings.Contains(out, msg) {
				t.Errorf("psql sslmode=disable = %q, %v; want an error naming %q", out, err, msg)
			}
		}
		if got := proxy.accepted.Load(); got != before {
			t.Errorf("PostgreSQL saw %d connections from refused plaintext clients; want 0", got-before)
		}
		for _, addr := range []netip.AddrPort{pe, pub} {
			if err := selectOne(t.Context(), mustConnect(t, addr, pg, connOpts{sslmode: "require"})); err != nil {
				t.Errorf("TLS client on %s: %v", addr, err)
			}
		}
		if out, err := psql(t, pe, pg, "require", "-c", "select 40+2"); err != nil || out != "42" {
			t.Errorf("psql sslmode=require = %q, %v; want 42", out, err)
		}
		if st := g.Stats(); st.Refused[ReasonInsecureTransport] != 4 || st.Revoked != 2 {
			t.Errorf("Stats() = %+v; want 4 refused for insecure transport, 2 revoked", st)
		}
		// A cancel request needs no TLS (libpq sends it in plaintext).
		c := mustConnect(t, pe, pg, connOpts{sslmode: "require", cancel: true})
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		if _, err := c.Exec(ctx, "select pg_sleep(10)"); pgError(t, err).Code != "57014" {
			t.Errorf("cancelled query over TLS: %v; want 57014 query_canceled", err)
		}

		// ssl_min_protocol_version TLSv1.3: a TLS 1.2 handshake fails, TLS 1.3 works, and an
		// open TLS 1.2 session is revoked.
		apply(t, g, 3, required...)
		cfg12 := connConfig(t, pe, pg, connOpts{sslmode: "require"})
		cfg12.TLSConfig.MaxVersion = tls.VersionTLS12
		old, err := pgx.ConnectConfig(t.Context(), cfg12)
		if err != nil {
			t.Fatalf("TLS 1.2 client before ssl_min_protocol_version TLSv1.3: %v", err)
		}
		defer old.Close(context.Background())
		strict := []Endpoint{private(pe, "a", proxy.Dir)}
		strict[0].RequireTLS, strict[0].MinTLSVersion = true, tls.VersionTLS13
		apply(t, g, 4, strict...)
		if err := selectOne(t.Context(), old); err == nil {
			t.Error("TLS 1.2 session after ssl_min_protocol_version TLSv1.3: select 1 succeeded")
		} else if pe := new(pgconn.PgError); errors.As(err, &pe) && pe.Message != `terminating connection: connection uses TLSv1.2, below the ssl_min_protocol_version TLSv1.3 of server "srv"` {
			t.Errorf("TLS 1.2 session revoked with %q", pe.Message)
		}
		cfg12 = connConfig(t, pe, pg, connOpts{sslmode: "require"})
		cfg12.TLSConfig.MaxVersion = tls.VersionTLS12
		if c, err := pgx.ConnectConfig(t.Context(), cfg12); err == nil {
			c.Close(context.Background())
			t.Error("TLS 1.2 client connected with ssl_min_protocol_version TLSv1.3")
		}
		c13 := mustConnect(t, pe, pg, connOpts{sslmode: "require"})
		if v := c13.PgConn().Conn().(*tls.Conn).ConnectionState().Version; v != tls.VersionTLS13 {
			t.Errorf("TLS version = %x; want TLS 1.3", v)
		}
	})

	t.Run("WrongPassword", func(t *testing.T) {
		g := newGateway(t, Config{})
		addr := freeAddr(t)
		apply(t, g, 1, private(addr, "a", pg.Socket))
		_, err := connect(t, addr, pg, connOpts{password: "wrong"})
		if pe := pgError(t, err); pe.Code != "28P01" {
			t.Errorf("wrong password: %s %q; want 28P01 from PostgreSQL", pe.Code, pe.Message)
		}
	})

	t.Run("Revoke", func(t *testing.T) {
		g := newGateway(t, Config{})
		a, b, pub := freeAddr(t), freeAddr(t), freeAddr(t)
		rev1 := []Endpoint{private(a, "a", pg.Socket), private(b, "b", pg.Socket), public(pub, pg.Socket, "127.0.0.1-127.0.0.2")}
		apply(t, g, 1, rev1...)
		ca := mustConnect(t, a, pg, connOpts{})
		cb := mustConnect(t, b, pg, connOpts{})
		c1 := mustConnect(t, pub, pg, connOpts{source: "127.0.0.1"})
		c2 := mustConnect(t, pub, pg, connOpts{source: "127.0.0.2"})
		for _, c := range []*pgx.Conn{ca, cb, c1, c2} {
			if err := selectOne(t.Context(), c); err != nil {
				t.Fatal(err)
			}
		}
		rejected := private(a, "a", pg.Socket)
		rejected.Refuse = `private endpoint connection "pe-a.1" to server "srv" was Rejected`
		narrowed := public(pub, pg.Socket, "127.0.0.1")

		start := time.Now()
		apply(t, g, 2, rejected, private(b, "b", pg.Socket), narrowed)
		t.Logf("Apply with 2 revocations took %v", time.Since(start))

		for _, tc := range []struct {
			name string
			c    *pgx.Conn
			msg  string
		}{
			{"private a", ca, "terminating connection: " + rejected.Refuse},
			{"public from 127.0.0.2", c2, `terminating connection: no firewall rule of server "srv" admits client address 127.0.0.2`},
		} {
			err := selectOne(t.Context(), tc.c)
			if took := time.Since(start); took > time.Second {
				t.Errorf("%s: revocation seen after %v; want ≤ 1s", tc.name, took)
			}
			if err == nil {
				t.Errorf("%s: select 1 after revocation succeeded", tc.name)
				continue
			}
			var pe *pgconn.PgError
			if errors.As(err, &pe) {
				if pe.Code != "57P01" || pe.Severity != "FATAL" || pe.Message != tc.msg {
					t.Errorf("%s: %s %s %q; want FATAL 57P01 %q", tc.name, pe.Severity, pe.Code, pe.Message, tc.msg)
				}
			} else if !tc.c.IsClosed() {
				t.Errorf("%s: error %v is neither 57P01 nor a closed connection", tc.name, err)
			}
		}
		for name, c := range map[string]*pgx.Conn{"private b": cb, "public from 127.0.0.1": c1} {
			if err := selectOne(t.Context(), c); err != nil {
				t.Errorf("%s: select 1 after an unrelated revocation: %v", name, err)
			}
		}
		if st := g.Stats(); st.Revoked != 2 || st.SessionsOpen != 2 {
			t.Errorf("Stats() = %+v; want 2 revoked and 2 open", st)
		}

		// A stale snapshot changes nothing.
		apply(t, g, 1, rev1...)
		if got := g.Applied(); got != 2 {
			t.Errorf("Applied() after a stale Apply = %d; want 2", got)
		}
		_, err := connect(t, a, pg, connOpts{})
		wantRefused(t, err, rejected.Refuse)
	})

	t.Run("RevokeWhileStreaming", func(t *testing.T) {
		g := newGateway(t, Config{})
		a := freeAddr(t)
		apply(t, g, 1, private(a, "a", pg.Socket))
		c := mustConnect(t, a, pg, connOpts{})
		rows, err := c.Query(t.Context(), "select repeat('x', 500) from generate_series(1, 1000000)")
		if err != nil {
			t.Fatal(err)
		}
		for range 1000 {
			rows.Next()
		}
		start := time.Now()
		ep := private(a, "a", pg.Socket)
		ep.Refuse = "rejected"
		apply(t, g, 2, ep)
		for rows.Next() {
			if time.Since(start) > 5*time.Second {
				t.Fatal("rows still streaming 5s after revocation")
			}
		}
		if took := time.Since(start); rows.Err() == nil || took > time.Second {
			t.Errorf("streaming query after revocation: err %v after %v; want an error within 1s", rows.Err(), took)
		}
		var pe *pgconn.PgError
		if errors.As(rows.Err(), &pe) && (pe.Code != "57P01" || pe.Message != "terminating connection: rejected") {
			t.Errorf("streaming query after revocation: %s %q; want 57P01 or a closed connection", pe.Code, pe.Message)
		}
		t.Logf("streaming session ended after %v: %v", time.Since(start), rows.Err())
	})

	t.Run("RemoveEndpoint", func(t *testing.T) {
		g := newGateway(t, Config{})
		a, b := freeAddr(t), freeAddr(t)
		apply(t, g, 1, private(a, "a", pg.Socket), private(b, "b", pg.Socket))
		ca := mustConnect(t, a, pg, connOpts{})
		apply(t, g, 2, private(b, "b", pg.Socket))
		if c, err := net.DialTimeout("tcp", a.String(), time.Second); err == nil {
			c.Close()
			t.Errorf("dial %s after its endpoint was removed succeeded; want connection refused", a)
		}
		err := selectOne(t.Context(), ca)
		if pe := pgError(t, err); pe.Code != "57P01" || !strings.Contains(pe.Message, `private endpoint "pe-a" to server "srv" was removed`) {
			t.Errorf("session on a removed endpoint: %s %q; want 57P01 naming the endpoint", pe.Code, pe.Message)
		}
		if st := g.Stats(); st.Listeners != 1 {
			t.Errorf("Listeners = %d; want 1", st.Listeners)
		}
		// The address can be served again.
		apply(t, g, 3, private(a, "a", pg.Socket))
		if err := selectOne(t.Context(), mustConnect(t, a, pg, connOpts{})); err != nil {
			t.Error(err)
		}
	})

	t.Run("RefusedSendsNothingUpstream", func(t *testing.T) {
		proxy := newSocketProxy(t, pg.Socket)
		g := newGateway(t, Config{TLS: testTLS(t)})
		pending, fw, stopped, ok := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
		ep := private(pending, "p", proxy.Dir)
		ep.Refuse = "pending"
		apply(t, g, 1, ep, public(fw, proxy.Dir, "127.0.0.1"), private(stopped, "s", ""), private(ok, "ok", proxy.Dir))
		for _, o := range []connOpts{{}, {sslmode: "require"}} {
			_, err := connect(t, pending, pg, o)
			wantRefused(t, err, "pending")
			_, err = connect(t, fw, pg, connOpts{source: "127.0.0.2", sslmode: o.sslmode})
			wantRefused(t, err, `no firewall rule of server "srv" admits client address 127.0.0.2`)
		}
		// A cancel request on a refused endpoint is dropped.
		c, err := net.Dial("tcp", pending.String())
		if err != nil {
			t.Fatal(err)
		}
		c.Write(cat(be32(16), be32(cancelRequestCode), be32(1234), be32(5678)))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("cancel request on a refused endpoint: read %d, %v; want EOF", n, err)
		}
		c.Close()
		if n := proxy.accepted.Load(); n != 0 {
			t.Fatalf("PostgreSQL saw %d connections from refused clients; want 0", n)
		}
		if err := selectOne(t.Context(), mustConnect(t, ok, pg, connOpts{})); err != nil {
			t.Fatal(err)
		}
		if n := proxy.accepted.Load(); n != 1 {
			t.Errorf("PostgreSQL saw %d connections after one admitted client; want 1", n)
		}
	})

	t.Run("Cancel", func(t *testing.T) {
		g := newGateway(t, Config{})
		a := freeAddr(t)
		apply(t, g, 1, private(a, "a", pg.Socket))
		c := mustConnect(t, a, pg, connOpts{cancel: true})
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := c.Exec(ctx, "select pg_sleep(10)")
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("cancelled pg_sleep(10) returned after %v", took)
		}
		if pe := pgError(t, err); pe.Code != "57014" {
			t.Errorf("cancelled query: %s %q; want 57014 query_canceled", pe.Code, pe.Message)
		}
		if err := selectOne(t.Context(), c); err != nil {
			t.Errorf("select 1 after a cancelled query: %v", err)
		}
		if st := g.Stats(); st.Cancels != 1 {
			t.Errorf("Cancels = %d; want 1", st.Cancels)
		}
	})

	// An Unchanged snapshot advances the revision and keeps the endpoints and open sessions;
	// before any whole snapshot it is refused.
	t.Run("Unchanged", func(t *testing.T) {
		g := newGateway(t, Config{})
		if err := g.Apply(Snapshot{Revision: 1, Unchanged: true}); !errors.Is(err, ErrNoPolicy) || g.Applied() != 0 {
			t.Fatalf("Unchanged first = %v, applied %d; want ErrNoPolicy, 0", err, g.Applied())
		}
		a := freeAddr(t)
		apply(t, g, 2, private(a, "a", pg.Socket))
		c := mustConnect(t, a, pg, connOpts{})
		if err := g.Apply(Snapshot{Revision: 7, Unchanged: true}); err != nil || g.Applied() != 7 {
			t.Fatalf("Unchanged = %v, applied %d; want nil, 7", err, g.Applied())
		}
		if err := selectOne(t.Context(), c); err != nil {
			t.Errorf("open session after an Unchanged snapshot: %v", err)
		}
		mustConnect(t, a, pg, connOpts{})
		if prev := (Snapshot{Revision: 2, Endpoints: []Endpoint{{ID: "x"}}}); len((Snapshot{Revision: 7, Unchanged: true}).After(&prev).Endpoints) != 1 {
			t.Error("After does not carry the previous endpoints")
		}
	})

	t.Run("Close", func(t *testing.T) {
		g := New(Config{TLS: testTLS(t)})
		a := freeAddr(t)
		apply(t, g, 1, private(a, "a", pg.Socket))
		c := mustConnect(t, a, pg, connOpts{})
		ct := mustConnect(t, a, pg, connOpts{sslmode: "require"})
		if err := g.Close(); err != nil {
			t.Fatal(err)
		}
		for name, c := range map[string]*pgx.Conn{"plain": c, "TLS": ct} {
			if err := selectOne(t.Context(), c); err == nil {
				t.Errorf("%s: select 1 after Close succeeded", name)
			} else if pe := pgError(t, err); pe.Code != "57P01" || !strings.Contains(pe.Message, "shutting down") {
				t.Errorf("%s: select 1 after Close: %s %q; want 57P01 saying the gateway is shutting down", name, pe.Code, pe.Message)
			}
		}
		if nc, err := net.DialTimeout("tcp", a.String(), time.Second); err == nil {
			nc.Close()
			t.Error("dial after Close succeeded")
		}
		if err := g.Apply(Snapshot{Revision: 2}); !errors.Is(err, ErrClosed) {
			t.Errorf("Apply after Close = %v; want ErrClosed", err)
		}
		if err := g.WaitApplied(t.Context(), 5); !errors.Is(err, ErrClosed) {
			t.Errorf("WaitApplied after Close = %v; want ErrClosed", err)
		}
	})

	// The same traffic through each relay: the event loop, and goroutines where there is none,
	// each with plain and TLS sessions.
	for _, mode := range []struct {
		name     string
		tls      bool
		goroutes bool // disable the event loop
	}{{"Relay/EventLoop", false, false}, {"Relay/Goroutines", false, true}, {"Relay/TLS", true, false}, {"Relay/TLSGoroutines", true, true}} {
		t.Run(mode.name, func(t *testing.T) {
			cfg := Config{}
			o := connOpts{}
			if mode.tls {
				cfg.TLS, o.sslmode = testTLS(t), "require"
			}
			g := newGateway(t, cfg)
			if mode.goroutes {
				for _, r := range g.reactors {
					r.stop()
				}
				g.reactors = nil
			}
			a := freeAddr(t)
			apply(t, g, 1, private(a, "a", pg.Socket))
			c := mustConnect(t, a, pg, o)
			ctx := t.Context()
			if n := loopSessions(g); !mode.goroutes && len(g.reactors) > 0 && n != 1 {
				t.Errorf("the event loop relays %d sessions; want 1", n)
			}

			// A 16 MB value: messages far larger than any buffer.
			var n int
			var sum string
			if err := c.QueryRow(ctx, "select length(v), md5(v) from (select repeat('abcdefgh', 2*1024*1024) as v) s").Scan(&n, &sum); err != nil {
				t.Fatal(err)
			}
			var got string
			if err := c.QueryRow(ctx, "select repeat('abcdefgh', 2*1024*1024)").Scan(&got); err != nil || len(got) != n {
				t.Fatalf("16 MB value: %d bytes, %v; want %d", len(got), err, n)
			}

			// A slow reader: the relay must hold back, not drop or reorder.
			rows, err := c.Query(ctx, "select i, repeat(md5(i::text), 8) from generate_series(1, 200000) i")
			if err != nil {
				t.Fatal(err)
			}
			count := 0
			for rows.Next() {
				var i int
				var v string
				if err := rows.Scan(&i, &v); err != nil {
					t.Fatal(err)
				}
				count++
				if i != count || len(v) != 256 {
					t.Fatalf("row %d = %d, %d bytes", count, i, len(v))
				}
				if count == 1 {
					time.Sleep(200 * time.Millisecond) // let every buffer on the way fill up
				}
			}
			if err := rows.Err(); err != nil || count != 200000 {
				t.Fatalf("slow reader: %d rows, %v; want 200000", count, err)
			}

			// A large COPY: the client to server direction under back-pressure.
			if _, err := c.Exec(ctx, "create temporary table t (i int, v text)"); err != nil {
				t.Fatal(err)
			}
			src := make([][]any, 100000)
			for i := range src {
				src[i] = []any{i, strings.Repeat("y", 200)}
			}
			if n, err := c.CopyFrom(ctx, pgx.Identifier{"t"}, []string{"i", "v"}, pgx.CopyFromRows(src)); err != nil || n != int64(len(src)) {
				t.Fatalf("CopyFrom = %d, %v; want %d", n, err, len(src))
			}
			var total int64
			if err := c.QueryRow(ctx, "select sum(i) + sum(length(v)) from t").Scan(&total); err != nil || total != 99999*100000/2+200*100000 {
				t.Fatalf("copied data sums to %d, %v", total, err)
			}

			// Revocation, idle and mid-stream.
			c2 := mustConnect(t, a, pg, o)
			rows, err = c2.Query(ctx, "select repeat('z', 1000) from generate_series(1, 1000000)")
			if err != nil {
				t.Fatal(err)
			}
			rows.Next()
			start := time.Now()
			ep := private(a, "a", pg.Socket)
			ep.Refuse = "rejected"
			apply(t, g, 2, ep)
			for rows.Next() {
			}
			if took := time.Since(start); rows.Err() == nil || took > time.Second {
				t.Errorf("streaming session: %v after %v; want an error within 1s", rows.Err(), took)
			}
			err = selectOne(ctx, c)
			if pe := pgError(t, err); pe.Code != "57P01" || pe.Message != "terminating connection: rejected" {
				t.Errorf("idle session after revocation: %s %q; want 57P01", pe.Code, pe.Message)
			}
			waitNoSessions(t, g, "revocation")
		})
	}

	t.Run("ConcurrentApplyAndConnect", func(t *testing.T) {
		// Sessions admitted while policies flip are either revoked or admitted by the last one.
		g := newGateway(t, Config{})
		a := freeAddr(t)
		open := private(a, "a", pg.Socket)
		shut := open
		shut.Refuse = "rejected"
		apply(t, g, 1, open)
		var wg sync.WaitGroup
		stop := make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			rev := int64(2)
			for {
				select {
				case <-stop:
					return
				default:
				}
				ep := open
				if rev%2 == 0 {
					ep = shut
				}
				g.Apply(Snapshot{Revision: rev, Endpoints: []Endpoint{ep}})
				rev++
				time.Sleep(time.Millisecond)
			}
		}()
		for range 20 {
			if c, err := connect(t, a, pg, connOpts{}); err == nil {
				c.Close(t.Context())
			}
		}
		close(stop)
		wg.Wait()
		apply(t, g, 1000, shut)
		waitNoSessions(t, g, "the endpoint was shut")
	})
}

// waitNoSessions fails t unless g lists no session within a second of what. Clients see the
// revocation first; the gateway forgets a session as it closes it, a moment later.
func waitNoSessions(t *testing.T, g *Gateway, what string) {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for ss := g.Sessions(); len(ss) != 0; ss = g.Sessions() {
		if time.Now().After(deadline) {
			t.Errorf("Sessions() a second after %s = %v; want none", what, ss)
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestWaitApplied(t *testing.T) {
	g := newGateway(t, Config{})
	done := make(chan error, 1)
	go func() { done <- g.WaitApplied(t.Context(), 3) }()
	apply(t, g, 2)
	select {
	case err := <-done:
		t.Fatalf("WaitApplied(3) returned %v at revision 2", err)
	case <-time.After(20 * time.Millisecond):
	}
	apply(t, g, 3)
	if err := <-done; err != nil {
		t.Fatalf("WaitApplied(3) = %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancel()
	if err := g.WaitApplied(ctx, 9); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitApplied(9) with a short deadline = %v; want DeadlineExceeded", err)
	}
}

func TestApplyBindFailure(t *testing.T) {
	g := newGateway(t, Config{})
	busy := freeAddr(t)
	ln, err := net.Listen("tcp", busy.String())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	good := freeAddr(t)
	err = g.Apply(Snapshot{Revision: 1, Endpoints: []Endpoint{private(busy, "busy", ""), private(good, "good", "")}})
	if err == nil || !strings.Contains(err.Error(), busy.String()) {
		t.Errorf("Apply with a busy address = %v; want an error naming %s", err, busy)
	}
	if g.Applied() != 1 || g.Stats().Listeners != 1 {
		t.Errorf("after a partial bind: Applied() = %d, Listeners = %d; want 1, 1", g.Applied(), g.Stats().Listeners)
	}
	ln.Close()
	if err := g.Apply(Snapshot{Revision: 1, Endpoints: []Endpoint{private(busy, "busy", ""), private(good, "good", "")}}); err != nil {
		t.Errorf("Apply again once the address is free: %v", err)
	}
	if n := g.Stats().Listeners; n != 2 {
		t.Errorf("Listeners = %d; want 2", n)
	}
}
