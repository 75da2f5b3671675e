package main

import (
	"fmt"
	"io"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/cutover/deploy/config"
)

// knownKeys are the fly.toml keys package config reads, as dotted paths
// ("deploy.strategy", "http_service.checks.path"), from its JSON tags; read
// once, when a file first has an unknown key.
var knownKeys = sync.OnceValue(func() []string {
	var out []string
	seen := map[reflect.Type]bool{}
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || seen[t] && prefix != "" && strings.Count(prefix, ".") > 3 {
			return
		}
		seen[t] = true
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" || name == "-" {
				continue
			}
			out = append(out, prefix+name)
			if f.Type.Kind() != reflect.Map || f.Type.Elem().Kind() == reflect.Struct {
				walk(f.Type, prefix+name+".")
			}
		}
	}
	walk(reflect.TypeOf(config.Config{}), "")
	out = append(out, config.KeyCanarySteps, config.KeyCanaryStepDuration)
	sort.Strings(out)
	return out
})

var index = regexp.MustCompile(`\[\d+\]`)

// closestKey returns the known key nearest to key under the same table, or "".
func closestKey(key string) string {
	key = index.ReplaceAllString(key, "")
	parent, leaf := "", key
	if i := strings.LastIndexByte(key, '.'); i >= 0 {
		parent, leaf = key[:i+1], key[i+1:]
	}
	best, bestD := "", len(leaf)/3+2
	for _, k := range knownKeys() {
		if !strings.HasPrefix(k, parent) || strings.Contains(k[len(parent):], ".") {
			continue
		}
		if d := editDistance(leaf, k[len(parent):]); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// warnUnknown warns about each key of fly.toml that nothing reads, with the
// closest known key when one is near (a typo such as "stratgy").
func warnUnknown(w io.Writer, file string, cfg *config.Config) {
	for _, k := range cfg.Unknown {
		if config.IsExtension(k) {
			continue
		}
		if near := closestKey(k); near != "" {
			fmt.Fprintf(w, "warning: %s: unknown key %q: did you mean %q?\n", file, k, near)
			continue
		}
		fmt.Fprintf(w, "warning: %s: key %q is not used by cutover\n", file, k)
	}
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
