package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/duplexrt/duplex/ws"
)

// benchEpoch is the origin of nanotime: the timestamps in fan-out messages
// and the pacer's slots are nanoseconds since it, on the monotonic clock.
var benchEpoch = time.Now()

// nanotime returns the monotonic nanoseconds since benchEpoch (always > 0
// in practice: the process has run a little before the first call).
func nanotime() int64 { return int64(time.Since(benchEpoch)) }

// The histogram keeps histSub buckets per power of two (log-linear, as HDR
// histograms do): values below 2·histSub ns are exact, larger ones within
// 1/histSub (3%) of the truth. Values of 2^histMaxBits ns (18 minutes)
// and more are counted in the last bucket. It is 9 KiB whatever the count.
const (
	histSubBits = 5
	histSub     = 1 << histSubBits
	histMaxBits = 40
	histBuckets = (histMaxBits - histSubBits + 1) * histSub
)

// histogram records durations in nanoseconds, from many goroutines at once,
// without allocating.
type histogram struct {
	counts [histBuckets]atomic.Uint64
	sum    atomic.Int64 // ns
	max    atomic.Int64 // ns
}

func histIndex(v int64) int {
	if v < 2*histSub {
		return int(max(v, 0))
	}
	v = min(v, 1<<histMaxBits-1)
	shift := bits.Len64(uint64(v)) - histSubBits - 1
	return (shift+1)<<histSubBits + int(v>>shift) - histSub
}

// histUpper is the largest value counted in bucket i.
func histUpper(i int) int64 {
	g := i >> histSubBits
	if g <= 1 {
		return int64(i)
	}
	shift := g - 1
	base := int64(i-g<<histSubBits+histSub) << shift
	return base + 1<<shift - 1
}

func (h *histogram) record(d time.Duration) {
	v := int64(d)
	h.counts[histIndex(v)].Add(1)
	h.sum.Add(v)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// latencySummary is a histogram's digest, in microseconds.
type latencySummary struct {
	Count  uint64  `json:"count"`
	MeanUS float64 `json:"mean_us"`
	P50US  float64 `json:"p50_us"`
	P90US  float64 `json:"p90_us"`
	P99US  float64 `json:"p99_us"`
	MaxUS  float64 `json:"max_us"`
}

// summary digests the histogram; nil if it is empty. A quantile is the
// upper bound of its bucket, but never above the exact maximum, so
// p50 <= p90 <= p99 <= max.
func (h *histogram) summary() *latencySummary {
	var n uint64
	var counts [histBuckets]uint64
	for i := range counts {
		counts[i] = h.counts[i].Load()
		n += counts[i]
	}
	if n == 0 {
		return nil
	}
	mx := h.max.Load()
	quantile := func(q float64) float64 {
		target := uint64(math.Ceil(q * float64(n)))
		var cum uint64
		for i, c := range counts {
			cum += c
			if cum >= target && c > 0 {
				return us(min(histUpper(i), mx))
			}
		}
		return us(mx)
	}
	return &latencySummary{
		Count:  n,
		MeanUS: round1(float64(h.sum.Load()) / float64(n) / 1e3),
		P50US:  quantile(0.50),
		P90US:  quantile(0.90),
		P99US:  quantile(0.99),
		MaxUS:  us(mx),
	}
}

func us(ns int64) float64 { return round1(float64(ns) / 1e3) }

func round1(f float64) float64 { return math.Round(f*10) / 10 }

// reasons counts failures by a short reason. It keeps at most
// maxReasons distinct reasons; the rest are counted as "other".
type reasons struct {
	mu sync.Mutex
	m  map[string]int64
	n  atomic.Int64
}

const maxReasons = 20

func (r *reasons) add(reason string) {
	r.n.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = make(map[string]int64)
	}
	if _, ok := r.m[reason]; !ok && len(r.m) >= maxReasons {
		reason = "other"
	}
	r.m[reason]++
}

func (r *reasons) count() int64 { return r.n.Load() }

// snapshot returns a copy of the counts, nil if there are none.
func (r *reasons) snapshot() map[string]int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.m) == 0 {
		return nil
	}
	out := make(map[string]int64, len(r.m))
	for k, v := range r.m {
		out[k] = v
	}
	return out
}

// failureReason turns an error into a short reason to count: the same
// failure on many connections gives the same reason.
func failureReason(err error) string {
	var de *ws.DialError
	if errors.As(err, &de) {
		if de.StatusCode == 101 {
			return "bad handshake response"
		}
		return fmt.Sprintf("HTTP %d", de.StatusCode)
	}
	if code := ws.CloseStatus(err); code != -1 {
		if code == ws.StatusAbnormalClosure {
			return "connection lost without a close frame"
		}
		return "closed by server: " + code.String()
	}
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "connection reset"
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "too many open files (this process)"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "no free local port"
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed without a close frame"
	case errors.Is(err, ws.ErrProtocol):
		return "protocol error"
	case errors.Is(err, ws.ErrMessageTooBig):
		return "message too big"
	}
	s := err.Error()
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return s
}

// formatReasons renders counts as "reason: n, reason: n", most frequent
// first.
func formatReasons(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s: %d", k, m[k])
	}
	return b.String()
}

// pacer spreads operations evenly at a rate shared by many goroutines: each
// wait takes the next free slot. A pacer that fell behind does not burst to
// catch up. A nil pacer does not wait.
type pacer struct {
	interval int64 // ns
	next     atomic.Int64
}

// newPacer returns a pacer for rate operations per second, nil for 0.
func newPacer(rate float64) *pacer {
	if rate <= 0 {
		return nil
	}
	return &pacer{interval: max(int64(1e9/rate), 1)}
}

// wait blocks until the caller's slot, or ctx is done. t is the caller's
// own timer, reused from call to call.
func (p *pacer) wait(ctx context.Context, t *time.Timer) error {
	if p == nil {
		return ctx.Err()
	}
	for {
		old := p.next.Load()
		now := nanotime()
		slot := max(old, now)
		if !p.next.CompareAndSwap(old, slot+p.interval) {
			continue
		}
		if slot <= now {
			return ctx.Err()
		}
		return sleepCtx(ctx, t, time.Duration(slot-now))
	}
}

// sleepCtx sleeps d on t, or until ctx is done.
func sleepCtx(ctx context.Context, t *time.Timer, d time.Duration) error {
	t.Reset(d)
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		t.Stop()
		return ctx.Err()
	}
}

// newStoppedTimer returns a timer for sleepCtx.
func newStoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}

// window is the measured part of a run: after the warm-up, until the
// duration has passed, the count is reached or the run is interrupted.
// Workers ask claim before each operation and call done after a measured
// one completes (or fails).
type window struct {
	count     int64 // operations to measure; 0 means no limit
	measuring atomic.Bool
	tickets   atomic.Int64
	completed atomic.Int64
	countDone chan struct{}
	once      sync.Once

	aborted   chan struct{} // closed by abort
	abortOnce sync.Once
	abortWhy  string

	start, end time.Time
	stoppedBy  string
}

func newWindow(count int64) *window {
	return &window{count: count, countDone: make(chan struct{}), aborted: make(chan struct{})}
}

// abort ends the run early, for why (the connections were all lost).
func (w *window) abort(why string) {
	w.abortOnce.Do(func() {
		w.abortWhy = why
		close(w.aborted)
	})
}

// claim reports whether the next operation is measured, and whether it may
// run at all: once the count is reached, no more operations start.
func (w *window) claim() (measured, ok bool) {
	if !w.measuring.Load() {
		return false, true
	}
	if w.count > 0 && w.tickets.Add(1) > w.count {
		return false, false
	}
	return true, true
}

// inWindow reports whether a completion is still measured.
func (w *window) inWindow() bool { return w.measuring.Load() }

// done records the end of a measured operation.
func (w *window) done() {
	if w.count > 0 && w.completed.Add(1) == w.count {
		w.once.Do(func() { close(w.countDone) })
	}
}

// run waits out the warm-up, calls begin, measures until the duration has
// passed, the count is reached or ctx is done, and returns.
func (w *window) run(ctx context.Context, warmup, duration time.Duration, begin func()) {
	if warmup > 0 {
		t := time.NewTimer(warmup)
		select {
		case <-t.C:
		case <-ctx.Done():
			w.stoppedBy = "interrupt"
		case <-w.aborted:
			w.stoppedBy = w.abortWhy
		}
		if w.stoppedBy != "" {
			t.Stop()
			w.start = time.Now()
			w.end = w.start
			return
		}
	}
	if begin != nil {
		begin()
	}
	w.start = time.Now()
	w.measuring.Store(true)
	t := time.NewTimer(duration)
	defer t.Stop()
	select {
	case <-t.C:
		w.stoppedBy = "duration"
	case <-w.countDone:
		w.stoppedBy = "count"
	case <-ctx.Done():
		w.stoppedBy = "interrupt"
	case <-w.aborted:
		w.stoppedBy = w.abortWhy
	}
	w.measuring.Store(false)
	w.end = time.Now()
}

// seconds is the measured time.
func (w *window) seconds() float64 { return w.end.Sub(w.start).Seconds() }

// elapsed is the time measured so far, for progress lines.
func (w *window) elapsed() time.Duration {
	if !w.measuring.Load() {
		return 0
	}
	return time.Since(w.start)
}
