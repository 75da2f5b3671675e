package engine

import (
	"errors"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cutover/deploy"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestShortIDAndValidRef(t *testing.T) {
	full := "4b7b023fa92e6f3c0c4a4d8b5c1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e"
	if got := ShortID(full); got != "4b7b023fa92e" {
		t.Fatalf("ShortID = %q", got)
	}
	for ref, want := range map[string]bool{
		"4b7b023fa92e": true, full: true, "9mnpnzenvg8p8tdbtq4wvbkcz": true,
		"4b7b023": false, "": false, "no-such-machine-0123": false, "4B7B023FA92E": false, ".*.*.*.*.*.*": false,
	} {
		if got := ValidRef(ref); got != want {
			t.Errorf("ValidRef(%q) = %v, want %v", ref, got, want)
		}
	}
}

func TestPick(t *testing.T) {
	ids := []string{"aaaaaaaaaaaa11", "aaaaaaaaaaaa22", "bbbbbbbbbbbb33"}
	id := func(s string) string { return s }
	if got, err := Pick("x", "bbbbbbbbbbbb", ids, id); err != nil || got != ids[2] {
		t.Fatalf("Pick(short) = %q, %v", got, err)
	}
	if got, err := Pick("x", ids[1], ids, id); err != nil || got != ids[1] {
		t.Fatalf("Pick(full) = %q, %v", got, err)
	}
	if _, err := Pick("x", "aaaaaaaaaaaa", ids, id); !errors.Is(err, deploy.ErrInvalid) {
		t.Fatalf("Pick(ambiguous) = %v, want ErrInvalid", err)
	}
	if _, err := Pick("x", "cccccccccccc", ids, id); !errors.Is(err, deploy.ErrNotFound) {
		t.Fatalf("Pick(missing) = %v, want ErrNotFound", err)
	}
}

func TestSortByCreated(t *testing.T) {
	type item struct {
		id      string
		label   string
		created time.Time
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	items := []item{
		{"c", t0.Add(2 * time.Millisecond).Format(time.RFC3339Nano), t0},
		{"b", "", t0.Add(time.Second)},
		{"a", t0.Add(time.Millisecond).Format(time.RFC3339Nano), t0},
		{"d", t0.Add(time.Second).Format(time.RFC3339Nano), t0},
	}
	SortByCreated(items,
		func(it item) map[string]string { return map[string]string{LabelCreated: it.label} },
		func(it item) time.Time { return it.created },
		func(it item) string { return it.id })
	var got []string
	for _, it := range items {
		got = append(got, it.id)
	}
	if want := []string{"a", "c", "b", "d"}; !slices.Equal(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
}
