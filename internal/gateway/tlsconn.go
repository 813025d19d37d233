package gateway

import "net"

// tlsTransport is the connection under a client's crypto/tls.Conn. While the connection's
// goroutine negotiates, it is the client's net.Conn, which it embeds. Once the event loop
// relays the session (s is set), its Read and Write belong to the loop: Read reads the
// non-blocking socket and reports errWouldBlock instead of waiting, and Write queues the
// ciphertext as the session's output to the client, which the loop flushes.
type tlsTransport struct {
	net.Conn
	s *rsess // set before the session is handed to the loop; nil until then
}

// errWouldBlock is what a tlsTransport in the event loop reads when the socket has nothing
// more. It is a temporary net.Error: crypto/tls keeps what it has read of a record and reads
// on at the next call.
var errWouldBlock error = wouldBlock{}

type wouldBlock struct{}

func (wouldBlock) Error() string   { return "read would block" }
func (wouldBlock) Timeout() bool   { return true }
func (wouldBlock) Temporary() bool { return true }
