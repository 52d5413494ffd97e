package main

import (
	"errors"
	"log/slog"
	"sync"

	"github.com/duplexrt/duplex/ws"
)

// broadcastQueueBytes bounds what waits for one /ws/broadcast subscriber
// (ws.AcceptOptions.SendQueueLimit, and at most one message per 64 bytes
// of it): a subscriber whose unwritten messages would pass it is closed
// with 1013 Try Again Later (ws.SendQueueClose), so that one slow reader
// neither stalls the others nor makes the server's memory grow. A message
// that finds the queue empty is always taken, so messages up to
// --max-message get through. The queued messages are shared between
// subscribers (ws.PreparedMessage), so slow subscribers hold at most about
// this much in all, however many there are.
const broadcastQueueBytes = 4 << 20

// hub is the registry of /ws/broadcast connections, and their Handler:
// each message a subscriber sends is prepared once (framed and, where the
// parameters allow, compressed once) and queued for every subscriber with
// Conn.SendPrepared, which never blocks: each connection's queue is
// written by its own writer, so a slow peer delays no one else.
type hub struct {
	log *slog.Logger

	mu   sync.Mutex // held while a message is queued for everyone: one order for all
	subs map[*ws.Conn]struct{}
}

func newHub(log *slog.Logger) *hub {
	return &hub{log: log, subs: make(map[*ws.Conn]struct{})}
}

// len returns the number of subscribers.
func (h *hub) len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// OnOpen subscribes c.
func (h *hub) OnOpen(c *ws.Conn) {
	h.log.Debug("broadcast connection open", "remote", c.RemoteAddr().String())
	h.mu.Lock()
	h.subs[c] = struct{}{}
	h.mu.Unlock()
}

// OnMessage sends the message to every subscriber, the sender included.
func (h *hub) OnMessage(c *ws.Conn, typ ws.MessageType, data []byte) {
	// The Server reuses data; the queues share this copy until every
	// subscriber has written it.
	pm, err := ws.NewPreparedMessage(typ, append([]byte(nil), data...))
	if err != nil {
		h.log.Error("broadcast: cannot prepare message", "err", err) // a type the Server never delivers
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		err := s.SendPrepared(pm)
		switch {
		case err == nil:
		case errors.Is(err, ws.ErrSendQueueFull):
			// Too slow: Conn closes it with 1013; skip it from now on.
			h.log.Warn("broadcast subscriber too slow, closing with 1013",
				"remote", s.RemoteAddr().String(), "queued_bytes", s.SendQueued(), "limit_bytes", broadcastQueueBytes)
			delete(h.subs, s)
		default:
			// Closed or broken: OnClose comes; skip it meanwhile.
			delete(h.subs, s)
		}
	}
}

// OnError logs a subscriber that broke the protocol.
func (h *hub) OnError(c *ws.Conn, err error) {
	h.log.Debug("broadcast connection failed", "remote", c.RemoteAddr().String(), "err", err)
}

// OnClose unsubscribes c.
func (h *hub) OnClose(c *ws.Conn, err error) {
	h.log.Debug("broadcast connection closed", "remote", c.RemoteAddr().String(), "err", err)
	h.mu.Lock()
	delete(h.subs, c)
	h.mu.Unlock()
}
