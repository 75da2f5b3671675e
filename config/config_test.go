package config_test

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	deploy "github.com/cutover/deploy"
	"github.com/cutover/deploy/config"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testdataDir is the shared fly.toml corpus, beside the module: tests run in
// the package directory, so it is two levels up. A clone has no such folder
// beside it: the corpus tests skip there (config/testdata holds this
// package's own fixtures), and fail under CI=true, which must read it all.
func testdataDir(tb testing.TB) string {
	tb.Helper()
	dir, err := sharedCorpus()
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("CI=true: %v", err)
		}
		tb.Skip(err)
	}
	return dir
}

// sharedCorpus returns the shared corpus's directory, or an error of one line
// that says where it looks.
func sharedCorpus() (string, error) {
	dir := filepath.Join("..", "..", "shared", "testdata", "flytoml")
	if _, err := os.Stat(dir); err != nil {
		abs, _ := filepath.Abs(dir)
		return "", fmt.Errorf("fly.toml corpus not found at %s (the project's shared folder, beside the module; config/testdata has a fixture per form)", abs)
	}
	return dir, nil
}

// corpus lists the .toml files of the directory and the ones SOURCES.md lists
// under "Invalid on purpose".
func corpus(tb testing.TB) (dir string, files []string, invalid map[string]bool, listed map[string]bool) {
	dir = testdataDir(tb)
	entries, err := os.ReadDir(dir)
	require.NoError(tb, err)
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".toml") {
			files = append(files, e.Name())
		}
	}
	require.NotEmpty(tb, files, "no .toml files in %s", dir)

	invalid, listed = map[string]bool{}, map[string]bool{}
	f, err := os.Open(filepath.Join(dir, "SOURCES.md"))
	require.NoError(tb, err, "SOURCES.md lists which files are invalid on purpose")
	defer f.Close()
	first := regexp.MustCompile("^\\| `([^`/]+\\.toml)`") // the File column of the table
	anyName := regexp.MustCompile("`([^`/]+\\.toml)`")
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			section = strings.ToLower(strings.TrimLeft(line, "# "))
			continue
		}
		if strings.Contains(section, "invalid") {
			for _, m := range anyName.FindAllStringSubmatch(line, -1) {
				invalid[m[1]] = true
			}
		} else if m := first.FindStringSubmatch(line); m != nil {
			listed[m[1]] = true
		}
	}
	require.NoError(tb, sc.Err())
	return dir, files, invalid, listed
}

var lineCol = regexp.MustCompile(`line \d+, column \d+`)

func TestConfigTestdataLoads(t *testing.T) {
	dir, files, invalid, listed := corpus(t)
	t.Logf("%d files, %d listed as invalid on purpose", len(files), len(invalid))
	present := map[string]bool{}
	for _, name := range files {
		present[name] = true
		t.Run(name, func(t *testing.T) {
			c, err := config.Load(filepath.Join(dir, name))
			if invalid[name] {
				require.Error(t, err, "listed as invalid on purpose")
				assert.ErrorIs(t, err, config.ErrInvalid)
				assert.Regexp(t, lineCol, err.Error(), "the error gives a line and column")
				assert.True(t, strings.HasPrefix(err.Error(), name+": "), "the error names the file: %v", err)
				return
			}
			require.NoError(t, err)
			p, err := c.Plan()
			require.NoError(t, err)
			assert.NotEmpty(t, p.StrategyName)
			if p.Spec.NoService { // a worker, or a default group with no service
				assert.Zero(t, p.Spec.Port)
			} else {
				assert.Positive(t, p.Spec.Port)
			}
			assert.NotNil(t, c.Raw)
		})
	}
	for name := range listed {
		assert.True(t, present[name], "SOURCES.md lists %s, which is not in the directory", name)
	}
	for name := range invalid {
		assert.True(t, present[name], "SOURCES.md lists %s as invalid, but it is not in the directory", name)
	}
	for _, name := range files {
		assert.True(t, listed[name] || invalid[name], "%s is not listed in SOURCES.md", name)
	}
}

// Spot checks of what the corpus files hold.
func TestConfigTestdataValues(t *testing.T) {
	dir := testdataDir(t)
	load := func(t *testing.T, name string) *config.Config {
		c, err := config.Load(filepath.Join(dir, name))
		require.NoError(t, err)
		return c
	}
	t.Run("canary with max_unavailable and wait_timeout", func(t *testing.T) {
		c := load(t, "HughPowell__restaurant__infra__fly.toml")
		assert.Equal(t, config.Deploy{Strategy: "canary", MaxUnavailable: 1, WaitTimeout: time.Minute}, c.Deploy)
		require.Len(t, c.HTTPService.Checks, 1)
		assert.Equal(t, 5*time.Second, c.HTTPService.Checks[0].Interval)
	})
	t.Run("release_command_timeout", func(t *testing.T) {
		c := load(t, "Joseamica__avoqado-server__fly.staging.toml")
		assert.Equal(t, 5*time.Minute, c.Deploy.ReleaseCommandTimeout)
		assert.Equal(t, "npx prisma migrate deploy", c.Deploy.ReleaseCommand)
	})
	t.Run("kill_timeout forms", func(t *testing.T) {
		assert.Equal(t, 5*time.Minute, load(t, "elpassion__buildel__apps__nlm-ingestor__fly.toml").KillTimeout)
		assert.Equal(t, 300*time.Second, load(t, "chrhansen__shred-day__fly.worker.toml").KillTimeout)
		assert.Equal(t, 300*time.Second, load(t, "fly-apps__cockroachdb__fly.toml").KillTimeout)
	})
	t.Run("millisecond check integers", func(t *testing.T) {
		c := load(t, "remix-run__indie-stack__fly.toml")
		hc := c.Services[0].HTTPChecks[0]
		assert.Equal(t, 10*time.Second, hc.Interval)
		assert.Equal(t, 2*time.Second, hc.Timeout)
		assert.Equal(t, 5*time.Second, hc.GracePeriod)
		assert.Equal(t, "GET", hc.Method)
		assert.Empty(t, hc.Headers)
	})
	t.Run("string ports and integer env", func(t *testing.T) {
		c := load(t, "agrinman__tunnelto__fly.toml")
		require.Len(t, c.Services, 2)
		assert.Equal(t, 10001, c.Services[0].Ports[0].Port)
		assert.Equal(t, 443, c.Services[1].Ports[0].Port)
		assert.Equal(t, "10002", c.Env["NET_PORT"])
		assert.Equal(t, 20*time.Second, c.Services[1].HTTPChecks[0].Timeout)
	})
	t.Run("header sub-table", func(t *testing.T) {
		c := load(t, "djkazunoko__nijikai-go__fly.toml")
		assert.Equal(t, map[string]string{"X-Forwarded-Proto": "https"}, c.HTTPService.Checks[0].Headers)
	})
	t.Run("top-level checks", func(t *testing.T) {
		c := load(t, "fly-apps__postgres-ha__fly.toml")
		require.Len(t, c.Checks, 3)
		assert.Equal(t, config.Check{Name: "vm", Type: "http", Port: 5500, Method: "GET", Path: "/flycheck/vm",
			Interval: time.Minute, Timeout: 10 * time.Second, GracePeriod: time.Second}, c.Checks["vm"])
		assert.Empty(t, c.Services, "services = [] is an empty list")
	})
	t.Run("script check is skipped by Plan", func(t *testing.T) {
		c := load(t, "fly-apps__fly-etcd__fly.toml")
		assert.Equal(t, 60*time.Second, c.Checks["role"].Interval)
		p, err := c.Plan()
		require.NoError(t, err)
		assert.Len(t, p.Checks, 1) // the tcp check
		assert.Contains(t, p.Warnings, "check role: script checks are not supported; skipped")
	})
	t.Run("singular mount and metrics are kept as unknown", func(t *testing.T) {
		c := load(t, "fly-apps__keydb__fly.toml")
		assert.Equal(t, []string{"experimental.private_network", "mount"}, c.Unknown)
		assert.Equal(t, "/data", c.Raw["mount"].(map[string]any)["destination"])
		assert.Contains(t, load(t, "fly-apps__redis__fly.toml").Unknown, "metrics")
	})
	t.Run("misplaced keys are unknown", func(t *testing.T) {
		assert.Contains(t, load(t, "liminal-ai__liminaldb__fly.prod.toml").Unknown, "http_service.checks[0].kill_timeout")
		assert.Contains(t, load(t, "AshesOfPhoenix__telepost__fly.api.toml").Unknown, "http_service.kill_timeout")
	})
	t.Run("processes", func(t *testing.T) {
		assert.Equal(t, map[string]string{"web": "pipenv run bash .bin/run.sh"},
			load(t, "planetarypraxis__smartforests__fly.toml").Processes)
		assert.Nil(t, load(t, "remix-run__blues-stack__fly.toml").Processes, "processes = [ ]")
	})
	t.Run("processes array: paths count every item", func(t *testing.T) {
		c, err := config.Parse([]byte("app = \"a\"\nprocesses = [1, {name = \"web\", command = \"run\", extra = 1}]\n"))
		require.NoError(t, err)
		assert.Equal(t, map[string]string{"web": "run"}, c.Processes)
		assert.Contains(t, c.Unknown, "processes[1].extra", "the dropped item keeps its place")
	})
	t.Run("quoted release command", func(t *testing.T) {
		p, err := load(t, "SuffolkLITLab__LITEFile__fly.crosswalk-review.toml").Plan()
		require.NoError(t, err)
		assert.Equal(t, []string{"sh", "-c",
			"uv run python manage.py migrate --noinput --fake-initial && uv run python manage.py load_crosswalk"}, p.ReleaseCommand)
	})
}

func parseErr(t *testing.T, src string) *config.Error {
	t.Helper()
	_, err := config.Parse([]byte(src))
	require.Error(t, err)
	assert.ErrorIs(t, err, config.ErrInvalid)
	assert.ErrorIs(t, err, deploy.ErrInvalid)
	var ce *config.Error
	require.ErrorAs(t, err, &ce)
	return ce
}

func TestConfigBadValues(t *testing.T) {
	cases := []struct {
		name string
		src  string
		key  string
		line int
		msg  string // substring of the error
	}{
		{"unknown strategy", "app = \"a\"\n[deploy]\n  strategy = \"blue-green\"\n", "deploy.strategy", 3,
			`unknown strategy "blue-green" (want rolling, bluegreen, canary or immediate)`},
		{"strategy not a string", "[deploy]\nstrategy = 1\n", "deploy.strategy", 2, "want a string, not an integer"},
		{"max_unavailable zero", "[deploy]\nmax_unavailable = 0\n", "deploy.max_unavailable", 2, "must be greater than 0"},
		{"max_unavailable negative", "[deploy]\nmax_unavailable = -0.5\n", "deploy.max_unavailable", 2, "greater than 0"},
		{"max_unavailable nan", "[deploy]\nmax_unavailable = nan\n", "deploy.max_unavailable", 2, "NaN must be a number greater than 0"},
		{"max_unavailable inf", "[deploy]\nmax_unavailable = inf\n", "deploy.max_unavailable", 2, "greater than 0"},
		{"max_unavailable fractional count", "[deploy]\nmax_unavailable = 1.5\n", "deploy.max_unavailable", 2, "whole number"},
		{"max_unavailable string", "[deploy]\nmax_unavailable = \"33%\"\n", "deploy.max_unavailable", 2, "not a string"},
		{"bad duration string", "kill_timeout = \"5 seconds\"\n", "kill_timeout", 1,
			`invalid duration "5 seconds" (want a duration such as "5s" or "1m30s", or an integer number of seconds)`},
		{"duration without unit", "[[http_service.checks]]\ninterval = \"10\"\n", "http_service.checks[0].interval", 2,
			"or an integer number of milliseconds"},
		{"duration bool", "[deploy]\nwait_timeout = true\n", "deploy.wait_timeout", 2, "not a boolean"},
		{"negative duration", "kill_timeout = \"-5s\"\n", "kill_timeout", 1, "must not be negative"},
		{"negative integer duration", "[[services]]\n[[services.tcp_checks]]\ntimeout = -1\n", "services[0].tcp_checks[0].timeout", 3, "must not be negative"},
		{"huge integer duration", "kill_timeout = 9223372036854775807\n", "kill_timeout", 1, "too large"},
		{"port out of range", "[http_service]\ninternal_port = 70000\n", "http_service.internal_port", 2, "port 70000 out of range (want 1 to 65535)"},
		{"port zero", "[[services]]\ninternal_port = 0\n", "services[0].internal_port", 2, "out of range"},
		{"port not a number", "[[services]]\n[[services.ports]]\nport = \"http\"\n", "services[0].ports[0].port", 3, `invalid port "http"`},
		{"port wrong type", "[http_service]\ninternal_port = true\n", "http_service.internal_port", 2, "want a port number, not a boolean"},
		{"unknown check type", "[checks.x]\ntype = \"grpc\"\n", "checks.x.type", 2, `unknown check type "grpc" (want http or tcp)`},
		{"missing check type", "[checks.x]\npath = \"/\"\n", "checks.x", 1, "missing type"},
		{"check not a table", "[checks]\nx = 1\n", "checks.x", 2, "want a table, not an integer"},
		{"bad method", "[[http_service.checks]]\nmethod = \"GE T\"\n", "http_service.checks[0].method", 2, `invalid HTTP method "GE T"`},
		{"bad check protocol", "[[http_service.checks]]\nprotocol = \"ftp\"\n", "http_service.checks[0].protocol", 2, `unknown protocol "ftp" (want http or https)`},
		{"bad check path", "[[http_service.checks]]\npath = \"health\"\n", "http_service.checks[0].path", 2, "must start with /"},
		{"bad service protocol", "[[services]]\nprotocol = \"sctp\"\n", "services[0].protocol", 2, `unknown protocol "sctp" (want tcp or udp)`},
		{"negative restart_limit", "[[services]]\n[[services.http_checks]]\nrestart_limit = -1\n", "services[0].http_checks[0].restart_limit", 3, "must not be negative"},
		{"header without name", "[[http_service.checks]]\nheaders = [{value = \"x\"}]\n", "http_service.checks[0].headers[0]", 2, "header needs a name"},
		{"header value table", "[[http_service.checks]]\n[http_service.checks.headers]\nX = {a = 1}\n", "http_service.checks[0].headers.X", 3, "not a table"},
		{"bad header name", "[[http_service.checks]]\nheaders = {\"X Y\" = \"z\"}\n", `http_service.checks[0].headers."X Y"`, 2, "invalid header name"},
		{"headers wrong type", "[[http_service.checks]]\nheaders = \"X: y\"\n", "http_service.checks[0].headers", 2, "not a string"},
		{"env not a table", "env = \"A=1\"\n", "env", 1, "want a table"},
		{"processes a string", "processes = \"app\"\n", "processes", 1, "Unknown processes type: string"},
		{"process command not a string", "[processes]\napp = 1\n", "processes.app", 2, "want a command line string"},
		{"release command quote", "[deploy]\nrelease_command = \"sh -c 'migrate\"\n", "deploy.release_command", 2, "unterminated ' quote"},
		{"kill signal", "kill_signal = \"SIGFOO\"\n", "kill_signal", 1, `unknown signal "SIGFOO"`},
		{"http_service not a table", "http_service = 1\n", "http_service", 1, "want a table, not an integer"},
		{"services not tables", "services = [1]\n", "services[0]", 1, "want a table"},
		{"buildpacks not strings", "[build]\nbuildpacks = [1]\n", "build.buildpacks[0]", 2, "want a string"},
		{"second service", "[[services]]\ninternal_port = 1\n\n[[services]]\n  internal_port = 8080\n  [[services.http_checks]]\n    method = \"BAD METHOD\"\n",
			"services[1].http_checks[0].method", 7, "invalid HTTP method"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ce := parseErr(t, c.src)
			assert.Equal(t, c.key, ce.Key)
			assert.Equal(t, c.line, ce.Line, "line of %v", ce)
			assert.Positive(t, ce.Column)
			assert.Contains(t, ce.Error(), c.msg)
		})
	}
}

func TestConfigErrorFormat(t *testing.T) {
	ce := parseErr(t, "app = \"a\"\n[deploy]\n  strategy = \"blue-green\"\n")
	assert.Equal(t, `line 3, column 3: deploy.strategy: unknown strategy "blue-green" (want rolling, bluegreen, canary or immediate)`, ce.Error())

	dir := t.TempDir()
	path := filepath.Join(dir, "fly.toml")
	require.NoError(t, os.WriteFile(path, []byte("app = \"a\"\n[deploy]\n  strategy = \"blue-green\"\n"), 0o644))
	_, err := config.Load(path)
	require.Error(t, err)
	assert.Equal(t, `fly.toml: line 3, column 3: deploy.strategy: unknown strategy "blue-green" (want rolling, bluegreen, canary or immediate)`, err.Error())

	_, err = config.Load(filepath.Join(dir, "missing.toml"))
	assert.ErrorIs(t, err, os.ErrNotExist)
	assert.NotErrorIs(t, err, config.ErrInvalid)
}

func TestConfigSyntaxError(t *testing.T) {
	ce := parseErr(t, "app = \"a\"\n[deploy\nstrategy = \"rolling\"\n")
	assert.Equal(t, 2, ce.Line)
	assert.Regexp(t, `^line 2, column \d+: syntax error: `, ce.Error())
	var se *config.SyntaxError
	assert.ErrorAs(t, ce, &se)

	ce = parseErr(t, "app = \"a\"\napp = \"b\"\n")
	assert.Equal(t, 2, ce.Line)
	assert.Contains(t, ce.Error(), "already been defined")
}

func TestConfigSeveralErrors(t *testing.T) {
	src := []byte("kill_signal = \"NOPE\"\n[deploy]\nstrategy = \"x\"\nwait_timeout = \"soon\"\n")
	_, err := config.Parse(src)
	require.Error(t, err)
	lines := strings.Split(err.Error(), "\n")
	require.Len(t, lines, 3, "one line per wrong key: %v", err)
	assert.True(t, strings.HasPrefix(lines[0], "line 1, column 1: kill_signal: "))
	assert.True(t, strings.HasPrefix(lines[1], "line 3, column 1: deploy.strategy: "))
	assert.True(t, strings.HasPrefix(lines[2], "line 4, column 1: deploy.wait_timeout: "))
	assert.ErrorIs(t, err, config.ErrInvalid)

	// Load names the file in each of them.
	path := filepath.Join(t.TempDir(), "fly.toml")
	require.NoError(t, os.WriteFile(path, src, 0o644))
	_, err = config.Load(path)
	require.Error(t, err)
	loaded := strings.Split(err.Error(), "\n")
	require.Len(t, loaded, 3)
	for i, l := range loaded {
		assert.Equal(t, "fly.toml: "+lines[i], l)
	}
	assert.ErrorIs(t, err, config.ErrInvalid)
}

func TestConfigDurations(t *testing.T) {
	c, err := config.Parse([]byte(`
kill_timeout = 5
[deploy]
  release_command_timeout = "1m30s"
  wait_timeout = ""
[[http_service.checks]]
  interval = 10000
  timeout = "2s"
  grace_period = 0
[[services]]
  [[services.tcp_checks]]
    interval = "1m"
    timeout = 500
`))
	require.NoError(t, err)
	assert.Equal(t, 5*time.Second, c.KillTimeout, "bare integer: seconds")
	assert.Equal(t, 90*time.Second, c.Deploy.ReleaseCommandTimeout)
	assert.Zero(t, c.Deploy.WaitTimeout, "empty string: unset")
	hc := c.HTTPService.Checks[0]
	assert.Equal(t, 10*time.Second, hc.Interval, "bare integer in a check: milliseconds")
	assert.Equal(t, 2*time.Second, hc.Timeout)
	assert.Zero(t, hc.GracePeriod)
	tc := c.Services[0].TCPChecks[0]
	assert.Equal(t, time.Minute, tc.Interval)
	assert.Equal(t, 500*time.Millisecond, tc.Timeout)
	assert.Equal(t, "tcp", tc.Type)

	c, err = config.Parse([]byte("[deploy]\nwait_timeout = 120\nrelease_command_timeout = 600\n"))
	require.NoError(t, err)
	assert.Equal(t, 2*time.Minute, c.Deploy.WaitTimeout)
	assert.Equal(t, 10*time.Minute, c.Deploy.ReleaseCommandTimeout)
}

func TestConfigHeaders(t *testing.T) {
	for _, c := range []struct {
		name string
		src  string
		want map[string]string
	}{
		{"inline table", `headers = { X-A = "1", Host = "example.com" }`, map[string]string{"X-A": "1", "Host": "example.com"}},
		{"empty inline table", `headers = { }`, nil},
		{"sub-table", "[services.http_checks.headers]\nX-Forwarded-Proto = \"https\"\nX-N = 3", map[string]string{"X-Forwarded-Proto": "https", "X-N": "3"}},
		{"empty sub-table", "[services.http_checks.headers]", nil},
		{"array of name/value", `headers = [{name = "X-A", value = "1"}, {name = "Host", value = "h"}]`, map[string]string{"X-A": "1", "Host": "h"}},
		{"array of tables", "[[services.http_checks.headers]]\nname = \"X-A\"\nvalue = \"1\"", map[string]string{"X-A": "1"}},
		{"none", ``, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			src := "[[services]]\ninternal_port = 8080\n[[services.http_checks]]\npath = \"/health\"\n" + c.src + "\n"
			cfg, err := config.Parse([]byte(src))
			require.NoError(t, err)
			assert.Equal(t, c.want, cfg.Services[0].HTTPChecks[0].Headers)
		})
	}
}

func TestConfigFields(t *testing.T) {
	c, err := config.Parse([]byte(`
app = "web"
primary_region = "ams"
kill_signal = "sigint"
vm.size = "shared-cpu-1x"
[build]
  image = "registry/web:1"
  buildpacks = ["a", "b"]
  [build.args]
    N = 1
[env]
  PORT = 8080
  DEBUG = false
  RATIO = 0.5
[http_service]
  internal_port = "3000"
  force_https = true
  processes = "app"
[processes]
  app = "bin/server"
[experimental]
  cmd = ["x"]
`))
	require.NoError(t, err)
	assert.Equal(t, "web", c.App)
	assert.Equal(t, "ams", c.PrimaryRegion)
	assert.Equal(t, "SIGINT", c.KillSignal)
	assert.Equal(t, config.Build{Image: "registry/web:1", Buildpacks: []string{"a", "b"}, Args: map[string]string{"N": "1"}}, c.Build)
	assert.Equal(t, map[string]string{"PORT": "8080", "DEBUG": "false", "RATIO": "0.5"}, c.Env)
	assert.Equal(t, &config.HTTPService{InternalPort: 3000, ForceHTTPS: true, Processes: []string{"app"}}, c.HTTPService)
	assert.Equal(t, map[string]string{"app": "bin/server"}, c.Processes)
	assert.Equal(t, []config.VM{{Size: "shared-cpu-1x"}}, c.VM)
	assert.Equal(t, &config.Experimental{Cmd: []string{"x"}}, c.Experimental)
	assert.Empty(t, c.Unknown)
}

func TestConfigPlan(t *testing.T) {
	c, err := config.Parse([]byte(`
app = "web"
kill_signal = "SIGINT"
kill_timeout = "30s"
[build]
  image = "registry/web:2"
[deploy]
  strategy = "canary"
  release_command = "bin/migrate --all 'two words'"
  release_command_timeout = 120
  max_unavailable = 0.5
  wait_timeout = "2m"
[env]
  MODE = "prod"
[http_service]
  internal_port = 3000
  [[http_service.checks]]
    path = "/up"
    interval = "5s"
[[services]]
  internal_port = 9000
  [[services.tcp_checks]]
    interval = 1000
[checks.b]
  type = "http"
  port = 9100
  path = "/metrics"
[checks.a]
  type = "tcp"
`))
	require.NoError(t, err)
	p, err := c.Plan()
	require.NoError(t, err)
	assert.Equal(t, deploy.MachineSpec{App: "web", Image: "registry/web:2", Env: map[string]string{"MODE": "prod"},
		Port: 3000, Ports: []int{9000, 9100}, Protocol: "http", StopSignal: "SIGINT", StopTimeout: 30 * time.Second}, p.Spec,
		"the other ports the checks probe are published")
	assert.Equal(t, "canary", p.StrategyName)
	assert.Equal(t, 0.5, p.MaxUnavailable)
	assert.Equal(t, 2*time.Minute, p.WaitTimeout)
	assert.Equal(t, []string{"bin/migrate", "--all", "two words"}, p.ReleaseCommand)
	assert.Equal(t, 2*time.Minute, p.ReleaseCommandTimeout)
	require.Len(t, p.Checks, 4)
	assert.Equal(t, config.Check{Name: "http_service.checks[0]", Type: "http", Port: 3000, Path: "/up", Interval: 5 * time.Second}, p.Checks[0])
	assert.Equal(t, config.Check{Name: "services[0].tcp_checks[0]", Type: "tcp", Port: 9000, Interval: time.Second}, p.Checks[1])
	assert.Equal(t, config.Check{Name: "a", Type: "tcp", Port: 3000}, p.Checks[2], "top-level check without a port uses the http_service's port")
	assert.Equal(t, config.Check{Name: "b", Type: "http", Port: 9100, Path: "/metrics"}, p.Checks[3])
	assert.Equal(t, []string{"deploy.max_unavailable: used by the rolling strategy only, not canary"}, p.Warnings)

	// Plan's result does not share maps with the config.
	p.Spec.Env["MODE"] = "changed"
	assert.Equal(t, "prod", c.Env["MODE"])
}

func TestConfigPlanDefaults(t *testing.T) {
	c, err := config.Parse([]byte("app = \"w\"\n"))
	require.NoError(t, err)
	p, err := c.Plan()
	require.NoError(t, err)
	assert.Equal(t, "rolling", p.StrategyName)
	assert.Zero(t, p.Spec.Port, "no service: a worker, no port")
	assert.True(t, p.Spec.NoService)
	assert.Equal(t, config.DefaultMaxUnavailable, p.MaxUnavailable)
	assert.Equal(t, config.DefaultWaitTimeout, p.WaitTimeout)
	assert.Equal(t, config.DefaultReleaseCommandTimeout, p.ReleaseCommandTimeout)
	assert.Nil(t, p.ReleaseCommand)
	assert.Empty(t, p.Checks)
	assert.Zero(t, p.Spec.StopTimeout, "unset: the backend's default")

	// The port comes from the first tcp service when there is no http_service.
	c, err = config.Parse([]byte("[[services]]\nprotocol = \"udp\"\ninternal_port = 53\n[[services]]\ninternal_port = 4000\n[[services.http_checks]]\n"))
	require.NoError(t, err)
	p, err = c.Plan()
	require.NoError(t, err)
	assert.Equal(t, 4000, p.Spec.Port)
	require.Len(t, p.Checks, 1)
	assert.Equal(t, 4000, p.Checks[0].Port)
}

func TestConfigPlanValidates(t *testing.T) {
	for _, c := range []*config.Config{
		{Deploy: config.Deploy{Strategy: "blue-green"}},
		{Deploy: config.Deploy{MaxUnavailable: math.NaN()}},
		{Deploy: config.Deploy{WaitTimeout: -time.Second}},
		{Deploy: config.Deploy{ReleaseCommand: `say "hi`}},
		{HTTPService: &config.HTTPService{InternalPort: 65536}},
		{Checks: map[string]config.Check{"x": {Type: "udp"}}},
		{Services: []config.Service{{TCPChecks: []config.Check{{Method: "A B"}}}}},
	} {
		_, err := c.Plan()
		assert.ErrorIs(t, err, config.ErrInvalid, "%+v", c)
		var ce *config.Error
		if assert.ErrorAs(t, err, &ce) {
			assert.NotEmpty(t, ce.Key)
			assert.Zero(t, ce.Line, "a Config built in code has no lines")
		}
	}
}

func TestConfigSplitCommand(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"   ", nil},
		{"migrate", []string{"migrate"}},
		{"  rake   db:migrate\t", []string{"rake", "db:migrate"}},
		{`sh -c 'a && b'`, []string{"sh", "-c", "a && b"}},
		{`echo "a \"b\" c" 'it''s'`, []string{"echo", `a "b" c`, "its"}},
		{`a\ b c`, []string{"a b", "c"}},
		{`x ''`, []string{"x", ""}},
	} {
		got, err := config.SplitCommand(c.in)
		require.NoError(t, err, c.in)
		assert.Equal(t, c.want, got, c.in)
	}
	for _, in := range []string{`sh -c 'a`, `echo "a`, `echo "a\"`} {
		_, err := config.SplitCommand(in)
		assert.Error(t, err, in)
	}
}

func FuzzParse(f *testing.F) {
	// Seeds: this package's fixtures, and the shared corpus when it is there.
	seeds := fixtureFiles(f)
	if dir, err := sharedCorpus(); err == nil {
		_, files, _, _ := corpus(f)
		for _, name := range files {
			seeds = append(seeds, filepath.Join(dir, name))
		}
	}
	for _, path := range seeds {
		data, err := os.ReadFile(path)
		require.NoError(f, err)
		f.Add(data)
	}
	f.Add([]byte("[deploy]\nstrategy = \"blue-green\"\nmax_unavailable = nan\n"))
	f.Add([]byte("a = \"\"\"\nx\"\"\"\n[[s]]\nb = [{c = 1}, 2]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := config.Parse(data)
		if err != nil {
			if !errors.Is(err, config.ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		if _, err := c.Plan(); err != nil {
			t.Fatalf("Parse accepted a config that Plan rejects: %v", err)
		}
	})
}

// primary_region becomes deploy.LabelRegion, which region-aware backends
// (backend/swarm: node label "region") place by.
func TestConfigPlanRegionLabel(t *testing.T) {
	c, err := config.Parse([]byte("app = \"w\"\nprimary_region = \"ams\"\n"))
	require.NoError(t, err)
	p, err := c.Plan()
	require.NoError(t, err)
	assert.Equal(t, map[string]string{deploy.LabelRegion: "ams"}, p.Spec.Labels)
}
