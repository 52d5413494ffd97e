package engineio

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/duplexrt/duplex/ws"
)

// errorRecorder collects what ServerOptions.OnError is told.
type errorRecorder chan error

func (rec errorRecorder) onError(r *http.Request, err error) {
	if r == nil {
		err = errors.Join(err, errors.New("OnError got a nil request"))
	}
	rec <- err
}

// next returns the next error OnError got.
func (rec errorRecorder) next(t *testing.T) error {
	t.Helper()
	select {
	case err := <-rec:
		return err
	case <-time.After(waitTimeout):
		t.Fatal("OnError was not called")
		return nil
	}
}

// none checks that OnError got nothing more.
func (rec errorRecorder) none(t *testing.T) {
	t.Helper()
	select {
	case err := <-rec:
		t.Errorf("OnError got %v, want nothing more", err)
	case <-time.After(50 * time.Millisecond):
	}
}

// requestError checks that err is a *RequestError with status and code,
// wrapping cause if not nil.
func requestError(t *testing.T, err error, status int, code ErrorCode, cause error) {
	t.Helper()
	var re *RequestError
	if !errors.As(err, &re) || re.Status != status || re.Code != code {
		t.Errorf("OnError got %v, want a *RequestError with status %d, code %d", err, status, code)
		return
	}
	if cause != nil && !errors.Is(err, cause) {
		t.Errorf("OnError got %v, want it to wrap %v", err, cause)
	}
}

// TestOnError provokes each refusal and each close for a client's fault,
// and checks what ServerOptions.OnError is told.
func TestOnError(t *testing.T) {
	t.Parallel()
	start := func(t *testing.T, o ServerOptions) (*testServer, errorRecorder) {
		rec := make(errorRecorder, 16)
		o.OnError = rec.onError
		return startServer(t, &o), rec
	}
	t.Run("requests", func(t *testing.T) {
		t.Parallel()
		ts, rec := start(t, ServerOptions{})
		for _, tc := range []struct {
			method, query string
			code          ErrorCode
		}{
			{"GET", "EIO=4&transport=carrier-pigeon", CodeUnknownTransport},
			{"GET", "EIO=3&transport=polling", CodeUnsupportedProtocolVersion},
			{"POST", "EIO=4&transport=polling", CodeBadHandshakeMethod},
			{"GET", "EIO=4&transport=polling&sid=nope", CodeUnknownSID},
			{"GET", "EIO=4&transport=websocket", CodeBadRequest}, // no Upgrade header
		} {
			if r := do(t, tc.method, ts.URL+"?"+tc.query, ""); r.status != 400 {
				t.Errorf("%s %s: %d", tc.method, tc.query, r.status)
			}
			requestError(t, rec.next(t), 400, tc.code, nil)
		}
		rec.none(t)
	})
	t.Run("allow-request", func(t *testing.T) {
		t.Parallel()
		ts, rec := start(t, ServerOptions{AllowRequest: func(*http.Request) error { return errors.New("no token") }})
		do(t, "GET", ts.URL+"?EIO=4&transport=polling", "")
		requestError(t, rec.next(t), 403, CodeForbidden, nil)
	})
	t.Run("max-sessions", func(t *testing.T) {
		t.Parallel()
		ts, rec := start(t, ServerOptions{MaxSessions: 1})
		ts.handshake(t)
		if r := do(t, "GET", ts.URL+"?EIO=4&transport=polling", ""); r.status != 503 {
			t.Errorf("second session: %d", r.status)
		}
		requestError(t, rec.next(t), 503, CodeBadRequest, ErrTooManySessions)
		ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
		defer cancel()
		if _, resp, err := ws.Dial(ctx, ts.wsURL("EIO=4&transport=websocket"), nil); err == nil || resp == nil || resp.StatusCode != 503 {
			t.Errorf("WebSocket over MaxSessions: %v", err)
		}
		requestError(t, rec.next(t), 503, CodeBadRequest, ErrTooManySessions)
	})
	t.Run("shutting-down", func(t *testing.T) {
		t.Parallel()
		ts, rec := start(t, ServerOptions{})
		_ = ts.Close()
		do(t, "GET", ts.URL+"?EIO=4&transport=polling", "")
		requestError(t, rec.next(t), 503, CodeBadRequest, ErrServerClosed)
	})
	t.Run("polling-payload", func(t *testing.T) {
		t.Parallel()
		ts, rec := start(t, ServerOptions{MaxPayload: 100})
		sid := ts.handshake(t)
		if r := ts.post(t, sid, "4"+strings.Repeat("x", 100)); r.status != 413 {
			t.Errorf("POST of 101 bytes: %d", r.status)
		}
		requestError(t, rec.next(t), 413, CodeBadRequest, ErrPayloadTooLarge)
		sid = ts.handshake(t)
		ts.post(t, sid, "not a packet")
		requestError(t, rec.next(t), 400, CodeBadRequest, ErrInvalidPacket)
		rec.none(t)
	})
	t.Run("websocket-handshake", func(t *testing.T) {
		t.Parallel()
		ts, rec := start(t, ServerOptions{})
		ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
		defer cancel()
		_, _, err := ws.Dial(ctx, ts.wsURL("EIO=4&transport=websocket"), &ws.DialOptions{Header: http.Header{"Origin": {"https://evil.example"}}})
		if err == nil {
			t.Fatal("a foreign Origin was accepted")
		}
		var he *ws.HandshakeError
		if err := rec.next(t); !errors.As(err, &he) || he.Status != 403 {
			t.Errorf("OnError got %v, want a *ws.HandshakeError with status 403", err)
		}
	})
	t.Run("websocket-failures", func(t *testing.T) {
		t.Parallel()
		ts, rec := start(t, ServerOptions{MaxPayload: 100})
		c := dialWS(t, ts.wsURL("EIO=4&transport=websocket"))
		readWS(t, c)
		writeWS(t, c, "4"+strings.Repeat("x", 100))
		readWSErr(t, c)
		if err := rec.next(t); !errors.Is(err, ws.ErrMessageTooBig) {
			t.Errorf("OnError got %v, want ws.ErrMessageTooBig", err)
		}
		c = dialWS(t, ts.wsURL("EIO=4&transport=websocket"))
		readWS(t, c)
		writeWS(t, c, "not a packet")
		readWSErr(t, c)
		if err := rec.next(t); !errors.Is(err, ErrInvalidPacket) {
			t.Errorf("OnError got %v, want ErrInvalidPacket", err)
		}
		rec.none(t)
	})
	t.Run("already-upgraded", func(t *testing.T) {
		t.Parallel()
		ts, rec := start(t, ServerOptions{})
		ts.rec.echo = false
		sid := ts.handshake(t)
		c := dialWS(t, ts.wsURL("EIO=4&transport=websocket&sid="+sid))
		writeWS(t, c, "2probe")
		readWS(t, c)
		writeWS(t, c, "5")
		eventually(t, "the upgrade", func() bool { return ts.Session(sid).Transport() == TransportWebSocket })
		c2 := dialWS(t, ts.wsURL("EIO=4&transport=websocket&sid="+sid))
		if code := ws.CloseStatus(readWSErr(t, c2)); code != ws.StatusPolicyViolation {
			t.Errorf("second WebSocket closed with %v, want 1008", code)
		}
		if err := rec.next(t); !errors.Is(err, ErrAlreadyUpgraded) {
			t.Errorf("OnError got %v, want ErrAlreadyUpgraded", err)
		}
	})
	t.Run("send-buffer", func(t *testing.T) {
		t.Parallel()
		ts, rec := start(t, ServerOptions{SendBufferLimit: 10})
		ts.handshake(t)
		s := ts.rec.session(t)
		_ = s.SendText("12345678")
		_ = s.SendText("12345")
		if err := rec.next(t); !errors.Is(err, ErrSendBufferFull) {
			t.Errorf("OnError got %v, want ErrSendBufferFull", err)
		}
	})
}

// eventually waits until cond holds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, waitTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
