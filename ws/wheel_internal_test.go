package ws

import (
	"math"
	"sync"
	"testing"
	"time"
)

// Many entries, due at different times, some removed before: each of the
// others comes due once, never before its time, and the wheel ends empty
// with its timer stopped.
func TestWheelMany(t *testing.T) {
	w := newWheel(20*time.Millisecond, 20*time.Millisecond)
	const n = 3000
	type rec struct {
		at  time.Time // when it was queued, plus its delay
		got time.Time
		hit int
	}
	var mu sync.Mutex
	recs := make(map[*keepalive]*rec, n)
	all := make(chan struct{})
	left := 0
	w.onDue = func(k *keepalive) {
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		r := recs[k]
		r.hit++
		r.got = now
		left--
		if left == 0 {
			close(all)
		}
	}
	ks := make([]*keepalive, n)
	mu.Lock()
	for i := range ks {
		k := &keepalive{w: w}
		ks[i] = k
		d := time.Duration(1+i%97) * time.Millisecond
		if i%3 == 0 {
			d = time.Hour // removed below, long before
		}
		recs[k] = &rec{at: time.Now().Add(d)}
		w.add(k, d)
		if i%3 != 0 {
			left++
		}
	}
	mu.Unlock()
	for i, k := range ks {
		if i%3 == 0 {
			w.remove(k)
			w.add(k, time.Millisecond) // a closed connection's entry is not queued again
		}
	}
	<-all
	mu.Lock()
	defer mu.Unlock()
	for i, k := range ks {
		r := recs[k]
		switch {
		case i%3 == 0 && r.hit != 0:
			t.Errorf("entry %d, removed, came due %d times", i, r.hit)
		case i%3 != 0 && r.hit != 1:
			t.Errorf("entry %d came due %d times, want once", i, r.hit)
		case i%3 != 0 && r.got.Before(r.at):
			t.Errorf("entry %d came due %v early", i, r.at.Sub(r.got))
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.n != 0 {
		t.Errorf("%d entries left in the wheel", w.n)
	}
	for i, k := range w.slots {
		if k != nil {
			t.Errorf("slot %d not empty", i)
		}
	}
}

// Entries due far ahead, as far as a Duration goes: the tick is long
// enough that the due tick stays within 2^31 of the current one, and the
// entry is not taken before its time.
func TestWheelFar(t *testing.T) {
	for _, d := range []time.Duration{time.Hour, 100 * 365 * 24 * time.Hour, math.MaxInt64} {
		w := newWheel(d, d)
		w.onDue = func(k *keepalive) { t.Errorf("an entry due in %v came due", d) }
		k := &keepalive{w: w}
		w.add(k, d)
		w.mu.Lock()
		now, _ := w.now()
		ahead := int32(k.due - uint32(now))
		w.mu.Unlock()
		want := d / w.tick
		if ahead <= 0 || int64(ahead) < int64(want) || int64(ahead) > int64(want)+2 {
			t.Errorf("%v: due %d ticks of %v ahead, want %d", d, ahead, w.tick, want)
		}
		w.run() // nothing is due
		w.remove(k)
		w.mu.Lock()
		if w.n != 0 || w.armed {
			t.Errorf("%v: after remove, %d entries, armed %v", d, w.n, w.armed)
		}
		w.mu.Unlock()
	}
}

// Ticks are kept modulo 2^32: an entry due just after the count wraps is
// not taken before, and is taken after, and one due more than a turn of
// the wheel ahead waits for its turn.
func TestWheelWrap(t *testing.T) {
	w := newWheel(8*time.Millisecond, 8*time.Millisecond) // a tick of 1 ms: 2^32 of them are 50 days
	if w.tick != time.Millisecond {
		t.Fatalf("tick %v", w.tick)
	}
	// The test moves the clock itself: the timer calls nothing.
	w.timer = time.AfterFunc(time.Hour, func() {})
	defer w.timer.Stop()
	var got []*keepalive
	w.onDue = func(k *keepalive) { got = append(got, k) }
	// The clock as if 2^32 - 5 ticks had passed.
	w.origin = time.Now().Add(-w.tick * (1<<32 - 5))
	near, far := &keepalive{w: w}, &keepalive{w: w}
	w.add(near, 10*w.tick)
	w.add(far, (wheelSlots+10)*w.tick)
	if near.due%wheelSlots != far.due%wheelSlots {
		t.Fatalf("the two entries are in slots %d and %d; the test wants one", near.due%wheelSlots, far.due%wheelSlots)
	}
	w.mu.Lock()
	if now, _ := w.now(); now>>32 != 0 || now+20 < 1<<32 {
		t.Fatalf("tick %d: want one just before 2^32", now)
	}
	w.mu.Unlock()
	w.run()
	if len(got) != 0 {
		t.Fatalf("%d entries taken before their time", len(got))
	}
	passTicks := func(n int64) {
		w.mu.Lock()
		w.origin = w.origin.Add(-time.Duration(n) * w.tick)
		w.mu.Unlock()
		w.run()
	}
	passTicks(12) // past the wrap, and past near's tick
	if len(got) != 1 || got[0] != near {
		t.Fatalf("after near's tick: %d entries taken, want near alone", len(got))
	}
	passTicks(wheelSlots) // far's tick
	if len(got) != 2 || got[1] != far {
		t.Fatalf("after far's tick: %d entries taken, want far too", len(got))
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.n != 0 || w.armed {
		t.Errorf("%d entries left, armed %v", w.n, w.armed)
	}
}

// TestWheelForBounded: durations of their own per connection (jittered
// heartbeats) do not grow the table of shared wheels past maxWheels
// (empty wheels leave it), and a wheel in use keeps its place.
func TestWheelForBounded(t *testing.T) {
	first := wheelFor(time.Hour, 7*time.Minute)
	k := &keepalive{}
	first.add(k, time.Hour)
	defer first.remove(k)
	for i := range 2 * maxWheels {
		w := wheelFor(time.Hour+time.Duration(i+1)*time.Millisecond, 7*time.Minute)
		if w == nil || w.interval != time.Hour+time.Duration(i+1)*time.Millisecond {
			t.Fatalf("wheelFor #%d: %+v", i, w)
		}
	}
	wheelsMu.Lock()
	n := len(wheels)
	wheelsMu.Unlock()
	if n > maxWheels {
		t.Errorf("%d shared wheels, want at most %d", n, maxWheels)
	}
	if wheelFor(time.Hour, 7*time.Minute) != first {
		t.Error("a shared wheel was replaced")
	}
}
