package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	rtmetrics "runtime/metrics"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// soakHealTimeout bounds the wait for the cluster to heal after Redis
	// is back, and for a flush before the kill; longer is a failure.
	soakHealTimeout = time.Minute
	// soakFlushTry bounds one attempt of a flush.
	soakFlushTry = 20 * time.Second
	// soakGoroutineWait bounds the wait for the goroutines to end once
	// every client has left.
	soakGoroutineWait = 20 * time.Second
	// soakSampleEvery is the memory sampling period.
	soakSampleEvery = time.Second
	// soakLogEvery is the period of the status lines when standard error
	// is not a terminal.
	soakLogEvery = 30 * time.Second
	// soakMemFloor is the growth always allowed: below it, a heap's
	// noise (a GC cycle's timing) is larger than any leak worth the
	// name in a run of minutes.
	soakMemFloor = 4 << 20
)

// soakRun is one soak: its servers (and Redis), its clients, its
// samples and its verdicts in the making.
type soakRun struct {
	cfg    *soakConfig
	stderr io.Writer
	prog   *progress
	lines  bool // standard error is not a terminal: plain status lines

	redis    *soakRedis // nil: Redis is not the soak's to restart
	redisURL string     // in process: the Redis the servers share
	servers  []*soakServer
	urls     []string
	tag      string

	ledger *soakLedger
	load   *soakLoad
	probes []*serverProbe // --server-pid
	client *clientProbe

	start time.Time
	phase atomic.Pointer[string]

	smu     sync.Mutex
	samples []soakSample

	fmu      sync.Mutex
	failures []string
	outages  []soakOutageSummary
}

// soakSample is one look at the memory.
type soakSample struct {
	at         int64 // nanotime
	heapLive   uint64
	rssKiB     int64
	goroutines int
	serverRSS  []int64 // KiB, by --server-pid
}

// newSoakRun starts what the soak needs before its clients: with no URL,
// Redis (unless --redis) and two servers.
func newSoakRun(ctx context.Context, cfg *soakConfig, stderr io.Writer) (r *soakRun, err error) {
	var tag [3]byte
	_, _ = rand.Read(tag[:])
	r = &soakRun{cfg: cfg, stderr: stderr, prog: newProgress(stderr), tag: hex.EncodeToString(tag[:]), client: newClientProbe()}
	r.lines = r.prog.w == nil
	r.setPhase("starting")
	defer func() {
		if err != nil {
			r.shutdown()
		}
	}()
	if !cfg.inProcess() {
		r.urls = cfg.urls
		for _, pid := range cfg.serverPIDs {
			p, err := newServerProbe(pid)
			if err != nil {
				return nil, fmt.Errorf("--server-pid %d: %w", pid, err)
			}
			r.probes = append(r.probes, p)
		}
		return r, nil
	}
	r.redisURL = cfg.redisURL
	if r.redisURL == "" {
		rs, err := startSoakRedis()
		if errors.Is(err, errNoRedisServer) {
			return nil, errors.New("redis-server is not in PATH, and the in-process servers need a Redis to join through: install it (apt-get install redis-server), or pass --redis URL to use a running Redis (it is then not restarted), or give the URLs of running servers")
		}
		if err != nil {
			return nil, err
		}
		r.redis, r.redisURL = rs, rs.url()
	}
	key := "duplex-soak-" + r.tag
	for range 2 {
		s, err := startSoakServer(r.redisURL, key)
		if err != nil {
			return nil, fmt.Errorf("starting an in-process server: %w", err)
		}
		r.servers = append(r.servers, s)
		r.urls = append(r.urls, s.url)
	}
	// Both subscribed, or the first says would be lost.
	if err := r.waitCluster(ctx, max(cfg.timeout, soakHealTimeout)); err != nil {
		return nil, fmt.Errorf("the in-process servers could not reach each other through Redis at %s: %w", r.redisURL, err)
	}
	return r, nil
}

// unhealthy returns why the in-process servers' adapters are not all
// subscribed, or nil.
func (r *soakRun) unhealthy() error {
	var errs []error
	for _, s := range r.servers {
		if err := s.healthy(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// flushAll flushes every in-process server at once (see
// soakServer.flush).
func (r *soakRun) flushAll(ctx context.Context) error {
	errs := make([]error, len(r.servers))
	var wg sync.WaitGroup
	for i, s := range r.servers {
		wg.Go(func() { errs[i] = s.flush(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// waitCluster waits, limit at most, until both servers report their
// subscription up and a flush crosses each way.
func (r *soakRun) waitCluster(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		err := r.unhealthy()
		if err == nil {
			fctx, cancel := context.WithTimeout(ctx, soakFlushTry)
			err = r.flushAll(fctx)
			cancel()
			if err == nil {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %v: %w", limit, err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// shutdown stops the servers and Redis.
func (r *soakRun) shutdown() {
	for _, s := range r.servers {
		s.close()
	}
	r.servers = nil
	if r.redis != nil {
		r.redis.stop()
		r.redis = nil
	}
}

func (r *soakRun) setPhase(s string) { r.phase.Store(&s) }

// fail records a failed check.
func (r *soakRun) fail(format string, a ...any) {
	r.fmu.Lock()
	r.failures = append(r.failures, fmt.Sprintf(format, a...))
	r.fmu.Unlock()
}

// event reports a step of the run: on the progress line's phase, or as a
// line of its own when standard error is not a terminal.
func (r *soakRun) event(format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	r.setPhase(msg)
	if r.lines {
		fmt.Fprintf(r.stderr, "soak %7.1fs: %s\n", time.Since(r.start).Seconds(), msg)
	}
}

// status is the progress line.
func (r *soakRun) status() string {
	l := r.ledger
	return fmt.Sprintf("soak %.0fs [%s]: %s said, %s acked, %s received, %s overdue, %s reported failed, %s drops, %s errors",
		time.Since(r.start).Seconds(), *r.phase.Load(), commas(l.sent.Load()), commas(l.acked.Load()), commas(l.received.Load()),
		commas(l.overduePairs.Load()), commas(l.reportedFailed.Load()), commas(r.load.drops.Load()), commas(r.load.errors.count()))
}

// run runs the soak and returns its summary; the servers and Redis are
// stopped when it returns.
func (r *soakRun) run(ctx context.Context) *soakSummary {
	defer r.shutdown()
	cfg := r.cfg
	r.start = time.Now()
	r.ledger = newSoakLedger(cfg.rooms, cfg.grace, r.tag)
	r.load = newSoakLoad(cfg, r.urls, r.ledger)
	sum := r.newSummary()

	bgCtx, stopBg := context.WithCancel(context.Background())
	var bg sync.WaitGroup
	bg.Go(func() { r.ledger.run(bgCtx) })
	bg.Go(func() { r.sampleLoop(bgCtx) })
	if r.lines {
		bg.Go(func() { r.logLoop(bgCtx) })
	}
	defer func() {
		stopBg()
		bg.Wait()
	}()
	// The baseline: the servers running, no client yet.
	baseGoroutines := runtime.NumGoroutine()
	baseStacks := goroutineStacks()

	r.prog.start(func() (string, float64) {
		return fmt.Sprintf("soak: connecting %s/%s, %s failed", commas(r.load.established.Load()), commas(int64(cfg.conns)), commas(r.load.dialFailed.count())),
			countShare(r.load.established.Load(), int64(cfg.conns))
	})
	opened := r.load.openAll(ctx)
	r.prog.end()
	r.ledger.clients = make([]*soakClient, len(opened))
	var live []*soakClient
	for i, c := range opened {
		if c != nil {
			r.ledger.clients[i] = c
			live = append(live, c)
		}
	}
	sum.Dial = &dialSummary{Established: r.load.established.Load(), Failed: r.load.dialFailed.count(), Failures: r.load.dialFailed.snapshot(), Handshake: r.load.handshake.summary()}
	if n := sum.Dial.Failed; n > 0 {
		r.fail("%s of %s clients could not connect (%s)", commas(n), commas(int64(cfg.conns)), formatReasons(sum.Dial.Failures))
	}

	stopCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	var clients sync.WaitGroup
	var warmEnd, measureEnd int64
	sum.StoppedBy = "interrupt"
	if len(live) >= 2 && ctx.Err() == nil {
		r.client.begin()
		for _, c := range live {
			clients.Go(func() { r.load.run(ctx, stopCtx, c) })
		}
		r.prog.start(func() (string, float64) { return r.status(), progressOpen })
		r.event("warming up for %v", cfg.warmup)
		t := newStoppedTimer()
		if sleepCtx(ctx, t, cfg.warmup) == nil {
			warmEnd = nanotime()
			r.event("measuring for %v", cfg.duration)
			if r.measure(ctx, t) {
				sum.StoppedBy = "duration"
			}
			measureEnd = nanotime()
		}
		r.setPhase("stopping")
		stopLoad()
		clients.Wait()
		if measureEnd == 0 {
			measureEnd = nanotime()
		}
		// Every first verdict is due within --grace, and the final one
		// soakFinalWait later at most; an interrupt does not cut this
		// short, or the messages on their way would count as lost.
		r.event("waiting for the last deliveries")
		dctx, cancel := context.WithTimeout(context.Background(), cfg.grace+soakFinalWait+5*time.Second)
		r.ledger.drain(dctx)
		cancel()
		r.prog.end()
		sum.Client = r.client.finish()
	} else if len(live) < 2 {
		r.fail("fewer than 2 clients connected: nothing to soak")
	}

	r.prog.start(func() (string, float64) {
		return fmt.Sprintf("soak: closing %s clients", commas(int64(len(live)))), progressOpen
	})
	r.load.closeAll(live)
	r.prog.end()
	if cfg.inProcess() {
		sum.Goroutines = r.checkGoroutines(baseGoroutines, baseStacks)
	}
	stopBg()
	bg.Wait()
	r.finishSummary(sum, warmEnd, measureEnd)
	return sum
}

// measure runs the measured part: --duration, with the Redis restarts
// spread over it. It reports false when interrupted.
func (r *soakRun) measure(ctx context.Context, t *time.Timer) bool {
	cfg := r.cfg
	begin := time.Now()
	end := begin.Add(cfg.duration)
	for k := 1; k <= cfg.restarts && r.redis != nil; k++ {
		at := begin.Add(cfg.duration * time.Duration(k) / time.Duration(cfg.restarts+1))
		if sleepCtx(ctx, t, time.Until(at)) != nil {
			return false
		}
		r.restartRedis(ctx, k)
		r.event("measuring")
	}
	return sleepCtx(ctx, t, time.Until(end)) == nil
}

// restartRedis kills the private redis-server, starts it again on the
// same port after --redis-down, and waits for both servers to subscribe
// again. For the ledger the outage begins with a flush before the kill
// (what was acknowledged before it has crossed) and ends with a flush
// that crossed after Redis came back.
func (r *soakRun) restartRedis(ctx context.Context, k int) {
	cfg := r.cfg
	o := soakOutageSummary{}
	r.ledger.outageBegin()
	fctx, cancel := context.WithTimeout(context.Background(), soakHealTimeout)
	err := r.flushAll(fctx)
	cancel()
	if err != nil {
		r.fail("restart %d: before the kill, the servers did not reach each other through Redis: %v", k, err)
	}
	down := time.Now()
	r.redis.kill()
	r.event("redis-server killed (restart %d of %d)", k, cfg.restarts)
	t := newStoppedTimer()
	_ = sleepCtx(ctx, t, cfg.redisDown) // even when interrupted, Redis comes back for the end
	for range 3 {
		if err = r.redis.start(); err == nil {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	up := time.Now()
	o.DownSeconds = round3(up.Sub(down).Seconds())
	if err != nil {
		r.fail("restart %d: %v", k, err)
		r.event("redis-server did not start again: %v", err)
		r.addOutage(o)
		return
	}
	r.event("redis-server started again on port %d; waiting for the servers to subscribe", r.redis.port)
	if err := r.waitCluster(context.Background(), soakHealTimeout); err != nil {
		r.fail("restart %d: the cluster did not heal after Redis came back: %v", k, err)
		r.addOutage(o)
		return
	}
	r.ledger.outageEnd()
	o.Healed = true
	o.HealedAfterSeconds = round3(time.Since(up).Seconds())
	r.addOutage(o)
	r.event("cluster healed %.1fs after Redis came back", o.HealedAfterSeconds)
}

func (r *soakRun) addOutage(o soakOutageSummary) {
	r.fmu.Lock()
	r.outages = append(r.outages, o)
	r.fmu.Unlock()
}

// sampleLoop samples the memory every soakSampleEvery until ctx is done.
func (r *soakRun) sampleLoop(ctx context.Context) {
	t := time.NewTicker(soakSampleEvery)
	defer t.Stop()
	ms := []rtmetrics.Sample{{Name: "/gc/heap/live:bytes"}}
	for {
		s := soakSample{at: nanotime(), goroutines: runtime.NumGoroutine()}
		rtmetrics.Read(ms)
		if ms[0].Value.Kind() == rtmetrics.KindUint64 {
			s.heapLive = ms[0].Value.Uint64()
		}
		if p, err := readProc(os.Getpid()); err == nil {
			s.rssKiB = p.rssKiB
		}
		for _, p := range r.probes {
			var rss int64 = -1
			if q, err := readProc(p.pid); err == nil {
				rss = q.rssKiB
			}
			s.serverRSS = append(s.serverRSS, rss)
		}
		r.smu.Lock()
		r.samples = append(r.samples, s)
		r.smu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// logLoop writes the status line every soakLogEvery, for a log file.
func (r *soakRun) logLoop(ctx context.Context) {
	t := time.NewTicker(soakLogEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fmt.Fprintln(r.stderr, r.status())
		}
	}
}

// checkGoroutines waits, soakGoroutineWait at most, for the goroutines
// to be back to the baseline, and names the stacks of those left.
func (r *soakRun) checkGoroutines(base int, baseStacks map[string]int) *soakGoroutineSummary {
	g := &soakGoroutineSummary{Baseline: base}
	r.smu.Lock()
	for _, s := range r.samples {
		g.Peak = max(g.Peak, s.goroutines)
	}
	r.smu.Unlock()
	// The progress line's own goroutine, on a terminal, is not counted.
	drawing := 0
	if r.prog.w != nil {
		drawing = 1
	}
	r.prog.start(func() (string, float64) {
		return fmt.Sprintf("soak: waiting for the goroutines: %d, baseline %d", runtime.NumGoroutine()-drawing, base), progressOpen
	})
	deadline := time.Now().Add(soakGoroutineWait)
	for {
		g.End = runtime.NumGoroutine() - drawing
		if g.End <= base || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.prog.end()
	g.Peak = max(g.Peak, base)
	g.Back = g.End <= base
	if !g.Back {
		g.Leaked = leakedStacks(baseStacks, goroutineStacks(), 5)
		r.fail("%d goroutines left %v after every client left, %d more than before they connected (%s)", g.End, soakGoroutineWait, g.End-base, strings.Join(g.Leaked, "; "))
	}
	return g
}

// goroutineStacks counts the goroutines by stack (the functions only, no
// addresses), from the goroutine profile.
func goroutineStacks() map[string]int {
	var buf bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&buf, 1); err != nil {
		return nil
	}
	out := make(map[string]int)
	sc := bufio.NewScanner(&buf)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	var frames []string
	flush := func() {
		if n > 0 && len(frames) > 0 {
			out[strings.Join(frames, " < ")] += n
		}
		n, frames = 0, nil
	}
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			flush()
		case strings.HasPrefix(line, "#"):
			f := strings.Fields(line)
			if len(f) >= 3 {
				fn, _, _ := strings.Cut(f[2], "+")
				frames = append(frames, fn)
			}
		default:
			if c, _, ok := strings.Cut(line, " @ "); ok {
				_, _ = fmt.Sscan(c, &n)
			}
		}
	}
	flush()
	return out
}

// leakedStacks describes the stacks that have more goroutines in after
// than in before, the largest excess first, at most n of them.
func leakedStacks(before, after map[string]int, n int) []string {
	type leak struct {
		stack string
		extra int
	}
	var leaks []leak
	for k, v := range after {
		if d := v - before[k]; d > 0 {
			leaks = append(leaks, leak{k, d})
		}
	}
	sort.Slice(leaks, func(i, j int) bool {
		if leaks[i].extra != leaks[j].extra {
			return leaks[i].extra > leaks[j].extra
		}
		return leaks[i].stack < leaks[j].stack
	})
	var out []string
	for _, l := range leaks[:min(n, len(leaks))] {
		frames := strings.Split(l.stack, " < ")
		// The innermost frames are the runtime's parking; the first of
		// ours says more.
		for len(frames) > 1 && (strings.HasPrefix(frames[0], "runtime.") || strings.HasPrefix(frames[0], "internal/") || strings.HasPrefix(frames[0], "sync.") || strings.HasPrefix(frames[0], "time.")) {
			frames = frames[1:]
		}
		out = append(out, fmt.Sprintf("%d in %s", l.extra, strings.Join(frames[:min(3, len(frames))], " < ")))
	}
	return out
}
