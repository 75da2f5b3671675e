package deploy_test

import (
	"fmt"

	"github.com/cutover/deploy"
)

// The zero RestartPolicy is Fly's default for deployed machines: restart a
// crashed machine (non-zero exit) up to 10 times.
func ExampleRestartPolicy() {
	var p deploy.RestartPolicy
	fmt.Println(p)
	fmt.Println("restart after a SIGKILL:", p.Restarts(137, 0))
	fmt.Println("restart after a clean exit:", p.Restarts(0, 0))
	fmt.Println("restart after 10 restarts:", p.Restarts(137, 10))
	fmt.Println(deploy.RestartPolicy{Policy: deploy.RestartAlways})
	// Output:
	// on-failure (10 retries)
	// restart after a SIGKILL: true
	// restart after a clean exit: false
	// restart after 10 restarts: false
	// always
}
