package proxy

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"strings"
)

// The lean path's response reading: a strict parser of the response head,
// and the copying of the body (length-delimited, chunked, or up to EOF) and
// of trailers to the client.

var (
	errMalformedResponse = errors.New("proxy: malformed response from upstream")
	errHeaderTooLarge    = errors.New("proxy: upstream response header too large")
	errUnexpected1xx     = errors.New("proxy: unexpected 101 from upstream")
	errBadBody           = errors.New("proxy: malformed chunked body from upstream")
	errIdle408           = errors.New("proxy: 408 Request Timeout on a reused upstream connection")
)

const (
	bodyNone = iota
	bodyLength
	bodyChunked
	bodyClose
)

// head is a parsed response head.
type head struct {
	status    int
	mode      int
	length    int64
	keepAlive bool
	conn      bool // has a Connection header: strip the fields it names
}

// readLine returns the next line without its line ending; the slice is valid
// until the next read.
func (pc *pconn) readLine(limit int) ([]byte, error) {
	line, err := pc.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		pc.long = append(pc.long[:0], line...)
		for err == bufio.ErrBufferFull {
			if len(pc.long) > limit {
				return nil, errHeaderTooLarge
			}
			line, err = pc.br.ReadSlice('\n')
			pc.long = append(pc.long, line...)
		}
		line = pc.long
	}
	if err != nil {
		if err == io.EOF && len(line) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// readHead reads the status line and header of the final response into pc.hdr,
// forwarding 1xx interim responses (except 100, which the proxy did not ask for).
func (p *Proxy) readHead(pc *pconn, w http.ResponseWriter, r *http.Request, hd *head) error {
	for {
		line, err := pc.readLine(maxResponseHeaderBytes)
		if err != nil {
			return err
		}
		// HTTP/1.x SP 3DIGIT [SP reason]
		if len(line) < 12 || string(line[:7]) != "HTTP/1." || (line[7] != '0' && line[7] != '1') || line[8] != ' ' ||
			(len(line) > 12 && line[12] != ' ') {
			return errMalformedResponse
		}
		code := 0
		for _, c := range line[9:12] {
			if c < '0' || c > '9' {
				return errMalformedResponse
			}
			code = code*10 + int(c-'0')
		}
		if code < 100 {
			return errMalformedResponse
		}
		*hd = head{status: code, keepAlive: line[7] == '1', length: -1}
		if err := pc.readFields(hd, true); err != nil {
			return err
		}
		if code >= 200 {
			break
		}
		switch code {
		case http.StatusSwitchingProtocols:
			return errUnexpected1xx
		case http.StatusContinue:
			continue
		}
		// 103 Early Hints and the like: pass them on.
		h := w.Header()
		pc.setHeader(h, hd, "")
		w.WriteHeader(code)
		clear(h)
	}
	switch {
	case r.Method == http.MethodHead || hd.status == http.StatusNoContent || hd.status == http.StatusNotModified:
		hd.mode = bodyNone
	case hd.mode == bodyChunked:
	case hd.length >= 0:
		hd.mode = bodyLength
	default:
		hd.mode = bodyClose
		hd.keepAlive = false
	}
	return nil
}

// readFields reads header (or trailer) fields up to the empty line into
// pc.hdr/pc.offs, strictly: no obsolete folding, valid names and values.
// With framing it interprets Content-Length, Transfer-Encoding and Connection.
func (pc *pconn) readFields(hd *head, framing bool) error {
	pc.hdr, pc.offs = pc.hdr[:0], pc.offs[:0]
	for {
		line, err := pc.readLine(maxResponseHeaderBytes)
		if err != nil {
			return err
		}
		if len(line) == 0 {
			return nil
		}
		if len(pc.hdr)+len(line) > maxResponseHeaderBytes {
			return errHeaderTooLarge
		}
		colon := -1
		for i, c := range line {
			if c == ':' {
				colon = i
				break
			}
			if !isTokenChar(c) {
				return errMalformedResponse // includes folding (leading space) and space before the colon
			}
		}
		if colon <= 0 {
			return errMalformedResponse
		}
		name, val := line[:colon], line[colon+1:]
		for len(val) > 0 && (val[0] == ' ' || val[0] == '\t') {
			val = val[1:]
		}
		for len(val) > 0 && (val[len(val)-1] == ' ' || val[len(val)-1] == '\t') {
			val = val[:len(val)-1]
		}
		for _, c := range val {
			if (c < ' ' && c != '\t') || c == 0x7f {
				return errMalformedResponse
			}
		}
		if framing {
			switch {
			case asciiEqualFold(name, "Content-Length"):
				n, ok := parseLength(val)
				if !ok || (hd.length >= 0 && hd.length != n) {
					return errMalformedResponse
				}
				hd.length = n
			case asciiEqualFold(name, "Transfer-Encoding"):
				if hd.mode == bodyChunked || !asciiEqualFold(val, "chunked") {
					return errMalformedResponse // only a single "chunked" coding is supported
				}
				hd.mode = bodyChunked
			case asciiEqualFold(name, "Connection"):
				hd.conn = true
				if hasToken(val, "close") {
					hd.keepAlive = false
				}
			}
		}
		pc.offs = append(pc.offs, int32(len(pc.hdr)))
		pc.hdr = append(pc.hdr, name...)
		pc.offs = append(pc.offs, int32(len(pc.hdr)))
		pc.hdr = append(pc.hdr, val...)
		pc.offs = append(pc.offs, int32(len(pc.hdr)))
	}
}

// respSkip are response headers not passed to the client (hop-by-hop).
var respSkip = map[string]bool{
	"Connection": true, "Proxy-Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true,
	"Proxy-Authorization": true, "Te": true, "Transfer-Encoding": true, "Upgrade": true,
}

// setHeader copies the fields read by readFields into h, keys prefixed by prefix
// (http.TrailerPrefix for trailers): one string and one slice for all values.
func (pc *pconn) setHeader(h http.Header, hd *head, prefix string) {
	n := len(pc.offs) / 3
	if n == 0 {
		return
	}
	s := string(pc.hdr)
	vals := make([]string, n)
	var conn []string
	if hd.conn {
		conn = make([]string, 0, 1)
		for i := 0; i < n; i++ {
			o := pc.offs[3*i:]
			if k := s[o[0]:o[1]]; strings.EqualFold(k, "Connection") {
				conn = append(conn, s[o[1]:o[2]])
			}
		}
	}
	for i := 0; i < n; i++ {
		o := pc.offs[3*i:]
		k, v := s[o[0]:o[1]], s[o[1]:o[2]]
		if !isCanonical(k) {
			k = http.CanonicalHeaderKey(k)
		}
		if respSkip[k] || (hd.mode == bodyChunked && k == "Content-Length") || (conn != nil && listed(conn, k)) {
			continue
		}
		if prefix != "" {
			k = prefix + k
		}
		if old, ok := h[k]; ok {
			h[k] = append(old, v)
			continue
		}
		vals[i] = v
		h[k] = vals[i : i+1 : i+1]
	}
}

// fill makes sure data is buffered, flushing the client first when the read
// would block (so streamed responses reach the client promptly).
func (pc *pconn) fill(flush func()) error {
	if pc.br.Buffered() > 0 {
		return nil
	}
	flush()
	_, err := pc.br.Peek(1)
	return err
}

// copyN copies n body bytes (n < 0: until EOF) from the upstream to w.
func (pc *pconn) copyN(w io.Writer, n int64, flush func()) error {
	for n != 0 {
		if err := pc.fill(flush); err != nil {
			if err == io.EOF {
				if n < 0 {
					return nil
				}
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		k := pc.br.Buffered()
		if n > 0 && int64(k) > n {
			k = int(n)
		}
		b, _ := pc.br.Peek(k)
		if _, err := w.Write(b); err != nil {
			return err
		}
		_, _ = pc.br.Discard(k)
		if n > 0 {
			n -= int64(k)
		}
	}
	return nil
}

// copyChunked copies a chunked body to w, then its trailers into h.
func (pc *pconn) copyChunked(w io.Writer, h http.Header, flush func()) error {
	for {
		if err := pc.fill(flush); err != nil {
			return err
		}
		line, err := pc.readLine(4096)
		if err != nil {
			return err
		}
		size, ok := parseChunkSize(line)
		if !ok {
			return errBadBody
		}
		if size == 0 {
			var hd head
			if err := pc.readFields(&hd, false); err != nil {
				return err
			}
			pc.setHeader(h, &hd, http.TrailerPrefix)
			return nil
		}
		if err := pc.copyN(w, size, flush); err != nil {
			return err
		}
		if line, err := pc.readLine(16); err != nil || len(line) != 0 {
			return errBadBody
		}
	}
}

func parseChunkSize(line []byte) (int64, bool) {
	var n int64
	i := 0
	for ; i < len(line); i++ {
		c := line[i]
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			goto end
		}
		if i >= 15 {
			return 0, false
		}
		n = n<<4 | int64(d)
	}
end:
	if i == 0 {
		return 0, false
	}
	rest := line[i:]
	for len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t') {
		rest = rest[1:]
	}
	if len(rest) > 0 && rest[0] != ';' {
		return 0, false
	}
	return n, true
}

func parseLength(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func hasToken(v []byte, tok string) bool {
	for len(v) > 0 {
		i := 0
		for i < len(v) && v[i] != ',' {
			i++
		}
		t := v[:i]
		for len(t) > 0 && (t[0] == ' ' || t[0] == '\t') {
			t = t[1:]
		}
		for len(t) > 0 && (t[len(t)-1] == ' ' || t[len(t)-1] == '\t') {
			t = t[:len(t)-1]
		}
		if asciiEqualFold(t, tok) {
			return true
		}
		if i == len(v) {
			break
		}
		v = v[i+1:]
	}
	return false
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c, d := b[i], s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if 'A' <= d && d <= 'Z' {
			d += 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}

// isCanonical reports whether k is already in canonical MIME header form.
func isCanonical(k string) bool {
	upper := true
	for i := 0; i < len(k); i++ {
		c := k[i]
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			return false
		}
		upper = c == '-'
	}
	return true
}

// isTokenChar reports whether c may appear in a header field name (RFC 9110 token).
func isTokenChar(c byte) bool { return tokenChars[c] }

// tokenChars marks the visible ASCII characters other than delimiters.
var tokenChars = func() (t [256]bool) {
	for c := '!'; c <= '~'; c++ {
		t[c] = !strings.ContainsRune(`"(),/:;<=>?@[\]{}`, c)
	}
	return t
}()
