package adversarial

import (
	"bytes"
	"compress/flate"
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/duplexrt/duplex/ws"
)

// TestWSFragmentFlood is the analogue of Node ws's CVE-2026-48779: one
// message sent as 100,000 empty (or 1-byte) continuation frames. With
// the defaults (ReadLimit 1 MiB, so MaxFragments 32,768) the server
// fails the connection with 1009 once past MaxFragments; while it reads
// them its heap does not grow with the number of frames.
func TestWSFragmentFlood(t *testing.T) {
	const frames = 100_000
	for _, m := range pollModes {
		for _, payload := range []string{"", "x"} {
			name := m.name + "/empty"
			if payload != "" {
				name = m.name + "/1-byte"
			}
			t.Run(name, func(t *testing.T) {
				ts, _ := startWS(t, nil, m.poll)
				c := dialWSRaw(t, addrOf(ts), "/")
				flood := appendFrame(nil, false, false, opBin, []byte(payload), -1)
				for range frames {
					flood = appendFrame(flood, false, false, opCont, []byte(payload), -1)
				}
				allocated, _ := measure(func() {
					c.writeAsync(flood)
					c.expectClose(ws.StatusMessageTooBig, step)
				})
				t.Logf("%d frames sent, %d KiB allocated while the server read and refused them", frames, allocated>>10)
				// 32,768 frames read: a few bytes each would already be
				// 1 MiB (a 1-byte message is 32 KiB at most).
				if allocated > 1<<20 {
					t.Errorf("%d KiB allocated: the heap grows with the fragments", allocated>>10)
				}
			})
		}
	}
	// duplex serve's /ws/echo raises ReadLimit to 16 MiB, which makes
	// MaxFragments 524,288: the 100,000 empty frames are a legal message,
	// and must cost no memory per frame.
	t.Run("duplex-echo-limits", func(t *testing.T) {
		ts, _ := startWS(t, &ws.AcceptOptions{ReadLimit: 16 << 20}, false)
		c := dialWSRaw(t, addrOf(ts), "/")
		flood := appendFrame(nil, false, false, opBin, nil, -1)
		for range frames - 1 {
			flood = appendFrame(flood, false, false, opCont, nil, -1)
		}
		flood = appendFrame(flood, true, false, opCont, nil, -1)
		allocated, _ := measure(func() {
			c.writeAsync(flood)
			_ = c.nc.SetReadDeadline(time.Now().Add(step))
			f, err := c.readFrame(16)
			if err != nil || f.op != opBin || len(f.payload) != 0 {
				t.Fatalf("echo: %+v %v, want an empty binary message", f, err)
			}
		})
		t.Logf("%d empty frames echoed as one message, %d KiB allocated", frames, allocated>>10)
		if allocated > 1<<20 {
			t.Errorf("%d KiB allocated: the heap grows with the fragments", allocated>>10)
		}
	})
}

// TestWSLengthHeader: 64-bit payload lengths that no server can hold,
// sent without payload. The most significant bit set is a protocol error
// (RFC 6455 §5.2: 1002); 2^63-1 and ReadLimit+1 are too big (1009); none
// makes the server allocate the size announced.
func TestWSLengthHeader(t *testing.T) {
	const limit = 1 << 20
	for _, tc := range []struct {
		name  string
		frame []byte
		want  ws.StatusCode
	}{
		{"2^63", appendHeader64(nil, opBin, 1<<63), ws.StatusProtocolError},
		{"2^64-1", appendHeader64(nil, opBin, 1<<64-1), ws.StatusProtocolError},
		{"2^63-1", appendHeader64(nil, opBin, 1<<63-1), ws.StatusMessageTooBig},
		{"ReadLimit+1", appendHeader64(nil, opText, limit+1), ws.StatusMessageTooBig},
		{"continuation-2^63-1", appendHeader64(appendFrame(nil, false, false, opBin, make([]byte, 100), -1), opCont, 1<<63-1), ws.StatusMessageTooBig},
		{"continuation-past-ReadLimit", appendHeader64(appendFrame(nil, false, false, opBin, make([]byte, 100), -1), opCont, limit-99), ws.StatusMessageTooBig},
	} {
		for _, m := range pollModes {
			t.Run(tc.name+"/"+m.name, func(t *testing.T) {
				ts, _ := startWS(t, &ws.AcceptOptions{ReadLimit: limit}, m.poll)
				c := dialWSRaw(t, addrOf(ts), "/")
				allocated, _ := measure(func() {
					c.write(tc.frame)
					c.expectClose(tc.want, step)
				})
				if allocated > limit/2 {
					t.Errorf("%d KiB allocated for a header alone", allocated>>10)
				}
			})
		}
	}
}

// TestWSNeverReadingClient: a client that never reads while the server
// sends to it without pause, as duplex serve's /ws/broadcast does to a
// slow subscriber (SendQueueClose). The server's queue never holds more
// than SendQueueLimit, Send fails with ErrSendQueueFull, and the client,
// when it reads at last, finds 1013 Try Again Later after the data that
// was in flight.
func TestWSNeverReadingClient(t *testing.T) {
	const limit = 1 << 20
	const msgSize = 16 << 10
	var maxQueued, total atomic.Int64
	refused := make(chan error, 1)
	srv := &ws.Server{
		Handler: ws.HandlerFuncs{Open: func(c *ws.Conn) {
			go func() {
				msg := make([]byte, msgSize)
				// Stop at 64 MiB: an unbounded queue would otherwise hold
				// it all. A pause between sends lets the writer fill the
				// TCP buffers first, as a steady broadcast does.
				for sent := 0; sent < 64<<20; sent += msgSize {
					time.Sleep(20 * time.Microsecond)
					if err := c.Send(ws.MessageBinary, msg); err != nil {
						refused <- err
						return
					}
					total.Add(msgSize)
					if q := int64(c.SendQueued()); q > maxQueued.Load() {
						maxQueued.Store(q)
					}
				}
				refused <- errors.New("64 MiB sent, never refused")
			}()
		}},
		Options: &ws.AcceptOptions{SendQueueLimit: limit, SendQueueFull: ws.SendQueueClose},
	}
	ts := startHTTP(t, srv, 2*time.Second)
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	c := dialWSRaw(t, addrOf(ts), "/")
	select {
	case err := <-refused:
		if !errors.Is(err, ws.ErrSendQueueFull) {
			t.Fatalf("Send: %v, want ErrSendQueueFull", err)
		}
	case <-time.After(step):
		t.Fatal("the server kept queueing for a client that never reads")
	}
	t.Logf("refused after %d KiB sent, at most %d KiB queued", total.Load()>>10, maxQueued.Load()>>10)
	if q := maxQueued.Load(); q > limit {
		t.Errorf("%d bytes queued, over SendQueueLimit %d", q, limit)
	}
	c.expectClose(ws.StatusTryAgainLater, step)
}

// TestWSInvalidUTF8: text that is not UTF-8 fails the connection with
// 1007, as soon as the bad byte arrives: in a single frame, in the second
// fragment of a message, and at the start of a frame whose rest never
// comes.
func TestWSInvalidUTF8(t *testing.T) {
	for _, tc := range []struct {
		name  string
		frame []byte
	}{
		{"frame", appendFrame(nil, true, false, opText, []byte("κόσμε\xed\xa0\x80"), -1)},
		{"second-fragment", appendFrame(appendFrame(nil, false, false, opText, []byte("ok"), -1), false, false, opCont, []byte("\xff"), -1)},
		// 512 KiB announced, 5 bytes sent: the verdict needs no more.
		{"inside-frame", appendFrame(nil, true, false, opText, []byte("ab\xc0\xafc"), 512<<10)[:14+5]},
	} {
		for _, m := range pollModes {
			t.Run(tc.name+"/"+m.name, func(t *testing.T) {
				ts, _ := startWS(t, nil, m.poll)
				c := dialWSRaw(t, addrOf(ts), "/")
				c.write(tc.frame)
				c.expectClose(ws.StatusInvalidPayloadData, step)
			})
		}
	}
}

// TestWSOrigin: cross-site WebSocket hijacking. With OriginPatterns
// ["https://example.com", "https://*.example.org"] (duplex serve's --origin), a
// browser Origin that is neither the server's host nor matches is refused
// with 403, whatever the tricks: suffixes, userinfo, other schemes or
// ports, "null", paths and fragments.
func TestWSOrigin(t *testing.T) {
	srv := &ws.Server{
		Handler: ws.HandlerFuncs{},
		Options: &ws.AcceptOptions{OriginPatterns: []string{"https://example.com", "https://*.example.org"}},
	}
	ts := startHTTP(t, srv, 2*time.Second)
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	for _, tc := range []struct {
		origin string
		want   int
	}{
		{"", http.StatusSwitchingProtocols},
		{ts.URL, http.StatusSwitchingProtocols}, // the server's own host
		{"https://example.com", http.StatusSwitchingProtocols},
		{"HTTPS://EXAMPLE.COM", http.StatusSwitchingProtocols}, // origins ignore case
		{"https://a.example.org", http.StatusSwitchingProtocols},
		{"https://evil.test", http.StatusForbidden},
		{"https://example.com.evil.test", http.StatusForbidden},
		{"https://evil-example.com", http.StatusForbidden},
		{"https://example.com@evil.test", http.StatusForbidden},
		{"https://evil.test/https://example.com", http.StatusForbidden},
		{"https://evil.test#.example.org", http.StatusForbidden},
		{"https://evil.test?.example.org", http.StatusForbidden},
		{"https://example.org", http.StatusForbidden},
		{"https://evilexample.org", http.StatusForbidden},
		{"https://example.org.evil.test", http.StatusForbidden},
		{"https://a.example.org.evil.test", http.StatusForbidden},
		{"http://example.com", http.StatusForbidden},
		{"wss://example.com", http.StatusForbidden},
		{"https://example.com:8443", http.StatusForbidden},
		{"https://example.com.", http.StatusForbidden},
		{"https://example%2ecom", http.StatusForbidden},
		{"null", http.StatusForbidden},
		{"https://[::1]", http.StatusForbidden},
		{"https://127.0.0.1", http.StatusForbidden}, // the host without the port
	} {
		t.Run(strings.ReplaceAll(tc.origin, "/", "∕"), func(t *testing.T) {
			var extra []string
			if tc.origin != "" {
				extra = append(extra, "Origin: "+tc.origin)
			}
			_, status := wsHandshake(t, addrOf(ts), "/", extra...)
			if status != tc.want {
				t.Errorf("Origin %q: status %d, want %d", tc.origin, status, tc.want)
			}
		})
	}
}

// TestWSCompressionBomb: a permessage-deflate message of about 80 KB
// that inflates to 64 MiB of zeros, against the default ReadLimit of
// 1 MiB. The server fails the connection with 1009 as soon as the
// inflated size passes the limit, without inflating the rest.
func TestWSCompressionBomb(t *testing.T) {
	const inflated = 64 << 20
	var buf bytes.Buffer
	fw, _ := flate.NewWriter(&buf, flate.BestSpeed)
	zeros := make([]byte, 1<<20)
	for range inflated / len(zeros) {
		_, _ = fw.Write(zeros)
	}
	_ = fw.Flush()
	bomb := bytes.TrimSuffix(buf.Bytes(), []byte{0, 0, 0xff, 0xff}) // RFC 7692 §7.2.1
	frame := appendFrame(nil, true, true, opBin, bomb, -1)
	for _, m := range pollModes {
		t.Run(m.name, func(t *testing.T) {
			ts, _ := startWS(t, &ws.AcceptOptions{Compression: &ws.Compression{}}, m.poll)
			c := dialWSRaw(t, addrOf(ts), "/", "Sec-WebSocket-Extensions: permessage-deflate")
			allocated, _ := measure(func() {
				c.writeAsync(frame)
				c.expectClose(ws.StatusMessageTooBig, step)
			})
			t.Logf("%d KB compressed, %d MiB inflated: %d KiB allocated by the refusal", len(bomb)>>10, inflated>>20, allocated>>10)
			if allocated > inflated/8 {
				t.Errorf("%d KiB allocated: the bomb was inflated past the limit", allocated>>10)
			}
		})
	}
}

// TestWSHalfOpen: a peer that vanished without a FIN (here: a client that
// never answers or sends) is pinged after Heartbeat.Interval of silence
// and cut off Timeout later, in both serving modes; the Handler sees an
// error wrapping ws.ErrNoPong that reads as 1006. Without
// AcceptOptions.Heartbeat the connection stays open for ever: the test
// waits in vain.
func TestWSHalfOpen(t *testing.T) {
	for _, m := range pollModes {
		t.Run(m.name, func(t *testing.T) {
			hb := &ws.Heartbeat{Interval: 100 * time.Millisecond, Timeout: 200 * time.Millisecond}
			closed := make(chan error, 1)
			srv := &ws.Server{
				Handler: ws.HandlerFuncs{Close: func(c *ws.Conn, err error) { closed <- err }},
				Options: &ws.AcceptOptions{Heartbeat: hb},
			}
			if m.poll {
				p, err := ws.NewPoller(nil)
				if err != nil {
					t.Skipf("no poller: %v", err)
				}
				srv.Poller = p
				t.Cleanup(func() { _ = p.Close() })
			}
			ts := startHTTP(t, srv, 2*time.Second)
			t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
			start := time.Now()
			c := dialWSRaw(t, addrOf(ts), "/")
			select {
			case err := <-closed:
				if !errors.Is(err, ws.ErrNoPong) || ws.CloseStatus(err) != ws.StatusAbnormalClosure {
					t.Fatalf("closed with %v; want ErrNoPong, 1006", err)
				}
				t.Logf("half-open peer cut after %v", time.Since(start).Round(time.Millisecond))
			case <-time.After(step):
				t.Fatal("a silent peer is still connected")
			}
			c.expectEOF(step)
		})
	}
}
