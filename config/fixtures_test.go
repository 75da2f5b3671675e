package config_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cutover/deploy/config"
)

// fixtureFiles lists this package's own fly.toml fixtures, config/testdata/*.toml.
func fixtureFiles(tb testing.TB) []string {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "*.toml"))
	require.NoError(tb, err)
	require.NotEmpty(tb, files, "no fixtures in config/testdata")
	return files
}

// fixtureWarnings is what each fixture's Plan warns about: what the file says
// and cutover reads without acting on it.
var fixtureWarnings = map[string][]string{
	"checks_no_parent.toml": {"build.image is empty: cutover does not build images; set the image to deploy"},
	"comments.toml":         {"build.image is empty: cutover does not build images; set the image to deploy", "services[0].ports: public ports and handlers are the proxy's own configuration; ignored"},
	"crlf.toml":             {"build.image is empty: cutover does not build images; set the image to deploy"},
	"durations.toml":        {"build.image is empty: cutover does not build images; set the image to deploy"},
	"empty_tables.toml":     {"build.image is empty: cutover does not build images; set the image to deploy"},
	"headers_list.toml":     {"build.image is empty: cutover does not build images; set the image to deploy"},
	"headers_table.toml":    {"build.image is empty: cutover does not build images; set the image to deploy"},
	"inline_tables.toml": {
		"build: cutover does not build images; only build.image is used",
		"deploy.max_unavailable: used by the rolling strategy only, not bluegreen",
		"http_service.force_https: the proxy does not redirect to https; ignored",
	},
	"processes.toml": {"build.image is empty: cutover does not build images; set the image to deploy"},
	"services_v1.toml": {"build.image is empty: cutover does not build images; set the image to deploy",
		"restart_limit: a failing check does not restart a machine here; kept in the plan's checks", "services[0].ports: public ports and handlers are the proxy's own configuration; ignored"},
	"string_ports.toml": {
		"line 12, column 5: services[0].tcp_checks[0].port: ignored: fly checks a service on its internal_port",
		"build.image is empty: cutover does not build images; set the image to deploy", "services[0].ports: public ports and handlers are the proxy's own configuration; ignored"},
	"vm.toml": {"build.image is empty: cutover does not build images; set the image to deploy", "vm: machine sizes are the backend's; not applied"},
}

// TestFixtures loads each fixture of config/testdata, one per form of fly.toml
// the loader reads, and compares the whole Config (but Raw) with what the file
// says, then its Plan where the form changes it.
func TestFixtures(t *testing.T) {
	cases := []struct {
		file string
		want config.Config // Raw is not compared; Unknown is
		// more checks, of Raw and of the Plan; nil for none
		check func(t *testing.T, c *config.Config, p config.Plan)
	}{
		{
			file: "durations.toml",
			want: config.Config{
				App:         "durations",
				KillTimeout: 5 * time.Second, // bare integer at the top level: seconds
				Deploy: config.Deploy{
					ReleaseCommand:        "bin/migrate",
					ReleaseCommandTimeout: 90 * time.Second,
					WaitTimeout:           120 * time.Second, // bare integer in [deploy]: seconds
				},
				HTTPService: &config.HTTPService{InternalPort: 8080, Checks: []config.Check{
					{Name: "http_service.checks[0]", Type: "http", Path: "/health",
						Interval: 10 * time.Second, Timeout: 2 * time.Second}, // bare integer in a check: milliseconds
					{Name: "http_service.checks[1]", Type: "http", Path: "/ready",
						Interval: time.Minute, Timeout: 500 * time.Millisecond},
				}},
			},
			check: func(t *testing.T, c *config.Config, p config.Plan) {
				assert.Equal(t, 5*time.Second, p.Spec.StopTimeout)
				assert.Equal(t, 90*time.Second, p.ReleaseCommandTimeout)
				assert.Equal(t, 2*time.Minute, p.WaitTimeout)
				assert.Equal(t, []string{"bin/migrate"}, p.ReleaseCommand)
			},
		},
		{
			file: "services_v1.toml",
			want: config.Config{
				App:         "services-v1",
				KillSignal:  "SIGINT",
				KillTimeout: 5 * time.Second,
				Services: []config.Service{{
					InternalPort: 8080,
					Protocol:     "tcp",
					Processes:    []string{"app"},
					Ports: []config.ServicePort{
						{Port: 80, Handlers: []string{"http"}, ForceHTTPS: true},
						{Port: 443, Handlers: []string{"tls", "http"}},
					},
					HTTPChecks: []config.Check{{Name: "services[0].http_checks[0]", Type: "http", Method: "GET",
						Path: "/healthz", Protocol: "http", Interval: 10 * time.Second, Timeout: 2 * time.Second,
						GracePeriod: 5 * time.Second, RestartLimit: 3}},
					TCPChecks: []config.Check{{Name: "services[0].tcp_checks[0]", Type: "tcp",
						Interval: 15 * time.Second, Timeout: 2 * time.Second, GracePeriod: time.Second}},
				}},
			},
			check: func(t *testing.T, c *config.Config, p config.Plan) {
				assert.Equal(t, 8080, p.Spec.Port, "the first tcp service's port")
				require.Len(t, p.Checks, 2)
				assert.Equal(t, "services[0].http_checks[0]", p.Checks[0].Name, "http checks before tcp checks")
				assert.Equal(t, 8080, p.Checks[0].Port)
				assert.Equal(t, "tcp", p.Checks[1].Type)
				assert.Equal(t, 8080, p.Checks[1].Port)
			},
		},
		{
			file: "checks_no_parent.toml",
			want: config.Config{
				App:         "checks",
				HTTPService: &config.HTTPService{InternalPort: 5432},
				Checks: map[string]config.Check{
					"vm": {Name: "vm", Type: "http", Port: 5500, Path: "/flycheck/vm",
						Interval: time.Minute, Timeout: 10 * time.Second, GracePeriod: time.Second},
					"pg": {Name: "pg", Type: "tcp", Interval: 15 * time.Second, Timeout: 5 * time.Second},
				},
			},
			check: func(t *testing.T, c *config.Config, p config.Plan) {
				require.Len(t, p.Checks, 2)
				assert.Equal(t, "pg", p.Checks[0].Name, "top-level checks sorted by name")
				assert.Equal(t, 5432, p.Checks[0].Port, "no port of its own: the app's")
				assert.Equal(t, 5500, p.Checks[1].Port)
			},
		},
		{
			file: "inline_tables.toml",
			want: config.Config{
				App:    "inline",
				Build:  config.Build{Image: "registry/inline:1", Args: map[string]string{"VERSION": "1.2.3"}},
				Deploy: config.Deploy{Strategy: "bluegreen", MaxUnavailable: 1},
				Env:    map[string]string{"PORT": "3000", "WORKERS": "4"},
				HTTPService: &config.HTTPService{InternalPort: 3000, ForceHTTPS: true, Checks: []config.Check{
					{Name: "http_service.checks[0]", Type: "http", Path: "/up", Interval: 5 * time.Second,
						Headers: map[string]string{"Host": "inline.example"}},
				}},
			},
			check: func(t *testing.T, c *config.Config, p config.Plan) {
				assert.Equal(t, "registry/inline:1", p.Spec.Image)
				assert.Equal(t, 3000, p.Spec.Port)
				assert.Equal(t, "bluegreen", p.StrategyName)
				assert.Equal(t, 1.0, p.MaxUnavailable)
			},
		},
		{
			file: "string_ports.toml",
			want: config.Config{
				App: "string-ports",
				Services: []config.Service{{
					InternalPort: 10001,
					Ports:        []config.ServicePort{{Port: 80, Handlers: []string{"http"}}},
					TCPChecks: []config.Check{{Name: "services[0].tcp_checks[0]", Type: "tcp", // its port key is ignored, as flyctl does
						Interval: 5 * time.Second}},
				}},
				Warnings: []string{"line 12, column 5: services[0].tcp_checks[0].port: ignored: fly checks a service on its internal_port"},
			},
			check: func(t *testing.T, c *config.Config, p config.Plan) {
				assert.Equal(t, 10001, p.Spec.Port)
			},
		},
		{
			file: "processes.toml",
			want: config.Config{
				App: "processes",
				Processes: map[string]string{
					"web":    "bin/server --port 8080",
					"worker": "bin/worker -q 'default high'",
				},
				HTTPService: &config.HTTPService{InternalPort: 8080, Processes: []string{"web"}},
			},
			check: func(t *testing.T, c *config.Config, p config.Plan) {
				args, err := config.SplitCommand(c.Processes["worker"])
				require.NoError(t, err)
				assert.Equal(t, []string{"bin/worker", "-q", "default high"}, args)
			},
		},
		{
			file: "vm.toml",
			want: config.Config{
				App:           "vm",
				PrimaryRegion: "ams",
				HTTPService:   &config.HTTPService{InternalPort: 8080},
				VM: []config.VM{
					{Size: "shared-cpu-1x", Memory: "512mb", CPUs: 1},
					{Memory: "1024", Processes: []string{"worker"}},
				},
			},
			check: func(t *testing.T, c *config.Config, p config.Plan) {
				vms, ok := c.Raw["vm"].([]map[string]any)
				require.True(t, ok, "vm in Raw: %#v", c.Raw["vm"])
				assert.Equal(t, []map[string]any{
					{"size": "shared-cpu-1x", "memory": "512mb", "cpus": int64(1)},
					{"memory": int64(1024), "processes": []any{"worker"}},
				}, vms)
			},
		},
		{
			file: "headers_table.toml",
			want: config.Config{
				App: "headers-table",
				HTTPService: &config.HTTPService{InternalPort: 8080, Checks: []config.Check{
					{Name: "http_service.checks[0]", Type: "http", Path: "/health",
						Headers: map[string]string{"X-Forwarded-Proto": "https", "X-Retries": "3"}},
					{Name: "http_service.checks[1]", Type: "http", Path: "/ready",
						Headers: map[string]string{"Host": "example.com"}},
				}},
			},
			check: func(t *testing.T, c *config.Config, p config.Plan) {
				require.Len(t, p.Checks, 2)
				assert.Equal(t, map[string]string{"Host": "example.com"}, p.Checks[1].Headers)
			},
		},
		{
			file: "headers_list.toml",
			want: config.Config{
				App: "headers-list",
				Services: []config.Service{{
					InternalPort: 8080,
					HTTPChecks: []config.Check{
						{Name: "services[0].http_checks[0]", Type: "http", Path: "/health",
							Headers: map[string]string{"X-A": "1", "Host": "h.example"}},
						{Name: "services[0].http_checks[1]", Type: "http", Path: "/ready",
							Headers: map[string]string{"Authorization": "Bearer t"}},
					},
				}},
			},
		},
		{
			file: "empty_tables.toml",
			want: config.Config{
				App: "empty",
				Env: map[string]string{},
				HTTPService: &config.HTTPService{Checks: []config.Check{
					{Name: "http_service.checks[0]", Type: "http"}, // empty headers: none
				}},
			},
			check: func(t *testing.T, c *config.Config, p config.Plan) {
				assert.Equal(t, config.DefaultPort, p.Spec.Port, "empty [http_service]: fly's default port")
				assert.Equal(t, "rolling", p.StrategyName, "empty [deploy]: the defaults")
				assert.Equal(t, config.DefaultWaitTimeout, p.WaitTimeout)
				require.Len(t, p.Checks, 1)
				assert.Equal(t, config.DefaultPort, p.Checks[0].Port)
			},
		},
		{
			file: "comments.toml",
			want: config.Config{
				App:    "comments",
				Deploy: config.Deploy{Strategy: "canary"},
				Env:    map[string]string{"MODE": "prod"},
				Services: []config.Service{{
					InternalPort: 8080,
					Processes:    []string{"app"},
					Ports:        []config.ServicePort{{Port: 443, Handlers: []string{"tls", "http"}}},
				}},
			},
		},
		{
			file: "crlf.toml",
			want: config.Config{
				App:        "crlf",
				KillSignal: "SIGTERM",
				Deploy:     config.Deploy{Strategy: "rolling", ReleaseCommand: "bin/migrate --all"},
				// The line break inside a multi-line string is kept as written.
				Env: map[string]string{"NOTE": "two\r\nlines"},
				HTTPService: &config.HTTPService{InternalPort: 8080, Checks: []config.Check{
					{Name: "http_service.checks[0]", Type: "http", Path: "/health", Interval: 15 * time.Second},
				}},
			},
			check: func(t *testing.T, c *config.Config, p config.Plan) {
				assert.Equal(t, []string{"bin/migrate", "--all"}, p.ReleaseCommand, "no \\r left on a value")
			},
		},
		{
			file: "bom.toml",
			want: config.Config{
				App:         "bom",
				Build:       config.Build{Image: "registry/bom:1"},
				HTTPService: &config.HTTPService{InternalPort: 9000},
			},
		},
	}

	covered := map[string]bool{}
	for _, tc := range cases {
		covered[tc.file] = true
		t.Run(tc.file, func(t *testing.T) {
			c, err := config.Load(filepath.Join("testdata", tc.file))
			require.NoError(t, err)
			assert.NotEmpty(t, c.Raw)
			got := *c
			got.Raw = nil
			if tc.want.Unknown == nil {
				tc.want.Unknown = []string{}
			}
			assert.Equal(t, tc.want, got)
			p, err := c.Plan()
			require.NoError(t, err)
			assert.Equal(t, fixtureWarnings[tc.file], p.Warnings)
			if tc.check != nil {
				tc.check(t, c, p)
			}
		})
	}
	covered["restart.toml"] = true // TestRestartSections (restart_test.go)
	for _, path := range fixtureFiles(t) {
		assert.True(t, covered[filepath.Base(path)], "%s has no case in TestFixtures", path)
	}
}

// The CRLF and BOM fixtures hold what their names say (a checkout that
// rewrote line endings would make their cases prove nothing), and errors in
// such files still give the line and column of the key.
func TestFixturesLineEndings(t *testing.T) {
	crlf, err := os.ReadFile(filepath.Join("testdata", "crlf.toml"))
	require.NoError(t, err)
	assert.Equal(t, bytes.Count(crlf, []byte("\n")), bytes.Count(crlf, []byte("\r\n")), "every line of crlf.toml ends in CRLF")
	bom, err := os.ReadFile(filepath.Join("testdata", "bom.toml"))
	require.NoError(t, err)
	assert.True(t, bytes.HasPrefix(bom, []byte("\xef\xbb\xbf")), "bom.toml starts with a UTF-8 byte order mark")

	for _, tc := range []struct {
		name string
		src  string
	}{
		{"crlf", strings.ReplaceAll("app = \"a\"\n[deploy]\n  strategy = \"blue-green\"\n", "\n", "\r\n")},
		{"bom", "\ufeffapp = \"a\"\n[deploy]\n  strategy = \"blue-green\"\n"},
		{"bom and crlf", "\ufeffapp = \"a\"\r\n[deploy]\r\n  strategy = \"blue-green\"\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ce := parseErr(t, tc.src)
			assert.Equal(t, "deploy.strategy", ce.Key)
			assert.Equal(t, 3, ce.Line)
			assert.Equal(t, 3, ce.Column)
		})
	}
	t.Run("bom on the first line", func(t *testing.T) {
		ce := parseErr(t, "\ufeffkill_timeout = \"soon\"\n")
		assert.Equal(t, 1, ce.Line)
		assert.Equal(t, 1, ce.Column, "the mark is not a column")
	})
	t.Run("syntax error after a bom", func(t *testing.T) {
		ce := parseErr(t, "\ufeffapp = \"a\"\n[deploy\n")
		assert.Equal(t, 2, ce.Line)
		var se *config.SyntaxError
		assert.ErrorAs(t, ce, &se)
	})
}
