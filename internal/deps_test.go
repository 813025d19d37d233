// Package internal_test keeps the dependency rules of DESIGN.md true: dependencies point
// inward, adapters never import each other, and only server and cmd wire everything.
package internal_test

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/pglink/pglink/"

type pkg struct {
	ImportPath string
	Imports    []string
}

func packages(t *testing.T) []pkg {
	t.Helper()
	out, err := exec.Command("go", "list", "-json", module+"...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

func TestDependenciesPointInward(t *testing.T) {
	// allowed lists, per package (by path below the module), the project packages it may
	// import; a prefix ending in "/" allows a subtree. Packages not listed may import anything
	// except what forbidden says.
	allowed := map[string][]string{
		"internal/resource":  {},
		"internal/store":     {},
		"internal/identity":  {},
		"internal/portal":    {}, // static files; it calls the API from the browser
		"internal/cli":       {}, // a client: it speaks to pglink over the wire only
		"internal/authz":     {"internal/resource"},
		"internal/engine":    {"internal/resource"},
		"internal/activity":  {"internal/resource", "internal/store"},
		"internal/operation": {"internal/resource", "internal/store", "internal/activity"},
	}
	forbidden := map[string][]string{
		"internal/arm":                  {"internal/store/", "internal/providers/", "internal/server"},
		"internal/operation":            {"internal/store/"},
		"internal/gateway":              {"internal/store/", "internal/providers/", "internal/server"},
		"internal/providers/postgresql": {"internal/providers/network", "internal/providers/resources", "internal/store/"},
		"internal/providers/network":    {"internal/providers/postgresql", "internal/providers/resources", "internal/store/"},
		"internal/providers/resources":  {"internal/providers/postgresql", "internal/providers/network", "internal/store/"},
		"internal/providers/authorization": {"internal/providers/postgresql", "internal/providers/network", "internal/providers/resources",
			"internal/providers/insights", "internal/store/"},
		"internal/store/sqlite":   {"internal/store/postgres"},
		"internal/store/postgres": {"internal/store/sqlite"},
	}
	for _, p := range packages(t) {
		name := strings.TrimPrefix(p.ImportPath, module)
		for _, imp := range p.Imports {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			dep := strings.TrimPrefix(imp, module)
			if list, ok := allowed[name]; ok && !matches(dep, list) {
				t.Errorf("%s imports %s; it may import only %v", name, dep, list)
			}
			if matches(dep, forbidden[name]) {
				t.Errorf("%s imports %s, which it must not", name, dep)
			}
			if dep == "internal/server" && !strings.HasPrefix(name, "cmd/") && !strings.HasPrefix(name, "bench/") && name != "e2e" {
				t.Errorf("%s imports internal/server; only cmd/, bench/ and e2e may", name)
			}
		}
	}
}

func matches(dep string, list []string) bool {
	for _, a := range list {
		if dep == a || strings.HasSuffix(a, "/") && strings.HasPrefix(dep, a) {
			return true
		}
	}
	return false
}
