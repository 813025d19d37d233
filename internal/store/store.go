// Package store is the one contract between pglink and its persistent state: ARM resources as
// JSON documents, long-running operations, the activity log and principals. Backends live in
// sub-packages (sqlite, postgres) and all pass the conformance suite in storetest.
//
// Every transaction that writes takes the next global revision; every resource or operation it
// writes carries that revision and appears on the change feed (Changes) in revision order.
package store

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors. Backends wrap them; callers test with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	// ErrConflict reports a failed compare-and-swap: an ETag or lease that no longer matches,
	// or a create of something that exists.
	ErrConflict = errors.New("conflict")
)

// Resource is one stored ARM resource.
type Resource struct {
	Key      string // lower-cased ARM ID; the primary key
	ID       string // the ARM ID with the casing last written
	Type     string // full ARM type as Azure spells it, e.g. "Microsoft.Network/privateEndpoints"
	Parent   string // Key of the containing scope: parent resource, resource group or subscription
	Body     []byte // the JSON document
	ETag     string // set by the store on every write
	Revision int64  // set by the store: the revision of the last write
}

// Operation statuses, as Azure spells them.
const (
	OpInProgress = "InProgress"
	OpSucceeded  = "Succeeded"
	OpFailed     = "Failed"
	OpCanceled   = "Canceled"
)

// Operation is a long-running operation: a row that workers lease, run and finish.
type Operation struct {
	ID          string // opaque, unique
	ResourceKey string // Key of the resource it acts on; at most one InProgress per key
	ResourceID  string // the resource's ARM ID as the caller spelled it
	Kind        string // what to run, e.g. "postgresql.server.create"
	Goal        string // digest of the request; an identical retry joins the operation
	Status      string // OpInProgress, OpSucceeded, OpFailed or OpCanceled
	Input       []byte // what the worker needs (JSON)
	Error       []byte // ARM error JSON {"code","message"} when Failed or Canceled
	Method      string // the HTTP method that started it, for the polling endpoints
	Location    string // ARM location of the resource, for polling URLs
	LeaseOwner  string // the worker holding it, "" if none
	LeaseUntil  time.Time
	Attempts    int // how many times it has been leased
	Created     time.Time
	Updated     time.Time
	Revision    int64 // set by the store
	// Node is the data-plane node that must run it (the one holding the server's cluster),
	// "" for any worker. LeaseOperation hands it only to that node's workers.
	Node string
}

// Done reports whether the operation reached a terminal status.
func (o Operation) Done() bool { return o.Status != OpInProgress }

// Event is one activity log entry. The fields besides Seq, Time and Body are what queries
// select on (see EventQuery); the store compares them ignoring case and may return them
// lower-cased.
type Event struct {
	Seq           int64     // set by the store, increasing in the order events are appended
	Time          time.Time // when it happened
	Subscription  string    // subscription ID it belongs to
	ResourceID    string    // ARM ID of the resource it is about ("" if none)
	ResourceGroup string    // name of that resource's group ("" if none)
	Caller        string    // who did it: a user's UPN or a service principal's client id
	CorrelationID string    // the correlation id of the request
	Provider      string    // resource provider namespace of the operation, e.g. "Microsoft.Network"
	Status        string    // e.g. "Started", "Succeeded", "Failed"
	Body          []byte    // the Azure activity log event JSON
}

// EventQuery selects activity log events for Store.Events. Empty strings and zero times select
// any value; strings compare ignoring case.
type EventQuery struct {
	Subscription string    // required
	Since, Until time.Time // only events with Since <= Time <= Until
	// ResourceID selects events about this resource and, if Subtree is set, about resources
	// below it (whose IDs continue with "/"), as the activity log's resourceUri filter does.
	ResourceID    string
	Subtree       bool
	ResourceGroup string
	Caller        string
	CorrelationID string
	Provider      string
	Status        string
	Before        int64 // cursor: only events with Seq < Before (0 for no bound)
	Limit         int   // at most this many (0 for all)
}

// ErrUnavailable is wrapped by errors that mean the store cannot be reached now (a connection
// refused or lost): nothing was committed, and the same call may succeed later. Shared backends
// return it; callers answer "try again" (503 with Retry-After) rather than "failed".
var ErrUnavailable error = unavailableError{}

type unavailableError struct{}

func (unavailableError) Error() string { return "store unavailable" }

// Unavailable lets packages that do not import store (identity) recognize ErrUnavailable with
// errors.As and an interface{ Unavailable() bool }.
func (unavailableError) Unavailable() bool { return true }

// Node is a data-plane node: a pglink process that runs PostgreSQL clusters and a gateway, as
// it last reported itself.
type Node struct {
	Name     string // unique (--node-name)
	Zone     string // availability zone label, "" for none
	Network  string // the CIDR block its data-plane addresses come from
	Endpoint string // the API address of the process, for operators (--public-url when set)
	// Address is the https URL at which other replicas reach this process itself, not the
	// load balancer in front of all of them; "" when it has none (then Endpoint is used).
	Address string
	// Applied is the highest revision its data plane enforces: a change committed at that
	// revision or before is in force in its gateway and nameserver.
	Applied   int64
	Started   time.Time // when the process started
	Heartbeat time.Time // when it last reported
	Expires   time.Time // it counts as down from then on, unless it reports again
}

// Live reports whether the node counted as up at now.
func (n Node) Live(now time.Time) bool { return now.Before(n.Expires) }

// Principal is a user or service principal known to the identity provider.
type Principal struct {
	ObjectID string // the principal's object id (oid claim); primary key
	Login    string // unique, case-insensitive: a user's UPN or a service principal's client id
	Body     []byte // identity-owned JSON (display name, kind, secret hash, ...)
}

// Change is one entry of the change feed.
type Change struct {
	Revision int64
	Key      string // a resource Key, "op:" + operation ID, or "setting:" + setting name
	Deleted  bool
}

// ListOptions selects resources for Tx.List. Results are ordered by Key.
type ListOptions struct {
	Parent string // only direct children of this scope Key ("" for any)
	// Parents, if not empty, selects only direct children of these scope Keys (with Parent,
	// children of both): one read for the children of a page of resources.
	Parents []string
	Prefix  string // only Keys with this prefix followed by "/" or equal to it (subtree); "" for any
	Type    string // only this type, case-insensitive ("" for any)
	After   string // only Keys greater than this (paging)
	Limit   int    // at most this many (0 for no limit)
}

// Tx is a transaction. Reads see a consistent snapshot that includes the transaction's own
// writes. A Tx is not safe for concurrent use and must not be used after its function returns.
type Tx interface {
	// Get returns the resource with key, or ErrNotFound.
	Get(ctx context.Context, key string) (Resource, error)
	// List returns the resources opts selects.
	List(ctx context.Context, opts ListOptions) ([]Resource, error)
	// Put creates or replaces r (by r.Key). If ifETag is non-empty the write succeeds only if
	// the stored resource has that ETag ("*" means it must exist); otherwise ErrConflict, or
	// ErrNotFound if it does not exist. It returns r with its new ETag and Revision.
	Put(ctx context.Context, r Resource, ifETag string) (Resource, error)
	// Delete removes the resource with key; ErrNotFound if there is none.
	Delete(ctx context.Context, key string) error

	// Operation returns the operation with id, or ErrNotFound.
	Operation(ctx context.Context, id string) (Operation, error)
	// ActiveOperation returns the InProgress operation on resourceKey, or ErrNotFound.
	ActiveOperation(ctx context.Context, resourceKey string) (Operation, error)
	// PutOperation creates or replaces op (by op.ID). Creating an InProgress operation on a
	// resource that already has another one fails with ErrConflict.
	PutOperation(ctx context.Context, op Operation) (Operation, error)

	// AppendEvent adds e to the activity log.
	AppendEvent(ctx context.Context, e Event) error

	// Principal returns the principal with object id or login (case-insensitive), or ErrNotFound.
	Principal(ctx context.Context, idOrLogin string) (Principal, error)
	// PutPrincipal creates or replaces p.
	PutPrincipal(ctx context.Context, p Principal) error
	// Principals returns principals ordered by object id (case-insensitive), only those whose
	// object id sorts after after (paging; "" for the first page), at most limit (0 for all).
	Principals(ctx context.Context, after string, limit int) ([]Principal, error)
	// DeletePrincipal removes the principal with object id; ErrNotFound if there is none.
	DeletePrincipal(ctx context.Context, objectID string) error

	// Setting returns the value of the setting name, or ErrNotFound. Settings are pglink's own
	// state that every process sharing the store must agree on, such as the tenant, the token
	// signing keys and the CA.
	Setting(ctx context.Context, name string) ([]byte, error)
	// PutSetting creates or replaces the setting name. It appears on the change feed as
	// "setting:" + name.
	PutSetting(ctx context.Context, name string, value []byte) error

	// Nodes returns every data-plane node, by name, as Store.Nodes does, on the transaction's
	// own connection: code inside a transaction must not wait for another connection of a
	// pool its own transaction may be holding up.
	Nodes(ctx context.Context) ([]Node, error)
	// DeleteNode forgets node name and hands its operations in progress to any node (their Node
	// becomes ""): an operator's word that the node is gone for good. ErrNotFound if there is
	// no such node. Like heartbeats, it takes no revision.
	DeleteNode(ctx context.Context, name string) error
}

// Store is pglink's persistent state. Implementations are safe for concurrent use.
type Store interface {
	// View runs fn in a read-only transaction.
	View(ctx context.Context, fn func(Tx) error) error
	// Update runs fn in a serializable read-write transaction and commits if fn returns nil.
	// Concurrent Updates behave as if run one after another; a backend may run fn more than
	// once when it must retry a serialization failure, so fn must not have side effects
	// outside the Tx. Writes that Update commits are durable when it returns.
	Update(ctx context.Context, fn func(Tx) error) error

	// LeaseOperation hands an InProgress operation whose lease is free or expired at now, and
	// whose Node is "" or node, to owner until now+d, incrementing Attempts. It returns
	// ErrNotFound if there is none.
	LeaseOperation(ctx context.Context, owner, node string, now time.Time, d time.Duration) (Operation, error)

	// PutNode records what node n reports about itself (by n.Name): a heartbeat. Applied never
	// goes back: the stored value is the greater of the two. Nodes are not on the change feed
	// and take no revision: heartbeats do not wake readers of the feed.
	PutNode(ctx context.Context, n Node) error
	// Nodes returns every node, by name.
	Nodes(ctx context.Context) ([]Node, error)

	// Events returns the activity log events q selects, newest (highest Seq) first. To page,
	// ask again with q.Before set to the Seq of the last event returned. Backends filter with
	// indexes, so the newest events are found quickly however many older ones there are.
	Events(ctx context.Context, q EventQuery) ([]Event, error)

	// PruneEvents removes the activity log events older than before and, if keep > 0, all but
	// the newest keep events, oldest first, and returns how many it removed. It works in short
	// batches, so writers are not held up for long.
	PruneEvents(ctx context.Context, before time.Time, keep int) (int64, error)

	// Revision returns the latest committed revision.
	Revision(ctx context.Context) (int64, error)
	// Changes returns changes with revision > since, in order, at most limit (0 for all).
	Changes(ctx context.Context, since int64, limit int) ([]Change, error)
	// Notify returns a channel that receives a value (without blocking the writer; values may
	// coalesce) after each commit that changed something, in this process or, for shared
	// backends, in any process. The channel is closed when ctx is done.
	Notify(ctx context.Context) <-chan struct{}

	// Close releases the store. Pending transactions fail.
	Close() error
}
