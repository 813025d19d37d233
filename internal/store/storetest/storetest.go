// Package storetest is the conformance suite for store.Store: every backend runs Run and must
// pass it unchanged.
//
// The suite uses times with microsecond precision, the finest every backend keeps.
package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/store"
)

// Run runs the conformance suite against the stores open returns. open must return a new,
// empty store each time it is called and close it when t ends (with t.Cleanup).
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"PutGet", testPutGet},
		{"Delete", testDelete},
		{"List", testList},
		{"ListPaging", testListPaging},
		{"ETag", testETag},
		{"ETagChangesOnEveryWrite", testETagChanges},
		{"Revisions", testRevisions},
		{"View", testView},
		{"TxSeesOwnWrites", testOwnWrites},
		{"Rollback", testRollback},
		{"CanceledContext", testCanceledContext},
		{"Changes", testChanges},
		{"Notify", testNotify},
		{"Operations", testOperations},
		{"ActiveOperationUnique", testActiveOperationUnique},
		{"Lease", testLease},
		{"LeaseOnNode", testLeaseOnNode},
		{"Nodes", testNodes},
		{"Events", testEvents},
		{"PruneEvents", testPruneEvents},
		{"EventFilters", testEventFilters},
		{"EventPaging", testEventPaging},
		{"Principals", testPrincipals},
		{"Settings", testSettings},
		{"ConcurrentIncrements", testConcurrentIncrements},
		{"ConcurrentLeases", testConcurrentLeases},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, open(t))
		})
	}
}

// Keys and IDs used by the tests.
const (
	sub    = "/subscriptions/00000000-0000-0000-0000-000000000001"
	rgKey  = sub + "/resourcegroups/rg1"
	rg2Key = sub + "/resourcegroups/rg10" // shares the prefix "…/rg1" but is not under rg1
	typeRG = "Microsoft.Resources/resourceGroups"
	typePE = "Microsoft.Network/privateEndpoints"
	typeFS = "Microsoft.DBforPostgreSQL/flexibleServers"
	typeDB = "Microsoft.DBforPostgreSQL/flexibleServers/databases"
)

var errBoom = errors.New("boom")

// at is a fixed instant plus d, with microsecond precision.
func at(d time.Duration) time.Time {
	return time.Date(2030, 1, 2, 3, 4, 5, 678901000, time.UTC).Add(d)
}

func resource(key, typ, parent, body string) store.Resource {
	return store.Resource{Key: key, ID: key, Type: typ, Parent: parent, Body: []byte(body)}
}

// put writes r unconditionally in its own transaction and returns what Put returned.
func put(t *testing.T, s store.Store, r store.Resource) store.Resource {
	t.Helper()
	var got store.Resource
	err := s.Update(t.Context(), func(tx store.Tx) error {
		var err error
		got, err = tx.Put(t.Context(), r, "")
		return err
	})
	if err != nil {
		t.Fatalf("Put(%q) = %v; want nil", r.Key, err)
	}
	return got
}

// get reads key in a View.
func get(t *testing.T, s store.Store, key string) (store.Resource, error) {
	t.Helper()
	var r store.Resource
	err := s.View(t.Context(), func(tx store.Tx) error {
		var err error
		r, err = tx.Get(t.Context(), key)
		return err
	})
	return r, err
}

func putOp(t *testing.T, s store.Store, op store.Operation) store.Operation {
	t.Helper()
	var got store.Operation
	err := s.Update(t.Context(), func(tx store.Tx) error {
		var err error
		got, err = tx.PutOperation(t.Context(), op)
		return err
	})
	if err != nil {
		t.Fatalf("PutOperation(%q) = %v; want nil", op.ID, err)
	}
	return got
}

func getOp(t *testing.T, s store.Store, id string) (store.Operation, error) {
	t.Helper()
	var op store.Operation
	err := s.View(t.Context(), func(tx store.Tx) error {
		var err error
		op, err = tx.Operation(t.Context(), id)
		return err
	})
	return op, err
}

func revision(t *testing.T, s store.Store) int64 {
	t.Helper()
	rev, err := s.Revision(t.Context())
	if err != nil {
		t.Fatalf("Revision() = %v; want nil", err)
	}
	return rev
}

func changes(t *testing.T, s store.Store, since int64, limit int) []store.Change {
	t.Helper()
	c, err := s.Changes(t.Context(), since, limit)
	if err != nil {
		t.Fatalf("Changes(%d, %d) = %v; want nil", since, limit, err)
	}
	return c
}

// fmtResource prints r with a readable body.
func fmtResource(r store.Resource) string {
	return fmt.Sprintf("{Key:%q ID:%q Type:%q Parent:%q Body:%q ETag:%q Revision:%d}",
		r.Key, r.ID, r.Type, r.Parent, r.Body, r.ETag, r.Revision)
}

func sameResource(a, b store.Resource) bool {
	return a.Key == b.Key && a.ID == b.ID && a.Type == b.Type && a.Parent == b.Parent &&
		bytes.Equal(a.Body, b.Body) && a.ETag == b.ETag && a.Revision == b.Revision
}

func fmtOp(o store.Operation) string {
	return fmt.Sprintf("{ID:%q ResourceKey:%q ResourceID:%q Kind:%q Goal:%q Status:%q Input:%q Error:%q "+
		"Method:%q Location:%q LeaseOwner:%q LeaseUntil:%v Attempts:%d Created:%v Updated:%v Revision:%d Node:%q}",
		o.ID, o.ResourceKey, o.ResourceID, o.Kind, o.Goal, o.Status, o.Input, o.Error, o.Method, o.Location,
		o.LeaseOwner, o.LeaseUntil, o.Attempts, o.Created, o.Updated, o.Revision, o.Node)
}

func sameOp(a, b store.Operation) bool {
	return a.ID == b.ID && a.ResourceKey == b.ResourceKey && a.ResourceID == b.ResourceID && a.Kind == b.Kind &&
		a.Goal == b.Goal && a.Status == b.Status && bytes.Equal(a.Input, b.Input) && bytes.Equal(a.Error, b.Error) &&
		a.Method == b.Method && a.Location == b.Location && a.LeaseOwner == b.LeaseOwner &&
		a.LeaseUntil.Equal(b.LeaseUntil) && a.Attempts == b.Attempts && a.Created.Equal(b.Created) &&
		a.Updated.Equal(b.Updated) && a.Revision == b.Revision && a.Node == b.Node
}

func keys(rs []store.Resource) []string {
	k := make([]string, len(rs))
	for i, r := range rs {
		k[i] = r.Key
	}
	return k
}

func testPutGet(t *testing.T, s store.Store) {
	key := rgKey + "/providers/microsoft.network/privateendpoints/pe1"
	r := resource(key, typePE, rgKey, `{"name":"pe1"}`)
	r.ID = sub + "/resourceGroups/RG1/providers/Microsoft.Network/privateEndpoints/PE1"

	created := put(t, s, r)
	if created.ETag == "" || created.Revision <= 0 {
		t.Errorf("Put(%q) = %s; want an ETag and a positive Revision", key, fmtResource(created))
	}
	want := r
	want.ETag, want.Revision = created.ETag, created.Revision
	if !sameResource(created, want) {
		t.Errorf("Put(%q) = %s; want %s", key, fmtResource(created), fmtResource(want))
	}
	got, err := get(t, s, key)
	if err != nil || !sameResource(got, want) {
		t.Errorf("Get(%q) = %s, %v; want %s, nil", key, fmtResource(got), err, fmtResource(want))
	}

	// Replace it, with other casing in the ID.
	r2 := r
	r2.ID = sub + "/resourcegroups/rg1/providers/microsoft.network/privateendpoints/pe1"
	r2.Body = []byte(`{"name":"pe1","properties":{}}`)
	replaced := put(t, s, r2)
	if replaced.ETag == created.ETag || replaced.Revision <= created.Revision {
		t.Errorf("Put(%q) again = ETag %s, Revision %d; want an ETag other than %s and a Revision > %d",
			key, replaced.ETag, replaced.Revision, created.ETag, created.Revision)
	}
	want = r2
	want.ETag, want.Revision = replaced.ETag, replaced.Revision
	got, err = get(t, s, key)
	if err != nil || !sameResource(got, want) {
		t.Errorf("Get(%q) = %s, %v; want %s, nil", key, fmtResource(got), err, fmtResource(want))
	}

	if _, err := get(t, s, key+"-missing"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get(missing) = %v; want ErrNotFound", err)
	}
}

func testDelete(t *testing.T, s store.Store) {
	key := rgKey
	put(t, s, resource(key, typeRG, sub, `{}`))
	del := func() error {
		return s.Update(t.Context(), func(tx store.Tx) error { return tx.Delete(t.Context(), key) })
	}
	if err := del(); err != nil {
		t.Fatalf("Delete(%q) = %v; want nil", key, err)
	}
	if _, err := get(t, s, key); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get(%q) after Delete = %v; want ErrNotFound", key, err)
	}
	if err := del(); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Delete(%q) again = %v; want ErrNotFound", key, err)
	}
}

// listFixture writes a small tree of resources and returns their keys, sorted.
func listFixture(t *testing.T, s store.Store) (pe1, pe2, pe3, fs1, db1 string, all []string) {
	t.Helper()
	pe1 = rgKey + "/providers/microsoft.network/privateendpoints/pe1"
	pe2 = rgKey + "/providers/microsoft.network/privateendpoints/pe2"
	pe3 = rg2Key + "/providers/microsoft.network/privateendpoints/pe3"
	fs1 = rgKey + "/providers/microsoft.dbforpostgresql/flexibleservers/fs1"
	db1 = fs1 + "/databases/app"
	rs := []store.Resource{
		resource(pe2, typePE, rgKey, `{"n":"pe2"}`), // out of order on purpose
		resource(rgKey, typeRG, sub, `{"n":"rg1"}`),
		resource(rg2Key, typeRG, sub, `{"n":"rg10"}`),
		resource(pe1, typePE, rgKey, `{"n":"pe1"}`),
		resource(pe3, typePE, rg2Key, `{"n":"pe3"}`),
		resource(db1, typeDB, fs1, `{"n":"db1"}`),
		resource(fs1, typeFS, rgKey, `{"n":"fs1"}`),
	}
	err := s.Update(t.Context(), func(tx store.Tx) error {
		for _, r := range rs {
			if _, err := tx.Put(t.Context(), r, ""); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Update(put fixture) = %v; want nil", err)
	}
	all = keys(rs)
	slices.Sort(all)
	return pe1, pe2, pe3, fs1, db1, all
}

func testList(t *testing.T, s store.Store) {
	pe1, pe2, pe3, fs1, db1, all := listFixture(t, s)
	sorted := func(k ...string) []string { slices.Sort(k); return k }
	tests := []struct {
		name string
		opts store.ListOptions
		want []string
	}{
		{"all", store.ListOptions{}, all},
		{"parent rg1", store.ListOptions{Parent: rgKey}, sorted(pe1, pe2, fs1)},
		{"parent sub", store.ListOptions{Parent: sub}, sorted(rgKey, rg2Key)},
		{"parent fs1", store.ListOptions{Parent: fs1}, []string{db1}},
		{"parent missing", store.ListOptions{Parent: rgKey + "/nothing"}, nil},
		{"prefix rg1", store.ListOptions{Prefix: rgKey}, sorted(rgKey, pe1, pe2, fs1, db1)},
		{"prefix rg10", store.ListOptions{Prefix: rg2Key}, sorted(rg2Key, pe3)},
		{"prefix fs1", store.ListOptions{Prefix: fs1}, sorted(fs1, db1)},
		{"prefix sub", store.ListOptions{Prefix: sub}, all},
		{"prefix partial segment", store.ListOptions{Prefix: sub + "/resourcegroups/rg"}, nil},
		{"type", store.ListOptions{Type: typePE}, sorted(pe1, pe2, pe3)},
		{"type other casing", store.ListOptions{Type: "MICROSOFT.NETWORK/privateendpoints"}, sorted(pe1, pe2, pe3)},
		{"type nested", store.ListOptions{Type: typeDB}, []string{db1}},
		{"type and prefix", store.ListOptions{Type: typePE, Prefix: rgKey}, sorted(pe1, pe2)},
		{"type and parent", store.ListOptions{Type: typeRG, Parent: sub}, sorted(rgKey, rg2Key)},
		{"limit", store.ListOptions{Limit: 2}, all[:2]},
		{"after", store.ListOptions{After: all[3]}, all[4:]},
		{"after and limit", store.ListOptions{After: all[1], Limit: 3}, all[2:5]},
		{"after last", store.ListOptions{After: all[len(all)-1]}, nil},
		{"type, after and limit", store.ListOptions{Type: typePE, After: pe1, Limit: 1}, sorted(pe2)},
		{"parents", store.ListOptions{Parents: []string{fs1, rg2Key}}, sorted(db1, pe3)},
		{"parents and type", store.ListOptions{Parents: []string{rgKey, rg2Key}, Type: typePE}, sorted(pe1, pe2, pe3)},
		{"parents and parent", store.ListOptions{Parents: []string{rgKey, rg2Key}, Parent: rg2Key}, sorted(pe3)},
		{"parents missing", store.ListOptions{Parents: []string{rgKey + "/nothing"}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []store.Resource
			err := s.View(t.Context(), func(tx store.Tx) error {
				var err error
				got, err = tx.List(t.Context(), tt.opts)
				return err
			})
			if err != nil {
				t.Fatalf("List(%+v) = %v; want nil", tt.opts, err)
			}
			if k := keys(got); !slices.Equal(k, tt.want) {
				t.Errorf("List(%+v) = %q; want %q", tt.opts, k, tt.want)
			}
		})
	}

	// List returns whole resources.
	var got []store.Resource
	err := s.View(t.Context(), func(tx store.Tx) error {
		var err error
		got, err = tx.List(t.Context(), store.ListOptions{Prefix: pe1})
		return err
	})
	want, gerr := get(t, s, pe1)
	if err != nil || gerr != nil || len(got) != 1 || !sameResource(got[0], want) {
		t.Errorf("List(prefix %q) = %v, %v; want [%s]", pe1, got, err, fmtResource(want))
	}
}

func testListPaging(t *testing.T, s store.Store) {
	var want []string
	err := s.Update(t.Context(), func(tx store.Tx) error {
		for i := range 25 {
			key := fmt.Sprintf("%s/providers/microsoft.network/privateendpoints/pe%02d", rgKey, (i*7)%25)
			want = append(want, key)
			if _, err := tx.Put(t.Context(), resource(key, typePE, rgKey, `{}`), ""); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Update(put 25) = %v; want nil", err)
	}
	slices.Sort(want)
	for _, limit := range []int{1, 4, 10, 25, 30} {
		var got []string
		after := ""
		for page := 0; ; page++ {
			if page > 30 {
				t.Fatalf("limit %d: paging does not end", limit)
			}
			var rs []store.Resource
			opts := store.ListOptions{Parent: rgKey, After: after, Limit: limit}
			err := s.View(t.Context(), func(tx store.Tx) error {
				var err error
				rs, err = tx.List(t.Context(), opts)
				return err
			})
			if err != nil {
				t.Fatalf("List(%+v) = %v; want nil", opts, err)
			}
			if len(rs) > limit {
				t.Fatalf("List(%+v) returned %d; want at most %d", opts, len(rs), limit)
			}
			if len(rs) == 0 {
				break
			}
			got = append(got, keys(rs)...)
			after = rs[len(rs)-1].Key
		}
		if !slices.Equal(got, want) {
			t.Errorf("paging with limit %d = %q; want %q", limit, got, want)
		}
	}
}

func testETag(t *testing.T, s store.Store) {
	key := rgKey
	missing := rgKey + "-missing"
	base := put(t, s, resource(key, typeRG, sub, `{"v":0}`))
	stale := base.ETag
	cur := put(t, s, resource(key, typeRG, sub, `{"v":1}`)) // stale is now out of date

	tests := []struct {
		name    string
		key     string
		ifETag  func() string
		wantErr error
	}{
		{"current etag", key, func() string { return cur.ETag }, nil},
		{"stale etag", key, func() string { return stale }, store.ErrConflict},
		{"bogus etag", key, func() string { return `"bogus"` }, store.ErrConflict},
		{"star on existing", key, func() string { return "*" }, nil},
		{"star on missing", missing, func() string { return "*" }, store.ErrNotFound},
		{"etag on missing", missing, func() string { return cur.ETag }, store.ErrNotFound},
		{"no etag on missing creates", missing, func() string { return "" }, nil},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, beforeErr := get(t, s, tt.key)
			r := resource(tt.key, typeRG, sub, fmt.Sprintf(`{"v":%d}`, i+2))
			ifETag := tt.ifETag()
			var got store.Resource
			err := s.Update(t.Context(), func(tx store.Tx) error {
				var err error
				got, err = tx.Put(t.Context(), r, ifETag)
				return err
			})
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("Put(%q, ifETag %s) = %v; want %v", tt.key, ifETag, err, tt.wantErr)
			}
			after, afterErr := get(t, s, tt.key)
			if tt.wantErr != nil {
				// Nothing changed.
				if beforeErr != nil && !errors.Is(afterErr, store.ErrNotFound) {
					t.Errorf("after failed Put: Get(%q) = %s, %v; want ErrNotFound", tt.key, fmtResource(after), afterErr)
				}
				if beforeErr == nil && (afterErr != nil || !sameResource(after, before)) {
					t.Errorf("after failed Put: Get(%q) = %s, %v; want %s, nil",
						tt.key, fmtResource(after), afterErr, fmtResource(before))
				}
				return
			}
			if got.ETag == "" || got.ETag == ifETag || got.ETag == before.ETag {
				t.Errorf("Put(%q, ifETag %s).ETag = %s; want a new ETag", tt.key, ifETag, got.ETag)
			}
			if afterErr != nil || !sameResource(after, got) {
				t.Errorf("Get(%q) = %s, %v; want %s, nil", tt.key, fmtResource(after), afterErr, fmtResource(got))
			}
			if tt.key == key {
				cur = got
			}
		})
	}
}

func testETagChanges(t *testing.T, s store.Store) {
	r := resource(rgKey, typeRG, sub, `{"same":true}`)
	seen := map[string]bool{}
	for i := range 5 {
		got := put(t, s, r) // the same content every time
		if seen[got.ETag] {
			t.Errorf("write %d: Put(%q).ETag = %s, seen before; want a new ETag on every write", i, r.Key, got.ETag)
		}
		seen[got.ETag] = true
	}
}

func testRevisions(t *testing.T, s store.Store) {
	rev0 := revision(t, s)
	if rev0 < 0 {
		t.Fatalf("Revision() = %d; want >= 0", rev0)
	}

	// All writes of one transaction share its revision.
	var revs []int64
	err := s.Update(t.Context(), func(tx store.Tx) error {
		for _, r := range []store.Resource{
			resource(rgKey, typeRG, sub, `{}`),
			resource(rg2Key, typeRG, sub, `{}`),
		} {
			got, err := tx.Put(t.Context(), r, "")
			if err != nil {
				return err
			}
			revs = append(revs, got.Revision)
		}
		op, err := tx.PutOperation(t.Context(), store.Operation{
			ID: "op1", ResourceKey: rgKey, ResourceID: rgKey, Kind: "test", Status: store.OpInProgress,
			Created: at(0), Updated: at(0),
		})
		revs = append(revs, op.Revision)
		return err
	})
	if err != nil {
		t.Fatalf("Update = %v; want nil", err)
	}
	rev1 := revs[0]
	for i, r := range revs {
		if r != rev1 {
			t.Errorf("write %d of one transaction: Revision = %d; want %d like the first", i, r, rev1)
		}
	}
	if rev1 <= rev0 {
		t.Errorf("first write: Revision = %d; want > %d", rev1, rev0)
	}
	if got := revision(t, s); got != rev1 {
		t.Errorf("Revision() after commit = %d; want %d", got, rev1)
	}
	for _, key := range []string{rgKey, rg2Key} {
		if r, err := get(t, s, key); err != nil || r.Revision != rev1 {
			t.Errorf("Get(%q).Revision = %d, %v; want %d, nil", key, r.Revision, err, rev1)
		}
	}
	if op, err := getOp(t, s, "op1"); err != nil || op.Revision != rev1 {
		t.Errorf("Operation(op1).Revision = %d, %v; want %d, nil", op.Revision, err, rev1)
	}

	// Each committing transaction takes a greater revision.
	prev := rev1
	for i := range 3 {
		got := put(t, s, resource(rgKey, typeRG, sub, fmt.Sprintf(`{"i":%d}`, i)))
		if got.Revision <= prev {
			t.Errorf("Put %d: Revision = %d; want > %d", i, got.Revision, prev)
		}
		if r := revision(t, s); r != got.Revision {
			t.Errorf("Revision() = %d; want %d", r, got.Revision)
		}
		prev = got.Revision
	}

	// A read-only transaction takes none.
	if err := s.View(t.Context(), func(tx store.Tx) error {
		_, err := tx.Get(t.Context(), rgKey)
		return err
	}); err != nil {
		t.Fatalf("View = %v; want nil", err)
	}
	if got := revision(t, s); got != prev {
		t.Errorf("Revision() after View = %d; want %d", got, prev)
	}
}

func testView(t *testing.T, s store.Store) {
	put(t, s, resource(rgKey, typeRG, sub, `{}`))
	rev := revision(t, s)
	writes := []struct {
		name string
		fn   func(tx store.Tx) error
	}{
		{"Put", func(tx store.Tx) error {
			_, err := tx.Put(t.Context(), resource(rg2Key, typeRG, sub, `{}`), "")
			return err
		}},
		{"Delete", func(tx store.Tx) error { return tx.Delete(t.Context(), rgKey) }},
		{"PutOperation", func(tx store.Tx) error {
			_, err := tx.PutOperation(t.Context(), store.Operation{ID: "op1", ResourceKey: rgKey, Status: store.OpInProgress})
			return err
		}},
		{"AppendEvent", func(tx store.Tx) error {
			return tx.AppendEvent(t.Context(), store.Event{Time: at(0), Subscription: "s", Body: []byte(`{}`)})
		}},
		{"PutPrincipal", func(tx store.Tx) error {
			return tx.PutPrincipal(t.Context(), store.Principal{ObjectID: "o1", Login: "a@example.com"})
		}},
		{"DeletePrincipal", func(tx store.Tx) error { return tx.DeletePrincipal(t.Context(), "o1") }},
		{"PutSetting", func(tx store.Tx) error { return tx.PutSetting(t.Context(), "s", []byte("v")) }},
	}
	for _, w := range writes {
		t.Run(w.name, func(t *testing.T) {
			if err := s.View(t.Context(), w.fn); err == nil {
				t.Errorf("View(%s) = nil; want an error", w.name)
			}
		})
	}
	if _, err := get(t, s, rgKey); err != nil {
		t.Errorf("Get(%q) after View writes = %v; want nil", rgKey, err)
	}
	if _, err := get(t, s, rg2Key); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get(%q) after View writes = %v; want ErrNotFound", rg2Key, err)
	}
	if _, err := getOp(t, s, "op1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Operation(op1) after View writes = %v; want ErrNotFound", err)
	}
	if got := revision(t, s); got != rev {
		t.Errorf("Revision() after View writes = %d; want %d", got, rev)
	}
	if c := changes(t, s, rev, 0); len(c) != 0 {
		t.Errorf("Changes(%d) after View writes = %v; want none", rev, c)
	}
}

func testOwnWrites(t *testing.T, s store.Store) {
	err := s.Update(t.Context(), func(tx store.Tx) error {
		mine, err := tx.Put(t.Context(), resource(rgKey, typeRG, sub, `{"mine":true}`), "")
		if err != nil {
			return err
		}
		got, err := tx.Get(t.Context(), rgKey)
		if err != nil || !sameResource(got, mine) {
			t.Errorf("Get(%q) in the writing Tx = %s, %v; want %s, nil", rgKey, fmtResource(got), err, fmtResource(mine))
		}
		list, err := tx.List(t.Context(), store.ListOptions{Parent: sub})
		if err != nil || !slices.Equal(keys(list), []string{rgKey}) {
			t.Errorf("List(parent %q) in the writing Tx = %q, %v; want [%q], nil", sub, keys(list), err, rgKey)
		}
		if _, err := tx.Put(t.Context(), resource(rgKey, typeRG, sub, `{}`), mine.ETag); err != nil {
			t.Errorf("Put(%q, own ETag) = %v; want nil", rgKey, err)
		}
		if _, err := tx.PutOperation(t.Context(), store.Operation{ID: "op1", ResourceKey: rgKey, Status: store.OpInProgress,
			Created: at(0), Updated: at(0)}); err != nil {
			return err
		}
		if op, err := tx.ActiveOperation(t.Context(), rgKey); err != nil || op.ID != "op1" {
			t.Errorf("ActiveOperation(%q) in the writing Tx = %q, %v; want op1, nil", rgKey, op.ID, err)
		}
		if err := tx.Delete(t.Context(), rgKey); err != nil {
			return err
		}
		if _, err := tx.Get(t.Context(), rgKey); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Get(%q) after Delete in the writing Tx = %v; want ErrNotFound", rgKey, err)
		}
		if err := tx.PutPrincipal(t.Context(), store.Principal{ObjectID: "o1", Login: "a@example.com"}); err != nil {
			return err
		}
		if p, err := tx.Principal(t.Context(), "A@example.com"); err != nil || p.ObjectID != "o1" {
			t.Errorf("Principal(A@example.com) in the writing Tx = %q, %v; want o1, nil", p.ObjectID, err)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Update = %v; want nil", err)
	}
}

func testRollback(t *testing.T, s store.Store) {
	put(t, s, resource(rgKey, typeRG, sub, `{"v":"before"}`))
	before, _ := get(t, s, rgKey)
	rev := revision(t, s)

	err := s.Update(t.Context(), func(tx store.Tx) error {
		if _, err := tx.Put(t.Context(), resource(rgKey, typeRG, sub, `{"v":"after"}`), ""); err != nil {
			return err
		}
		if _, err := tx.Put(t.Context(), resource(rg2Key, typeRG, sub, `{}`), ""); err != nil {
			return err
		}
		if _, err := tx.PutOperation(t.Context(), store.Operation{ID: "op1", ResourceKey: rgKey, Status: store.OpInProgress,
			Created: at(0), Updated: at(0)}); err != nil {
			return err
		}
		if err := tx.AppendEvent(t.Context(), store.Event{Time: at(0), Subscription: "s1", Body: []byte(`{}`)}); err != nil {
			return err
		}
		if err := tx.PutPrincipal(t.Context(), store.Principal{ObjectID: "o1", Login: "a@example.com"}); err != nil {
			return err
		}
		return fmt.Errorf("give up: %w", errBoom)
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("Update(fn fails) = %v; want %v", err, errBoom)
	}

	if got, err := get(t, s, rgKey); err != nil || !sameResource(got, before) {
		t.Errorf("Get(%q) after rollback = %s, %v; want %s, nil", rgKey, fmtResource(got), err, fmtResource(before))
	}
	if _, err := get(t, s, rg2Key); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get(%q) after rollback = %v; want ErrNotFound", rg2Key, err)
	}
	if _, err := getOp(t, s, "op1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Operation(op1) after rollback = %v; want ErrNotFound", err)
	}
	if ev, err := s.Events(t.Context(), store.EventQuery{Subscription: "s1"}); err != nil || len(ev) != 0 {
		t.Errorf("Events(s1) after rollback = %d events, %v; want 0, nil", len(ev), err)
	}
	err = s.View(t.Context(), func(tx store.Tx) error {
		_, err := tx.Principal(t.Context(), "o1")
		return err
	})
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Principal(o1) after rollback = %v; want ErrNotFound", err)
	}
	if got := revision(t, s); got != rev {
		t.Errorf("Revision() after rollback = %d; want %d", got, rev)
	}
	if c := changes(t, s, rev, 0); len(c) != 0 {
		t.Errorf("Changes(%d) after rollback = %v; want none", rev, c)
	}

	// A store error that fn returns comes back from Update.
	err = s.Update(t.Context(), func(tx store.Tx) error {
		_, err := tx.Put(t.Context(), resource(rgKey, typeRG, sub, `{}`), `"stale"`)
		return err
	})
	if !errors.Is(err, store.ErrConflict) {
		t.Errorf("Update(Put with stale ETag) = %v; want ErrConflict", err)
	}

	// The next commit still takes a greater revision.
	if got := put(t, s, resource(rg2Key, typeRG, sub, `{}`)); got.Revision <= rev {
		t.Errorf("Put after rollback: Revision = %d; want > %d", got.Revision, rev)
	}
}

func testCanceledContext(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := s.Update(ctx, func(tx store.Tx) error {
		_, err := tx.Put(ctx, resource(rgKey, typeRG, sub, `{}`), "")
		return err
	})
	if err == nil {
		t.Errorf("Update(canceled ctx) = nil; want an error")
	}
	if _, err := get(t, s, rgKey); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get(%q) after canceled Update = %v; want ErrNotFound", rgKey, err)
	}
}

func testChanges(t *testing.T, s store.Store) {
	rev0 := revision(t, s)
	a := put(t, s, resource(rgKey, typeRG, sub, `{}`))
	b := put(t, s, resource(rg2Key, typeRG, sub, `{}`))
	if err := s.Update(t.Context(), func(tx store.Tx) error { return tx.Delete(t.Context(), rgKey) }); err != nil {
		t.Fatalf("Delete(%q) = %v; want nil", rgKey, err)
	}
	delRev := revision(t, s)
	op := putOp(t, s, store.Operation{ID: "op1", ResourceKey: rg2Key, Status: store.OpInProgress,
		Created: at(0), Updated: at(0)})

	all := []store.Change{
		{Revision: a.Revision, Key: rgKey},
		{Revision: b.Revision, Key: rg2Key},
		{Revision: delRev, Key: rgKey, Deleted: true},
		{Revision: op.Revision, Key: "op:op1"},
	}
	if !(rev0 < a.Revision && a.Revision < b.Revision && b.Revision < delRev && delRev < op.Revision) {
		t.Fatalf("revisions %d, %d, %d, %d, %d; want strictly increasing", rev0, a.Revision, b.Revision, delRev, op.Revision)
	}
	tests := []struct {
		since int64
		limit int
		want  []store.Change
	}{
		{rev0, 0, all},
		{rev0, 2, all[:2]},
		{rev0, 10, all},
		{a.Revision, 0, all[1:]},
		{b.Revision, 1, all[2:3]},
		{delRev, 0, all[3:]},
		{op.Revision, 0, nil},
	}
	for _, tt := range tests {
		if got := changes(t, s, tt.since, tt.limit); !slices.Equal(got, tt.want) {
			t.Errorf("Changes(%d, %d) = %+v; want %+v", tt.since, tt.limit, got, tt.want)
		}
	}

	// A lease writes the operation.
	leased, err := s.LeaseOperation(t.Context(), "w1", "", at(0), time.Minute)
	if err != nil {
		t.Fatalf("LeaseOperation = %v; want nil", err)
	}
	want := []store.Change{{Revision: leased.Revision, Key: "op:op1"}}
	if got := changes(t, s, op.Revision, 0); !slices.Equal(got, want) {
		t.Errorf("Changes(%d) after lease = %+v; want %+v", op.Revision, got, want)
	}
}

// receive waits for a value or close on ch; it reports whether ch is still open.
func receive(t *testing.T, ch <-chan struct{}, what string) bool {
	t.Helper()
	select {
	case _, ok := <-ch:
		return ok
	case <-time.After(10 * time.Second):
		t.Fatalf("no notification %s after 10s", what)
		return false
	}
}

// drain takes a pending value from ch, if any.
func drain(ch <-chan struct{}) {
	select {
	case <-ch:
	default:
	}
}

func testNotify(t *testing.T, s store.Store) {
	ctx1, cancel1 := context.WithCancel(t.Context())
	defer cancel1()
	ctx2, cancel2 := context.WithCancel(t.Context())
	defer cancel2()
	ch1, ch2 := s.Notify(ctx1), s.Notify(ctx2)
	drain(ch1)
	drain(ch2)

	put(t, s, resource(rgKey, typeRG, sub, `{}`))
	if !receive(t, ch1, "to subscriber 1 after a Put") || !receive(t, ch2, "to subscriber 2 after a Put") {
		t.Fatal("Notify channel closed before its ctx was done")
	}

	// A subscriber that does not read never blocks writers; values coalesce.
	for i := range 10 {
		put(t, s, resource(rgKey, typeRG, sub, fmt.Sprintf(`{"i":%d}`, i)))
	}
	if !receive(t, ch1, "after 10 Puts") {
		t.Fatal("Notify channel closed before its ctx was done")
	}

	// Operations notify too.
	drain(ch1)
	putOp(t, s, store.Operation{ID: "op1", ResourceKey: rgKey, Status: store.OpInProgress, Created: at(0), Updated: at(0)})
	if !receive(t, ch1, "after PutOperation") {
		t.Fatal("Notify channel closed before its ctx was done")
	}
	drain(ch1)
	if _, err := s.LeaseOperation(t.Context(), "w1", "", at(0), time.Minute); err != nil {
		t.Fatalf("LeaseOperation = %v; want nil", err)
	}
	if !receive(t, ch1, "after LeaseOperation") {
		t.Fatal("Notify channel closed before its ctx was done")
	}

	// Canceling one subscription closes its channel and leaves the other.
	cancel1()
	deadline := time.After(10 * time.Second)
	for open := true; open; {
		select {
		case _, open = <-ch1:
		case <-deadline:
			t.Fatal("Notify channel not closed 10s after its ctx was canceled")
		}
	}
	drain(ch2)
	put(t, s, resource(rgKey, typeRG, sub, `{"last":true}`))
	if !receive(t, ch2, "to subscriber 2 after subscriber 1 left") {
		t.Fatal("Notify channel closed before its ctx was done")
	}
}

func testOperations(t *testing.T, s store.Store) {
	op := store.Operation{
		ID:          "op-create-1",
		ResourceKey: rgKey + "/providers/microsoft.dbforpostgresql/flexibleservers/fs1",
		ResourceID:  sub + "/resourceGroups/RG1/providers/Microsoft.DBforPostgreSQL/flexibleServers/fs1",
		Kind:        "postgresql.server.create",
		Goal:        "sha256:abc",
		Status:      store.OpInProgress,
		Input:       []byte(`{"sku":"B1ms"}`),
		Method:      "PUT",
		Location:    "westeurope",
		Created:     at(0),
		Updated:     at(time.Second),
	}
	if _, err := getOp(t, s, op.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Operation(%q) before Put = %v; want ErrNotFound", op.ID, err)
	}
	created := putOp(t, s, op)
	want := op
	want.Revision = created.Revision
	if created.Revision <= 0 || !sameOp(created, want) {
		t.Errorf("PutOperation = %s; want %s with a positive Revision", fmtOp(created), fmtOp(want))
	}
	if got, err := getOp(t, s, op.ID); err != nil || !sameOp(got, want) {
		t.Errorf("Operation(%q) = %s, %v; want %s, nil", op.ID, fmtOp(got), err, fmtOp(want))
	}
	active := func(key string) (store.Operation, error) {
		var got store.Operation
		err := s.View(t.Context(), func(tx store.Tx) error {
			var err error
			got, err = tx.ActiveOperation(t.Context(), key)
			return err
		})
		return got, err
	}
	if got, err := active(op.ResourceKey); err != nil || !sameOp(got, want) {
		t.Errorf("ActiveOperation(%q) = %s, %v; want %s, nil", op.ResourceKey, fmtOp(got), err, fmtOp(want))
	}
	if _, err := active(rgKey); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ActiveOperation(%q) = %v; want ErrNotFound", rgKey, err)
	}
	if got := changes(t, s, created.Revision-1, 0); !slices.Contains(got, store.Change{Revision: created.Revision, Key: "op:" + op.ID}) {
		t.Errorf("Changes(%d) = %+v; want it to hold op:%s at %d", created.Revision-1, got, op.ID, created.Revision)
	}

	// Finish it.
	done := want
	done.Status = store.OpFailed
	done.Error = []byte(`{"code":"InternalServerError","message":"no"}`)
	done.Updated = at(time.Minute)
	finished := putOp(t, s, done)
	if finished.Revision <= created.Revision || !finished.Done() {
		t.Errorf("PutOperation(Failed) = Revision %d, Done %v; want > %d, true", finished.Revision, finished.Done(), created.Revision)
	}
	done.Revision = finished.Revision
	if got, err := getOp(t, s, op.ID); err != nil || !sameOp(got, done) {
		t.Errorf("Operation(%q) = %s, %v; want %s, nil", op.ID, fmtOp(got), err, fmtOp(done))
	}
	if _, err := active(op.ResourceKey); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ActiveOperation(%q) after it failed = %v; want ErrNotFound", op.ResourceKey, err)
	}
}

func testActiveOperationUnique(t *testing.T, s store.Store) {
	op := func(id, key, status string) store.Operation {
		return store.Operation{ID: id, ResourceKey: key, ResourceID: key, Kind: "k", Status: status,
			Created: at(0), Updated: at(0)}
	}
	steps := []struct {
		name    string
		op      store.Operation
		wantErr error
	}{
		{"first in progress", op("a1", rgKey, store.OpInProgress), nil},
		{"replace the same one", op("a1", rgKey, store.OpInProgress), nil},
		{"second in progress on the key", op("a2", rgKey, store.OpInProgress), store.ErrConflict},
		{"in progress on another key", op("b1", rg2Key, store.OpInProgress), nil},
		{"a finished one on the key", op("a0", rgKey, store.OpSucceeded), nil},
		{"finish the first", op("a1", rgKey, store.OpCanceled), nil},
		{"now a second may start", op("a2", rgKey, store.OpInProgress), nil},
		{"and a third may not", op("a3", rgKey, store.OpInProgress), store.ErrConflict},
	}
	for _, st := range steps {
		err := s.Update(t.Context(), func(tx store.Tx) error {
			_, err := tx.PutOperation(t.Context(), st.op)
			return err
		})
		if !errors.Is(err, st.wantErr) || (st.wantErr == nil && err != nil) {
			t.Fatalf("%s: PutOperation(%s %s on %s) = %v; want %v", st.name, st.op.ID, st.op.Status, st.op.ResourceKey, err, st.wantErr)
		}
	}
	if _, err := getOp(t, s, "a3"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Operation(a3) after conflict = %v; want ErrNotFound", err)
	}
	var got store.Operation
	err := s.View(t.Context(), func(tx store.Tx) error {
		var err error
		got, err = tx.ActiveOperation(t.Context(), rgKey)
		return err
	})
	if err != nil || got.ID != "a2" {
		t.Errorf("ActiveOperation(%q) = %q, %v; want a2, nil", rgKey, got.ID, err)
	}
}

func testLease(t *testing.T, s store.Store) {
	lease := func(owner string, now time.Time, d time.Duration) (store.Operation, error) {
		return s.LeaseOperation(t.Context(), owner, "", now, d)
	}
	if _, err := lease("w0", at(0), time.Minute); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("LeaseOperation on an empty store = %v; want ErrNotFound", err)
	}

	for _, op := range []store.Operation{
		{ID: "op1", ResourceKey: "k1", Status: store.OpInProgress, Created: at(-2 * time.Minute), Updated: at(-2 * time.Minute)},
		{ID: "op2", ResourceKey: "k2", Status: store.OpInProgress, Created: at(-time.Minute), Updated: at(-time.Minute)},
		{ID: "done", ResourceKey: "k3", Status: store.OpSucceeded, Created: at(-3 * time.Minute), Updated: at(-3 * time.Minute)},
		{ID: "failed", ResourceKey: "k3", Status: store.OpFailed, Created: at(-3 * time.Minute), Updated: at(-3 * time.Minute)},
	} {
		putOp(t, s, op)
	}

	first, err := lease("w1", at(0), time.Minute)
	if err != nil {
		t.Fatalf("LeaseOperation(w1) = %v; want nil", err)
	}
	if (first.ID != "op1" && first.ID != "op2") || first.LeaseOwner != "w1" ||
		!first.LeaseUntil.Equal(at(time.Minute)) || first.Attempts != 1 {
		t.Errorf("LeaseOperation(w1) = %s; want op1 or op2 leased by w1 until %v, Attempts 1", fmtOp(first), at(time.Minute))
	}
	if got, err := getOp(t, s, first.ID); err != nil || !sameOp(got, first) {
		t.Errorf("Operation(%q) after lease = %s, %v; want %s, nil", first.ID, fmtOp(got), err, fmtOp(first))
	}

	second, err := lease("w2", at(time.Second), time.Minute)
	if err != nil {
		t.Fatalf("LeaseOperation(w2) = %v; want nil", err)
	}
	if second.ID == first.ID || second.LeaseOwner != "w2" || second.Attempts != 1 {
		t.Errorf("LeaseOperation(w2) = %s; want the other InProgress operation leased by w2, Attempts 1", fmtOp(second))
	}
	if second.Revision <= first.Revision {
		t.Errorf("LeaseOperation(w2).Revision = %d; want > %d", second.Revision, first.Revision)
	}

	// Both leased and unexpired; the others are terminal.
	if got, err := lease("w3", at(30*time.Second), time.Minute); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("LeaseOperation(w3) while both are leased = %s, %v; want ErrNotFound", fmtOp(got), err)
	}

	// Between the two expiries (first.LeaseUntil < now < second.LeaseUntil) only first is handed
	// out again.
	now := at(time.Minute + 500*time.Millisecond)
	third, err := lease("w3", now, time.Minute)
	if err != nil {
		t.Fatalf("LeaseOperation(w3) after the first lease expired = %v; want nil", err)
	}
	if third.ID != first.ID || third.LeaseOwner != "w3" || third.Attempts != 2 || !third.LeaseUntil.Equal(now.Add(time.Minute)) {
		t.Errorf("LeaseOperation(w3) = %s; want %s leased by w3 until %v, Attempts 2", fmtOp(third), first.ID, now.Add(time.Minute))
	}
	if got, err := lease("w4", now, time.Minute); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("LeaseOperation(w4) = %s, %v; want ErrNotFound", fmtOp(got), err)
	}

	// An owner that finishes its operation drops it from leasing; a lease cleared by PutOperation
	// is free at once.
	fin := third
	fin.Status, fin.Updated = store.OpSucceeded, at(time.Minute)
	putOp(t, s, fin)
	free := second
	free.LeaseOwner, free.LeaseUntil = "", time.Time{}
	putOp(t, s, free)
	fourth, err := lease("w5", now, time.Minute)
	if err != nil || fourth.ID != second.ID || fourth.Attempts != 2 || fourth.LeaseOwner != "w5" {
		t.Errorf("LeaseOperation(w5) = %s, %v; want %s leased by w5, Attempts 2", fmtOp(fourth), err, second.ID)
	}
	fourth.Status = store.OpCanceled
	putOp(t, s, fourth)

	// Terminal operations are never leased, however old.
	if got, err := lease("w6", at(1000*time.Hour), time.Minute); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("LeaseOperation(w6) with only terminal operations = %s, %v; want ErrNotFound", fmtOp(got), err)
	}
	for _, id := range []string{"done", "failed"} {
		if got, err := getOp(t, s, id); err != nil || got.Attempts != 0 || got.LeaseOwner != "" {
			t.Errorf("Operation(%q) = %s, %v; want never leased", id, fmtOp(got), err)
		}
	}
}

func testPruneEvents(t *testing.T, s store.Store) {
	const n = 12
	for i := range n {
		err := s.Update(t.Context(), func(tx store.Tx) error {
			return tx.AppendEvent(t.Context(), store.Event{Subscription: "s1", Time: at(time.Duration(i) * time.Hour), Body: []byte(fmt.Sprintf(`{"n":%d}`, i))})
		})
		if err != nil {
			t.Fatalf("AppendEvent = %v; want nil", err)
		}
	}
	bodies := func() []string {
		evs, err := s.Events(t.Context(), store.EventQuery{Subscription: "s1"})
		if err != nil {
			t.Fatalf("Events = %v", err)
		}
		var out []string
		for _, e := range evs {
			out = append(out, string(e.Body))
		}
		return out
	}
	// By age: events before hour 3 go.
	if got, err := s.PruneEvents(t.Context(), at(3*time.Hour), 0); err != nil || got != 3 {
		t.Errorf("PruneEvents(before hour 3) = %d, %v; want 3, nil", got, err)
	}
	if got := bodies(); len(got) != n-3 || got[len(got)-1] != `{"n":3}` {
		t.Errorf("events after pruning by age = %v; want n 11 down to 3", got)
	}
	// By count: the newest 4 stay.
	if got, err := s.PruneEvents(t.Context(), at(0), 4); err != nil || got != n-3-4 {
		t.Errorf("PruneEvents(keep 4) = %d, %v; want %d, nil", got, err, n-3-4)
	}
	if got, want := bodies(), []string{`{"n":11}`, `{"n":10}`, `{"n":9}`, `{"n":8}`}; !slices.Equal(got, want) {
		t.Errorf("events after pruning by count = %v; want %v", got, want)
	}
	// Nothing to do: nothing removed, no error.
	if got, err := s.PruneEvents(t.Context(), at(0), 100); err != nil || got != 0 {
		t.Errorf("PruneEvents(nothing to prune) = %d, %v; want 0, nil", got, err)
	}
	// Everything older than the newest.
	if got, err := s.PruneEvents(t.Context(), at(100*time.Hour), 0); err != nil || got != 4 {
		t.Errorf("PruneEvents(all) = %d, %v; want 4, nil", got, err)
	}
}

func testEvents(t *testing.T, s store.Store) {
	type ev struct {
		sub  string
		time time.Time
		body string
	}
	// Appended out of time order: Events orders by append order (Seq), newest first.
	appends := []ev{
		{"s1", at(time.Second), `{"n":1}`},
		{"s1", at(0), `{"n":2}`},
		{"S2", at(time.Second), `{"n":"other"}`},
		{"s1", at(2 * time.Second), `{"n":3}`},
		{"s1", at(3 * time.Second), `{"n":4}`},
	}
	err := s.Update(t.Context(), func(tx store.Tx) error {
		for _, e := range appends[:2] {
			if err := tx.AppendEvent(t.Context(), store.Event{Subscription: e.sub, Time: e.time, Body: []byte(e.body)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("AppendEvent = %v; want nil", err)
	}
	for _, e := range appends[2:] {
		err := s.Update(t.Context(), func(tx store.Tx) error {
			return tx.AppendEvent(t.Context(), store.Event{Subscription: e.sub, Time: e.time, Body: []byte(e.body)})
		})
		if err != nil {
			t.Fatalf("AppendEvent = %v; want nil", err)
		}
	}

	tests := []struct {
		q    store.EventQuery
		want []string // bodies
	}{
		{store.EventQuery{Subscription: "s1"}, []string{`{"n":4}`, `{"n":3}`, `{"n":2}`, `{"n":1}`}},
		{store.EventQuery{Subscription: "S1"}, []string{`{"n":4}`, `{"n":3}`, `{"n":2}`, `{"n":1}`}},
		{store.EventQuery{Subscription: "s1", Since: at(time.Second)}, []string{`{"n":4}`, `{"n":3}`, `{"n":1}`}},
		{store.EventQuery{Subscription: "s1", Since: at(time.Second + time.Microsecond)}, []string{`{"n":4}`, `{"n":3}`}},
		{store.EventQuery{Subscription: "s1", Until: at(time.Second)}, []string{`{"n":2}`, `{"n":1}`}},
		{store.EventQuery{Subscription: "s1", Since: at(time.Second), Until: at(2 * time.Second)}, []string{`{"n":3}`, `{"n":1}`}},
		{store.EventQuery{Subscription: "s1", Limit: 2}, []string{`{"n":4}`, `{"n":3}`}},
		{store.EventQuery{Subscription: "s1", Since: at(time.Hour)}, nil},
		{store.EventQuery{Subscription: "s2"}, []string{`{"n":"other"}`}},
		{store.EventQuery{Subscription: "s3"}, nil},
	}
	for _, tt := range tests {
		got, err := s.Events(t.Context(), tt.q)
		if err != nil {
			t.Errorf("Events(%+v) = %v; want nil", tt.q, err)
			continue
		}
		var bodies []string
		seqs := map[int64]bool{}
		for _, e := range got {
			bodies = append(bodies, string(e.Body))
			if !strings.EqualFold(e.Subscription, tt.q.Subscription) {
				t.Errorf("Events(%+v): event subscription %q; want %q", tt.q, e.Subscription, tt.q.Subscription)
			}
			if e.Seq == 0 || seqs[e.Seq] {
				t.Errorf("Events(%+v): Seq %d; want nonzero and unique", tt.q, e.Seq)
			}
			seqs[e.Seq] = true
		}
		if !slices.Equal(bodies, tt.want) {
			t.Errorf("Events(%+v) = %q; want %q", tt.q, bodies, tt.want)
		}
	}
	got, err := s.Events(t.Context(), store.EventQuery{Subscription: "s1", Limit: 1})
	if err != nil || len(got) != 1 || !got[0].Time.Equal(at(3*time.Second)) {
		t.Errorf("Events(s1, limit 1)[0].Time = %v, %v; want %v", got, err, at(3*time.Second))
	}
	if _, err := s.Events(t.Context(), store.EventQuery{}); err == nil {
		t.Errorf("Events(no subscription) = nil error; want an error")
	}
}

func testEventFilters(t *testing.T, s store.Store) {
	const (
		rg1    = "/subscriptions/s1/resourceGroups/RG1"
		srv    = rg1 + "/providers/Microsoft.DBforPostgreSQL/flexibleServers/db1"
		rule   = srv + "/firewallRules/r1"
		srv10  = rg1 + "/providers/Microsoft.DBforPostgreSQL/flexibleServers/db10" // shares the prefix "…/db1"
		srvX   = srv + "-x"                                                        // sorts between srv and srv10
		pe     = "/subscriptions/s1/resourceGroups/rg2/providers/Microsoft.Network/privateEndpoints/pe1"
		pgNS   = "Microsoft.DBforPostgreSQL"
		netNS  = "Microsoft.Network"
		alice  = "Alice@example.com"
		app    = "11111111-2222-3333-4444-555555555555"
		corrA  = "AAAA-1"
		corrB  = "bbbb-2"
		subscr = "S1"
	)
	events := []store.Event{
		{Subscription: subscr, ResourceID: rg1, ResourceGroup: "RG1", Caller: alice, CorrelationID: corrA, Provider: "Microsoft.Resources", Status: "Succeeded", Body: []byte(`"rg1"`)},
		{Subscription: subscr, ResourceID: srv, ResourceGroup: "RG1", Caller: alice, CorrelationID: corrA, Provider: pgNS, Status: "Started", Body: []byte(`"srv"`)},
		{Subscription: subscr, ResourceID: rule, ResourceGroup: "RG1", Caller: app, CorrelationID: corrB, Provider: pgNS, Status: "Failed", Body: []byte(`"rule"`)},
		{Subscription: subscr, ResourceID: srv10, ResourceGroup: "rg1", Caller: app, CorrelationID: corrB, Provider: pgNS, Status: "Succeeded", Body: []byte(`"srv10"`)},
		{Subscription: subscr, ResourceID: pe, ResourceGroup: "rg2", Caller: alice, CorrelationID: corrB, Provider: netNS, Status: "Succeeded", Body: []byte(`"pe"`)},
		{Subscription: "s2", ResourceID: srv, ResourceGroup: "RG1", Caller: alice, CorrelationID: corrA, Provider: pgNS, Status: "Succeeded", Body: []byte(`"other subscription"`)},
		{Subscription: subscr, ResourceID: srvX, ResourceGroup: "rg1", Caller: "bob", CorrelationID: "c", Provider: pgNS, Status: "Succeeded", Body: []byte(`"srvX"`)},
	}
	for i, e := range events {
		e.Time = at(time.Duration(i) * time.Second)
		if err := s.Update(t.Context(), func(tx store.Tx) error { return tx.AppendEvent(t.Context(), e) }); err != nil {
			t.Fatalf("AppendEvent(%s) = %v; want nil", e.Body, err)
		}
	}
	tests := []struct {
		name string
		q    store.EventQuery
		want []string
	}{
		{"all", store.EventQuery{}, []string{`"srvX"`, `"pe"`, `"srv10"`, `"rule"`, `"srv"`, `"rg1"`}},
		{"resource exact", store.EventQuery{ResourceID: strings.ToUpper(srv)}, []string{`"srv"`}},
		{"resource subtree", store.EventQuery{ResourceID: srv, Subtree: true}, []string{`"rule"`, `"srv"`}},
		{"group subtree", store.EventQuery{ResourceID: rg1, Subtree: true}, []string{`"srvX"`, `"srv10"`, `"rule"`, `"srv"`, `"rg1"`}},
		{"missing resource", store.EventQuery{ResourceID: srv + "x"}, nil},
		{"resource group", store.EventQuery{ResourceGroup: "rg1"}, []string{`"srvX"`, `"srv10"`, `"rule"`, `"srv"`, `"rg1"`}},
		{"resource group prefix is not a match", store.EventQuery{ResourceGroup: "rg"}, nil},
		{"caller", store.EventQuery{Caller: "alice@EXAMPLE.com"}, []string{`"pe"`, `"srv"`, `"rg1"`}},
		{"correlation", store.EventQuery{CorrelationID: "aaaa-1"}, []string{`"srv"`, `"rg1"`}},
		{"provider", store.EventQuery{Provider: "microsoft.network"}, []string{`"pe"`}},
		{"status", store.EventQuery{Status: "failed"}, []string{`"rule"`}},
		{"combined", store.EventQuery{ResourceGroup: "RG1", Caller: app, Status: "Succeeded"}, []string{`"srv10"`}},
		{"time and resource", store.EventQuery{ResourceID: rg1, Subtree: true, Since: at(time.Second), Until: at(2 * time.Second)}, []string{`"rule"`, `"srv"`}},
	}
	for _, tt := range tests {
		tt.q.Subscription = "s1"
		got, err := s.Events(t.Context(), tt.q)
		if err != nil {
			t.Errorf("%s: Events(%+v) = %v; want nil", tt.name, tt.q, err)
			continue
		}
		var bodies []string
		for _, e := range got {
			bodies = append(bodies, string(e.Body))
		}
		if !slices.Equal(bodies, tt.want) {
			t.Errorf("%s: Events(%+v) = %q; want %q", tt.name, tt.q, bodies, tt.want)
		}
	}
	got, err := s.Events(t.Context(), store.EventQuery{Subscription: "s1", CorrelationID: corrA, Limit: 1})
	if err != nil || len(got) != 1 {
		t.Fatalf("Events(correlation %s) = %d events, %v; want 1", corrA, len(got), err)
	}
	e := got[0]
	if !strings.EqualFold(e.ResourceID, srv) || !strings.EqualFold(e.ResourceGroup, "rg1") || !strings.EqualFold(e.Caller, alice) ||
		!strings.EqualFold(e.CorrelationID, corrA) || !strings.EqualFold(e.Provider, pgNS) || !strings.EqualFold(e.Status, "Started") ||
		!e.Time.Equal(at(time.Second)) {
		t.Errorf("Events(correlation %s)[0] = %+v; want the fields as appended (any case)", corrA, e)
	}
}

// testEventPaging pages through many events with the Before cursor and finds the newest event
// of a resource behind thousands of older events of another.
func testEventPaging(t *testing.T, s store.Store) {
	const (
		noise  = 3000
		target = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.DBforPostgreSQL/flexibleServers/db1/privateEndpointConnections/pe1.x"
		other  = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Network/privateEndpoints/pe2"
	)
	if err := s.Update(t.Context(), func(tx store.Tx) error {
		if err := tx.AppendEvent(t.Context(), store.Event{Subscription: "s1", ResourceID: target, ResourceGroup: "rg", Time: at(0), Body: []byte(`"old approval"`)}); err != nil {
			return err
		}
		for i := range noise {
			if err := tx.AppendEvent(t.Context(), store.Event{Subscription: "s1", ResourceID: other, ResourceGroup: "rg",
				Time: at(time.Duration(i+1) * time.Millisecond), Body: []byte(fmt.Sprintf("%d", i))}); err != nil {
				return err
			}
		}
		return tx.AppendEvent(t.Context(), store.Event{Subscription: "s1", ResourceID: target, ResourceGroup: "rg", Time: at(time.Hour), Body: []byte(`"approval"`)})
	}); err != nil {
		t.Fatalf("AppendEvent = %v; want nil", err)
	}

	got, err := s.Events(t.Context(), store.EventQuery{Subscription: "s1", ResourceID: target, Limit: 1})
	if err != nil || len(got) != 1 || string(got[0].Body) != `"approval"` {
		t.Errorf("Events(newest of %s) = %v, %v; want the approval", target, got, err)
	}
	got, err = s.Events(t.Context(), store.EventQuery{Subscription: "s1", Since: at(0), Limit: 1})
	if err != nil || len(got) != 1 || string(got[0].Body) != `"approval"` {
		t.Errorf("Events(newest since start) = %v, %v; want the approval", got, err)
	}

	// Page through everything 7 at a time: every event exactly once, newest first.
	var (
		before int64
		seen   int
		last   int64
		pages  int
	)
	for {
		page, err := s.Events(t.Context(), store.EventQuery{Subscription: "s1", ResourceGroup: "rg", Before: before, Limit: 7})
		if err != nil {
			t.Fatalf("Events(page %d) = %v; want nil", pages, err)
		}
		if len(page) == 0 {
			break
		}
		pages++
		for _, e := range page {
			if last != 0 && e.Seq >= last {
				t.Fatalf("Events(page %d): Seq %d after %d; want decreasing", pages, e.Seq, last)
			}
			last = e.Seq
			seen++
		}
		if seen == 1 && string(page[0].Body) != `"approval"` {
			t.Errorf("Events(first page)[0] = %s; want the approval", page[0].Body)
		}
		before = page[len(page)-1].Seq
	}
	if want := noise + 2; seen != want {
		t.Errorf("paging saw %d events; want %d", seen, want)
	}
	if want := (noise + 2 + 6) / 7; pages != want {
		t.Errorf("paging took %d pages; want %d", pages, want)
	}
}

func testPrincipals(t *testing.T, s store.Store) {
	getP := func(idOrLogin string) (store.Principal, error) {
		var p store.Principal
		err := s.View(t.Context(), func(tx store.Tx) error {
			var err error
			p, err = tx.Principal(t.Context(), idOrLogin)
			return err
		})
		return p, err
	}
	putP := func(p store.Principal) error {
		return s.Update(t.Context(), func(tx store.Tx) error { return tx.PutPrincipal(t.Context(), p) })
	}
	alice := store.Principal{ObjectID: "11111111-aaaa-4aaa-8aaa-000000000001", Login: "Alice@Example.com", Body: []byte(`{"displayName":"Alice"}`)}
	app := store.Principal{ObjectID: "22222222-bbbb-4bbb-8bbb-000000000002", Login: "33333333-cccc-4ccc-8ccc-000000000003", Body: []byte(`{"kind":"sp"}`)}
	for _, p := range []store.Principal{alice, app} {
		if err := putP(p); err != nil {
			t.Fatalf("PutPrincipal(%q) = %v; want nil", p.ObjectID, err)
		}
	}
	same := func(a, b store.Principal) bool {
		return a.ObjectID == b.ObjectID && a.Login == b.Login && bytes.Equal(a.Body, b.Body)
	}
	tests := []struct {
		idOrLogin string
		want      store.Principal
		wantErr   error
	}{
		{alice.ObjectID, alice, nil},
		{"Alice@Example.com", alice, nil},
		{"alice@example.com", alice, nil},
		{"ALICE@EXAMPLE.COM", alice, nil},
		{app.ObjectID, app, nil},
		{app.Login, app, nil},
		{"bob@example.com", store.Principal{}, store.ErrNotFound},
		{"", store.Principal{}, store.ErrNotFound},
	}
	for _, tt := range tests {
		got, err := getP(tt.idOrLogin)
		if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
			t.Errorf("Principal(%q) = %v; want %v", tt.idOrLogin, err, tt.wantErr)
			continue
		}
		if tt.wantErr == nil && !same(got, tt.want) {
			t.Errorf("Principal(%q) = %+v; want %+v", tt.idOrLogin, got, tt.want)
		}
	}

	// Replace: a new login and body; the old login no longer finds it.
	alice2 := alice
	alice2.Login, alice2.Body = "alice.smith@example.com", []byte(`{"displayName":"Alice Smith"}`)
	if err := putP(alice2); err != nil {
		t.Fatalf("PutPrincipal(replace %q) = %v; want nil", alice.ObjectID, err)
	}
	if got, err := getP(alice.ObjectID); err != nil || !same(got, alice2) {
		t.Errorf("Principal(%q) after replace = %+v, %v; want %+v, nil", alice.ObjectID, got, err, alice2)
	}
	if got, err := getP("Alice.Smith@example.com"); err != nil || !same(got, alice2) {
		t.Errorf("Principal(new login) after replace = %+v, %v; want %+v, nil", got, err, alice2)
	}
	if _, err := getP("alice@example.com"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Principal(old login) after replace = %v; want ErrNotFound", err)
	}

	// Logins are unique, case-insensitively.
	bob := store.Principal{ObjectID: "44444444-dddd-4ddd-8ddd-000000000004", Login: "ALICE.SMITH@example.com"}
	if err := putP(bob); !errors.Is(err, store.ErrConflict) {
		t.Errorf("PutPrincipal(another principal with login %q) = %v; want ErrConflict", bob.Login, err)
	}
	if _, err := getP(bob.ObjectID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Principal(%q) after conflict = %v; want ErrNotFound", bob.ObjectID, err)
	}

	// Lists are ordered by object id and page with after/limit.
	carol := store.Principal{ObjectID: "00000000-eeee-4eee-8eee-000000000005", Login: "carol@example.com"}
	if err := putP(carol); err != nil {
		t.Fatalf("PutPrincipal(%q) = %v; want nil", carol.ObjectID, err)
	}
	list := func(after string, limit int) []string {
		var ids []string
		err := s.View(t.Context(), func(tx store.Tx) error {
			ps, err := tx.Principals(t.Context(), after, limit)
			for _, p := range ps {
				ids = append(ids, p.ObjectID)
			}
			return err
		})
		if err != nil {
			t.Fatalf("Principals(%q, %d) = %v; want nil", after, limit, err)
		}
		return ids
	}
	if got, want := list("", 0), []string{carol.ObjectID, alice.ObjectID, app.ObjectID}; !slices.Equal(got, want) {
		t.Errorf("Principals(all) = %v; want %v", got, want)
	}
	if got, want := list("", 2), []string{carol.ObjectID, alice.ObjectID}; !slices.Equal(got, want) {
		t.Errorf("Principals(first 2) = %v; want %v", got, want)
	}
	if got, want := list(alice.ObjectID, 2), []string{app.ObjectID}; !slices.Equal(got, want) {
		t.Errorf("Principals(after %s) = %v; want %v", alice.ObjectID, got, want)
	}

	// Delete removes the principal and frees its login.
	rev, _ := s.Revision(t.Context())
	if err := s.Update(t.Context(), func(tx store.Tx) error { return tx.DeletePrincipal(t.Context(), carol.ObjectID) }); err != nil {
		t.Fatalf("DeletePrincipal(%q) = %v; want nil", carol.ObjectID, err)
	}
	if rev2, _ := s.Revision(t.Context()); rev2 <= rev {
		t.Errorf("Revision after DeletePrincipal = %d; want > %d", rev2, rev)
	}
	if _, err := getP(carol.Login); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Principal(%q) after delete = %v; want ErrNotFound", carol.Login, err)
	}
	err := s.Update(t.Context(), func(tx store.Tx) error { return tx.DeletePrincipal(t.Context(), carol.ObjectID) })
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeletePrincipal(deleted) = %v; want ErrNotFound", err)
	}
	if err := putP(store.Principal{ObjectID: "55555555-ffff-4fff-8fff-000000000006", Login: carol.Login}); err != nil {
		t.Errorf("PutPrincipal(another principal with the deleted login) = %v; want nil", err)
	}
}

func testSettings(t *testing.T, s store.Store) {
	setting := func(name string) ([]byte, error) {
		var v []byte
		err := s.View(t.Context(), func(tx store.Tx) error {
			var err error
			v, err = tx.Setting(t.Context(), name)
			return err
		})
		return v, err
	}
	putS := func(name string, v []byte) error {
		return s.Update(t.Context(), func(tx store.Tx) error { return tx.PutSetting(t.Context(), name, v) })
	}
	if _, err := setting("bootstrap"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Setting(bootstrap) before Put = %v; want ErrNotFound", err)
	}
	rev := revision(t, s)
	if err := putS("bootstrap", []byte(`{"v":1}`)); err != nil {
		t.Fatalf("PutSetting(bootstrap) = %v; want nil", err)
	}
	if got, err := setting("bootstrap"); err != nil || string(got) != `{"v":1}` {
		t.Errorf("Setting(bootstrap) = %q, %v; want {\"v\":1}, nil", got, err)
	}
	rev1 := revision(t, s)
	if rev1 <= rev {
		t.Errorf("Revision after PutSetting = %d; want > %d", rev1, rev)
	}
	if got, want := changes(t, s, rev, 0), []store.Change{{Revision: rev1, Key: "setting:bootstrap"}}; !slices.Equal(got, want) {
		t.Errorf("Changes(%d) after PutSetting = %+v; want %+v", rev, got, want)
	}
	// Names are exact: another casing is another setting.
	if _, err := setting("Bootstrap"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Setting(Bootstrap) = %v; want ErrNotFound", err)
	}

	// Create-if-absent in one transaction, as processes that start together do: the first
	// value stays.
	for _, v := range []string{`{"v":1}`, `{"v":2}`} {
		err := s.Update(t.Context(), func(tx store.Tx) error {
			if _, err := tx.Setting(t.Context(), "bootstrap"); err == nil {
				return nil
			} else if !errors.Is(err, store.ErrNotFound) {
				return err
			}
			return tx.PutSetting(t.Context(), "bootstrap", []byte(v))
		})
		if err != nil {
			t.Fatalf("Update(create bootstrap if absent) = %v; want nil", err)
		}
	}
	if got, err := setting("bootstrap"); err != nil || string(got) != `{"v":1}` {
		t.Errorf("Setting(bootstrap) after create-if-absent = %q, %v; want the first value", got, err)
	}

	// Replace; a failed transaction leaves it.
	if err := putS("bootstrap", []byte(`{"v":3}`)); err != nil {
		t.Fatalf("PutSetting(replace) = %v; want nil", err)
	}
	err := s.Update(t.Context(), func(tx store.Tx) error {
		if err := tx.PutSetting(t.Context(), "bootstrap", []byte(`{"v":4}`)); err != nil {
			return err
		}
		if got, err := tx.Setting(t.Context(), "bootstrap"); err != nil || string(got) != `{"v":4}` {
			t.Errorf("Setting(bootstrap) in the writing Tx = %q, %v; want its own write", got, err)
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("Update(fn fails) = %v; want %v", err, errBoom)
	}
	if got, err := setting("bootstrap"); err != nil || string(got) != `{"v":3}` {
		t.Errorf("Setting(bootstrap) after rollback = %q, %v; want {\"v\":3}, nil", got, err)
	}
}

func testConcurrentIncrements(t *testing.T, s store.Store) {
	const workers, each = 8, 15
	type counter struct{ N int }
	put(t, s, resource(rgKey, typeRG, sub, `{"N":0}`))

	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				err := s.Update(t.Context(), func(tx store.Tx) error {
					r, err := tx.Get(t.Context(), rgKey)
					if err != nil {
						return err
					}
					var c counter
					if err := json.Unmarshal(r.Body, &c); err != nil {
						return err
					}
					c.N++
					r.Body, _ = json.Marshal(c)
					_, err = tx.Put(t.Context(), r, r.ETag)
					return err
				})
				if err != nil {
					t.Errorf("worker %d, increment %d: Update = %v; want nil", w, i, err)
					return
				}
			}
		})
	}
	wg.Wait()

	r, err := get(t, s, rgKey)
	if err != nil {
		t.Fatalf("Get(%q) = %v; want nil", rgKey, err)
	}
	var c counter
	if err := json.Unmarshal(r.Body, &c); err != nil {
		t.Fatalf("counter body %q: %v", r.Body, err)
	}
	if c.N != workers*each {
		t.Errorf("counter after %d workers × %d increments = %d; want %d", workers, each, c.N, workers*each)
	}
}

func testConcurrentLeases(t *testing.T, s store.Store) {
	const ops, workers = 24, 8
	err := s.Update(t.Context(), func(tx store.Tx) error {
		for i := range ops {
			_, err := tx.PutOperation(t.Context(), store.Operation{
				ID: fmt.Sprintf("op%02d", i), ResourceKey: fmt.Sprintf("k%02d", i), Status: store.OpInProgress,
				Created: at(time.Duration(i) * time.Millisecond), Updated: at(0),
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("PutOperation × %d = %v; want nil", ops, err)
	}

	var (
		mu    sync.Mutex
		owner = map[string]string{} // operation ID -> the worker that leased it
	)
	var wg sync.WaitGroup
	for w := range workers {
		name := fmt.Sprintf("w%d", w)
		wg.Go(func() {
			for {
				op, err := s.LeaseOperation(t.Context(), name, "", at(time.Second), time.Hour)
				if errors.Is(err, store.ErrNotFound) {
					return
				}
				if err != nil {
					t.Errorf("LeaseOperation(%s) = %v; want nil", name, err)
					return
				}
				mu.Lock()
				prev, dup := owner[op.ID]
				owner[op.ID] = name
				mu.Unlock()
				if dup {
					t.Errorf("LeaseOperation(%s) = %s, already leased to %s", name, op.ID, prev)
					return // a backend that hands out leased operations would never run out
				}
				if op.LeaseOwner != name || op.Attempts != 1 {
					t.Errorf("LeaseOperation(%s) = %s; want leased by %s, Attempts 1", name, fmtOp(op), name)
				}
			}
		})
	}
	wg.Wait()
	if len(owner) != ops {
		t.Errorf("leased %d operations; want %d", len(owner), ops)
	}
	for id, name := range owner {
		if got, err := getOp(t, s, id); err != nil || got.LeaseOwner != name || got.Attempts != 1 {
			t.Errorf("Operation(%q) = %s, %v; want leased by %s, Attempts 1", id, fmtOp(got), err, name)
		}
	}
}

// testLeaseOnNode: an operation that names a node goes only to that node's workers; one that
// names none goes to anyone.
func testLeaseOnNode(t *testing.T, s store.Store) {
	putOp(t, s, store.Operation{ID: "on-b", ResourceKey: "k1", Status: store.OpInProgress, Node: "b",
		Created: at(-2 * time.Minute), Updated: at(-2 * time.Minute)})
	putOp(t, s, store.Operation{ID: "any", ResourceKey: "k2", Status: store.OpInProgress,
		Created: at(-time.Minute), Updated: at(-time.Minute)})
	lease := func(owner, node string) (store.Operation, error) {
		return s.LeaseOperation(t.Context(), owner, node, at(0), time.Minute)
	}
	if op, err := lease("wa", "a"); err != nil || op.ID != "any" {
		t.Errorf("LeaseOperation on node a = %s, %v; want the operation for any node", fmtOp(op), err)
	}
	if op, err := lease("wa2", "a"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("LeaseOperation on node a again = %s, %v; want ErrNotFound (the other is node b's)", fmtOp(op), err)
	}
	if op, err := lease("w", ""); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("LeaseOperation on no node = %s, %v; want ErrNotFound", fmtOp(op), err)
	}
	op, err := lease("wb", "b")
	if err != nil || op.ID != "on-b" || op.Node != "b" {
		t.Errorf("LeaseOperation on node b = %s, %v; want on-b", fmtOp(op), err)
	}
	if got, err := getOp(t, s, "on-b"); err != nil || got.Node != "b" {
		t.Errorf("Operation(on-b) = %s, %v; want Node b kept", fmtOp(got), err)
	}
}

// testNodes: heartbeats are stored by name, Applied never goes back, and nodes are not on the
// change feed.
func testNodes(t *testing.T, s store.Store) {
	ctx := t.Context()
	if ns, err := s.Nodes(ctx); err != nil || len(ns) != 0 {
		t.Fatalf("Nodes() on an empty store = %v, %v; want none", ns, err)
	}
	rev, err := s.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a := store.Node{Name: "a", Zone: "1", Network: "127.77.0.0/16", Endpoint: "https://db.example:1", Address: "https://127.0.0.1:1", Applied: 7,
		Started: at(0), Heartbeat: at(time.Second), Expires: at(6 * time.Second)}
	b := store.Node{Name: "b", Network: "127.78.0.0/16", Applied: 3, Started: at(0), Heartbeat: at(0), Expires: at(5 * time.Second)}
	for _, n := range []store.Node{b, a} {
		if err := s.PutNode(ctx, n); err != nil {
			t.Fatalf("PutNode(%s) = %v", n.Name, err)
		}
	}
	older := a
	older.Applied, older.Heartbeat, older.Expires = 5, at(2*time.Second), at(7*time.Second)
	if err := s.PutNode(ctx, older); err != nil {
		t.Fatal(err)
	}
	want := []store.Node{older, b}
	want[0].Applied = 7
	got, err := s.Nodes(ctx)
	if err != nil || len(got) != 2 {
		t.Fatalf("Nodes() = %+v, %v; want a and b", got, err)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Name != w.Name || g.Zone != w.Zone || g.Network != w.Network || g.Endpoint != w.Endpoint ||
			g.Address != w.Address || g.Applied != w.Applied || !g.Started.Equal(w.Started) || !g.Heartbeat.Equal(w.Heartbeat) || !g.Expires.Equal(w.Expires) {
			t.Errorf("Nodes()[%d] = %+v; want %+v", i, g, w)
		}
	}
	err = s.View(ctx, func(tx store.Tx) error {
		inTx, err := tx.Nodes(ctx)
		if err != nil || len(inTx) != 2 || inTx[0].Name != "a" || inTx[0].Applied != 7 || inTx[1].Name != "b" {
			t.Errorf("Tx.Nodes() = %+v, %v; want a (Applied 7) and b", inTx, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !got[0].Live(at(6*time.Second)) || got[0].Live(at(7*time.Second)) {
		t.Errorf("node a live at +6s, +7s = %v, %v; want true, false", got[0].Live(at(6*time.Second)), got[0].Live(at(7*time.Second)))
	}
	if after, err := s.Revision(ctx); err != nil || after != rev {
		t.Errorf("Revision after heartbeats = %d, %v; want %d: nodes take no revision", after, err, rev)
	}
	// Removing b hands its operations in progress to any node; finished ones keep their node.
	putOp(t, s, store.Operation{ID: "b-busy", ResourceKey: "k1", Status: store.OpInProgress, Node: "b",
		Created: at(-time.Minute), Updated: at(-time.Minute)})
	putOp(t, s, store.Operation{ID: "b-done", ResourceKey: "k2", Status: store.OpSucceeded, Node: "b",
		Created: at(-time.Minute), Updated: at(-time.Minute)})
	if op, err := s.LeaseOperation(ctx, "wa", "a", at(0), time.Minute); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("LeaseOperation on a before b is removed = %s, %v; want ErrNotFound", fmtOp(op), err)
	}
	rev, err = s.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	deleteNode := func() error {
		return s.Update(ctx, func(tx store.Tx) error { return tx.DeleteNode(ctx, "b") })
	}
	if err := deleteNode(); err != nil {
		t.Errorf("DeleteNode(b) = %v", err)
	}
	if err := deleteNode(); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeleteNode(b) again = %v; want ErrNotFound", err)
	}
	if got, err := s.Nodes(ctx); err != nil || len(got) != 1 || got[0].Name != "a" {
		t.Errorf("Nodes() after DeleteNode(b) = %+v, %v; want a", got, err)
	}
	if after, err := s.Revision(ctx); err != nil || after != rev {
		t.Errorf("Revision after DeleteNode = %d, %v; want %d", after, err, rev)
	}
	if got, err := getOp(t, s, "b-done"); err != nil || got.Node != "b" {
		t.Errorf("finished operation after DeleteNode(b) = %s, %v; want Node b kept", fmtOp(got), err)
	}
	if op, err := s.LeaseOperation(ctx, "wa", "a", at(0), time.Minute); err != nil || op.ID != "b-busy" || op.Node != "" {
		t.Errorf("LeaseOperation on a after b is removed = %s, %v; want b-busy, for any node", fmtOp(op), err)
	}
}
