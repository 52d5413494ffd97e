package ws

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

// Benchmarks of the hot-path internals. The frame-level comparison with
// gorilla/websocket lives in the internal/thirdparty module; its BENCH.md
// merges these results (impl=naive is in both runs, as a yardstick).

// maskSizes are the payload sizes of BenchmarkMask, the same as in
// internal/thirdparty/mask_test.go.
var maskSizes = []int{8, 16, 64, 512, 4096, 65536}

var benchKey = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// naiveMask is the byte loop of RFC 6455 §5.3.
func naiveMask(b []byte, key [4]byte, pos int) int {
	for i := range b {
		b[i] ^= key[pos&3]
		pos++
	}
	return pos & 3
}

func BenchmarkMask(b *testing.B) {
	key := binary.LittleEndian.Uint32(benchKey[:])
	for _, n := range maskSizes {
		buf := benchBinary(n)
		b.Run(fmt.Sprintf("size=%d/impl=naive", n), func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				naiveMask(buf, benchKey, 0)
			}
		})
		b.Run(fmt.Sprintf("size=%d/impl=duplex", n), func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				mask(buf, key)
			}
		})
	}
}

// TestMaskMatchesNaive keeps BenchmarkMask honest: mask, in one piece or
// in pieces, gives the bytes of the byte loop.
func TestMaskMatchesNaive(t *testing.T) {
	t.Parallel()
	key := binary.LittleEndian.Uint32(benchKey[:])
	for _, n := range append([]int{0, 1, 7, 9, 63, 65, 100}, maskSizes...) {
		want := benchBinary(n)
		got := bytes.Clone(want)
		naiveMask(want, benchKey, 0)
		k := key
		for p := got; len(p) > 0; {
			step := min(len(p), 1+len(p)/3)
			k = mask(p[:step], k)
			p = p[step:]
		}
		if !bytes.Equal(got, want) {
			t.Errorf("n=%d: mask differs from the byte loop", n)
		}
	}
}

// BenchmarkUTF8 checks 64 KiB of text per op, whole or fed in 1 KiB
// chunks (as frames read in pieces are), with utf8Validator and with
// unicode/utf8.Valid. The validator gets exact 1 KiB chunks, splitting
// characters; Valid, which cannot carry a split character over, gets
// chunks cut back to character boundaries.
func BenchmarkUTF8(b *testing.B) {
	const n = 64 << 10
	texts := []struct {
		name string
		p    []byte
	}{
		{"ascii", benchASCII(n)},
		{"json", benchText(n)},
		{"multibyte", benchMultibyte(n)},
	}
	for _, tx := range texts {
		if !utf8.Valid(tx.p) {
			b.Fatalf("%s: sample is not valid UTF-8", tx.name)
		}
		for _, chunk := range []struct {
			name string
			n    int
		}{{"whole", n}, {"1KiB", 1 << 10}} {
			name := fmt.Sprintf("text=%s/chunk=%s", tx.name, chunk.name)
			b.Run(name+"/impl=duplex", func(b *testing.B) {
				b.SetBytes(int64(len(tx.p)))
				b.ReportAllocs()
				for b.Loop() {
					var v utf8Validator
					for p := tx.p; len(p) > 0; p = p[min(chunk.n, len(p)):] {
						if !v.valid(p[:min(chunk.n, len(p))]) {
							b.Fatal("invalid")
						}
					}
					if !v.complete() {
						b.Fatal("incomplete")
					}
				}
			})
			chunks := runeChunks(tx.p, chunk.n)
			b.Run(name+"/impl=std", func(b *testing.B) {
				b.SetBytes(int64(len(tx.p)))
				b.ReportAllocs()
				for b.Loop() {
					for _, p := range chunks {
						if !utf8.Valid(p) {
							b.Fatal("invalid")
						}
					}
				}
			})
		}
	}
}

// runeChunks cuts p into pieces of at most n bytes that end on character
// boundaries, so that utf8.Valid checks all of each: cut anywhere, it would
// stop early at the first split character.
func runeChunks(p []byte, n int) [][]byte {
	var chunks [][]byte
	for len(p) > 0 {
		k := min(n, len(p))
		for k < len(p) && !utf8.RuneStart(p[k]) {
			k--
		}
		chunks = append(chunks, p[:k])
		p = p[k:]
	}
	return chunks
}

// benchBinary returns n pseudo-random bytes.
func benchBinary(n int) []byte {
	p := make([]byte, n)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range p {
		p[i] = byte(rng.Uint32())
	}
	return p
}

func benchASCII(n int) []byte {
	p := benchText(n)
	for i, c := range p {
		if c >= 0x80 {
			p[i] = '?'
		}
	}
	return p
}

// benchMultibyte returns n bytes of text in scripts of 2, 3 and 4 bytes a
// character, with the spaces and punctuation such text has.
func benchMultibyte(n int) []byte {
	const s = "Съешь же ещё этих мягких французских булок. 東京都の天気は晴れのち曇りです。" +
		"Γαζέες καὶ μυρτιὲς δὲν θὰ βρῶ πιά. 🚀🎉 한국어 문장도 있습니다. "
	return fitText([]byte(strings.Repeat(s, n/len(s)+1)), n)
}

// benchText returns n bytes cut from a JSON feed of chat events, mostly
// ASCII with some names and messages in other scripts: the same recipe as
// the text payloads of internal/thirdparty.
func benchText(n int) []byte {
	p := make([]byte, 0, n)
	for len(p) < n {
		p = append(p, benchJSON...)
	}
	return fitText(p, n)
}

// fitText cuts p to n bytes, replacing a character split by the cut with
// spaces.
func fitText(p []byte, n int) []byte {
	p = p[:n:n]
	cut := n
	for !utf8.Valid(p[:cut]) {
		cut--
	}
	for i := cut; i < n; i++ {
		p[i] = ' '
	}
	return p
}

var benchJSON = func() []byte {
	type user struct {
		ID    int    `json:"id"`
		Login string `json:"login"`
		Name  string `json:"name"`
	}
	type event struct {
		ID        string   `json:"id"`
		Type      string   `json:"type"`
		Room      string   `json:"room"`
		User      user     `json:"user"`
		Text      string   `json:"text"`
		Tags      []string `json:"tags"`
		CreatedAt string   `json:"created_at"`
		Seq       int      `json:"seq"`
	}
	names := []string{"Alice Martin", "Bob Chen", "Zoë Dubois", "José Álvarez", "Łukasz Nowak", "李雷", "Ingrid Müller", "Sam O'Neil"}
	texts := []string{
		"deploy finished on staging, all checks green",
		"can someone review PR 4182? it touches the reconnect logic",
		"lunch at 12:30 — the usual place?",
		"see https://example.com/docs/ws#close-codes for the close codes",
		"merci, ça marche maintenant 👍",
		"ok",
		"the p99 went from 41ms to 18ms after the pool change",
		"東京のサーバーは再起動しました",
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var events []event
	for i := 0; len(events) < 400; i++ {
		u := rng.IntN(len(names))
		events = append(events, event{
			ID:        fmt.Sprintf("evt_%08x", rng.Uint32()),
			Type:      "message",
			Room:      fmt.Sprintf("room-%d", rng.IntN(50)),
			User:      user{ID: 1000 + u, Login: fmt.Sprintf("user%d", u), Name: names[u]},
			Text:      texts[rng.IntN(len(texts))],
			Tags:      []string{"chat", "v2"},
			CreatedAt: fmt.Sprintf("2026-10-%02dT%02d:%02d:%02dZ", 1+i%28, i%24, i%60, (i*7)%60),
			Seq:       i,
		})
	}
	b, err := json.Marshal(events)
	if err != nil {
		panic(err)
	}
	return b
}()
