package cli

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

var groups = []map[string]any{
	{"id": "/subscriptions/s/resourceGroups/rg1", "location": "eastus", "managedBy": nil, "name": "rg1",
		"properties": map[string]any{"provisioningState": "Succeeded"}, "tags": map[string]any{"env": "test"}, "type": "Microsoft.Resources/resourceGroups"},
	{"id": "/subscriptions/s/resourceGroups/rg2", "location": "westus", "managedBy": nil, "name": "rg2",
		"properties": map[string]any{"provisioningState": "Deleting"}, "tags": nil, "type": "Microsoft.Resources/resourceGroups"},
}

func printed(t *testing.T, output, query string, v any) string {
	t.Helper()
	var out bytes.Buffer
	e := &env{stdout: &out, output: output, query: query}
	if err := e.checkOutput(); err != nil {
		t.Fatalf("-o %s --query %q: %v", output, query, err)
	}
	if err := e.print(v); err != nil {
		t.Fatalf("print -o %s --query %q: %v", output, query, err)
	}
	return out.String()
}

func TestOutputFormats(t *testing.T) {
	tests := []struct {
		output, query string
		v             any
		want          string
	}{
		{"json", "", map[string]any{"b": 1, "a": []any{"x<y", true, nil}, "c": map[string]any{}, "d": "é"},
			"{\n  \"a\": [\n    \"x<y\",\n    true,\n    null\n  ],\n  \"b\": 1,\n  \"c\": {},\n  \"d\": \"é\"\n}\n"},
		{"json", "", []any{}, "[]\n"},
		{"jsonc", "", map[string]any{"a": "x", "b": 2},
			"{\n  \x1b[94m\"a\"\x1b[0m: \x1b[32m\"x\"\x1b[0m,\n  \x1b[94m\"b\"\x1b[0m: \x1b[36m2\x1b[0m\n}\n"},
		{"table", "", groups,
			"Location  Name\n--------  ----\neastus    rg1\nwestus    rg2\n"},
		{"table", "[].name", groups, "Result\n------\nrg1\nrg2\n"},
		{"table", "[].{Group:name, State:properties.provisioningState}", groups,
			"Group  State\n-----  ---------\nrg1    Succeeded\nrg2    Deleting\n"},
		{"tsv", "", groups,
			"/subscriptions/s/resourceGroups/rg1\teastus\tNone\trg1\t\t\tMicrosoft.Resources/resourceGroups\n" +
				"/subscriptions/s/resourceGroups/rg2\twestus\tNone\trg2\t\tNone\tMicrosoft.Resources/resourceGroups\n"},
		{"tsv", "[].name", groups, "rg1\nrg2\n"},
		{"tsv", "[0].[name, location, length(keys(tags))]", groups, "rg1\neastus\n1\n"},
		{"tsv", "[].[name, location]", groups, "rg1\teastus\nrg2\twestus\n"},
		{"yaml", "[0].{name:name, tags:tags}", groups, "name: rg1\ntags:\n  env: test\n"},
		{"yaml", "[?name=='rg2'].properties", groups, "- provisioningState: Deleting\n"},
		{"none", "", groups, ""},
		{"json", "[?location=='westus'].name | [0]", groups, "\"rg2\"\n"},
		{"json", "length(@)", groups, "2\n"},
	}
	for _, tt := range tests {
		if got := printed(t, tt.output, tt.query, tt.v); got != tt.want {
			t.Errorf("print(-o %s --query %q) =\n%q\nwant\n%q", tt.output, tt.query, got, tt.want)
		}
	}
}

func TestOutputTableView(t *testing.T) {
	var out bytes.Buffer
	e := &env{stdout: &out, output: "table"}
	if err := e.printTable(groups, groupTable); err != nil {
		t.Fatal(err)
	}
	want := "Name  Location  Status\n----  --------  ---------\nrg1   eastus    Succeeded\nrg2   westus    Deleting\n"
	if out.String() != want {
		t.Errorf("group table =\n%s\nwant\n%s", out.String(), want)
	}
}

func TestOutputResourceGroupField(t *testing.T) {
	in := []any{
		map[string]any{"id": "/subscriptions/s/resourceGroups/db/providers/Microsoft.Authorization/roleAssignments/a"},
		map[string]any{"id": "/subscriptions/s/resourceGroups/db"},
		map[string]any{"id": "/subscriptions/s/providers/Microsoft.Authorization/roleAssignments/a"},
		map[string]any{"id": "/subscriptions/s/resourceGroups/db/providers/X/y/z", "resourceGroup": "kept"},
	}
	got := printed(t, "json", "[].resourceGroup", in)
	if want := "[\n  \"db\",\n  \"kept\"\n]\n"; got != want {
		t.Errorf("resourceGroup fields = %s; want %s", got, want)
	}
}

func TestOutputUsageErrors(t *testing.T) {
	for _, e := range []*env{{output: "xml"}, {output: "json", query: "[?"}} {
		err := e.checkOutput()
		if !errors.As(err, new(usageError)) {
			t.Errorf("checkOutput(-o %s --query %q) = %v; want a usage error", e.output, e.query, err)
		}
	}
}

func TestRunExitCodes(t *testing.T) {
	t.Setenv("PGLINK_CONFIG_DIR", t.TempDir())
	tests := []struct {
		args      []string
		code      int
		errSubstr string
	}{
		{[]string{"no-such-command"}, 2, `unknown command "no-such-command"`},
		{[]string{"group", "create", "-n", "x"}, 2, `required flag(s) "location" not set`},
		{[]string{"group", "list", "--bogus"}, 2, "unknown flag: --bogus"},
		{[]string{"group", "list", "-o", "xml"}, 2, "invalid choice: 'xml'"},
		{[]string{"group", "list"}, 1, "please run 'pglink login'"},
		{[]string{"account", "show"}, 1, "please run 'pglink login'"},
		{[]string{"logout"}, 1, "there are no active accounts"},
		{[]string{"login", "-u", "x"}, 2, "--endpoint is required"},
		{[]string{"role", "assignment", "create", "--role", "Reader"}, 2, "--assignee"},
		{[]string{"ad", "sp", "create-for-rbac", "--name", "x", "--role", "Reader"}, 2, "specify both --role and --scopes"},
		{[]string{"group", "list", "-h"}, 0, ""},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		code := Run(t.Context(), tt.args, strings.NewReader(""), &stdout, &stderr)
		if code != tt.code || !strings.Contains(stderr.String(), tt.errSubstr) {
			t.Errorf("Run(%q) = %d, stderr %q; want %d and %q", tt.args, code, stderr.String(), tt.code, tt.errSubstr)
		}
	}
}

// TestEveryCommandHasAnExample: -h of every command that runs shows at least one example.
func TestEveryCommandHasAnExample(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.HasSubCommands() {
			for _, sub := range c.Commands() {
				if sub.Name() != "help" {
					walk(sub)
				}
			}
			return
		}
		if !strings.Contains(c.Example, "pglink "+c.Name()) && !strings.Contains(c.Example, " "+c.Name()+" ") {
			t.Errorf("%s: no example in -h", c.CommandPath())
		}
	}
	walk((&env{}).root())
}

func TestConfirmPrompt(t *testing.T) {
	t.Setenv("PGLINK_CONFIG_DIR", t.TempDir())
	tests := []struct {
		stdin string
		code  int
		want  string
	}{
		{"n\n", 0, "Are you sure you want to perform this operation? (y/n): "},
		{"", 1, "unable to prompt for confirmation as there is no input: use --yes"},
		{"y\n", 1, "please run 'pglink login'"}, // confirmed: on to the server, and nobody is logged in
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		code := Run(t.Context(), []string{"group", "delete", "-n", "rg1"}, strings.NewReader(tt.stdin), &stdout, &stderr)
		if code != tt.code || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("group delete with stdin %q: exit %d, stderr %q; want %d and %q", tt.stdin, code, stderr.String(), tt.code, tt.want)
		}
	}
}
