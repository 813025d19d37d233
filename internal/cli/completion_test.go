package cli

import (
	"bytes"
	"strings"
	"testing"
)

func TestCompletion(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"completion", "bash"}, []string{"# bash completion V2 for pglink"}},
		{[]string{"completion", "zsh"}, []string{"#compdef pglink"}},
		{[]string{"completion", "fish"}, []string{"complete -c pglink"}},
		// flag values complete too
		{[]string{"__complete", "network", "private-endpoint-connection", "list", "--type", ""}, []string{flexibleServerType}},
		{[]string{"__complete", "postgres", "flexible-server", "private-endpoint-connection", "list", "--status", ""}, []string{"Pending", "Disconnected"}},
		{[]string{"__complete", "postgres", "flexible-server", "update", "--public-access", ""}, []string{"Enabled", "Disabled"}},
		{[]string{"__complete", "network", ""}, []string{"vnet", "private-endpoint", "private-endpoint-connection", "private-link-resource"}},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		if code := Run(t.Context(), tt.args, strings.NewReader(""), &stdout, &stderr); code != 0 {
			t.Errorf("Run(%q) = %d, stderr %q; want 0", tt.args, code, stderr.String())
		}
		for _, w := range tt.want {
			if !strings.Contains(stdout.String(), w) {
				t.Errorf("Run(%q) printed no %q:\n%s", tt.args, w, stdout.String())
			}
		}
	}
}
