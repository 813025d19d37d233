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

// Page lists one page of the resources opts selects, continuing after the request's
// $skipToken, and renders each with render (which may return nil to skip an item).
func (r *Request) Page(ctx context.Context, st store.Store, opts store.ListOptions, render func(store.Resource) (any, error)) (*Response, error) {
	opts.After = r.Query.Get("$skipToken")
	opts.Limit = r.pageSize + 1
	var items []store.Resource
	if err := st.View(ctx, func(tx store.Tx) error {
		var err error
		items, err = tx.List(ctx, opts)
		return err
	}); err != nil {
		return nil, fmt.Errorf("list %s: %w", r.Target.Type, err)
	}
	list := List{Value: []any{}}
	if len(items) > r.pageSize {
		items = items[:r.pageSize]
		q := url.Values{}
		q.Set("api-version", r.APIVersion)
		q.Set("$skipToken", items[len(items)-1].Key)
		list.NextLink = r.endpoint + r.path + "?" + q.Encode()
	}
	for _, it := range items {
		v, err := render(it)
		if err != nil {
			return nil, err
		}
		if v != nil {
			list.Value = append(list.Value, v)
		}
	}
	return &Response{Body: list}, nil
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
		if len(list.Value) == r.pageSize {
			q := url.Values{}
			q.Set("api-version", r.APIVersion)
			q.Set("$skipToken", keys[i-1])
			list.NextLink = r.endpoint + r.path + "?" + q.Encode()
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
