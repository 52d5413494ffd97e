package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
)

// benchSummary is the result of a run, printed as a table or as JSON
// (--json). The JSON field names are part of the command's interface:
// scripts compare runs with them. Exactly one of the scenario sections
// (Echo, Idle, Connect, Fanout, SocketIO) is set, but for socketio --mode
// fanout, which sets SocketIO (the publishers' acks) and Fanout (the
// deliveries).
type benchSummary struct {
	Scenario   string   `json:"scenario"`
	URL        string   `json:"url"`
	URLs       []string `json:"urls,omitempty"` // socketio --mode fanout with several URLs: all of them, url first
	Mode       string   `json:"mode,omitempty"` // socketio: ack or fanout
	Conns      int      `json:"conns"`
	Size       int      `json:"size,omitempty"`
	Binary     bool     `json:"binary"`
	Deflate    bool     `json:"deflate"`
	Extensions string   `json:"extensions,omitempty"` // as negotiated by the first connection
	Rate       float64  `json:"rate,omitempty"`
	Pipeline   int      `json:"pipeline,omitempty"`
	Seconds    float64  `json:"seconds"`    // the measured time (idle: the hold)
	StoppedBy  string   `json:"stopped_by"` // duration, count or interrupt

	Dial     *dialSummary    `json:"dial,omitempty"`
	Echo     *echoSummary    `json:"echo,omitempty"`
	Idle     *idleSummary    `json:"idle,omitempty"`
	Connect  *connectSummary `json:"connect,omitempty"`
	Fanout   *fanoutSummary  `json:"fanout,omitempty"`
	SocketIO *sioSummary     `json:"socketio,omitempty"`

	Server *serverSummary `json:"server,omitempty"` // with --server-pid
	Client *clientSummary `json:"client,omitempty"` // this process (Linux)
}

// dialSummary is how opening the connections went.
type dialSummary struct {
	Established int64            `json:"established"`
	Failed      int64            `json:"failed"`
	Failures    map[string]int64 `json:"failures,omitempty"` // by reason
	Handshake   *latencySummary  `json:"handshake,omitempty"`
}

type echoSummary struct {
	Messages       int64            `json:"messages"` // echoed and checked
	MessagesPerSec float64          `json:"messages_per_sec"`
	BytesPerSec    float64          `json:"bytes_per_sec"` // payload, each way
	Latency        *latencySummary  `json:"latency,omitempty"`
	Errors         int64            `json:"errors"`
	ErrorReasons   map[string]int64 `json:"error_reasons,omitempty"`
}

type idleSummary struct {
	Open          int64            `json:"open"` // still open at the end of the hold
	Lost          int64            `json:"lost"` // closed by the server or the network while held
	LostReasons   map[string]int64 `json:"lost_reasons,omitempty"`
	Pings         int64            `json:"pings"` // answered
	PingFailures  int64            `json:"ping_failures"`
	PingRTT       *latencySummary  `json:"ping_rtt,omitempty"`
	ClosedCleanly int64            `json:"closed_cleanly"` // close handshake completed
	CloseFailures map[string]int64 `json:"close_failures,omitempty"`
}

type connectSummary struct {
	Handshakes       int64            `json:"handshakes"` // open + close cycles completed
	HandshakesPerSec float64          `json:"handshakes_per_sec"`
	Handshake        *latencySummary  `json:"handshake,omitempty"` // the opening handshake
	Close            *latencySummary  `json:"close,omitempty"`     // the close handshake
	Failures         int64            `json:"failures"`
	FailureReasons   map[string]int64 `json:"failure_reasons,omitempty"`
}

type fanoutSummary struct {
	Subscribers      int64            `json:"subscribers"` // subscribed when measuring began
	Sent             int64            `json:"sent"`        // messages the publisher sent
	Expected         int64            `json:"expected"`    // sent × subscribers
	Received         int64            `json:"received"`
	Lost             int64            `json:"lost"` // expected - received
	DeliveriesPerSec float64          `json:"deliveries_per_sec"`
	Latency          *latencySummary  `json:"latency,omitempty"` // send to receipt
	Errors           int64            `json:"errors"`
	ErrorReasons     map[string]int64 `json:"error_reasons,omitempty"`
}

// serverSummary is what /proc said about the server around the
// measurement.
type serverSummary struct {
	PID            int     `json:"pid"`
	CPUSeconds     float64 `json:"cpu_seconds"`
	Op             string  `json:"op,omitempty"` // what cpu_us_per_op divides by
	CPUUSPerOp     float64 `json:"cpu_us_per_op,omitempty"`
	RSSBeforeKiB   int64   `json:"rss_before_kib"`
	RSSAfterKiB    int64   `json:"rss_after_kib"`
	RSSPeakKiB     int64   `json:"rss_peak_kib"`
	RSSPerConnKiB  float64 `json:"rss_per_conn_kib,omitempty"` // idle: (after - before) / established; socketio: (after - unloaded) / clients
	RSSUnloadedKiB int64   `json:"rss_unloaded_kib,omitempty"` // socketio: before the clients connected
	Threads        int64   `json:"threads"`
	Error          string  `json:"error,omitempty"` // the second sample failed (the server exited?)

	// With several --server-pid, the fields above are the processes'
	// sums (pid the first one's) and Processes holds each.
	Processes []*serverSummary `json:"processes,omitempty"`
}

// clientSummary is this process's CPU time during the measurement.
type clientSummary struct {
	CPUSeconds float64 `json:"cpu_seconds"`
	Cores      float64 `json:"cores"` // CPU seconds per second
}

// serverProbe samples the server's /proc entries.
type serverProbe struct {
	pid      int
	before   procSample
	unloaded int64          // RSS in KiB before the load connected; 0 if not sampled
	more     []*serverProbe // the other processes of a cluster (several --server-pid)
}

func newServerProbe(pid int) (*serverProbe, error) {
	s, err := readProc(pid)
	if err != nil {
		return nil, err
	}
	return &serverProbe{pid: pid, before: s}, nil
}

// begin takes the first sample.
func (p *serverProbe) begin() {
	if p == nil {
		return
	}
	if s, err := readProc(p.pid); err == nil {
		p.before = s
	}
	for _, q := range p.more {
		q.begin()
	}
}

// finish takes the second sample and digests both: CPU time per op, and
// memory per connection if conns > 0. With more processes, it sums them.
func (p *serverProbe) finish(ops int64, op string, conns int64) *serverSummary {
	if p == nil {
		return nil
	}
	if len(p.more) == 0 {
		return p.finishOne(ops, op, conns)
	}
	sum := &serverSummary{PID: p.pid}
	var cpu float64
	for _, q := range append([]*serverProbe{p}, p.more...) {
		s := q.finishOne(ops, op, 0)
		sum.Processes = append(sum.Processes, s)
		if s.Error != "" && sum.Error == "" {
			sum.Error = fmt.Sprintf("pid %d: %s", q.pid, s.Error)
		}
		cpu += s.CPUSeconds
		sum.RSSBeforeKiB += s.RSSBeforeKiB
		sum.RSSAfterKiB += s.RSSAfterKiB
		sum.RSSPeakKiB += s.RSSPeakKiB
		sum.RSSUnloadedKiB += q.unloaded
		sum.Threads += s.Threads
	}
	sum.CPUSeconds = round3(cpu)
	if ops > 0 {
		sum.Op = op
		sum.CPUUSPerOp = round3(cpu * 1e6 / float64(ops))
	}
	base := sum.RSSBeforeKiB
	if sum.RSSUnloadedKiB > 0 {
		base = sum.RSSUnloadedKiB
	}
	if conns > 0 && sum.Error == "" {
		sum.RSSPerConnKiB = round1(float64(sum.RSSAfterKiB-base) / float64(conns))
	}
	return sum
}

// finishOne is finish for p alone.
func (p *serverProbe) finishOne(ops int64, op string, conns int64) *serverSummary {
	sum := &serverSummary{PID: p.pid, RSSBeforeKiB: p.before.rssKiB}
	after, err := readProc(p.pid)
	if err != nil {
		sum.Error = err.Error()
		return sum
	}
	cpu := (after.cpu - p.before.cpu).Seconds()
	sum.CPUSeconds = round3(cpu)
	if ops > 0 {
		sum.Op = op
		sum.CPUUSPerOp = round3(cpu * 1e6 / float64(ops))
	}
	sum.RSSAfterKiB, sum.RSSPeakKiB, sum.Threads = after.rssKiB, after.hwmKiB, after.threads
	base := p.before.rssKiB
	if p.unloaded > 0 {
		base, sum.RSSUnloadedKiB = p.unloaded, p.unloaded
	}
	if conns > 0 {
		sum.RSSPerConnKiB = round1(float64(after.rssKiB-base) / float64(conns))
	}
	return sum
}

// markUnloaded samples the server's memory before the load connects, for
// finish's memory per connection.
func (p *serverProbe) markUnloaded() {
	if p == nil {
		return
	}
	if s, err := readProc(p.pid); err == nil {
		p.unloaded = s.rssKiB
	}
	for _, q := range p.more {
		q.markUnloaded()
	}
}

// clientProbe samples this process's CPU time.
type clientProbe struct{ before procSample }

// newClientProbe returns nil where /proc/self is missing.
func newClientProbe() *clientProbe {
	if _, err := readProc(os.Getpid()); err != nil {
		return nil
	}
	return &clientProbe{}
}

func (p *clientProbe) begin() {
	if p != nil {
		p.before, _ = readProc(os.Getpid())
	}
}

func (p *clientProbe) finish() *clientSummary {
	if p == nil {
		return nil
	}
	after, err := readProc(os.Getpid())
	if err != nil {
		return nil
	}
	cpu := (after.cpu - p.before.cpu).Seconds()
	sum := &clientSummary{CPUSeconds: round3(cpu)}
	if wall := after.at.Sub(p.before.at).Seconds(); wall > 0 {
		sum.Cores = round3(cpu / wall)
	}
	return sum
}

func round3(f float64) float64 { return float64(int64(f*1000+0.5)) / 1000 }

// print writes the summary as a two-column table.
func (s *benchSummary) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	row := func(k, format string, a ...any) { fmt.Fprintf(tw, "%s\t%s\n", k, fmt.Sprintf(format, a...)) }

	what := fmt.Sprintf("%s connections", commas(int64(s.Conns)))
	switch s.Scenario {
	case "connect":
		what = fmt.Sprintf("%s workers", commas(int64(s.Conns)))
	case "fanout":
		what = fmt.Sprintf("%s subscribers, %v messages/s", commas(int64(s.Conns)), s.Rate)
	case "socketio":
		if s.Mode == "fanout" {
			servers := ""
			if len(s.URLs) > 1 {
				servers = fmt.Sprintf(" over %d URLs", len(s.URLs))
			}
			rate := "as fast as acknowledged"
			if s.Rate > 0 {
				rate = fmt.Sprintf("at most %v messages/s", s.Rate)
			}
			pubs := 0
			if s.SocketIO != nil {
				pubs = s.SocketIO.Publishers
			}
			what = fmt.Sprintf("%s subscribers%s, %d publishers %s", commas(int64(s.Conns)), servers, pubs, rate)
		}
	}
	if s.Size > 0 || s.Scenario == "echo" || s.Scenario == "fanout" {
		kind := "text"
		if s.Binary {
			kind = "binary"
		}
		what += fmt.Sprintf(", %d-byte %s messages", s.Size, kind)
	}
	if s.Pipeline > 1 {
		what += fmt.Sprintf(", %d in flight each", s.Pipeline)
	}
	if s.Rate > 0 && s.Scenario != "fanout" && s.Mode != "fanout" {
		what += fmt.Sprintf(", at most %v/s", s.Rate)
	}
	if len(s.URLs) > 1 {
		row("scenario", "%s --mode %s %s", s.Scenario, s.Mode, strings.Join(s.URLs, " "))
	} else if s.Mode == "fanout" {
		row("scenario", "%s --mode %s %s", s.Scenario, s.Mode, s.URL)
	} else {
		row("scenario", "%s %s", s.Scenario, s.URL)
	}
	row("load", "%s", what)
	if s.Extensions != "" {
		row("extensions", "%s", s.Extensions)
	} else if s.Deflate {
		row("extensions", "none (deflate offered, not accepted)")
	}
	measured := "measured"
	if s.Scenario == "idle" {
		measured = "held"
	}
	row(measured, "%.2f s, stopped by %s", s.Seconds, s.StoppedBy)
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
	if e := s.SocketIO; e != nil && s.Mode != "fanout" {
		row("acks", "%s acknowledged (%q over %s): %s/s", commas(e.Acks), e.Event, e.Transport, commas(int64(e.AcksPerSec)))
		if e.Latency != nil {
			row("latency", "%s", fmtLatency(e.Latency, true))
		}
		row("errors", "%s", fmtErrors(e.Errors, e.ErrorReasons))
	}
	if e := s.SocketIO; e != nil && s.Mode == "fanout" {
		row("publishes", "%s acknowledged (%q over %s, %q received): %s/s", commas(e.Acks), e.Event, e.Transport, e.RecvEvent, commas(int64(e.AcksPerSec)))
		if e.Latency != nil {
			row("ack latency", "%s", fmtLatency(e.Latency, true))
		}
	}
	if e := s.Echo; e != nil {
		row("messages", "%s echoed: %s/s, %s/s each way", commas(e.Messages), commas(int64(e.MessagesPerSec)), fmtBytes(e.BytesPerSec))
		if e.Latency != nil {
			row("latency", "%s", fmtLatency(e.Latency, true))
		}
		row("errors", "%s", fmtErrors(e.Errors, e.ErrorReasons))
	}
	if i := s.Idle; i != nil {
		row("held open", "%s, %s lost", commas(i.Open), commas(i.Lost))
		if len(i.LostReasons) > 0 {
			row("  lost", "%s", formatReasons(i.LostReasons))
		}
		if i.Pings > 0 || i.PingFailures > 0 {
			line := fmt.Sprintf("%s answered, %s failed", commas(i.Pings), commas(i.PingFailures))
			if i.PingRTT != nil {
				line += "; round trip " + fmtLatency(i.PingRTT, false)
			}
			row("pings", "%s", line)
		}
		row("closed", "%s with a close handshake", commas(i.ClosedCleanly))
		if len(i.CloseFailures) > 0 {
			row("  close failures", "%s", formatReasons(i.CloseFailures))
		}
	}
	if c := s.Connect; c != nil {
		row("handshakes", "%s opened and closed: %s/s", commas(c.Handshakes), commas(int64(c.HandshakesPerSec)))
		if c.Handshake != nil {
			row("open latency", "%s", fmtLatency(c.Handshake, false))
		}
		if c.Close != nil {
			row("close latency", "%s", fmtLatency(c.Close, false))
		}
		row("failures", "%s", fmtErrors(c.Failures, c.FailureReasons))
	}
	if f := s.Fanout; f != nil {
		row("messages", "%s sent to %s subscribers", commas(f.Sent), commas(f.Subscribers))
		row("deliveries", "%s of %s expected (%s lost): %s/s", commas(f.Received), commas(f.Expected), commas(f.Lost), commas(int64(f.DeliveriesPerSec)))
		if f.Latency != nil {
			row("latency", "%s", fmtLatency(f.Latency, true))
		}
		row("errors", "%s", fmtErrors(f.Errors, f.ErrorReasons))
	}
	if v := s.Server; v != nil {
		if v.Error != "" {
			row("server", "pid %d: %s", v.PID, v.Error)
		} else {
			line := fmt.Sprintf("pid %d: CPU %.2f s", v.PID, v.CPUSeconds)
			if v.Op != "" {
				line += fmt.Sprintf(" (%s per %s)", fmtUS(v.CPUUSPerOp), v.Op)
			}
			line += fmt.Sprintf("; RSS %s → %s (peak %s), %d threads", fmtKiB(v.RSSBeforeKiB), fmtKiB(v.RSSAfterKiB), fmtKiB(v.RSSPeakKiB), v.Threads)
			if len(v.Processes) > 0 {
				line = fmt.Sprintf("%d processes", len(v.Processes)) + strings.TrimPrefix(line, fmt.Sprintf("pid %d", v.PID))
			}
			row("server", "%s", line)
			if v.RSSPerConnKiB != 0 {
				row("  memory", "%.1f KiB per connection", v.RSSPerConnKiB)
			}
			for _, p := range v.Processes {
				row(fmt.Sprintf("  pid %d", p.PID), "CPU %.2f s; RSS %s → %s (peak %s)", p.CPUSeconds, fmtKiB(p.RSSBeforeKiB), fmtKiB(p.RSSAfterKiB), fmtKiB(p.RSSPeakKiB))
			}
		}
	}
	if c := s.Client; c != nil {
		row("client", "CPU %.2f s (%.2f cores)", c.CPUSeconds, c.Cores)
	}
	_ = tw.Flush()
}

func fmtErrors(n int64, m map[string]int64) string {
	if n == 0 {
		return "0"
	}
	return fmt.Sprintf("%s (%s)", commas(n), formatReasons(m))
}

// fmtLatency renders a latency summary; full adds p90 and the mean.
func fmtLatency(l *latencySummary, full bool) string {
	if full {
		return fmt.Sprintf("p50 %s  p90 %s  p99 %s  max %s  (mean %s)", fmtUS(l.P50US), fmtUS(l.P90US), fmtUS(l.P99US), fmtUS(l.MaxUS), fmtUS(l.MeanUS))
	}
	return fmt.Sprintf("p50 %s  p99 %s  max %s", fmtUS(l.P50US), fmtUS(l.P99US), fmtUS(l.MaxUS))
}

// fmtUS renders microseconds with three significant digits.
func fmtUS(v float64) string {
	switch {
	case v < 1:
		return fmt.Sprintf("%.0fns", v*1e3)
	case v < 1e3:
		return strconv.FormatFloat(v, 'g', 3, 64) + "µs"
	case v < 1e6:
		return strconv.FormatFloat(v/1e3, 'g', 3, 64) + "ms"
	}
	return strconv.FormatFloat(v/1e6, 'f', 2, 64) + "s"
}

func fmtKiB(k int64) string {
	if k < 10<<10 {
		return fmt.Sprintf("%d KiB", k)
	}
	return fmt.Sprintf("%.1f MiB", float64(k)/1024)
}

func fmtBytes(b float64) string {
	switch {
	case b < 1e3:
		return fmt.Sprintf("%.0f B", b)
	case b < 1e6:
		return fmt.Sprintf("%.1f kB", b/1e3)
	case b < 1e9:
		return fmt.Sprintf("%.1f MB", b/1e6)
	}
	return fmt.Sprintf("%.2f GB", b/1e9)
}

// commas renders n with thousands separators.
func commas(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}
