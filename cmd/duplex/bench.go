package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/duplexrt/duplex/ws"
)

const benchUsage = `Usage: duplex bench SCENARIO [flags] URL
       duplex bench socketio --mode fanout [flags] URL [URL...]
       duplex bench soak [flags] [URL...]   (duplex bench soak --help)

Loads a WebSocket server (ours or any other) and reports what it sustained.
A run always ends by itself: after --duration, or once --count operations
are done, whichever comes first (Ctrl-C ends it early, with a summary). A
progress line is drawn on standard error when it is a terminal; the summary
goes to standard output, as a table or, with --json, as one JSON object.

Scenarios:
  echo     --conns connections (default 100), each in a closed loop: send a
           message of --size bytes, wait for it to come back, check it,
           repeat; --pipeline K keeps K messages in flight per connection.
           Reports messages/s, bytes/s, round-trip latency p50/p90/p99/max
           and errors. --count counts messages.
             duplex bench echo --conns 1000 ws://127.0.0.1:8080/ws/echo
  idle     opens --conns connections (default 1000; at most
           --dial-concurrency handshakes at a time, at most --rate per
           second), holds them for --duration, pings each every
           --ping-interval, then closes them. Reports established and failed
           connections, handshake latency, and with --server-pid the
           server's memory per connection.
             duplex bench idle --conns 19500 --server-pid $(pidof duplex) ws://127.0.0.1:8080/ws/echo
  connect  --conns workers (default 10) each open a connection (the full
           handshake) and close it (the close handshake), in a loop.
           Reports handshakes/s, handshake and close latency, failures by
           reason. --count counts handshakes, --rate limits them.
  fanout   --conns subscribers (default 100) and one publisher, all on URL,
           a broadcast endpoint such as duplex serve's /ws/broadcast. The
           publisher sends --rate messages per second (default 100), each
           starting with its send time (8 bytes, or 16 hex digits as text);
           every subscriber counts what it gets and its latency. Reports
           deliveries/s, expected and received deliveries (losses), latency
           p50/p99/max. --count counts messages sent.
             duplex bench fanout --conns 1000 ws://127.0.0.1:8080/ws/broadcast
  socketio --conns Socket.IO clients (default 100) on the namespace named by
           URL's path (an http:// URL; --path is the server's Socket.IO
           path, default /socket.io/; --transport websocket, polling or
           upgrade), each in a closed loop: emit --event (default "echo")
           with a string of --size bytes and an acknowledgement, check the
           acknowledgement carries the string back, repeat. Reports acks/s,
           latency p50/p90/p99/max and errors; with --server-pid the
           server's CPU per ack and memory per client. --count counts acks.
             duplex bench socketio --conns 1000 http://127.0.0.1:3001/
           With --mode fanout, a broadcast instead: --conns subscribers,
           client i on the i-th URL round-robin (several URLs: servers of
           one cluster), and --publishers clients (default 1) on the first
           URL, each in a loop: emit --event (default "shout") with a
           string of --size bytes that starts with its send time (16 hex
           digits) and an acknowledgement, wait for it, repeat, all of
           them together at most --rate per second (default 100; 0: as
           fast as the acknowledgements come). The server must send
           --recv-event (default "shouted", as the conformance app does)
           with that string first to every client of the namespace. Reports
           deliveries/s (received, up to the last delivery), expected
           deliveries (publishes × subscribers) and lost ones, latency from
           send to receipt p50/p90/p99/max, and the publishers' acks/s and
           ack latency. --count counts publishes.
             duplex bench socketio --mode fanout --conns 1000 --rate 200 \
               http://127.0.0.1:3001/ http://127.0.0.1:3011/
  soak     a bounded soak of Socket.IO rooms over Redis: thousands of
           clients join, leave, say with acknowledgements and drop their
           connections while Redis is restarted; checks that no
           acknowledged message is lost, that memory stays flat and that
           the goroutines come back. Its own flags: duplex bench soak --help.
             duplex bench soak --duration 10m

Only loopback targets (127.0.0.0/8, ::1, localhost) are allowed unless
--allow-remote is given: load only servers you are responsible for.

--server-pid PID (Linux, a server on this machine) samples /proc/PID/stat and
/proc/PID/status around the measurement: the server's CPU time per message
(or handshake, or delivery) and its resident memory. Several PIDs (repeat
the flag, or PID,PID) are the processes of one cluster: the summary sums
them, and lists each. The client's own CPU
time is reported too: if it nears one core per GOMAXPROCS, the load
generator, not the server, is the limit.

Flags:
`

// benchScenarios are the scenarios bench runs, in the order of the usage.
var benchScenarios = []string{"echo", "idle", "connect", "fanout", "socketio", "soak"}

// benchFlagScenarios lists the flags that only some scenarios take; using
// one with another scenario is an error rather than silently ignored.
var benchFlagScenarios = map[string][]string{
	"count":         {"echo", "connect", "fanout", "socketio"},
	"size":          {"echo", "fanout", "socketio"},
	"binary":        {"echo", "fanout"},
	"warmup":        {"echo", "connect", "fanout", "socketio"},
	"deflate":       {"echo", "idle", "connect", "fanout"},
	"transport":     {"socketio"},
	"path":          {"socketio"},
	"event":         {"socketio"},
	"mode":          {"socketio"},
	"publishers":    {"socketio"},
	"recv-event":    {"socketio"},
	"pipeline":      {"echo"},
	"ping-interval": {"idle"},
	// connect's workers each run one handshake at a time: --conns is its
	// concurrency.
	"dial-concurrency": {"echo", "idle", "fanout", "socketio"},
}

// benchConfig is the parsed command line of duplex bench.
type benchConfig struct {
	scenario        string
	url             string
	urls            []string // socketio --mode fanout: every URL, url first
	conns           int
	duration        time.Duration
	count           int64
	size            int
	binary          bool
	deflate         bool
	rate            float64
	json            bool
	allowRemote     bool
	serverPIDs      pidList
	warmup          time.Duration
	pipeline        int
	pingInterval    time.Duration
	dialConcurrency int
	timeout         time.Duration
	insecure        bool
	headers         multiFlag
	transport       string // socketio
	sioPath         string // socketio
	event           string // socketio
	mode            string // socketio: ack or fanout
	publishers      int    // socketio --mode fanout
	recvEvent       string // socketio --mode fanout
}

// pidList is --server-pid: repeatable, and each value may list PIDs
// separated by commas.
type pidList []int

func (l *pidList) String() string {
	s := make([]string, len(*l))
	for i, pid := range *l {
		s[i] = strconv.Itoa(pid)
	}
	return strings.Join(s, ",")
}

func (l *pidList) Set(v string) error {
	for f := range strings.SplitSeq(v, ",") {
		pid, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return fmt.Errorf("%q is not a process id", f)
		}
		*l = append(*l, pid)
	}
	return nil
}

// defaultConns is --conns per scenario when not given.
var defaultConns = map[string]int{"echo": 100, "idle": 1000, "connect": 10, "fanout": 100, "socketio": 100}

func benchCmd(args []string, stdout, stderr io.Writer) error {
	cfg := benchConfig{}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), benchUsage)
		fs.PrintDefaults()
	}
	fs.IntVar(&cfg.conns, "conns", 0, "connections (echo, idle), workers (connect), subscribers (fanout, socketio --mode fanout) or clients (socketio); default 100, idle 1000, connect 10")
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "how long to measure (idle: how long to hold the connections)")
	fs.Int64Var(&cfg.count, "count", 0, "stop after this many messages (echo, fanout), handshakes (connect), acks (socketio) or publishes (socketio --mode fanout); 0: no count, --duration alone")
	fs.IntVar(&cfg.size, "size", 32, "message size in `bytes` (echo, fanout, socketio)")
	fs.BoolVar(&cfg.binary, "binary", false, "send binary messages instead of text (echo, fanout)")
	fs.BoolVar(&cfg.deflate, "deflate", false, "offer permessage-deflate compression")
	fs.Float64Var(&cfg.rate, "rate", 0, "at most this many messages (echo, fanout, socketio) or handshakes (idle, connect) per second, all connections together; 0: as fast as possible (fanout, socketio --mode fanout: default 100)")
	fs.BoolVar(&cfg.json, "json", false, "print the summary as JSON")
	fs.BoolVar(&cfg.allowRemote, "allow-remote", false, "allow a target that is not a loopback address")
	fs.Var(&cfg.serverPIDs, "server-pid", "`PID` of the server, on this machine (Linux): report its CPU time and memory (repeatable, or PID,PID: a cluster's processes, summed)")
	fs.DurationVar(&cfg.warmup, "warmup", 0, "run this long before measuring (echo, connect, fanout, socketio)")
	fs.IntVar(&cfg.pipeline, "pipeline", 1, "messages in flight per connection (echo)")
	fs.DurationVar(&cfg.pingInterval, "ping-interval", 0, "ping every connection this often while holding them (idle); 0: no pings")
	fs.IntVar(&cfg.dialConcurrency, "dial-concurrency", 200, "at most this many opening handshakes at a time (echo, idle, fanout, socketio)")
	fs.DurationVar(&cfg.timeout, "timeout", 10*time.Second, "handshake timeout (socketio --mode fanout: also how long the subscribers may take to get a first broadcast)")
	fs.BoolVar(&cfg.insecure, "insecure", false, "do not verify the server's TLS certificate (wss://)")
	fs.Var(&cfg.headers, "H", "extra request header `'Name: value'` (repeatable)")
	fs.StringVar(&cfg.transport, "transport", "websocket", "Socket.IO transport: websocket, polling or upgrade (polling, then WebSocket) (socketio)")
	fs.StringVar(&cfg.sioPath, "path", "/socket.io/", "the server's Socket.IO `path` (socketio)")
	fs.StringVar(&cfg.event, "event", "", "the `event` emitted with an acknowledgement (socketio): one whose acknowledgement carries the payload back (default \"echo\"), or with --mode fanout one that broadcasts it (default \"shout\")")
	fs.StringVar(&cfg.mode, "mode", "ack", "socketio: ack (each client emits --event and waits for the payload back) or fanout (subscribers and publishers: broadcast deliveries)")
	fs.IntVar(&cfg.publishers, "publishers", 1, "clients that emit --event, on the first URL (socketio --mode fanout)")
	fs.StringVar(&cfg.recvEvent, "recv-event", "shouted", "the `event` the server broadcasts, the payload its first argument (socketio --mode fanout)")

	if len(args) == 0 {
		fs.Usage()
		return errUsage
	}
	if args[0] == "soak" { // its own flags: bench_soak.go
		return soakCmd(args[1:], stdout, stderr)
	}
	switch args[0] {
	case "-h", "-help", "--help":
		fs.Usage()
		return flag.ErrHelp
	}
	cfg.scenario = args[0]
	if !slices.Contains(benchScenarios, cfg.scenario) {
		fmt.Fprintf(stderr, "duplex bench: unknown scenario %q: use %s\n", cfg.scenario, strings.Join(benchScenarios, ", "))
		return errUsage
	}
	rest, err := parseFlags(fs, args[1:])
	if err != nil {
		return err
	}
	if len(rest) == 0 || len(rest) > 1 && (cfg.scenario != "socketio" || cfg.mode != "fanout") {
		fmt.Fprintf(stderr, "duplex bench %s takes one URL, got %d arguments (several only with socketio --mode fanout)\nUsage: duplex bench SCENARIO [flags] URL (duplex help bench)\n", cfg.scenario, len(rest))
		return errUsage
	}
	cfg.url, cfg.urls = rest[0], rest
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if err := cfg.validate(set); err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The first Ctrl-C ends the run with a summary; a second one kills.
	context.AfterFunc(ctx, stop)
	return runBench(ctx, &cfg, stdout, stderr)
}

// validate checks the flags and fills in the per-scenario defaults. set
// holds the flags given on the command line.
func (cfg *benchConfig) validate(set map[string]bool) error {
	for name, scenarios := range benchFlagScenarios {
		if set[name] && !slices.Contains(scenarios, cfg.scenario) {
			return fmt.Errorf("--%s does not apply to %s (only to %s)", name, cfg.scenario, strings.Join(scenarios, ", "))
		}
	}
	if cfg.conns == 0 {
		cfg.conns = defaultConns[cfg.scenario]
	}
	sioFanout := cfg.scenario == "socketio" && cfg.mode == "fanout"
	if (cfg.scenario == "fanout" || sioFanout) && !set["rate"] {
		cfg.rate = 100
	}
	if cfg.event == "" {
		cfg.event = "echo"
		if sioFanout {
			cfg.event = "shout"
		}
	}
	if cfg.scenario == "socketio" && !sioFanout {
		for _, name := range []string{"publishers", "recv-event"} {
			if set[name] {
				return fmt.Errorf("--%s applies only to socketio --mode fanout", name)
			}
		}
	}
	switch {
	case cfg.conns < 0:
		return fmt.Errorf("--conns %d: must be positive", cfg.conns)
	case cfg.duration <= 0:
		return fmt.Errorf("--duration %v: must be positive, so that the run ends by itself", cfg.duration)
	case cfg.count < 0:
		return fmt.Errorf("--count %d: must be positive, or 0 for no count", cfg.count)
	case cfg.size < 0:
		return fmt.Errorf("--size %d: must not be negative", cfg.size)
	case cfg.rate < 0:
		return fmt.Errorf("--rate %v: must not be negative", cfg.rate)
	case cfg.warmup < 0:
		return fmt.Errorf("--warmup %v: must not be negative", cfg.warmup)
	case cfg.pipeline < 1:
		return fmt.Errorf("--pipeline %d: must be at least 1", cfg.pipeline)
	case cfg.pingInterval < 0:
		return fmt.Errorf("--ping-interval %v: must not be negative", cfg.pingInterval)
	case cfg.dialConcurrency < 1:
		return fmt.Errorf("--dial-concurrency %d: must be at least 1", cfg.dialConcurrency)
	case cfg.timeout <= 0:
		return fmt.Errorf("--timeout %v: must be positive", cfg.timeout)
	case slices.ContainsFunc(cfg.serverPIDs, func(pid int) bool { return pid <= 0 }):
		return fmt.Errorf("--server-pid %v: not a process id", cfg.serverPIDs.String())
	case cfg.scenario == "socketio" && sioTransports[cfg.transport] == nil:
		return fmt.Errorf("--transport %q: want websocket, polling or upgrade", cfg.transport)
	case cfg.scenario == "socketio" && cfg.mode != "ack" && cfg.mode != "fanout":
		return fmt.Errorf("--mode %q: want ack or fanout", cfg.mode)
	case sioFanout && cfg.publishers < 1:
		return fmt.Errorf("--publishers %d: must be at least 1", cfg.publishers)
	case sioFanout && cfg.size < 16:
		return fmt.Errorf("--size %d: socketio --mode fanout messages start with their send time, 16 hex digits; use --size 16 or more", cfg.size)
	case cfg.scenario == "fanout" && cfg.rate == 0:
		return errors.New("--rate 0: fanout needs a message rate (the default is 100 per second)")
	case cfg.scenario == "fanout" && cfg.size < stampLen(cfg.binary):
		return fmt.Errorf("--size %d: fanout messages start with their send time, %d bytes as %s; use --size %[2]d or more", cfg.size, stampLen(cfg.binary), msgType(cfg.binary))
	}
	for _, h := range cfg.headers {
		if name, _, ok := strings.Cut(h, ":"); !ok || strings.TrimSpace(name) == "" {
			return fmt.Errorf("-H %q: want 'Name: value'", h)
		}
	}
	for _, u := range cfg.urls {
		if err := checkTarget(u, cfg.allowRemote); err != nil {
			return err
		}
	}
	return nil
}

// checkTarget refuses URLs that are not WebSocket URLs, and hosts that are
// not loopback unless allowRemote: a load generator pointed at someone
// else's server by mistake is an attack.
func checkTarget(raw string, allowRemote bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("URL %q: %w", raw, err)
	}
	switch u.Scheme {
	case "ws", "wss", "http", "https":
	default:
		return fmt.Errorf("URL %q: want ws:// or wss://", raw)
	}
	host := u.Hostname()
	if host == "" {
		return fmt.Errorf("URL %q has no host", raw)
	}
	if allowRemote || isLoopback(host) {
		return nil
	}
	return fmt.Errorf("refusing to load %s: %q is not a loopback address (127.0.0.0/8, ::1, localhost); pass --allow-remote if the server is yours to load", raw, host)
}

// isLoopback reports whether host is a loopback IP or "localhost". Names are
// not resolved: a name that resolves to loopback today may not tomorrow.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func msgType(binary bool) ws.MessageType {
	if binary {
		return ws.MessageBinary
	}
	return ws.MessageText
}

// dialOptions builds the options every connection of the run uses. bufSize
// sizes the connection's buffers (0: the default).
func (cfg *benchConfig) dialOptions(bufSize int) *ws.DialOptions {
	opts := &ws.DialOptions{
		Header:           make(http.Header),
		HandshakeTimeout: cfg.timeout,
		ReadLimit:        max(int64(cfg.size)+1024, 16<<20),
		ReadBufferSize:   bufSize,
		WriteBufferSize:  bufSize,
		// The process's own environment should not send a load test
		// through a proxy.
		Proxy: func(*http.Request) (*url.URL, error) { return nil, nil },
	}
	for _, h := range cfg.headers {
		name, value, _ := strings.Cut(h, ":")
		opts.Header.Add(strings.TrimSpace(name), strings.TrimSpace(value))
	}
	if cfg.deflate {
		opts.Compression = &ws.Compression{}
	}
	if cfg.insecure {
		opts.TLSConfig = &tls.Config{InsecureSkipVerify: true}
	}
	return opts
}

// messageBufSize sizes the buffers of connections that send messages of
// size bytes: a client masks through its write buffer, so one that holds
// the whole frame sends it in one system call.
func messageBufSize(size int) int {
	return min(max(size+14, ws.DefaultBufferSize), 256<<10)
}

// filesNeeded estimates the descriptors the scenario opens at once.
func (cfg *benchConfig) filesNeeded() uint64 {
	n := uint64(cfg.conns)
	switch cfg.scenario {
	case "fanout":
		n++
	case "socketio":
		if cfg.mode == "fanout" {
			n += uint64(cfg.publishers)
		}
	case "connect":
		n *= 2 // a connection closing while the next opens
	}
	return n + 32 // standard streams, the poller, the odd file
}

// runBench runs cfg's scenario and prints the summary on stdout.
func runBench(ctx context.Context, cfg *benchConfig, stdout, stderr io.Writer) error {
	soft, hard, err := raiseFileLimit()
	if need := cfg.filesNeeded(); err == nil && soft < need {
		return fmt.Errorf("--conns %d needs about %d open files, but this process may open only %d (hard limit %d): raise the hard limit (ulimit -Hn, or LimitNOFILE= for a systemd service) or use fewer connections",
			cfg.conns, need, soft, hard)
	}
	var server *serverProbe
	for _, pid := range cfg.serverPIDs {
		p, err := newServerProbe(pid)
		if err != nil {
			return fmt.Errorf("--server-pid %d: %w", pid, err)
		}
		if server == nil {
			server = p
		} else {
			server.more = append(server.more, p)
		}
		if lim := procOpenFileLimit(pid); lim >= 0 && lim < int64(cfg.conns)+16 {
			fmt.Fprintf(stderr, "warning: the server (pid %d) may open only %d files: it cannot hold %d connections; raise its limit (ulimit -n)\n", pid, lim, cfg.conns)
		}
	}
	sum := &benchSummary{
		Scenario: cfg.scenario,
		URL:      cfg.url,
		Conns:    cfg.conns,
		Deflate:  cfg.deflate,
		Rate:     cfg.rate,
	}
	if slices.Contains(benchFlagScenarios["size"], cfg.scenario) {
		sum.Size, sum.Binary = cfg.size, cfg.binary
	}
	if cfg.scenario == "echo" {
		sum.Pipeline = cfg.pipeline
	}
	if cfg.scenario == "socketio" {
		sum.Mode = cfg.mode
		if len(cfg.urls) > 1 {
			sum.URLs = cfg.urls
		}
	}
	r := &benchRun{cfg: cfg, sum: sum, prog: newProgress(stderr), server: server, client: newClientProbe()}
	switch cfg.scenario {
	case "echo":
		err = r.echo(ctx)
	case "idle":
		err = r.idle(ctx)
	case "connect":
		err = r.connect(ctx)
	case "fanout":
		err = r.fanout(ctx)
	case "socketio":
		if cfg.mode == "fanout" {
			err = r.sioFanout(ctx)
		} else {
			err = r.socketio(ctx)
		}
	}
	r.prog.end()
	if err != nil {
		return err
	}
	if cfg.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(sum); err != nil {
			return err
		}
	} else {
		sum.print(stdout)
	}
	if r.failed != "" {
		return errors.New(r.failed)
	}
	return nil
}

// benchRun is one run of a scenario: its configuration, its summary in the
// making, and the probes that sample the processes.
type benchRun struct {
	cfg    *benchConfig
	sum    *benchSummary
	prog   *progress
	server *serverProbe // nil without --server-pid; its more are the other PIDs
	client *clientProbe // nil where /proc is missing
	failed string       // set by a scenario that ran but achieved nothing: the exit status is 1
}
