package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"
	"github.com/spf13/cobra"
)

// resourceGroup is a resource group as az prints it.
type resourceGroup struct {
	ID         string             `json:"id"`
	Location   string             `json:"location"`
	ManagedBy  *string            `json:"managedBy"`
	Name       string             `json:"name"`
	Properties map[string]any     `json:"properties"`
	Tags       map[string]*string `json:"tags"`
	Type       string             `json:"type"`
}

func groupOut(g armresources.ResourceGroup) resourceGroup {
	out := resourceGroup{ID: deref(g.ID), Location: deref(g.Location), ManagedBy: g.ManagedBy, Name: deref(g.Name),
		Tags: g.Tags, Type: deref(g.Type)}
	if g.Properties != nil {
		out.Properties = map[string]any{"provisioningState": g.Properties.ProvisioningState}
	}
	return out
}

// groupTable is az's table of resource groups.
func groupTable(g map[string]any) ([]cell, bool) {
	props, _ := g["properties"].(map[string]any)
	return []cell{{"Name", g["name"]}, {"Location", g["location"]}, {"Status", props["provisioningState"]}}, g["name"] != nil
}

// groups is the resource group client of the profile's subscription.
func (s *session) groups() (*armresources.ResourceGroupsClient, error) {
	return armresources.NewResourceGroupsClient(s.p.SubscriptionID, s.cred, s.armOptions())
}

// parseTags parses az's --tags: "k=v" or "k" (empty value), each a separate argument.
func parseTags(tags []string) (map[string]*string, error) {
	if tags == nil {
		return nil, nil
	}
	m := map[string]*string{}
	for _, t := range tags {
		if t == "" || t == `""` {
			continue
		}
		k, v, _ := strings.Cut(t, "=")
		if k == "" {
			return nil, usagef("argument --tags: '%s' is not KEY[=VALUE]", t)
		}
		m[k] = &v
	}
	return m, nil
}

func (e *env) groupCmd() *cobra.Command {
	var name, location string
	var tags []string
	create := &cobra.Command{
		Use:     "create",
		Short:   "Create a new resource group, or update an existing one",
		Example: "  pglink group create -n rg1 -l eastus --tags env=test team=db",
		Args:    cobra.NoArgs,
	}
	create.Flags().StringVarP(&name, "name", "n", "", "name of the resource group")
	create.Flags().StringVarP(&location, "location", "l", "", "location, e.g. eastus")
	create.Flags().StringArrayVar(&tags, "tags", nil, "space-separated tags: key[=value] [key[=value] ...]")
	create.MarkFlagRequired("name")
	create.MarkFlagRequired("location")
	create.RunE = e.run(func(ctx context.Context, cmd *cobra.Command) error {
		if len(cmd.Flags().Args()) > 0 && !cmd.Flags().Changed("tags") {
			return usagef("unrecognized arguments: %s", strings.Join(cmd.Flags().Args(), " "))
		}
		t, err := parseTags(append(tags, cmd.Flags().Args()...))
		if err != nil {
			return err
		}
		s, err := e.session()
		if err != nil {
			return err
		}
		client, err := s.groups()
		if err != nil {
			return err
		}
		resp, err := client.CreateOrUpdate(ctx, name, armresources.ResourceGroup{Location: &location, Tags: t}, nil)
		if err != nil {
			return fmt.Errorf("create resource group %s: %w", name, err)
		}
		return e.printTable(groupOut(resp.ResourceGroup), groupTable)
	})
	create.Args = cobra.ArbitraryArgs // further --tags values, space-separated as az takes them

	list := &cobra.Command{
		Use:     "list",
		Short:   "List the resource groups of the subscription",
		Example: "  pglink group list -o table\n  pglink group list --query \"[?location=='eastus'].name\" -o tsv",
		Args:    cobra.NoArgs,
	}
	list.RunE = e.run(func(ctx context.Context, cmd *cobra.Command) error {
		s, err := e.session()
		if err != nil {
			return err
		}
		client, err := s.groups()
		if err != nil {
			return err
		}
		out := []resourceGroup{}
		for pager := client.NewListPager(nil); pager.More(); {
			page, err := pager.NextPage(ctx)
			if err != nil {
				return fmt.Errorf("list resource groups: %w", err)
			}
			for _, g := range page.Value {
				out = append(out, groupOut(*g))
			}
		}
		return e.printTable(out, groupTable)
	})

	show := &cobra.Command{
		Use:     "show",
		Short:   "Show a resource group",
		Example: "  pglink group show -n rg1",
		Args:    cobra.NoArgs,
	}
	show.Flags().StringVarP(&name, "name", "n", "", "name of the resource group")
	show.MarkFlagRequired("name")
	show.RunE = e.run(func(ctx context.Context, cmd *cobra.Command) error {
		s, err := e.session()
		if err != nil {
			return err
		}
		client, err := s.groups()
		if err != nil {
			return err
		}
		resp, err := client.Get(ctx, name, nil)
		if err != nil {
			return shown(fmt.Errorf("show resource group %s: %w", name, err))
		}
		return e.printTable(groupOut(resp.ResourceGroup), groupTable)
	})

	exists := &cobra.Command{
		Use:     "exists",
		Short:   "Print true if a resource group exists, else false",
		Example: "  pglink group exists -n rg1",
		Args:    cobra.NoArgs,
	}
	exists.Flags().StringVarP(&name, "name", "n", "", "name of the resource group")
	exists.MarkFlagRequired("name")
	exists.RunE = e.run(func(ctx context.Context, cmd *cobra.Command) error {
		s, err := e.session()
		if err != nil {
			return err
		}
		client, err := s.groups()
		if err != nil {
			return err
		}
		resp, err := client.CheckExistence(ctx, name, nil)
		if err != nil {
			return fmt.Errorf("check resource group %s: %w", name, err)
		}
		return e.print(resp.Success)
	})

	var yes, noWait bool
	del := &cobra.Command{
		Use:     "delete",
		Short:   "Delete a resource group and everything in it",
		Example: "  pglink group delete -n rg1 --yes\n  pglink group delete -n rg1 --yes --no-wait",
		Args:    cobra.NoArgs,
	}
	del.Flags().StringVarP(&name, "name", "n", "", "name of the resource group")
	del.Flags().BoolVarP(&yes, "yes", "y", false, "do not prompt for confirmation")
	del.Flags().BoolVar(&noWait, "no-wait", false, "do not wait for the deletion to finish")
	del.MarkFlagRequired("name")
	del.RunE = e.run(func(ctx context.Context, cmd *cobra.Command) error {
		if !yes {
			ok, err := e.confirm("Are you sure you want to perform this operation?")
			if err != nil {
				return err
			}
			if !ok {
				return nil
			}
		}
		s, err := e.session()
		if err != nil {
			return err
		}
		client, err := s.groups()
		if err != nil {
			return err
		}
		poller, err := client.BeginDelete(ctx, name, nil)
		return finish(ctx, e, poller, err, noWait, nil, nil, fmt.Sprintf("delete resource group %s", name))
	})
	return group("group", "Manage resource groups", create, list, show, exists, del)
}
