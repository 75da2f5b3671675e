// Command proxy runs this module's proxy for bench/proxy.sh with every feature
// on (bench/internal/featured: weighted targets installed through SetTargets,
// per-target statistics, dial retries, X-Forwarded-* headers, a response-header
// timeout, client-disconnect cancellation, a body size limit) under NewServer's
// safe server defaults.
package main

import (
	"flag"
	"log"
	"os"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/cutover/deploy/bench/internal/featured"
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
	p, err := featured.New(strings.Split(*targets, ","))
	if err != nil {
		log.Fatal(err)
	}
	srv := proxy.NewServer(*addr, p, proxy.ServerOptions{})
	log.Fatal(srv.ListenAndServe())
}
