package arm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/pglink/pglink/internal/operation"
	"github.com/pglink/pglink/internal/resource"
	"github.com/pglink/pglink/internal/store"
)

// Decode unmarshals the request body into v, answering 400 InvalidRequestContent for a body
// that is not the JSON the type expects, with a message that names the property, what it must
// be and where (line and column), never a Go type. Unknown properties are ignored, as Azure
// does. An empty body decodes as {}.
func (r *Request) Decode(v any) error {
	body := bytes.TrimSpace(r.Body)
	if len(body) == 0 {
		body = []byte("{}")
	}
	if err := json.Unmarshal(body, v); err != nil {
		return decodeError(body, err)
	}
	return nil
}

// Load reads the resource id from tx and unmarshals its body into v. A missing resource is
// Azure's 404 ResourceNotFound for id.
func Load(ctx context.Context, tx store.Tx, id resource.ID, v any) (store.Resource, error) {
	r, err := tx.Get(ctx, id.Key())
	if errors.Is(err, store.ErrNotFound) {
		return r, resource.NotFoundError(id)
	}
	if err != nil {
		return r, fmt.Errorf("read %s: %w", id, err)
	}
	if v != nil {
		if err := json.Unmarshal(r.Body, v); err != nil {
			return r, fmt.Errorf("decode %s: %w", id, err)
		}
	}
	return r, nil
}

// Save writes v as the body of resource id, whose parent scope is id.Parent().
func Save(ctx context.Context, tx store.Tx, id resource.ID, v any) (store.Resource, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return store.Resource{}, fmt.Errorf("encode %s: %w", id, err)
	}
	r, err := tx.Put(ctx, store.Resource{Key: id.Key(), ID: id.String(), Type: id.Type(), Parent: id.Parent().Key(), Body: body}, "")
	if err != nil {
		return r, fmt.Errorf("write %s: %w", id, err)
	}
	return r, nil
}

// Delete removes resource id and everything below it.
func Delete(ctx context.Context, tx store.Tx, id resource.ID) error {
	below, err := tx.List(ctx, store.ListOptions{Prefix: id.Key()})
	if err != nil {
		return fmt.Errorf("list below %s: %w", id, err)
	}
	for _, r := range below {
		if err := tx.Delete(ctx, r.Key); err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("delete %s: %w", r.ID, err)
		}
	}
	return nil
}

// CheckPreconditions applies If-Match and If-None-Match to the current resource (nil if it
// does not exist): 412 PreconditionFailed when they do not hold.
func (r *Request) CheckPreconditions(cur *store.Resource) error {
	fail := func(why string) error {
		return resource.Errorf(resource.PreconditionFailed, "PreconditionFailed", "The condition specified using HTTP conditional header(s) is not met: %s.", why)
	}
	if m := r.Header.Get("If-Match"); m != "" {
		switch {
		case cur == nil:
			return fail("If-Match was given but the resource does not exist")
		case m != "*" && !etagIn(m, cur.ETag):
			return fail("If-Match does not match the current ETag")
		}
	}
	if m := r.Header.Get("If-None-Match"); m != "" && cur != nil {
		if m == "*" || etagIn(m, cur.ETag) {
			return fail("If-None-Match matched an existing resource")
		}
	}
	return nil
}

func etagIn(list, etag string) bool {
	for _, e := range strings.Split(list, ",") {
		e = strings.TrimPrefix(strings.TrimSpace(e), "W/")
		if e == etag || strings.Trim(e, `"`) == strings.Trim(etag, `"`) {
			return true
		}
	}
	return false
}

// Body returns the stored JSON of r, with its ETag set as "etag" when etag is true (network
// and DNS resources carry one; PostgreSQL resources do not).
func Body(r store.Resource, etag bool) json.RawMessage {
	if !etag {
		return r.Body
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(r.Body, &m); err != nil {
		return r.Body
	}
	m["etag"], _ = json.Marshal(r.ETag)
	b, _ := json.Marshal(m)
	return b
}

// OpMeta returns the activity metadata a long-running operation started by req carries.
// An empty description takes the request's own (see DescriptionHeader).
func OpMeta(req *Request, description string) operation.Meta {
	if description == "" {
		description = req.description()
	}
	name := req.Caller.AppID
	if req.Caller.Kind == "User" || name == "" {
		name = req.Caller.Name
	}
	return operation.Meta{TenantID: req.Caller.TenantID, Caller: name, CallerObjectID: req.Caller.ObjectID,
		Action: req.Action, CorrelationID: req.CorrelationID, Description: description}
}

// Current returns the stored resource with key, or nil if there is none.
func Current(ctx context.Context, tx store.Tx, key string) (*store.Resource, error) {
	r, err := tx.Get(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	return &r, nil
}

// Child serves a child resource type (e.g. firewall rules of a server): GET of one and list,
// both answering 404 for a missing parent, served from the store as written (with "etag" if
// etag is set); PUT and DELETE go to put and del.
func Child(ctx context.Context, st store.Store, req *Request, etag bool, put, del Handler) (*Response, error) {
	t := req.Target
	parent := t.Parent()
	if t.Collection || req.Method == "GET" {
		if req.Method != "GET" {
			return nil, MethodNotAllowed(req)
		}
		var resp *Response
		err := st.View(ctx, func(tx store.Tx) error {
			if _, err := Load(ctx, tx, parent, nil); err != nil {
				return err
			}
			if t.Collection {
				var err error
				resp, err = req.PageTx(ctx, tx, store.ListOptions{Parent: parent.Key(), Type: t.Type},
					func(r store.Resource) (any, error) { return Body(r, etag), nil })
				return err
			}
			r, err := Load(ctx, tx, t.ID, nil)
			if err != nil {
				return err
			}
			resp = &Response{Body: Body(r, etag)}
			return nil
		})
		if err != nil {
			return nil, err
		}
		return resp, nil
	}
	switch {
	case req.Method == "PUT" && put != nil:
		return put(ctx, req)
	case req.Method == "DELETE" && del != nil:
		return del(ctx, req)
	}
	return nil, MethodNotAllowed(req)
}

// Existing reads the resource a write addresses (nil if it does not exist) and applies the
// request's If-Match / If-None-Match to it.
func (r *Request) Existing(ctx context.Context, tx store.Tx, key string) (*store.Resource, error) {
	cur, err := Current(ctx, tx, key)
	if err != nil {
		return nil, err
	}
	return cur, r.CheckPreconditions(cur)
}
