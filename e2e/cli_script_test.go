package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCLIScript runs examples/cli.sh (the README's steps for the pglink CLI) with the built
// pglink binary on PATH and a fresh HOME, so the default config directory ~/.pglink is used, as
// a new user would.
func TestCLIScript(t *testing.T) {
	requireTool(t, "bash")
	bin := buildPglink(t)
	in := start(t, nil)
	home := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "../examples/cli.sh")
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PGLINK_CONFIG_DIR=") && !strings.HasPrefix(kv, "PATH=") && !strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, "PGLINK_DATA="+in.dir, "HOME="+home, "PATH="+filepath.Dir(bin)+":"+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("examples/cli.sh: %v\n%s", err, out)
	}
	t.Logf("examples/cli.sh:\n%s", out)
	for _, want := range []string{"PostgreSQL Flexible Server Administrator", "Connection Approver", "db-automation", "(AuthorizationFailed)"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("examples/cli.sh printed no %q", want)
		}
	}
	if st, err := os.Stat(filepath.Join(home, ".pglink", "profile.json")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("~/.pglink/profile.json: %v; want it there, mode 0600", err)
	}
	for _, dir := range []string{".pglink-automation", ".pglink-dana"} {
		if _, err := os.Stat(filepath.Join(home, dir, "profile.json")); !os.IsNotExist(err) {
			t.Errorf("~/%s/profile.json after logout: %v; want it gone", dir, err)
		}
	}
}
