package gateway

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Codes of the messages a client may open a connection with (PostgreSQL protocol, "Message
// Formats"): the first four bytes after the length.
const (
	sslRequestCode    = 80877103
	gssEncRequestCode = 80877104
	cancelRequestCode = 80877102
	maxStartupLen     = 10000 // PostgreSQL's MAX_STARTUP_PACKET_LENGTH
	socketName        = ".s.PGSQL.5432"
	revokeGrace       = 200 * time.Millisecond // how long a revoked session may take to write its last bytes
)

// aLongTimeAgo is a deadline in the past: setting it wakes a blocked read or write.
var aLongTimeAgo = time.Unix(1, 0)

// conn is one accepted client connection: its negotiation and, once admitted, its session.
// Its goroutine (run) is owned by the Gateway and ends when either side closes, on
// revocation or on Close.
type conn struct {
	g      *Gateway
	id     uint64
	listen netip.AddrPort // the endpoint address the client dialed
	client netip.AddrPort // the client's source address
	raw    *net.TCPConn
	ended  chan struct{} // closed when run returns

	// Set by run before admitted is set (under g.mu); read-only afterwards.
	ep       *Endpoint
	started  time.Time
	admitted bool // guarded by g.mu

	cl         net.Conn      // the client side as the relay sees it: raw or tlsc; owned by run
	tls        *tls.Conn     // non-nil after an SSLRequest
	tt         *tlsTransport // what tls reads and writes
	tlsVersion uint16        // the negotiated TLS version, 0 for plaintext; set before admitted

	mu     sync.Mutex
	up     *net.UnixConn // guarded by mu
	rs     *rsess        // non-nil once the reactor relays the session; guarded by mu
	killed atomic.Bool   // kill was called

	revoked  atomic.Pointer[decision] // set once by revokeWith
	end      atomic.Pointer[string]   // first cause of the session's end, for the log
	bytesIn  atomic.Uint64            // client to server
	bytesOut atomic.Uint64            // server to client
}

// revokeWith marks c revoked by d and wakes its relay: the relay then writes the FATAL
// ErrorResponse at a message boundary, or closes both sides if it is mid-message.
func (c *conn) revokeWith(d decision) {
	if !c.revoked.CompareAndSwap(nil, &d) {
		return
	}
	c.setEnd("revoked: " + d.msg)
	c.mu.Lock()
	up, rs := c.up, c.rs
	c.mu.Unlock()
	if rs != nil {
		rs.revoke()
		return
	}
	c.raw.SetWriteDeadline(time.Now().Add(revokeGrace))
	if up != nil {
		up.SetReadDeadline(aLongTimeAgo)
	}
}

// kill closes both sides at once.
func (c *conn) kill() {
	c.killed.Store(true)
	c.mu.Lock()
	up, rs := c.up, c.rs
	c.mu.Unlock()
	if rs != nil {
		rs.kill()
		return
	}
	c.raw.Close()
	if up != nil {
		up.Close()
	}
}

func (c *conn) setEnd(why string) { c.end.CompareAndSwap(nil, &why) }

// outcome is what run logs when it ends.
type outcome struct {
	decision string // admitted, refused, cancel, closed (before a decision)
	reason   Reason
	msg      string
	user     string
	database string
}

// run serves the connection until it ends.
func (c *conn) run() {
	g := c.g
	start := g.now()
	var out outcome
	defer func() {
		c.kill()
		c.log(out, start)
		close(c.ended)
		g.forget(c)
	}()
	// Deadlines follow the real clock, whatever Config.Now says.
	c.raw.SetDeadline(time.Now().Add(g.cfg.StartupTimeout))
	c.cl = c.raw
	// As in PostgreSQL, at most one SSLRequest and one GSSENCRequest precede the startup or
	// cancel message.
	sslDone, gssDone := false, false
	for {
		msg, err := readStartup(c.cl)
		if err != nil {
			out.decision, out.msg = "closed", err.Error()
			return
		}
		switch code := binary.BigEndian.Uint32(msg[4:8]); code {
		case sslRequestCode:
			if sslDone {
				out.decision, out.msg = "closed", "second SSLRequest"
				return
			}
			sslDone = true
			if g.cfg.TLS == nil {
				if _, err := c.raw.Write([]byte{'N'}); err != nil {
					out.decision, out.msg = "closed", err.Error()
					return
				}
				continue
			}
			if _, err := c.raw.Write([]byte{'S'}); err != nil {
				out.decision, out.msg = "closed", err.Error()
				return
			}
			// The endpoint's ssl_min_protocol_version applies to the handshake; the decision
			// checks the negotiated version again under the policy it is taken with.
			c.tt = &tlsTransport{Conn: c.raw}
			tc := tls.Server(c.tt, g.tlsConfig(g.policy.Load().byAddr[c.listen]))
			if err := tc.Handshake(); err != nil {
				out.decision, out.msg = "closed", fmt.Sprintf("TLS handshake: %v", err)
				return
			}
			c.tls, c.cl, c.tlsVersion = tc, tc, tc.ConnectionState().Version
		case gssEncRequestCode:
			if gssDone || c.tls != nil {
				out.decision, out.msg = "closed", "unexpected GSSENCRequest"
				return
			}
			gssDone = true
			if _, err := c.raw.Write([]byte{'N'}); err != nil {
				out.decision, out.msg = "closed", err.Error()
				return
			}
		case cancelRequestCode:
			out = c.cancel(msg)
			return
		default:
			if code>>16 != 3 {
				out.decision, out.msg = "closed", fmt.Sprintf("unsupported frontend protocol %d.%d", code>>16, code&0xffff)
				c.cl.Write(errorResponse("08P01", out.msg, "This server supports protocol 3.0."))
				return
			}
			out = c.session(msg)
			return
		}
	}
}

// readStartup reads one length-prefixed message without a type byte, exactly: nothing past it
// is consumed, so no plaintext can be smuggled before a TLS handshake.
func readStartup(r io.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, fmt.Errorf("read startup message: %w", err)
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n < 8 || n > maxStartupLen {
		return nil, fmt.Errorf("invalid length of startup packet: %d", n)
	}
	msg := make([]byte, n)
	copy(msg, hdr[:])
	if _, err := io.ReadFull(r, msg[4:]); err != nil {
		return nil, fmt.Errorf("read startup message: %w", err)
	}
	return msg, nil
}

// session decides on a startup message and, if admitted, relays the session.
func (c *conn) session(msg []byte) outcome {
	g := c.g
	out := outcome{decision: "refused"}
	if v := binary.BigEndian.Uint32(msg[4:8]); v == pgproto3.ProtocolVersion30 || v == pgproto3.ProtocolVersion32 {
		var sm pgproto3.StartupMessage
		if err := sm.Decode(msg[4:]); err != nil {
			out.decision, out.msg = "closed", fmt.Sprintf("startup message: %v", err)
			c.cl.Write(errorResponse("08P01", "invalid startup packet layout", ""))
			return out
		}
		out.user, out.database = sm.Parameters["user"], sm.Parameters["database"]
	}

	t0 := g.now()
	p := g.policy.Load()
	d := p.decideSession(c.listen, c.client.Addr(), c.tlsVersion, nil)
	for d.admit {
		c.ep, c.started = d.ep, g.now()
		cur, ok := g.admit(c, p)
		if ok {
			break
		}
		p = cur
		d = p.decideSession(c.listen, c.client.Addr(), c.tlsVersion, nil)
	}
	g.stats.observe(g.now().Sub(t0))
	if !d.admit {
		c.ep = d.ep // for the log; c is not admitted, so no one else reads it
		g.stats.refuse(d.reason)
		out.reason, out.msg = d.reason, d.msg
		c.cl.Write(errorResponse("28000", d.msg, d.hint))
		return out
	}
	g.stats.admitted.Add(1)
	out.decision = "admitted"

	up, err := c.dial(d.ep)
	if err != nil {
		c.setEnd(err.Error())
		c.cl.Write(errorResponse("57P03", fmt.Sprintf("server %q is not accepting connections", d.ep.ServerName),
			"The server may be starting or stopping; try again in a moment."))
		return out
	}
	// The session has no deadline from here on: PostgreSQL bounds authentication, and an idle
	// session may stay idle.
	c.raw.SetDeadline(time.Time{})
	c.mu.Lock()
	c.up = up
	c.mu.Unlock()
	if c.killed.Load() {
		return out
	}
	if rv := c.revoked.Load(); rv != nil {
		c.cl.Write(revocation(rv))
		return out
	}
	if _, err := up.Write(msg); err != nil {
		c.setEnd(fmt.Sprintf("send startup message: %v", err))
		return out
	}
	c.bytesIn.Add(uint64(len(msg)))
	if r := g.loop(c.id); r != nil && r.handoff(c, up) {
		return out
	}
	c.relay(up)
	return out
}

// dial connects to ep's PostgreSQL.
func (c *conn) dial(ep *Endpoint) (*net.UnixConn, error) {
	path := filepath.Join(ep.Upstream, socketName)
	d := net.Dialer{Timeout: c.g.cfg.DialTimeout}
	nc, err := d.Dial("unix", path)
	if err != nil {
		c.g.log.Error("dial upstream", "server", ep.Server, "socket", path, "err", err)
		return nil, fmt.Errorf("dial upstream %s: %w", path, err)
	}
	return nc.(*net.UnixConn), nil
}

// cancel forwards a CancelRequest to the endpoint's PostgreSQL if the endpoint admits this
// client now, and waits until PostgreSQL has read it (it closes the connection), as the client
// will wait for the gateway.
func (c *conn) cancel(msg []byte) outcome {
	g := c.g
	out := outcome{decision: "cancel"}
	var cr pgproto3.CancelRequest
	if err := cr.Decode(msg[4:]); err != nil {
		out.decision, out.msg = "closed", fmt.Sprintf("cancel request: %v", err)
		return out
	}
	d := g.policy.Load().decide(c.listen, c.client.Addr(), nil)
	c.ep = d.ep
	if !d.admit {
		out.reason, out.msg = d.reason, "not forwarded: "+d.msg
		return out
	}
	up, err := c.dial(d.ep)
	if err != nil {
		out.msg = err.Error()
		return out
	}
	defer up.Close()
	up.SetDeadline(time.Now().Add(g.cfg.DialTimeout))
	if _, err := up.Write(msg); err != nil {
		out.msg = fmt.Sprintf("forward: %v", err)
		return out
	}
	g.stats.cancels.Add(1)
	io.Copy(io.Discard, up)
	out.msg = fmt.Sprintf("forwarded for process %d", cr.ProcessID)
	return out
}

// log writes the connection's one log line.
func (c *conn) log(out outcome, start time.Time) {
	attrs := []slog.Attr{
		slog.Uint64("session", c.id),
		slog.String("listen", c.listen.String()),
		slog.String("client", c.client.String()),
	}
	if c.ep != nil {
		attrs = append(attrs, slog.String("endpoint", c.ep.ID), slog.String("kind", c.ep.Kind.String()),
			slog.String("server", c.ep.Server))
	}
	attrs = append(attrs, slog.String("decision", out.decision))
	if out.reason != "" {
		attrs = append(attrs, slog.String("reason", string(out.reason)))
	}
	if out.msg != "" {
		attrs = append(attrs, slog.String("msg", out.msg))
	}
	if out.user != "" {
		attrs = append(attrs, slog.String("user", out.user), slog.String("database", out.database))
	}
	attrs = append(attrs, slog.Duration("duration", c.g.now().Sub(start)))
	if out.decision == "admitted" {
		if e := c.end.Load(); e != nil {
			attrs = append(attrs, slog.String("end", *e))
		}
		attrs = append(attrs, slog.Uint64("bytes_in", c.bytesIn.Load()), slog.Uint64("bytes_out", c.bytesOut.Load()))
	}
	c.g.log.LogAttrs(context.Background(), slog.LevelInfo, "session", attrs...)
}

// errorResponse encodes a FATAL ErrorResponse.
func errorResponse(code, msg, hint string) []byte {
	b, err := (&pgproto3.ErrorResponse{
		Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: code, Message: msg, Hint: hint,
	}).Encode(nil)
	if err != nil {
		// Encode fails only for a message over 1 GiB, which none of ours is.
		panic(fmt.Sprintf("encode ErrorResponse: %v", err))
	}
	return b
}

// revocation is the ErrorResponse that ends a revoked session.
func revocation(d *decision) []byte {
	return errorResponse("57P01", "terminating connection: "+d.msg, d.hint)
}
