package gateway

import (
	"bytes"
	"io"
	"net"
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
	dir, err := os.MkdirTemp("", "pglecho")
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
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return dir
}

// startupMessage is a protocol 3.0 StartupMessage for user and database "postgres".
func startupMessage() []byte {
	body := cat(be32(196608), []byte("user\x00postgres\x00database\x00postgres\x00\x00"))
	return cat(be32(4+len(body)), body)
}

// TestPipeliningClient sends a large stream without reading the answers for a while, then reads
// them all: the relay must resume in both directions once the client reads, even when a write
// to the server came up short while output to the client was pending.
func TestPipeliningClient(t *testing.T) {
	for _, reactors := range []int{1} {
		t.Run(map[int]string{1: "OneReactor", 2: "TwoReactors"}[reactors], func(t *testing.T) {
			g := newGateway(t, Config{})
			if g.reactor == nil {
				t.Skip("no event loop on this platform")
			}
			a := freeAddr(t)
			apply(t, g, 1, private(a, "a", echoUpstream(t)))
			nc, err := net.Dial("tcp", a.String())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			start := startupMessage()
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
