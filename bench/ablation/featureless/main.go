// Command featureless is a measuring device of bench/proxy.sh (ABLATION=1): a
// proxy on net/http's server with a pooled upstream connection and a pooled copy
// buffer, and none of the features of this module's proxy. Not for production.
package main

import (
	"flag"
	"io"
	"log"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/cutover/deploy/bench/ablation"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18084", "listen address (loopback)")
	target := flag.String("target", "127.0.0.1:18080", "upstream host:port")
	flag.Parse()
	pool := &ablation.Pool{Addr: *target}
	bufs := sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, err := pool.Get()
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		_, _ = u.W.WriteString(r.Method + " " + r.RequestURI + " HTTP/1.1\r\nHost: " + r.Host + "\r\n")
		for k, vv := range r.Header {
			for _, v := range vv {
				_, _ = u.W.WriteString(k + ": " + v + "\r\n")
			}
		}
		_, _ = u.W.WriteString("\r\n")
		if err := u.W.Flush(); err != nil {
			u.Close()
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		resp, err := http.ReadResponse(u.R, r)
		if err != nil {
			u.Close()
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		for k, vv := range resp.Header {
			w.Header()[k] = vv
		}
		if resp.ContentLength >= 0 {
			w.Header().Set("Content-Length", strconv.FormatInt(resp.ContentLength, 10))
		}
		w.WriteHeader(resp.StatusCode)
		bp := bufs.Get().(*[]byte)
		_, err = io.CopyBuffer(w, resp.Body, *bp)
		bufs.Put(bp)
		resp.Body.Close()
		if err != nil || resp.Close {
			u.Close()
			return
		}
		pool.Put(u)
	})
	srv := &http.Server{Addr: *addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.ListenAndServe())
}
