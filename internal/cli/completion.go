package cli

import (
	"context"

	"github.com/spf13/cobra"
)

// completionCmd prints a shell completion script for root, as cobra writes them.
func (e *env) completionCmd(root *cobra.Command) *cobra.Command {
	c := &cobra.Command{
		Use:   "completion bash|zsh|fish",
		Short: "Print a shell completion script",
		Long: `Print a completion script for bash, zsh or fish. Load it in the current shell, or install it
where your shell reads completions.`,
		Example: `  source <(pglink completion bash)
  pglink completion zsh > "${fpath[1]}/_pglink"
  pglink completion fish > ~/.config/fish/completions/pglink.fish`,
		ValidArgs: []string{"bash", "zsh", "fish"},
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("give one shell: bash, zsh or fish")
			}
			return nil
		},
	}
	c.RunE = func(cmd *cobra.Command, args []string) error {
		return e.run(func(ctx context.Context, cmd *cobra.Command) error {
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(e.stdout, true)
			case "zsh":
				return root.GenZshCompletion(e.stdout)
			case "fish":
				return root.GenFishCompletion(e.stdout, true)
			}
			return usagef("argument shell: invalid choice: '%s' (choose from bash, zsh, fish)", args[0])
		})(cmd, args)
	}
	return c
}
