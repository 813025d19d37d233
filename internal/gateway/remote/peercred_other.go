//go:build !linux

package remote

import (
	"errors"
	"net"
)

// peerCred is unavailable without SO_PEERCRED: every peer is refused.
func peerCred(*net.UnixConn) (uid, pid int, err error) {
	return 0, 0, errors.New("peer credentials need Linux")
}
