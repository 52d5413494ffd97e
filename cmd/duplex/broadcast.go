package main

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

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

// wsHeartbeat is the heartbeat of every /ws/* endpoint: a client silent
// for 25 s is pinged, and cut off (1006) if nothing comes back within
// 20 s, or if it reads nothing meanwhile. The same figures as Socket.IO's
// pingInterval and pingTimeout, so that both endpoints drop a half-open
// client at about the same time, well inside the idle timeouts of common
// proxies and NATs (nginx's proxy_read_timeout is 60 s).
var wsHeartbeat = &ws.Heartbeat{Interval: 25 * time.Second, Timeout: 20 * time.Second}

// hub is the registry of /ws/broadcast connections, and their Handler.
// Each message a subscriber sends goes on the bus (to every process of the
// cluster, or straight back with the in-memory default); each message that
// comes from the bus is prepared once (framed and, where the parameters
// allow, compressed once) and queued for every local subscriber with
// Conn.SendPrepared, which never blocks: each connection's queue is
// written by its own writer, so a slow peer delays no one else.
type hub struct {
	log *slog.Logger
	bus bus // set by the server once the bus exists
	m   *endpointMetrics
	// brokerFailures counts messages the bus did not take.
	brokerFailures prometheus.Counter

	mu   sync.Mutex // held while a message is queued for everyone: one order for all
	subs map[*ws.Conn]struct{}
}

func newHub(log *slog.Logger, m *endpointMetrics) *hub {
	return &hub{log: log, m: m, subs: make(map[*ws.Conn]struct{})}
}

// len returns the number of subscribers.
func (h *hub) len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// OnOpen subscribes c.
func (h *hub) OnOpen(c *ws.Conn) {
	debugConn(h.log, c, "broadcast connection open", nil)
	h.mu.Lock()
	h.subs[c] = struct{}{}
	h.mu.Unlock()
	h.m.conns.Inc() // after the subscription: the gauge says who gets broadcasts
}

// OnMessage sends the message to every subscriber of the cluster, the
// sender included. On the bus a message is its type (one byte: 1 text, 2
// binary) and its payload.
func (h *hub) OnMessage(c *ws.Conn, typ ws.MessageType, data []byte) {
	h.m.received(len(data))
	// The Server reuses data: the bus gets a copy, which the local
	// subscribers' queues share until each has written it.
	msg := make([]byte, 1+len(data))
	msg[0] = byte(typ)
	copy(msg[1:], data)
	if err := h.bus.Publish(context.Background(), topicBroadcast, msg); err != nil {
		// The broker is away: this process's subscribers still get it.
		h.brokerFailures.Inc()
		h.log.Debug("broadcast: broker did not take the message; delivering it here only", "err", err)
		h.deliver(msg)
	}
}

// deliver queues a message of the bus for every local subscriber.
func (h *hub) deliver(msg []byte) {
	if len(msg) == 0 {
		return
	}
	typ := ws.MessageType(msg[0])
	pm, err := ws.NewPreparedMessage(typ, msg[1:])
	if err != nil {
		h.log.Warn("broadcast: dropped a message of unknown type from the bus", "type", msg[0])
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for s := range h.subs {
		err := s.SendPrepared(pm)
		switch {
		case err == nil:
			n++
		case errors.Is(err, ws.ErrSendQueueFull):
			// Too slow: Conn closes it with 1013; skip it from now on.
			h.log.Warn("broadcast subscriber too slow, closing with 1013",
				"remote", s.RemoteAddr().String(), "queued_bytes", s.SendQueued(), "limit_bytes", broadcastQueueBytes)
			h.m.slowOut.Inc()
			delete(h.subs, s)
		default:
			// Closed or broken: OnClose comes; skip it meanwhile.
			delete(h.subs, s)
		}
	}
	h.m.fanout.Observe(float64(n))
	h.m.sent(n, n*(len(msg)-1))
}

// OnError logs a subscriber that broke the protocol.
func (h *hub) OnError(c *ws.Conn, err error) {
	debugConn(h.log, c, "broadcast connection failed", err)
}

// OnClose unsubscribes c.
func (h *hub) OnClose(c *ws.Conn, err error) {
	debugConn(h.log, c, "broadcast connection closed", err)
	h.m.conns.Dec()
	h.mu.Lock()
	delete(h.subs, c)
	h.mu.Unlock()
}
