package engineio

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// pollWaiter is a parked GET: it gets one result.
type pollWaiter struct {
	ch chan pollResult
}

// pollResult answers a poll: a payload, or a refusal (status 400).
type pollResult struct {
	body   []byte
	status int
}

func (s *Session) answerPollLocked(res pollResult) {
	s.poll.ch <- res // buffered, and answered once
	s.poll = nil
}

func (s *Session) writePollResult(w http.ResponseWriter, r *http.Request, res pollResult) {
	if res.status != 0 {
		s.srv.refuse(w, r, &RequestError{Status: res.status, Code: CodeBadRequest})
		return
	}
	writePayload(w, res.body)
}

// servePoll serves a long-polling GET: it answers at once with the
// queued packets, or parks until there are some.
func (s *Session) servePoll(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.pingExpiredLocked() {
		s.mu.Unlock()
		s.closeWith(ReasonPingTimeout, nil, closeNow)
		s.mu.Lock()
	}
	switch {
	case s.state == stateClosed && s.lingerNoop:
		s.lingerNoop = false
		s.mu.Unlock()
		s.srv.remove(s)
		writePayload(w, []byte{'6'})
		return
	case s.state == stateClosed:
		s.mu.Unlock()
		s.srv.refuse(w, r, &RequestError{Status: http.StatusBadRequest, Code: CodeUnknownSID})
		return
	case s.transport != TransportPolling:
		s.mu.Unlock()
		s.srv.refuse(w, r, &RequestError{Status: http.StatusBadRequest, Code: CodeBadRequest})
		return
	case s.poll != nil:
		// Two polls at once: Node's engine.io closes the session, the
		// pending poll gets a close packet and this one an error.
		s.mu.Unlock()
		err := errors.New("engineio: overlapping polls from the client")
		s.closeWith(ReasonTransportError, err, closeNow)
		s.srv.refuse(w, r, &RequestError{Status: http.StatusBadRequest, Code: CodeBadRequest, Err: err})
		return
	case s.state == stateClosing:
		body := s.takeQueueLocked()
		s.mu.Unlock()
		writePayload(w, body)
		s.closeWith(s.reason, s.closeErr, closeNow)
		return
	case len(s.queue) > 0 && !s.probed:
		body := s.takeQueueLocked()
		s.mu.Unlock()
		writePayload(w, body)
		return
	}
	pw := &pollWaiter{ch: make(chan pollResult, 1)}
	s.poll = pw
	probed := s.probed
	s.mu.Unlock()

	var noop <-chan time.Time
	if probed {
		t := time.NewTimer(upgradeNoopDelay)
		defer t.Stop()
		noop = t.C
	}
	select {
	case res := <-pw.ch:
		s.writePollResult(w, r, res)
	case <-noop:
		s.mu.Lock()
		if s.poll == pw {
			s.poll = nil
			s.mu.Unlock()
			writePayload(w, []byte{'6'})
			return
		}
		s.mu.Unlock()
		s.writePollResult(w, r, <-pw.ch)
	case <-r.Context().Done():
		s.mu.Lock()
		if s.poll == pw {
			s.poll = nil
			s.mu.Unlock()
			s.closeWith(ReasonTransportError, errors.New("engineio: poll connection closed prematurely"), closeNow)
			return
		}
		s.mu.Unlock()
	}
}

// bodyPool holds POST body buffers: a payload's text packets alias the
// buffer until the handler calls for them have returned.
var bodyPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBody is the largest buffer put back in bodyPool.
const maxPooledBody = 64 << 10

// servePost serves a long-polling POST: a payload from the client.
func (s *Session) servePost(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.pingExpiredLocked() {
		s.mu.Unlock()
		s.closeWith(ReasonPingTimeout, nil, closeNow)
		s.mu.Lock()
	}
	switch {
	case s.state == stateClosed:
		s.mu.Unlock()
		s.srv.refuse(w, r, &RequestError{Status: http.StatusBadRequest, Code: CodeUnknownSID})
		return
	case s.transport != TransportPolling:
		s.mu.Unlock()
		s.srv.refuse(w, r, &RequestError{Status: http.StatusBadRequest, Code: CodeBadRequest})
		return
	case s.posting:
		s.mu.Unlock()
		err := errors.New("engineio: overlapping POST requests from the client")
		s.closeWith(ReasonTransportError, err, closeNow)
		s.srv.refuse(w, r, &RequestError{Status: http.StatusBadRequest, Code: CodeBadRequest, Err: err})
		return
	}
	s.posting = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.posting = false
		s.mu.Unlock()
	}()

	max := s.srv.opts.MaxPayload
	if r.ContentLength > max {
		err := fmt.Errorf("%w: %d bytes, over %d", ErrPayloadTooLarge, r.ContentLength, max)
		s.closeWith(ReasonTransportError, err, closeNow)
		s.srv.refuse(w, r, &RequestError{Status: http.StatusRequestEntityTooLarge, Code: CodeBadRequest, Message: "Payload too large", Err: err})
		return
	}
	buf := bodyPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= maxPooledBody {
			bodyPool.Put(buf)
		}
	}()
	n, err := buf.ReadFrom(io.LimitReader(r.Body, max+1))
	if n > max {
		err := fmt.Errorf("%w: more than %d bytes", ErrPayloadTooLarge, max)
		s.closeWith(ReasonTransportError, err, closeNow)
		s.srv.refuse(w, r, &RequestError{Status: http.StatusRequestEntityTooLarge, Code: CodeBadRequest, Message: "Payload too large", Err: err})
		return
	}
	if err != nil {
		err = fmt.Errorf("engineio: reading a POST body: %w", err)
		s.closeWith(ReasonTransportError, err, closeNow)
		s.srv.refuse(w, r, &RequestError{Status: http.StatusBadRequest, Code: CodeBadRequest, Err: err})
		return
	}
	var arr [8]Packet
	packets, err := DecodePayload(arr[:0], buf.Bytes())
	if err != nil {
		s.closeWith(ReasonParseError, err, closeNow)
		s.srv.refuse(w, r, &RequestError{Status: http.StatusBadRequest, Code: CodeBadRequest, Err: err})
		return
	}
	for _, p := range packets {
		if !s.onPacket(p) {
			break
		}
	}
	h := w.Header()
	h.Set("Content-Type", "text/html")
	h.Set("Content-Length", "2")
	_, _ = io.WriteString(w, "ok")
}
