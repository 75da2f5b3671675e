package deploy

import (
	"errors"
	"fmt"
	"time"
)

// validate checks what a deploy of req with strat is given, before Deploy
// takes the app's lock or records a release: the Deployer's fields, the
// request, and the settings of the strategy and health checkers that are
// Validators. Its errors wrap ErrInvalid (ErrNoStrategy without a strategy)
// and name the field.
func (d *Deployer) validate(req Request, strat Strategy) error {
	if err := d.validateFields(); err != nil {
		return err
	}
	if err := validateSpec(req.Spec); err != nil {
		return err
	}
	if req.Count < 0 {
		return fmt.Errorf("request: %w: Count %d: want 0 (keep the current count) or more", ErrInvalid, req.Count)
	}
	if err := notNegative("request", duration{"WaitTimeout", req.WaitTimeout}, duration{"ReleaseCommandTimeout", req.ReleaseCommandTimeout}); err != nil {
		return err
	}
	names := make(map[string]bool, len(req.Groups))
	for _, g := range req.Groups {
		if err := validateSpec(g.Spec); err != nil {
			return fmt.Errorf("group %q: %w", g.Name, err)
		}
		switch {
		case g.Name == "" || g.Spec.App != req.Spec.App:
			return fmt.Errorf("group %q: %w: every group needs a name and the app %q", g.Name, ErrInvalid, req.Spec.App)
		case names[g.Name]:
			return fmt.Errorf("group %q: %w: two groups have this name", g.Name, ErrInvalid)
		case g.Count < 0:
			return fmt.Errorf("group %q: %w: Count %d: want 0 (keep the group's count) or more", g.Name, ErrInvalid, g.Count)
		}
		names[g.Name] = true
		if err := validated("group "+g.Name+": health check", g.Health); err != nil {
			return err
		}
	}
	if strat == nil {
		return ErrNoStrategy
	}
	if err := validated("deployer: Health", d.Health); err != nil {
		return err
	}
	if err := validated("request: Health", req.Health); err != nil {
		return err
	}
	return validated("strategy "+strat.Name(), strat)
}

// validateFields checks the Deployer's own fields, as Deploy, Scale and
// Recover need them: Backend and Router set, no negative duration.
func (d *Deployer) validateFields() error {
	if d.Backend == nil || d.Router == nil {
		return fmt.Errorf("deployer: %w: Backend and Router must be set", ErrInvalid)
	}
	return notNegative("deployer", duration{"WaitTimeout", d.WaitTimeout}, duration{"Timeout", d.Timeout}, duration{"LockTTL", d.LockTTL})
}

// validated runs v's Validate when v is a Validator; an error that does not
// wrap ErrInvalid is wrapped, with what names v.
func validated(what string, v any) error {
	val, ok := v.(Validator)
	if !ok {
		return nil
	}
	err := val.Validate()
	if err == nil || errors.Is(err, ErrInvalid) {
		return err
	}
	return fmt.Errorf("%s: %w: %w", what, ErrInvalid, err)
}

// duration is a named duration setting, for notNegative.
type duration struct {
	name string
	v    time.Duration
}

// notNegative fails for the first negative of the settings of the part what.
func notNegative(what string, settings ...duration) error {
	for _, s := range settings {
		if s.v < 0 {
			return fmt.Errorf("%s: %w: %s %s: want 0 (the default) or more", what, ErrInvalid, s.name, s.v)
		}
	}
	return nil
}
