package remote

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/pglink/pglink/internal/gateway"
)

// callTimeout bounds one request and its answer when ctx has no earlier deadline. Apply may
// wait about a second for revoked sessions to end.
const callTimeout = 30 * time.Second

// ErrBusy is returned by Dial while another client is attached. A client that has just gone
// may still count for a moment: retry.
var ErrBusy = errors.New("another client is attached")

// ApplyError is what the gateway could not apply of a snapshot it otherwise put in force (an
// address it could not bind, an address claimed twice).
type ApplyError struct{ Msg string }

func (e *ApplyError) Error() string { return e.Msg }

// Client is the control end of a gateway process. It is safe for concurrent use; requests are
// sent one at a time. Once a request fails on the connection (not with an answer), the Client
// is broken: every later call fails and Done is closed.
type Client struct {
	pid     int   // the gateway's process id
	applied int64 // the gateway's revision at hello

	mu     sync.Mutex // serializes requests; guards the fields below
	conn   *net.UnixConn
	sc     *bufio.Scanner
	broken error
	done   chan struct{} // closed when broken
}

// Dial connects to the gateway's control socket at path and says hello. It fails if nothing
// listens there, if the gateway speaks another protocol version, or if another client is
// attached.
func Dial(ctx context.Context, path string) (*Client, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("dial gateway control socket: %w", err)
	}
	c := &Client{conn: nc.(*net.UnixConn), done: make(chan struct{})}
	c.sc = bufio.NewScanner(c.conn)
	c.sc.Buffer(make([]byte, 0, 64<<10), MaxMessage)
	resp, err := c.call(ctx, request{Op: "hello", Version: Version, PID: os.Getpid()})
	if err != nil {
		c.Close()
		if strings.Contains(resp.Error, busyMessage) {
			return nil, fmt.Errorf("gateway at %s: %w: %s", path, ErrBusy, resp.Error)
		}
		return nil, fmt.Errorf("gateway at %s: %w", path, err)
	}
	if resp.Version != Version {
		c.Close()
		return nil, fmt.Errorf("gateway at %s speaks control protocol version %d; want %d", path, resp.Version, Version)
	}
	c.pid, c.applied = resp.PID, resp.Applied
	return c, nil
}

// PID returns the gateway's process id.
func (c *Client) PID() int { return c.pid }

// Applied returns the revision the gateway had in force when the Client attached.
func (c *Client) Applied() int64 { return c.applied }

// Done is closed once the connection is broken or closed.
func (c *Client) Done() <-chan struct{} { return c.done }

// call sends req and reads the answer. An error answer is returned as an error, the Client
// intact; an I/O error breaks the Client.
func (c *Client) call(ctx context.Context, req request) (response, error) {
	b, err := encode(req)
	if err != nil {
		return response{}, fmt.Errorf("%s: %w", req.Op, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken != nil {
		return response{}, c.broken
	}
	deadline := time.Now().Add(callTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	c.conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { c.conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := c.conn.Write(b); err != nil {
		return response{}, c.breakLocked(fmt.Errorf("send %s: %w", req.Op, err))
	}
	if !c.sc.Scan() {
		err := c.sc.Err()
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return response{}, c.breakLocked(fmt.Errorf("read answer to %s: %w", req.Op, err))
	}
	var resp response
	if err := json.Unmarshal(c.sc.Bytes(), &resp); err != nil {
		return response{}, c.breakLocked(fmt.Errorf("decode answer to %s: %w", req.Op, err))
	}
	if !resp.OK {
		return resp, fmt.Errorf("%s: %s", req.Op, resp.Error)
	}
	return resp, nil
}

func (c *Client) breakLocked(err error) error {
	if c.broken == nil {
		c.broken = err
		c.conn.Close()
		close(c.done)
	}
	return err
}

// Ping returns the revision the gateway has in force.
func (c *Client) Ping(ctx context.Context) (int64, error) {
	resp, err := c.call(ctx, request{Op: "ping"})
	return resp.Applied, err
}

// SetCerts installs the certificate material the gateway serves TLS with.
func (c *Client) SetCerts(ctx context.Context, certs Certs) error {
	_, err := c.call(ctx, request{Op: "certs", Certs: &certs})
	return err
}

// Apply makes s the gateway's policy and returns the revision in force afterwards. Like
// gateway.Gateway.Apply it applies what it can: an *ApplyError reports the rest, with the
// revision applied.
func (c *Client) Apply(ctx context.Context, s gateway.Snapshot) (int64, error) {
	resp, err := c.call(ctx, request{Op: "apply", Snapshot: &s})
	if err != nil {
		return 0, err
	}
	if resp.ApplyError != "" {
		return resp.Applied, &ApplyError{Msg: resp.ApplyError}
	}
	return resp.Applied, nil
}

// Stats returns the gateway's counters.
func (c *Client) Stats(ctx context.Context) (gateway.Stats, error) {
	resp, err := c.call(ctx, request{Op: "stats"})
	if err != nil {
		return gateway.Stats{}, err
	}
	if resp.Stats == nil {
		return gateway.Stats{}, errors.New("stats: empty answer")
	}
	return *resp.Stats, nil
}

// ServerSessions returns the open sessions of the server with ARM ID server.
func (c *Client) ServerSessions(ctx context.Context, server string) ([]gateway.SessionInfo, error) {
	resp, err := c.call(ctx, request{Op: "sessions", Server: server})
	if err != nil {
		return nil, err
	}
	if resp.Sessions == nil {
		return []gateway.SessionInfo{}, nil
	}
	return resp.Sessions, nil
}

// Stop asks the gateway to end every session (57P01 with reason) and exit, and waits until it
// has closed the connection, which it does as it exits, or ctx is done.
func (c *Client) Stop(ctx context.Context, reason string) error {
	if _, err := c.call(ctx, request{Op: "stop", Reason: reason}); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.conn.SetDeadline(time.Time{})
	stop := context.AfterFunc(ctx, func() { c.conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	_, err := io.Copy(io.Discard, c.conn)
	c.breakLocked(errors.New("gateway stopped"))
	if err != nil {
		return fmt.Errorf("wait for the gateway to exit: %w", err)
	}
	return nil
}

// Close detaches from the gateway, which keeps running. It is idempotent.
func (c *Client) Close() error {
	c.conn.Close() // ends a request in flight
	c.mu.Lock()
	defer c.mu.Unlock()
	c.breakLocked(errors.New("control connection closed"))
	return nil
}
