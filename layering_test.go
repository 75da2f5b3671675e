package deploy_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The root package imports no package of this module and nothing outside
// the standard library but go-hclog (and what go-hclog needs).
func TestLayering(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	allowed := []string{"github.com/hashicorp/go-hclog", "github.com/fatih/color", "github.com/mattn/go-colorable", "github.com/mattn/go-isatty", "golang.org/x/sys/"}
	for _, pkg := range strings.Fields(string(out)) {
		if pkg == "github.com/cutover/deploy" {
			continue
		}
		ok := false
		for _, a := range allowed {
			ok = ok || strings.HasPrefix(pkg, a)
		}
		if !ok {
			t.Errorf("the root package depends on %s", pkg)
		}
	}
}
