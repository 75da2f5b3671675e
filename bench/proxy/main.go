// Command proxy runs this module's proxy for bench/proxy.sh with every feature
// on: a weighted target set (replaced once at start, through SetTargets, so
// draining and claims are live), per-target statistics, dial retries,
// X-Forwarded-* headers, a response-header timeout, client-disconnect
// cancellation, a body size limit, and NewServer's safe server defaults.
package main

import (
	"context"
	"flag"
	"log"
	"os"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/cutover/deploy/proxy"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18082", "listen address (loopback)")
	targets := flag.String("targets", "127.0.0.1:18080", "comma-separated upstream host:port list")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the first -profiletime here")
	profileTime := flag.Duration("profiletime", 10*time.Second, "how long -cpuprofile records")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		time.AfterFunc(*profileTime, func() { pprof.StopCPUProfile(); f.Close() })
	}
	p := proxy.New(proxy.Options{
		DrainTimeout:          10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		MaxBodyBytes:          10 << 20,
	})
	set := map[string]int{}
	for _, t := range strings.Split(*targets, ",") {
		set[t] = 100
	}
	if err := p.SetTargets(context.Background(), set); err != nil {
		log.Fatal(err)
	}
	srv := proxy.NewServer(*addr, p, proxy.ServerOptions{})
	log.Fatal(srv.ListenAndServe())
}
