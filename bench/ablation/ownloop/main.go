// Command ownloop is a measuring device of bench/proxy.sh (ABLATION=1): this
// module's Proxy, built as bench/proxy builds it (bench/internal/featured),
// served by its own HTTP/1.1 connection loop (http.ReadRequest and a minimal
// ResponseWriter) instead of net/http's server. It shows what leaving
// net/http's server would be worth. Not for production: it has no timeouts, no
// client-disconnect detection, no Expect or upgrade handling and no graceful
// shutdown.
package main

import (
	"bufio"
	"context"
	"flag"
	"log"
	"net"
	"net/http"
	"strconv"

	"github.com/cutover/deploy/bench/internal/featured"
)

// writer is a minimal http.ResponseWriter: Content-Length bodies as given,
// others chunked.
type writer struct {
	w       *bufio.Writer
	h       http.Header
	wrote   bool
	chunked bool
	num     [20]byte
}

func (w *writer) Header() http.Header { return w.h }

func (w *writer) WriteHeader(code int) {
	if w.wrote {
		return
	}
	w.wrote = true
	_, _ = w.w.WriteString("HTTP/1.1 ")
	_, _ = w.w.Write(strconv.AppendInt(w.num[:0], int64(code), 10))
	_, _ = w.w.WriteString(" " + http.StatusText(code) + "\r\n")
	if _, ok := w.h["Content-Length"]; !ok {
		w.chunked = true
		_, _ = w.w.WriteString("Transfer-Encoding: chunked\r\n")
	}
	for k, vv := range w.h {
		for _, v := range vv {
			_, _ = w.w.WriteString(k + ": " + v + "\r\n")
		}
	}
	_, _ = w.w.WriteString("\r\n")
}

func (w *writer) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	if !w.chunked {
		return w.w.Write(b)
	}
	_, _ = w.w.Write(strconv.AppendInt(w.num[:0], int64(len(b)), 16))
	_, _ = w.w.WriteString("\r\n")
	n, err := w.w.Write(b)
	_, _ = w.w.WriteString("\r\n")
	return n, err
}

func (w *writer) Flush() { _ = w.w.Flush() }

func serve(c net.Conn, h http.Handler) {
	defer c.Close()
	r := bufio.NewReaderSize(c, 4096)
	w := &writer{w: bufio.NewWriterSize(c, 4096)}
	remote := c.RemoteAddr().String()
	for {
		if _, err := r.Peek(1); err != nil {
			return
		}
		req, err := http.ReadRequest(r)
		if err != nil {
			return
		}
		ctx, cancel := context.WithCancel(context.Background())
		req = req.WithContext(ctx)
		req.RemoteAddr = remote
		w.h, w.wrote, w.chunked = make(http.Header), false, false
		h.ServeHTTP(w, req)
		cancel()
		w.WriteHeader(http.StatusOK)
		if w.chunked {
			_, _ = w.w.WriteString("0\r\n\r\n")
		}
		if err := w.w.Flush(); err != nil {
			return
		}
	}
}

func main() {
	addr := flag.String("addr", "127.0.0.1:18085", "listen address (loopback)")
	target := flag.String("target", "127.0.0.1:18080", "upstream host:port")
	flag.Parse()
	p, err := featured.New([]string{*target})
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go serve(c, p)
	}
}
