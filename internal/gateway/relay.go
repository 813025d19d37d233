package gateway

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// Where there is no event loop (reactor_linux.go), the relay moves bytes with one goroutine
// per direction and no hand-offs between them. Reads
// of plain sockets wait for readiness through syscall.RawConn and only then borrow a buffer
// from a pool, so an idle session holds no relay buffer, however large the buffers are. The
// server-to-client direction tracks PostgreSQL message boundaries (1-byte type, 4-byte length)
// so that a revocation can end the stream with a well-formed FATAL ErrorResponse.

const (
	relayBufSize = 64 << 10 // bytes per read; PostgreSQL sends at most 8 KiB per send
	tlsBufSize   = 17 << 10 // one TLS record of plaintext and then some
)

var relayBufs = sync.Pool{New: func() any { b := make([]byte, relayBufSize); return &b }}

// pooledReader reads a plain socket into pooled buffers.
type pooledReader struct {
	rc  syscall.RawConn
	fn  func(fd uintptr) bool // r.read, bound once so that a Read does not allocate
	buf *[]byte
	n   int
	err error
}

func newPooledReader(sc syscall.Conn) (*pooledReader, error) {
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("raw conn: %w", err)
	}
	r := &pooledReader{rc: rc}
	r.fn = r.read
	return r, nil
}

// read is the RawConn callback: it reads if data is there and reports false (wait for
// readiness) if not, returning the buffer meanwhile.
func (r *pooledReader) read(fd uintptr) bool {
	if r.buf == nil {
		r.buf = relayBufs.Get().(*[]byte)
	}
	for {
		n, err := syscall.Read(int(fd), *r.buf)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			relayBufs.Put(r.buf)
			r.buf = nil
			return false
		case err != nil:
			r.err = os.NewSyscallError("read", err)
		case n == 0:
			r.err = io.EOF
		default:
			r.n = n
		}
		return true
	}
}

// Read waits for data and returns it in a pooled buffer, which the caller must put back
// (release). It returns an error, with no buffer, on EOF, on a closed socket or on a passed
// read deadline.
func (r *pooledReader) Read() (*[]byte, int, error) {
	r.n, r.err = 0, nil
	err := r.rc.Read(r.fn)
	b := r.buf
	r.buf = nil
	if err == nil {
		err = r.err
	}
	if err != nil {
		if b != nil {
			relayBufs.Put(b)
		}
		return nil, 0, err
	}
	return b, r.n, nil
}

func release(b *[]byte) { relayBufs.Put(b) }

// relay copies both ways between the client and up until either side ends, the session is
// revoked or killed. It returns when both directions are done.
func (c *conn) relay(up *net.UnixConn) {
	upDone := make(chan struct{})
	go func() {
		defer close(upDone)
		c.pumpUp(up)
		c.kill()
	}()
	c.pumpDown(up)
	c.kill()
	<-upDone
}

// pumpUp copies client to server.
func (c *conn) pumpUp(up *net.UnixConn) {
	if c.tls != nil {
		b := make([]byte, tlsBufSize)
		for {
			n, err := c.tls.Read(b)
			if n > 0 {
				if _, werr := up.Write(b[:n]); werr != nil {
					c.setEnd(fmt.Sprintf("write to server: %v", werr))
					return
				}
				c.bytesIn.Add(uint64(n))
			}
			if err != nil {
				c.endRead("client", err)
				return
			}
		}
	}
	r, err := newPooledReader(c.raw)
	if err != nil {
		c.setEnd(err.Error())
		return
	}
	for {
		b, n, err := r.Read()
		if err != nil {
			c.endRead("client", err)
			return
		}
		_, werr := up.Write((*b)[:n])
		release(b)
		if werr != nil {
			c.setEnd(fmt.Sprintf("write to server: %v", werr))
			return
		}
		c.bytesIn.Add(uint64(n))
	}
}

// endRead records why reading from side ended.
func (c *conn) endRead(side string, err error) {
	if errors.Is(err, io.EOF) {
		c.setEnd(side + " closed")
		return
	}
	c.setEnd(fmt.Sprintf("read from %s: %v", side, err))
}

// pumpDown copies server to client. When the session is revoked it ends the stream with the
// revocation's ErrorResponse at a message boundary: at once if it is at one, else after
// relaying the rest of the current message if that comes within revokeGrace; failing that it
// just returns, and the caller closes both sides.
func (c *conn) pumpDown(up *net.UnixConn) {
	r, err := newPooledReader(up)
	if err != nil {
		c.setEnd(err.Error())
		return
	}
	var f framer
	draining := false // revoked mid-message: finishing the message
	for {
		b, n, err := r.Read()
		if err != nil {
			rv := c.revoked.Load()
			switch {
			case rv != nil && f.atBoundary():
				c.cl.Write(revocation(rv))
				c.closeClient()
			case rv != nil && !draining && errors.Is(err, os.ErrDeadlineExceeded):
				draining = true
				up.SetReadDeadline(time.Now().Add(revokeGrace))
				continue
			case rv == nil:
				c.endRead("server", err)
				if errors.Is(err, io.EOF) {
					c.closeClient()
				}
			}
			return
		}
		chunk := (*b)[:n]
		cut := f.feed(chunk)
		if rv := c.revoked.Load(); rv != nil && cut >= 0 {
			// Forward what completes messages, then the revocation; drop the rest.
			_, werr := c.cl.Write(chunk[:cut])
			release(b)
			c.bytesOut.Add(uint64(cut))
			if werr == nil {
				c.cl.Write(revocation(rv))
				c.closeClient()
			}
			return
		}
		_, werr := c.cl.Write(chunk)
		release(b)
		if werr != nil {
			c.setEnd(fmt.Sprintf("write to client: %v", werr))
			return
		}
		c.bytesOut.Add(uint64(n))
	}
}

// closeClient ends the client side gracefully: with TLS, a close_notify alert.
func (c *conn) closeClient() {
	if c.tls != nil {
		c.tls.Close()
	}
}

// framer follows PostgreSQL backend message boundaries in a byte stream: each message is a
// type byte, a 4-byte big-endian length that counts itself, and the body.
type framer struct {
	rem    int64   // bytes of the current message still to come
	hdr    [5]byte // a header split across reads
	hn     int     // bytes of hdr collected
	broken bool    // a length below 4 was seen: boundaries are lost
}

// atBoundary reports whether every byte fed so far ends a whole message.
func (f *framer) atBoundary() bool { return f.rem == 0 && f.hn == 0 && !f.broken }

// feed consumes p and returns the offset in p just past the last message boundary in it (0
// if p starts at a boundary and no message in it is complete), or -1 if p has no boundary.
func (f *framer) feed(p []byte) int {
	last := -1
	if f.atBoundary() {
		last = 0
	}
	if f.broken {
		return -1
	}
	i := 0
	for i < len(p) {
		if f.rem > 0 {
			k := int64(len(p) - i)
			if k > f.rem {
				k = f.rem
			}
			i += int(k)
			f.rem -= k
			if f.rem == 0 {
				last = i
			}
			continue
		}
		var l uint32
		if f.hn == 0 && len(p)-i >= 5 {
			l = binary.BigEndian.Uint32(p[i+1:])
			i += 5
		} else {
			k := copy(f.hdr[f.hn:], p[i:])
			f.hn += k
			i += k
			if f.hn < 5 {
				break
			}
			f.hn = 0
			l = binary.BigEndian.Uint32(f.hdr[1:])
		}
		if l < 4 {
			f.broken = true
			return -1
		}
		f.rem = int64(l) - 4
		if f.rem == 0 {
			last = i
		}
	}
	return last
}
