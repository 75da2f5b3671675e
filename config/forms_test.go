package config_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	deploy "github.com/cutover/deploy"
	"github.com/cutover/deploy/config"
)

// The forms flyctl's loader (internal/appconfig, patches.go) reads besides
// the current ones, each loaded as flyctl loads it or rejected with its error.

func loadForm(t *testing.T, name string) (*config.Config, config.Plan) {
	t.Helper()
	c, err := config.Load(filepath.Join("testdata", "forms", name))
	require.NoError(t, err)
	p, err := c.Plan()
	require.NoError(t, err)
	return c, p
}

func formErr(t *testing.T, name string) *config.Error {
	t.Helper()
	_, err := config.Load(filepath.Join("testdata", "forms", name))
	require.Error(t, err)
	assert.ErrorIs(t, err, config.ErrInvalid)
	var ce *config.Error
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, name, ce.File)
	return ce
}

func TestFormProcessesArray(t *testing.T) {
	c, p := loadForm(t, "processes-array.toml")
	assert.Equal(t, map[string]string{"web": "bin/server --port 8080", "worker": "bin/worker --queue default", "cron": ""}, c.Processes)
	require.Len(t, p.Groups, 3)
	assert.Equal(t, []string{"cron", "web", "worker"}, []string{p.Groups[0].Name, p.Groups[1].Name, p.Groups[2].Name})
	cron, web, worker := p.Groups[0], p.Groups[1], p.Groups[2]
	assert.Nil(t, cron.Spec.Cmd, "no command: the image's own")
	assert.True(t, cron.Spec.NoService)
	assert.Equal(t, []string{"bin/server", "--port", "8080"}, web.Spec.Cmd)
	assert.Equal(t, 8080, web.Spec.Port)
	assert.False(t, web.Spec.NoService)
	assert.Equal(t, []string{"bin/worker", "--queue", "default"}, worker.Spec.Cmd)
	assert.Zero(t, worker.Spec.Port)
	assert.True(t, worker.Spec.NoService)
	assert.Equal(t, "worker", worker.Spec.Labels[deploy.LabelGroup])
	assert.Equal(t, "worker", worker.Spec.Env["FLY_PROCESS_GROUP"])
	assert.Equal(t, cron.Spec, p.Spec, "no \"app\" group: the first by name is the default")
	assert.Empty(t, c.Unknown)
}

func TestFormProcessesEmptyBlock(t *testing.T) {
	c, p := loadForm(t, "processes-empty-block.toml")
	assert.Nil(t, c.Processes, "an empty [[processes]] is no processes")
	assert.Nil(t, p.Groups)
	assert.Equal(t, &config.Experimental{}, c.Experimental)
	assert.Equal(t, 8080, p.Spec.Port, "a port written as a string")
	assert.Equal(t, 80, c.Services[0].Ports[0].Port)
	assert.Equal(t, []string{"mount", "metrics"}, c.Unknown, "kept, not read")
	assert.Contains(t, p.Warnings, "mount: not read by cutover; ignored")
}

func TestFormProcessEmptyCommand(t *testing.T) {
	c, p := loadForm(t, "process-empty-command.toml")
	assert.Equal(t, "", c.Processes["app"])
	require.Len(t, p.Groups, 2)
	assert.Equal(t, "app", p.Groups[0].Name)
	assert.Nil(t, p.Groups[0].Spec.Cmd, "empty command: the image's own")
	assert.Equal(t, 3000, p.Groups[0].Spec.Port)
	assert.Equal(t, []string{"bin/worker"}, p.Groups[1].Spec.Cmd)
	assert.True(t, p.Groups[1].Spec.NoService)
	assert.Equal(t, p.Groups[0].Spec, p.Spec, `"app" is the default group`)
}

func TestFormEnvList(t *testing.T) {
	c, _ := loadForm(t, "env-list.toml")
	assert.Equal(t, map[string]string{"FOO": "later wins", "TWO": "2", "TRUE": "true", "RATIO": "1.5"}, c.Env)
}

func TestFormEmptyArrays(t *testing.T) {
	c, p := loadForm(t, "empty-arrays.toml")
	assert.NotNil(t, c.Env)
	assert.Empty(t, c.Env)
	assert.Nil(t, c.Checks, "checks = [] is none")
	assert.Nil(t, c.Processes, "processes = [] is none")
	require.Len(t, p.Checks, 1)
	assert.Nil(t, p.Checks[0].Headers, "headers = [] is none")
	assert.Equal(t, "/up", p.Checks[0].Path)
}

func TestFormChecksList(t *testing.T) {
	c, p := loadForm(t, "checks-list.toml")
	assert.Equal(t, map[string]config.Check{
		"pg": {Name: "pg", Type: "http", Port: 5500, Path: "/flycheck/pg", Interval: 15 * time.Second, Timeout: 10 * time.Second},
		"vm": {Name: "vm", Type: "tcp", Port: 5500, Interval: 10 * time.Second},
	}, c.Checks)
	assert.Empty(t, c.Unknown, "name is read")
	assert.True(t, p.Spec.NoService)
	assert.Equal(t, []int{5500}, p.Spec.Ports, "the checks' port is published")
	require.Len(t, p.Checks, 2)
	assert.Equal(t, 5500, p.Checks[0].Port)

	ce := parseErr(t, "[[checks]]\ntype = \"tcp\"\nport = 1\n")
	assert.Equal(t, "checks[0]", ce.Key)
	assert.Equal(t, 1, ce.Line)
	assert.Contains(t, ce.Error(), "check item name not a string")
}

func TestFormFloats(t *testing.T) {
	c, p := loadForm(t, "floats.toml")
	assert.Equal(t, time.Second, c.KillTimeout, "flyctl truncates 1.5 seconds to 1s")
	assert.Equal(t, 8080, c.HTTPService.InternalPort)
	assert.Equal(t, &config.Concurrency{Type: "requests", SoftLimit: 20, HardLimit: 25}, c.HTTPService.Concurrency)
	assert.Equal(t, 9000, c.Services[0].InternalPort, "flyctl truncates a service's internal_port")
	assert.Equal(t, 80, c.Services[0].Ports[0].Port)
	chk := c.Services[0].TCPChecks[0]
	assert.Equal(t, 1500*time.Millisecond, chk.Interval)
	assert.Equal(t, 2*time.Second, chk.Timeout)
	assert.Equal(t, []string{
		"line 3, column 1: kill_timeout: 1.5 seconds read as 1s: flyctl drops the fraction",
		"line 13, column 3: services[0].internal_port: port 9000.7 read as 9000: flyctl drops the fraction",
		"line 17, column 5: services[0].tcp_checks[0].interval: 1500.9 milliseconds read as 1.5s: flyctl drops the fraction",
	}, c.Warnings)
	assert.Equal(t, 8080, p.Spec.Port)
	assert.Equal(t, []int{9000}, p.Spec.Ports)

	ce := formErr(t, "float-port-fraction.toml")
	assert.Equal(t, "http_service.internal_port", ce.Key)
	assert.Equal(t, 4, ce.Line)
	assert.Equal(t, 3, ce.Column)
	assert.Contains(t, ce.Error(), "cannot unmarshal number 8080.5 into an int")
}

func TestFormExperimental(t *testing.T) {
	c, p := loadForm(t, "experimental.toml")
	f := false
	assert.Equal(t, &config.Experimental{Cmd: []string{"start.sh"}, Entrypoint: []string{"/bin/sh", "-c"}, AutoRollback: &f, KillTimeout: 30 * time.Second}, c.Experimental)
	assert.Equal(t, 30*time.Second, c.KillTimeout, "used when the top-level kill_timeout is absent")
	assert.Equal(t, 30*time.Second, p.Spec.StopTimeout)
	assert.Equal(t, []string{"start.sh"}, p.Spec.Cmd, "a string is one argument, as flyctl reads it")
	assert.True(t, p.NoAutoRollback)
	assert.Equal(t, []string{"experimental.enable_consul"}, c.Unknown)
	assert.Equal(t, []string{"/bin/sh", "-c"}, p.Spec.Entrypoint)
	assert.Contains(t, p.Warnings, "experimental.enable_consul: not read by cutover; ignored")

	c, p = loadForm(t, "experimental-shadowed.toml")
	assert.Equal(t, 5*time.Second, c.KillTimeout, "the top-level key wins")
	assert.Equal(t, []string{"line 5, column 3: experimental.kill_timeout: ignored: the top-level kill_timeout is set"}, c.Warnings)
	assert.Equal(t, []string{"bin/app"}, p.Spec.Cmd, "the group's command wins over experimental.cmd")
	assert.False(t, p.NoAutoRollback)
}

func TestFormConcurrency(t *testing.T) {
	c, p := loadForm(t, "concurrency.toml")
	assert.Equal(t, &config.Concurrency{Type: "connections", SoftLimit: 200, HardLimit: 250}, c.HTTPService.Concurrency)
	assert.Equal(t, &config.Concurrency{Type: "requests", SoftLimit: 12, HardLimit: 23}, c.Services[0].Concurrency)
	assert.Equal(t, c.HTTPService.Concurrency, p.Concurrency)

	ce := formErr(t, "concurrency-int.toml")
	assert.Equal(t, "concurrency-int.toml: line 5, column 3: services[0].concurrency: Unknown type for service concurrency: int64", ce.Error())

	for src, msg := range map[string]string{
		"[[services]]\nconcurrency = \"20\"\n":      "Unknown value '20' for concurrency limits",
		"[[services]]\nconcurrency = \"a,2\"\n":     "Can not convert 'a,2'",
		"[[services]]\nconcurrency = 2.5\n":         "Unknown type for service concurrency: float64",
		"[[services]]\nconcurrency = [1, 2]\n":      "Unknown type for service concurrency: []interface {}",
		"[http_service]\nconcurrency = \"12,23\"\n": "want a table, not a string",
	} {
		ce := parseErr(t, src)
		assert.Equal(t, 2, ce.Line, src)
		assert.Contains(t, ce.Error(), msg)
	}
}

func TestFormServicesEmpty(t *testing.T) {
	c, p := loadForm(t, "services-empty.toml")
	assert.Nil(t, c.Services, "an empty [[services]] is none")
	assert.True(t, p.Spec.NoService)
}

func TestFormCheckPorts(t *testing.T) {
	c, p := loadForm(t, "check-ports.toml")
	assert.Zero(t, c.Services[0].TCPChecks[0].Port, "a service check's port key is ignored")
	assert.Equal(t, []string{"line 8, column 5: services[0].tcp_checks[0].port: ignored: fly checks a service on its internal_port"}, c.Warnings)
	assert.Equal(t, 5432, p.Spec.Port)
	assert.Equal(t, []int{5500}, p.Spec.Ports)
	require.Len(t, p.Checks, 3)
	assert.Equal(t, 5432, p.Checks[0].Port, "the service's check: its internal port")
	assert.Equal(t, 5500, p.Checks[1].Port, "top-level: its own port")
	assert.Equal(t, 5500, p.Checks[2].Port)

	// A top-level check with no port takes the group's http_service port;
	// with none to take, flyctl refuses to deploy.
	c, err := config.Parse([]byte("[[services]]\ninternal_port = 5432\n[checks.x]\ntype = \"tcp\"\n"))
	require.NoError(t, err)
	_, err = c.Plan()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Check 'x' for process group 'app' has no port set and the group has no http_service to take it from")
}

func TestFormWorker(t *testing.T) {
	_, p := loadForm(t, "worker.toml")
	require.Len(t, p.Groups, 1)
	assert.Zero(t, p.Spec.Port, "no service: no default 8080")
	assert.True(t, p.Spec.NoService)
	assert.Equal(t, []string{"bin/worker"}, p.Spec.Cmd)
	assert.Nil(t, p.Health())
	req, err := p.Request()
	require.NoError(t, err)
	assert.Empty(t, req.Groups, "one group: a plain request")
	assert.True(t, req.Spec.NoService)
}

func TestFormTwoGroups(t *testing.T) {
	c, p := loadForm(t, "two-groups.toml")
	require.Len(t, p.Groups, 2)
	web, worker := p.Groups[0], p.Groups[1]
	assert.Equal(t, "web", web.Name)
	assert.Nil(t, web.Spec.Cmd)
	assert.Equal(t, 8080, web.Spec.Port)
	require.Len(t, web.Checks, 1)
	assert.Equal(t, "/health", web.Checks[0].Path)
	assert.Nil(t, web.VM)
	assert.Equal(t, []string{"worker", "--queue", "orders"}, worker.Spec.Cmd)
	assert.True(t, worker.Spec.NoService)
	assert.Empty(t, worker.Checks)
	assert.Equal(t, &c.VM[0], worker.VM)
	assert.Contains(t, p.Warnings, "vm: machine sizes are the backend's; not applied")

	req, err := p.Request()
	require.NoError(t, err)
	require.Len(t, req.Groups, 2)
	assert.Equal(t, "web", req.Groups[0].Name)
	assert.NotNil(t, req.Groups[0].Health)
	assert.Nil(t, req.Groups[1].Health, "the Deployer waits for a worker to stay running")
	assert.Equal(t, req.Groups[0].Spec, req.Spec)
}

func TestFormErrorTexts(t *testing.T) {
	for src, msg := range map[string]string{
		"app = 1\n":                               "want a string, not an integer",
		"[deploy]\nstrategy = []\n":               "want a string, not an array",
		"env = \"A=1\"\n":                         "Do not know how to process 'env' section of type: string",
		"[[env]]\nA = 1\n[[env]]\n":               "",
		"checks = 1\n":                            "'checks' section of unknown type: int64",
		"processes = 1\n":                         "Unknown processes type: int64",
		"[experimental]\ncmd = 1\n":               "could not cast 1 of type int64 to []string on cmd",
		"[http_service]\nprocesses = [\"web\"]\n": "Service specifies 'web' as one of its processes, but no processes are defined with that name",
	} {
		_, err := config.Parse([]byte(src))
		if msg == "" {
			assert.NoError(t, err, src)
			continue
		}
		require.Error(t, err, src)
		assert.Contains(t, err.Error(), msg, src)
		assert.NotContains(t, err.Error(), " a array")
		assert.NotContains(t, err.Error(), " a integer")
		assert.Regexp(t, lineCol, err.Error())
	}
}

// What a file says that a deploy will not act on is in Plan.Warnings.
func TestFormWarnings(t *testing.T) {
	c, err := config.Parse([]byte(`app = "w"
primary_region = "ams"
swap_size_mb = 512
[build]
  image = "img"
  dockerfile = "Dockerfile"
[deploy]
  strategy = "bluegreen"
  max_unavailable = 2
[processes]
  web = "bin/web"
[http_service]
  internal_port = 8080
  force_https = true
  processes = ["web"]
  [http_service.concurrency]
    soft_limit = 10
[[services]]
  protocol = "udp"
  internal_port = 53
  processes = ["web"]
  [[services.ports]]
    port = 53
[checks.x]
  type = "tcp"
  port = 9000
  processes = ["gone"]
  restart_limit = 3
[experimental]
  exec = ["/bin/init"]
`))
	require.NoError(t, err)
	p, err := c.Plan()
	require.NoError(t, err)
	assert.Equal(t, []string{
		"swap_size_mb: not read by cutover; ignored",
		"build: cutover does not build images; only build.image is used",
		"deploy.max_unavailable: used by the rolling strategy only, not bluegreen",
		`checks.x: process group "gone" does not exist; the check does not run there`,
		"restart_limit: a failing check does not restart a machine here; kept in the plan's checks",
		"experimental.exec: not supported; ignored",
		"http_service.force_https: the proxy does not redirect to https; ignored",
		"services[0]: udp services are not routed; ignored",
		"services[0].ports: public ports and handlers are the proxy's own configuration; ignored",
	}, p.Warnings)
}
