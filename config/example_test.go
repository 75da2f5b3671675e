package config_test

import (
	"fmt"

	"github.com/cutover/deploy/config"
)

func Example() {
	cfg, err := config.Parse([]byte(`
app = "web"
kill_signal = "SIGINT"
kill_timeout = 5                      # seconds

[build]
  image = "registry.example.com/web:42"

[deploy]
  strategy = "bluegreen"
  release_command = "bin/rails db:migrate"

[http_service]
  internal_port = 3000
  [[http_service.checks]]
    path = "/up"
    interval = 10000                  # milliseconds, the old format
    timeout = "2s"

[[vm]]
  size = "shared-cpu-1x"
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	plan, err := cfg.Plan()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(plan.StrategyName, plan.Spec.Image, plan.Spec.Port, plan.Spec.StopSignal, plan.Spec.StopTimeout)
	fmt.Printf("release command %q within %v\n", plan.ReleaseCommand, plan.ReleaseCommandTimeout)
	for _, c := range plan.Checks {
		fmt.Println(c.Name, c.Type, c.Port, c.Path, c.Interval, c.Timeout)
	}
	for _, w := range plan.Warnings {
		fmt.Println("warning:", w)
	}

	_, err = config.Parse([]byte("[deploy]\n  strategy = \"blue-green\"\n"))
	fmt.Println(err)
	// Output:
	// bluegreen registry.example.com/web:42 3000 SIGINT 5s
	// release command ["bin/rails" "db:migrate"] within 5m0s
	// http_service.checks[0] http 3000 /up 10s 2s
	// warning: vm: machine sizes are the backend's; not applied
	// line 2, column 3: deploy.strategy: unknown strategy "blue-green" (want rolling, bluegreen, canary or immediate)
}

// A fly.toml with two process groups: web serves, worker has no service.
func Example_processGroups() {
	cfg, err := config.Parse([]byte(`
app = "shop"
[build]
  image = "shop:7"
[processes]
  web = ""                         # the image's own command
  worker = "bin/worker --queue orders"
[http_service]
  internal_port = 8080
  processes = ["web"]
  [http_service.concurrency]
    type = "requests"
    soft_limit = 20
    hard_limit = 25
[checks.metrics]
  type = "http"
  port = 9091
  path = "/metrics"
  processes = ["worker"]
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	plan, err := cfg.Plan()
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, g := range plan.Groups {
		fmt.Printf("%s: cmd %q port %d ports %v no service %v checks %d\n", g.Name, g.Spec.Cmd, g.Spec.Port, g.Spec.Ports, g.Spec.NoService, len(g.Checks))
	}
	fmt.Printf("concurrency %+v\n", *plan.Concurrency)
	// Output:
	// web: cmd [] port 8080 ports [] no service false checks 0
	// worker: cmd ["bin/worker" "--queue" "orders"] port 0 ports [9091] no service true checks 1
	// concurrency {Type:requests SoftLimit:20 HardLimit:25}
}
