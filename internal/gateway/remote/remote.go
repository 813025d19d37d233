// Package remote carries the gateway's control channel across a process boundary, so that the
// data plane can outlive the control plane: `pglink gateway` runs a gateway.Gateway and answers
// on a private unix socket with a Server; `pglink serve` drives it through a Client.
//
// # Protocol
//
// Version 1. The channel is a unix stream socket that only the gateway's own user may use (the
// socket is mode 0600 in a 0700 directory, and the server checks the peer's uid with
// SO_PEERCRED). One client is attached at a time; another is refused until the first one goes.
// Each message is one JSON object on one line (JSON lines), at most MaxMessage bytes with its
// newline. The client speaks first and waits for each answer before it sends the next request:
//
//	→ {"op":"hello","version":1,"pid":123}
//	← {"ok":true,"version":1,"pid":456,"applied":41}
//	→ {"op":"certs","certs":{"caCert":"PEM","caKey":"PEM","cert":"PEM","key":"PEM"}}
//	← {"ok":true}
//	→ {"op":"apply","snapshot":{"Revision":42,"Endpoints":[…]}}
//	← {"ok":true,"applied":42,"applyError":"listen on …"}
//	→ {"op":"stats"}
//	← {"ok":true,"stats":{…gateway.Stats…}}
//	→ {"op":"sessions","server":"/subscriptions/…/flexibleServers/orders-db"}
//	← {"ok":true,"sessions":[{…gateway.SessionInfo…}]}
//	→ {"op":"ping"}
//	← {"ok":true,"applied":42}
//	→ {"op":"stop","reason":"…"}
//	← {"ok":true}                      (then the gateway ends every session and exits)
//
// A request that fails gets {"ok":false,"error":"…"}. A hello of another version is answered
// {"ok":false,"error":"…"} naming both versions, and the connection is closed. The snapshot
// and stats are gateway.Snapshot and gateway.Stats in encoding/json's default form, so fields
// added to them travel without changes here. "applied" is the revision the gateway has in
// force; "applyError" reports what Apply could not do (an address it could not bind, say)
// although it applied the rest.
package remote

import (
	"encoding/json"
	"errors"

	"github.com/pglink/pglink/internal/gateway"
)

// Version is the protocol version this package speaks.
const Version = 1

// MaxMessage bounds one message, newline included: a snapshot of some hundred thousand
// endpoints fits.
const MaxMessage = 64 << 20

// Certs is the certificate material the gateway serves TLS with, PEM encoded. CACert and CAKey,
// when set, are the local CA that issues a certificate per endpoint address; Cert and Key (a
// chain and its key) are served when no CA is set or no address is known.
type Certs struct {
	CACert string `json:"caCert,omitempty"`
	CAKey  string `json:"caKey,omitempty"`
	Cert   string `json:"cert"`
	Key    string `json:"key"`
}

// request is a message from the client.
type request struct {
	Op       string            `json:"op"`
	Version  int               `json:"version,omitempty"`
	PID      int               `json:"pid,omitempty"`
	Certs    *Certs            `json:"certs,omitempty"`
	Snapshot *gateway.Snapshot `json:"snapshot,omitempty"`
	Reason   string            `json:"reason,omitempty"`
	Server   string            `json:"server,omitempty"` // of sessions
}

// response is a message from the server.
type response struct {
	OK         bool           `json:"ok"`
	Error      string         `json:"error,omitempty"`
	Version    int            `json:"version,omitempty"`
	PID        int            `json:"pid,omitempty"`
	Applied    int64          `json:"applied,omitempty"`
	ApplyError string         `json:"applyError,omitempty"`
	Stats      *gateway.Stats `json:"stats,omitempty"`
	// Sessions answers "sessions" (a gateway that predates the op answers an error).
	Sessions []gateway.SessionInfo `json:"sessions,omitempty"`
}

// ErrTooLarge is returned for a message over MaxMessage.
var ErrTooLarge = errors.New("control message too large")

// encode marshals v as one line.
func encode(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	if len(b)+1 > MaxMessage {
		return nil, ErrTooLarge
	}
	return append(b, '\n'), nil
}
