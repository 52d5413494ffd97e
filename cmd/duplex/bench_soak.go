package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

const soakUsage = `Usage: duplex bench soak [flags] [URL URL...]

A bounded soak test of Socket.IO rooms over Redis. --conns clients (default
2,000) of our Socket.IO client, spread round-robin over the servers, each
in a loop at the pace of --rate operations per second (all clients
together): 80% say, 8% join, 8% leave, 4% drop. "say" emits say(room, text)
with an acknowledgement; the server sends said(room, text, senderId) to
the room, the sender left out, and acknowledges with true. "drop" cuts the
client's TCP connection; the client reconnects by itself and joins its
rooms again. Meanwhile the Redis under the servers is killed and started
again --redis-restarts times.

Without URL it runs two Socket.IO servers in this process, joined through
adapter/redis on a private redis-server (from PATH, on a free 127.0.0.1
port, with no persistence; the machine's own Redis is never used), and
restarts that redis-server. With --redis URL the servers use that Redis
instead, and it is not restarted. With URLs it loads those servers (a
cluster, one URL per process), which must answer join(room),
leave(room) and say(room, text) as the conformance app does
(CONTRACT.md 4.2: go run ./internal/cmd/conformance, APP_PORT, with
REDIS_URL set); Redis is then theirs, and not restarted.

It checks, and the exit status is 1 if any check fails:
  lost       an acknowledged say must reach every client that was in its
             room around it: whose join was acknowledged before the say
             was emitted, and that stays in the room, on the same
             connection, until the say reaches it. Received within --grace
             of the acknowledgement it is delivered, later it is late (not
             a failure; see the latency); still missing at the end of the
             run, once no delivery has come for --grace (1 minute at
             most), it is lost. A client that
             leaves or drops first is excused. A delivery from one server
             to another missing --grace after a say that meets a Redis
             outage is counted as "reported failed" (the adapters report
             the outage: Health, publish errors), apart from the losses:
             a say acknowledged after the outage began (a server-side
             event sent each way through Redis just before the kill, which
             every say acknowledged earlier precedes) and emitted before
             it ended (both servers subscribed again, and such an event
             crossed each way). A say the server acknowledges with
             anything but true is "refused", and not checked.
  strays     no duplicate delivery, no delivery to a client that never
             joined the room.
  memory     after the warm-up, the live heap (in process; the servers'
             RSS with --server-pid) must stay flat: the mean of the last
             tenth of the run at most --mem-tolerance percent (and 4 MiB)
             above the mean of the first tenth.
  goroutines in process: back to the count from before the clients
             connected, once they have all left.
  errors     no emit left unacknowledged within --timeout, no client
             that failed to reconnect, no disconnection the client did
             not ask for; in process, the cluster healed after each
             restart.

The counts include the warm-up. A progress line is drawn on standard
error when it is a terminal (otherwise, a line every 30 s and one per
Redis restart); the summary goes to standard output, as a table or, with
--json, as one JSON object.

  duplex bench soak --duration 10m
  duplex bench soak --duration 1m --conns 500 --redis-restarts 1
  duplex bench soak --server-pid 1234,1240 http://127.0.0.1:3001/ http://127.0.0.1:3011/

Flags:
`

// The operation mix, in percent of --rate: the rest are drops.
const (
	soakSayPct   = 80
	soakJoinPct  = 8
	soakLeavePct = 8
)

// soakConfig is the parsed command line of duplex bench soak.
type soakConfig struct {
	urls            []string // empty: in-process servers
	conns           int
	rooms           int
	maxRooms        int // rooms a client is in at most
	rate            float64
	size            int
	duration        time.Duration
	warmup          time.Duration
	grace           time.Duration
	redisURL        string
	restarts        int
	redisDown       time.Duration
	memTolerance    float64 // percent
	timeout         time.Duration
	dialConcurrency int
	sioPath         string
	serverPIDs      pidList
	allowRemote     bool
	json            bool
}

// inProcess reports whether the soak runs its own servers.
func (cfg *soakConfig) inProcess() bool { return len(cfg.urls) == 0 }

// goredisLoggerOnce silences go-redis's global logger once: it prints
// every failed reconnection on standard error, which a Redis restart
// makes on purpose (the adapters report the outage themselves).
var goredisLoggerOnce sync.Once

func soakCmd(args []string, stdout, stderr io.Writer) error {
	cfg := soakConfig{maxRooms: 4}
	fs := flag.NewFlagSet("bench soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), soakUsage)
		fs.PrintDefaults()
	}
	fs.IntVar(&cfg.conns, "conns", 2000, "Socket.IO clients")
	fs.IntVar(&cfg.rooms, "rooms", 100, "rooms the clients join and leave (each client is in 1 to 4)")
	fs.Float64Var(&cfg.rate, "rate", 250, "client operations per second, all clients together (80% say, 8% join, 8% leave, 4% drop)")
	fs.IntVar(&cfg.size, "size", 32, "length in `bytes` of each said text (at least 17)")
	fs.DurationVar(&cfg.duration, "duration", time.Minute, "how long to run after the warm-up")
	fs.DurationVar(&cfg.warmup, "warmup", 0, "run this long before the memory baseline is taken (default a fifth of --duration, at most 1m)")
	fs.DurationVar(&cfg.grace, "grace", 5*time.Second, "a say received later than this after its acknowledgement is late, not delivered; the final verdict on the missing ones waits as long after the last say")
	fs.StringVar(&cfg.redisURL, "redis", "", "in process: use the Redis at `URL` (never restarted) rather than a private redis-server")
	fs.IntVar(&cfg.restarts, "redis-restarts", 2, "in process: how many times to kill the private redis-server and start it again, spread over --duration")
	fs.DurationVar(&cfg.redisDown, "redis-down", 3*time.Second, "how long Redis stays down at each restart")
	fs.Float64Var(&cfg.memTolerance, "mem-tolerance", 20, "allowed memory growth after the warm-up, in `percent`")
	fs.DurationVar(&cfg.timeout, "timeout", 10*time.Second, "how long a handshake, an acknowledgement or a reconnection may take")
	fs.IntVar(&cfg.dialConcurrency, "dial-concurrency", 200, "at most this many opening handshakes at a time")
	fs.StringVar(&cfg.sioPath, "path", "/socket.io/", "the servers' Socket.IO `path` (with URLs)")
	fs.Var(&cfg.serverPIDs, "server-pid", "`PID` of a server given by URL, on this machine (Linux): its RSS is sampled and must stay flat (repeatable, or PID,PID)")
	fs.BoolVar(&cfg.allowRemote, "allow-remote", false, "allow a URL that is not a loopback address")
	fs.BoolVar(&cfg.json, "json", false, "print the summary as JSON")

	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	cfg.urls = rest
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if err := cfg.validate(set); err != nil {
		return err
	}
	goredisLoggerOnce.Do(func() { goredis.SetLogger(redisLogger{discardLogger()}) })

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The first Ctrl-C ends the run with a summary; a second one kills.
	context.AfterFunc(ctx, stop)
	return runSoak(ctx, &cfg, stdout, stderr)
}

// validate checks the flags and fills in the defaults that depend on
// others. set holds the flags given on the command line.
func (cfg *soakConfig) validate(set map[string]bool) error {
	if !set["warmup"] {
		cfg.warmup = min(cfg.duration/5, time.Minute)
	}
	if !cfg.inProcess() {
		for _, name := range []string{"redis", "redis-restarts", "redis-down"} {
			if set[name] {
				return fmt.Errorf("--%s applies to the in-process servers only (no URL): the Redis of servers given by URL is not the soak's to restart", name)
			}
		}
		cfg.restarts = 0
	} else {
		for _, name := range []string{"server-pid", "path", "allow-remote"} {
			if set[name] {
				return fmt.Errorf("--%s applies to servers given by URL only", name)
			}
		}
	}
	switch {
	case cfg.conns < 2:
		return fmt.Errorf("--conns %d: at least 2, one to say and one to hear", cfg.conns)
	case cfg.rooms < 1:
		return fmt.Errorf("--rooms %d: at least 1", cfg.rooms)
	case cfg.rate <= 0:
		return fmt.Errorf("--rate %v: must be positive, a soak is paced", cfg.rate)
	case cfg.size < soakMinSize:
		return fmt.Errorf("--size %d: each text starts with its id, %d bytes; use --size %d or more", cfg.size, soakMinSize, soakMinSize)
	case cfg.size > 1<<20:
		return fmt.Errorf("--size %d: at most 1 MiB (the servers' default maxPayload is 1,000,000 bytes)", cfg.size)
	case cfg.duration <= 0:
		return fmt.Errorf("--duration %v: must be positive, so that the run ends by itself", cfg.duration)
	case cfg.warmup < 0:
		return fmt.Errorf("--warmup %v: must not be negative", cfg.warmup)
	case cfg.grace <= 0:
		return fmt.Errorf("--grace %v: must be positive", cfg.grace)
	case cfg.restarts < 0:
		return fmt.Errorf("--redis-restarts %d: must not be negative", cfg.restarts)
	case cfg.redisDown <= 0:
		return fmt.Errorf("--redis-down %v: must be positive", cfg.redisDown)
	case cfg.restarts > 0 && cfg.duration/time.Duration(cfg.restarts+1) < 2*cfg.redisDown:
		return fmt.Errorf("--redis-restarts %d in --duration %v: too many to stay down %v each and heal in between; use a longer --duration or fewer restarts", cfg.restarts, cfg.duration, cfg.redisDown)
	case cfg.memTolerance < 0:
		return fmt.Errorf("--mem-tolerance %v: must not be negative", cfg.memTolerance)
	case cfg.timeout <= 0:
		return fmt.Errorf("--timeout %v: must be positive", cfg.timeout)
	case cfg.dialConcurrency < 1:
		return fmt.Errorf("--dial-concurrency %d: must be at least 1", cfg.dialConcurrency)
	}
	for _, pid := range cfg.serverPIDs {
		if pid <= 0 {
			return fmt.Errorf("--server-pid %v: not a process id", cfg.serverPIDs.String())
		}
	}
	for _, u := range cfg.urls {
		if err := checkTarget(u, cfg.allowRemote); err != nil {
			return err
		}
	}
	if cfg.redisURL != "" {
		if _, err := goredis.ParseURL(cfg.redisURL); err != nil {
			return fmt.Errorf("--redis %q: %w", cfg.redisURL, err)
		}
		if set["redis-restarts"] && cfg.restarts > 0 {
			return errors.New("--redis and --redis-restarts: the soak restarts only a redis-server it started itself")
		}
		cfg.restarts = 0
	}
	return nil
}

// soakNamespace is the namespace the clients join: URL's path, "/" for
// the in-process servers.
func soakNamespace(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Path == "" {
		return "/"
	}
	return u.Path
}

// runSoak runs the soak and prints its summary; it returns an error when
// a check failed, after the summary.
func runSoak(ctx context.Context, cfg *soakConfig, stdout, stderr io.Writer) error {
	need := uint64(cfg.conns) + 64
	if cfg.inProcess() {
		need += uint64(cfg.conns) // the servers' side of each connection
	}
	if soft, hard, err := raiseFileLimit(); err == nil && soft < need {
		return fmt.Errorf("--conns %d needs about %d open files, but this process may open only %d (hard limit %d): raise the hard limit (ulimit -Hn) or use fewer clients",
			cfg.conns, need, soft, hard)
	}
	r, err := newSoakRun(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	sum := r.run(ctx)
	if cfg.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(sum); err != nil {
			return err
		}
	} else {
		sum.print(stdout)
	}
	if len(sum.Failures) > 0 {
		return fmt.Errorf("soak failed: %s", strings.Join(sum.Failures, "; "))
	}
	return nil
}
