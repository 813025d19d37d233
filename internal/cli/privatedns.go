package cli

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v6"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/privatedns/armprivatedns"
	"github.com/spf13/cobra"
)

// privateDNS is the client factory of Microsoft.Network's private DNS zones in the profile's
// subscription.
func (s *session) privateDNS() (*armprivatedns.ClientFactory, error) {
	return armprivatedns.NewClientFactory(s.p.SubscriptionID, s.cred, s.armOptions())
}

// dnsOp runs one private DNS command: it opens the session and the client factory.
func (e *env) dnsOp(fn func(ctx context.Context, s *session, f *armprivatedns.ClientFactory) error) func(*cobra.Command, []string) error {
	return e.run(func(ctx context.Context, cmd *cobra.Command) error {
		s, err := e.session()
		if err != nil {
			return err
		}
		f, err := s.privateDNS()
		if err != nil {
			return err
		}
		return fn(ctx, s, f)
	})
}

// Resource types that name-or-id flags refer to.
const (
	typeVirtualNetwork = "Microsoft.Network/virtualNetworks"
	typePrivateDNSZone = "Microsoft.Network/privateDnsZones"
)

// resourceRef returns the id of the resource of type typ that flag names: an id, taken as it
// is once it parses as one of that type, or a name, of a resource in group g of subscription
// sub, as az's name-or-id arguments take them.
func resourceRef(flag, sub, g, typ, v string) (string, error) {
	if !strings.HasPrefix(v, "/") {
		if v == "" || strings.Contains(v, "/") {
			return "", usagef("argument %s: '%s' is neither a name nor a resource id", flag, v)
		}
		return fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/%s/%s", sub, g, typ, v), nil
	}
	r, err := arm.ParseResourceID(v)
	if err != nil {
		return "", usagef("argument %s: %v", flag, err)
	}
	if !strings.EqualFold(r.ResourceType.String(), typ) || r.ResourceGroupName == "" {
		return "", usagef("argument %s: '%s' is not the id of a resource of type %s", flag, v, typ)
	}
	return v, nil
}

// zoneName is a private DNS zone name as az takes it: a trailing dot is dropped.
func zoneName(s string) string { return strings.TrimSuffix(s, ".") }

// threeState parses az's true/false flag values, in any case.
func threeState(flag, v string) (bool, error) {
	switch strings.ToLower(v) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, usagef("argument %s: invalid choice: '%s' (choose from 'true', 'false')", flag, v)
}

// withoutAddress returns records without those of address addr, and whether there were any.
// Addresses compare as IP addresses when both parse, as strings otherwise.
func withoutAddress(records []*armprivatedns.ARecord, addr string) ([]*armprivatedns.ARecord, bool) {
	want, werr := netip.ParseAddr(addr)
	out := []*armprivatedns.ARecord{}
	for _, r := range records {
		cur := ""
		if r != nil && r.IPv4Address != nil {
			cur = *r.IPv4Address
		}
		got, gerr := netip.ParseAddr(cur)
		if cur == addr || (werr == nil && gerr == nil && got == want) {
			continue
		}
		out = append(out, r)
	}
	return out, len(out) < len(records)
}

func zoneTable(m map[string]any) ([]cell, bool) {
	return []cell{{"ZoneName", m["name"]}, {"ResourceGroup", m["resourceGroup"]},
		{"RecordSets", field(m, "numberOfRecordSets")}, {"MaxRecordSets", field(m, "maxNumberOfRecordSets")},
		{"VirtualNetworkLinks", field(m, "numberOfVirtualNetworkLinks")}, {"MaxVirtualNetworkLinks", field(m, "maxNumberOfVirtualNetworkLinks")},
		{"VirtualNetworkLinksWithRegistration", field(m, "numberOfVirtualNetworkLinksWithRegistration")},
		{"MaxVirtualNetworkLinksWithRegistration", field(m, "maxNumberOfVirtualNetworkLinksWithRegistration")},
		{"ProvisioningState", field(m, "provisioningState")}}, m["name"] != nil
}

func linkTable(m map[string]any) ([]cell, bool) {
	return []cell{{"LinkName", m["name"]}, {"ResourceGroup", m["resourceGroup"]}, {"RegistrationEnabled", field(m, "registrationEnabled")},
		{"VirtualNetwork", field(m, "virtualNetwork.id")}, {"LinkState", field(m, "virtualNetworkLinkState")},
		{"ProvisioningState", field(m, "provisioningState")}}, m["name"] != nil
}

// recordSetTable is az's table of record sets: the type's last segment, metadata as k="v".
func recordSetTable(m map[string]any) ([]cell, bool) {
	meta := " "
	if md, ok := field(m, "metadata").(map[string]any); ok && len(md) > 0 {
		var kv []string
		for k, v := range md {
			kv = append(kv, fmt.Sprintf("%s=%q", k, scalar(v)))
		}
		slices.Sort(kv)
		meta = strings.Join(kv, " ")
	}
	return []cell{{"Name", m["name"]}, {"ResourceGroup", m["resourceGroup"]}, {"Ttl", field(m, "ttl")},
		{"Type", lastSegment(str(m, "type"))}, {"AutoRegistered", field(m, "isAutoRegistered")}, {"Metadata", meta}}, m["name"] != nil
}

func (e *env) privateDNSCmd() *cobra.Command {
	return group("private-dns", "Manage private DNS zones, their virtual network links and record sets",
		e.dnsZoneCmd(), group("link", "Manage the links of private DNS zones", e.dnsLinkCmd()), e.recordSetCmd())
}

func (e *env) dnsZoneCmd() *cobra.Command {
	var g, n string
	var tags []string
	var noWait, yes bool
	named := func(c *cobra.Command) {
		c.Flags().StringVarP(&g, "resource-group", "g", "", "name of the resource group")
		c.Flags().StringVarP(&n, "name", "n", "", "name of the private DNS zone")
		required(c, "resource-group", "name")
	}
	create := &cobra.Command{
		Use:   "create",
		Short: "Create a private DNS zone",
		Example: `  pglink network private-dns zone create -g dns-rg -n privatelink.postgres.database.azure.com
  pglink network private-dns zone create -g dns-rg -n corp.example --tags env=prod team=net`,
		Args: cobra.ArbitraryArgs, // further --tags values, space-separated as az takes them
	}
	named(create)
	create.Flags().StringArrayVar(&tags, "tags", nil, "space-separated tags: key[=value] [key[=value] ...]")
	create.Flags().BoolVar(&noWait, "no-wait", false, "do not wait for the operation to finish")
	create.RunE = e.dnsOp(func(ctx context.Context, s *session, f *armprivatedns.ClientFactory) error {
		vals, err := spaceList(create, "tags", tags)
		if err != nil {
			return err
		}
		t, err := parseTags(vals)
		if err != nil {
			return err
		}
		name := zoneName(n)
		if strings.HasSuffix(name, ".local") {
			e.warn("Please be aware that DNS names ending with .local are reserved for use with multicast DNS and may not work as expected with some operating systems. For details refer to your operating systems documentation.")
		}
		global := "global"
		ifNoneMatch := "*"
		var cp capture
		poller, err := f.NewPrivateZonesClient().BeginCreateOrUpdate(cp.ctx(ctx), g, name,
			armprivatedns.PrivateZone{Location: &global, Tags: t},
			&armprivatedns.PrivateZonesClientBeginCreateOrUpdateOptions{IfNoneMatch: &ifNoneMatch})
		return finish(ctx, e, poller, err, noWait, &cp, zoneTable, fmt.Sprintf("create private DNS zone %s", name))
	})

	show := &cobra.Command{
		Use:     "show",
		Short:   "Show a private DNS zone",
		Example: "  pglink network private-dns zone show -g dns-rg -n privatelink.postgres.database.azure.com -o table",
		Args:    cobra.NoArgs,
	}
	named(show)
	show.RunE = e.dnsOp(func(ctx context.Context, s *session, f *armprivatedns.ClientFactory) error {
		var cp capture
		if _, err := f.NewPrivateZonesClient().Get(cp.ctx(ctx), g, zoneName(n), nil); err != nil {
			return shown(fmt.Errorf("show private DNS zone %s: %w", zoneName(n), err))
		}
		return e.printObject(&cp, zoneTable)
	})

	list := &cobra.Command{
		Use:     "list",
		Short:   "List private DNS zones, of a resource group or of the subscription",
		Example: "  pglink network private-dns zone list -o table\n  pglink network private-dns zone list -g dns-rg --query [].name -o tsv",
		Args:    cobra.NoArgs,
	}
	list.Flags().StringVarP(&g, "resource-group", "g", "", "name of the resource group; default: every group")
	list.RunE = e.dnsOp(func(ctx context.Context, s *session, f *armprivatedns.ClientFactory) error {
		var items []map[string]any
		var err error
		if c := f.NewPrivateZonesClient(); g != "" {
			items, err = collect(ctx, c.NewListByResourceGroupPager(g, nil))
		} else {
			items, err = collect(ctx, c.NewListPager(nil))
		}
		if err != nil {
			return fmt.Errorf("list private DNS zones: %w", err)
		}
		return e.printTable(flattenAll(items), zoneTable)
	})

	del := &cobra.Command{
		Use:     "delete",
		Short:   "Delete a private DNS zone; it must have no virtual network links left",
		Example: "  pglink network private-dns zone delete -g dns-rg -n privatelink.postgres.database.azure.com --yes",
		Args:    cobra.NoArgs,
	}
	named(del)
	del.Flags().BoolVarP(&yes, "yes", "y", false, "do not prompt for confirmation")
	del.Flags().BoolVar(&noWait, "no-wait", false, "do not wait for the deletion to finish")
	del.RunE = e.dnsOp(func(ctx context.Context, s *session, f *armprivatedns.ClientFactory) error {
		if ok, err := e.confirmDelete(yes); !ok || err != nil {
			return err
		}
		poller, err := f.NewPrivateZonesClient().BeginDelete(ctx, g, zoneName(n), nil)
		if err != nil {
			return fmt.Errorf("delete private DNS zone %s: %w", zoneName(n), err)
		}
		if noWait {
			return nil
		}
		if _, err := wait(ctx, e, poller); err != nil {
			return fmt.Errorf("delete private DNS zone %s: %w", zoneName(n), err)
		}
		return nil
	})
	return group("zone", "Manage private DNS zones", create, show, list, del)
}

func (e *env) dnsLinkCmd() *cobra.Command {
	var g, z, n, vnet, reg string
	var tags []string
	var noWait, yes bool
	flags := func(c *cobra.Command, named bool) {
		c.Flags().StringVarP(&g, "resource-group", "g", "", "name of the resource group of the zone")
		c.Flags().StringVarP(&z, "zone-name", "z", "", "name of the private DNS zone")
		required(c, "resource-group", "zone-name")
		if named {
			c.Flags().StringVarP(&n, "name", "n", "", "name of the virtual network link")
			c.MarkFlagRequired("name")
		}
	}
	create := &cobra.Command{
		Use:   "create",
		Short: "Link a virtual network to a private DNS zone, so that names of the zone resolve in it",
		Example: `  pglink network private-dns link vnet create -g dns-rg -z privatelink.postgres.database.azure.com \
    -n app-link -v "$VNET_ID" -e false
  pglink network private-dns link vnet create -g net-rg -z privatelink.postgres.database.azure.com \
    -n app-link --virtual-network app-vnet --registration-enabled false`,
		Args: cobra.ArbitraryArgs, // further --tags values, space-separated as az takes them
	}
	flags(create, true)
	cf := create.Flags()
	cf.StringVarP(&vnet, "virtual-network", "v", "", "name (in --resource-group) or id of the virtual network")
	cf.StringVarP(&reg, "registration-enabled", "e", "", "whether the link auto-registers the network's hosts: true or false")
	cf.StringArrayVar(&tags, "tags", nil, "space-separated tags: key[=value] [key[=value] ...]")
	cf.BoolVar(&noWait, "no-wait", false, "do not wait for the operation to finish")
	required(create, "virtual-network", "registration-enabled")
	var enabled bool
	create.PreRunE = func(c *cobra.Command, _ []string) (err error) {
		if c.Flags().Changed("registration-enabled") { // else cobra says it is required
			enabled, err = threeState("--registration-enabled/-e", reg)
		}
		return err
	}
	create.RunE = e.dnsOp(func(ctx context.Context, s *session, f *armprivatedns.ClientFactory) error {
		vnetID, err := resourceRef("--virtual-network/-v", s.p.SubscriptionID, g, typeVirtualNetwork, vnet)
		if err != nil {
			return err
		}
		vals, err := spaceList(create, "tags", tags)
		if err != nil {
			return err
		}
		t, err := parseTags(vals)
		if err != nil {
			return err
		}
		global, ifNoneMatch := "global", "*"
		link := armprivatedns.VirtualNetworkLink{Location: &global, Tags: t, Properties: &armprivatedns.VirtualNetworkLinkProperties{
			VirtualNetwork: &armprivatedns.SubResource{ID: &vnetID}, RegistrationEnabled: &enabled}}
		var cp capture
		poller, err := f.NewVirtualNetworkLinksClient().BeginCreateOrUpdate(cp.ctx(ctx), g, zoneName(z), n, link,
			&armprivatedns.VirtualNetworkLinksClientBeginCreateOrUpdateOptions{IfNoneMatch: &ifNoneMatch})
		return finish(ctx, e, poller, err, noWait, &cp, linkTable, fmt.Sprintf("create virtual network link %s", n))
	})

	show := &cobra.Command{
		Use:     "show",
		Short:   "Show a virtual network link of a private DNS zone",
		Example: "  pglink network private-dns link vnet show -g dns-rg -z privatelink.postgres.database.azure.com -n app-link",
		Args:    cobra.NoArgs,
	}
	flags(show, true)
	show.RunE = e.dnsOp(func(ctx context.Context, s *session, f *armprivatedns.ClientFactory) error {
		var cp capture
		if _, err := f.NewVirtualNetworkLinksClient().Get(cp.ctx(ctx), g, zoneName(z), n, nil); err != nil {
			return shown(fmt.Errorf("show virtual network link %s: %w", n, err))
		}
		return e.printObject(&cp, linkTable)
	})

	list := &cobra.Command{
		Use:     "list",
		Short:   "List the virtual network links of a private DNS zone",
		Example: "  pglink network private-dns link vnet list -g dns-rg -z privatelink.postgres.database.azure.com -o table",
		Args:    cobra.NoArgs,
	}
	flags(list, false)
	list.RunE = e.dnsOp(func(ctx context.Context, s *session, f *armprivatedns.ClientFactory) error {
		items, err := collect(ctx, f.NewVirtualNetworkLinksClient().NewListPager(g, zoneName(z), nil))
		if err != nil {
			return fmt.Errorf("list virtual network links of %s: %w", zoneName(z), err)
		}
		return e.printTable(flattenAll(items), linkTable)
	})

	del := &cobra.Command{
		Use:     "delete",
		Short:   "Delete a virtual network link; names of the zone stop resolving in that network",
		Example: "  pglink network private-dns link vnet delete -g dns-rg -z privatelink.postgres.database.azure.com -n app-link --yes",
		Args:    cobra.NoArgs,
	}
	flags(del, true)
	del.Flags().BoolVarP(&yes, "yes", "y", false, "do not prompt for confirmation")
	del.Flags().BoolVar(&noWait, "no-wait", false, "do not wait for the deletion to finish")
	del.RunE = e.dnsOp(func(ctx context.Context, s *session, f *armprivatedns.ClientFactory) error {
		if ok, err := e.confirmDelete(yes); !ok || err != nil {
			return err
		}
		poller, err := f.NewVirtualNetworkLinksClient().BeginDelete(ctx, g, zoneName(z), n, nil)
		return finish(ctx, e, poller, err, noWait, nil, nil, fmt.Sprintf("delete virtual network link %s", n))
	})
	return group("vnet", "Manage the virtual network links of a private DNS zone", create, show, list, del)
}

func (e *env) recordSetCmd() *cobra.Command {
	var g, z string
	zoneFlags := func(c *cobra.Command) {
		c.Flags().StringVarP(&g, "resource-group", "g", "", "name of the resource group of the zone")
		c.Flags().StringVarP(&z, "zone-name", "z", "", "name of the private DNS zone")
		required(c, "resource-group", "zone-name")
	}
	list := &cobra.Command{
		Use:     "list",
		Short:   "List the record sets of a private DNS zone, of every type",
		Example: "  pglink network private-dns record-set list -g dns-rg -z privatelink.postgres.database.azure.com -o table",
		Args:    cobra.NoArgs,
	}
	zoneFlags(list)
	list.RunE = e.dnsOp(func(ctx context.Context, s *session, f *armprivatedns.ClientFactory) error {
		items, err := collect(ctx, f.NewRecordSetsClient().NewListPager(g, zoneName(z), nil))
		if err != nil {
			return fmt.Errorf("list record sets of %s: %w", zoneName(z), err)
		}
		return e.printTable(flattenAll(items), recordSetTable)
	})
	return group("record-set", "Manage the record sets of a private DNS zone", list, e.aRecordCmd())
}

func (e *env) aRecordCmd() *cobra.Command {
	var g, z, n, addr string
	var keepEmpty bool
	flags := func(c *cobra.Command, name string) {
		c.Flags().StringVarP(&g, "resource-group", "g", "", "name of the resource group of the zone")
		c.Flags().StringVarP(&z, "zone-name", "z", "", "name of the private DNS zone")
		required(c, "resource-group", "zone-name")
		switch name {
		case "name":
			c.Flags().StringVarP(&n, "name", "n", "", "name of the record set, relative to the zone")
			c.MarkFlagRequired("name")
		case "record-set-name":
			c.Flags().StringVarP(&n, "record-set-name", "n", "", "name of the record set, relative to the zone (@ for the apex)")
			c.Flags().StringVarP(&addr, "ipv4-address", "a", "", "IPv4 address of the record")
			required(c, "record-set-name", "ipv4-address")
		}
	}
	add := &cobra.Command{
		Use:   "add-record",
		Short: "Add an A record to a record set, creating the record set if it does not exist",
		Example: `  pglink network private-dns record-set a add-record -g dns-rg -z privatelink.postgres.database.azure.com \
    -n reports-db -a 10.0.1.7`,
		Args: cobra.NoArgs,
	}
	flags(add, "record-set-name")
	add.RunE = e.dnsOp(func(ctx context.Context, s *session, f *armprivatedns.ClientFactory) error {
		c := f.NewRecordSetsClient()
		zone := zoneName(z)
		// The record set is written only as it was read: If-Match its etag, or If-None-Match
		// when it is new, so that a concurrent change is not lost.
		opts := &armprivatedns.RecordSetsClientCreateOrUpdateOptions{}
		var set armprivatedns.RecordSet
		cur, err := c.Get(ctx, g, zone, armprivatedns.RecordTypeA, n, nil)
		switch {
		case isNotFound(err):
			ttl, star := int64(3600), "*"
			set = armprivatedns.RecordSet{Properties: &armprivatedns.RecordSetProperties{TTL: &ttl}}
			opts.IfNoneMatch = &star
		case err != nil:
			return fmt.Errorf("read A record set %s: %w", n, err)
		default:
			set = armprivatedns.RecordSet{Properties: &armprivatedns.RecordSetProperties{}}
			if cur.Properties != nil {
				set.Properties.TTL, set.Properties.Metadata, set.Properties.ARecords = cur.Properties.TTL, cur.Properties.Metadata, cur.Properties.ARecords
			}
			opts.IfMatch = cur.Etag
		}
		a := addr
		set.Properties.ARecords = append(set.Properties.ARecords, &armprivatedns.ARecord{IPv4Address: &a})
		var cp capture
		if _, err := c.CreateOrUpdate(cp.ctx(ctx), g, zone, armprivatedns.RecordTypeA, n, set, opts); err != nil {
			return fmt.Errorf("add A record %s to %s: %w", addr, n, err)
		}
		return e.printObject(&cp, recordSetTable)
	})

	remove := &cobra.Command{
		Use:   "remove-record",
		Short: "Remove an A record from a record set; the record set goes with its last record",
		Example: `  pglink network private-dns record-set a remove-record -g dns-rg -z privatelink.postgres.database.azure.com \
    -n reports-db -a 10.0.1.7 --keep-empty-record-set`,
		Args: cobra.NoArgs,
	}
	flags(remove, "record-set-name")
	remove.Flags().BoolVar(&keepEmpty, "keep-empty-record-set", false, "keep the record set when its last record is removed")
	remove.RunE = e.dnsOp(func(ctx context.Context, s *session, f *armprivatedns.ClientFactory) error {
		c := f.NewRecordSetsClient()
		zone := zoneName(z)
		cur, err := c.Get(ctx, g, zone, armprivatedns.RecordTypeA, n, nil)
		if err != nil {
			return fmt.Errorf("read A record set %s: %w", n, err)
		}
		props := cur.Properties
		if props == nil {
			props = &armprivatedns.RecordSetProperties{}
		}
		left, found := withoutAddress(props.ARecords, addr)
		if !found {
			return fmt.Errorf("record %s not found in A record set %s", addr, n)
		}
		if len(left) == 0 && !keepEmpty {
			if _, err := c.Delete(ctx, g, zone, armprivatedns.RecordTypeA, n,
				&armprivatedns.RecordSetsClientDeleteOptions{IfMatch: cur.Etag}); err != nil {
				return fmt.Errorf("delete empty A record set %s: %w", n, err)
			}
			return nil
		}
		set := armprivatedns.RecordSet{Properties: &armprivatedns.RecordSetProperties{TTL: props.TTL, Metadata: props.Metadata, ARecords: left}}
		var cp capture
		if _, err := c.CreateOrUpdate(cp.ctx(ctx), g, zone, armprivatedns.RecordTypeA, n, set,
			&armprivatedns.RecordSetsClientCreateOrUpdateOptions{IfMatch: cur.Etag}); err != nil {
			return fmt.Errorf("remove A record %s from %s: %w", addr, n, err)
		}
		return e.printObject(&cp, recordSetTable)
	})

	show := &cobra.Command{
		Use:     "show",
		Short:   "Show an A record set",
		Example: "  pglink network private-dns record-set a show -g dns-rg -z privatelink.postgres.database.azure.com -n orders-db",
		Args:    cobra.NoArgs,
	}
	flags(show, "name")
	show.RunE = e.dnsOp(func(ctx context.Context, s *session, f *armprivatedns.ClientFactory) error {
		var cp capture
		if _, err := f.NewRecordSetsClient().Get(cp.ctx(ctx), g, zoneName(z), armprivatedns.RecordTypeA, n, nil); err != nil {
			return shown(fmt.Errorf("show A record set %s: %w", n, err))
		}
		return e.printObject(&cp, recordSetTable)
	})

	list := &cobra.Command{
		Use:   "list",
		Short: "List the A record sets of a private DNS zone",
		Example: `  pglink network private-dns record-set a list -g dns-rg -z privatelink.postgres.database.azure.com -o table
  pglink network private-dns record-set a list -g dns-rg -z privatelink.postgres.database.azure.com \
    --query "[].{name:name, address:aRecords[0].ipv4Address}" -o tsv`,
		Args: cobra.NoArgs,
	}
	flags(list, "")
	list.RunE = e.dnsOp(func(ctx context.Context, s *session, f *armprivatedns.ClientFactory) error {
		items, err := collect(ctx, f.NewRecordSetsClient().NewListByTypePager(g, zoneName(z), armprivatedns.RecordTypeA, nil))
		if err != nil {
			return fmt.Errorf("list A record sets of %s: %w", zoneName(z), err)
		}
		return e.printTable(flattenAll(items), recordSetTable)
	})
	return group("a", "Manage A record sets", add, remove, show, list)
}

// dnsZoneGroupCmd is `network private-endpoint dns-zone-group`: the zones in which a private
// endpoint's A record is kept.
func (e *env) dnsZoneGroupCmd() *cobra.Command {
	var g, pe, n, zone, configName string
	var noWait bool
	flags := func(c *cobra.Command, named bool) {
		c.Flags().StringVarP(&g, "resource-group", "g", "", "name of the resource group of the private endpoint")
		c.Flags().StringVar(&pe, "endpoint-name", "", "name of the private endpoint")
		required(c, "resource-group", "endpoint-name")
		if named {
			c.Flags().StringVarP(&n, "name", "n", "", "name of the private DNS zone group")
			c.MarkFlagRequired("name")
		}
	}
	create := &cobra.Command{
		Use:   "create",
		Short: "Create a private DNS zone group: the endpoint's A record is written in the zone",
		Example: `  pglink network private-endpoint dns-zone-group create -g net-rg --endpoint-name app-pe -n default \
    --private-dns-zone "$ZONE_ID" --zone-name postgres`,
		Args: cobra.NoArgs,
	}
	flags(create, true)
	create.Flags().StringVar(&zone, "private-dns-zone", "", "name (in --resource-group) or id of the private DNS zone")
	create.Flags().StringVar(&configName, "zone-name", "", "name of the zone's entry in the group")
	create.Flags().BoolVar(&noWait, "no-wait", false, "do not wait for the operation to finish")
	required(create, "private-dns-zone", "zone-name")
	create.RunE = e.netOp(func(ctx context.Context, s *session, nf *armnetwork.ClientFactory) error {
		zoneID, err := resourceRef("--private-dns-zone", s.p.SubscriptionID, g, typePrivateDNSZone, zone)
		if err != nil {
			return err
		}
		zg := armnetwork.PrivateDNSZoneGroup{Name: &n, Properties: &armnetwork.PrivateDNSZoneGroupPropertiesFormat{
			PrivateDNSZoneConfigs: []*armnetwork.PrivateDNSZoneConfig{{Name: &configName,
				Properties: &armnetwork.PrivateDNSZonePropertiesFormat{PrivateDNSZoneID: &zoneID}}}}}
		var cp capture
		poller, err := nf.NewPrivateDNSZoneGroupsClient().BeginCreateOrUpdate(cp.ctx(ctx), g, pe, n, zg, nil)
		return finish(ctx, e, poller, err, noWait, &cp, nil, fmt.Sprintf("create private DNS zone group %s", n))
	})

	show := &cobra.Command{
		Use:   "show",
		Short: "Show a private DNS zone group, with the record sets it wrote",
		Example: `  pglink network private-endpoint dns-zone-group show -g net-rg --endpoint-name app-pe -n default
  pglink network private-endpoint dns-zone-group show -g net-rg --endpoint-name app-pe -n default \
    --query "privateDnsZoneConfigs[].recordSets[].fqdn" -o tsv`,
		Args: cobra.NoArgs,
	}
	flags(show, true)
	show.RunE = e.netOp(func(ctx context.Context, s *session, nf *armnetwork.ClientFactory) error {
		var cp capture
		if _, err := nf.NewPrivateDNSZoneGroupsClient().Get(cp.ctx(ctx), g, pe, n, nil); err != nil {
			return shown(fmt.Errorf("show private DNS zone group %s: %w", n, err))
		}
		return e.printObject(&cp, nil)
	})

	list := &cobra.Command{
		Use:     "list",
		Short:   "List the private DNS zone groups of a private endpoint",
		Example: "  pglink network private-endpoint dns-zone-group list -g net-rg --endpoint-name app-pe -o table",
		Args:    cobra.NoArgs,
	}
	flags(list, false)
	list.RunE = e.netOp(func(ctx context.Context, s *session, nf *armnetwork.ClientFactory) error {
		items, err := collect(ctx, nf.NewPrivateDNSZoneGroupsClient().NewListPager(pe, g, nil))
		if err != nil {
			return fmt.Errorf("list private DNS zone groups of %s: %w", pe, err)
		}
		return e.printTable(flattenAll(items), nil)
	})

	del := &cobra.Command{
		Use:     "delete",
		Short:   "Delete a private DNS zone group; the records it wrote go with it",
		Example: "  pglink network private-endpoint dns-zone-group delete -g net-rg --endpoint-name app-pe -n default",
		Args:    cobra.NoArgs,
	}
	flags(del, true)
	del.Flags().BoolVar(&noWait, "no-wait", false, "do not wait for the deletion to finish")
	del.RunE = e.netOp(func(ctx context.Context, s *session, nf *armnetwork.ClientFactory) error {
		poller, err := nf.NewPrivateDNSZoneGroupsClient().BeginDelete(ctx, g, pe, n, nil)
		return finish(ctx, e, poller, err, noWait, nil, nil, fmt.Sprintf("delete private DNS zone group %s", n))
	})
	return group("dns-zone-group", "Manage the private DNS zone groups of a private endpoint", create, show, list, del)
}
