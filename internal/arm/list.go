package arm

import (
	"context"
	"fmt"
	"net/url"

	"github.com/pglink/pglink/internal/store"
)

// List is the body of a list response: one page of items and the absolute URL of the next.
type List struct {
	Value    []any  `json:"value"`
	NextLink string `json:"nextLink,omitempty"`
}

// Page lists one page of the resources opts selects in its own read transaction; see PageTx.
// It must not be called inside another transaction: a handler that also reads other things
// for the list (to render items, say) uses PageTx inside its one View.
func (r *Request) Page(ctx context.Context, st store.Store, opts store.ListOptions, render func(store.Resource) (any, error)) (*Response, error) {
	var resp *Response
	err := st.View(ctx, func(tx store.Tx) error {
		var err error
		resp, err = r.PageTx(ctx, tx, opts, render)
		return err
	})
	return resp, err
}

// PageTx lists one page of the resources opts selects, reading from tx, continuing after the
// request's $skipToken, and renders each with render (which may return nil to skip an item).
// A caller who may read the list only in part gets the items it may read (a page may then
// hold fewer items than the page size, or none, and still have a nextLink).
func (r *Request) PageTx(ctx context.Context, tx store.Tx, opts store.ListOptions, render func(store.Resource) (any, error)) (*Response, error) {
	return r.PageTxBatch(ctx, tx, opts, func(items []store.Resource) ([]any, error) {
		out := make([]any, 0, len(items))
		for _, it := range items {
			v, err := render(it)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	})
}

// PageTxBatch is PageTx for a renderer that reads what it needs for a whole page at once (one
// query for the page, not one per item): render gets the page's items the caller may read, in
// key order, and returns one value per item (nil to skip it).
func (r *Request) PageTxBatch(ctx context.Context, tx store.Tx, opts store.ListOptions, render func([]store.Resource) ([]any, error)) (*Response, error) {
	visible := r.Filter() // before listing: a list with no items is filtered too
	size := r.PageSize()
	opts.After = r.Query.Get("$skipToken")
	opts.Limit = size + 1
	items, err := tx.List(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", r.Target.Type, err)
	}
	list := List{Value: []any{}}
	if len(items) > size {
		items = items[:size]
		q := url.Values{}
		q.Set("api-version", r.APIVersion)
		q.Set("$skipToken", items[len(items)-1].Key)
		list.NextLink = r.endpoint + r.path + "?" + q.Encode()
	}
	readable := items[:0:0]
	for _, it := range items {
		if visible(it.Type, it.ID) {
			readable = append(readable, it)
		}
	}
	if len(readable) == 0 {
		return &Response{Body: list}, nil
	}
	values, err := render(readable)
	if err != nil {
		return nil, err
	}
	for _, v := range values {
		if v != nil {
			list.Value = append(list.Value, v)
		}
	}
	return &Response{Body: list}, nil
}

// defaultPageSize is the page size of a Request that was not made by a Server.
const defaultPageSize = 100

// PageSize is how many items one page of a list response holds.
func (r *Request) PageSize() int {
	if r.pageSize <= 0 {
		return defaultPageSize
	}
	return r.pageSize
}

// NextLink returns the absolute URL of the next page of the request's list: the same path and
// query with $skipToken set to token.
func (r *Request) NextLink(token string) string {
	q := url.Values{}
	for k, v := range r.Query {
		q[k] = v
	}
	q.Set("$skipToken", token)
	return r.endpoint + r.path + "?" + q.Encode()
}

// PageKeys lists one page of n items that are not in the store (a catalogue, say), continuing
// after the request's $skipToken. keys[i] is item i's key, and keys must be sorted ascending
// and unique; render(i) returns item i as served.
func (r *Request) PageKeys(keys []string, render func(i int) (any, error)) (*Response, error) {
	after := r.Query.Get("$skipToken")
	list := List{Value: []any{}}
	for i, k := range keys {
		if after != "" && k <= after {
			continue
		}
		if len(list.Value) == r.PageSize() {
			list.NextLink = r.NextLink(keys[i-1])
			break
		}
		v, err := render(i)
		if err != nil {
			return nil, err
		}
		list.Value = append(list.Value, v)
	}
	return &Response{Body: list}, nil
}
