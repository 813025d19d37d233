package postgresql

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"regexp"

	"github.com/pglink/pglink/internal/arm"
	"github.com/pglink/pglink/internal/operation"
	"github.com/pglink/pglink/internal/resource"
	"github.com/pglink/pglink/internal/store"
)

const (
	kindFirewallPut    = "postgresql.firewall.put"
	kindFirewallDelete = "postgresql.firewall.delete"
)

// FirewallRule admits public clients whose address is in [start, end].
type FirewallRule struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Type       string `json:"type"`
	Properties struct {
		StartIPAddress string `json:"startIpAddress"`
		EndIPAddress   string `json:"endIpAddress"`
	} `json:"properties"`
}

// Contains reports whether addr falls in the rule's range. 0.0.0.0-0.0.0.0 ("allow Azure
// services") contains nothing here: pglink has no Azure services.
func (f *FirewallRule) Contains(addr netip.Addr) bool {
	start, err1 := netip.ParseAddr(f.Properties.StartIPAddress)
	end, err2 := netip.ParseAddr(f.Properties.EndIPAddress)
	if err1 != nil || err2 != nil || (start.IsUnspecified() && end.IsUnspecified()) {
		return false
	}
	addr = addr.Unmap()
	return start.Compare(addr) <= 0 && addr.Compare(end) <= 0
}

var (
	ruleNameRE    = regexp.MustCompile(`^[a-zA-Z0-9][-_a-zA-Z0-9]{0,79}$`)
	ruleNameOldRE = regexp.MustCompile(`^[-\w._]{1,128}$`)
	ipv4RE        = regexp.MustCompile(`^(([0-9]|[1-9][0-9]|1[0-9]{2}|2[0-4][0-9]|25[0-5])\.){3}([0-9]|[1-9][0-9]|1[0-9]{2}|2[0-4][0-9]|25[0-5])$`)
)

func validateRule(apiVersion, name string, r *FirewallRule) error {
	ok := ruleNameOldRE.MatchString(name)
	if apiVersion >= "2025-08-01" {
		ok = ruleNameRE.MatchString(name) && name[len(name)-1] != '-'
	}
	if !ok {
		return resource.InvalidParameter("firewallRuleName",
			"Invalid firewall rule name '%s'. Use letters, digits, '-' and '_' (at most 80 characters, starting with a letter or digit).", name)
	}
	for _, f := range []struct{ name, v string }{{"startIpAddress", r.Properties.StartIPAddress}, {"endIpAddress", r.Properties.EndIPAddress}} {
		if !ipv4RE.MatchString(f.v) {
			return resource.InvalidParameter(f.name, "Invalid value given for parameter %s '%s'. Specify a valid IPv4 address.", f.name, f.v)
		}
	}
	start, _ := netip.ParseAddr(r.Properties.StartIPAddress)
	end, _ := netip.ParseAddr(r.Properties.EndIPAddress)
	if end.Less(start) {
		return resource.InvalidParameter("endIpAddress", "The end IP address is smaller than the start IP address.")
	}
	return nil
}

func (p *Provider) serveFirewallRule(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	return arm.Child(ctx, p.st, req, false, p.putFirewallRule, p.deleteFirewallRule)
}

// firewallChange starts a firewall rule operation: the server must be Ready and goes to
// Updating until the operation ends.
func (p *Provider) firewallChange(ctx context.Context, tx store.Tx, req *arm.Request, kind, goal, what string, data any) (store.Operation, error) {
	id := req.Target.ID
	s, _, err := loadServer(ctx, tx, id.Parent())
	if err != nil {
		return store.Operation{}, err
	}
	if s.vnetIntegrated() {
		return store.Operation{}, resource.Errorf(resource.Invalid, "FirewallRuleNotSupported",
			"Firewall rule operations cannot be requested for a private access enabled server.")
	}
	if a, err := tx.ActiveOperation(ctx, id.Key()); err == nil && a.Goal == goal {
		return a, nil // an identical retry joins the operation in flight
	}
	if err := resource.RequireReady(s.Name, s.Properties.State, what); err != nil {
		return store.Operation{}, err
	}
	o, err := operation.Begin(ctx, tx, kind, id, s.Location, req.Method, goal, arm.OpMeta(req, ""), data)
	if err != nil {
		return o, err
	}
	s.Properties.State = resource.ServerUpdating
	_, err = arm.Save(ctx, tx, id.Parent(), s)
	return o, err
}

func (p *Provider) putFirewallRule(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	id := req.Target.ID
	var in FirewallRule
	if err := req.Decode(&in); err != nil {
		return nil, err
	}
	if err := validateRule(req.APIVersion, id.Name(), &in); err != nil {
		return nil, err
	}
	out := FirewallRule{ID: id.String(), Name: id.Name(), Type: resource.TypeFirewallRule}
	out.Properties = in.Properties
	status := http.StatusOK
	var op store.Operation
	err := p.st.Update(ctx, func(tx store.Tx) error {
		cur, err := req.Existing(ctx, tx, id.Key())
		if err != nil {
			return err
		}
		if cur == nil {
			status = http.StatusCreated
			if err := checkChildQuota(ctx, tx, id.Parent(), resource.TypeFirewallRule, "firewall rules",
				p.limit(func(l Limits) int { return l.FirewallRulesPerServer })); err != nil {
				return err
			}
		} else {
			var c FirewallRule
			if err := jsonUnmarshal(cur.Body, &c); err == nil && c.Properties == out.Properties && c.ID == out.ID {
				return nil // unchanged
			}
		}
		op, err = p.firewallChange(ctx, tx, req, kindFirewallPut,
			operation.Digest("put", out.Properties.StartIPAddress, out.Properties.EndIPAddress), "change firewall rules", out)
		return err
	})
	if err != nil {
		return nil, err
	}
	return arm.Written(status, out, op), nil
}

func (p *Provider) runFirewallPut(ctx context.Context, op operation.Op) (operation.Commit, error) {
	id := resource.MustParse(op.ResourceID)
	var rule FirewallRule
	if err := jsonUnmarshal(op.Data, &rule); err != nil {
		return nil, err
	}
	return func(ctx context.Context, tx store.Tx) error {
		if gone, err := serverGone(ctx, tx, id.Parent()); gone || err != nil {
			return err // the server is gone, and its rules with it
		}
		if _, err := arm.Save(ctx, tx, id, rule); err != nil {
			return err
		}
		return setState(id.Parent(), resource.ServerReady, nil)(ctx, tx)
	}, nil
}

func (p *Provider) deleteFirewallRule(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	id := req.Target.ID
	var op store.Operation
	gone := false
	err := p.st.Update(ctx, func(tx store.Tx) error {
		if _, err := arm.Load(ctx, tx, id.Parent(), nil); err != nil {
			return err
		}
		if _, err := tx.Get(ctx, id.Key()); errors.Is(err, store.ErrNotFound) {
			gone = true
			return nil
		} else if err != nil {
			return fmt.Errorf("read firewall rule %s: %w", id, err)
		}
		var err error
		op, err = p.firewallChange(ctx, tx, req, kindFirewallDelete, operation.Digest("delete"), "change firewall rules", nil)
		return err
	})
	if err != nil {
		return nil, err
	}
	if gone {
		return &arm.Response{Status: http.StatusNoContent}, nil
	}
	return &arm.Response{Op: &op}, nil
}

func (p *Provider) runFirewallDelete(ctx context.Context, op operation.Op) (operation.Commit, error) {
	id := resource.MustParse(op.ResourceID)
	return func(ctx context.Context, tx store.Tx) error {
		if gone, err := serverGone(ctx, tx, id.Parent()); gone || err != nil {
			return err
		}
		if err := tx.Delete(ctx, id.Key()); err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("delete firewall rule %s: %w", id, err)
		}
		return setState(id.Parent(), resource.ServerReady, nil)(ctx, tx)
	}, nil
}

// serverGone reports whether server no longer exists; a failure to read it is an error.
func serverGone(ctx context.Context, tx store.Tx, server resource.ID) (bool, error) {
	_, err := tx.Get(ctx, server.Key())
	switch {
	case errors.Is(err, store.ErrNotFound):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("read server %s: %w", server, err)
	}
	return false, nil
}

func jsonUnmarshal(b []byte, v any) error {
	return jsonDecode(bytes.NewReader(b), v)
}
