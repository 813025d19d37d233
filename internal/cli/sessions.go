package cli

import (
	"context"
	"fmt"
	"net/netip"
	"net/url"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/postgresql/armpostgresqlflexibleservers/v4"
	"github.com/spf13/cobra"
)

// sessionsAPIVersion is the api-version the CLI lists sessions with (any of the PostgreSQL
// provider's).
const sessionsAPIVersion = "2024-08-01"

// cutSession is an open session a dry-run's change would end, as the plan prints it.
type cutSession struct {
	Name            string `json:"name"`
	Kind            string `json:"kind"` // Public or PrivateEndpoint
	ClientAddress   string `json:"clientAddress"`
	PrivateEndpoint string `json:"privateEndpoint,omitempty"` // ARM ID
	StartTime       string `json:"startTime"`
	TLS             bool   `json:"tls"`
}

// serverSessions lists the open sessions of server g/n in subscription sub, as the API sends
// them (pglink's sessions type; no SDK client knows it).
func (s *session) serverSessions(ctx context.Context, sub, g, n string) ([]map[string]any, error) {
	path := fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.DBforPostgreSQL/flexibleServers/%s/sessions?api-version=%s",
		url.PathEscape(sub), url.PathEscape(g), url.PathEscape(n), sessionsAPIVersion)
	items, _, err := s.jsonAPI("").list(ctx, path, true)
	if err != nil {
		return nil, fmt.Errorf("list open sessions of %s: %w", n, err)
	}
	return items, nil
}

// withCuts adds to p the open sessions of server g/n for which cut is true, or, when they
// cannot be listed (the caller may not read them, the server's node is down), says so in the
// note: a dry-run still prints the state changes.
func (s *session) withCuts(ctx context.Context, p *plannedChange, sub, g, n string, cut func(m map[string]any) bool) {
	items, err := s.serverSessions(ctx, sub, g, n)
	if err != nil {
		p.addNote("open sessions unknown: " + strings.SplitN(describe(err), "\n", 2)[0])
		return
	}
	cuts := []cutSession{}
	for _, m := range items {
		if cut(m) {
			cuts = append(cuts, cutSession{Name: str(m, "name"), Kind: str(m, "properties.kind"),
				ClientAddress: str(m, "properties.clientAddress"), PrivateEndpoint: str(m, "properties.privateEndpoint.id"),
				StartTime: str(m, "properties.startTime"), TLS: field(m, "properties.tls") == true})
		}
	}
	p.SessionsCut = cuts
}

// addNote appends note to p's note.
func (p *plannedChange) addNote(note string) {
	if p.Note != "" {
		p.Note += "; "
	}
	p.Note += note
}

// publicSession reports whether m is a session through the public endpoint.
func publicSession(m map[string]any) bool { return str(m, "properties.kind") == "Public" }

// viaEndpoint returns whether a session came through private endpoint pe (an ARM ID).
func viaEndpoint(pe string) func(m map[string]any) bool {
	return func(m map[string]any) bool {
		return pe != "" && strings.EqualFold(str(m, "properties.privateEndpoint.id"), pe)
	}
}

// ipRange is a firewall rule's inclusive IPv4 range.
type ipRange struct{ start, end netip.Addr }

// parseRange reads a rule's start and end; ok is false for what admits no client here (bad
// addresses, and 0.0.0.0-0.0.0.0, Azure's "allow Azure services").
func parseRange(start, end string) (ipRange, bool) {
	s, err1 := netip.ParseAddr(start)
	e, err2 := netip.ParseAddr(end)
	if err1 != nil || err2 != nil || (s.IsUnspecified() && e.IsUnspecified()) {
		return ipRange{}, false
	}
	return ipRange{s, e}, true
}

// admittedBy returns whether a public session's client address lies in one of rs.
func admittedBy(rs []ipRange) func(m map[string]any) bool {
	return func(m map[string]any) bool {
		ap, err := netip.ParseAddrPort(str(m, "properties.clientAddress"))
		if err != nil {
			return false
		}
		a := ap.Addr().Unmap()
		for _, r := range rs {
			if r.start.Compare(a) <= 0 && a.Compare(r.end) <= 0 {
				return true
			}
		}
		return false
	}
}

// sessionTable is the table of open sessions.
func sessionTable(m map[string]any) ([]cell, bool) {
	return []cell{{"Name", m["name"]}, {"Kind", field(m, "kind")}, {"ClientAddress", field(m, "clientAddress")},
		{"PrivateEndpoint", lastSegmentOf(field(m, "privateEndpoint.id"))}, {"TLS", field(m, "tls")},
		{"StartTime", field(m, "startTime")}}, m["name"] != nil
}

func lastSegmentOf(v any) any {
	if s, ok := v.(string); ok {
		return lastSegment(s)
	}
	return v
}

// sessionCmd is `pglink postgres flexible-server session`: the open client sessions of a
// server, as its data-plane node's gateway holds them.
func (e *env) sessionCmd() *cobra.Command {
	var g, n string
	list := &cobra.Command{
		Use:   "list",
		Short: "List the open client sessions of a flexible server (public and through private endpoints)",
		Long: `List the client sessions the gateway holds open for a flexible server: through which endpoint
the client came (Public or a private endpoint), its address, TLS, since when. Rejecting or removing
a connection, disabling public access or narrowing the firewall cuts the matching sessions;
--dry-run on those commands lists the sessions it would cut.`,
		Example: "  pglink postgres flexible-server session list -g db-rg -n orders-db -o table",
		Args:    cobra.NoArgs,
	}
	serverFlags(list, &g, &n)
	list.RunE = e.run(func(ctx context.Context, cmd *cobra.Command) error {
		s, err := e.session()
		if err != nil {
			return err
		}
		items, err := s.serverSessions(ctx, s.p.SubscriptionID, g, n)
		if err != nil {
			return err
		}
		return e.printTable(flattenAll(items), sessionTable)
	})
	return group("session", "List the open client sessions of a flexible server", list)
}

// firewallCuts adds to p the public sessions of server g/n that setting rule to to ("start-end",
// or nil for deleting it) would end: those no rule admits any more.
func (e *env) firewallCuts(ctx context.Context, client *armpostgresqlflexibleservers.FirewallRulesClient, p *plannedChange, g, n, rule string, to any) error {
	items, err := collect(ctx, client.NewListByServerPager(g, n, nil))
	if err != nil {
		return fmt.Errorf("list firewall rules of %s: %w", n, err)
	}
	var after []ipRange
	for _, m := range items {
		if !strings.EqualFold(str(m, "name"), rule) {
			if r, ok := parseRange(str(m, "properties.startIpAddress"), str(m, "properties.endIpAddress")); ok {
				after = append(after, r)
			}
		}
	}
	if to, ok := to.(string); ok {
		start, end, _ := strings.Cut(to, "-")
		if r, ok := parseRange(start, end); ok {
			after = append(after, r)
		}
	}
	s, err := e.session()
	if err != nil {
		return err
	}
	admitted := admittedBy(after)
	s.withCuts(ctx, p, s.p.SubscriptionID, g, n, func(m map[string]any) bool { return publicSession(m) && !admitted(m) })
	return nil
}

// connectionCuts adds to p the sessions through connection m's private endpoint (ending an
// Approved connection ends them).
func (e *env) connectionCuts(ctx context.Context, p *plannedChange, ref connRef, m map[string]any) error {
	s, err := e.session()
	if err != nil {
		return err
	}
	s.withCuts(ctx, p, ref.sub, ref.group, ref.server, viaEndpoint(str(m, "privateEndpoint.id")))
	return nil
}
