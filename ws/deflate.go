package ws

import (
	"bufio"
	"bytes"
	"io"
	"sync"

	"github.com/klauspost/compress/flate"
)

// deflateState is a connection's permessage-deflate state once negotiated.
// Nothing in it but the two histories outlives a message: compressors,
// decompressors and their buffers come from pools.
type deflateState struct {
	extensions string // the Sec-WebSocket-Extensions answer (Conn.Extensions)

	level     int
	threshold int

	sendBits     int  // our compression window, 8–15
	sendTakeover bool // our messages may refer to earlier ones
	recvBits     int  // the peer's window
	recvTakeover bool

	// The last bytes of the messages compressed so far in each direction,
	// at most 2^bits: the dictionary of the next message when context is
	// taken over (RFC 7692 §7.2.3). Only compressed messages count.
	sendHist []byte
	recvHist []byte

	out appendWriter // the compressor's output, during compress
	in  inflater     // the message being inflated, if any
}

// newDeflateState sets up compression for one side of a negotiated
// extension.
func newDeflateState(p deflateParams, client bool, opts *Compression) *deflateState {
	s := &deflateState{level: opts.Level, threshold: opts.Threshold}
	if s.level == 0 {
		s.level = 1
	}
	if s.threshold == 0 {
		s.threshold = 128
	}
	bits := func(b int) int {
		if b <= 0 {
			return 15
		}
		return b
	}
	if client {
		s.sendBits, s.sendTakeover = bits(p.clientMaxWindowBits), !p.clientNoContextTakeover
		s.recvBits, s.recvTakeover = bits(p.serverMaxWindowBits), !p.serverNoContextTakeover
	} else {
		s.sendBits, s.sendTakeover = bits(p.serverMaxWindowBits), !p.serverNoContextTakeover
		s.recvBits, s.recvTakeover = bits(p.clientMaxWindowBits), !p.clientNoContextTakeover
	}
	if opts.WindowBits != 0 {
		s.sendBits = min(s.sendBits, opts.WindowBits)
	}
	// zlib cannot compress with an 8-bit window and quietly uses 9 bits
	// when a peer asked for 8 (see zlib's deflateInit2 notes), so keep at
	// least 512 bytes of history to inflate what such peers send.
	s.recvBits = max(s.recvBits, 9)
	return s
}

// shouldCompress reports whether a message of n bytes is worth compressing.
func (s *deflateState) shouldCompress(n int) bool {
	return s.threshold < 0 || n >= s.threshold
}

// compress appends p deflated as RFC 7692 §7.2.1 says (a sync flush with
// its final 0x00 0x00 0xff 0xff removed) to dst and returns the result.
// Once the message is on the wire, commit(p) adds it to the history.
func (s *deflateState) compress(dst, p []byte) []byte {
	w := getWriter(s.level, s.sendBits)
	s.out.b = dst
	var dict []byte
	if s.sendTakeover {
		dict = s.sendHist
		// Loading the history costs about as much as compressing it, for
		// every message: a small message gets the recent part only, which
		// is where its matches mostly are (the peer keeps the whole
		// window, so any suffix is a valid dictionary).
		if n := max(4<<10, 4*len(p)); len(dict) > n {
			dict = dict[len(dict)-n:]
		}
	}
	w.ResetDict(&s.out, dict)
	_, _ = w.Write(p) // appendWriter never fails
	_ = w.Flush()
	putWriter(w, s.level, s.sendBits)
	out := bytes.TrimSuffix(s.out.b, deflateTail[:4])
	s.out.b = nil // the caller owns the buffer
	return out
}

// compressBufs holds the buffers Write compresses into, so that an idle
// connection keeps none.
var compressBufs = sync.Pool{New: func() any { return new([]byte) }}

// commit records a message sent compressed, for context takeover.
func (s *deflateState) commit(p []byte) {
	if s.sendTakeover {
		s.sendHist = appendWindow(s.sendHist, p, 1<<s.sendBits)
	}
}

// appendWindow appends p to hist and keeps the last max bytes, in place
// where it fits.
func appendWindow(hist, p []byte, max int) []byte {
	if len(p) >= max {
		if cap(hist) < max {
			hist = make([]byte, max)
		}
		hist = hist[:max]
		copy(hist, p[len(p)-max:])
		return hist
	}
	if len(hist)+len(p) > max {
		drop := len(hist) + len(p) - max
		hist = hist[:copy(hist, hist[drop:])]
	}
	if cap(hist) < max && len(hist)+len(p) > cap(hist) {
		grown := make([]byte, len(hist), min(max, 2*(len(hist)+len(p))))
		copy(grown, hist)
		hist = grown
	}
	return append(hist, p...)
}

// appendWriter is an io.Writer that appends to a slice.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// deflateTail ends every compressed message on the way in: the 4 bytes
// the sender removed (an empty stored block) and an empty final stored
// block, so that the decompressor reports io.EOF at the message's end
// instead of waiting for more.
var deflateTail = [...]byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

// Compressors are pooled per level (15-bit window) and per window size
// (smaller windows, where klauspost/compress has a dedicated encoder).
var (
	levelWriters  [10]sync.Pool
	windowWriters [16]sync.Pool
)

func getWriter(level, bits int) *flate.Writer {
	pool := &levelWriters[level]
	if bits < 15 {
		pool = &windowWriters[bits]
	}
	if w, ok := pool.Get().(*flate.Writer); ok {
		return w
	}
	var w *flate.Writer
	if bits < 15 {
		w, _ = flate.NewWriterWindow(nil, 1<<bits)
	} else {
		w, _ = flate.NewWriter(nil, level)
	}
	return w
}

func putWriter(w *flate.Writer, level, bits int) {
	// Drop the output and the dictionary: Reset alone keeps the last
	// connection's history alive in the pool.
	w.ResetDict(nil, nil)
	if bits < 15 {
		windowWriters[bits].Put(w)
	} else {
		levelWriters[level].Put(w)
	}
}

// inflater decompresses one message: a pooled flate reader over a pooled
// bufio.Reader over the message's raw payload and deflateTail.
type inflater struct {
	c    *Conn
	fr   io.ReadCloser
	br   *bufio.Reader
	tail int // bytes of deflateTail served
	done bool
}

var (
	flateReaders sync.Pool
	inflateBufs  = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}
)

// start prepares to inflate the message that begins.
func (in *inflater) start(c *Conn, dict []byte) {
	in.c, in.tail, in.done = c, 0, false
	in.br = inflateBufs.Get().(*bufio.Reader)
	in.br.Reset(in)
	if fr, ok := flateReaders.Get().(io.ReadCloser); ok {
		_ = fr.(flate.Resetter).Reset(in.br, dict)
		in.fr = fr
	} else {
		in.fr = flate.NewReaderDict(in.br, dict)
	}
}

// release returns the pooled parts; the next compressed message borrows
// them again.
func (in *inflater) release() {
	if in.fr != nil {
		_ = in.fr.(flate.Resetter).Reset(emptyReader{}, nil)
		flateReaders.Put(in.fr)
		in.fr = nil
	}
	if in.br != nil {
		in.br.Reset(nil)
		inflateBufs.Put(in.br)
		in.br = nil
	}
}

// Read serves the message's raw payload, then deflateTail. It is what the
// bufio.Reader under the decompressor reads.
func (in *inflater) Read(p []byte) (int, error) {
	if !in.done {
		n, err := in.c.readPayload(p)
		if err == io.EOF {
			in.done = true
			if n > 0 {
				return n, nil
			}
		} else {
			return n, err
		}
	}
	if in.tail == len(deflateTail) {
		return 0, io.EOF
	}
	n := copy(p, deflateTail[in.tail:])
	in.tail += n
	return n, nil
}

type emptyReader struct{}

func (emptyReader) Read([]byte) (int, error) { return 0, io.EOF }
func (emptyReader) ReadByte() (byte, error)  { return 0, io.EOF }
