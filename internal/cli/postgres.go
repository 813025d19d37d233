package cli

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/postgresql/armpostgresqlflexibleservers/v4"
	"github.com/spf13/cobra"
)

// servers and firewallRules are the flexible server clients of the profile's subscription.
func (s *session) servers() (*armpostgresqlflexibleservers.ServersClient, error) {
	return armpostgresqlflexibleservers.NewServersClient(s.p.SubscriptionID, s.cred, s.armOptions())
}

func (s *session) firewallRules() (*armpostgresqlflexibleservers.FirewallRulesClient, error) {
	return armpostgresqlflexibleservers.NewFirewallRulesClient(s.p.SubscriptionID, s.cred, s.armOptions())
}

// groupLocation is the location of resource group g, the default location of what is created
// in it (as az does).
func (s *session) groupLocation(ctx context.Context, g string) (string, error) {
	client, err := s.groups()
	if err != nil {
		return "", err
	}
	resp, err := client.Get(ctx, g, nil)
	if err != nil {
		return "", fmt.Errorf("read resource group %s: %w", g, err)
	}
	return deref(resp.Location), nil
}

// plannedChange is one line of a --dry-run: what would change, from what to what.
type plannedChange struct {
	Name        string `json:"name"`
	Property    string `json:"property"`
	Current     any    `json:"current"`
	New         any    `json:"new"`
	WouldChange bool   `json:"wouldChange"`
	Note        string `json:"note,omitempty"` // why it would not change, or what else would
	// SessionsCut lists the open sessions the change would end ([]cutSession), for a change
	// that can end some; nil otherwise, and when they could not be listed (the note says why).
	SessionsCut any `json:"sessionsCut,omitempty"`
}

func changeTable(m map[string]any) ([]cell, bool) {
	return []cell{{"Name", m["name"]}, {"Property", m["property"]}, {"Current", m["current"]}, {"New", m["new"]},
		{"WouldChange", m["wouldChange"]}, {"SessionsCut", cutSummary(m["sessionsCut"])}, {"Note", m["note"]}}, m["property"] != nil
}

// cutSummary is a plan's sessionsCut in a table cell: how many, and the first clients.
func cutSummary(v any) any {
	cuts, ok := v.([]any)
	if !ok {
		return nil
	}
	var addrs []string
	for i, c := range cuts {
		if i == 3 {
			addrs = append(addrs, "…")
			break
		}
		if m, ok := c.(map[string]any); ok {
			addrs = append(addrs, str(m, "clientAddress"))
		}
	}
	if len(cuts) == 0 {
		return "0"
	}
	return fmt.Sprintf("%d (%s)", len(cuts), strings.Join(addrs, ", "))
}

// serverTable is the table of flexible servers.
func serverTable(m map[string]any) ([]cell, bool) {
	return []cell{{"Name", m["name"]}, {"ResourceGroup", m["resourceGroup"]}, {"Location", m["location"]},
		{"Version", field(m, "version")}, {"State", field(m, "state")},
		{"PublicAccess", field(m, "network.publicNetworkAccess")}, {"Address", field(m, "dataPlane.address")}}, m["name"] != nil
}

func firewallTable(m map[string]any) ([]cell, bool) {
	return []cell{{"Name", m["name"]}, {"ResourceGroup", m["resourceGroup"]}, {"StartIpAddress", field(m, "startIpAddress")},
		{"EndIpAddress", field(m, "endIpAddress")}}, m["name"] != nil
}

func (e *env) postgresCmd() *cobra.Command {
	fs := group("flexible-server", "Manage PostgreSQL flexible servers",
		e.serverCreateCmd(), e.serverShowCmd(), e.serverListCmd(), e.serverUpdateCmd(), e.serverDeleteCmd(),
		e.serverActionCmd("start", "Start a stopped flexible server"),
		e.serverActionCmd("stop", "Stop a flexible server"),
		e.serverActionCmd("restart", "Restart a flexible server"),
		e.connectionStringCmd(), e.firewallCmd(), e.connectionCmd(pgStyle), e.linkResourceCmd(pgStyle), e.sessionCmd())
	return group("postgres", "Manage Azure Database for PostgreSQL", fs)
}

// serverFlags adds -g and -n (the server) to c.
func serverFlags(c *cobra.Command, g, n *string) {
	c.Flags().StringVarP(g, "resource-group", "g", "", "name of the resource group")
	c.Flags().StringVarP(n, "name", "n", "", "name of the flexible server")
	required(c, "resource-group", "name")
}

func (e *env) serverCreateCmd() *cobra.Command {
	var g, n, loc, user, pass, version, sku, tier, access string
	var storage int32
	var tags []string
	var noWait, yes bool
	c := &cobra.Command{
		Use:   "create",
		Short: "Create a PostgreSQL flexible server",
		Long: `Create a PostgreSQL flexible server. Without --version, the newest PostgreSQL installed on the
pglink host is used. The command waits until the server is Ready, unless --no-wait.`,
		Example: `  pglink postgres flexible-server create -g db-rg -n orders-db -l eastus \
    --admin-user pgadmin --admin-password 'S3cret-pass!'
  pglink postgres flexible-server create -g db-rg -n orders-db --admin-user pgadmin \
    --admin-password 'S3cret-pass!' --version 16 --public-access Disabled --no-wait`,
		Args: cobra.NoArgs,
	}
	serverFlags(c, &g, &n)
	f := c.Flags()
	f.StringVarP(&loc, "location", "l", "", "location; default: the resource group's")
	f.StringVarP(&user, "admin-user", "u", "", "administrator login name")
	f.StringVarP(&pass, "admin-password", "p", "", "administrator login password")
	f.StringVar(&version, "version", "", "PostgreSQL major version, e.g. 16; default: the newest installed")
	f.StringVar(&sku, "sku-name", "", "compute SKU, e.g. Standard_B1ms")
	f.StringVar(&tier, "tier", "", "compute tier: Burstable, GeneralPurpose or MemoryOptimized")
	f.Int32Var(&storage, "storage-size", 0, "storage size in GiB")
	f.StringVar(&access, "public-access", "", "public network access: Enabled or Disabled")
	f.StringArrayVar(&tags, "tags", nil, "space-separated tags: key[=value] [key[=value] ...]")
	f.BoolVar(&noWait, "no-wait", false, "do not wait for the server to be Ready")
	f.BoolVarP(&yes, "yes", "y", false, "do not prompt for confirmation (accepted for az compatibility)")
	required(c, "admin-user", "admin-password")
	c.RunE = e.run(func(ctx context.Context, cmd *cobra.Command) error {
		t, err := parseTags(tags)
		if err != nil {
			return err
		}
		pna, err := publicAccess(access)
		if err != nil {
			return err
		}
		s, err := e.session()
		if err != nil {
			return err
		}
		if loc == "" {
			if loc, err = s.groupLocation(ctx, g); err != nil {
				return err
			}
		}
		client, err := s.servers()
		if err != nil {
			return err
		}
		props := &armpostgresqlflexibleservers.ServerProperties{AdministratorLogin: &user, AdministratorLoginPassword: &pass}
		if version != "" {
			v := armpostgresqlflexibleservers.ServerVersion(version)
			props.Version = &v
		}
		if storage > 0 {
			props.Storage = &armpostgresqlflexibleservers.Storage{StorageSizeGB: &storage}
		}
		if pna != nil {
			props.Network = &armpostgresqlflexibleservers.Network{PublicNetworkAccess: pna}
		}
		srv := armpostgresqlflexibleservers.Server{Location: &loc, Properties: props, Tags: t}
		if sku != "" || tier != "" {
			srv.SKU = &armpostgresqlflexibleservers.SKU{}
			if sku != "" {
				srv.SKU.Name = &sku
			}
			if tier != "" {
				ti := armpostgresqlflexibleservers.SKUTier(tier)
				srv.SKU.Tier = &ti
			}
		}
		var cp capture
		poller, err := client.BeginCreate(cp.ctx(ctx), g, n, srv, nil)
		return finish(ctx, e, poller, err, noWait, &cp, serverTable, fmt.Sprintf("create flexible server %s", n))
	})
	return c
}

// printObject prints the captured resource, flattened as az prints its SDK commands' output.
func (e *env) printObject(cp *capture, view tableView) error {
	m, err := cp.object()
	if err != nil {
		return err
	}
	return e.printTable(flatten(m), view)
}

// publicAccess parses --public-access; nil if it is not given.
func publicAccess(v string) (*armpostgresqlflexibleservers.ServerPublicNetworkAccessState, error) {
	if v == "" {
		return nil, nil
	}
	for _, s := range armpostgresqlflexibleservers.PossibleServerPublicNetworkAccessStateValues() {
		if strings.EqualFold(v, string(s)) {
			return &s, nil
		}
	}
	return nil, usagef("argument --public-access: invalid choice: '%s' (choose from Enabled, Disabled)", v)
}

func (e *env) serverShowCmd() *cobra.Command {
	var g, n string
	c := &cobra.Command{
		Use:     "show",
		Short:   "Show a flexible server",
		Example: "  pglink postgres flexible-server show -g db-rg -n orders-db\n  pglink postgres flexible-server show -g db-rg -n orders-db --query state -o tsv",
		Args:    cobra.NoArgs,
	}
	serverFlags(c, &g, &n)
	c.RunE = e.run(func(ctx context.Context, cmd *cobra.Command) error {
		s, err := e.session()
		if err != nil {
			return err
		}
		client, err := s.servers()
		if err != nil {
			return err
		}
		var cp capture
		if _, err := client.Get(cp.ctx(ctx), g, n, nil); err != nil {
			return shown(fmt.Errorf("show flexible server %s: %w", n, err))
		}
		return e.printObject(&cp, serverTable)
	})
	return c
}

func (e *env) serverListCmd() *cobra.Command {
	var g string
	c := &cobra.Command{
		Use:     "list",
		Short:   "List flexible servers, of a resource group or of the subscription",
		Example: "  pglink postgres flexible-server list -o table\n  pglink postgres flexible-server list -g db-rg --query '[].name' -o tsv",
		Args:    cobra.NoArgs,
	}
	c.Flags().StringVarP(&g, "resource-group", "g", "", "name of the resource group; default: every group")
	c.RunE = e.run(func(ctx context.Context, cmd *cobra.Command) error {
		s, err := e.session()
		if err != nil {
			return err
		}
		client, err := s.servers()
		if err != nil {
			return err
		}
		var items []map[string]any
		if g != "" {
			items, err = collect(ctx, client.NewListByResourceGroupPager(g, nil))
		} else {
			items, err = collect(ctx, client.NewListPager(nil))
		}
		if err != nil {
			return fmt.Errorf("list flexible servers: %w", err)
		}
		return e.printTable(flattenAll(items), serverTable)
	})
	return c
}

func (e *env) serverUpdateCmd() *cobra.Command {
	var g, n, access, pass string
	var tags []string
	var noWait, dryRun bool
	c := &cobra.Command{
		Use:   "update",
		Short: "Update a flexible server: public network access, tags, administrator password",
		Example: `  pglink postgres flexible-server update -g db-rg -n orders-db --public-access Disabled
  pglink postgres flexible-server update -g db-rg -n orders-db --public-access Disabled --dry-run -o table
  pglink postgres flexible-server update -g db-rg -n orders-db --tags env=prod team=db
  pglink postgres flexible-server update -g db-rg -n orders-db --admin-password 'N3w-pass!'`,
		Args: cobra.ArbitraryArgs, // further --tags values, space-separated as az takes them
	}
	serverFlags(c, &g, &n)
	f := c.Flags()
	f.StringVar(&access, "public-access", "", "public network access: Enabled or Disabled")
	c.RegisterFlagCompletionFunc("public-access", cobra.FixedCompletions([]string{"Enabled", "Disabled"}, cobra.ShellCompDirectiveNoFileComp))
	f.StringArrayVar(&tags, "tags", nil, "space-separated tags: key[=value] [key[=value] ...]; \"\" removes them all")
	f.StringVarP(&pass, "admin-password", "p", "", "new administrator login password")
	f.BoolVar(&noWait, "no-wait", false, "do not wait for the update to finish")
	f.BoolVar(&dryRun, "dry-run", false, "print what --public-access would change, and change nothing")
	c.RunE = e.run(func(ctx context.Context, cmd *cobra.Command) error {
		if len(cmd.Flags().Args()) > 0 && !cmd.Flags().Changed("tags") {
			return usagef("unrecognized arguments: %s", strings.Join(cmd.Flags().Args(), " "))
		}
		t, err := parseTags(append(tags, cmd.Flags().Args()...))
		if err != nil {
			return err
		}
		pna, err := publicAccess(access)
		if err != nil {
			return err
		}
		if pna == nil && t == nil && pass == "" {
			return usagef("give at least one of --public-access, --tags, --admin-password")
		}
		s, err := e.session()
		if err != nil {
			return err
		}
		client, err := s.servers()
		if err != nil {
			return err
		}
		if dryRun {
			if pna == nil {
				return usagef("--dry-run reports --public-access changes: give --public-access")
			}
			var cp capture
			if _, err := client.Get(cp.ctx(ctx), g, n, nil); err != nil {
				return shown(fmt.Errorf("show flexible server %s: %w", n, err))
			}
			m, err := cp.object()
			if err != nil {
				return err
			}
			cur := str(m, "network.publicNetworkAccess")
			p := plannedChange{Name: n, Property: "publicNetworkAccess", Current: cur, New: string(*pna), WouldChange: !strings.EqualFold(cur, string(*pna))}
			if !p.WouldChange {
				p.Note = "already so"
			} else if *pna == armpostgresqlflexibleservers.ServerPublicNetworkAccessStateDisabled {
				p.Note = "the public endpoint refuses clients; private endpoints are not affected"
				s.withCuts(ctx, &p, s.p.SubscriptionID, g, n, publicSession)
			}
			return e.printTable([]plannedChange{p}, changeTable)
		}
		upd := armpostgresqlflexibleservers.ServerForUpdate{Tags: t}
		if pna != nil || pass != "" {
			upd.Properties = &armpostgresqlflexibleservers.ServerPropertiesForUpdate{}
			if pna != nil {
				upd.Properties.Network = &armpostgresqlflexibleservers.Network{PublicNetworkAccess: pna}
			}
			if pass != "" {
				upd.Properties.AdministratorLoginPassword = &pass
			}
		}
		var cp capture
		poller, err := client.BeginUpdate(cp.ctx(ctx), g, n, upd, nil)
		return finish(ctx, e, poller, err, noWait, &cp, serverTable, fmt.Sprintf("update flexible server %s", n))
	})
	return c
}

func (e *env) serverDeleteCmd() *cobra.Command {
	var g, n string
	var yes, noWait bool
	c := &cobra.Command{
		Use:     "delete",
		Short:   "Delete a flexible server",
		Example: "  pglink postgres flexible-server delete -g db-rg -n orders-db --yes",
		Args:    cobra.NoArgs,
	}
	serverFlags(c, &g, &n)
	c.Flags().BoolVarP(&yes, "yes", "y", false, "do not prompt for confirmation")
	c.Flags().BoolVar(&noWait, "no-wait", false, "do not wait for the deletion to finish")
	c.RunE = e.run(func(ctx context.Context, cmd *cobra.Command) error {
		if ok, err := e.confirmDelete(yes); !ok || err != nil {
			return err
		}
		s, err := e.session()
		if err != nil {
			return err
		}
		client, err := s.servers()
		if err != nil {
			return err
		}
		poller, err := client.BeginDelete(ctx, g, n, nil)
		return finish(ctx, e, poller, err, noWait, nil, nil, fmt.Sprintf("delete flexible server %s", n))
	})
	return c
}

// serverActionCmd is start, stop or restart.
func (e *env) serverActionCmd(action, short string) *cobra.Command {
	var g, n string
	var noWait bool
	c := &cobra.Command{
		Use:     action,
		Short:   short,
		Example: fmt.Sprintf("  pglink postgres flexible-server %s -g db-rg -n orders-db", action),
		Args:    cobra.NoArgs,
	}
	serverFlags(c, &g, &n)
	c.Flags().BoolVar(&noWait, "no-wait", false, "do not wait for the operation to finish")
	c.RunE = e.run(func(ctx context.Context, cmd *cobra.Command) error {
		s, err := e.session()
		if err != nil {
			return err
		}
		client, err := s.servers()
		if err != nil {
			return err
		}
		var werr error
		switch action {
		case "start":
			p, err := client.BeginStart(ctx, g, n, nil)
			if err == nil && !noWait {
				_, err = wait(ctx, e, p)
			}
			werr = err
		case "stop":
			p, err := client.BeginStop(ctx, g, n, nil)
			if err == nil && !noWait {
				_, err = wait(ctx, e, p)
			}
			werr = err
		default:
			p, err := client.BeginRestart(ctx, g, n, nil)
			if err == nil && !noWait {
				_, err = wait(ctx, e, p)
			}
			werr = err
		}
		if werr != nil {
			return fmt.Errorf("%s flexible server %s: %w", action, n, werr)
		}
		return nil
	})
	return c
}

func (e *env) connectionStringCmd() *cobra.Command {
	var g, n, user, pass, db string
	c := &cobra.Command{
		Use:   "show-connection-string",
		Short: "Show the connection strings of a flexible server",
		Long: `Show the connection strings of a flexible server. With --resource-group, the server is read
and its pglink address (host:port) and administrator login are used; without, the host is
{server}.postgres.database.azure.com, as az prints it.`,
		Example: `  pglink postgres flexible-server show-connection-string -g db-rg -s orders-db -d postgres
  pglink postgres flexible-server show-connection-string -g db-rg -s orders-db --query connectionStrings.psql_cmd -o tsv`,
		Args: cobra.NoArgs,
	}
	f := c.Flags()
	f.StringVarP(&g, "resource-group", "g", "", "name of the resource group: read the server's address")
	f.StringVarP(&n, "server-name", "s", "", "name of the flexible server")
	f.StringVarP(&user, "admin-user", "u", "", "login name; default: the server's administrator, else {username}")
	f.StringVarP(&pass, "admin-password", "p", "{password}", "login password")
	f.StringVarP(&db, "database-name", "d", "{database}", "database name")
	required(c, "server-name")
	c.RunE = e.run(func(ctx context.Context, cmd *cobra.Command) error {
		host, port := n+".postgres.database.azure.com", "5432"
		if g != "" {
			s, err := e.session()
			if err != nil {
				return err
			}
			client, err := s.servers()
			if err != nil {
				return err
			}
			var cp capture
			if _, err := client.Get(cp.ctx(ctx), g, n, nil); err != nil {
				return shown(fmt.Errorf("show flexible server %s: %w", n, err))
			}
			m, err := cp.object()
			if err != nil {
				return err
			}
			if a := str(m, "dataPlane.address"); a != "" {
				if i := strings.LastIndex(a, ":"); i > 0 {
					host, port = a[:i], a[i+1:]
				}
			} else if fq := str(m, "fullyQualifiedDomainName"); fq != "" {
				host = fq
			}
			if user == "" {
				user = str(m, "administratorLogin")
			}
		}
		if user == "" {
			user = "{username}"
		}
		return e.print(map[string]any{"connectionStrings": connectionStrings(host, port, user, pass, db)})
	})
	return c
}

// connectionStrings are a server's connection strings in the forms az prints.
func connectionStrings(host, port, user, pass, db string) map[string]string {
	u := url.URL{Scheme: "postgresql", User: url.UserPassword(user, pass), Host: host + ":" + port, Path: "/" + db,
		RawQuery: "sslmode=require"}
	return map[string]string{
		"ado.net":  fmt.Sprintf("Server=%s;Database=%s;Port=%s;User Id=%s;Password=%s;Ssl Mode=Require;", host, db, port, user, pass),
		"jdbc":     fmt.Sprintf("jdbc:postgresql://%s:%s/%s?user=%s&password=%s&sslmode=require", host, port, db, user, pass),
		"node.js":  fmt.Sprintf("var client = new pg.Client('%s');", u.String()),
		"php":      fmt.Sprintf("host=%s port=%s dbname=%s user=%s password=%s sslmode=require", host, port, db, user, pass),
		"psql_cmd": fmt.Sprintf("psql \"host=%s port=%s dbname=%s user=%s password=%s sslmode=require\"", host, port, db, user, pass),
		"python":   fmt.Sprintf("cnx = psycopg2.connect(user='%s', password='%s', host='%s', port=%s, database='%s')", user, pass, host, port, db),
		"ruby":     fmt.Sprintf("connection = PG::Connection.new(user => \"%s\", password => \"%s\", database => \"%s\", host => \"%s\", port => '%s')", user, pass, db, host, port),
		"uri":      u.String(),
	}
}

func (e *env) firewallCmd() *cobra.Command {
	var g, n, rule, start, end string
	var yes, noWait, dryRun bool
	flags := func(c *cobra.Command, ips bool) {
		serverFlags(c, &g, &n)
		c.Flags().StringVarP(&rule, "rule-name", "r", "", "name of the firewall rule")
		c.MarkFlagRequired("rule-name")
		if ips {
			c.Flags().StringVar(&start, "start-ip-address", "", "first IPv4 address of the range")
			c.Flags().StringVar(&end, "end-ip-address", "", "last IPv4 address of the range; default: the first")
			c.Flags().BoolVar(&noWait, "no-wait", false, "do not wait for the operation to finish")
			c.Flags().BoolVar(&dryRun, "dry-run", false, "print what would change, and change nothing")
		}
	}
	session := func() (*armpostgresqlflexibleservers.FirewallRulesClient, error) {
		s, err := e.session()
		if err != nil {
			return nil, err
		}
		return s.firewallRules()
	}
	// plan is the dry-run of setting the rule to to (nil: deleting it).
	plan := func(ctx context.Context, client *armpostgresqlflexibleservers.FirewallRulesClient, to any) error {
		var cur any
		resp, err := client.Get(ctx, g, n, rule, nil)
		if err != nil && !isNotFound(err) {
			return fmt.Errorf("show firewall rule %s: %w", rule, err)
		}
		if err == nil && resp.Properties != nil {
			cur = deref(resp.Properties.StartIPAddress) + "-" + deref(resp.Properties.EndIPAddress)
		}
		p := plannedChange{Name: rule, Property: "ipRange", Current: cur, New: to, WouldChange: cur != to}
		if !p.WouldChange {
			p.Note = "already so"
		} else if err := e.firewallCuts(ctx, client, &p, g, n, rule, to); err != nil {
			return err
		}
		return e.printTable([]plannedChange{p}, changeTable)
	}
	put := func(verb string) func(ctx context.Context, cmd *cobra.Command) error {
		return func(ctx context.Context, cmd *cobra.Command) error {
			if end == "" {
				end = start
			}
			client, err := session()
			if err != nil {
				return err
			}
			if dryRun {
				return plan(ctx, client, start+"-"+end)
			}
			var cp capture
			poller, err := client.BeginCreateOrUpdate(cp.ctx(ctx), g, n, rule, armpostgresqlflexibleservers.FirewallRule{
				Properties: &armpostgresqlflexibleservers.FirewallRuleProperties{StartIPAddress: &start, EndIPAddress: &end}}, nil)
			return finish(ctx, e, poller, err, noWait, &cp, firewallTable, fmt.Sprintf("%s firewall rule %s", verb, rule))
		}
	}
	create := &cobra.Command{
		Use:   "create",
		Short: "Create a firewall rule: the public endpoint admits clients from its addresses",
		Example: `  pglink postgres flexible-server firewall-rule create -g db-rg -n orders-db -r office \
    --start-ip-address 203.0.113.0 --end-ip-address 203.0.113.255
  pglink postgres flexible-server firewall-rule create -g db-rg -n orders-db -r local --start-ip-address 127.0.0.1 --dry-run`,
		Args: cobra.NoArgs,
	}
	flags(create, true)
	create.MarkFlagRequired("start-ip-address")
	create.RunE = e.run(put("create"))
	update := &cobra.Command{
		Use:     "update",
		Short:   "Update a firewall rule's address range",
		Example: "  pglink postgres flexible-server firewall-rule update -g db-rg -n orders-db -r office --start-ip-address 203.0.113.0 --end-ip-address 203.0.113.127",
		Args:    cobra.NoArgs,
	}
	flags(update, true)
	update.MarkFlagRequired("start-ip-address")
	update.RunE = e.run(put("update"))

	show := &cobra.Command{
		Use:     "show",
		Short:   "Show a firewall rule",
		Example: "  pglink postgres flexible-server firewall-rule show -g db-rg -n orders-db -r office",
		Args:    cobra.NoArgs,
	}
	flags(show, false)
	show.RunE = e.run(func(ctx context.Context, cmd *cobra.Command) error {
		client, err := session()
		if err != nil {
			return err
		}
		var cp capture
		if _, err := client.Get(cp.ctx(ctx), g, n, rule, nil); err != nil {
			return shown(fmt.Errorf("show firewall rule %s: %w", rule, err))
		}
		return e.printObject(&cp, firewallTable)
	})

	list := &cobra.Command{
		Use:     "list",
		Short:   "List the firewall rules of a flexible server",
		Example: "  pglink postgres flexible-server firewall-rule list -g db-rg -n orders-db -o table",
		Args:    cobra.NoArgs,
	}
	serverFlags(list, &g, &n)
	list.RunE = e.run(func(ctx context.Context, cmd *cobra.Command) error {
		client, err := session()
		if err != nil {
			return err
		}
		items, err := collect(ctx, client.NewListByServerPager(g, n, nil))
		if err != nil {
			return fmt.Errorf("list firewall rules of %s: %w", n, err)
		}
		return e.printTable(flattenAll(items), firewallTable)
	})

	del := &cobra.Command{
		Use:     "delete",
		Short:   "Delete a firewall rule",
		Example: "  pglink postgres flexible-server firewall-rule delete -g db-rg -n orders-db -r office --yes\n  pglink postgres flexible-server firewall-rule delete -g db-rg -n orders-db -r office --dry-run",
		Args:    cobra.NoArgs,
	}
	flags(del, false)
	del.Flags().BoolVarP(&yes, "yes", "y", false, "do not prompt for confirmation")
	del.Flags().BoolVar(&noWait, "no-wait", false, "do not wait for the deletion to finish")
	del.Flags().BoolVar(&dryRun, "dry-run", false, "print what would change, and change nothing")
	del.RunE = e.run(func(ctx context.Context, cmd *cobra.Command) error {
		client, err := session()
		if err != nil {
			return err
		}
		if dryRun {
			return plan(ctx, client, nil)
		}
		if ok, err := e.confirmDelete(yes); !ok || err != nil {
			return err
		}
		poller, err := client.BeginDelete(ctx, g, n, rule, nil)
		return finish(ctx, e, poller, err, noWait, nil, nil, fmt.Sprintf("delete firewall rule %s", rule))
	})
	return group("firewall-rule", "Manage the firewall rules of a flexible server", create, show, list, update, del)
}
