package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/pglink/pglink/bench/internal/armclient"
	"github.com/pglink/pglink/internal/store"
)

// API versions the benchmark speaks.
const (
	groupAPI  = "2021-04-01"
	serverAPI = "2024-08-01"
)

// resourceSet is the resources the benchmark stores: groups resource groups and servers
// flexible servers, server i in group i % groups. Names are zero-padded, so a group's servers
// sort by i. Group 0 and server 0 are the templates, made through the API; the others are
// copies of them written into the store.
type resourceSet struct {
	sub     string // subscription ID
	groups  int
	servers int
}

func newResourceSet(sub string, resources, groups int) (resourceSet, error) {
	if groups < 1 || resources-groups < groups {
		return resourceSet{}, fmt.Errorf("%d resources in %d groups: want at least one group and a server per group", resources, groups)
	}
	return resourceSet{sub: sub, groups: groups, servers: resources - groups}, nil
}

func (s resourceSet) groupName(g int) string  { return fmt.Sprintf("scale-g%04d", g) }
func (s resourceSet) serverName(i int) string { return fmt.Sprintf("scale-s%07d", i) }

func (s resourceSet) groupID(g int) string {
	return "/subscriptions/" + s.sub + "/resourceGroups/" + s.groupName(g)
}

func (s resourceSet) serverID(i int) string {
	return s.groupID(i%s.groups) + "/providers/Microsoft.DBforPostgreSQL/flexibleServers/" + s.serverName(i)
}

// inGroup returns how many servers group g holds.
func (s resourceSet) inGroup(g int) int { return (s.servers - g + s.groups - 1) / s.groups }

// pages returns how many list pages of size pageSize group g's servers fill.
func (s resourceSet) pages(g, pageSize int) int { return (s.inGroup(g) + pageSize - 1) / pageSize }

// getPath is the request path of a GET of server i.
func (s resourceSet) getPath(i int) string { return s.serverID(i) + "?api-version=" + serverAPI }

// listPath is the request path of page k (from 0) of group g's servers, as the nextLink of
// page k-1 names it: $skipToken is the key of the last server on page k-1.
func (s resourceSet) listPath(g, k, pageSize int) string {
	q := url.Values{"api-version": {serverAPI}}
	if k > 0 {
		q.Set("$skipToken", strings.ToLower(s.serverID((k*pageSize-1)*s.groups+g)))
	}
	return s.groupID(g) + "/providers/Microsoft.DBforPostgreSQL/flexibleServers?" + q.Encode()
}

// templates are a resource group and a server as the API stored them.
type templates struct{ group, server store.Resource }

// makeTemplates creates group 0 and server 0 through the API, waits for the server to be
// Ready, and reads both back from the store.
func makeTemplates(ctx context.Context, c *armclient.Client, st store.Store, s resourceSet) (templates, error) {
	if _, err := c.Expect(ctx, "PUT", s.groupID(0)+"?api-version="+groupAPI, map[string]any{"location": "eastus"}, 200, 201); err != nil {
		return templates{}, err
	}
	if _, err := c.Expect(ctx, "PUT", s.getPath(0), map[string]any{"location": "eastus", "properties": map[string]any{
		"administratorLogin": "pgadmin", "administratorLoginPassword": "S3cret-pass!", "version": "16"}}, 200, 201, 202); err != nil {
		return templates{}, err
	}
	for deadline := time.Now().Add(time.Minute); ; {
		b, err := c.Expect(ctx, "GET", s.getPath(0), nil, 200)
		if err != nil {
			return templates{}, err
		}
		var srv struct {
			Properties struct{ State string } `json:"properties"`
		}
		if err := json.Unmarshal(b, &srv); err != nil {
			return templates{}, fmt.Errorf("template server: %w", err)
		}
		if srv.Properties.State == "Ready" {
			break
		}
		if time.Now().After(deadline) {
			return templates{}, fmt.Errorf("template server is %s after a minute; want Ready", srv.Properties.State)
		}
		select {
		case <-ctx.Done():
			return templates{}, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	var t templates
	err := st.View(ctx, func(tx store.Tx) error {
		var err error
		if t.group, err = tx.Get(ctx, strings.ToLower(s.groupID(0))); err != nil {
			return err
		}
		t.server, err = tx.Get(ctx, strings.ToLower(s.serverID(0)))
		return err
	})
	if err != nil {
		return templates{}, fmt.Errorf("read templates: %w", err)
	}
	return t, nil
}

// groupCopy returns the template group renamed to name.
func (t templates) groupCopy(s resourceSet, name string) store.Resource {
	r := t.group
	from := s.groupName(0)
	r.ID = strings.Replace(r.ID, from, name, 1)
	r.Key = strings.ToLower(r.ID)
	r.Body = bytes.ReplaceAll(r.Body, []byte(from), []byte(name))
	r.ETag, r.Revision = "", 0
	return r
}

// serverCopy returns the template server as server i of s.
func (t templates) serverCopy(s resourceSet, i int) store.Resource {
	r := t.server
	g, name := s.groupName(i%s.groups), s.serverName(i)
	r.ID = s.serverID(i)
	r.Key = strings.ToLower(r.ID)
	r.Parent = strings.ToLower(s.groupID(i % s.groups))
	r.Body = bytes.ReplaceAll(bytes.ReplaceAll(r.Body, []byte(s.groupName(0)), []byte(g)), []byte(s.serverName(0)), []byte(name))
	r.ETag, r.Revision = "", 0
	return r
}

// seedBatch is how many resources one seeding transaction writes.
const seedBatch = 1000

// seed writes every resource of s but the templates into st, seedBatch per transaction.
func seed(ctx context.Context, st store.Store, s resourceSet, t templates) error {
	n := s.groups - 1 + s.servers - 1
	for lo := 0; lo < n; lo += seedBatch {
		hi := min(lo+seedBatch, n)
		err := st.Update(ctx, func(tx store.Tx) error {
			for j := lo; j < hi; j++ {
				r := t.serverCopy(s, j-(s.groups-1)+1)
				if j < s.groups-1 {
					r = t.groupCopy(s, s.groupName(j+1))
				}
				if _, err := tx.Put(ctx, r, ""); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("seed resources %d to %d: %w", lo, hi, err)
		}
	}
	return nil
}
