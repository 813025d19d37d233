// Package sqlq builds the filters the SQL store backends (sqlite, postgres) share: those of
// resource lists and of activity log queries, from the store's options, in each backend's
// dialect. The queries around them (columns, order, index hints) stay in the backends.
package sqlq

import (
	"strconv"
	"strings"
	"time"

	"github.com/pglink/pglink/internal/store"
)

// Dialect is what differs between the backends in the shared filters.
type Dialect struct {
	// Numbered placeholders ($1, $2, …: PostgreSQL) rather than ? (SQLite).
	Numbered bool
	// Arrays: a set of values is one array argument (= ANY($n)) rather than a list (IN (?, ?)).
	Arrays bool
	// Time is a time as the backend stores it.
	Time func(time.Time) any
	// Type is the condition on a resource's type given its placeholder (the value is lower case).
	Type string
}

// Query collects the conditions of one WHERE clause and their arguments.
type Query struct {
	d     Dialect
	where []string
	Args  []any
}

// New returns an empty query in dialect d.
func New(d Dialect) *Query { return &Query{d: d} }

// Arg adds v to the arguments and returns its placeholder.
func (q *Query) Arg(v any) string {
	q.Args = append(q.Args, v)
	if q.d.Numbered {
		return "$" + strconv.Itoa(len(q.Args))
	}
	return "?"
}

// Where adds a condition (whose placeholders were made by Arg).
func (q *Query) Where(cond string) { q.where = append(q.where, cond) }

// Clause returns " WHERE c1 AND c2 …", or "" without conditions.
func (q *Query) Clause() string {
	if len(q.where) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(q.where, " AND ")
}

// in adds the condition that col is one of vs.
func (q *Query) in(col string, vs []string) {
	if q.d.Arrays {
		q.Where(col + " = ANY(" + q.Arg(vs) + ")")
		return
	}
	ph := make([]string, len(vs))
	for i, v := range vs {
		ph[i] = q.Arg(v)
	}
	q.Where(col + " IN (" + strings.Join(ph, ", ") + ")")
}

// Resources adds the conditions of store.ListOptions opts on the resources table (columns key,
// parent and the dialect's type).
func (q *Query) Resources(opts store.ListOptions) {
	if opts.Parent != "" {
		q.Where("parent = " + q.Arg(opts.Parent))
	}
	if len(opts.Parents) > 0 {
		q.in("parent", opts.Parents)
	}
	if p := opts.Prefix; p != "" {
		// Keys p+"/"... sort between p+"/" and p+"0", as '0' follows '/'.
		q.Where("(key = " + q.Arg(p) + " OR (key >= " + q.Arg(p+"/") + " AND key < " + q.Arg(p+"0") + "))")
	}
	if opts.Type != "" {
		q.Where(strings.ReplaceAll(q.d.Type, "%s", q.Arg(strings.ToLower(opts.Type))))
	}
	if opts.After != "" {
		q.Where("key > " + q.Arg(opts.After))
	}
}

// Events adds the conditions of store.EventQuery e on the events table.
func (q *Query) Events(e store.EventQuery) {
	q.Where("subscription = " + q.Arg(strings.ToLower(e.Subscription)))
	if !e.Since.IsZero() {
		q.Where("time >= " + q.Arg(q.d.Time(e.Since)))
	}
	if !e.Until.IsZero() {
		q.Where("time <= " + q.Arg(q.d.Time(e.Until)))
	}
	if k := strings.ToLower(e.ResourceID); k != "" {
		if e.Subtree {
			// k and the keys k+"/"... lie in [k, k+"0"), as '0' follows '/' (the column sorts
			// byte by byte); so do keys such as k+"-x", which the last condition drops. One
			// range keeps the index usable.
			q.Where("resource_key >= " + q.Arg(k) + " AND resource_key < " + q.Arg(k+"0") +
				" AND (resource_key = " + q.Arg(k) + " OR substr(resource_key, " + q.Arg(len(k)+1) + ", 1) = '/')")
		} else {
			q.Where("resource_key = " + q.Arg(k))
		}
	}
	for _, f := range []struct{ col, v string }{
		{"resource_group", e.ResourceGroup}, {"caller", e.Caller}, {"correlation_id", e.CorrelationID},
		{"provider", e.Provider}, {"status", e.Status},
	} {
		if f.v != "" {
			q.Where(f.col + " = " + q.Arg(strings.ToLower(f.v)))
		}
	}
	if e.Before > 0 {
		q.Where("seq < " + q.Arg(e.Before))
	}
}
