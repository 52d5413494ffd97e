package redis

import (
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/duplexrt/duplex/socketio"
	"github.com/google/go-cmp/cmp"
)

// notepackBroadcast is what @socket.io/redis-adapter 8.3 (notepack.io
// 3.0.1) publishes for
//
//	["abc", {type: 2, data: ["ev", 1, -3, 300, 1.5, "é", Buffer.from([1, 2]),
//	        {a: null, b: true, c: []}], nsp: "/"},
//	 {rooms: ["r"], except: ["x"], flags: {}}]
const notepackBroadcast = "93a361626383a47479706502a46461746198a2657601fdcd012ccb3ff8000000000000a2c3a9c402010283a161c0a162c3a16390a36e7370a12f83a5726f6f6d7391a172a665786365707491a178a5666c61677380"

const broadcastData = `["ev",1,-3,300,1.5,"é",{"_placeholder":true,"num":0},{"a":null,"b":true,"c":[]}]`

func TestEncodeBroadcastAsNotepack(t *testing.T) {
	p := &socketio.Packet{Type: socketio.PacketBinaryEvent, Namespace: "/", ID: -1, Data: json.RawMessage(broadcastData), Attachments: [][]byte{{1, 2}}}
	b, err := encodeBroadcast("abc", p, "/", &socketio.BroadcastOptions{Rooms: []string{"r"}, Except: []string{"x"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(b); got != notepackBroadcast {
		t.Errorf("encoded\n%s\nnotepack.io\n%s", got, notepackBroadcast)
	}
}

func TestDecodeNotepackBroadcast(t *testing.T) {
	b, _ := hex.DecodeString(notepackBroadcast)
	var att [][]byte
	text, rest, err := msgpackToJSON(nil, b, &att)
	if err != nil || len(rest) != 0 {
		t.Fatal(err, rest)
	}
	want := `["abc",{"type":2,"data":` + broadcastData + `,"nsp":"/"},{"rooms":["r"],"except":["x"],"flags":{}}]`
	if d := cmp.Diff(want, string(text)); d != "" {
		t.Errorf("JSON (-want +got):\n%s", d)
	}
	if d := cmp.Diff([][]byte{{1, 2}}, att); d != "" {
		t.Errorf("attachments (-want +got):\n%s", d)
	}
}

func TestTranscodeRoundTrip(t *testing.T) {
	for _, tc := range []struct{ in, out string }{
		{`[]`, ""},
		{`{}`, ""},
		{`[1e300,-1e-7,0.1,123456789012345678,-9007199254740993]`, `[1e+300,-1e-7,0.1,123456789012345678,-9007199254740993]`},
		{`[2.0,1e3]`, `[2,1000]`},
		{`"\u0000\"\\\n\u2028😀"`, `"\u0000\"\\\n` + "\u2028😀" + `"`},
		{`{"z":1,"a":{"_placeholder":true,"num":1},"m":[{"_placeholder":true,"num":0}]}`, ""},
		{`{"_placeholder":true,"num":5}`, ""}, // no attachment 5: an object
		{`{"_placeholder":true,"num":0,"x":1}`, ""},
	} {
		att := [][]byte{{0}, {1, 1}}
		b, err := appendMsgpackFromJSON(nil, json.RawMessage(tc.in), att)
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		var got [][]byte
		text, _, err := msgpackToJSON(nil, b, &got)
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		want := tc.out
		if want == "" {
			want = tc.in
		}
		// Attachments come back numbered in the order met.
		if strings.Contains(tc.in, `"num":1},"m"`) {
			want = strings.Replace(strings.Replace(want, `"num":1}`, `"num":X}`, 1), `"num":0}`, `"num":1}`, 1)
			want = strings.Replace(want, `"num":X}`, `"num":0}`, 1)
		}
		if string(text) != want {
			t.Errorf("%s: got %s, want %s", tc.in, text, want)
		}
	}
}

func TestMalformedMsgpack(t *testing.T) {
	for _, in := range []string{
		"", "\xc1", "\x91", "\xdd\xff\xff\xff\xff", "\xdf\xff\xff\xff\xff", "\x81\x91\x00\x00",
		strings.Repeat("\x91", 200) + "\x00", "\xc4\x05ab", "\xa5abc",
	} {
		var att [][]byte
		if _, _, err := msgpackToJSON(nil, []byte(in), &att); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}

func FuzzMsgpackToJSON(f *testing.F) {
	b, _ := hex.DecodeString(notepackBroadcast)
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		var att [][]byte
		text, _, err := msgpackToJSON(nil, b, &att)
		if err != nil {
			return
		}
		if !json.Valid(text) {
			t.Fatalf("invalid JSON %q", text)
		}
		if _, err := appendMsgpackFromJSON(nil, text, att); err != nil {
			t.Fatal(err)
		}
	})
}
