package thirdparty

import (
	"bytes"
	"fmt"
	"testing"
	_ "unsafe" // for go:linkname

	_ "github.com/gorilla/websocket" // maskBytes lives there
)

// gorillaMaskBytes is gorilla's unexported masking loop (mask.go: unsafe
// word-at-a-time after aligning to a word). A pull linkname to a non-std
// package is still allowed by the Go 1.23+ linker; if a gorilla release
// renames the function, this file fails to link and the measure has to go
// through client writes (BenchmarkWrite/side=client) instead.
//
//go:linkname gorillaMaskBytes github.com/gorilla/websocket.maskBytes
func gorillaMaskBytes(key [4]byte, pos int, b []byte) int

// maskSizes are the payload sizes of the masking benchmarks, the same as
// in ws/bench_test.go.
var maskSizes = []int{8, 16, 64, 512, 4096, 65536}

// naiveMask is the byte loop of RFC 6455 §5.3: the baseline that lines
// up this run with the ws package's run (impl=naive in both).
func naiveMask(b []byte, key [4]byte, pos int) int {
	for i := range b {
		b[i] ^= key[pos&3]
		pos++
	}
	return pos & 3
}

// BenchmarkMask masks a buffer in place per op. Duplex's own mask is
// measured in ws/bench_test.go (it is unexported); BENCH.md merges both runs.
func BenchmarkMask(b *testing.B) {
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	for _, n := range maskSizes {
		buf := binaryPayload(n)
		b.Run(fmt.Sprintf("size=%d/impl=naive", n), func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				naiveMask(buf, key, 0)
			}
		})
		b.Run(fmt.Sprintf("size=%d/impl=gorilla", n), func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				gorillaMaskBytes(key, 0, buf)
			}
		})
	}
}

func TestGorillaMask(t *testing.T) {
	t.Parallel()
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	for _, n := range append([]int{0, 1, 7, 15, 17}, maskSizes...) {
		for _, off := range []int{0, 1, 3} {
			want := binaryPayload(n + off)[off:]
			got := bytes.Clone(want)
			wpos := naiveMask(want, key, off)
			gpos := gorillaMaskBytes(key, off, got)
			if !bytes.Equal(got, want) || gpos != wpos {
				t.Errorf("n=%d off=%d: gorilla differs from the byte loop (pos %d, want %d)", n, off, gpos, wpos)
			}
		}
	}
}
