package thirdparty

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"unicode/utf8"
)

// The sizes every frame benchmark runs at: a small event, a typical JSON
// message, a large one that spans many buffer-fulls.
var sizes = []struct {
	name string
	n    int
}{{"16B", 16}, {"1KiB", 1 << 10}, {"64KiB", 64 << 10}}

// sampleJSON is a feed of chat-like events, mostly ASCII with some names
// and messages in other scripts, as real traffic carries: the text payload
// of the benchmarks. It is generated, not embedded, so the same recipe can
// live in ws/bench_test.go without a shared testdata file.
var sampleJSON = func() []byte {
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

// textPayload returns n bytes of valid UTF-8 cut from sampleJSON, padded
// with spaces where the cut would split a character.
func textPayload(n int) []byte {
	p := make([]byte, 0, n)
	for len(p) < n {
		p = append(p, sampleJSON...)
	}
	p = p[:n]
	cut := n
	for !utf8.Valid(p[:cut]) {
		cut--
	}
	for i := cut; i < n; i++ {
		p[i] = ' '
	}
	return p
}

// binaryPayload returns n pseudo-random bytes.
func binaryPayload(n int) []byte {
	p := make([]byte, n)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range p {
		p[i] = byte(rng.Uint32())
	}
	return p
}
