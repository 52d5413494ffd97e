package engineio

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/duplexrt/duplex/ws"
)

// maxKeptReadBuffer is the largest read buffer a WebSocket reader keeps
// between messages.
const maxKeptReadBuffer = 64 << 10

// readWebSocket reads the session's WebSocket until the connection ends.
// It keeps reading after the session has closed, dropping what comes, so
// that the close handshake that finish runs sees the peer's close frame.
func (s *Session) readWebSocket(c *ws.Conn) {
	buf := make([]byte, 0, 512)
	for {
		// Not s.ctx: the read must go on during the close handshake.
		typ, data, err := c.ReadAppend(context.Background(), buf[:0])
		if err != nil {
			reason := ReasonTransportError
			var ce ws.CloseError
			failed := errors.Is(err, ws.ErrProtocol) || errors.Is(err, ws.ErrMessageTooBig)
			if errors.As(err, &ce) && !failed {
				reason = ReasonTransportClose
			}
			s.closeWith(reason, err, closeNow)
			if failed {
				s.srv.reportError(s.req, err)
			}
			return
		}
		if cap(data) <= maxKeptReadBuffer {
			buf = data[:0]
		}
		if s.closed.Load() {
			continue
		}
		if typ == ws.MessageBinary {
			s.deliver(MessageBinary, data)
			continue
		}
		p, err := DecodePacket(data)
		if err != nil {
			s.closeWith(ReasonParseError, err, closeNow)
			s.srv.reportError(s.req, err)
			continue
		}
		s.onPacket(p)
	}
}

// serveUpgrade serves a WebSocket that upgrades a long-polling session:
// the client probes with "2probe", gets "3probe", the pending poll is
// ended with a noop, and the client's "5" hands the session over.
func (srv *Server) serveUpgrade(w http.ResponseWriter, r *http.Request, s *Session) {
	s.mu.Lock()
	state, transport, upgrading := s.state, s.transport, s.upgrading
	ok := state == stateOpen && transport == TransportPolling && !upgrading && srv.upgrades
	if ok {
		s.upgrading = true
	}
	s.mu.Unlock()
	if !ok {
		if state == stateClosed {
			srv.refuse(w, r, &RequestError{Status: http.StatusBadRequest, Code: CodeUnknownSID})
			return
		}
		if !srv.upgrades {
			srv.refuse(w, r, &RequestError{Status: http.StatusBadRequest, Code: CodeBadRequest})
			return
		}
		// Already upgraded or upgrading: as Node's engine.io, take the
		// connection and close it.
		c, err := ws.Accept(w, r, srv.acceptOptions(r))
		if err != nil {
			srv.reportError(r, err)
			return
		}
		_ = c.Close(ws.StatusPolicyViolation, "session already upgraded")
		srv.reportError(r, fmt.Errorf("%w: session %s; the WebSocket was closed with 1008", ErrAlreadyUpgraded, s.id))
		return
	}
	c, err := ws.Accept(w, r, srv.acceptOptions(r))
	if err != nil {
		srv.reportError(r, err)
		s.abandonUpgrade()
		return
	}
	srv.wg.Add(1)
	if err := s.upgrade(c); err != nil {
		srv.wg.Done()
		s.log.Debug("engineio: upgrade failed", "err", err)
		s.abandonUpgrade()
		_ = c.CloseNow()
		return
	}
	s.log.Debug("engineio: session upgraded to websocket", "proto", r.Proto)
	// As serveWebSocketHandshake's: on a goroutine of its own over
	// HTTP/1.1, on this one over HTTP/2.
	srv.readWebSocket(r, s, c)
}

// upgrade runs the probe and hands the session over to c.
func (s *Session) upgrade(c *ws.Conn) error {
	ctx, cancel := context.WithTimeout(s.ctx, s.srv.opts.UpgradeTimeout)
	defer cancel()
	s.mu.Lock()
	if s.state != stateOpen {
		s.mu.Unlock()
		return ErrClosed
	}
	s.upgradeConn = c
	s.mu.Unlock()

	typ, data, err := c.Read(ctx)
	if err != nil {
		return err
	}
	if typ != ws.MessageText || string(data) != "2probe" {
		return fmt.Errorf("engineio: upgrade: got %q, want the probe 2probe", quoteStart(data))
	}
	s.mu.Lock()
	s.probed = true
	if pw := s.poll; pw != nil {
		// End the pending poll with a noop, so that the client can pause
		// polling and send the upgrade packet: after upgradeNoopDelay, as
		// Node's engine.io, so that a client that sends the upgrade packet
		// at once gets its poll refused as an upgraded session's.
		t := time.AfterFunc(upgradeNoopDelay, func() {
			s.mu.Lock()
			if s.probed && s.poll == pw {
				s.answerPollLocked(pollResult{body: []byte{'6'}})
			}
			s.mu.Unlock()
		})
		defer t.Stop()
	}
	s.mu.Unlock()
	// Probed is set before 3probe goes out, so that a poll the client
	// sends once it has 3probe is ended with a noop. 3probe goes out
	// before anything that follows the probe is handled.
	if err := c.Write(ctx, ws.MessageText, []byte("3probe")); err != nil {
		return err
	}

	typ, data, err = c.Read(ctx)
	if err != nil {
		return err
	}
	if typ != ws.MessageText || string(data) != "5" {
		return fmt.Errorf("engineio: upgrade: got %q, want the upgrade packet 5", quoteStart(data))
	}
	s.mu.Lock()
	if s.state != stateOpen {
		s.mu.Unlock()
		return ErrClosed
	}
	s.transport = TransportWebSocket
	s.ws = c
	s.upgradeConn = nil
	s.upgrading, s.probed = false, false
	if s.poll != nil {
		// A poll that came during the probe: the session is no longer
		// polling.
		s.answerPollLocked(pollResult{status: http.StatusBadRequest})
	}
	err = s.flushToWebSocketLocked()
	s.mu.Unlock()
	if err != nil {
		s.closeWith(ReasonTransportError, err, closeNow)
	}
	return nil
}

// abandonUpgrade returns the session to long-polling after a failed
// upgrade, and sends what was held for it.
func (s *Session) abandonUpgrade() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.transport != TransportPolling {
		return
	}
	s.upgrading, s.probed = false, false
	s.upgradeConn = nil
	if s.poll != nil && len(s.queue) > 0 && s.state == stateOpen {
		s.answerPollLocked(pollResult{body: s.takeQueueLocked()})
	}
}
