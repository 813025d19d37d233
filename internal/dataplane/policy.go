package dataplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/pglink/pglink/internal/gateway"
	"github.com/pglink/pglink/internal/providers/network"
	"github.com/pglink/pglink/internal/providers/postgresql"
	"github.com/pglink/pglink/internal/resource"
	"github.com/pglink/pglink/internal/store"
)

// maxIncremental is the most changes a round reads from the feed; behind by more, it reloads
// everything, which is then cheaper.
const maxIncremental = 5000

// policyCache is a node's gateway policy kept between rounds, so that a round reads only what
// the change feed says changed: the servers and private endpoints the changed keys are, or are
// under (a firewall rule, a configuration, a connection is under its server); the private
// endpoint whose connection changed; and the private endpoints of a server whose name, state
// or transport changed, on which their endpoints depend.
//
// Each entry reflects a read made after the change that made it dirty, so the whole reflects
// every change up to rev (entries may reflect later ones too, which the next round reads again).
// Nothing else goes into the policy: Sockets and the Scope are fixed for a node.
type policyCache struct {
	sockets Sockets
	scope   Scope

	loaded   bool
	rev      int64                          // every change up to rev is reflected
	servers  map[string]*serverEntry        // by server key
	pes      map[string]*peEntry            // by private endpoint key
	byTarget map[string]map[string]struct{} // server key → keys of the private endpoints naming it
	byConn   map[string]string              // connection key → key of its private endpoint
}

// serverEntry is what the policy needs of a server.
type serverEntry struct {
	id        resource.ID
	name      string
	state     resource.ServerState
	transport postgresql.Transport
	local     bool              // the node serves the server's data plane
	public    *gateway.Endpoint // its public endpoint; nil if it has none on this node
}

// sameForEndpoints reports whether private endpoints naming e and f compile alike.
func (e *serverEntry) sameForEndpoints(f *serverEntry) bool {
	return e.name == f.name && e.state == f.state && e.transport == f.transport
}

// peEntry is what the policy needs of a private endpoint.
type peEntry struct {
	target string            // key of the server it names; "" if none
	conn   string            // key of its connection on that server
	ep     *gateway.Endpoint // its endpoint; nil if it has none on this node
}

func newPolicyCache(sockets Sockets, scope Scope) *policyCache {
	return &policyCache{sockets: sockets, scope: scope}
}

// update brings the cache up to the store's current revision: a full load the first time, or
// when the feed is too far ahead, otherwise only what changed since the last update. It reports
// whether the policy changed; the cache is left unloaded (and loads whole next time)
// if it fails.
func (c *policyCache) update(ctx context.Context, st store.Store) (changed bool, err error) {
	defer func() {
		if err != nil {
			c.loaded = false
		}
	}()
	rev, changes, whole, err := changesSince(ctx, st, c.loaded, c.rev)
	if err != nil {
		return false, err
	}
	if whole {
		return true, c.load(ctx, st, rev)
	}
	servers, pes := map[string]bool{}, map[string]bool{}
	for _, ch := range changes {
		if s := under(ch.Key, serverSegment); s != "" {
			servers[s] = true
			if pe, ok := c.byConn[ch.Key]; ok {
				pes[pe] = true // a connection: its endpoint's state
			}
		} else if p := under(ch.Key, endpointSegment); p != "" {
			pes[p] = true
		}
	}
	if len(servers)+len(pes) > 0 {
		err = st.View(ctx, func(tx store.Tx) error {
			for key := range servers {
				old := c.servers[key]
				was := publicOf(old)
				r, err := tx.Get(ctx, key)
				if errors.Is(err, store.ErrNotFound) {
					delete(c.servers, key)
				} else if err != nil {
					return fmt.Errorf("read %s: %w", key, err)
				} else if err := c.putServer(ctx, tx, r, nil); err != nil {
					return err
				}
				cur := c.servers[key]
				if (old == nil) != (cur == nil) || old != nil && !old.sameForEndpoints(cur) {
					for pe := range c.byTarget[key] {
						pes[pe] = true
					}
				}
				changed = changed || !sameEndpoint(was, publicOf(cur))
			}
			for key := range pes {
				var was *gateway.Endpoint
				if e := c.pes[key]; e != nil {
					was = e.ep
				}
				r, err := tx.Get(ctx, key)
				if errors.Is(err, store.ErrNotFound) {
					c.dropPE(key)
				} else if err != nil {
					return fmt.Errorf("read %s: %w", key, err)
				} else if err := c.putPE(ctx, tx, r); err != nil {
					return err
				}
				var now *gateway.Endpoint
				if e := c.pes[key]; e != nil {
					now = e.ep
				}
				changed = changed || !sameEndpoint(was, now)
			}
			return nil
		})
		if err != nil {
			return false, err
		}
	}
	c.rev = rev
	return changed, nil
}

func publicOf(e *serverEntry) *gateway.Endpoint {
	if e == nil {
		return nil
	}
	return e.public
}

// sameEndpoint reports whether a and b (nil for none) are the same endpoint.
func sameEndpoint(a, b *gateway.Endpoint) bool {
	if a == nil || b == nil {
		return a == b
	}
	return reflect.DeepEqual(*a, *b)
}

// load reads every server and private endpoint in one consistent read made after revision rev.
func (c *policyCache) load(ctx context.Context, st store.Store, rev int64) error {
	c.servers, c.pes = map[string]*serverEntry{}, map[string]*peEntry{}
	c.byTarget, c.byConn = map[string]map[string]struct{}{}, map[string]string{}
	err := st.View(ctx, func(tx store.Tx) error {
		servers, err := tx.List(ctx, store.ListOptions{Type: resource.TypeServer})
		if err != nil {
			return fmt.Errorf("list servers: %w", err)
		}
		// Servers' configurations and firewall rules in one read each, not one per server.
		var pre preread
		for _, t := range []struct {
			typ string
			to  *map[string][]store.Resource
		}{{resource.TypeConfiguration, &pre.configurations}, {resource.TypeFirewallRule, &pre.rules}} {
			all, err := tx.List(ctx, store.ListOptions{Type: t.typ})
			if err != nil {
				return fmt.Errorf("list %s: %w", t.typ, err)
			}
			*t.to = map[string][]store.Resource{}
			for _, r := range all {
				(*t.to)[r.Parent] = append((*t.to)[r.Parent], r)
			}
		}
		for _, r := range servers {
			if err := c.putServer(ctx, tx, r, &pre); err != nil {
				return err
			}
		}
		pes, err := tx.List(ctx, store.ListOptions{Type: resource.TypePrivateEndpoint})
		if err != nil {
			return fmt.Errorf("list private endpoints: %w", err)
		}
		for _, r := range pes {
			if err := c.putPE(ctx, tx, r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	c.loaded, c.rev = true, rev
	return nil
}

// preread is what a whole load reads of every server at once, by server key.
type preread struct {
	configurations map[string][]store.Resource
	rules          map[string][]store.Resource
}

// putServer compiles server r read in tx, with its configurations and firewall rules from pre
// if not nil, else read in tx. A document that does not parse leaves the server out, as if
// absent (its endpoints refuse: fail closed).
func (c *policyCache) putServer(ctx context.Context, tx store.Tx, r store.Resource, pre *preread) error {
	delete(c.servers, r.Key)
	var s postgresql.Server
	if err := json.Unmarshal(r.Body, &s); err != nil {
		return fmt.Errorf("decode %s: %w", r.ID, err)
	}
	id, err := resource.Parse(r.ID)
	if err != nil {
		return nil
	}
	var tr postgresql.Transport
	if pre != nil {
		tr, err = postgresql.TransportFrom(id, pre.configurations[r.Key])
	} else {
		tr, err = postgresql.TransportOf(ctx, tx, id)
	}
	if err != nil {
		return err
	}
	e := &serverEntry{id: id, name: s.Name, state: s.Properties.State, transport: tr}
	if dp := s.Properties.DataPlane; dp != nil && c.scope.Serves(dp.Node, dp.Address) {
		e.local = true
		rules := func() ([]store.Resource, error) {
			if pre != nil {
				return pre.rules[r.Key], nil
			}
			rules, err := tx.List(ctx, store.ListOptions{Parent: r.Key, Type: resource.TypeFirewallRule})
			if err != nil {
				return nil, fmt.Errorf("list firewall rules of %s: %w", r.ID, err)
			}
			return rules, nil
		}
		ep, ok, err := publicEndpoint(r, &s, c.sockets, rules)
		if err != nil {
			return err
		}
		if ok {
			secure(&ep, tr)
			e.public = &ep
		}
	}
	c.servers[r.Key] = e
	return nil
}

// putPE compiles private endpoint r read in tx, against the servers already in the cache.
func (c *policyCache) putPE(ctx context.Context, tx store.Tx, r store.Resource) error {
	c.dropPE(r.Key)
	var pe network.PrivateEndpoint
	if err := json.Unmarshal(r.Body, &pe); err != nil {
		return fmt.Errorf("decode %s: %w", r.ID, err)
	}
	e := &peEntry{}
	conns := append(pe.Properties.PrivateLinkServiceConnections, pe.Properties.ManualPrivateLinkServiceConnections...)
	if len(conns) > 0 {
		if target, err := resource.Parse(conns[0].Properties.PrivateLinkServiceID); err == nil {
			e.target = target.Key()
			e.conn = target.Child("privateEndpointConnections", pe.Name+"."+pe.Properties.ResourceGUID).Key()
		}
	}
	ep, ok, err := privateEndpoint(ctx, tx, r.ID, &pe, c.servers, c.sockets, c.scope)
	if err != nil {
		return err
	}
	if ok {
		tr := postgresql.Transport{RequireSecure: true} // fail closed; the endpoint refuses anyway
		if s := c.servers[e.target]; s != nil {
			tr = s.transport
		}
		secure(&ep, tr)
		e.ep = &ep
	}
	c.pes[r.Key] = e
	if e.target != "" {
		if c.byTarget[e.target] == nil {
			c.byTarget[e.target] = map[string]struct{}{}
		}
		c.byTarget[e.target][r.Key] = struct{}{}
		c.byConn[e.conn] = r.Key
	}
	return nil
}

func (c *policyCache) dropPE(key string) {
	if e := c.pes[key]; e != nil && e.target != "" {
		delete(c.byTarget[e.target], key)
		if len(c.byTarget[e.target]) == 0 {
			delete(c.byTarget, e.target)
		}
		if c.byConn[e.conn] == key {
			delete(c.byConn, e.conn)
		}
	}
	delete(c.pes, key)
}

// snapshot is the policy in the cache at its revision.
func (c *policyCache) snapshot() gateway.Snapshot {
	snap := gateway.Snapshot{Revision: c.rev, Endpoints: make([]gateway.Endpoint, 0, len(c.servers)+len(c.pes))}
	for _, s := range c.servers {
		if s.public != nil {
			snap.Endpoints = append(snap.Endpoints, *s.public)
		}
	}
	for _, p := range c.pes {
		if p.ep != nil {
			snap.Endpoints = append(snap.Endpoints, *p.ep)
		}
	}
	return snap
}

// local returns the servers whose data plane the node serves.
func (c *policyCache) local() []resource.ID {
	var ids []resource.ID
	for _, s := range c.servers {
		if s.local {
			ids = append(ids, s.id)
		}
	}
	return ids
}

// changesSince reads the store's revision and then, if loaded, the change feed after since:
// every change up to rev is among changes (with perhaps some later ones). whole says to read
// everything instead: nothing is loaded yet, or the feed is more than maxIncremental changes
// ahead.
func changesSince(ctx context.Context, st store.Store, loaded bool, since int64) (rev int64, changes []store.Change, whole bool, err error) {
	// The revision is read first: every change up to it is read below.
	if rev, err = st.Revision(ctx); err != nil {
		return 0, nil, false, fmt.Errorf("read revision: %w", err)
	}
	if !loaded {
		return rev, nil, true, nil
	}
	if rev <= since {
		return rev, nil, false, nil
	}
	if changes, err = st.Changes(ctx, since, maxIncremental); err != nil {
		return 0, nil, false, fmt.Errorf("read change feed: %w", err)
	}
	if len(changes) == maxIncremental && changes[len(changes)-1].Revision < rev {
		return rev, nil, true, nil
	}
	return rev, changes, false, nil
}

const (
	serverSegment   = "/providers/microsoft.dbforpostgresql/flexibleservers/"
	endpointSegment = "/providers/microsoft.network/privateendpoints/"
)

// under returns the key of the resource of type segment that key is or is under, "" if none.
// Keys are lower case.
func under(key, segment string) string {
	i := strings.Index(key, segment)
	if i < 0 {
		return ""
	}
	end := i + len(segment)
	if j := strings.IndexByte(key[end:], '/'); j >= 0 {
		end += j
	} else {
		end = len(key)
	}
	if end == i+len(segment) {
		return ""
	}
	return key[:end]
}
