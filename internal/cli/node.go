package cli

import (
	"context"
	"fmt"
	"net/url"

	"github.com/spf13/cobra"
)

// nodeCmd is `pglink node`: the data-plane nodes of the control plane, from pglink's admin API
// (GET /pglink/v1/nodes, DELETE /pglink/v1/nodes/{name}), which needs Microsoft.Pglink/nodes/read
// or /delete at the root scope.
func (e *env) nodeCmd() *cobra.Command {
	list := &cobra.Command{
		Use:     "list",
		Short:   "List data-plane nodes: their status, zone, network and servers",
		Example: "  pglink node list -o table",
		Args:    cobra.NoArgs,
	}
	list.RunE = e.run(func(ctx context.Context, cmd *cobra.Command) error {
		s, err := e.session()
		if err != nil {
			return err
		}
		items, _, err := s.admin().list(ctx, "/nodes", true)
		if err != nil {
			return fmt.Errorf("list nodes: %w", err)
		}
		return e.print(orEmpty(items))
	})

	var name string
	remove := &cobra.Command{
		Use:   "remove",
		Short: "Remove a node that is gone for good; its servers' operations go to the other nodes",
		Long: `Remove a data-plane node that will not come back (its host is lost). The node must not be
Available. Its servers keep their records and report Unreachable; operations waiting for the node
run on another node, so the servers can be deleted. A removed node that starts again registers anew.`,
		Example: "  pglink node remove --name node-2",
		Args:    cobra.NoArgs,
	}
	remove.Flags().StringVarP(&name, "name", "n", "", "the node's name")
	remove.MarkFlagRequired("name")
	remove.RunE = e.run(func(ctx context.Context, cmd *cobra.Command) error {
		s, err := e.session()
		if err != nil {
			return err
		}
		if err := s.admin().do(ctx, "DELETE", "/nodes/"+url.PathEscape(name), nil, nil); err != nil {
			return fmt.Errorf("remove node %s: %w", name, err)
		}
		return nil
	})
	return group("node", "Data-plane nodes of a replicated pglink", list, remove)
}
