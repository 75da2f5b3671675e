package proxy

import "time"

// RequestStats returns Stats as counters of standard types, per target
// address: requests, errors, and the latency histogram (each bucket's upper
// bound mapped to its count, empty buckets too). It makes the Proxy a
// deploy.StatsReporter, which strategy/canary reads.
func (p *Proxy) RequestStats() (requests, errors map[string]uint64, latency map[string]map[time.Duration]uint64) {
	st := p.Stats()
	requests = make(map[string]uint64, len(st))
	errors = make(map[string]uint64, len(st))
	latency = make(map[string]map[time.Duration]uint64, len(st))
	for a, s := range st {
		requests[a], errors[a], latency[a] = s.Requests, s.Errors, s.Latency.Buckets()
	}
	return requests, errors, latency
}

// Buckets returns the histogram's buckets: each upper bound mapped to its
// count, empty buckets too (the form deploy.StatsReporter reports).
func (h Histogram) Buckets() map[time.Duration]uint64 {
	out := make(map[time.Duration]uint64, numBuckets)
	for i, n := range h.counts {
		_, hi := bucketBounds(i)
		out[time.Duration(hi)] = n
	}
	return out
}
