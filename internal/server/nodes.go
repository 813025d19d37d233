package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pglink/pglink/internal/activity"
	"github.com/pglink/pglink/internal/dataplane"
	"github.com/pglink/pglink/internal/identity"
	"github.com/pglink/pglink/internal/resource"
	"github.com/pglink/pglink/internal/store"
)

// Node heartbeats: a node reports every nodeHeartbeat and counts as down nodeTTL after its last
// report. An owning node that stopped is Unreachable within nodeTTL, and barriers stop waiting
// for it.
const (
	nodeHeartbeat = time.Second
	nodeTTL       = 5 * time.Second
)

// nodeAgent reports this process's data-plane node to the store: a heartbeat every
// nodeHeartbeat and, on a shared store, promptly each revision its data plane has applied (the
// least of what the gateway and the nameserver applied), which the barriers of the other
// replicas wait for. A store of one process has no other replica to tell: the heartbeat alone
// keeps the row current, and no write follows each commit.
type nodeAgent struct {
	st     store.Store
	log    *slog.Logger
	self   store.Node // Name, Zone, Network, Endpoint, Started
	prompt bool       // report each applied revision at once

	mu      sync.Mutex
	applied map[string]int64 // guarded by mu: by part ("gateway", "dns"); every part must be present
	kick    chan struct{}
}

func newNodeAgent(st store.Store, log *slog.Logger, self store.Node, prompt bool, parts ...string) *nodeAgent {
	a := &nodeAgent{st: st, log: log.With("component", "node", "node", self.Name), self: self, prompt: prompt,
		applied: map[string]int64{}, kick: make(chan struct{}, 1)}
	for _, p := range parts {
		a.applied[p] = 0
	}
	return a
}

// setApplied records that part of the data plane enforces revision rev.
func (a *nodeAgent) setApplied(part string) func(rev int64) {
	return func(rev int64) {
		a.mu.Lock()
		if rev > a.applied[part] {
			a.applied[part] = rev
		}
		a.mu.Unlock()
		if !a.prompt {
			return
		}
		select {
		case a.kick <- struct{}{}:
		default:
		}
	}
}

// appliedRevision returns the revision every part of the data plane has applied.
func (a *nodeAgent) appliedRevision() int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	var least int64
	first := true
	for _, rev := range a.applied {
		if first || rev < least {
			least, first = rev, false
		}
	}
	return least
}

// report writes one heartbeat.
func (a *nodeAgent) report(ctx context.Context) error {
	n := a.self
	n.Applied = a.appliedRevision()
	n.Heartbeat = time.Now()
	n.Expires = n.Heartbeat.Add(nodeTTL)
	return a.st.PutNode(ctx, n)
}

// run reports until ctx is done, then marks the node down at once (a clean stop is not a
// failure to wait for).
func (a *nodeAgent) run(ctx context.Context) {
	t := time.NewTicker(nodeHeartbeat)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			n := a.self
			n.Heartbeat, n.Expires = time.Now(), time.Now()
			if err := a.st.PutNode(sctx, n); err != nil {
				a.log.Warn("mark node stopped", "err", err)
			}
			return
		case <-t.C:
		case <-a.kick:
		}
		err := a.report(ctx)
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			a.log.Error("node heartbeat", "err", err)
			failing = true
		case err == nil && failing:
			a.log.Info("node heartbeat resumed")
			failing = false
		}
	}
}

// nodeBarrier waits until every other live data-plane node has applied a revision: each
// enforces the servers and endpoints it holds, so an approval made through any replica is in
// force on the node that owns the server before the API reports it done. A node that stopped
// reporting is not waited for: it applies everything when it is back, before it serves.
type nodeBarrier struct {
	st   store.Store
	self string
}

// WaitApplied implements arm.Barrier.
func (b nodeBarrier) WaitApplied(ctx context.Context, rev int64) error {
	wait := time.Millisecond
	for {
		nodes, err := b.st.Nodes(ctx)
		if err == nil && caughtUp(nodes, b.self, rev, time.Now()) {
			return nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("%w (nodes: %w)", ctx.Err(), err)
			}
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 20*time.Millisecond)
	}
}

// caughtUp reports whether every live node but self has applied rev.
func caughtUp(nodes []store.Node, self string, rev int64, now time.Time) bool {
	for _, n := range nodes {
		if n.Name != self && n.Live(now) && n.Applied < rev {
			return false
		}
	}
	return true
}

// nodeScope returns this process's data-plane node: its name and its endpoint network. The
// name is the data dir's: the node's servers and endpoints name it, so it must not change
// with the host name (a container's, say). The first start records cfg.NodeName, default the
// host name, in DATA/node-name; later starts use it, and refuse a --node-name that differs.
func nodeScope(cfg Config, network netip.Prefix) (dataplane.Scope, error) {
	path := filepath.Join(cfg.DataDir, "node-name")
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		recorded := strings.TrimSpace(string(data))
		if cfg.NodeName != "" && cfg.NodeName != recorded {
			return dataplane.Scope{}, fmt.Errorf("node name %q: this data dir is node %q's (its servers and endpoints name it); start with --node-name %s or without it",
				cfg.NodeName, recorded, recorded)
		}
		if err := checkNodeName(recorded); err != nil {
			return dataplane.Scope{}, fmt.Errorf("%s: %w", path, err)
		}
		return dataplane.Scope{Node: recorded, Network: network}, nil
	case !errors.Is(err, os.ErrNotExist):
		return dataplane.Scope{}, fmt.Errorf("read node name: %w", err)
	}
	name := cfg.NodeName
	if name == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			return dataplane.Scope{}, fmt.Errorf("node name: the host has no name (%v); set --node-name", err)
		}
		name = h
	}
	if err := checkNodeName(name); err != nil {
		return dataplane.Scope{}, err
	}
	if err := os.WriteFile(path, []byte(name+"\n"), 0o600); err != nil {
		return dataplane.Scope{}, fmt.Errorf("record node name: %w", err)
	}
	return dataplane.Scope{Node: name, Network: network}, nil
}

func checkNodeName(name string) error {
	if name == "" || len(name) > 63 || strings.TrimFunc(name, func(r rune) bool {
		return r == '-' || r == '.' || r == '_' || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || ('0' <= r && r <= '9')
	}) != "" {
		return fmt.Errorf("node name %q: use 1 to 63 letters, digits, '-', '.' and '_'", name)
	}
	return nil
}

// nodeStatus tells servers' data-plane node status from the store's nodes, read at most every
// nodeStatusTTL (a list of servers reads them once).
type nodeStatus struct {
	mu    sync.Mutex
	read  time.Time // guarded by mu
	nodes []store.Node
}

const nodeStatusTTL = 250 * time.Millisecond

// status implements postgresql.Provider's node status: NodeAvailable for a live node,
// NodeUnreachable for one whose heartbeats stopped; "" when the store cannot tell now.
func (ns *nodeStatus) status(ctx context.Context, tx store.Tx, node, address string) string {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	now := time.Now()
	if now.Sub(ns.read) > nodeStatusTTL {
		nodes, err := tx.Nodes(ctx)
		if err != nil {
			return ""
		}
		ns.nodes, ns.read = nodes, now
	}
	name := dataplane.NodeOf(node, address, ns.nodes)
	for _, n := range ns.nodes {
		if n.Name == name {
			if n.Live(now) {
				return resource.NodeAvailable
			}
			return resource.NodeUnreachable
		}
	}
	if node != "" {
		return resource.NodeUnreachable // a removed node
	}
	return ""
}

// The RBAC actions on data-plane nodes, at the root scope.
const (
	nodesReadAction   = "Microsoft.Pglink/nodes/read"
	nodesDeleteAction = "Microsoft.Pglink/nodes/delete"
)

// nodeView is a node as GET /pglink/v1/nodes shows it.
type nodeView struct {
	Name            string    `json:"name"`
	Status          string    `json:"status"` // resource.NodeAvailable or resource.NodeUnreachable
	Zone            string    `json:"zone,omitempty"`
	Network         string    `json:"endpointNetwork"`
	Endpoint        string    `json:"endpoint"`
	Address         string    `json:"address,omitempty"` // where other replicas reach it
	Servers         int       `json:"servers"`
	AppliedRevision int64     `json:"appliedRevision"`
	Started         time.Time `json:"started"`
	LastHeartbeat   time.Time `json:"lastHeartbeat"`
}

// nodesAPI is the admin API of data-plane nodes: GET /pglink/v1/nodes lists them with their
// status and how many servers each holds; DELETE /pglink/v1/nodes/{name} removes a node that is
// gone for good (not Available), handing its operations in progress to the other nodes. Callers
// need nodesReadAction or nodesDeleteAction at the root scope. Errors have ARM's shape; a
// removal is in the activity log of the installation's subscription, in its transaction.
type nodesAPI struct {
	st           store.Store
	authenticate func(*http.Request) (identity.Principal, error)
	allowed      func(ctx context.Context, principalID, action string) (bool, error)
	tenant       string
	subscription string // whose activity log records removals
	log          *slog.Logger
}

func (a *nodesAPI) fail(w http.ResponseWriter, status int, code, msg string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	}
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
	}
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

// authorize answers the request itself, and returns false, unless its caller may do action.
func (a *nodesAPI) authorize(w http.ResponseWriter, r *http.Request, action string) (identity.Principal, bool) {
	w.Header().Set("x-ms-request-id", resource.NewGUID()) // as ARM's answers carry
	p, err := a.authenticate(r)
	if err != nil {
		if errors.Is(err, identity.ErrInvalidToken) {
			a.fail(w, http.StatusUnauthorized, "InvalidAuthenticationToken", "The access token is missing or invalid.")
			return p, false
		}
		a.log.Error("nodes: authenticate", "err", err)
		a.fail(w, http.StatusInternalServerError, "InternalServerError", "Could not check the caller; try again.")
		return p, false
	}
	ok, err := a.allowed(r.Context(), p.ObjectID, action)
	if err != nil {
		a.log.Error("nodes: authorize", "err", err)
		a.fail(w, http.StatusInternalServerError, "InternalServerError", "Could not check the caller's roles; try again.")
		return p, false
	}
	if !ok {
		a.fail(w, http.StatusForbidden, "AuthorizationFailed", fmt.Sprintf(
			"The client '%s' with object id '%s' does not have authorization to perform action '%s' over scope '/'.",
			p.Name, p.ObjectID, action))
		return p, false
	}
	return p, true
}

// storeFailed answers a request whose store access failed with err.
func (a *nodesAPI) storeFailed(w http.ResponseWriter, what string, err error) {
	if errors.Is(err, store.ErrUnavailable) {
		a.fail(w, http.StatusServiceUnavailable, "ServiceUnavailable", "The store is unavailable; try again.")
		return
	}
	a.log.Error("nodes: "+what, "err", err)
	a.fail(w, http.StatusInternalServerError, "InternalServerError", "Could not "+what+"; try again.")
}

func (a *nodesAPI) list(w http.ResponseWriter, r *http.Request) {
	if _, ok := a.authorize(w, r, nodesReadAction); !ok {
		return
	}
	var nodes []store.Node
	var count map[string]int
	err := a.st.View(r.Context(), func(tx store.Tx) error {
		var err error
		if nodes, err = tx.Nodes(r.Context()); err != nil {
			return err
		}
		count, err = dataplane.ServersPerNode(r.Context(), tx, nodes)
		return err
	})
	if err != nil {
		a.storeFailed(w, "read the nodes", err)
		return
	}
	now := time.Now()
	out := []nodeView{}
	for _, n := range nodes {
		v := nodeView{Name: n.Name, Status: resource.NodeUnreachable, Zone: n.Zone, Network: n.Network, Endpoint: n.Endpoint, Address: n.Address,
			Servers: count[n.Name], AppliedRevision: n.Applied, Started: n.Started.UTC(), LastHeartbeat: n.Heartbeat.UTC()}
		if n.Live(now) {
			v.Status = resource.NodeAvailable
		}
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": out})
}

// errNodeAnswered carries an answer decided inside the removal's transaction.
type errNodeAnswered struct {
	status    int
	code, msg string
}

func (e *errNodeAnswered) Error() string { return e.msg }

func (a *nodesAPI) remove(w http.ResponseWriter, r *http.Request) {
	p, ok := a.authorize(w, r, nodesDeleteAction)
	if !ok {
		return
	}
	name := r.PathValue("name")
	caller := p.Name
	if p.Kind == identity.KindServicePrincipal && p.AppID != "" {
		caller = p.AppID
	}
	err := a.st.Update(r.Context(), func(tx store.Tx) error {
		nodes, err := tx.Nodes(r.Context())
		if err != nil {
			return err
		}
		i := slices.IndexFunc(nodes, func(n store.Node) bool { return n.Name == name })
		switch {
		case i < 0:
			return &errNodeAnswered{http.StatusNotFound, "NodeNotFound", fmt.Sprintf("There is no data-plane node named '%s'.", name)}
		case nodes[i].Live(time.Now()):
			return &errNodeAnswered{http.StatusConflict, "NodeIsAvailable", fmt.Sprintf(
				"Node '%s' is Available (last heartbeat %s). Only a node that is gone for good may be removed: stop it first.",
				name, nodes[i].Heartbeat.UTC().Format(time.RFC3339))}
		}
		if err := tx.DeleteNode(r.Context(), name); err != nil {
			return err
		}
		ev, err := activity.Build(activity.Entry{Time: time.Now(), TenantID: a.tenant, Caller: caller, CallerObjectID: p.ObjectID,
			Operation: nodesDeleteAction, Scope: "/providers/Microsoft.Pglink/nodes/" + name, Status: "Succeeded",
			StatusCode: "NoContent", CorrelationID: resource.NewGUID(), Subscription: a.subscription})
		if err != nil {
			return err
		}
		return tx.AppendEvent(r.Context(), ev)
	})
	var answered *errNodeAnswered
	switch {
	case errors.As(err, &answered):
		a.fail(w, answered.status, answered.code, answered.msg)
	case err != nil:
		a.storeFailed(w, "remove the node", err)
	default:
		a.log.Info("node removed", "node", name, "caller", caller)
		w.WriteHeader(http.StatusNoContent)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the status is sent; a failed write means the client went away
}
