// Command raw is a measuring device of bench/proxy.sh (ABLATION=1): a proxy with
// no net/http at all. It copies request and response heads line by line, adding
// X-Forwarded-For, and handles only bodiless requests and Content-Length
// responses. Not for production.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"io"
	"log"
	"net"
	"strconv"

	"github.com/cutover/deploy/bench/ablation"
)

// copyHead copies a message head from r to w up to its blank line, writing
// extra before that line, and returns the head's Content-Length (0 if none).
func copyHead(r *bufio.Reader, w *bufio.Writer, extra string) (int64, error) {
	var n int64
	for first := true; ; first = false {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		if len(line) <= 2 {
			_, _ = w.WriteString(extra)
			_, err := w.WriteString("\r\n")
			return n, err
		}
		const cl = "content-length:"
		if !first && len(line) > len(cl) && bytes.EqualFold(line[:len(cl)], []byte(cl)) {
			if n, err = strconv.ParseInt(string(bytes.TrimSpace(line[len(cl):])), 10, 64); err != nil {
				return 0, err
			}
		}
		_, _ = w.Write(line)
	}
}

func serve(c net.Conn, pool *ablation.Pool) {
	defer c.Close()
	r := bufio.NewReaderSize(c, 4096)
	w := bufio.NewWriterSize(c, 4096)
	host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
	xff := "X-Forwarded-For: " + host + "\r\n"
	for {
		if _, err := r.Peek(1); err != nil {
			return
		}
		u, err := pool.Get()
		if err != nil {
			return
		}
		if _, err := copyHead(r, u.W, xff); err != nil {
			u.Close()
			return
		}
		if err := u.W.Flush(); err != nil {
			u.Close()
			return
		}
		n, err := copyHead(u.R, w, "")
		if err == nil {
			_, err = io.CopyN(w, u.R, n)
		}
		if err != nil {
			u.Close()
			return
		}
		pool.Put(u)
		if err := w.Flush(); err != nil {
			return
		}
	}
}

func main() {
	addr := flag.String("addr", "127.0.0.1:18086", "listen address (loopback)")
	target := flag.String("target", "127.0.0.1:18080", "upstream host:port")
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	pool := &ablation.Pool{Addr: *target}
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go serve(c, pool)
	}
}
