// Package ablation holds measuring devices for `ABLATION=1 bash bench/proxy.sh`:
// three throwaway proxies that each drop part of what this module's proxy does,
// so that a run shows where the remaining cost per request lies on a machine.
// None is for production use: they proxy only simple requests and skip the
// checks a real proxy makes.
//
//   - featureless: net/http's server, a pooled upstream connection and a pooled
//     copy buffer; no weights, statistics, retries, timeouts or header rules.
//   - ownloop: this module's Proxy as bench/proxy builds it, served by
//     its own HTTP/1.1 connection loop (http.ReadRequest and a minimal
//     ResponseWriter) instead of net/http's server.
//   - raw: no net/http at all; request and response heads are copied line by
//     line (Content-Length bodies only).
package ablation
