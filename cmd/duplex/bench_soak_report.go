package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

// soakSummary is the result of a soak, printed as a table or as JSON
// (--json). The JSON field names are part of the command's interface:
// scripts read failures and the counts with them. The counts cover the
// whole run, warm-up included.
type soakSummary struct {
	Scenario      string   `json:"scenario"` // "soak"
	Servers       []string `json:"servers"`
	InProcess     bool     `json:"in_process"`      // the soak ran the servers
	Redis         string   `json:"redis,omitempty"` // in process: the Redis they share
	PrivateRedis  bool     `json:"private_redis"`   // that Redis is the soak's redis-server
	Conns         int      `json:"conns"`
	Rooms         int      `json:"rooms"`
	Rate          float64  `json:"rate"` // operations per second
	Size          int      `json:"size"`
	GraceSeconds  float64  `json:"grace_seconds"`
	WarmupSeconds float64  `json:"warmup_seconds"`
	Seconds       float64  `json:"seconds"`    // run after the warm-up
	StoppedBy     string   `json:"stopped_by"` // duration or interrupt

	Dial       *dialSummary          `json:"dial,omitempty"`
	Clients    soakClientSummary     `json:"clients"`
	Messages   soakMessageSummary    `json:"messages"`
	Deliveries soakDeliverySummary   `json:"deliveries"`
	Restarts   soakRestartSummary    `json:"redis_restarts"`
	Memory     *soakMemorySummary    `json:"memory,omitempty"`
	Goroutines *soakGoroutineSummary `json:"goroutines,omitempty"` // in process
	Client     *clientSummary        `json:"client,omitempty"`     // this process's CPU (Linux)

	Passed   bool     `json:"passed"`
	Failures []string `json:"failures"` // the checks that failed; the exit status is 1 if any
}

// soakClientSummary is what the clients did besides saying.
type soakClientSummary struct {
	Joins        int64            `json:"joins"`  // acknowledged
	Leaves       int64            `json:"leaves"` // acknowledged
	Drops        int64            `json:"drops"`  // connections cut by the soak
	Reconnects   int64            `json:"reconnects"`
	Reconnect    *latencySummary  `json:"reconnect,omitempty"` // from the drop to the new session
	Errors       int64            `json:"errors"`
	ErrorReasons map[string]int64 `json:"error_reasons,omitempty"`
}

// soakMessageSummary counts the says.
type soakMessageSummary struct {
	Sent           int64            `json:"sent"`
	Acknowledged   int64            `json:"acknowledged"` // with true
	Refused        int64            `json:"refused"`      // acknowledged with something else
	RefusedReasons map[string]int64 `json:"refused_reasons,omitempty"`
	Unacknowledged int64            `json:"unacknowledged"` // no acknowledgement within --timeout, or disconnected first
	Interrupted    int64            `json:"interrupted,omitempty"`
	AckLatency     *latencySummary  `json:"ack_latency,omitempty"`
}

// soakDeliverySummary is the verdict on the acknowledged says: each
// (say, member) pair of the snapshot taken at the acknowledgement is
// delivered, late, excused, reported failed or lost (see soakLedger).
type soakDeliverySummary struct {
	Expected        int64           `json:"expected"`         // pairs in the snapshots
	Required        int64           `json:"required"`         // expected - excused
	Delivered       int64           `json:"delivered"`        // received within --grace
	DeliveredAcross int64           `json:"delivered_across"` // of which from one server to another
	Late            int64           `json:"late"`             // received, but after --grace
	Excused         int64           `json:"excused"`          // not received, the member left or dropped first
	ReportedFailed  int64           `json:"reported_failed"`  // across servers, during a Redis outage
	Lost            int64           `json:"lost"`             // none of the above: a failure
	LostSamples     []string        `json:"lost_samples,omitempty"`
	Received        int64           `json:"received"`   // every delivery of the soak's says
	Extra           int64           `json:"extra"`      // to members that joined within the window
	Duplicates      int64           `json:"duplicates"` // a failure
	Stray           int64           `json:"stray"`      // to a client that never joined the room, or malformed: a failure
	Latency         *latencySummary `json:"latency,omitempty"`
}

// soakRestartSummary is what happened to Redis.
type soakRestartSummary struct {
	Planned         int                 `json:"planned"`
	Done            int                 `json:"done"`
	Skipped         string              `json:"skipped,omitempty"` // why there were none
	Outages         []soakOutageSummary `json:"outages,omitempty"`
	PublishErrors   uint64              `json:"publish_errors"`  // in process: the adapters' Stats
	Dropped         uint64              `json:"dropped"`         // publish queue full
	Resubscriptions uint64              `json:"resubscriptions"` // subscriptions back after a loss
}

// soakOutageSummary is one restart.
type soakOutageSummary struct {
	DownSeconds        float64 `json:"down_seconds"` // from the kill until Redis listened again
	Healed             bool    `json:"healed"`
	HealedAfterSeconds float64 `json:"healed_after_seconds,omitempty"` // from then until both servers had subscribed again
}

// soakMemorySummary compares the memory after the warm-up with the end.
type soakMemorySummary struct {
	Metric        string            `json:"metric"` // heap_live (in process) or rss (--server-pid)
	Checked       bool              `json:"checked"`
	Why           string            `json:"why,omitempty"` // why not checked
	TolerancePct  float64           `json:"tolerance_pct"`
	WindowSeconds float64           `json:"window_seconds"` // the span averaged at each end
	Processes     []*soakMemProcess `json:"processes,omitempty"`
}

// soakMemProcess is one process's memory.
type soakMemProcess struct {
	What        string  `json:"what"`
	PID         int     `json:"pid"`
	AfterWarmup int64   `json:"after_warmup_bytes"` // mean over the first window
	End         int64   `json:"end_bytes"`          // mean over the last window
	GrowthPct   float64 `json:"growth_pct"`
	Allowed     int64   `json:"allowed_bytes"`
	Flat        bool    `json:"flat"`
	// The resident set, in KiB: the same windows, and the process's peak
	// (VmHWM).
	RSSAfterWarmupKiB int64 `json:"rss_after_warmup_kib,omitempty"`
	RSSEndKiB         int64 `json:"rss_end_kib,omitempty"`
	RSSPeakKiB        int64 `json:"rss_peak_kib,omitempty"`
}

// soakGoroutineSummary counts this process's goroutines (in process).
type soakGoroutineSummary struct {
	Baseline int      `json:"baseline"` // the servers up, before the clients connected
	Peak     int      `json:"peak"`     // sampled every second
	End      int      `json:"end"`      // after every client left
	Back     bool     `json:"back"`
	Leaked   []string `json:"leaked,omitempty"` // stacks with more goroutines than at the baseline
}

func (r *soakRun) newSummary() *soakSummary {
	cfg := r.cfg
	return &soakSummary{
		Scenario:      "soak",
		Servers:       r.urls,
		InProcess:     cfg.inProcess(),
		Redis:         r.redisURL,
		PrivateRedis:  r.redis != nil,
		Conns:         cfg.conns,
		Rooms:         cfg.rooms,
		Rate:          cfg.rate,
		Size:          cfg.size,
		GraceSeconds:  cfg.grace.Seconds(),
		WarmupSeconds: cfg.warmup.Seconds(),
	}
}

// finishSummary fills in the counts and the checks. warmEnd and
// measureEnd bound the measured part (nanotime; warmEnd 0: the warm-up
// did not end).
func (r *soakRun) finishSummary(sum *soakSummary, warmEnd, measureEnd int64) {
	cfg, l, ld := r.cfg, r.ledger, r.load
	if warmEnd > 0 {
		sum.Seconds = round3(time.Duration(measureEnd - warmEnd).Seconds())
	}
	sum.Clients = soakClientSummary{
		Joins: ld.joins.Load(), Leaves: ld.leaves.Load(), Drops: ld.drops.Load(), Reconnects: ld.reconnects.Load(),
		Reconnect: ld.reconnect.summary(), Errors: ld.errors.count(), ErrorReasons: ld.errors.snapshot(),
	}
	sum.Messages = soakMessageSummary{
		Sent: l.sent.Load(), Acknowledged: l.acked.Load(), Refused: l.refused.Load(), RefusedReasons: l.refusedWhy.snapshot(),
		Unacknowledged: l.unacked.Load(), Interrupted: l.interrupted.Load(), AckLatency: l.ackLatency.summary(),
	}
	d := soakDeliverySummary{
		Expected: l.expected.Load(), Delivered: l.delivered.Load(), DeliveredAcross: l.deliveredCross.Load(),
		Late: l.late.Load(), Excused: l.excused.Load(), ReportedFailed: l.reportedFailed.Load(), Lost: l.lost.Load(),
		Received: l.received.Load(), Extra: l.extra.Load(), Duplicates: l.duplicates.Load(),
		Stray: l.stray.Load(), Latency: l.receiptLatency.summary(),
	}
	d.Required = d.Expected - d.Excused
	l.smu.Lock()
	d.LostSamples = l.samples
	l.smu.Unlock()
	sum.Deliveries = d
	r.restartSummary(sum)
	sum.Memory = r.memorySummary(warmEnd, measureEnd)

	if d.Lost > 0 {
		first := ""
		if len(d.LostSamples) > 0 {
			first = " (the first: " + d.LostSamples[0] + ")"
		}
		r.fail("%s deliveries of acknowledged says lost%s", commas(d.Lost), first)
	}
	if d.Duplicates > 0 {
		r.fail("%s duplicate deliveries", commas(d.Duplicates))
	}
	if d.Stray > 0 {
		r.fail("%s stray deliveries (to a client that never joined the room, or malformed)", commas(d.Stray))
	}
	if n := sum.Clients.Errors; n > 0 {
		r.fail("%s client errors (%s)", commas(n), formatReasons(sum.Clients.ErrorReasons))
	}
	if m := sum.Memory; m != nil && m.Checked {
		for _, p := range m.Processes {
			if !p.Flat {
				r.fail("%s: %s grew from %s after the warm-up to %s at the end (+%.1f%%, allowed %s)", p.What, m.Metric, fmtBytes64(p.AfterWarmup), fmtBytes64(p.End), p.GrowthPct, fmtBytes64(p.Allowed))
			}
		}
	}
	if cfg.inProcess() && sum.StoppedBy == "duration" && sum.Restarts.Done < sum.Restarts.Planned {
		r.fail("%d of %d Redis restarts done", sum.Restarts.Done, sum.Restarts.Planned)
	}
	r.fmu.Lock()
	sum.Failures = append([]string{}, r.failures...)
	r.fmu.Unlock()
	sum.Passed = len(sum.Failures) == 0
}

func (r *soakRun) restartSummary(sum *soakSummary) {
	cfg := r.cfg
	rs := &sum.Restarts
	switch {
	case !cfg.inProcess():
		rs.Skipped = "servers given by URL: their Redis is not the soak's to restart"
	case !sum.PrivateRedis:
		rs.Skipped = "--redis given: the soak restarts only a redis-server it started itself"
	case cfg.restarts == 0:
		rs.Skipped = "--redis-restarts 0"
	default:
		rs.Planned = cfg.restarts
	}
	r.fmu.Lock()
	rs.Outages = append([]soakOutageSummary(nil), r.outages...)
	r.fmu.Unlock()
	rs.Done = len(rs.Outages)
	for _, s := range r.servers {
		st := s.adapter.Stats()
		rs.PublishErrors += st.PublishErrors
		rs.Dropped += st.Dropped
		rs.Resubscriptions += st.Reconnects
	}
}

// memorySummary compares the mean of the samples in the first window
// after the warm-up with the mean of the last window.
func (r *soakRun) memorySummary(warmEnd, measureEnd int64) *soakMemorySummary {
	cfg := r.cfg
	m := &soakMemorySummary{Metric: "heap_live", TolerancePct: cfg.memTolerance}
	if !cfg.inProcess() {
		m.Metric = "rss"
		if len(r.probes) == 0 {
			m.Why = "servers given by URL: pass --server-pid to sample their RSS"
			return m
		}
	}
	span := time.Duration(measureEnd - warmEnd)
	w := min(max(span/10, 3*time.Second), time.Minute)
	m.WindowSeconds = w.Seconds()
	if warmEnd == 0 || span < 2*w {
		m.Why = fmt.Sprintf("the run after the warm-up (%v) is shorter than twice the window (%v)", span.Round(time.Millisecond), w)
		return m
	}
	r.smu.Lock()
	samples := append([]soakSample(nil), r.samples...)
	r.smu.Unlock()
	mean := func(from, to int64, v func(s soakSample) int64) int64 {
		var sum, n int64
		for _, s := range samples {
			if s.at >= from && s.at <= to {
				if x := v(s); x >= 0 {
					sum += x
					n++
				}
			}
		}
		if n == 0 {
			return -1
		}
		return sum / n
	}
	baseFrom, baseTo := warmEnd, warmEnd+int64(w)
	endFrom, endTo := measureEnd-int64(w), measureEnd
	judge := func(p *soakMemProcess, v func(s soakSample) int64) bool {
		p.AfterWarmup, p.End = mean(baseFrom, baseTo, v), mean(endFrom, endTo, v)
		if p.AfterWarmup <= 0 || p.End < 0 {
			return false
		}
		p.GrowthPct = round1(float64(p.End-p.AfterWarmup) * 100 / float64(p.AfterWarmup))
		p.Allowed = max(int64(float64(p.AfterWarmup)*cfg.memTolerance/100), soakMemFloor)
		p.Flat = p.End-p.AfterWarmup <= p.Allowed
		return true
	}
	if cfg.inProcess() {
		p := &soakMemProcess{What: "this process (servers and clients)", PID: os.Getpid()}
		if !judge(p, func(s soakSample) int64 { return int64(s.heapLive) }) {
			m.Why = "no heap samples"
			return m
		}
		p.RSSAfterWarmupKiB = mean(baseFrom, baseTo, func(s soakSample) int64 { return s.rssKiB })
		p.RSSEndKiB = mean(endFrom, endTo, func(s soakSample) int64 { return s.rssKiB })
		p.RSSPeakKiB = peakRSS(samples, os.Getpid(), func(s soakSample) int64 { return s.rssKiB })
		m.Processes = append(m.Processes, p)
		m.Checked = true
		return m
	}
	for i, probe := range r.probes {
		p := &soakMemProcess{What: fmt.Sprintf("pid %d", probe.pid), PID: probe.pid}
		rss := func(s soakSample) int64 {
			if i < len(s.serverRSS) && s.serverRSS[i] >= 0 {
				return s.serverRSS[i] << 10
			}
			return -1
		}
		if !judge(p, rss) {
			m.Why = fmt.Sprintf("pid %d could not be sampled", probe.pid)
			return m
		}
		p.RSSAfterWarmupKiB, p.RSSEndKiB = p.AfterWarmup>>10, p.End>>10
		p.RSSPeakKiB = peakRSS(samples, probe.pid, func(s soakSample) int64 { return rss(s) >> 10 })
		m.Processes = append(m.Processes, p)
	}
	m.Checked = true
	return m
}

// peakRSS is the larger of the process's VmHWM and the largest RSS
// sampled: the kernel updates VmHWM lazily, so it may lag the samples.
func peakRSS(samples []soakSample, pid int, rssKiB func(soakSample) int64) int64 {
	var peak int64
	if s, err := readProc(pid); err == nil {
		peak = s.hwmKiB
	}
	for _, s := range samples {
		peak = max(peak, rssKiB(s))
	}
	return peak
}

// print writes the summary as a two-column table.
func (s *soakSummary) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	row := func(k, format string, a ...any) { fmt.Fprintf(tw, "%s\t%s\n", k, fmt.Sprintf(format, a...)) }

	if s.InProcess {
		redis := "Redis at " + s.Redis
		if s.PrivateRedis {
			redis = "a private redis-server at " + strings.TrimPrefix(s.Redis, "redis://")
		}
		row("scenario", "soak: %d in-process servers joined by adapter/redis through %s", len(s.Servers), redis)
	} else {
		row("scenario", "soak: %d servers given by URL", len(s.Servers))
	}
	row("servers", "%s", strings.Join(s.Servers, " "))
	row("load", "%s clients, %s rooms, %v operations/s (%d%% say, %d%% join, %d%% leave, %d%% drop), %d-byte texts",
		commas(int64(s.Conns)), commas(int64(s.Rooms)), s.Rate, soakSayPct, soakJoinPct, soakLeavePct, 100-soakSayPct-soakJoinPct-soakLeavePct, s.Size)
	row("run", "%.1f s after a %.1f s warm-up, stopped by %s", s.Seconds, s.WarmupSeconds, s.StoppedBy)
	if d := s.Dial; d != nil {
		line := fmt.Sprintf("%s established, %s failed", commas(d.Established), commas(d.Failed))
		if d.Handshake != nil {
			line += "; handshake " + fmtLatency(d.Handshake, false)
		}
		row("connections", "%s", line)
		if len(d.Failures) > 0 {
			row("  failures", "%s", formatReasons(d.Failures))
		}
	}
	c := s.Clients
	line := fmt.Sprintf("%s joins, %s leaves, %s drops, %s reconnected", commas(c.Joins), commas(c.Leaves), commas(c.Drops), commas(c.Reconnects))
	if c.Reconnect != nil {
		line += " (" + fmtLatency(c.Reconnect, false) + ")"
	}
	row("clients", "%s", line)
	row("  errors", "%s", fmtErrors(c.Errors, c.ErrorReasons))
	m := s.Messages
	line = fmt.Sprintf("%s sent: %s acknowledged, %s refused, %s unacknowledged", commas(m.Sent), commas(m.Acknowledged), commas(m.Refused), commas(m.Unacknowledged))
	if m.Interrupted > 0 {
		line += fmt.Sprintf(", %s interrupted", commas(m.Interrupted))
	}
	row("says", "%s", line)
	if len(m.RefusedReasons) > 0 {
		row("  refused", "%s", formatReasons(m.RefusedReasons))
	}
	if m.AckLatency != nil {
		row("  ack latency", "%s", fmtLatency(m.AckLatency, true))
	}
	d := s.Deliveries
	row("deliveries", "%s required: %s delivered within %v (%s across servers), %s late, %s reported failed (across servers during Redis outages), %s lost",
		commas(d.Required), commas(d.Delivered), time.Duration(s.GraceSeconds*float64(time.Second)), commas(d.DeliveredAcross), commas(d.Late), commas(d.ReportedFailed), commas(d.Lost))
	row("", "%s excused (the member left or dropped first), %s to members that joined meanwhile, %s duplicates, %s stray",
		commas(d.Excused), commas(d.Extra), commas(d.Duplicates), commas(d.Stray))
	if d.Latency != nil {
		row("  latency", "%s (emit to receipt)", fmtLatency(d.Latency, true))
	}
	for _, l := range d.LostSamples {
		row("  lost", "%s", l)
	}
	rs := s.Restarts
	if rs.Skipped != "" {
		row("redis restarts", "none: %s", rs.Skipped)
	} else {
		var parts []string
		for _, o := range rs.Outages {
			if o.Healed {
				parts = append(parts, fmt.Sprintf("down %.1f s, healed %.1f s later", o.DownSeconds, o.HealedAfterSeconds))
			} else {
				parts = append(parts, fmt.Sprintf("down %.1f s, not healed", o.DownSeconds))
			}
		}
		row("redis restarts", "%d of %d: %s", rs.Done, rs.Planned, strings.Join(parts, "; "))
	}
	if s.InProcess {
		row("  adapters", "%s publish errors, %s dropped, %s resubscriptions", commas(int64(rs.PublishErrors)), commas(int64(rs.Dropped)), commas(int64(rs.Resubscriptions)))
	}
	if mem := s.Memory; mem != nil {
		if !mem.Checked {
			row("memory", "not checked: %s", mem.Why)
		}
		for _, p := range mem.Processes {
			verdict := "flat"
			if !p.Flat {
				verdict = "GROWING"
			}
			what := "heap live"
			if mem.Metric == "rss" {
				what = "RSS"
			}
			row("memory", "%s: %s %s after the warm-up → %s at the end (%+.1f%%, allowed %s): %s", p.What, what, fmtBytes64(p.AfterWarmup), fmtBytes64(p.End), p.GrowthPct, fmtBytes64(p.Allowed), verdict)
			if mem.Metric != "rss" && p.RSSEndKiB > 0 {
				row("", "RSS %s → %s, peak %s", fmtKiB(p.RSSAfterWarmupKiB), fmtKiB(p.RSSEndKiB), fmtKiB(p.RSSPeakKiB))
			} else if p.RSSPeakKiB > 0 {
				row("", "peak RSS %s", fmtKiB(p.RSSPeakKiB))
			}
		}
	}
	if g := s.Goroutines; g != nil {
		verdict := "back to the baseline"
		if !g.Back {
			verdict = fmt.Sprintf("%d LEFT", g.End-g.Baseline)
		}
		row("goroutines", "baseline %s, peak %s, %s after the clients left: %s", commas(int64(g.Baseline)), commas(int64(g.Peak)), commas(int64(g.End)), verdict)
		for _, l := range g.Leaked {
			row("  left", "%s", l)
		}
	}
	if c := s.Client; c != nil {
		row("cpu", "this process %.1f s (%.2f cores)", c.CPUSeconds, c.Cores)
	}
	if s.Passed {
		row("result", "PASS")
	} else {
		row("result", "FAIL")
		for _, f := range s.Failures {
			row("  failed", "%s", f)
		}
	}
	_ = tw.Flush()
}

// fmtBytes64 renders a byte count in KiB or MiB.
func fmtBytes64(b int64) string {
	if b < 0 {
		return "-" + fmtKiB(-b>>10)
	}
	return fmtKiB(b >> 10)
}
