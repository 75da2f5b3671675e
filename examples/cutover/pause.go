package main

import (
	"context"
	"fmt"
	"io"
	"time"
)

const pauseAbout = `
Hold the app's new requests at the proxy (each at most --timeout, then 503
with Retry-After) and return once the requests in flight have completed: the
app then sees no traffic, for maintenance such as a database migration.
'cutover resume' releases the held requests, in arrival order.`

func runPause(ctx context.Context, args []string, stdout, _ io.Writer) error {
	c := newFlags("pause", "[--timeout D]", pauseAbout, stdout)
	timeout := c.fs.Duration("timeout", 30*time.Second, "how long each new request is held before it is answered 503; negative answers 503 at once")
	cl, err := c.connect(ctx, args)
	if err != nil {
		return err
	}
	defer cl.Close()
	if *timeout == 0 {
		return usagef("--timeout 0: give a duration such as 30s, or a negative one to answer 503 at once")
	}
	if err := cl.Pause(ctx, *timeout); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "paused: new requests are held (each up to %v, then 503) and none is in flight; run cutover resume to release them\n", *timeout)
	return nil
}

func runResume(ctx context.Context, args []string, stdout, _ io.Writer) error {
	c := newFlags("resume", "", "Release the requests held by 'cutover pause'; new requests flow again.", stdout)
	cl, err := c.connect(ctx, args)
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := cl.Resume(ctx); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "resumed: held requests go to the app")
	return nil
}
