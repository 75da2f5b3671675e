#!/usr/bin/env bash
# bench/proxy.sh: throughput and latency of this proxy against the backend
# reached directly, the tuned httputil baseline, nginx and Caddy, on loopback.
#
# Runs, interleaved, RUNS (3) rounds of: direct, baseline, proxy, nginx, caddy,
# each for DUR (5) seconds at 32 connections (wrk with 2 threads; nginx and wrk
# are installed from Debian when missing, and bench/loadgen drives the load if
# wrk cannot be), and prints each one's min/median/max requests/s, median p50
# and p99, failures, the median CPU time per request of the server under test
# and of the backend (from /proc), and its share of the direct rate. The last
# two lines are
#   ratio_vs_caddy=Z.ZZ
#   ratio_vs_httputil=X.XX ratio_vs_nginx=Y.YY
# this proxy's median requests/s over Caddy's, the baseline's and nginx's.
#
# Caddy is its reverse_proxy handler (admin endpoint, automatic HTTPS and
# access log off, bound to 127.0.0.1), built once with
#   go install github.com/caddyserver/caddy/v2/cmd/caddy@$CADDY_VERSION
# from the Go module proxy into CADDY_DIR (default
# ~/.cache/cutover-bench/caddy-$CADDY_VERSION) and reused from there (the first
# build compiles some 900 packages: 42 minutes on a 2-core machine busy with
# other builds). CADDY=path
# uses a caddy binary of your own instead. When it cannot be built the script
# fails and says why (a comparison that silently lost a server would mislead);
# CADDY=off runs without Caddy and leaves out the ratio_vs_caddy line.
#
# ABLATION=1 adds the measuring devices of bench/ablation to each round
# (featureless, ownloop, raw: see its package doc) and prints each server's
# median requests/s over the baseline's; the last line is unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${DUR:-5}
RUNS=${RUNS:-3}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
ABLATION=${ABLATION:-}
CADDY=${CADDY:-}
CADDY_VERSION=${CADDY_VERSION:-v2.11.9}
CADDY_DIR=${CADDY_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cutover-bench/caddy-$CADDY_VERSION}
P_BACKEND=18080 P_BASELINE=18081 P_PROXY=18082 P_NGINX=18083 P_CADDY=18087
declare -A port=([direct]=$P_BACKEND [baseline]=$P_BASELINE [proxy]=$P_PROXY [nginx]=$P_NGINX)
names=(direct baseline proxy nginx)
if [ "$CADDY" != off ]; then
	port+=([caddy]=$P_CADDY)
	names+=(caddy)
fi
ablations=()
if [ -n "$ABLATION" ]; then
	ablations=(featureless ownloop raw)
	port+=([featureless]=18084 [ownloop]=18085 [raw]=18086)
	names+=("${ablations[@]}")
fi

tmp=$(mktemp -d)
chmod 755 "$tmp"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

if ! command -v nginx >/dev/null 2>&1 && [ -x /usr/sbin/nginx ]; then PATH=$PATH:/usr/sbin; fi
apt_updated=
apt_install() { # PACKAGE...: the first one Debian installs
	[ -n "$apt_updated" ] || { apt-get update -qq && apt_updated=1; }
	for pkg in "$@"; do
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null && return 0
	done
	return 1
}
if ! command -v nginx >/dev/null 2>&1; then
	echo "# installing nginx from Debian" >&2
	apt_install nginx-light nginx
	PATH=$PATH:/usr/sbin
fi
if ! command -v wrk >/dev/null 2>&1; then
	echo "# installing wrk from Debian" >&2
	apt_install wrk || echo "# wrk could not be installed; bench/loadgen drives the load" >&2
fi

go build -o "$tmp/" ./bench/backend ./bench/baseline ./bench/proxy ./bench/loadgen

# Caddy: built once from the Go module proxy at a pinned version, then reused.
if [ "$CADDY" != off ] && [ -z "$CADDY" ]; then
	CADDY=$CADDY_DIR/caddy
	if [ ! -x "$CADDY" ]; then
		echo "# building caddy $CADDY_VERSION into $CADDY_DIR (once; later runs reuse it)" >&2
		mkdir -p "$CADDY_DIR"
		if ! (cd "$tmp" && GOBIN="$CADDY_DIR" GOFLAGS=-buildvcs=false \
			go install "github.com/caddyserver/caddy/v2/cmd/caddy@$CADDY_VERSION") >"$tmp/caddy-build.log" 2>&1; then
			tail -n 20 "$tmp/caddy-build.log" >&2
			echo "bench/proxy.sh: could not build caddy $CADDY_VERSION with go install (output above)." >&2
			echo "bench/proxy.sh: set CADDY=/path/to/caddy to use another build, or CADDY=off to run without Caddy." >&2
			exit 1
		fi
	fi
fi
if [ "$CADDY" != off ]; then
	if ! out=$("$CADDY" version 2>&1); then
		echo "bench/proxy.sh: $CADDY does not run: $out (CADDY=off runs without Caddy)" >&2
		exit 1
	fi
	# The module version it was built from (its own "caddy version" can say "unknown").
	caddy_version=$(go version -m "$CADDY" 2>/dev/null | awk '$1 == "mod" { print $3; exit }')
	caddy_version=${caddy_version:-$out}
	# JSON config: no admin endpoint, no automatic HTTPS, no access log (Caddy
	# logs no request unless a server asks for it), errors only.
	cat >"$tmp/caddy.json" <<CADDYJSON
{
	"admin": {"disabled": true},
	"logging": {"logs": {"default": {"level": "ERROR"}}},
	"apps": {"http": {"servers": {"bench": {
		"listen": ["127.0.0.1:$P_CADDY"],
		"automatic_https": {"disable": true},
		"routes": [{"handle": [{
			"handler": "reverse_proxy",
			"upstreams": [{"dial": "127.0.0.1:$P_BACKEND"}]
		}]}]
	}}}}
}
CADDYJSON
fi
for n in "${ablations[@]}"; do go build -o "$tmp/" "./bench/ablation/$n"; done

cat >"$tmp/nginx.conf" <<NGINX
worker_processes auto;
daemon off;
pid $tmp/nginx.pid;
error_log $tmp/nginx-error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $tmp/nginx-body;
	proxy_temp_path $tmp/nginx-proxy;
	fastcgi_temp_path $tmp/nginx-fastcgi;
	uwsgi_temp_path $tmp/nginx-uwsgi;
	scgi_temp_path $tmp/nginx-scgi;
	upstream backend { server 127.0.0.1:$P_BACKEND; keepalive 100; }
	server {
		listen 127.0.0.1:$P_NGINX;
		location / {
			proxy_pass http://backend;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
		}
	}
}
NGINX

# A server left over from an earlier run would answer in place of the one
# started here, so refuse to run while any of the ports is taken.
for n in "${names[@]}"; do
	if (exec 3<>/dev/tcp/127.0.0.1/${port[$n]}) 2>/dev/null; then
		echo "bench/proxy.sh: 127.0.0.1:${port[$n]} is already in use; stop what listens there" >&2
		exit 1
	fi
done

declare -A pid
"$tmp/backend" -addr 127.0.0.1:$P_BACKEND & pids+=($!) pid[direct]=$!
"$tmp/baseline" -addr 127.0.0.1:$P_BASELINE -target http://127.0.0.1:$P_BACKEND & pids+=($!) pid[baseline]=$!
"$tmp/proxy" -addr 127.0.0.1:$P_PROXY -targets 127.0.0.1:$P_BACKEND & pids+=($!) pid[proxy]=$!
nginx -c "$tmp/nginx.conf" -p "$tmp" & pids+=($!) pid[nginx]=$!
if [ "$CADDY" != off ]; then
	# Caddy's own state (autosave, storage) stays in the temporary folder.
	XDG_CONFIG_HOME=$tmp/caddy-config XDG_DATA_HOME=$tmp/caddy-data \
		"$CADDY" run --config "$tmp/caddy.json" >"$tmp/caddy.log" 2>&1 & pids+=($!) pid[caddy]=$!
fi
for n in "${ablations[@]}"; do
	"$tmp/$n" -addr 127.0.0.1:${port[$n]} -target 127.0.0.1:$P_BACKEND & pids+=($!) pid[$n]=$!
done

for n in "${names[@]}"; do
	for try in $(seq 101); do
		if ! kill -0 "${pid[$n]}" 2>/dev/null; then
			echo "bench/proxy.sh: the $n server exited at start" >&2
			[ "$n" != caddy ] || tail -n 20 "$tmp/caddy.log" >&2
			exit 1
		fi
		if (exec 3<>/dev/tcp/127.0.0.1/${port[$n]}) 2>/dev/null; then break; fi
		if [ "$try" = 101 ]; then
			echo "bench/proxy.sh: the $n server is not listening on ${port[$n]} after 10s" >&2
			exit 1
		fi
		sleep 0.1 # waiting for the server process to listen
	done
done

if command -v wrk >/dev/null 2>&1; then
	TOOL=wrk
	echo "# load tool: wrk -t$THREADS -c$CONNS -d${DUR}s --latency"
else
	TOOL=loadgen
	echo "# load tool: bench/loadgen -c $CONNS -d ${DUR}s (wrk not installed)"
fi
[ "$CADDY" = off ] || echo "# caddy: $CADDY, built from github.com/caddyserver/caddy/v2 $caddy_version"
echo "# machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -sr), $(go version | cut -d' ' -f3)"

# cputicks PID: user+system clock ticks of PID and its children (nginx workers).
cputicks() {
	local s=0 p
	for p in "$1" $(pgrep -P "$1" || true); do
		s=$((s + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
	done
	echo "$s"
}
TICK=$(getconf CLK_TCK)

# load URL SECONDS -> "rps p50_us p99_us failures requests"
load() {
	local url=$1 d=$2
	if [ "$TOOL" = wrk ]; then
		wrk -t"$THREADS" -c"$CONNS" -d"${d}s" --latency "$url" | awk '
			function us(v) { if (v ~ /us$/) return v+0; if (v ~ /ms$/) return (v+0)*1000; if (v ~ /s$/) return (v+0)*1000000; return v+0 }
			/^ +50%/ { p50 = us($2) } /^ +99%/ { p99 = us($2) }
			/Requests\/sec/ { rps = $2 } / requests in / { n = $1 }
			/Non-2xx/ { fail += $NF } /Socket errors/ { gsub(/,/, ""); fail += $4 + $6 + $8 + $10 }
			END { printf "%s %d %d %d %d\n", rps, p50, p99, fail, n }'
	else
		"$tmp/loadgen" -url "$url" -c "$CONNS" -d "${d}s" | sed -E 's/rps=([^ ]+) p50_us=([^ ]+) p99_us=([^ ]+) requests=([^ ]+) failures=([^ ]+)/\1 \2 \3 \5 \4/'
	fi
}

# measure NAME SECONDS -> "rps p50_us p99_us failures cpu_us backend_cpu_us": cpu_us
# is the CPU time the server under test spent per request (for direct, the
# backend's), backend_cpu_us the backend's.
measure() {
	local n=$1 d=$2 s0 b0 out s1 b1
	s0=$(cputicks "${pid[$n]}") b0=$(cputicks "${pid[direct]}")
	out=$(load "${url[$n]}" "$d")
	s1=$(cputicks "${pid[$n]}") b1=$(cputicks "${pid[direct]}")
	awk -v o="$out" -v s="$((s1 - s0))" -v b="$((b1 - b0))" -v t="$TICK" 'BEGIN {
		split(o, f, " "); r = f[5] > 0 ? f[5] : 1
		printf "%s %s %s %s %.1f %.1f\n", f[1], f[2], f[3], f[4], s / t * 1e6 / r, b / t * 1e6 / r }'
}

declare -A url
for n in "${names[@]}"; do url[$n]=http://127.0.0.1:${port[$n]}/; done
for n in "${names[@]}"; do measure "$n" 1 >/dev/null; done # warm-up
declare -A res
for run in $(seq "$RUNS"); do
	for n in "${names[@]}"; do
		r=$(measure "$n" "$DUR")
		echo "run $run $n: rps p50_us p99_us failures cpu_us/req backend_cpu_us/req = $r"
		res[$n]+="$r"$'\n'
	done
done

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
declare -A med
echo "# name: requests/s min/median/max; median p50, p99 (us); failures; median CPU per request of the server and of the backend (us)"
for n in "${names[@]}"; do
	col() { printf '%s' "${res[$n]}" | awk -v c="$1" 'NF {print $c}'; }
	med[$n]=$(col 1 | median)
	printf '%-8s rps %s/%s/%s  p50 %sus  p99 %sus  failures %s  cpu %sus  backend_cpu %sus  share_of_direct %s\n' "$n" \
		"$(col 1 | sort -g | head -1)" "${med[$n]}" "$(col 1 | sort -g | tail -1)" \
		"$(col 2 | median)" "$(col 3 | median)" "$(col 4 | awk '{s+=$1} END {print s+0}')" \
		"$(col 5 | median)" "$(col 6 | median)" \
		"$(awk -v a="${med[$n]}" -v b="${med[direct]}" 'BEGIN {printf "%.2f", a/b}')"
done
if [ -n "$ABLATION" ]; then
	line="# median requests/s over the baseline's:"
	for n in proxy nginx ${port[caddy]:+caddy} "${ablations[@]}"; do
		line+=" $n $(awk -v a="${med[$n]}" -v b="${med[baseline]}" 'BEGIN {printf "%.2f", a/b}')"
	done
	echo "$line"
fi
if [ "$CADDY" != off ]; then
	awk -v p="${med[proxy]}" -v c="${med[caddy]}" 'BEGIN { printf "ratio_vs_caddy=%.2f\n", p/c }'
fi
awk -v p="${med[proxy]}" -v b="${med[baseline]}" -v n="${med[nginx]}" \
	'BEGIN { printf "ratio_vs_httputil=%.2f ratio_vs_nginx=%.2f\n", p/b, p/n }'
