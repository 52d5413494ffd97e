package thirdparty

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/duplexrt/duplex/ws"
)

// Frame benchmarks, Duplex against gorilla/websocket in the same run. Each
// case is named .../impl=duplex and .../impl=gorilla so that
// `benchstat -col /impl` puts them side by side (see BENCH.md).
//
// Both libraries run with default options (4 KiB buffers, no compression)
// over the same fakeConn, after a real handshake. Known differences in the
// work done, which the numbers include:
//   - Duplex validates the UTF-8 of text messages it reads; gorilla leaves
//     that to the application. impl=gorilla+utf8 adds utf8.Valid on the
//     message, which is what gorilla's own Autobahn server does.
//   - A gorilla client sends a message larger than its write buffer as
//     several frames (one per buffer-full); Duplex sends one frame.
//   - Writes here never block, so the system-call count (which differs
//     for large server writes: gorilla uses writev, Duplex two writes) is
//     not measured.

type side struct {
	name   string
	client bool
}

var sides = []side{{"server", false}, {"client", true}}

func (s side) duplex(tb testing.TB, nc *fakeConn) *ws.Conn {
	if s.client {
		return duplexClient(tb, nc)
	}
	return duplexServer(tb, nc)
}

func (s side) gorilla(tb testing.TB, nc *fakeConn) *websocket.Conn {
	if s.client {
		return gorillaClient(tb, nc)
	}
	return gorillaServer(tb, nc)
}

// BenchmarkWrite sends one text message per op. Server frames go out
// unmasked; client frames are masked, which costs a copy in both libraries
// since neither masks the caller's bytes in place.
func BenchmarkWrite(b *testing.B) {
	ctx := context.Background()
	for _, s := range sides {
		for _, sz := range sizes {
			p := textPayload(sz.n)
			name := fmt.Sprintf("side=%s/size=%s", s.name, sz.name)
			b.Run(name+"/impl=duplex", func(b *testing.B) {
				c := s.duplex(b, &fakeConn{})
				b.ReportAllocs()
				b.SetBytes(int64(len(p)))
				for b.Loop() {
					if err := c.Write(ctx, ws.MessageText, p); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(name+"/impl=gorilla", func(b *testing.B) {
				c := s.gorilla(b, &fakeConn{})
				b.ReportAllocs()
				b.SetBytes(int64(len(p)))
				for b.Loop() {
					if err := c.WriteMessage(websocket.TextMessage, p); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkRead receives one message per op from an endless stream of
// identical frames: masked ones for a server, unmasked for a client.
// api=reuse reads into one buffer kept across messages (Duplex ReadAppend;
// gorilla NextReader and io.ReadFull), the path a server that cares about
// allocation takes; api=alloc returns a new slice per message (Duplex Read;
// gorilla ReadMessage).
func BenchmarkRead(b *testing.B) {
	ctx := context.Background()
	for _, s := range sides {
		for _, typ := range []string{"text", "binary"} {
			for _, sz := range sizes {
				p, op := textPayload(sz.n), byte(websocket.TextMessage)
				if typ == "binary" {
					p, op = binaryPayload(sz.n), websocket.BinaryMessage
				}
				stream := frameStream(op, p, !s.client)
				check := func(b *testing.B, got []byte) {
					if len(got) != len(p) {
						b.Fatalf("read %d bytes, want %d", len(got), len(p))
					}
				}
				name := fmt.Sprintf("side=%s/type=%s/size=%s", s.name, typ, sz.name)

				b.Run(name+"/api=reuse/impl=duplex", func(b *testing.B) {
					c := s.duplex(b, &fakeConn{frames: stream})
					buf := make([]byte, 0, len(p))
					b.ReportAllocs()
					b.SetBytes(int64(len(p)))
					for b.Loop() {
						var err error
						if _, buf, err = c.ReadAppend(ctx, buf[:0]); err != nil {
							b.Fatal(err)
						}
						check(b, buf)
					}
				})
				gorillaReuse := func(validate bool) func(b *testing.B) {
					return func(b *testing.B) {
						c := s.gorilla(b, &fakeConn{frames: stream})
						buf := make([]byte, len(p))
						b.ReportAllocs()
						b.SetBytes(int64(len(p)))
						for b.Loop() {
							_, r, err := c.NextReader()
							if err != nil {
								b.Fatal(err)
							}
							if _, err := io.ReadFull(r, buf); err != nil {
								b.Fatal(err)
							}
							if validate && !utf8.Valid(buf) {
								b.Fatal("invalid UTF-8")
							}
						}
					}
				}
				b.Run(name+"/api=reuse/impl=gorilla", gorillaReuse(false))
				if typ == "text" {
					b.Run(name+"/api=reuse/impl=gorilla+utf8", gorillaReuse(true))
				}

				b.Run(name+"/api=alloc/impl=duplex", func(b *testing.B) {
					c := s.duplex(b, &fakeConn{frames: stream})
					b.ReportAllocs()
					b.SetBytes(int64(len(p)))
					for b.Loop() {
						_, got, err := c.Read(ctx)
						if err != nil {
							b.Fatal(err)
						}
						check(b, got)
					}
				})
				gorillaAlloc := func(validate bool) func(b *testing.B) {
					return func(b *testing.B) {
						c := s.gorilla(b, &fakeConn{frames: stream})
						b.ReportAllocs()
						b.SetBytes(int64(len(p)))
						for b.Loop() {
							_, got, err := c.ReadMessage()
							if err != nil {
								b.Fatal(err)
							}
							check(b, got)
							if validate && !utf8.Valid(got) {
								b.Fatal("invalid UTF-8")
							}
						}
					}
				}
				b.Run(name+"/api=alloc/impl=gorilla", gorillaAlloc(false))
				if typ == "text" {
					b.Run(name+"/api=alloc/impl=gorilla+utf8", gorillaAlloc(true))
				}
			}
		}
	}
}

// TestWriteHarness checks that what each library writes to the fakeConn is
// the message, masked exactly when it is a client, so the write benchmarks
// measure what they claim to.
func TestWriteHarness(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, s := range sides {
		for _, sz := range sizes {
			p := textPayload(sz.n)
			for _, impl := range []string{"duplex", "gorilla"} {
				t.Run(fmt.Sprintf("side=%s/size=%s/impl=%s", s.name, sz.name, impl), func(t *testing.T) {
					t.Parallel()
					nc := &fakeConn{}
					var write func() error
					if impl == "duplex" {
						c := s.duplex(t, nc)
						write = func() error { return c.Write(ctx, ws.MessageText, p) }
					} else {
						c := s.gorilla(t, nc)
						write = func() error { return c.WriteMessage(websocket.TextMessage, p) }
					}
					nc.capture = true
					for range 2 {
						if err := write(); err != nil {
							t.Fatal(err)
						}
					}
					msgs, masked := parseFrames(t, nc.out)
					if len(msgs) != 2 {
						t.Fatalf("got %d messages, want 2", len(msgs))
					}
					for i, m := range msgs {
						if !bytes.Equal(m, p) {
							t.Errorf("message %d: got %d bytes %.20q…, want %d bytes %.20q…", i, len(m), m, len(p), p)
						}
						if masked[i] != s.client {
							t.Errorf("message %d: masked = %v, want %v", i, masked[i], s.client)
						}
					}
				})
			}
		}
	}
}

// TestReadHarness checks that each library reads the pre-built frames back
// as the payload, message after message, through both read paths.
func TestReadHarness(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, s := range sides {
		for _, sz := range sizes {
			for _, typ := range []string{"text", "binary"} {
				p, op := textPayload(sz.n), byte(websocket.TextMessage)
				if typ == "binary" {
					p, op = binaryPayload(sz.n), websocket.BinaryMessage
				}
				stream := frameStream(op, p, !s.client)
				t.Run(fmt.Sprintf("side=%s/type=%s/size=%s", s.name, typ, sz.name), func(t *testing.T) {
					t.Parallel()
					dc := s.duplex(t, &fakeConn{frames: stream})
					gc := s.gorilla(t, &fakeConn{frames: stream})
					buf := make([]byte, 0, len(p))
					for i := range 3 {
						var got []byte
						var err error
						switch i {
						case 0:
							_, buf, err = dc.ReadAppend(ctx, buf[:0])
							got = buf
						case 1:
							_, got, err = dc.Read(ctx)
						case 2:
							_, got, err = dc.ReadAppend(ctx, buf[:0])
						}
						if err != nil || !bytes.Equal(got, p) {
							t.Fatalf("duplex read %d: %d bytes, %v", i, len(got), err)
						}
						mt, got, err := gc.ReadMessage()
						if err != nil || mt != int(op) || !bytes.Equal(got, p) {
							t.Fatalf("gorilla read %d: type %d, %d bytes, %v", i, mt, len(got), err)
						}
					}
				})
			}
		}
	}
}
