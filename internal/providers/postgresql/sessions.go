package postgresql

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pglink/pglink/internal/arm"
	"github.com/pglink/pglink/internal/resource"
	"github.com/pglink/pglink/internal/store"
)

// TypeSession is pglink's read-only child of a flexible server: the client sessions its
// data-plane node's gateway holds open, through the public endpoint or a private endpoint.
// Listing them needs Microsoft.DBforPostgreSQL/flexibleServers/sessions/read on the server.
const TypeSession = Namespace + "/flexibleServers/sessions"

// OpenSession is one open session as a data-plane node's gateway reports it.
type OpenSession struct {
	ID              uint64    // unique within the node's gateway
	PrivateEndpoint string    // ARM ID of the private endpoint the client came through; "" for public
	Client          string    // the client's address, "ip:port"
	Listen          string    // the endpoint address the client dialled
	TLS             bool      // the client negotiated TLS
	Started         time.Time // when it was admitted
	BytesIn         uint64    // client to server
	BytesOut        uint64    // server to client
}

// Sessions finds the open sessions of servers for the sessions type.
type Sessions interface {
	// Local returns the open sessions of server on this process's data-plane node.
	Local(ctx context.Context, server resource.ID) ([]OpenSession, error)
	// Owner returns the name of the node that holds the server whose data plane names node
	// and address ("" when no node is known for it).
	Owner(ctx context.Context, tx store.Tx, node, address string) (string, error)
	// Forward answers req from the server's node, another replica: its list as that replica
	// sent it, or its error.
	Forward(ctx context.Context, req *arm.Request, node string) (*arm.Response, error)
}

// SetSessions sets where the sessions type finds open sessions; without it a server has none
// (there is no data plane).
func (p *Provider) SetSessions(s Sessions) { p.sessions = s }

// Session is the ARM shape of an open session.
type Session struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Type       string            `json:"type"`
	Properties SessionProperties `json:"properties"`
}

// SessionProperties are an open session's properties.
type SessionProperties struct {
	// Kind is "Public" or "PrivateEndpoint": the endpoint the client came through.
	Kind                      string       `json:"kind"`
	PrivateEndpoint           *SubResource `json:"privateEndpoint,omitempty"`
	PrivateEndpointConnection *SubResource `json:"privateEndpointConnection,omitempty"`
	ClientAddress             string       `json:"clientAddress"`
	EndpointAddress           string       `json:"endpointAddress"`
	TLS                       bool         `json:"tls"`
	StartTime                 time.Time    `json:"startTime"`
	BytesIn                   uint64       `json:"bytesIn"`
	BytesOut                  uint64       `json:"bytesOut"`
	Node                      string       `json:"node"`
}

// serveSessions lists a server's open sessions (GET …/flexibleServers/{server}/sessions) or
// shows one (…/sessions/{id}). The server's own node answers; another replica forwards the
// request to it.
func (p *Provider) serveSessions(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	if req.Method != http.MethodGet {
		return nil, arm.MethodNotAllowed(req)
	}
	t := req.Target
	server := t.Parent()
	var owner string
	conns := map[string]string{} // private endpoint ID (lower case) -> connection ID
	err := p.view(ctx, func(tx store.Tx) error {
		s, r, err := loadServer(ctx, tx, server)
		if err != nil {
			return err
		}
		if p.sessions == nil || s.Properties.DataPlane == nil {
			return nil
		}
		if owner, err = p.sessions.Owner(ctx, tx, s.Properties.DataPlane.Node, s.Properties.DataPlane.Address); err != nil {
			return err
		}
		all, err := tx.List(ctx, store.ListOptions{Parent: r.Key, Type: resource.TypeConnection})
		if err != nil {
			return err
		}
		for _, cr := range all {
			var c Connection
			if json.Unmarshal(cr.Body, &c) == nil && c.Properties.PrivateEndpoint != nil {
				conns[strings.ToLower(c.Properties.PrivateEndpoint.ID)] = cr.ID
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var open []OpenSession
	switch {
	case p.sessions == nil || owner == "":
	case owner != p.node:
		return p.sessions.Forward(ctx, req, owner)
	default:
		if open, err = p.sessions.Local(ctx, server); err != nil {
			return nil, err
		}
	}
	out := make([]any, 0, len(open))
	for _, o := range open {
		id := server.Child("sessions", sessionName(owner, o.ID))
		s := Session{ID: id.String(), Name: id.Name(), Type: TypeSession, Properties: SessionProperties{
			Kind: "Public", ClientAddress: o.Client, EndpointAddress: o.Listen, TLS: o.TLS,
			StartTime: o.Started.UTC(), BytesIn: o.BytesIn, BytesOut: o.BytesOut, Node: owner}}
		if o.PrivateEndpoint != "" {
			s.Properties.Kind = "PrivateEndpoint"
			s.Properties.PrivateEndpoint = &SubResource{ID: o.PrivateEndpoint}
			if c, ok := conns[strings.ToLower(o.PrivateEndpoint)]; ok {
				s.Properties.PrivateEndpointConnection = &SubResource{ID: c}
			}
		}
		if !t.Collection {
			if strings.EqualFold(s.Name, t.ID.Name()) {
				return &arm.Response{Body: s}, nil
			}
			continue
		}
		out = append(out, s)
	}
	if !t.Collection {
		return nil, resource.NotFoundError(t.ID)
	}
	return &arm.Response{Body: arm.List{Value: out}}, nil
}

// sessionName names session id of node: "<node>-<id>", unique among the server's sessions
// while they are open.
func sessionName(node string, id uint64) string {
	return node + "-" + strconv.FormatUint(id, 10)
}
