package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
)

// nodeCmd is `pglink node`: the data-plane nodes of the control plane, from pglink's admin API
// (GET /pglink/v1/nodes), which needs Microsoft.Pglink/nodes/read at the root scope.
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
	return group("node", "Data-plane nodes of a replicated pglink", list)
}
