package main

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/duplexrt/duplex/ws"
)

// The bound on what waits for one /ws/broadcast subscriber. A subscriber
// that already has broadcastQueueMessages messages not yet written, or
// whose unwritten messages would exceed broadcastQueueBytes with the new
// one, is closed with 1013 Try Again Later: one slow reader must neither
// stall the others nor make the server's memory grow. A message that finds
// the queue empty is always taken, so messages up to --max-message get
// through. Messages are shared between subscribers, so the memory held for
// slow subscribers is at most about broadcastQueueBytes (plus the messages
// being written), however many there are.
const (
	broadcastQueueMessages = 256
	broadcastQueueBytes    = 4 << 20
)

// errSlowSubscriber is the cause of a subscriber's context when the hub
// drops it for falling behind.
var errSlowSubscriber = errors.New("broadcast queue full")

// hub is the registry of /ws/broadcast connections. publish prepares each
// message once (ws.PreparedMessage: framed and, where the parameters allow,
// compressed once) and queues it for every subscriber; each subscriber's
// writer goroutine drains its own queue, so a slow peer delays no one else.
type hub struct {
	log *slog.Logger

	mu   sync.Mutex    // held while a message is queued for everyone: one order for all
	subs []*subscriber // subs[i].idx == i
}

// subscriber is one /ws/broadcast connection's queue.
type subscriber struct {
	c   *ws.Conn
	log *slog.Logger
	idx int // position in hub.subs; guarded by hub.mu; -1 once removed

	ctx    context.Context // done when the subscriber leaves or is dropped
	cancel context.CancelCauseFunc

	wake chan struct{} // capacity 1: the queue became non-empty

	mu      sync.Mutex
	pending []queuedMessage // not yet taken by the writer

	// unwritten counts the messages and bytes queued or being written; the
	// hub adds (under hub.mu), the writer subtracts after each write.
	unwrittenMsgs  atomic.Int64
	unwrittenBytes atomic.Int64
}

type queuedMessage struct {
	pm   *ws.PreparedMessage
	size int
}

func newHub(log *slog.Logger) *hub {
	return &hub{log: log}
}

// join registers c; the returned subscriber's writer must be run with run.
func (h *hub) join(c *ws.Conn, log *slog.Logger) *subscriber {
	s := &subscriber{c: c, log: log, wake: make(chan struct{}, 1)}
	s.ctx, s.cancel = context.WithCancelCause(context.Background())
	h.mu.Lock()
	s.idx = len(h.subs)
	h.subs = append(h.subs, s)
	h.mu.Unlock()
	return s
}

// leave unregisters s and stops its writer. It is safe to call after the
// hub dropped s.
func (h *hub) leave(s *subscriber) {
	h.mu.Lock()
	h.removeLocked(s)
	h.mu.Unlock()
	s.cancel(nil)
}

func (h *hub) removeLocked(s *subscriber) {
	if s.idx < 0 {
		return
	}
	last := len(h.subs) - 1
	h.subs[s.idx] = h.subs[last]
	h.subs[s.idx].idx = s.idx
	h.subs[last] = nil
	h.subs = h.subs[:last]
	s.idx = -1
}

// len returns the number of subscribers.
func (h *hub) len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// publish sends a message to every subscriber, the sender included. p must
// not change afterwards: it is shared by all the queues.
func (h *hub) publish(typ ws.MessageType, p []byte) {
	pm, err := ws.NewPreparedMessage(typ, p)
	if err != nil {
		h.log.Error("broadcast: cannot prepare message", "err", err) // a type Read never returns
		return
	}
	m := queuedMessage{pm: pm, size: len(p)}
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := 0; i < len(h.subs); {
		s := h.subs[i]
		if s.ctx.Err() != nil {
			// Its writer stopped (the connection failed or is closing):
			// its reader will notice and leave; skip it meanwhile.
			h.removeLocked(s) // moves the last subscriber to i
			continue
		}
		if s.offer(m) {
			i++
			continue
		}
		// Too slow: drop it here, so that the next messages skip it; its
		// writer closes the connection with 1013.
		s.log.Warn("broadcast subscriber too slow, closing with 1013",
			"queued_messages", s.unwrittenMsgs.Load(), "queued_bytes", s.unwrittenBytes.Load(),
			"limit_messages", broadcastQueueMessages, "limit_bytes", broadcastQueueBytes)
		h.removeLocked(s) // moves the last subscriber to i
		s.cancel(errSlowSubscriber)
	}
}

// offer queues m unless the subscriber is over its bound. Called with
// hub.mu held, so the checks and the additions are not interleaved with
// another offer.
func (s *subscriber) offer(m queuedMessage) bool {
	n, b := s.unwrittenMsgs.Load(), s.unwrittenBytes.Load()
	if n > 0 && (n >= broadcastQueueMessages || b+int64(m.size) > broadcastQueueBytes) {
		return false
	}
	s.unwrittenMsgs.Add(1)
	s.unwrittenBytes.Add(int64(m.size))
	s.mu.Lock()
	s.pending = append(s.pending, m)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return true
}

// run writes the queued messages until the subscriber leaves or is
// dropped; a dropped subscriber is closed with 1013 Try Again Later.
func (s *subscriber) run() {
	var batch []queuedMessage
	for {
		select {
		case <-s.wake:
		case <-s.ctx.Done():
			s.stopped()
			return
		}
		s.mu.Lock()
		batch, s.pending = s.pending, batch[:0]
		s.mu.Unlock()
		for i, m := range batch {
			// s.ctx interrupts a write blocked on a peer that does not
			// read; the rest of its frame goes out before the close frame.
			err := s.c.WritePrepared(s.ctx, m.pm)
			batch[i] = queuedMessage{} // let the message go once all have written it
			s.unwrittenMsgs.Add(-1)
			s.unwrittenBytes.Add(-int64(m.size))
			if err != nil {
				if s.ctx.Err() != nil {
					s.stopped()
				} else {
					s.log.Debug("broadcast write failed", "err", err)
					s.cancel(err) // the hub skips it from now on
				}
				return
			}
		}
		// Keep a small batch buffer; drop one a burst made large.
		if cap(batch) > broadcastQueueMessages {
			batch = nil
		}
	}
}

// stopped closes the connection if the hub dropped it.
func (s *subscriber) stopped() {
	if context.Cause(s.ctx) == errSlowSubscriber {
		_ = s.c.Close(ws.StatusTryAgainLater, "too slow: broadcast queue full")
	}
}

// handleBroadcast reads messages and publishes each to every connection on
// /ws/broadcast.
func (s *server) handleBroadcast(ctx context.Context, c *ws.Conn) {
	log := s.log.With("remote", c.RemoteAddr().String())
	log.Debug("broadcast connection open")
	sub := s.hub.join(c, log)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sub.run()
	}()
	defer func() {
		s.hub.leave(sub)
		<-done
	}()
	for {
		// A new buffer per message: the queues share it until every
		// subscriber has written it.
		typ, p, err := c.Read(ctx)
		if err != nil {
			log.Debug("broadcast connection closed", "err", err)
			return
		}
		s.hub.publish(typ, p)
	}
}
