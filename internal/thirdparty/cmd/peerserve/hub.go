package main

import (
	"errors"
	"sync"
)

// hub is the set of /ws/broadcast connections for the libraries whose
// connections take one write at a time (gorilla, gobwas, coder). publish
// puts a message, prepared once for all, on every member's queue; each
// member's writer goroutine drains its own queue, as in gorilla's chat
// example, so one slow reader delays no one else. gws and nbio queue writes
// themselves and do not need it.
type hub[M any] struct {
	mu      sync.Mutex // held while a message is queued for everyone: one order for all
	members map[*member[M]]struct{}
}

// member is one connection's queue. A member that already has queueLimit
// messages waiting when another comes is dropped: its writer returns
// errTooSlow, and its connection is closed.
type member[M any] struct {
	queue chan M
	stop  chan struct{} // closed when the member leaves or is dropped
	once  sync.Once
	slow  bool // set before stop is closed, when dropped
}

var errTooSlow = errors.New("broadcast queue full")

// join adds a member; its writer must be run with run.
func (h *hub[M]) join() *member[M] {
	m := &member[M]{queue: make(chan M, queueLimit), stop: make(chan struct{})}
	h.mu.Lock()
	if h.members == nil {
		h.members = make(map[*member[M]]struct{})
	}
	h.members[m] = struct{}{}
	h.mu.Unlock()
	return m
}

// leave removes m and stops its writer. It may be called more than once.
func (h *hub[M]) leave(m *member[M]) {
	h.mu.Lock()
	delete(h.members, m)
	h.mu.Unlock()
	m.once.Do(func() { close(m.stop) })
}

// publish queues msg for every member, dropping those that are too slow.
func (h *hub[M]) publish(msg M) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for m := range h.members {
		select {
		case m.queue <- msg:
		default:
			delete(h.members, m)
			m.once.Do(func() {
				m.slow = true
				close(m.stop)
			})
		}
	}
}

// run writes m's messages with write, in order, until m leaves (it returns
// nil), is dropped (errTooSlow) or a write fails (that error).
func (m *member[M]) run(write func(M) error) error {
	for {
		select {
		case msg := <-m.queue:
			if err := write(msg); err != nil {
				return err
			}
		case <-m.stop:
			if m.slow {
				return errTooSlow
			}
			return nil
		}
	}
}
