package gateway

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// echoUpstream is a unix socket that stands in for PostgreSQL: it writes back whatever it
// reads, one read then one blocking write at a time, so that it stops reading while the
// gateway does not take its output.
func echoUpstream(t *testing.T) string {
	t.Helper()
	return fakeUpstream(t, func(c net.Conn) {
		b := make([]byte, 32<<10)
		for {
			n, err := c.Read(b)
			if n > 0 {
				if _, err := c.Write(b[:n]); err != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	})
}

// fakeUpstream listens on a unix socket in a directory of its own, as a cluster's socket, and
// serves each connection with serve on a goroutine, closing it afterwards. It returns the
// directory; the listener is closed when the test ends.
func fakeUpstream(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pglfake")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ln, err := net.Listen("unix", filepath.Join(dir, socketName))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return dir
}

// TestPipeliningClient sends a large stream without reading the answers for a while, then reads
// them all: the relay must resume in both directions once the client reads, even when a write
// to the server came up short while output to the client was pending.
func TestPipeliningClient(t *testing.T) {
	for _, reactors := range []int{1, 2} {
		t.Run(map[int]string{1: "OneReactor", 2: "TwoReactors"}[reactors], func(t *testing.T) {
			g := newGateway(t, Config{Reactors: reactors})
			if len(g.reactors) == 0 {
				if os.Getenv("CI") == "true" {
					t.Fatal("no event loop on this platform; CI runs on Linux, where there is one")
				}
				t.Skip("no event loop on this platform")
			}
			a := freeAddr(t)
			apply(t, g, 1, private(a, "a", echoUpstream(t)))
			nc, err := net.Dial("tcp", a.String())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			start := startup
			const size = 64 << 20
			sent := make([]byte, size)
			for i := range sent {
				sent[i] = byte(i * 7)
			}
			wrote := make(chan error, 1)
			go func() {
				if _, err := nc.Write(start); err != nil {
					wrote <- err
					return
				}
				_, err := nc.Write(sent)
				wrote <- err
			}()
			time.Sleep(300 * time.Millisecond) // every buffer on the way fills up
			nc.SetReadDeadline(time.Now().Add(20 * time.Second))
			got := make([]byte, len(start)+size)
			if n, err := io.ReadFull(nc, got); err != nil {
				t.Fatalf("read %d of %d echoed bytes: %v", n, len(got), err)
			}
			if err := <-wrote; err != nil {
				t.Fatalf("write: %v", err)
			}
			if !bytes.Equal(got[:len(start)], start) || !bytes.Equal(got[len(start):], sent) {
				t.Error("echoed stream differs from what was sent")
			}
		})
	}
}

// scriptedUpstream is a unix socket that stands in for PostgreSQL and trusts every client: it
// answers a startup message with AuthenticationOk and ReadyForQuery, then writes to the session
// whatever the test sends on the channel it returns, one session at a time.
func scriptedUpstream(t *testing.T) (dir string, sessions <-chan chan<- []byte) {
	t.Helper()
	ch := make(chan chan<- []byte, 4)
	dir = fakeUpstream(t, func(c net.Conn) {
		if _, err := readStartup(c); err != nil {
			return
		}
		c.Write(readyFrames)
		out := make(chan []byte)
		ch <- out
		go io.Copy(io.Discard, c)
		for b := range out {
			if _, err := c.Write(b); err != nil {
				return
			}
		}
	})
	return dir, ch
}

// readyFrames are AuthenticationOk and ReadyForQuery (idle).
var readyFrames = cat([]byte{'R'}, be32(8), be32(0), []byte{'Z'}, be32(5), []byte{'I'})

// tlsSession opens a TLS session through the gateway at addr and reads the server's
// AuthenticationOk and ReadyForQuery.
func tlsSession(t *testing.T, addr netip.AddrPort) *tls.Conn {
	t.Helper()
	nc, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	var answer [1]byte
	if _, err := nc.Write(sslRequest); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(nc, answer[:]); err != nil || answer[0] != 'S' {
		t.Fatalf("SSLRequest answered %q, %v; want S", answer[:], err)
	}
	tc := tls.Client(nc, &tls.Config{InsecureSkipVerify: true})
	if _, err := tc.Write(startup); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(readyFrames))
	if _, err := io.ReadFull(tc, got); err != nil || !bytes.Equal(got, readyFrames) {
		t.Fatalf("after the startup message: %q, %v; want %q", got, err, readyFrames)
	}
	return tc
}

// TestRevokeOverTLS revokes TLS sessions relayed by the event loop, one idle and one in the
// middle of a message from the server: each client reads, inside its TLS stream, the rest of
// the current message and then exactly the FATAL 57P01 ErrorResponse, and then the end of the
// stream.
func TestRevokeOverTLS(t *testing.T) {
	up, sessions := scriptedUpstream(t)
	g := newGateway(t, Config{TLS: testTLS(t), Reactors: 2}) // a session on each
	a := freeAddr(t)
	apply(t, g, 1, private(a, "a", up))

	idle := tlsSession(t, a)
	<-sessions
	busy := tlsSession(t, a)
	toBusy := <-sessions
	if n := loopSessions(g); len(g.reactors) > 0 && n != 2 {
		t.Fatalf("the event loops relay %d sessions; want both TLS sessions", n)
	}

	// A message split in two: the revocation comes between its halves.
	row := cat([]byte{'D'}, be32(4+6000), bytes.Repeat([]byte{'x'}, 6000))
	toBusy <- row[:1000]
	got := make([]byte, 1000)
	if _, err := io.ReadFull(busy, got); err != nil {
		t.Fatal(err)
	}
	applied := make(chan struct{})
	go func() {
		defer close(applied)
		ep := private(a, "a", up)
		ep.Refuse = "rejected"
		apply(t, g, 2, ep)
	}()
	time.Sleep(50 * time.Millisecond)
	toBusy <- row[1000:]
	close(toBusy)
	<-applied

	want := revocation(&decision{msg: "rejected"})
	if got, err := io.ReadAll(idle); !bytes.Equal(got, want) || err != nil {
		t.Errorf("idle TLS session after a revocation read %q, %v; want %q and EOF", got, err, want)
	}
	if got, err := io.ReadAll(busy); !bytes.Equal(got, cat(row[1000:], want)) || err != nil {
		t.Errorf("TLS session revoked mid-message read %d bytes, %v; want the rest of the message, then %q, then EOF", len(got), err, want)
	}
	waitNoSessions(t, g, "revocation")
}

// loopSessions counts the sessions that the event loops relay.
func loopSessions(g *Gateway) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for c := range g.conns {
		c.mu.Lock()
		if c.rs != nil {
			n++
		}
		c.mu.Unlock()
	}
	return n
}
