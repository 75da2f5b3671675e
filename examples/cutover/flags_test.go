package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cutover/deploy/control"
)

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"120": 120 * time.Second, "1.5": 1500 * time.Millisecond, "0": 0,
		"2m": 2 * time.Minute, "90s": 90 * time.Second, "1m30s": 90 * time.Second,
	} {
		got, err := parseDuration(in)
		assert.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "two", "-5", "1e300", "5 m"} {
		_, err := parseDuration(in)
		assert.Error(t, err, in)
	}
}

func TestAgo(t *testing.T) {
	now := time.Now()
	for d, want := range map[time.Duration]string{
		5 * time.Second: "5s ago", 7*time.Minute + 52*time.Second: "7m ago", 90 * time.Minute: "1h ago",
		49 * time.Hour: "2d ago", -time.Second: "0s ago",
	} {
		assert.Equal(t, want, ago(now, now.Add(-d)), d)
	}
}

func TestClosestKey(t *testing.T) {
	assert.Equal(t, "deploy.strategy", closestKey("deploy.stratgy"))
	assert.Equal(t, "kill_timeout", closestKey("kill_timeot"))
	assert.Equal(t, "http_service.internal_port", closestKey("http_service.internal_prot"))
	assert.Equal(t, "http_service.checks.interval", closestKey("http_service.checks[0].intervall"))
	assert.Equal(t, "", closestKey("mounts"), "a key fly reads and cutover does not: no near key")
	assert.Equal(t, "", closestKey("metrics"))
}

func TestSelectLines(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	var lines []datedLine
	for i := range 5 {
		at := t0.Add(time.Duration(i) * time.Minute)
		lines = append(lines, datedLine{t: at, line: at.Format(logTimeLayout) + " line " + string(rune('a'+i))})
	}
	all := func(ls []datedLine) string {
		var s []string
		for _, l := range ls {
			s = append(s, l.line)
		}
		return strings.Join(s, "|")
	}
	str := func(ls []string) string { return strings.Join(ls, "|") }
	assert.Equal(t, all(lines), str(selectLines(lines, control.LogOptions{})))
	assert.Equal(t, all(lines[3:]), str(selectLines(lines, control.LogOptions{Lines: 2})))
	assert.Equal(t, all(lines[2:]), str(selectLines(lines, control.LogOptions{Since: t0.Add(2 * time.Minute)})))
	assert.Equal(t, all(lines[4:]), str(selectLines(lines, control.LogOptions{Since: t0.Add(90 * time.Second), Lines: 1})))
	assert.Empty(t, selectLines(lines, control.LogOptions{Since: t0.Add(time.Hour)}))
}

func TestLogLevelFlag(t *testing.T) {
	for _, name := range logLevels {
		var l logLevel
		assert.NoError(t, l.Set(name), name)
		assert.Equal(t, name, l.String())
	}
	var l logLevel
	assert.Equal(t, "info", l.String(), "the default")
	assert.ErrorContains(t, l.Set("loud"), "want trace, debug, info, warn, error, off")

	var out strings.Builder
	err := runServe(context.Background(), []string{"--log-level", "loud"}, &out, &out)
	assert.ErrorContains(t, err, `invalid value "loud" for flag -log-level: want trace, debug, info, warn, error, off`)
}

func TestDeployerLogInTheRing(t *testing.T) {
	var out strings.Builder
	ring := newLogRing(10, &out)
	log := ring.hclogger("deployer", hclog.Info)
	log.Debug("machine created", "machine", "m1")
	log.Info("deploy started", "app", "web", "release", 3)
	log.Warn("deploy failed", "phase", "health")
	kept, _, _ := ring.subscribe(control.LogOptions{})
	require.Len(t, kept, 2, "debug is below the level")
	assert.Regexp(t, `^\S+ \[INFO\]  deployer: deploy started: app=web release=3$`, kept[0])
	assert.Regexp(t, `^\S+ \[WARN\]  deployer: deploy failed: phase=health$`, kept[1])
	assert.Equal(t, strings.Join(kept, "\n")+"\n", out.String(), "copied to the ring's writer")
}
