// Package cli is pglink's az-style command line: `pglink login`, `account`, `group`, `role`,
// `ad`, `postgres flexible-server`, `network`, `monitor activity-log` and `completion`, with
// az's flags, output formats, --query and exit codes. ARM calls go through the Azure SDK for
// Go; directory calls go to pglink's Microsoft Graph-shaped API. Each command reads the login
// from a profile in the config directory ($PGLINK_CONFIG_DIR, default ~/.pglink).
package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// env is what one run of the CLI works with: its streams, config directory and global flags.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	configDir      string
	output         string // -o
	query          string // --query
	quiet          bool   // --only-show-errors
	now            func() time.Time
	in             *bufio.Reader // stdin, buffered for prompts
}

// usageError is a mistake in the command line: exit code 2.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

// Usage marks err as a usage error, so that Run exits with code 2.
func Usage(err error) error { return usageError{err} }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// exitCode ends a run with code after the command has said what it had to.
type exitCode int

func (c exitCode) Error() string { return fmt.Sprintf("exit status %d", int(c)) }

// Exit returns an error that makes Run return code without printing anything more.
func Exit(code int) error { return exitCode(code) }

// failure is an error a command returned while running (not a usage error): exit code 1.
type failure struct{ err error }

func (f failure) Error() string { return f.err.Error() }
func (f failure) Unwrap() error { return f.err }

// Run runs the pglink command line args (without the program name) and returns the exit
// code: 0 on success, 1 when the command failed, 2 on a usage error, 3 when show found no such
// resource. extra are more commands for the root (cmd/pglink adds serve and gateway). Errors go
// to stderr as az prints them.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, extra ...*cobra.Command) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr, now: time.Now, in: bufio.NewReader(stdin)}
	e.configDir = os.Getenv("PGLINK_CONFIG_DIR")
	if e.configDir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			fmt.Fprintf(stderr, "ERROR: find the config directory: %v: set PGLINK_CONFIG_DIR\n", err)
			return 1
		}
		e.configDir = filepath.Join(home, ".pglink")
	}
	root := e.root()
	root.AddCommand(extra...)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	return e.exit(cmd, err)
}

// exit prints err as az does and returns the exit code for it.
func (e *env) exit(cmd *cobra.Command, err error) int {
	if err == nil {
		return 0
	}
	var code exitCode
	if errors.As(err, &code) {
		return int(code)
	}
	var m missingError
	if errors.As(err, &m) && !errors.As(err, new(usageError)) {
		fmt.Fprintln(e.stderr, "ERROR: "+describe(m.err))
		return 3
	}
	var f failure
	if errors.As(err, &f) && !errors.As(err, new(usageError)) {
		fmt.Fprintln(e.stderr, "ERROR: "+describe(f.err))
		return 1
	}
	// Cobra's own errors (unknown command or flag, missing required flag) are usage errors.
	fmt.Fprintln(e.stderr, "ERROR: "+err.Error())
	if cmd != nil {
		fmt.Fprintf(e.stderr, "Run '%s -h' for help.\n", cmd.CommandPath())
	}
	return 2
}

// root builds the command tree.
func (e *env) root() *cobra.Command {
	root := &cobra.Command{
		Use:   "pglink",
		Short: "A self-hosted, Azure-compatible control plane for PostgreSQL flexible servers with Private Link",
		Long: `pglink runs an Azure Resource Manager-compatible API for PostgreSQL flexible servers with
Private Link ('pglink serve'), and is its az-style command line: log in, then manage resource
groups, roles, the directory, flexible servers, virtual networks, private endpoints and their
connections, private DNS zones, and read the activity log, with az's commands, flags and output
formats.`,
		Example: `  pglink serve --data-dir data
  pglink login --bootstrap data/bootstrap.json
  pglink group create -n rg1 -l eastus
  pglink network private-endpoint-connection approve --description "approved by the DBA team" \
    --resource-group rg1 --resource-name orders-db --type Microsoft.DBforPostgreSQL/flexibleServers --name app-pe.1b2c…`,
		SilenceErrors: true,
		SilenceUsage:  true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("unknown command %q for %q", args[0], cmd.CommandPath())
			}
			cmd.SetOut(e.stderr)
			cmd.Help()
			return Exit(2)
		},
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return Usage(err) })
	pf := root.PersistentFlags()
	pf.StringVarP(&e.output, "output", "o", "json", "output format: json, jsonc, table, tsv, yaml, yamlc or none")
	pf.StringVar(&e.query, "query", "", "JMESPath query string; see http://jmespath.org/ for examples")
	pf.BoolVar(&e.quiet, "only-show-errors", false, "only show errors, suppressing warnings")
	root.AddCommand(e.loginCmd(), e.logoutCmd(), e.accountCmd(), e.groupCmd(), e.roleCmd(), e.adCmd(),
		e.postgresCmd(), e.networkCmd(), e.monitorCmd(), e.nodeCmd(), e.completionCmd(root))
	return root
}

// group returns a command that only holds subcommands.
func group(use, short string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmd.Help()
		},
	}
	c.AddCommand(subs...)
	return c
}

// run adapts a command's body: it checks the output flags first and marks what the body
// returns as a failure (exit 1) unless it is a usage error.
func (e *env) run(fn func(ctx context.Context, cmd *cobra.Command) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		if err := e.checkOutput(); err != nil {
			return err
		}
		err := fn(cmd.Context(), cmd)
		if err == nil || errors.As(err, new(usageError)) || errors.As(err, new(exitCode)) {
			return err
		}
		return failure{err}
	}
}

// warn prints a warning on stderr as az does.
func (e *env) warn(format string, a ...any) {
	if e.quiet {
		return
	}
	fmt.Fprintf(e.stderr, "WARNING: "+format+"\n", a...)
}

// confirm asks a yes/no question on stderr and reads the answer from stdin.
func (e *env) confirm(question string) (bool, error) {
	fmt.Fprintf(e.stderr, "%s (y/n): ", question)
	line, err := e.in.ReadString('\n')
	if err != nil && line == "" {
		return false, errors.New("unable to prompt for confirmation as there is no input: use --yes")
	}
	a := strings.ToLower(strings.TrimSpace(line))
	return a == "y" || a == "yes", nil
}

// prompt reads a line from stdin after printing label on stderr.
func (e *env) prompt(label string) (string, error) {
	fmt.Fprint(e.stderr, label)
	line, err := e.in.ReadString('\n')
	if err != nil && line == "" {
		return "", fmt.Errorf("read %s: no input", strings.TrimSuffix(strings.TrimSpace(label), ":"))
	}
	return strings.TrimRight(line, "\r\n"), nil
}
