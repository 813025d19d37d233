package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v6"
	"github.com/spf13/cobra"
)

// network is the client factory of Microsoft.Network in the profile's subscription.
func (s *session) network() (*armnetwork.ClientFactory, error) {
	return armnetwork.NewClientFactory(s.p.SubscriptionID, s.cred, s.armOptions())
}

func vnetTable(m map[string]any) ([]cell, bool) {
	var prefixes []string
	if list, ok := field(m, "addressSpace.addressPrefixes").([]any); ok {
		for _, p := range list {
			prefixes = append(prefixes, fmt.Sprint(p))
		}
	}
	return []cell{{"Name", m["name"]}, {"ResourceGroup", m["resourceGroup"]}, {"Location", m["location"]},
		{"AddressPrefixes", strings.Join(prefixes, " ")}, {"ProvisioningState", field(m, "provisioningState")}}, m["name"] != nil
}

func subnetTable(m map[string]any) ([]cell, bool) {
	return []cell{{"Name", m["name"]}, {"ResourceGroup", m["resourceGroup"]}, {"AddressPrefix", field(m, "addressPrefix")},
		{"ProvisioningState", field(m, "provisioningState")}}, m["name"] != nil
}

func endpointTable(m map[string]any) ([]cell, bool) {
	var conn any
	for _, k := range []string{"manualPrivateLinkServiceConnections", "privateLinkServiceConnections"} {
		if list, ok := field(m, k).([]any); ok && len(list) > 0 {
			if c, ok := list[0].(map[string]any); ok {
				conn = field(c, "privateLinkServiceConnectionState.status")
			}
		}
	}
	return []cell{{"Name", m["name"]}, {"ResourceGroup", m["resourceGroup"]}, {"Location", m["location"]},
		{"Subnet", lastSegment(str(m, "subnet.id"))}, {"ConnectionStatus", conn},
		{"Address", field(m, "dataPlane.address")}, {"ProvisioningState", field(m, "provisioningState")}}, m["name"] != nil
}

func (e *env) networkCmd() *cobra.Command {
	return group("network", "Manage virtual networks, private endpoints and their connections, private DNS zones",
		e.vnetCmd(), e.endpointCmd(), e.connectionCmd(netStyle), e.linkResourceCmd(netStyle), e.privateDNSCmd())
}

// netOp runs one network command: it opens the session and the client factory.
func (e *env) netOp(fn func(ctx context.Context, s *session, nf *armnetwork.ClientFactory) error) func(*cobra.Command, []string) error {
	return e.run(func(ctx context.Context, cmd *cobra.Command) error {
		s, err := e.session()
		if err != nil {
			return err
		}
		nf, err := s.network()
		if err != nil {
			return err
		}
		return fn(ctx, s, nf)
	})
}

func (e *env) vnetCmd() *cobra.Command {
	var g, n, loc, subnet, subnetPrefix string
	var prefixes, tags []string
	var noWait, yes bool
	create := &cobra.Command{
		Use:   "create",
		Short: "Create a virtual network, with a first subnet if --subnet-name is given",
		Example: `  pglink network vnet create -g net-rg -n app-vnet --address-prefix 10.0.0.0/16 \
    --subnet-name pe --subnet-prefix 10.0.1.0/24`,
		Args: cobra.NoArgs,
	}
	cf := create.Flags()
	cf.StringVarP(&g, "resource-group", "g", "", "name of the resource group")
	cf.StringVarP(&n, "name", "n", "", "name of the virtual network")
	cf.StringVarP(&loc, "location", "l", "", "location; default: the resource group's")
	cf.StringSliceVar(&prefixes, "address-prefix", []string{"10.0.0.0/16"}, "address prefixes (CIDR), space- or comma-separated")
	cf.StringVar(&subnet, "subnet-name", "", "name of a subnet to create in it")
	cf.StringVar(&subnetPrefix, "subnet-prefix", "10.0.0.0/24", "address prefix of that subnet")
	cf.StringArrayVar(&tags, "tags", nil, "space-separated tags: key[=value] [key[=value] ...]")
	cf.BoolVar(&noWait, "no-wait", false, "do not wait for the operation to finish")
	required(create, "resource-group", "name")
	create.RunE = e.netOp(func(ctx context.Context, s *session, nf *armnetwork.ClientFactory) error {
		t, err := parseTags(tags)
		if err != nil {
			return err
		}
		if loc == "" {
			if loc, err = s.groupLocation(ctx, g); err != nil {
				return err
			}
		}
		vnet := armnetwork.VirtualNetwork{Location: &loc, Tags: t, Properties: &armnetwork.VirtualNetworkPropertiesFormat{
			AddressSpace: &armnetwork.AddressSpace{AddressPrefixes: ptrs(prefixes)}}}
		if subnet != "" {
			vnet.Properties.Subnets = []*armnetwork.Subnet{{Name: &subnet, Properties: &armnetwork.SubnetPropertiesFormat{AddressPrefix: &subnetPrefix}}}
		}
		var cp capture
		poller, err := nf.NewVirtualNetworksClient().BeginCreateOrUpdate(cp.ctx(ctx), g, n, vnet, nil)
		if err != nil {
			return fmt.Errorf("create virtual network %s: %w", n, err)
		}
		if noWait {
			return nil
		}
		if _, err := wait(cp.ctx(ctx), e, poller); err != nil {
			return fmt.Errorf("create virtual network %s: %w", n, err)
		}
		m, err := cp.object()
		if err != nil {
			return err
		}
		return e.print(map[string]any{"newVNet": flatten(m)})
	})

	show := &cobra.Command{
		Use:     "show",
		Short:   "Show a virtual network",
		Example: "  pglink network vnet show -g net-rg -n app-vnet",
		Args:    cobra.NoArgs,
	}
	show.Flags().StringVarP(&g, "resource-group", "g", "", "name of the resource group")
	show.Flags().StringVarP(&n, "name", "n", "", "name of the virtual network")
	required(show, "resource-group", "name")
	show.RunE = e.netOp(func(ctx context.Context, s *session, nf *armnetwork.ClientFactory) error {
		var cp capture
		if _, err := nf.NewVirtualNetworksClient().Get(cp.ctx(ctx), g, n, nil); err != nil {
			return shown(fmt.Errorf("show virtual network %s: %w", n, err))
		}
		return e.printObject(&cp, vnetTable)
	})

	list := &cobra.Command{
		Use:     "list",
		Short:   "List virtual networks, of a resource group or of the subscription",
		Example: "  pglink network vnet list -g net-rg -o table",
		Args:    cobra.NoArgs,
	}
	list.Flags().StringVarP(&g, "resource-group", "g", "", "name of the resource group; default: every group")
	list.RunE = e.netOp(func(ctx context.Context, s *session, nf *armnetwork.ClientFactory) error {
		var items []map[string]any
		var err error
		if c := nf.NewVirtualNetworksClient(); g != "" {
			items, err = collect(ctx, c.NewListPager(g, nil))
		} else {
			items, err = collect(ctx, c.NewListAllPager(nil))
		}
		if err != nil {
			return fmt.Errorf("list virtual networks: %w", err)
		}
		return e.printTable(flattenAll(items), vnetTable)
	})

	del := &cobra.Command{
		Use:     "delete",
		Short:   "Delete a virtual network",
		Example: "  pglink network vnet delete -g net-rg -n app-vnet",
		Args:    cobra.NoArgs,
	}
	del.Flags().StringVarP(&g, "resource-group", "g", "", "name of the resource group")
	del.Flags().StringVarP(&n, "name", "n", "", "name of the virtual network")
	del.Flags().BoolVar(&noWait, "no-wait", false, "do not wait for the deletion to finish")
	del.Flags().BoolVarP(&yes, "yes", "y", false, "accepted for symmetry; az does not prompt here")
	required(del, "resource-group", "name")
	del.RunE = e.netOp(func(ctx context.Context, s *session, nf *armnetwork.ClientFactory) error {
		poller, err := nf.NewVirtualNetworksClient().BeginDelete(ctx, g, n, nil)
		return finish(ctx, e, poller, err, noWait, nil, nil, fmt.Sprintf("delete virtual network %s", n))
	})
	return group("vnet", "Manage virtual networks", create, show, list, del, e.subnetCmd())
}

func ptrs(ss []string) []*string {
	out := make([]*string, len(ss))
	for i := range ss {
		out[i] = &ss[i]
	}
	return out
}

func (e *env) subnetCmd() *cobra.Command {
	var g, vnet, n, prefix string
	var noWait bool
	flags := func(c *cobra.Command, named bool) {
		c.Flags().StringVarP(&g, "resource-group", "g", "", "name of the resource group")
		c.Flags().StringVar(&vnet, "vnet-name", "", "name of the virtual network")
		required(c, "resource-group", "vnet-name")
		if named {
			c.Flags().StringVarP(&n, "name", "n", "", "name of the subnet")
			c.MarkFlagRequired("name")
		}
	}
	create := &cobra.Command{
		Use:     "create",
		Short:   "Create a subnet in a virtual network",
		Example: "  pglink network vnet subnet create -g net-rg --vnet-name app-vnet -n apps --address-prefixes 10.0.2.0/24",
		Args:    cobra.NoArgs,
	}
	flags(create, true)
	create.Flags().StringVar(&prefix, "address-prefixes", "", "address prefix of the subnet (CIDR)")
	create.Flags().StringVar(&prefix, "address-prefix", "", "the same as --address-prefixes")
	create.Flags().MarkHidden("address-prefix")
	create.Flags().BoolVar(&noWait, "no-wait", false, "do not wait for the operation to finish")
	create.RunE = e.netOp(func(ctx context.Context, s *session, nf *armnetwork.ClientFactory) error {
		if prefix == "" {
			return usagef("the following arguments are required: --address-prefixes")
		}
		var cp capture
		poller, err := nf.NewSubnetsClient().BeginCreateOrUpdate(cp.ctx(ctx), g, vnet, n,
			armnetwork.Subnet{Properties: &armnetwork.SubnetPropertiesFormat{AddressPrefix: &prefix}}, nil)
		return finish(ctx, e, poller, err, noWait, &cp, subnetTable, fmt.Sprintf("create subnet %s", n))
	})
	show := &cobra.Command{
		Use:     "show",
		Short:   "Show a subnet",
		Example: "  pglink network vnet subnet show -g net-rg --vnet-name app-vnet -n pe",
		Args:    cobra.NoArgs,
	}
	flags(show, true)
	show.RunE = e.netOp(func(ctx context.Context, s *session, nf *armnetwork.ClientFactory) error {
		var cp capture
		if _, err := nf.NewSubnetsClient().Get(cp.ctx(ctx), g, vnet, n, nil); err != nil {
			return shown(fmt.Errorf("show subnet %s: %w", n, err))
		}
		return e.printObject(&cp, subnetTable)
	})
	list := &cobra.Command{
		Use:     "list",
		Short:   "List the subnets of a virtual network",
		Example: "  pglink network vnet subnet list -g net-rg --vnet-name app-vnet -o table",
		Args:    cobra.NoArgs,
	}
	flags(list, false)
	list.RunE = e.netOp(func(ctx context.Context, s *session, nf *armnetwork.ClientFactory) error {
		items, err := collect(ctx, nf.NewSubnetsClient().NewListPager(g, vnet, nil))
		if err != nil {
			return fmt.Errorf("list subnets of %s: %w", vnet, err)
		}
		return e.printTable(flattenAll(items), subnetTable)
	})
	del := &cobra.Command{
		Use:     "delete",
		Short:   "Delete a subnet",
		Example: "  pglink network vnet subnet delete -g net-rg --vnet-name app-vnet -n apps",
		Args:    cobra.NoArgs,
	}
	flags(del, true)
	del.Flags().BoolVar(&noWait, "no-wait", false, "do not wait for the deletion to finish")
	del.RunE = e.netOp(func(ctx context.Context, s *session, nf *armnetwork.ClientFactory) error {
		poller, err := nf.NewSubnetsClient().BeginDelete(ctx, g, vnet, n, nil)
		return finish(ctx, e, poller, err, noWait, nil, nil, fmt.Sprintf("delete subnet %s", n))
	})
	return group("subnet", "Manage the subnets of a virtual network", create, show, list, del)
}

func (e *env) endpointCmd() *cobra.Command {
	var g, n, loc, vnet, subnet, target, conn, message string
	var groupIDs, tags []string
	var manual, noWait, yes bool
	create := &cobra.Command{
		Use:   "create",
		Short: "Create a private endpoint that asks to connect to a flexible server",
		Long: `Create a private endpoint in a subnet that asks to connect to a flexible server. With
--manual-request, the connection waits (Pending) until the server's owner approves it;
without, it is approved at once when the caller may approve it.`,
		Example: `  pglink network private-endpoint create -g net-rg -n app-pe --vnet-name app-vnet --subnet pe \
    --private-connection-resource-id "$SERVER_ID" --group-id postgresqlServer \
    --connection-name orders --manual-request --request-message "for the orders app"`,
		Args: cobra.NoArgs,
	}
	f := create.Flags()
	f.StringVarP(&g, "resource-group", "g", "", "name of the resource group")
	f.StringVarP(&n, "name", "n", "", "name of the private endpoint")
	f.StringVarP(&loc, "location", "l", "", "location; default: the resource group's")
	f.StringVar(&vnet, "vnet-name", "", "name of the virtual network of --subnet, when --subnet is a name")
	f.StringVar(&subnet, "subnet", "", "name (with --vnet-name) or id of the subnet")
	f.StringVar(&target, "private-connection-resource-id", "", "id of the flexible server to connect to")
	f.StringSliceVar(&groupIDs, "group-id", nil, "group id of the private link resource: postgresqlServer")
	f.StringSliceVar(&groupIDs, "group-ids", nil, "the same as --group-id")
	f.MarkHidden("group-ids")
	f.StringVar(&conn, "connection-name", "", "name of the connection")
	f.BoolVar(&manual, "manual-request", false, "ask for approval rather than connect at once")
	f.StringVar(&message, "request-message", "", "message for the approver (with --manual-request)")
	f.StringArrayVar(&tags, "tags", nil, "space-separated tags: key[=value] [key[=value] ...]")
	f.BoolVar(&noWait, "no-wait", false, "do not wait for the operation to finish")
	required(create, "resource-group", "name", "subnet", "private-connection-resource-id", "connection-name")
	create.RunE = e.netOp(func(ctx context.Context, s *session, nf *armnetwork.ClientFactory) error {
		t, err := parseTags(tags)
		if err != nil {
			return err
		}
		subnetID := subnet
		if !strings.HasPrefix(subnet, "/") {
			if vnet == "" {
				return usagef("give --vnet-name with a subnet name, or the subnet's id as --subnet")
			}
			subnetID = fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Network/virtualNetworks/%s/subnets/%s",
				s.p.SubscriptionID, g, vnet, subnet)
		}
		if loc == "" {
			if loc, err = s.groupLocation(ctx, g); err != nil {
				return err
			}
		}
		link := &armnetwork.PrivateLinkServiceConnection{Name: &conn, Properties: &armnetwork.PrivateLinkServiceConnectionProperties{
			PrivateLinkServiceID: &target, GroupIDs: ptrs(groupIDs)}}
		pe := armnetwork.PrivateEndpoint{Location: &loc, Tags: t, Properties: &armnetwork.PrivateEndpointProperties{
			Subnet: &armnetwork.Subnet{ID: &subnetID}}}
		if manual {
			if message != "" {
				link.Properties.RequestMessage = &message
			}
			pe.Properties.ManualPrivateLinkServiceConnections = []*armnetwork.PrivateLinkServiceConnection{link}
		} else {
			pe.Properties.PrivateLinkServiceConnections = []*armnetwork.PrivateLinkServiceConnection{link}
		}
		var cp capture
		poller, err := nf.NewPrivateEndpointsClient().BeginCreateOrUpdate(cp.ctx(ctx), g, n, pe, nil)
		return finish(ctx, e, poller, err, noWait, &cp, endpointTable, fmt.Sprintf("create private endpoint %s", n))
	})

	show := &cobra.Command{
		Use:   "show",
		Short: "Show a private endpoint, with the state of its connection and its address",
		Example: `  pglink network private-endpoint show -g net-rg -n app-pe
  pglink network private-endpoint show -g net-rg -n app-pe --query dataPlane.address -o tsv`,
		Args: cobra.NoArgs,
	}
	show.Flags().StringVarP(&g, "resource-group", "g", "", "name of the resource group")
	show.Flags().StringVarP(&n, "name", "n", "", "name of the private endpoint")
	required(show, "resource-group", "name")
	show.RunE = e.netOp(func(ctx context.Context, s *session, nf *armnetwork.ClientFactory) error {
		var cp capture
		if _, err := nf.NewPrivateEndpointsClient().Get(cp.ctx(ctx), g, n, nil); err != nil {
			return shown(fmt.Errorf("show private endpoint %s: %w", n, err))
		}
		return e.printObject(&cp, endpointTable)
	})

	list := &cobra.Command{
		Use:     "list",
		Short:   "List private endpoints, of a resource group or of the subscription",
		Example: "  pglink network private-endpoint list -g net-rg -o table",
		Args:    cobra.NoArgs,
	}
	list.Flags().StringVarP(&g, "resource-group", "g", "", "name of the resource group; default: every group")
	list.RunE = e.netOp(func(ctx context.Context, s *session, nf *armnetwork.ClientFactory) error {
		var items []map[string]any
		var err error
		if c := nf.NewPrivateEndpointsClient(); g != "" {
			items, err = collect(ctx, c.NewListPager(g, nil))
		} else {
			items, err = collect(ctx, c.NewListBySubscriptionPager(nil))
		}
		if err != nil {
			return fmt.Errorf("list private endpoints: %w", err)
		}
		return e.printTable(flattenAll(items), endpointTable)
	})

	del := &cobra.Command{
		Use:     "delete",
		Short:   "Delete a private endpoint; its connection on the server goes with it",
		Example: "  pglink network private-endpoint delete -g net-rg -n app-pe",
		Args:    cobra.NoArgs,
	}
	del.Flags().StringVarP(&g, "resource-group", "g", "", "name of the resource group")
	del.Flags().StringVarP(&n, "name", "n", "", "name of the private endpoint")
	del.Flags().BoolVar(&noWait, "no-wait", false, "do not wait for the deletion to finish")
	del.Flags().BoolVarP(&yes, "yes", "y", false, "accepted for symmetry; az does not prompt here")
	required(del, "resource-group", "name")
	del.RunE = e.netOp(func(ctx context.Context, s *session, nf *armnetwork.ClientFactory) error {
		poller, err := nf.NewPrivateEndpointsClient().BeginDelete(ctx, g, n, nil)
		return finish(ctx, e, poller, err, noWait, nil, nil, fmt.Sprintf("delete private endpoint %s", n))
	})
	return group("private-endpoint", "Manage private endpoints", create, show, list, del, e.dnsZoneGroupCmd())
}
