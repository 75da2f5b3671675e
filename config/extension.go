package config

import (
	"fmt"
	"strings"
	"time"
)

// Keys of [deploy] that are this project's own extension of fly.toml. flyctl
// does not know them and ignores them; they appear in Config.Unknown (see
// IsExtension) and are read by Config.Canary.
const (
	// KeyCanarySteps is the traffic share of each canary step, in percent:
	// canary_steps = [10, 50]. The first step runs one canary machine.
	KeyCanarySteps = "deploy.canary_steps"
	// KeyCanaryStepDuration is how long each canary step is held:
	// canary_step_duration = "30s" (a bare integer means seconds).
	KeyCanaryStepDuration = "deploy.canary_step_duration"
	// KeyMaxBodyBytes is the largest request body, in bytes, that the proxy
	// in front of the app accepts (413 beyond): [http_service]
	// max_body_bytes = 10485760; 0 means no limit. cutover serve reads it per
	// app; without it, its --max-body-bytes applies.
	KeyMaxBodyBytes = "http_service.max_body_bytes"
)

// IsExtension reports whether key, as Config.Unknown lists it, is one of this
// project's extension keys.
func IsExtension(key string) bool {
	return key == KeyCanarySteps || key == KeyCanaryStepDuration || key == KeyMaxBodyBytes
}

// MaxBodyBytes reads the extension key http_service.max_body_bytes; set is
// false when the file does not have it. A negative or non-integer value is
// an error wrapping ErrInvalid that names the key.
func (c *Config) MaxBodyBytes() (n int64, set bool, err error) {
	hs, _ := c.Raw["http_service"].(map[string]any)
	v, ok := hs["max_body_bytes"]
	if !ok {
		return 0, false, nil
	}
	n, isInt := v.(int64)
	if !isInt || n < 0 {
		return 0, false, fmt.Errorf("%w: %s: want a whole number of bytes, 0 or more, not %v", ErrInvalid, KeyMaxBodyBytes, v)
	}
	return n, true, nil
}

// Canary is what the extension keys of [deploy] say about a canary deploy.
// Zero fields are unset: the strategy's defaults apply.
type Canary struct {
	Steps        []int         // traffic percent of each step, each 1..99
	StepDuration time.Duration // how long each step is held
}

// Canary reads the canary extension keys of [deploy]. A bad value is an
// error wrapping ErrInvalid that names the key.
func (c *Config) Canary() (Canary, error) {
	var out Canary
	dep, _ := c.Raw["deploy"].(map[string]any)
	if v, ok := dep["canary_steps"]; ok {
		steps, err := CanarySteps(v)
		if err != nil {
			return Canary{}, fmt.Errorf("%w: %s: %v", ErrInvalid, KeyCanarySteps, err)
		}
		out.Steps = steps
	}
	if v, ok := dep["canary_step_duration"]; ok {
		var d time.Duration
		var err error
		switch v := v.(type) {
		case int64:
			d = time.Duration(v) * time.Second
		case string:
			d, err = time.ParseDuration(strings.TrimSpace(v))
		default:
			err = fmt.Errorf("want a duration such as \"30s\" or a number of seconds, not %T", v)
		}
		if err == nil && d <= 0 {
			err = fmt.Errorf("want a positive duration, not %v", v)
		}
		if err != nil {
			return Canary{}, fmt.Errorf("%w: %s: %v", ErrInvalid, KeyCanaryStepDuration, err)
		}
		out.StepDuration = d
	}
	return out, nil
}

// CanarySteps reads canary step percentages: a TOML array of integers, or a
// string such as "10,50" (as a command-line flag gives it). Each is 1..99,
// and they must increase.
func CanarySteps(v any) ([]int, error) {
	var raw []any
	switch v := v.(type) {
	case []any:
		raw = v
	case string:
		for _, f := range strings.Split(v, ",") {
			f = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(f), "%"))
			var n int64
			if _, err := fmt.Sscan(f, &n); err != nil {
				return nil, fmt.Errorf("%q is not a number of percent", f)
			}
			raw = append(raw, n)
		}
	default:
		return nil, fmt.Errorf("want a list of percentages such as [10, 50], not %T", v)
	}
	if len(raw) == 0 {
		return nil, fmt.Errorf("want at least one step, such as [10, 50]")
	}
	out := make([]int, 0, len(raw))
	for _, r := range raw {
		n, ok := r.(int64)
		if !ok || n < 1 || n > 99 {
			return nil, fmt.Errorf("each step is a percent of traffic from 1 to 99, not %v", r)
		}
		if len(out) > 0 && int(n) <= out[len(out)-1] {
			return nil, fmt.Errorf("steps must increase: %d after %d", n, out[len(out)-1])
		}
		out = append(out, int(n))
	}
	return out, nil
}
