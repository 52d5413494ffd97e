package ws

import (
	"sync"
	"time"
)

// The server's heartbeats (AcceptOptions.Heartbeat) are kept in timing
// wheels, one per pair of durations: an idle connection with a heartbeat
// holds a small entry in a list, not a runtime timer, and the whole wheel
// has one timer (time.AfterFunc, no goroutine), set only while entries
// are queued.

// wheelSlots is the number of slots of a wheel, a power of two. An entry
// due more than wheelSlots ticks ahead waits in its slot for as many turns
// as it takes: each visit compares its due tick with the clock's.
const wheelSlots = 64

var (
	wheelsMu sync.Mutex
	wheels   map[[2]time.Duration]*wheel // by interval and timeout
)

// wheel is a hashed timing wheel: entries due at tick t are in slot
// t mod wheelSlots. Ticks count from origin on the monotonic clock; the
// timer's callback computes the current tick from the clock, so that
// late or skipped callbacks do not make entries late by more than the
// callback is.
type wheel struct {
	interval, timeout time.Duration
	tick              time.Duration
	origin            time.Time // the start of tick 0

	mu    sync.Mutex
	slots [wheelSlots]*keepalive // each the head of a doubly linked list
	n     int                    // entries queued
	last  uint64                 // the last tick whose entries were taken
	armed bool                   // the timer is set, or its callback has yet to take the lock
	timer *time.Timer            // made at the first arming

	onDue func(*keepalive) // for tests: instead of keepalive.dueNow
}

// maxWheels bounds the shared wheels: a server that gives each
// connection durations of its own (jittered pings) does not grow a table
// for as long as the process runs. When it is full, the empty wheels
// leave it (their entries, if any come back, keep them, unshared); if
// none is empty, a new wheel is not shared, and is freed with its last
// entry.
const maxWheels = 64

// wheelFor returns the wheel of the heartbeats with these durations,
// making it if need be. An empty wheel costs no timer.
func wheelFor(interval, timeout time.Duration) *wheel {
	key := [2]time.Duration{interval, timeout}
	wheelsMu.Lock()
	defer wheelsMu.Unlock()
	if w := wheels[key]; w != nil {
		return w
	}
	w := newWheel(interval, timeout)
	if len(wheels) >= maxWheels {
		for k, old := range wheels {
			old.mu.Lock()
			empty := old.n == 0
			old.mu.Unlock()
			if empty {
				delete(wheels, k)
			}
		}
		if len(wheels) >= maxWheels {
			return w
		}
	}
	if wheels == nil {
		wheels = make(map[[2]time.Duration]*wheel)
	}
	wheels[key] = w
	return w
}

func newWheel(interval, timeout time.Duration) *wheel {
	return &wheel{interval: interval, timeout: timeout, tick: wheelTick(interval, timeout), origin: time.Now()}
}

// wheelTick returns the tick of the wheel for these durations: an eighth
// of the shorter, so that a heartbeat comes at most that much after its
// time; at least a millisecond; and at least 2^-30 of the longer, so that
// every entry is due fewer than 2^31 ticks ahead (the wheel keeps due
// ticks modulo 2^32).
func wheelTick(interval, timeout time.Duration) time.Duration {
	return max(min(interval, timeout)/8, max(interval, timeout)>>30, time.Millisecond)
}

// now returns the current tick.
func (w *wheel) now() (tick uint64, since time.Duration) {
	since = time.Since(w.origin)
	return uint64(since / w.tick), since
}

// add queues k to come due after d (more than zero, at most the longer of
// the wheel's durations), unless its connection is closed.
func (w *wheel) add(k *keepalive, d time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if k.stopped || k.queued {
		return
	}
	now, since := w.now()
	// The first tick that starts at or after since+d, computed without
	// adding the two (d may be as long as a Duration goes).
	due := now + uint64(d/w.tick)
	switch rest := since%w.tick + d%w.tick; {
	case rest > w.tick:
		due += 2
	case rest > 0:
		due++
	}
	k.due = uint32(due)
	slot := &w.slots[k.due%wheelSlots]
	k.prev, k.next = nil, *slot
	if k.next != nil {
		k.next.prev = k
	}
	*slot = k
	k.queued = true
	w.n++
	if !w.armed {
		w.armed = true
		w.last = now // nothing is due at or before now
		w.arm(now)
	}
}

// remove takes k out of the wheel for good. w.mu must not be held.
func (w *wheel) remove(k *keepalive) {
	w.mu.Lock()
	defer w.mu.Unlock()
	k.stopped = true
	if !k.queued {
		return
	}
	w.unlink(k)
	if w.n == 0 && w.armed && w.timer.Stop() {
		w.armed = false
	}
}

// unlink takes k out of its slot. w.mu must be held.
func (w *wheel) unlink(k *keepalive) {
	if k.prev != nil {
		k.prev.next = k.next
	} else {
		w.slots[k.due%wheelSlots] = k.next
	}
	if k.next != nil {
		k.next.prev = k.prev
	}
	k.prev, k.next, k.queued = nil, nil, false
	w.n--
}

// arm sets the timer for the start of the tick after now. w.mu must be
// held.
func (w *wheel) arm(now uint64) {
	d := time.Until(w.origin.Add(time.Duration(now+1) * w.tick))
	if w.timer == nil {
		w.timer = time.AfterFunc(d, w.run)
	} else {
		w.timer.Reset(d)
	}
}

// run is the timer's callback: it takes out the entries that are due,
// sets the timer again if entries are left, and runs the ones it took.
func (w *wheel) run() {
	w.mu.Lock()
	now, _ := w.now()
	var due *keepalive // taken, linked by next
	from := w.last + 1
	if now-w.last > wheelSlots {
		from = now - wheelSlots + 1 // each slot once
	}
	for t := from; t <= now && t > w.last; t++ {
		for k := w.slots[t%wheelSlots]; k != nil; {
			next := k.next
			if int32(k.due-uint32(now)) <= 0 {
				w.unlink(k)
				k.next = due
				due = k
			}
			k = next
		}
	}
	if now > w.last {
		w.last = now
	}
	if w.n > 0 {
		w.arm(now)
	} else {
		w.armed = false
	}
	w.mu.Unlock()
	for due != nil {
		k := due
		due, k.next = k.next, nil
		if w.onDue != nil {
			w.onDue(k)
		} else {
			k.dueNow()
		}
	}
}
