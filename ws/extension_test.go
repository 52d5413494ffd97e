package ws

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func extHeader(v ...string) http.Header {
	return http.Header{"Sec-Websocket-Extensions": v}
}

// TestAcceptDeflate is RFC 7692 §5 and §7.1 from the server's side: which
// offer is taken and what the answer says.
func TestAcceptDeflate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		offer []string
		opts  Compression
		want  string // "" when declined
	}{
		{"plain", []string{"permessage-deflate"}, Compression{}, "permessage-deflate"},
		{"case-insensitive names", []string{"Permessage-Deflate; Client_Max_Window_Bits"}, Compression{}, "permessage-deflate"},
		{"client window without value", []string{"permessage-deflate; client_max_window_bits"}, Compression{}, "permessage-deflate"},
		{"client window without value, we bound it", []string{"permessage-deflate; client_max_window_bits"}, Compression{PeerWindowBits: 10}, "permessage-deflate; client_max_window_bits=10"},
		{"client window value echoed", []string{"permessage-deflate; client_max_window_bits=12"}, Compression{}, "permessage-deflate; client_max_window_bits=12"},
		{"client window smaller wish", []string{"permessage-deflate; client_max_window_bits=12"}, Compression{PeerWindowBits: 9}, "permessage-deflate; client_max_window_bits=9"},
		{"client window cannot be bound unasked", []string{"permessage-deflate"}, Compression{PeerWindowBits: 9}, "permessage-deflate"},
		{"server window asked", []string{"permessage-deflate; server_max_window_bits=9"}, Compression{}, "permessage-deflate; server_max_window_bits=9"},
		{"server window ours smaller", []string{"permessage-deflate; server_max_window_bits=12"}, Compression{WindowBits: 10}, "permessage-deflate; server_max_window_bits=10"},
		{"server window ours unasked", []string{"permessage-deflate"}, Compression{WindowBits: 11}, "permessage-deflate; server_max_window_bits=11"},
		{"quoted value", []string{`permessage-deflate; server_max_window_bits="10"`}, Compression{}, "permessage-deflate; server_max_window_bits=10"},
		{"no context takeover asked", []string{"permessage-deflate; server_no_context_takeover; client_no_context_takeover"}, Compression{}, "permessage-deflate; server_no_context_takeover; client_no_context_takeover"},
		{"no context takeover ours", []string{"permessage-deflate"}, Compression{NoContextTakeover: true, RequestPeerNoContextTakeover: true}, "permessage-deflate; server_no_context_takeover; client_no_context_takeover"},
		{"first acceptable offer wins", []string{"permessage-deflate; server_max_window_bits=7, permessage-deflate; server_max_window_bits=10, permessage-deflate"}, Compression{}, "permessage-deflate; server_max_window_bits=10"},
		{"offers over several lines", []string{"x-webkit-deflate-frame", "permessage-deflate; client_max_window_bits"}, Compression{}, "permessage-deflate"},
		{"duplicate parameter declined", []string{"permessage-deflate; server_no_context_takeover; server_no_context_takeover"}, Compression{}, ""},
		{"unknown parameter declined", []string{"permessage-deflate; foo=1"}, Compression{}, ""},
		{"window 7 declined", []string{"permessage-deflate; server_max_window_bits=7"}, Compression{}, ""},
		{"window 16 declined", []string{"permessage-deflate; client_max_window_bits=16"}, Compression{}, ""},
		{"leading zero declined", []string{"permessage-deflate; client_max_window_bits=010"}, Compression{}, ""},
		{"server window without value declined", []string{"permessage-deflate; server_max_window_bits"}, Compression{}, ""},
		{"takeover with value declined", []string{"permessage-deflate; client_no_context_takeover=1"}, Compression{}, ""},
		{"other extension only", []string{"x-custom"}, Compression{}, ""},
		{"malformed header", []string{`permessage-deflate; a="unterminated`}, Compression{}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			opts := tc.opts
			p, ok := acceptDeflate(extHeader(tc.offer...), &opts)
			got := ""
			if ok {
				got = p.String()
			}
			if got != tc.want {
				t.Errorf("offer %q: answer %q, want %q", tc.offer, got, tc.want)
			}
		})
	}
	if _, ok := acceptDeflate(extHeader("permessage-deflate"), nil); ok {
		t.Error("compression accepted with nil options")
	}
}

// TestDeflateResponse is the client's side: what answers it takes.
func TestDeflateResponse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		opts    Compression
		answer  []string
		ok      bool
		wantErr string
	}{
		{"declined", Compression{}, nil, false, ""},
		{"plain", Compression{}, []string{"permessage-deflate"}, true, ""},
		{"client window bound", Compression{}, []string{"permessage-deflate; client_max_window_bits=9"}, true, ""},
		{"server limits itself", Compression{}, []string{"permessage-deflate; server_max_window_bits=10; server_no_context_takeover"}, true, ""},
		{"client window above our offer", Compression{WindowBits: 10}, []string{"permessage-deflate; client_max_window_bits=12"}, false, "above the 10 offered"},
		{"server window not honoured", Compression{PeerWindowBits: 9}, []string{"permessage-deflate; server_max_window_bits=12"}, false, "asked for"},
		{"server window ignored", Compression{PeerWindowBits: 9}, []string{"permessage-deflate"}, false, "asked for"},
		{"takeover request dropped", Compression{RequestPeerNoContextTakeover: true}, []string{"permessage-deflate"}, false, "server_no_context_takeover"},
		{"unoffered extension", Compression{}, []string{"x-other"}, false, "not offered"},
		{"two answers", Compression{}, []string{"permessage-deflate, permessage-deflate"}, false, "2 extensions"},
		{"unknown parameter", Compression{}, []string{"permessage-deflate; foo"}, false, "unknown parameter"},
		{"client window without value", Compression{}, []string{"permessage-deflate; client_max_window_bits"}, false, "needs a value"},
		{"duplicate", Compression{}, []string{"permessage-deflate; client_no_context_takeover; client_no_context_takeover"}, false, "twice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			opts := tc.opts
			_, ok, err := checkDeflateResponse(extHeader(tc.answer...), offerDeflate(&opts))
			if ok != tc.ok || (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("answer %q: ok %v, err %v; want ok %v, err containing %q", tc.answer, ok, err, tc.ok, tc.wantErr)
			}
		})
	}
}

// TestCompressWindow checks that compression with a small window never
// refers further back than the window, across messages with context
// takeover: the stream is inflated with a dictionary limited to the window
// and must match, and distances are checked by decoding with exactly the
// history the window allows.
func TestCompressWindow(t *testing.T) {
	t.Parallel()
	// Text that repeats at a distance of ~2 KiB: a 32 KiB-window compressor
	// would refer back across it.
	var msgs [][]byte
	for i := range 20 {
		var b bytes.Buffer
		for j := range 40 {
			b.WriteString(strings.Repeat(string(rune('a'+(i+j)%26)), 3))
			b.WriteString(" the quick brown fox jumps over the lazy dog ")
		}
		msgs = append(msgs, b.Bytes())
	}
	for _, bits := range []int{8, 9, 10, 12, 15} {
		for _, takeover := range []bool{true, false} {
			s := &deflateState{level: 1, threshold: 0, sendBits: bits, sendTakeover: takeover}
			var hist []byte
			for i, m := range msgs {
				out := append([]byte(nil), s.compress(nil, m)...)
				s.commit(m)
				// Inflate with only the history the window allows: a
				// reference further back fails or decodes wrongly.
				var dict []byte
				if takeover {
					dict = hist
				}
				fr := flate.NewReaderDict(io.MultiReader(bytes.NewReader(out), bytes.NewReader(deflateTail[:])), dict)
				got, err := io.ReadAll(fr)
				if err != nil || !bytes.Equal(got, m) {
					t.Fatalf("bits %d takeover %v message %d: inflate with a %d-byte history: %v (match %v)", bits, takeover, i, len(dict), err, bytes.Equal(got, m))
				}
				if takeover {
					hist = appendWindow(hist, m, 1<<bits)
				}
				if len(s.sendHist) > 1<<bits {
					t.Fatalf("history of %d bytes for a %d-bit window", len(s.sendHist), bits)
				}
			}
		}
	}
}

func TestAppendWindow(t *testing.T) {
	t.Parallel()
	var h []byte
	var all []byte
	for i := range 100 {
		p := bytes.Repeat([]byte{byte(i)}, i*7%50)
		h = appendWindow(h, p, 64)
		all = append(all, p...)
		want := all
		if len(want) > 64 {
			want = want[len(want)-64:]
		}
		if !bytes.Equal(h, want) {
			t.Fatalf("step %d: window %x, want %x", i, h, want)
		}
	}
}

// zlibCheck inflates each message with Python's zlib and a window of
// exactly 2^bits bytes, a few bytes of output per call, so that any
// back-reference further than the window is refused ("invalid distance too
// far back"), as it would be by a peer that asked for that window.
const zlibCheck = `
import sys, zlib, struct
bits, takeover = int(sys.argv[1]), sys.argv[2] == "1"
data = open(sys.argv[3], "rb").read()
d = zlib.decompressobj(-bits)
i = n = 0
while i < len(data):
    clen, plen = struct.unpack(">II", data[i:i+8]); i += 8
    comp, want = data[i:i+clen] + b"\x00\x00\xff\xff", data[i+clen:i+clen+plen]; i += clen + plen
    if not takeover:
        d = zlib.decompressobj(-bits)
    out, buf = b"", comp
    while buf:
        out += d.decompress(buf, 16)
        buf = d.unconsumed_tail
    if out != want:
        sys.exit("message %d: inflated %d bytes, want %d" % (n, len(out), len(want)))
    n += 1
print("ok", n)
`

func TestCompressWindowZlib(t *testing.T) {
	t.Parallel()
	python, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("python3 is needed to check compression windows with zlib")
		}
		t.Skip("python3 not found: the zlib window check needs it")
	}
	var msgs [][]byte
	for i := range 30 {
		var b bytes.Buffer
		for j := range 60 {
			fmt.Fprintf(&b, "%03d the quick brown fox %d jumps over the lazy dog; ", (i*j)%97, j%5)
		}
		msgs = append(msgs, b.Bytes())
	}
	for _, bits := range []int{9, 10, 12, 15} {
		for _, takeover := range []bool{true, false} {
			s := &deflateState{level: 1, sendBits: bits, sendTakeover: takeover}
			var file bytes.Buffer
			for _, m := range msgs {
				out := s.compress(nil, m)
				s.commit(m)
				_ = binary.Write(&file, binary.BigEndian, [2]uint32{uint32(len(out)), uint32(len(m))})
				file.Write(out)
				file.Write(m)
			}
			path := filepath.Join(t.TempDir(), "stream")
			if err := os.WriteFile(path, file.Bytes(), 0o600); err != nil {
				t.Fatal(err)
			}
			tk := "0"
			if takeover {
				tk = "1"
			}
			out, err := exec.Command(python, "-c", zlibCheck, strconv.Itoa(bits), tk, path).CombinedOutput()
			if err != nil {
				t.Errorf("window %d bits, takeover %v: zlib refused our stream: %v\n%s", bits, takeover, err, out)
			}
		}
	}
}
