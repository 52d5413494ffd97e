package ws

import (
	"bytes"
	"net"
	"testing"
)

// TestOwedFrame: after a writev cut short at any byte, the owed bytes are
// the rest of the frame it was cut in (or of the earlier owed bytes).
func TestOwedFrame(t *testing.T) {
	for _, withOwed := range []bool{false, true} {
		var parts [][]byte
		var frameOf []int // for each part, the frame it belongs to
		if withOwed {
			parts = append(parts, []byte("OOO"))
			frameOf = append(frameOf, 0)
		}
		for f := 1; f <= 3; f++ {
			parts = append(parts, bytes.Repeat([]byte{'h'}, f+1), bytes.Repeat([]byte{byte('0' + f)}, 3*f))
			frameOf = append(frameOf, f, f)
		}
		var flat []byte
		var owner []int // frame of each byte
		for i, p := range parts {
			flat = append(flat, p...)
			for range p {
				owner = append(owner, frameOf[i])
			}
		}
		for n := range len(flat) {
			// What net.Buffers.WriteTo leaves after writing n bytes.
			all := net.Buffers(append([][]byte(nil), parts...))
			rest := all
			for m := n; m > 0; {
				if m >= len(rest[0]) {
					m -= len(rest[0])
					rest = rest[1:]
					continue
				}
				rest[0] = rest[0][m:]
				m = 0
			}
			var want []byte
			for i := n; i < len(flat) && owner[i] == owner[n]; i++ {
				want = append(want, flat[i])
			}
			if got := owedFrame(rest, all); !bytes.Equal(got, want) {
				t.Errorf("owed=%v, cut at %d: owed %q, want %q", withOwed, n, got, want)
			}
		}
	}
}
