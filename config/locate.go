package config

import (
	"sort"
	"strconv"
	"strings"
)

// The TOML parser does not export where each key was written (and what it
// keeps internally is one position per key path, without array indices). The
// locator scans the source, which the parser has already accepted, and
// records the position of every table header and key under the same paths
// the decoder uses, such as "services[1].http_checks[0].interval".

type position struct{ line, col int }

// Limits that keep the scan linear on pathological input: deeper values and
// longer keys are skipped over without recording positions.
const (
	maxDepth = 16
	maxSegs  = 32
	noPath   = "\x00" // a parent path no decoder key can match
)

type locator struct {
	src    string
	i      int
	keys   map[string]position
	arrays map[string]int // array-of-tables path -> index of its last element
	bad    bool           // gave up: what was recorded so far stays valid
	lines  []int          // offsets where lines start
	depth  int            // nesting of arrays and inline tables
}

func locate(src string) *locator {
	l := &locator{src: src, keys: map[string]position{}, arrays: map[string]int{}, lines: []int{0}}
	for i := 0; i < len(src); i++ {
		if src[i] == '\n' {
			l.lines = append(l.lines, i+1)
		}
	}
	l.run()
	return l
}

// find returns the line and column of key, or of its nearest recorded
// ancestor; 0, 0 when nothing matches.
func (l *locator) find(key string) (int, int) {
	for key != "" {
		if p, ok := l.keys[key]; ok {
			return p.line, p.col
		}
		cut := max(strings.LastIndexByte(key, '.'), strings.LastIndexByte(key, '['))
		if cut <= 0 {
			break
		}
		key = key[:cut]
	}
	return 0, 0
}

func (l *locator) pos(off int) position {
	n := sort.Search(len(l.lines), func(i int) bool { return l.lines[i] > off }) // first line after off
	return position{n, off - l.lines[n-1] + 1}
}

func (l *locator) record(path string, off int) {
	if l.depth > maxDepth || path == "" || strings.HasPrefix(path, noPath) {
		return
	}
	if _, ok := l.keys[path]; !ok {
		l.keys[path] = l.pos(off)
	}
}

func (l *locator) eof() bool { return l.i >= len(l.src) }

func (l *locator) peek() byte {
	if l.eof() {
		return 0
	}
	return l.src[l.i]
}

func (l *locator) skipSpace() {
	for !l.eof() && (l.src[l.i] == ' ' || l.src[l.i] == '\t') {
		l.i++
	}
}

// skipBlank skips spaces, newlines and comments.
func (l *locator) skipBlank() {
	for !l.eof() {
		switch l.src[l.i] {
		case ' ', '\t', '\r', '\n':
			l.i++
		case '#':
			l.skipLine()
		default:
			return
		}
	}
}

func (l *locator) skipLine() {
	if n := strings.IndexByte(l.src[l.i:], '\n'); n >= 0 {
		l.i += n + 1
	} else {
		l.i = len(l.src)
	}
}

func (l *locator) run() {
	current := ""
	for !l.bad {
		l.skipBlank()
		if l.eof() {
			return
		}
		start := l.i
		if l.peek() == '[' {
			current = l.header(start)
			if !l.bad {
				l.record(current, start)
			}
		} else {
			l.keyValue(current)
		}
		if l.bad {
			return
		}
		l.skipLine() // only a comment may follow
		if l.i <= start {
			return
		}
	}
}

// header reads [a.b] or [[a.b]] and returns the path it opens.
func (l *locator) header(start int) string {
	l.i++ // [
	array := l.peek() == '['
	if array {
		l.i++
	}
	segs := l.key()
	if l.bad || len(segs) == 0 {
		l.bad = true
		return ""
	}
	if len(segs) > maxSegs {
		return noPath
	}
	path := ""
	for j, s := range segs {
		path = join(path, s)
		l.record(path, start) // [checks.pg] also places "checks"; [[vm]] places "vm"
		last := j == len(segs)-1
		if last && array {
			n, seen := l.arrays[path]
			if seen {
				n++
			}
			l.arrays[path] = n
			path = index(path, n)
		} else if n, ok := l.arrays[path]; ok {
			path = index(path, n)
		}
	}
	return path
}

// key reads a dotted key and returns its segments.
func (l *locator) key() []string {
	var segs []string
	for {
		l.skipSpace()
		if l.eof() {
			l.bad = true
			return nil
		}
		var s string
		switch c := l.peek(); {
		case c == '"':
			end := l.basicStringEnd(l.i + 1)
			if end < 0 {
				l.bad = true
				return nil
			}
			lit := l.src[l.i : end+1]
			if u, err := strconv.Unquote(lit); err == nil {
				s = u
			} else {
				s = lit[1 : len(lit)-1]
			}
			l.i = end + 1
		case c == '\'':
			end := strings.IndexByte(l.src[l.i+1:], '\'')
			if end < 0 {
				l.bad = true
				return nil
			}
			s = l.src[l.i+1 : l.i+1+end]
			l.i += end + 2
		default:
			start := l.i
			for !l.eof() && isBare(l.src[l.i]) {
				l.i++
			}
			if l.i == start {
				l.bad = true
				return nil
			}
			s = l.src[start:l.i]
		}
		segs = append(segs, s)
		l.skipSpace()
		if l.peek() != '.' {
			return segs
		}
		l.i++
	}
}

func isBare(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// basicStringEnd returns the index of the quote closing a "..." string whose
// content starts at from, or -1.
func (l *locator) basicStringEnd(from int) int {
	for j := from; j < len(l.src); j++ {
		switch l.src[j] {
		case '\\':
			j++
		case '"':
			return j
		case '\n':
			return -1
		}
	}
	return -1
}

// keyValue reads key = value inside the table at parent (a table header's
// or an inline table's).
func (l *locator) keyValue(parent string) {
	start := l.i
	segs := l.key()
	if l.bad {
		return
	}
	path := parent
	if len(segs) > maxSegs {
		path = noPath
	} else {
		for _, s := range segs {
			path = join(path, s)
			l.record(path, start)
		}
	}
	l.skipSpace()
	if l.peek() != '=' {
		l.bad = true
		return
	}
	l.i++
	l.value(path)
}

// value skips one value, recording the keys of inline tables and the
// elements of arrays.
func (l *locator) value(path string) {
	l.skipSpace()
	if l.eof() {
		l.bad = true
		return
	}
	switch c := l.peek(); c {
	case '"', '\'':
		q := string([]byte{c, c, c})
		if strings.HasPrefix(l.src[l.i:], q) {
			l.multiline(q)
			return
		}
		if c == '"' {
			end := l.basicStringEnd(l.i + 1)
			if end < 0 {
				l.bad = true
				return
			}
			l.i = end + 1
			return
		}
		end := strings.IndexByte(l.src[l.i+1:], '\'')
		if end < 0 {
			l.bad = true
			return
		}
		l.i += end + 2
	case '[':
		l.i++
		l.depth++
		defer func() { l.depth-- }()
		if l.depth > maxDepth {
			path = noPath
		}
		for n := 0; ; n++ {
			l.skipBlank()
			if l.peek() == ']' {
				l.i++
				return
			}
			before := l.i
			l.record(index(path, n), l.i)
			l.value(index(path, n))
			if l.bad || l.i == before {
				l.bad = true
				return
			}
			l.skipBlank()
			switch l.peek() {
			case ',':
				l.i++
			case ']':
				l.i++
				return
			default:
				l.bad = true
				return
			}
		}
	case '{':
		l.i++
		l.depth++
		defer func() { l.depth-- }()
		if l.depth > maxDepth {
			path = noPath
		}
		for {
			l.skipSpace()
			if l.peek() == '}' {
				l.i++
				return
			}
			l.keyValue(path)
			if l.bad {
				return
			}
			l.skipSpace()
			switch l.peek() {
			case ',':
				l.i++
			case '}':
				l.i++
				return
			default:
				l.bad = true
				return
			}
		}
	default:
		// A number, boolean or datetime: runs to a delimiter. A datetime's
		// space-separated time part is left for the caller to skip.
		start := l.i
		for !l.eof() && strings.IndexByte(",]} \t\r\n#", l.src[l.i]) < 0 {
			l.i++
		}
		if l.i == start {
			l.bad = true
		}
	}
}

// multiline skips a multi-line string, basic or literal (q is its three
// opening quotes).
func (l *locator) multiline(q string) {
	j := l.i + 3
	for j < len(l.src) {
		if q == `"""` && l.src[j] == '\\' {
			j += 2
			continue
		}
		if strings.HasPrefix(l.src[j:], q) {
			// Up to two more quotes may belong to the content.
			j += 3
			for k := 0; k < 2 && j < len(l.src) && l.src[j] == q[0]; k++ {
				j++
			}
			l.i = j
			return
		}
		j++
	}
	l.bad = true
}
