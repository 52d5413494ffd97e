package ws

import (
	"bytes"
	"context"
	"net/http"
	"testing"
	"time"
)

// FuzzExtensions feeds arbitrary Sec-WebSocket-Extensions values to both
// sides of the negotiation. Neither may panic, and whatever the server
// answers must be an answer the client accepts for that offer.
func FuzzExtensions(f *testing.F) {
	for _, s := range []string{
		"permessage-deflate",
		"permessage-deflate; client_max_window_bits",
		"permessage-deflate; server_max_window_bits=10; client_max_window_bits=9",
		"permessage-deflate; server_no_context_takeover; client_no_context_takeover",
		`permessage-deflate; server_max_window_bits="12", permessage-deflate`,
		"x-webkit-deflate-frame, permessage-deflate; foo",
		`permessage-deflate; a="b\"c"; d`,
		"permessage-deflate; server_max_window_bits=08",
		",,permessage-deflate;;",
	} {
		f.Add(s, uint8(0))
	}
	f.Fuzz(func(t *testing.T, header string, knobs uint8) {
		opts := &Compression{
			NoContextTakeover:            knobs&1 != 0,
			RequestPeerNoContextTakeover: knobs&2 != 0,
		}
		if knobs&4 != 0 {
			opts.WindowBits = 8 + int(knobs>>4)%8
		}
		if knobs&8 != 0 {
			opts.PeerWindowBits = 8 + int(knobs>>5)%8
		}
		h := http.Header{"Sec-Websocket-Extensions": {header}}
		exts, err := parseExtensions(h)
		if err == nil {
			for _, e := range exts {
				if !isToken(e.name) {
					t.Fatalf("parsed extension name %q is not a token", e.name)
				}
			}
		}
		answer, ok := acceptDeflate(h, opts)
		_, _, _ = checkDeflateResponse(h, offerDeflate(opts))
		if !ok {
			return
		}
		// The offer that was accepted, read back, must take the answer.
		for _, e := range exts {
			if e.name != "permessage-deflate" {
				continue
			}
			offer, err := parseDeflate(e, true)
			if err != nil {
				continue
			}
			if _, ok, err := checkDeflateResponse(http.Header{"Sec-Websocket-Extensions": {answer.String()}}, offer); !ok || err != nil {
				t.Fatalf("offer %q: our answer %q is refused by the client check: %v", header, answer.String(), err)
			}
			break
		}
	})
}

// FuzzInflate feeds arbitrary bytes to the decompressor as compressed
// messages (whole, and split over frames), with a small read limit: it must
// never panic or hang, and never return more than the limit. A message
// compressed by us must come back whole.
func FuzzInflate(f *testing.F) {
	s := &deflateState{level: 1, sendBits: 15}
	for _, m := range []string{"", "hello", "hello hello hello hello", string(bytes.Repeat([]byte("a"), 10000))} {
		f.Add(bytes.Clone(s.compress(nil, []byte(m))), []byte(m), uint8(0))
	}
	f.Add([]byte{0xff, 0xff, 0xff}, []byte(nil), uint8(1))
	f.Add([]byte{0x01, 0x00, 0x00, 0xff, 0xff, 0x00}, []byte(nil), uint8(2))
	f.Fuzz(func(t *testing.T, compressed, plain []byte, mode uint8) {
		const limit = 4096
		const key = 0x0badf00d
		var in []byte
		if mode&1 == 0 || len(compressed) < 2 {
			in = fuzzRSV1Frame(true, opBinary, key, compressed)
		} else {
			half := len(compressed) / 2
			in = append(fuzzRSV1Frame(false, opBinary, key, compressed[:half]), fuzzFrame(true, opContinuation, true, key, string(compressed[half:]))...)
		}
		// A round trip through our compressor, when the input is small.
		if len(plain) <= limit {
			in = append(in, fuzzRSV1Frame(true, opBinary, key, bytes.Clone((&deflateState{level: 1, sendBits: 9 + int(mode)%7}).compress(nil, plain)))...)
		}
		nc := &memConn{in: in, chunk: int(mode>>2) % 7, discard: true}
		c := newConn(nc, nil, false, "", newConnConfig(limit, 64, time.Second, 0, 0))
		c.deflate = newDeflateState(deflateParams{clientNoContextTakeover: mode&2 != 0}, false, &Compression{})
		ctx := context.Background()
		var got [][]byte
		for range 3 {
			_, p, err := c.Read(ctx)
			if err != nil {
				break
			}
			if len(p) > limit {
				t.Fatalf("read %d bytes past the %d-byte limit", len(p), limit)
			}
			got = append(got, p)
		}
		// The first message may be garbage that still inflates; ours,
		// compressed without history, must round-trip whenever it is read.
		if len(plain) <= limit && len(got) == 2 && !bytes.Equal(got[1], plain) {
			t.Fatalf("round trip: got %d bytes, want %d", len(got[1]), len(plain))
		}
	})
}

// fuzzRSV1Frame is fuzzFrame with RSV1 set: a compressed message's first
// frame, masked as a client's.
func fuzzRSV1Frame(fin bool, op opcode, key uint32, payload []byte) []byte {
	b := fuzzFrame(fin, op, true, key, string(payload))
	b[0] |= 0x40
	return b
}
