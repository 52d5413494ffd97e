#!/usr/bin/env bash
# compare.sh loads duplex serve and the same two endpoints on other
# WebSocket libraries with duplex bench, one server at a time, on one
# machine, and prints a markdown table per scenario (medians over the
# rounds, and ratios to gorilla/websocket).
#
#   internal/thirdparty/compare.sh            # everything, about 30 minutes
#   SERVERS='duplex-poller gorilla' SCENARIOS=echo32 ECHO_ROUNDS=1 internal/thirdparty/compare.sh
#
# Servers: duplex-poller (duplex serve --io poller: /ws/echo and
# /ws/broadcast on ws.Handler held by the epoll ws.Poller),
# duplex-goroutine (--io goroutine: a goroutine per connection), gorilla,
# gws, nbio, gobwas and coder (cmd/peerserve), node-ws (peers/ws-server.mjs
# on the ws of test/interop, skipped without node or
# test/interop/node_modules/ws) and node-ws-bufferutil, the same with ws's
# optional native addon bufferutil (which masks and unmasks payloads) found
# through NODE_PATH=BUFFERUTIL_PATH, skipped when BUFFERUTIL_PATH is not
# set:
#   npm install --prefix /tmp/bu bufferutil && BUFFERUTIL_PATH=/tmp/bu/node_modules internal/thirdparty/compare.sh
#
# Scenarios (duplex bench help bench):
#   echo32   echo, 1,000 connections x 32-byte messages
#   echo64k  echo, 100 connections x 64 KiB messages
#   connect  connect: open + close handshakes, 10 workers
#   fanoutN  fanout to 1,000 subscribers (and the publisher) at N messages/s
#   idle     IDLE_CONNS idle connections held IDLE_HOLD
#
# The server runs on CPU 0 (taskset -c 0) and duplex bench on CPU 1, each
# with ulimit -n 20000; a fresh server for every run, on a free port on
# 127.0.0.1. The echo scenarios run ECHO_ROUNDS times, the others
# OTHER_ROUNDS times, interleaved: round by round, scenario by scenario,
# every server in turn (the order rotating by round), so that a burst of
# load from elsewhere does not hit one server only. Every run is bounded
# by timeout(1). The JSON summaries, server logs and the tables
# (results.md) go to OUT (default: a new temporary directory).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

SERVERS=${SERVERS:-"duplex-poller duplex-goroutine gorilla gws nbio gobwas coder node-ws node-ws-bufferutil"}
SCENARIOS=${SCENARIOS:-"echo32 echo64k connect fanout50 fanout200 idle"}
ECHO_ROUNDS=${ECHO_ROUNDS:-3}
OTHER_ROUNDS=${OTHER_ROUNDS:-2}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
BUFFERUTIL_PATH=${BUFFERUTIL_PATH:-}
IDLE_CONNS=${IDLE_CONNS:-19500}
IDLE_HOLD=${IDLE_HOLD:-5s}
OUT=${OUT:-$(mktemp -d /tmp/duplex-compare.XXXXXX)}

node_ws="$root/test/interop/node_modules/ws"
mkdir -p "$OUT/runs"
log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

log "building into $OUT"
(cd "$root" && go build -o "$OUT/duplex" ./cmd/duplex)
(cd "$here" && go build -o "$OUT/peerserve" ./cmd/peerserve)

# server_cmd NAME ADDR prints the command that serves NAME on ADDR.
server_cmd() {
	case $1 in
	duplex-poller) echo "$OUT/duplex serve --addr $2 --io poller --no-deflate --drain 2s --log-level warn" ;;
	duplex-goroutine) echo "$OUT/duplex serve --addr $2 --io goroutine --no-deflate --drain 2s --log-level warn" ;;
	node-ws) echo "node $here/peers/ws-server.mjs --addr $2" ;;
	node-ws-bufferutil) echo "env NODE_PATH=$BUFFERUTIL_PATH node $here/peers/ws-server.mjs --addr $2" ;;
	*) echo "$OUT/peerserve --lib $1 --addr $2" ;;
	esac
}

# bench_args SCENARIO prints duplex bench's arguments and the path.
bench_args() {
	case $1 in
	echo32) echo "echo --conns 1000 --size 32 --duration $DURATION --warmup $WARMUP /ws/echo" ;;
	echo64k) echo "echo --conns 100 --size 65536 --duration $DURATION --warmup $WARMUP /ws/echo" ;;
	connect) echo "connect --conns 10 --duration $DURATION --warmup 1s /ws/echo" ;;
	fanout[0-9]*) echo "fanout --conns 1000 --rate ${1#fanout} --duration $DURATION --warmup $WARMUP /ws/broadcast" ;;
	idle) echo "idle --conns $IDLE_CONNS --duration $IDLE_HOLD /ws/echo" ;;
	*) echo "compare.sh: unknown scenario $1" >&2; return 1 ;;
	esac
}

# free_port prints a port on 127.0.0.1 that nothing listens on, below the
# ephemeral range, so that no client connection holds it.
free_port() {
	local p
	for _ in $(seq 100); do
		p=$((10000 + RANDOM % 20000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
	echo "compare.sh: no free port" >&2
	return 1
}

pid=
stop_server() {
	[[ -n $pid ]] || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	pid=
}
trap stop_server EXIT
trap 'exit 130' INT TERM

# run SCENARIO SERVER ROUND runs one measurement into $OUT/runs.
run() {
	local scenario=$1 server=$2 round=$3
	local base="$OUT/runs/$scenario.$server.$round"
	local port addr args path limit
	port=$(free_port)
	addr="127.0.0.1:$port"
	read -r -a args <<<"$(bench_args "$scenario")"
	path=${args[-1]}
	unset 'args[-1]'
	# shellcheck disable=SC2046 # the command is split on purpose
	(ulimit -n 20000 && exec taskset -c 0 $(server_cmd "$server" "$addr")) >"$base.server.log" 2>&1 &
	pid=$!
	for _ in $(seq 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
		log "$scenario $server #$round: the server did not start (see $base.server.log)"
		stop_server
		return
	fi
	limit=120
	[[ $scenario == idle ]] && limit=300
	log "$scenario $server #$round on $addr (pid $pid)"
	if ! (ulimit -n 20000 && exec timeout -k 5 "$limit" taskset -c 1 "$OUT/duplex" bench "${args[@]}" \
		--json --server-pid "$pid" "ws://$addr$path") >"$base.json" 2>"$base.err"; then
		log "$scenario $server #$round: duplex bench failed (see $base.err)"
		mv "$base.json" "$base.json.failed" 2>/dev/null || true
	fi
	stop_server
}

for scenario in $SCENARIOS; do
	bench_args "$scenario" >/dev/null
done
servers=()
for s in $SERVERS; do
	if [[ $s == node-ws* ]] && ! { command -v node >/dev/null && [[ -d $node_ws ]]; }; then
		log "skipping $s: no node or no $node_ws"
		continue
	fi
	if [[ $s == node-ws-bufferutil && ! -d $BUFFERUTIL_PATH/bufferutil ]]; then
		log "skipping $s: BUFFERUTIL_PATH does not hold bufferutil"
		continue
	fi
	servers+=("$s")
done

rounds=$((ECHO_ROUNDS > OTHER_ROUNDS ? ECHO_ROUNDS : OTHER_ROUNDS))
started=$(date -u '+%Y-%m-%d %H:%M UTC')
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for ((round = 1; round <= rounds; round++)); do
	for scenario in $SCENARIOS; do
		case $scenario in
		echo*) ((round <= ECHO_ROUNDS)) || continue ;;
		*) ((round <= OTHER_ROUNDS)) || continue ;;
		esac
		n=${#servers[@]}
		for ((i = 0; i < n; i++)); do
			run "$scenario" "${servers[(i + round - 1) % n]}" "$round"
		done
	done
done

# median FILES... JQ-PATH prints the median of the path over the runs, or
# "-" without any.
median() {
	local path=${*: -1}
	local files=("${@:1:$#-1}")
	((${#files[@]})) || { echo -; return; }
	jq -s "[.[] | $path | numbers] | sort |
		if length == 0 then \"-\"
		elif length % 2 == 1 then .[length / 2 | floor]
		else (.[length / 2 - 1] + .[length / 2]) / 2 end" "${files[@]}"
}

# fmt NUMBER prints it rounded for the table.
fmt() {
	[[ $1 == - ]] && { echo -; return; }
	awk -v x="$1" 'BEGIN { a = x < 0 ? -x : x; if (a >= 100) printf "%.0f", x; else if (a >= 10) printf "%.1f", x; else printf "%.2f", x }'
}

# ratio X REF prints X / REF.
ratio() {
	[[ $1 == - || $2 == - || $2 == 0 ]] && { echo -; return; }
	awk -v x="$1" -v r="$2" 'BEGIN { printf "%.2f", x / r }'
}

# table SCENARIO TITLE then NAME:PATH columns; a NAME that starts with =
# gets no ratio column.
table() {
	local scenario=$1 title=$2
	shift 2
	local cols=("$@") header="| server | runs" rule="|---|---:"
	local c name
	for c in "${cols[@]}"; do
		name=${c%%:*}
		if [[ $name == =* ]]; then
			header+=" | ${name#=}"
			rule+="|---:"
		else
			header+=" | $name | × gorilla"
			rule+="|---:|---:"
		fi
	done
	printf '\n### %s\n\n%s |\n%s|\n' "$title" "$header" "$rule"
	local server files ref v line
	for server in "${servers[@]}"; do
		shopt -s nullglob
		files=("$OUT/runs/$scenario.$server".*.json)
		local refs=("$OUT/runs/$scenario.gorilla".*.json)
		shopt -u nullglob
		line="| $server | ${#files[@]}"
		for c in "${cols[@]}"; do
			v=$(median "${files[@]}" "${c#*:}")
			if [[ $c == =* ]]; then
				line+=" | $(fmt "$v")"
				continue
			fi
			ref=$(median "${refs[@]}" "${c#*:}")
			line+=" | $(fmt "$v") | $(ratio "$v" "$ref")"
		done
		echo "$line |"
	done
}

{
	echo "## duplex bench, $started"
	echo
	echo "$(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')), Linux $(uname -r), $(go version | cut -d' ' -f3-)$(command -v node >/dev/null && echo ", node $(node --version)")."
	echo "Duplex $(git -C "$root" describe --always --dirty 2>/dev/null || echo '(no git)'); $(cd "$here" && go list -m -f '{{.Path}} {{.Version}}' github.com/gorilla/websocket github.com/lxzan/gws github.com/lesismal/nbio github.com/gobwas/ws github.com/coder/websocket | paste -sd, - | sed 's/,/, /g')$([[ -d $node_ws ]] && echo ", ws $(jq -r .version "$node_ws/package.json")")."
	echo "Server on CPU 0, duplex bench on CPU 1. Medians of the runs; server CPU from /proc/PID/stat (--server-pid)."
	echo "Load average before: $load_before; after: $(cut -d' ' -f1-3 /proc/loadavg); finished $(date -u '+%H:%M UTC')."
	for scenario in $SCENARIOS; do
		case $scenario in
		echo32 | echo64k)
			table "$scenario" "$scenario: $(bench_args "$scenario")" \
				'msgs/s:.echo.messages_per_sec' 'server µs CPU/msg:.server.cpu_us_per_op' \
				'p99 µs:.echo.latency.p99_us' '=client cores:.client.cores' '=errors:.echo.errors'
			;;
		connect)
			table connect "connect: $(bench_args connect)" \
				'handshakes/s:.connect.handshakes_per_sec' 'server µs CPU/handshake:.server.cpu_us_per_op' \
				'p99 µs:.connect.handshake.p99_us' '=failures:.connect.failures'
			;;
		fanout*)
			table "$scenario" "$scenario: $(bench_args "$scenario")" \
				'deliveries/s:.fanout.deliveries_per_sec' 'server µs CPU/delivery:.server.cpu_us_per_op' \
				'p50 µs:.fanout.latency.p50_us' 'p99 µs:.fanout.latency.p99_us' '=lost:.fanout.lost' '=errors:.fanout.errors'
			;;
		idle)
			table idle "idle: $(bench_args idle)" \
				'=open:.idle.open' 'KiB RSS/conn:.server.rss_per_conn_kib' 'peak RSS MiB:(.server.rss_peak_kib // empty | . / 1024)' \
				'=failed:.dial.failed' '=lost:.idle.lost'
			;;
		esac
	done
} | tee "$OUT/results.md"
log "runs and results.md in $OUT"
