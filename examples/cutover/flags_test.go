package main

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

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
	var lines []string
	for i := range 5 {
		lines = append(lines, t0.Add(time.Duration(i)*time.Minute).Format(logTimeLayout)+" line "+string(rune('a'+i)))
	}
	all := func(ls []string) string { return strings.Join(ls, "|") }
	assert.Equal(t, all(lines), all(selectLines(lines, control.LogOptions{})))
	assert.Equal(t, all(lines[3:]), all(selectLines(lines, control.LogOptions{Lines: 2})))
	assert.Equal(t, all(lines[2:]), all(selectLines(lines, control.LogOptions{Since: t0.Add(2 * time.Minute)})))
	assert.Equal(t, all(lines[4:]), all(selectLines(lines, control.LogOptions{Since: t0.Add(90 * time.Second), Lines: 1})))
	assert.Empty(t, selectLines(lines, control.LogOptions{Since: t0.Add(time.Hour)}))
}
