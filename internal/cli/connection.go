package cli

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/postgresql/armpostgresqlflexibleservers/v4"
	"github.com/spf13/cobra"
)

// connStyle says which group a private endpoint connection command belongs to, and so its
// flags and output: az's `network private-endpoint-connection` (--type, --resource-name; the
// resource as the server sent it) or `postgres flexible-server private-endpoint-connection`
// (--server-name; properties flattened, as az's SDK commands print).
type connStyle int

const (
	pgStyle connStyle = iota
	netStyle
)

// flexibleServerType is the one private link resource type pglink serves.
const flexibleServerType = "Microsoft.DBforPostgreSQL/flexibleServers"

// supportedTypes are the values --type takes.
var supportedTypes = []string{flexibleServerType}

// connStatuses are the values list --status takes.
var connStatuses = []string{"Pending", "Approved", "Rejected", "Disconnected"}

// connRef names a flexible server (name empty) or one of its private endpoint connections.
type connRef struct {
	sub, group, server, name string
}

// connFlags are the flags naming a server or a connection, in either style.
type connFlags struct {
	style                        connStyle
	id, group, server, name, typ string
	needName                     bool // the command names a connection, not only a server
}

// add registers the flags on c. In netStyle, list names the server with --name, as az does.
func (f *connFlags) add(c *cobra.Command) {
	fl := c.Flags()
	fl.StringVarP(&f.group, "resource-group", "g", "", "name of the resource group")
	if f.style == netStyle {
		fl.StringVar(&f.typ, "type", "", "type of the resource: "+strings.Join(supportedTypes, ", "))
		c.RegisterFlagCompletionFunc("type", cobra.FixedCompletions(supportedTypes, cobra.ShellCompDirectiveNoFileComp))
		if f.needName {
			fl.StringVar(&f.server, "resource-name", "", "name of the resource (the flexible server)")
			fl.StringVarP(&f.name, "name", "n", "", "name of the private endpoint connection")
			fl.StringVar(&f.id, "id", "", "id of the private endpoint connection")
		} else {
			fl.StringVarP(&f.server, "name", "n", "", "name of the resource (the flexible server)")
			fl.StringVar(&f.id, "id", "", "id of the resource (the flexible server)")
		}
		return
	}
	fl.StringVarP(&f.server, "server-name", "s", "", "name of the flexible server")
	if f.needName {
		fl.StringVarP(&f.name, "name", "n", "", "name of the private endpoint connection")
		fl.StringVar(&f.id, "id", "", "id of the private endpoint connection")
	}
}

// ref resolves the flags to a server or connection of sub (the profile's subscription, unless
// --id names another).
func (f *connFlags) ref(e *env, sub string, needName bool) (connRef, error) {
	if f.typ != "" && !slices.ContainsFunc(supportedTypes, func(t string) bool { return strings.EqualFold(t, f.typ) }) {
		return connRef{}, usagef("argument --type: '%s' is not a valid value for '--type'. Supported values: %s", f.typ, strings.Join(supportedTypes, ", "))
	}
	names := f.group != "" && f.server != "" && (!needName || f.name != "") && (f.style != netStyle || f.typ != "")
	if f.id != "" && names {
		e.warn("Resource ID will be ignored since other arguments have been provided.")
	}
	if f.id != "" && !names {
		return parseConnID(f.id, needName)
	}
	if !names {
		want := "--resource-group, --server-name"
		if f.style == netStyle {
			want = "--resource-group, --resource-name, --type"
			if !needName {
				want = "--resource-group, --name, --type"
			}
		}
		if needName {
			want += " and --name"
		}
		return connRef{}, usagef("give --id, or %s", want)
	}
	return connRef{sub: sub, group: f.group, server: f.server, name: f.name}, nil
}

// parseConnID parses the id of a flexible server or (needName) of one of its connections.
func parseConnID(id string, needName bool) (connRef, error) {
	r, err := arm.ParseResourceID(id)
	if err != nil {
		return connRef{}, usagef("argument --id: %v", err)
	}
	srv := r
	if needName {
		if !strings.EqualFold(r.ResourceType.String(), flexibleServerType+"/privateEndpointConnections") {
			return connRef{}, usagef("argument --id: '%s' is not a private endpoint connection of a resource of a supported type (%s)", id, strings.Join(supportedTypes, ", "))
		}
		srv = r.Parent
	}
	if !strings.EqualFold(srv.ResourceType.String(), flexibleServerType) {
		return connRef{}, usagef("argument --id: resource type must be one of %s", strings.Join(supportedTypes, ", "))
	}
	ref := connRef{sub: srv.SubscriptionID, group: srv.ResourceGroupName, server: srv.Name}
	if needName {
		ref.name = r.Name
	}
	return ref, nil
}

// connClients are the two SDK clients of private endpoint connections (read, and write).
type connClients struct {
	read  *armpostgresqlflexibleservers.PrivateEndpointConnectionsClient
	write *armpostgresqlflexibleservers.PrivateEndpointConnectionClient
}

func (s *session) connections(sub string) (*connClients, error) {
	r, err := armpostgresqlflexibleservers.NewPrivateEndpointConnectionsClient(sub, s.cred, s.armOptions())
	if err != nil {
		return nil, err
	}
	w, err := armpostgresqlflexibleservers.NewPrivateEndpointConnectionClient(sub, s.cred, s.armOptions())
	if err != nil {
		return nil, err
	}
	return &connClients{r, w}, nil
}

// connTable is the table of private endpoint connections: the status and description a DBA
// asks about first, and the private endpoint.
func connTable(m map[string]any) ([]cell, bool) {
	return []cell{{"Name", m["name"]}, {"Status", field(m, "privateLinkServiceConnectionState.status")},
		{"Description", field(m, "privateLinkServiceConnectionState.description")},
		{"PrivateEndpoint", lastSegment(str(m, "privateEndpoint.id"))},
		{"ProvisioningState", field(m, "provisioningState")}}, m["name"] != nil
}

// bulkResult is one line of approve --all-pending.
type bulkResult struct {
	Name            string  `json:"name"`
	PrivateEndpoint string  `json:"privateEndpoint"`
	Status          string  `json:"status"`
	Result          string  `json:"result"`
	Error           *string `json:"error"`
}

func bulkTable(m map[string]any) ([]cell, bool) {
	return []cell{{"Name", m["name"]}, {"PrivateEndpoint", m["privateEndpoint"]}, {"Status", m["status"]},
		{"Result", m["result"]}, {"Error", m["error"]}}, m["result"] != nil
}

// connectionCmd is the private-endpoint-connection group of a style.
func (e *env) connectionCmd(style connStyle) *cobra.Command {
	out := func(m map[string]any) map[string]any {
		if style == pgStyle {
			return flatten(m)
		}
		return m
	}
	prefix := "pglink postgres flexible-server private-endpoint-connection"
	names := "-g db-rg -s orders-db"
	connNames := names + " -n app-pe.1b2c…"
	if style == netStyle {
		prefix = "pglink network private-endpoint-connection"
		names = "-g db-rg -n orders-db --type " + flexibleServerType
		connNames = "-g db-rg --resource-name orders-db --type " + flexibleServerType + " -n app-pe.1b2c…"
	}
	open := func(ctx context.Context, f *connFlags, needName bool) (connRef, *connClients, error) {
		s, err := e.session()
		if err != nil {
			return connRef{}, nil, err
		}
		ref, err := f.ref(e, s.p.SubscriptionID, needName)
		if err != nil {
			return connRef{}, nil, err
		}
		cc, err := s.connections(ref.sub)
		return ref, cc, err
	}

	// setState is approve or reject.
	setState := func(verb, status string) *cobra.Command {
		f := &connFlags{style: style, needName: true}
		var desc string
		var dryRun, allPending, noWait bool
		c := &cobra.Command{
			Use:   verb,
			Short: strings.ToUpper(verb[:1]) + verb[1:] + " a private endpoint connection request",
			Example: fmt.Sprintf("  %s %s %s --description 'approved by the DBA team'\n  %s %s %s --description 'approved by the DBA team' --dry-run -o table",
				prefix, verb, connNames, prefix, verb, connNames),
			Args: cobra.NoArgs,
		}
		f.add(c)
		c.Flags().StringVar(&desc, "description", "", "comments for the "+verb+" operation")
		c.Flags().BoolVar(&dryRun, "dry-run", false, "print which connections would change state, and change nothing")
		c.Flags().BoolVar(&noWait, "no-wait", false, "do not wait for the new state to take effect")
		c.MarkFlagRequired("description")
		if style == pgStyle && status == "Approved" {
			c.Flags().BoolVar(&allPending, "all-pending", false, "approve every Pending connection of the server (one result line each; a failure does not stop the rest)")
			c.Example += fmt.Sprintf("\n  %s approve %s --all-pending --description 'approved by the DBA team' -o table", prefix, names)
		}
		c.RunE = e.run(func(ctx context.Context, cmd *cobra.Command) error {
			if allPending && f.name != "" {
				return usagef("give --name or --all-pending, not both")
			}
			ref, cc, err := open(ctx, f, !allPending)
			if err != nil {
				return err
			}
			if allPending {
				return e.approveAll(ctx, cc, ref, desc, dryRun)
			}
			if dryRun {
				var cp capture
				if _, err := cc.read.Get(cp.ctx(ctx), ref.group, ref.server, ref.name, nil); err != nil {
					return shown(fmt.Errorf("show private endpoint connection %s: %w", ref.name, err))
				}
				m, err := cp.object()
				if err != nil {
					return err
				}
				cur := str(m, "privateLinkServiceConnectionState.status")
				p := planState(ref.name, cur, str(m, "privateLinkServiceConnectionState.description"), status, desc)
				if p.WouldChange && cur == "Approved" && status == "Rejected" {
					if err := e.connectionCuts(ctx, &p, ref, m); err != nil {
						return err
					}
				}
				return e.printTable([]plannedChange{p}, changeTable)
			}
			var cp capture
			if err := e.setConnectionState(cp.ctx(ctx), cc, ref, status, desc, noWait); err != nil {
				return fmt.Errorf("%s private endpoint connection %s: %w", verb, ref.name, err)
			}
			if noWait {
				return nil
			}
			m, err := cp.object()
			if err != nil {
				return err
			}
			return e.printTable(out(m), connTable)
		})
		return c
	}

	del := func() *cobra.Command {
		f := &connFlags{style: style, needName: true}
		var yes, dryRun, noWait bool
		c := &cobra.Command{
			Use:     "delete",
			Short:   "Delete a private endpoint connection: its private endpoint becomes Disconnected",
			Example: fmt.Sprintf("  %s delete %s --yes\n  %s delete %s --dry-run", prefix, connNames, prefix, connNames),
			Args:    cobra.NoArgs,
		}
		f.add(c)
		c.Flags().BoolVarP(&yes, "yes", "y", false, "do not prompt for confirmation")
		c.Flags().BoolVar(&dryRun, "dry-run", false, "print which connection would be deleted, and change nothing")
		c.Flags().BoolVar(&noWait, "no-wait", false, "do not wait for the deletion to finish")
		c.RunE = e.run(func(ctx context.Context, cmd *cobra.Command) error {
			ref, cc, err := open(ctx, f, true)
			if err != nil {
				return err
			}
			if dryRun {
				var cp capture
				if _, err := cc.read.Get(cp.ctx(ctx), ref.group, ref.server, ref.name, nil); err != nil {
					return shown(fmt.Errorf("show private endpoint connection %s: %w", ref.name, err))
				}
				m, err := cp.object()
				if err != nil {
					return err
				}
				p := plannedChange{Name: ref.name, Property: "status",
					Current: str(m, "privateLinkServiceConnectionState.status"), New: nil, WouldChange: true}
				if p.Current == "Approved" {
					if err := e.connectionCuts(ctx, &p, ref, m); err != nil {
						return err
					}
				}
				return e.printTable([]plannedChange{p}, changeTable)
			}
			if ok, err := e.confirmDelete(yes); !ok || err != nil {
				return err
			}
			poller, err := cc.write.BeginDelete(ctx, ref.group, ref.server, ref.name, nil)
			return finish(ctx, e, poller, err, noWait, nil, nil, fmt.Sprintf("delete private endpoint connection %s", ref.name))
		})
		return c
	}

	show := func() *cobra.Command {
		f := &connFlags{style: style, needName: true}
		c := &cobra.Command{
			Use:     "show",
			Short:   "Show a private endpoint connection",
			Example: fmt.Sprintf("  %s show %s\n  %s show --id /subscriptions/…/flexibleServers/orders-db/privateEndpointConnections/app-pe.1b2c…", prefix, connNames, prefix),
			Args:    cobra.NoArgs,
		}
		f.add(c)
		c.RunE = e.run(func(ctx context.Context, cmd *cobra.Command) error {
			ref, cc, err := open(ctx, f, true)
			if err != nil {
				return err
			}
			var cp capture
			if _, err := cc.read.Get(cp.ctx(ctx), ref.group, ref.server, ref.name, nil); err != nil {
				return shown(fmt.Errorf("show private endpoint connection %s: %w", ref.name, err))
			}
			m, err := cp.object()
			if err != nil {
				return err
			}
			return e.printTable(out(m), connTable)
		})
		return c
	}

	list := func() *cobra.Command {
		f := &connFlags{style: style}
		var status string
		c := &cobra.Command{
			Use:   "list",
			Short: "List the private endpoint connections of a flexible server",
			Example: fmt.Sprintf("  %s list %s -o table\n  %s list %s --status Pending --query '[].name' -o tsv",
				prefix, names, prefix, names),
			Args: cobra.NoArgs,
		}
		f.add(c)
		c.Flags().StringVar(&status, "status", "", "only connections in this state: "+strings.Join(connStatuses, ", "))
		c.RegisterFlagCompletionFunc("status", cobra.FixedCompletions(connStatuses, cobra.ShellCompDirectiveNoFileComp))
		c.RunE = e.run(func(ctx context.Context, cmd *cobra.Command) error {
			if status != "" && !slices.ContainsFunc(connStatuses, func(s string) bool { return strings.EqualFold(s, status) }) {
				return usagef("argument --status: invalid choice: '%s' (choose from %s)", status, strings.Join(connStatuses, ", "))
			}
			ref, cc, err := open(ctx, f, false)
			if err != nil {
				return err
			}
			items, err := collect(ctx, cc.read.NewListByServerPager(ref.group, ref.server, nil))
			if err != nil {
				return fmt.Errorf("list private endpoint connections of %s: %w", ref.server, err)
			}
			shown := []map[string]any{}
			for _, m := range items {
				if status == "" || strings.EqualFold(str(m, "privateLinkServiceConnectionState.status"), status) {
					shown = append(shown, out(m))
				}
			}
			return e.printTable(shown, connTable)
		})
		return c
	}
	return group("private-endpoint-connection", "Manage the private endpoint connections of flexible servers",
		setState("approve", "Approved"), setState("reject", "Rejected"), del(), list(), show())
}

// planState is the dry run of setting a connection's status to status with description desc.
// It follows the server's rules: Pending becomes Approved or Rejected, Approved may become
// Rejected, and nothing else changes status.
func planState(name, cur, curDesc, status, desc string) plannedChange {
	p := plannedChange{Name: name, Property: "status", Current: cur, New: status}
	switch {
	case cur == status && curDesc == desc:
		p.Note = "already so"
	case cur == status:
		p.WouldChange, p.Note = true, "the description only"
	case cur == "Pending" || (cur == "Approved" && status == "Rejected"):
		p.WouldChange = true
	case cur == "Rejected" && status == "Approved":
		p.Note = "refused: a rejected connection cannot be approved; delete the private endpoint and create it again"
	default:
		p.Note = fmt.Sprintf("refused: a connection cannot change from %s to %s", cur, status)
	}
	return p
}

// setConnectionState sets a connection's status and description and, unless noWait, waits
// for it to take effect. The last response (the connection) is captured by ctx's capture.
func (e *env) setConnectionState(ctx context.Context, cc *connClients, ref connRef, status, desc string, noWait bool) error {
	st := armpostgresqlflexibleservers.PrivateEndpointServiceConnectionStatus(status)
	poller, err := cc.write.BeginUpdate(ctx, ref.group, ref.server, ref.name, armpostgresqlflexibleservers.PrivateEndpointConnection{
		Properties: &armpostgresqlflexibleservers.PrivateEndpointConnectionProperties{
			PrivateLinkServiceConnectionState: &armpostgresqlflexibleservers.PrivateLinkServiceConnectionState{Status: &st, Description: &desc},
		}}, nil)
	if err != nil {
		return err
	}
	if noWait {
		return nil
	}
	_, err = wait(ctx, e, poller)
	return err
}

// approveAll approves every Pending connection of ref's server, one after the other; a failure
// does not stop the rest. It prints one result per connection and fails (exit 1) if any failed.
func (e *env) approveAll(ctx context.Context, cc *connClients, ref connRef, desc string, dryRun bool) error {
	items, err := collect(ctx, cc.read.NewListByServerPager(ref.group, ref.server, nil))
	if err != nil {
		return fmt.Errorf("list private endpoint connections of %s: %w", ref.server, err)
	}
	var pending []map[string]any
	for _, m := range items {
		if strings.EqualFold(str(m, "privateLinkServiceConnectionState.status"), "Pending") {
			pending = append(pending, m)
		}
	}
	if len(pending) == 0 {
		e.warn("No Pending private endpoint connections on %s.", ref.server)
	}
	if dryRun {
		plan := []plannedChange{}
		for _, m := range pending {
			plan = append(plan, planState(str(m, "name"), "Pending", str(m, "privateLinkServiceConnectionState.description"), "Approved", desc))
		}
		return e.printTable(plan, changeTable)
	}
	results := []bulkResult{}
	failed := 0
	for _, m := range pending {
		r := bulkResult{Name: str(m, "name"), PrivateEndpoint: lastSegment(str(m, "privateEndpoint.id")), Status: "Pending"}
		one := ref
		one.name = r.Name
		var cp capture
		if err := e.setConnectionState(cp.ctx(ctx), cc, one, "Approved", desc, false); err != nil {
			failed++
			msg := strings.SplitN(describe(err), "\n", 2)[0]
			r.Result, r.Error = "Failed", &msg
			fmt.Fprintf(e.stderr, "ERROR: approve private endpoint connection %s: %s\n", r.Name, msg)
		} else {
			r.Result, r.Status = "Succeeded", "Approved"
			if got, err := cp.object(); err == nil {
				r.Status = str(got, "privateLinkServiceConnectionState.status")
			}
		}
		results = append(results, r)
	}
	if err := e.printTable(results, bulkTable); err != nil {
		return err
	}
	if failed > 0 {
		return Exit(1)
	}
	return nil
}

// linkResourceCmd is the private-link-resource group of a style.
func (e *env) linkResourceCmd(style connStyle) *cobra.Command {
	out := func(ms []map[string]any) []map[string]any {
		if style == pgStyle {
			return flattenAll(ms)
		}
		return ms
	}
	table := func(m map[string]any) ([]cell, bool) {
		return []cell{{"Name", m["name"]}, {"GroupId", field(m, "groupId")}, {"RequiredMembers", fmt.Sprint(field(m, "requiredMembers"))}}, m["name"] != nil
	}
	clients := func(sub string) (*armpostgresqlflexibleservers.PrivateLinkResourcesClient, error) {
		s, err := e.session()
		if err != nil {
			return nil, err
		}
		return armpostgresqlflexibleservers.NewPrivateLinkResourcesClient(sub, s.cred, s.armOptions())
	}
	f := &connFlags{style: style}
	list := &cobra.Command{
		Use:   "list",
		Short: "List the private link resources (group ids) of a flexible server",
		Args:  cobra.NoArgs,
	}
	if style == netStyle {
		list.Example = "  pglink network private-link-resource list -g db-rg -n orders-db --type " + flexibleServerType +
			"\n  pglink network private-link-resource list --id /subscriptions/…/flexibleServers/orders-db"
	} else {
		list.Example = "  pglink postgres flexible-server private-link-resource list -g db-rg -s orders-db -o table"
	}
	f.add(list)
	list.RunE = e.run(func(ctx context.Context, cmd *cobra.Command) error {
		s, err := e.session()
		if err != nil {
			return err
		}
		ref, err := f.ref(e, s.p.SubscriptionID, false)
		if err != nil {
			return err
		}
		client, err := clients(ref.sub)
		if err != nil {
			return err
		}
		items, err := collect(ctx, client.NewListByServerPager(ref.group, ref.server, nil))
		if err != nil {
			return fmt.Errorf("list private link resources of %s: %w", ref.server, err)
		}
		return e.printTable(out(items), table)
	})
	if style == netStyle {
		return group("private-link-resource", "List the private link resources of a resource", list)
	}
	sf := &connFlags{style: style}
	var name string
	show := &cobra.Command{
		Use:     "show",
		Short:   "Show a private link resource of a flexible server",
		Example: "  pglink postgres flexible-server private-link-resource show -g db-rg -s orders-db -n postgresqlServer",
		Args:    cobra.NoArgs,
	}
	sf.add(show)
	show.Flags().StringVarP(&name, "name", "n", "", "name of the private link resource (its group id)")
	show.MarkFlagRequired("name")
	show.RunE = e.run(func(ctx context.Context, cmd *cobra.Command) error {
		s, err := e.session()
		if err != nil {
			return err
		}
		ref, err := sf.ref(e, s.p.SubscriptionID, false)
		if err != nil {
			return err
		}
		client, err := clients(ref.sub)
		if err != nil {
			return err
		}
		var cp capture
		if _, err := client.Get(cp.ctx(ctx), ref.group, ref.server, name, nil); err != nil {
			return shown(fmt.Errorf("show private link resource %s: %w", name, err))
		}
		return e.printObject(&cp, table)
	})
	return group("private-link-resource", "Show the private link resources of a flexible server", list, show)
}
