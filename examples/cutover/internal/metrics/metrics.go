// Package metrics exports the cutover daemon's figures to Prometheus: the
// proxy's per-target statistics, read at scrape time, and the deploys and
// health check results, counted from the deploy events and results.
//
// The library's packages do not import Prometheus; this package, the
// daemon's own, reads what they expose.
package metrics

import (
	"maps"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/proxy"
)

// Source is what the Collector reads of one app's proxy at scrape time;
// *proxy.Proxy implements it.
type Source interface {
	Stats() map[string]proxy.TargetStats
	QueueStats() proxy.QueueStats
	Retries() uint64
	Paused() (bool, time.Time)
}

var _ Source = (*proxy.Proxy)(nil)

// LatencyBuckets are the upper bounds of the request latency histogram, in
// seconds: powers of two of nanoseconds from 2^16 (65.5µs) to 2^35 (34.4s),
// the edges of the proxy's own buckets, so the counts are exact.
var LatencyBuckets = func() []float64 {
	var b []float64
	for e := 16; e <= 35; e++ {
		b = append(b, float64(int64(1)<<e)/1e9)
	}
	return b
}()

// DeployBuckets are the upper bounds of the deploy duration histogram, in seconds.
var DeployBuckets = []float64{1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800}

var (
	targetLabels = []string{"app", "target"}
	descRequests = prometheus.NewDesc("cutover_proxy_requests_total",
		"Attempts sent to the target (a retried request counts on each target it tried).", targetLabels, nil)
	descErrors = prometheus.NewDesc("cutover_proxy_errors_total",
		"Attempts to the target that failed: 5xx responses and transport errors.", targetLabels, nil)
	descLatency = prometheus.NewDesc("cutover_proxy_request_duration_seconds",
		"Time from sending a request to the target's response headers.", targetLabels, nil)
	descInFlight = prometheus.NewDesc("cutover_proxy_requests_in_flight",
		"Requests in flight to the target.", targetLabels, nil)
	descWeight = prometheus.NewDesc("cutover_proxy_target_weight",
		"The target's weight in the app's target set (0: draining or held out).", targetLabels, nil)
	descDequeued = prometheus.NewDesc("cutover_proxy_target_dequeued_total",
		"Requests the target got after waiting in the app's queue.", targetLabels, nil)
	descWaiting = prometheus.NewDesc("cutover_proxy_queue_waiting",
		"Requests waiting now for a target under its hard limit, or held by a pause.", []string{"app"}, nil)
	descQueued = prometheus.NewDesc("cutover_proxy_queued_total",
		"Requests that entered the app's queue (concurrency limit or pause).", []string{"app"}, nil)
	descShed = prometheus.NewDesc("cutover_proxy_shed_total",
		"Requests answered 503 because they could not wait or waited too long.", []string{"app"}, nil)
	descRetries = prometheus.NewDesc("cutover_proxy_retries_total",
		"Attempts after a request's first: on another target, or again after a broken connection.", []string{"app"}, nil)
	descPaused = prometheus.NewDesc("cutover_proxy_paused",
		"1 while the app's traffic is paused (cutover pause), else 0.", []string{"app"}, nil)
)

// Collector is a prometheus.Collector for the apps of a daemon. Create it
// with New; it is safe for concurrent use.
type Collector struct {
	mu   sync.Mutex
	apps map[string]Source

	deploys   *prometheus.CounterVec
	deployDur *prometheus.HistogramVec
	health    *prometheus.CounterVec
	running   *prometheus.GaugeVec
}

// New returns a Collector with no app.
func New() *Collector {
	return &Collector{
		apps: map[string]Source{},
		deploys: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cutover_deploys_total",
			Help: "Finished deploys and rollbacks by app, strategy and outcome (succeeded, failed, rolled_back).",
		}, []string{"app", "strategy", "outcome"}),
		deployDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "cutover_deploy_duration_seconds",
			Help:    "How long finished deploys took, by app, strategy and outcome.",
			Buckets: DeployBuckets,
		}, []string{"app", "strategy", "outcome"}),
		health: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cutover_health_checks_total",
			Help: "Health check verdicts on machines (deploy gates and continuous checks) by app and result (healthy, unhealthy).",
		}, []string{"app", "result"}),
		running: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cutover_deploys_running",
			Help: "Deploys running now, by app.",
		}, []string{"app"}),
	}
}

// AddApp adds (or replaces) the proxy of app.
func (c *Collector) AddApp(app string, s Source) {
	c.mu.Lock()
	c.apps[app] = s
	c.mu.Unlock()
	c.running.WithLabelValues(app).Add(0)
}

// RemoveApp removes app's proxy; its deploy counters stay.
func (c *Collector) RemoveApp(app string) {
	c.mu.Lock()
	delete(c.apps, app)
	c.mu.Unlock()
}

// Event counts what e says: a deploy started, a machine found healthy or
// unhealthy. Give it every event of the Deployer and of the Monitor.
func (c *Collector) Event(e deploy.Event) {
	switch e.Type {
	case deploy.DeployStarted:
		c.running.WithLabelValues(e.App).Inc()
	case deploy.MachineHealthy:
		c.health.WithLabelValues(e.App, "healthy").Inc()
	case deploy.MachineUnhealthy:
		c.health.WithLabelValues(e.App, "unhealthy").Inc()
	}
}

// Result counts a finished deploy or rollback and observes its duration.
// Give it the Result of every Deploy and Rollback (nil is ignored).
func (c *Collector) Result(r *deploy.Result) {
	if r == nil {
		return
	}
	strategy := r.Strategy
	if strategy == "" {
		strategy = "none"
	}
	c.deploys.WithLabelValues(r.App, strategy, string(r.Status)).Inc()
	if !r.Finished.IsZero() && !r.Started.IsZero() {
		c.deployDur.WithLabelValues(r.App, strategy, string(r.Status)).Observe(r.Duration().Seconds())
	}
	if r.Counts[deploy.DeployStarted] > 0 {
		c.running.WithLabelValues(r.App).Dec()
	}
}

// Describe sends the descriptions of every metric.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRequests, descErrors, descLatency, descInFlight, descWeight,
		descDequeued, descWaiting, descQueued, descShed, descRetries, descPaused} {
		ch <- d
	}
	c.deploys.Describe(ch)
	c.deployDur.Describe(ch)
	c.health.Describe(ch)
	c.running.Describe(ch)
}

// Collect reads every app's proxy statistics now and sends them with the
// deploy and health counters.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	apps := maps.Clone(c.apps)
	c.mu.Unlock()
	for app, s := range apps {
		for addr, st := range s.Stats() { // the registry sorts what it gathers
			ch <- prometheus.MustNewConstMetric(descRequests, prometheus.CounterValue, float64(st.Requests), app, addr)
			ch <- prometheus.MustNewConstMetric(descErrors, prometheus.CounterValue, float64(st.Errors), app, addr)
			ch <- prometheus.MustNewConstMetric(descDequeued, prometheus.CounterValue, float64(st.Queued), app, addr)
			ch <- prometheus.MustNewConstMetric(descInFlight, prometheus.GaugeValue, float64(st.InFlight), app, addr)
			ch <- prometheus.MustNewConstMetric(descWeight, prometheus.GaugeValue, float64(st.Weight), app, addr)
			buckets := make(map[float64]uint64, len(LatencyBuckets))
			for _, le := range LatencyBuckets {
				buckets[le] = st.Latency.CountBelow(time.Duration(le * 1e9))
			}
			ch <- prometheus.MustNewConstHistogram(descLatency, st.Latency.Count(), st.Latency.Sum().Seconds(), buckets, app, addr)
		}
		q := s.QueueStats()
		ch <- prometheus.MustNewConstMetric(descWaiting, prometheus.GaugeValue, float64(q.Waiting), app)
		ch <- prometheus.MustNewConstMetric(descQueued, prometheus.CounterValue, float64(q.Queued), app)
		ch <- prometheus.MustNewConstMetric(descShed, prometheus.CounterValue, float64(q.Shed), app)
		ch <- prometheus.MustNewConstMetric(descRetries, prometheus.CounterValue, float64(s.Retries()), app)
		paused, _ := s.Paused()
		ch <- prometheus.MustNewConstMetric(descPaused, prometheus.GaugeValue, float64(b2i(paused)), app)
	}
	c.deploys.Collect(ch)
	c.deployDur.Collect(ch)
	c.health.Collect(ch)
	c.running.Collect(ch)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Handler returns an http.Handler serving c's metrics, with the Go runtime's
// and the process's, in the Prometheus text format (as /metrics does).
func (c *Collector) Handler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

// Server returns an *http.Server on addr serving c's metrics at /metrics (and
// a one-line page at /), with the timeouts of a server exposed to clients.
func (c *Collector) Server(addr string) *http.Server {
	mux := http.NewServeMux()
	mux.Handle("/metrics", c.Handler())
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte("cutover metrics: /metrics\n"))
	})
	return proxy.NewServer(addr, mux, proxy.ServerOptions{})
}
