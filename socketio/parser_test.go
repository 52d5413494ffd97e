package socketio

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// msg is one Engine.IO message fed to the decoder.
type msg struct {
	binary bool
	data   string
}

func txt(s string) msg { return msg{data: s} }
func bin(s string) msg { return msg{binary: true, data: s} }

// feed gives msgs to a decoder and returns the packets completed and the
// first error.
func feed(d *decoder, msgs ...msg) ([]*Packet, error) {
	var out []*Packet
	for _, m := range msgs {
		var p *Packet
		var err error
		if m.binary {
			p, err = d.decodeBinary([]byte(m.data))
		} else {
			p, err = d.decodeText([]byte(m.data))
		}
		if err != nil {
			return out, err
		}
		if p != nil {
			out = append(out, p)
		}
	}
	return out, nil
}

func pk(t PacketType, nsp string, id int64, data string, att ...string) *Packet {
	p := &Packet{Type: t, Namespace: nsp, ID: id}
	if data != "" {
		p.Data = json.RawMessage(data)
	}
	for _, a := range att {
		p.Attachments = append(p.Attachments, []byte(a))
	}
	if t.isBinary() && p.Attachments == nil && len(att) == 0 {
		p.Attachments = nil
	}
	return p
}

func samePacket(a, b *Packet) bool {
	if a.Type != b.Type || a.Namespace != b.Namespace || a.ID != b.ID || !bytes.Equal(a.Data, b.Data) ||
		(a.Data == nil) != (b.Data == nil) || len(a.Attachments) != len(b.Attachments) {
		return false
	}
	for i := range a.Attachments {
		if !bytes.Equal(a.Attachments[i], b.Attachments[i]) {
			return false
		}
	}
	return true
}

// fmtPackets shows packets as text plus attachments, for test messages.
func fmtPackets(ps ...*Packet) string {
	var out []string
	for _, p := range ps {
		out = append(out, fmtPacket(p))
	}
	return "[" + strings.Join(out, " ") + "]"
}

func fmtPacket(p *Packet) string {
	if p == nil {
		return "<nil>"
	}
	s := string(encodePacket(nil, p))
	for _, a := range p.Attachments {
		s += " +bin(" + string(a) + ")"
	}
	return s
}

func TestDecodeValid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   []msg
		want *Packet
	}{
		{"connect main", []msg{txt("0")}, pk(PacketConnect, "/", -1, "")},
		{"connect auth", []msg{txt(`0{"token":"123"}`)}, pk(PacketConnect, "/", -1, `{"token":"123"}`)},
		{"connect custom comma", []msg{txt("0/custom,")}, pk(PacketConnect, "/custom", -1, "")},
		{"connect custom auth", []msg{txt(`0/custom,{"token":"abc"}`)}, pk(PacketConnect, "/custom", -1, `{"token":"abc"}`)},
		{"connect custom no comma", []msg{txt("0/custom")}, pk(PacketConnect, "/custom", -1, "")},
		{"connect random no comma", []msg{txt("0/random")}, pk(PacketConnect, "/random", -1, "")},
		{"connect nsp eats brace without comma", []msg{txt(`0/custom{"a":1}`)}, pk(PacketConnect, `/custom{"a":1}`, -1, "")},
		{"connect explicit main", []msg{txt("0/,{}")}, pk(PacketConnect, "/", -1, "{}")},
		{"disconnect", []msg{txt("1")}, pk(PacketDisconnect, "/", -1, "")},
		{"disconnect custom no comma", []msg{txt("1/custom")}, pk(PacketDisconnect, "/custom", -1, "")},
		{"disconnect custom", []msg{txt("1/custom,")}, pk(PacketDisconnect, "/custom", -1, "")},
		{"event", []msg{txt(`2["chat",{"text":"hi"}]`)}, pk(PacketEvent, "/", -1, `["chat",{"text":"hi"}]`)},
		{"event id", []msg{txt(`212["a"]`)}, pk(PacketEvent, "/", 12, `["a"]`)},
		{"event nsp id", []msg{txt(`2/admin,456["project:delete",123]`)}, pk(PacketEvent, "/admin", 456, `["project:delete",123]`)},
		{"event numeric name", []msg{txt(`2[1,2]`)}, pk(PacketEvent, "/", -1, `[1,2]`)},
		{"event negative numeric name", []msg{txt(`2[-1.5e3]`)}, pk(PacketEvent, "/", -1, `[-1.5e3]`)},
		{"event trailing space trimmed", []msg{txt("2[\"a\"] \n")}, pk(PacketEvent, "/", -1, `["a"]`)},
		{"event reserved-like name", []msg{txt(`2["connected"]`)}, pk(PacketEvent, "/", -1, `["connected"]`)},
		{"event placeholder object is data", []msg{txt(`2["a",{"_placeholder":true,"num":9}]`)}, pk(PacketEvent, "/", -1, `["a",{"_placeholder":true,"num":9}]`)},
		{"ack", []msg{txt(`3456[1,"2",{"3":[false]}]`)}, pk(PacketAck, "/", 456, `[1,"2",{"3":[false]}]`)},
		{"ack empty", []msg{txt(`31[]`)}, pk(PacketAck, "/", 1, `[]`)},
		{"ack leading zeros", []msg{txt(`3007[]`)}, pk(PacketAck, "/", 7, `[]`)},
		{"ack id zero", []msg{txt(`30[]`)}, pk(PacketAck, "/", 0, `[]`)},
		{"connect error object", []msg{txt(`4{"message":"Invalid namespace"}`)}, pk(PacketConnectError, "/", -1, `{"message":"Invalid namespace"}`)},
		{"connect error nsp", []msg{txt(`4/random,{"message":"Invalid namespace"}`)}, pk(PacketConnectError, "/random", -1, `{"message":"Invalid namespace"}`)},
		{"connect error with id (42{} read as Socket.IO)", []msg{txt(`42{}`)}, pk(PacketConnectError, "/", 2, `{}`)},
		{"connect error string", []msg{txt(`4"nope"`)}, pk(PacketConnectError, "/", -1, `"nope"`)},
		{"binary event", []msg{txt(`52-["event",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`), bin("\x01\x02"), bin("\x03")},
			pk(PacketBinaryEvent, "/", -1, `["event",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`, "\x01\x02", "\x03")},
		{"binary event attachments in any order", []msg{txt(`52-["e",{"_placeholder":true,"num":1},{"_placeholder":true,"num":0}]`), bin("x"), bin("y")},
			pk(PacketBinaryEvent, "/", -1, `["e",{"_placeholder":true,"num":1},{"_placeholder":true,"num":0}]`, "x", "y")},
		{"binary event nested placeholder", []msg{txt(`51-["e",{"a":[{"_placeholder":true,"num":0}]}]`), bin("z")},
			pk(PacketBinaryEvent, "/", -1, `["e",{"a":[{"_placeholder":true,"num":0}]}]`, "z")},
		{"binary placeholder num 0.0", []msg{txt(`51-["e",{"_placeholder":true,"num":0.0}]`), bin("z")},
			pk(PacketBinaryEvent, "/", -1, `["e",{"_placeholder":true,"num":0.0}]`, "z")},
		{"binary placeholder false is data", []msg{txt(`51-["e",{"_placeholder":false,"num":7}]`), bin("z")},
			pk(PacketBinaryEvent, "/", -1, `["e",{"_placeholder":false,"num":7}]`, "z")},
		{"binary ack custom", []msg{txt(`62-/custom,789[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`), bin("a"), bin("b")},
			pk(PacketBinaryAck, "/custom", 789, `[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`, "a", "b")},
		{"binary ack main", []msg{txt(`61-789[{"_placeholder":true,"num":0}]`), bin("")},
			pk(PacketBinaryAck, "/", 789, `[{"_placeholder":true,"num":0}]`, "")},
		{"binary event zero attachments", []msg{txt(`50-["e"]`)}, pk(PacketBinaryEvent, "/", -1, `["e"]`)},
		{"escaped reserved name allowed when not reserved", []msg{txt(`2["\u0063onnected"]`)}, pk(PacketEvent, "/", -1, `["\u0063onnected"]`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := feed(newDecoder(parserLimits{}), tt.in...)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if len(got) != 1 || !samePacket(got[0], tt.want) {
				t.Fatalf("decoded %s, want %s", fmtPackets(got...), fmtPacket(tt.want))
			}
		})
	}
}

func TestDecodeMalformed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		in     []msg
		substr string // part of the error message
	}{
		{"empty", []msg{txt("")}, "empty packet"},
		{"unknown type letter (conformance 4abc)", []msg{txt("abc")}, "unknown packet type"},
		{"unknown type 7", []msg{txt("7")}, "unknown packet type"},
		{"connect error bad json", []msg{txt("4abc")}, "invalid JSON"},
		{"event object (conformance 42{})", []msg{txt("2{}")}, "event payload is not an array"},
		{"event bad id (conformance 42abc[...])", []msg{txt(`2abc["a"]`)}, "invalid JSON"},
		{"event trailing garbage", []msg{txt(`2["a"]garbage`)}, "data after the JSON value"},
		{"event missing payload", []msg{txt("2")}, "payload is missing"},
		{"event empty array", []msg{txt("2[]")}, "empty array"},
		{"event name object", []msg{txt(`2[{}]`)}, "not a string or a number"},
		{"event name null", []msg{txt(`2[null]`)}, "not a string or a number"},
		{"event name true", []msg{txt(`2[true]`)}, "not a string or a number"},
		{"event string payload", []msg{txt(`2"a"`)}, "not an array"},
		{"event leading space", []msg{txt(`2 ["a"]`)}, "whitespace"},
		{"event unterminated", []msg{txt(`2["a"`)}, "invalid JSON"},
		{"event trailing comma", []msg{txt(`2["a",]`)}, "invalid JSON"},
		{"event single quotes", []msg{txt(`2['a']`)}, "invalid JSON"},
		{"event bad escape", []msg{txt(`2["\x"]`)}, "invalid escape"},
		{"event control char", []msg{txt("2[\"a\x01\"]")}, "control character"},
		{"event bad number", []msg{txt(`2["a",01]`)}, "invalid JSON"},
		{"event bad literal", []msg{txt(`2["a",tru]`)}, "invalid literal"},
		{"event NaN", []msg{txt(`2["a",NaN]`)}, "invalid JSON"},
		{"two values", []msg{txt(`2["a"]["b"]`)}, "data after"},
		{"ack id overflow", []msg{txt(`399999999999999999999[]`)}, "overflows"},
		{"ack object", []msg{txt(`31{}`)}, "not an array"},
		{"ack missing payload", []msg{txt(`31`)}, "payload is missing"},
		{"connect array", []msg{txt(`0[]`)}, "not an object"},
		{"connect null", []msg{txt(`0null`)}, "not an object"},
		{"connect string", []msg{txt(`0"a"`)}, "not an object"},
		{"connect bad json", []msg{txt(`0{`)}, "invalid JSON"},
		{"disconnect payload", []msg{txt(`1{}`)}, "carries a payload"},
		{"connect error array", []msg{txt(`4[]`)}, "neither a string nor an object"},
		{"connect error number", []msg{txt(`41`)}, "payload is missing"},
		{"connect error missing", []msg{txt(`4`)}, "payload is missing"},
		{"binary no dash", []msg{txt(`52["a"]`)}, "attachment count"},
		{"binary no count", []msg{txt(`5-["a"]`)}, "attachment count"},
		{"binary count only", []msg{txt(`52`)}, "attachment count"},
		{"binary non-digit count", []msg{txt(`5x-["a"]`)}, "attachment count"},
		{"binary space count", []msg{txt(`5 1-["a"]`)}, "attachment count"},
		{"binary too many attachments", []msg{txt(`511-["a"]`)}, "more than 10 attachments"},
		{"binary huge count", []msg{txt(`599999999999999999999999-["a"]`)}, "more than 10 attachments"},
		{"placeholder out of range", []msg{txt(`51-["a",{"_placeholder":true,"num":1}]`)}, "not an attachment index"},
		{"placeholder negative", []msg{txt(`51-["a",{"_placeholder":true,"num":-1}]`)}, "not an attachment index"},
		{"placeholder fraction", []msg{txt(`52-["a",{"_placeholder":true,"num":0.5}]`)}, "not an attachment index"},
		{"placeholder string num", []msg{txt(`51-["a",{"_placeholder":true,"num":"0"}]`)}, "not an attachment index"},
		{"placeholder no num", []msg{txt(`51-["a",{"_placeholder":true}]`)}, "has no num"},
		{"placeholder with zero attachments", []msg{txt(`50-["a",{"_placeholder":true,"num":0}]`)}, "not an attachment index"},
		{"placeholder escaped key", []msg{txt(`51-["a",{"\u005fplaceholder":true,"num":3}]`)}, "not an attachment index"},
		{"placeholder last key wins", []msg{txt(`51-["a",{"_placeholder":false,"_placeholder":true,"num":3}]`)}, "not an attachment index"},
		{"binary event bad payload", []msg{txt(`51-{}`)}, "not an array"},
		{"binary with no pending packet", []msg{bin("x")}, "no BINARY_EVENT or BINARY_ACK packet expecting it"},
		{"binary after complete packet", []msg{txt(`51-["a",{"_placeholder":true,"num":0}]`), bin("x"), bin("y")}, "no BINARY_EVENT"},
		{"text while attachments pending", []msg{txt(`52-["a"]`), bin("x"), txt(`2["b"]`)}, "1 binary attachment(s) of a BINARY_EVENT"},
		{"reserved connect", []msg{txt(`2["connect"]`)}, "reserved"},
		{"reserved connect_error", []msg{txt(`2["connect_error"]`)}, "reserved"},
		{"reserved disconnect", []msg{txt(`2/custom,["disconnect"]`)}, "reserved"},
		{"reserved disconnecting", []msg{txt(`2["disconnecting"]`)}, "reserved"},
		{"reserved newListener", []msg{txt(`2["newListener"]`)}, "reserved"},
		{"reserved removeListener", []msg{txt(`51-["removeListener",{"_placeholder":true,"num":0}]`)}, "reserved"},
		{"reserved escaped", []msg{txt(`2["\u0063onnect"]`)}, "reserved"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := feed(newDecoder(parserLimits{}), tt.in...)
			if err == nil {
				t.Fatalf("decoded %s, want an error containing %q", fmtPackets(got...), tt.substr)
			}
			if !errors.Is(err, ErrMalformedPacket) {
				t.Errorf("error %v does not wrap ErrMalformedPacket", err)
			}
			if !strings.HasPrefix(err.Error(), "socketio: malformed packet: ") || !strings.Contains(err.Error(), tt.substr) {
				t.Errorf("error %q, want one containing %q", err, tt.substr)
			}
		})
	}
}

func TestDecodeErrorMessage(t *testing.T) {
	t.Parallel()
	_, err := newDecoder(parserLimits{}).decodeText([]byte("2{}"))
	if got, want := err.Error(), "socketio: malformed packet: event payload is not an array"; got != want {
		t.Errorf("error %q, want %q", got, want)
	}
}

func TestDecoderRecovers(t *testing.T) {
	t.Parallel()
	d := newDecoder(parserLimits{})
	// A text message while attachments are pending is an error and drops
	// the pending packet.
	if _, err := feed(d, txt(`51-["a",{"_placeholder":true,"num":0}]`), txt(`2["b"]`)); err == nil {
		t.Fatal("no error for text while an attachment was pending")
	}
	if got, err := feed(d, txt(`2["c"]`)); err != nil || len(got) != 1 {
		t.Fatalf("after the error: %s, %v", fmtPackets(got...), err)
	}
	// reset drops a half-assembled packet.
	if _, err := feed(d, txt(`51-["a",{"_placeholder":true,"num":0}]`)); err != nil {
		t.Fatal(err)
	}
	d.reset()
	if _, err := d.decodeBinary([]byte("x")); err == nil {
		t.Fatal("attachment accepted after reset")
	}
}

func TestDecoderCopies(t *testing.T) {
	t.Parallel()
	d := newDecoder(parserLimits{})
	text := []byte(`51-/nsp,["a",{"_placeholder":true,"num":0}]`)
	if p, err := d.decodeText(text); p != nil || err != nil {
		t.Fatal(fmtPacket(p), err)
	}
	att := []byte("attachment")
	p, err := d.decodeBinary(att)
	if err != nil {
		t.Fatal(err)
	}
	for i := range text {
		text[i] = 'X'
	}
	for i := range att {
		att[i] = 'X'
	}
	want := pk(PacketBinaryEvent, "/nsp", -1, `["a",{"_placeholder":true,"num":0}]`, "attachment")
	if !samePacket(p, want) {
		t.Fatalf("packet changed with the caller's buffers: %s", fmtPacket(p))
	}
}

func TestDecodeLimits(t *testing.T) {
	t.Parallel()
	deep := func(n int) string {
		return `2["a",` + strings.Repeat("[", n-1) + strings.Repeat("]", n-1) + "]"
	}
	tests := []struct {
		name   string
		limits parserLimits
		in     string
		ok     bool
	}{
		{"depth 32 ok", parserLimits{}, deep(32), true},
		{"depth 33 refused", parserLimits{}, deep(33), false},
		{"depth object", parserLimits{MaxDepth: 2}, `2["a",{"b":{}}]`, false},
		{"depth custom", parserLimits{MaxDepth: 3}, deep(3), true},
		{"depth huge no overflow", parserLimits{MaxDepth: -1}, deep(1e5), false},
		{"depth unlimited up to 10000", parserLimits{MaxDepth: -1}, deep(10000), true},
		{"size ok", parserLimits{MaxPacketSize: 10}, `2["abcde"]`, true},
		{"size over", parserLimits{MaxPacketSize: 10}, `2["abcdef"]`, false},
		{"size default", parserLimits{}, `2["` + strings.Repeat("a", 1e6) + `"]`, false},
		{"size unlimited", parserLimits{MaxPacketSize: -1}, `2["` + strings.Repeat("a", 1e6) + `"]`, true},
		{"attachments at limit", parserLimits{MaxAttachments: 2}, `52-["a"]`, true},
		{"attachments over limit", parserLimits{MaxAttachments: 2}, `53-["a"]`, false},
		{"attachments unlimited", parserLimits{MaxAttachments: -1}, `5100-["a"]`, true},
		{"attachments default limit", parserLimits{}, `510-["a"]`, true},
		{"attachments unlimited overflow", parserLimits{MaxAttachments: -1}, `59999999999999999999999-["a"]`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := newDecoder(tt.limits).decodeText([]byte(tt.in))
			if tt.ok && err != nil {
				t.Fatalf("error %v", err)
			}
			if !tt.ok && !errors.Is(err, ErrMalformedPacket) {
				t.Fatalf("error %v, want ErrMalformedPacket", err)
			}
		})
	}
}

func TestEncodePacket(t *testing.T) {
	t.Parallel()
	tests := []struct {
		p    *Packet
		want string
	}{
		{pk(PacketConnect, "/", -1, `{"sid":"x"}`), `0{"sid":"x"}`},
		{pk(PacketConnect, "/custom", -1, `{"sid":"x"}`), `0/custom,{"sid":"x"}`},
		{pk(PacketConnect, "", -1, ""), `0`},
		{pk(PacketDisconnect, "/custom", -1, ""), `1/custom,`},
		{pk(PacketEvent, "/", -1, `["auth",{}]`), `2["auth",{}]`},
		{pk(PacketEvent, "/admin", 12, `["a"]`), `2/admin,12["a"]`},
		{pk(PacketAck, "/", 456, `[1,"2",{"3":[false]}]`), `3456[1,"2",{"3":[false]}]`},
		{pk(PacketAck, "/", 0, `[]`), `30[]`},
		{pk(PacketConnectError, "/random", -1, `{"message":"Invalid namespace"}`), `4/random,{"message":"Invalid namespace"}`},
		{pk(PacketBinaryEvent, "/", -1, `["event",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`, "a", "b"),
			`52-["event",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`},
		{pk(PacketBinaryAck, "/custom", 789, `[{"_placeholder":true,"num":0}]`, "a"), `61-/custom,789[{"_placeholder":true,"num":0}]`},
		{pk(PacketBinaryAck, "/", 789, `[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`, "a", "b"),
			`62-789[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`},
		{pk(PacketBinaryEvent, "/", -1, `["e"]`), `50-["e"]`},
	}
	for _, tt := range tests {
		if got := string(encodePacket([]byte("4"), tt.p)); got != "4"+tt.want {
			t.Errorf("encodePacket(%+v) = %q, want %q", *tt.p, got, "4"+tt.want)
		}
		if tt.p.Namespace == "" {
			continue
		}
		// And back.
		got, err := feedPacket(newDecoder(parserLimits{}), []byte(tt.want), tt.p.Attachments)
		if err != nil || !samePacket(got, tt.p) {
			t.Errorf("decode(%q) = %s, %v; want %s", tt.want, fmtPacket(got), err, fmtPacket(tt.p))
		}
	}
}

// feedPacket decodes text and its attachments as one packet.
func feedPacket(d *decoder, text []byte, attachments [][]byte) (*Packet, error) {
	p, err := d.decodeText(text)
	for _, a := range attachments {
		if err != nil || p != nil {
			break
		}
		p, err = d.decodeBinary(a)
	}
	if err == nil && p == nil {
		return nil, errors.New("packet incomplete")
	}
	return p, err
}

func TestRoundTripWithArgs(t *testing.T) {
	t.Parallel()
	data, att, err := encodeArgs(nil, []any{"event", []byte{1, 2}, map[string]any{"b": []byte{3}, "s": "<&>"}})
	if err != nil {
		t.Fatal(err)
	}
	p := &Packet{Type: PacketBinaryEvent, Namespace: "/custom", ID: 7, Data: data, Attachments: att}
	text := encodePacket(nil, p)
	want := `52-/custom,7["event",{"_placeholder":true,"num":0},{"b":{"_placeholder":true,"num":1},"s":"<&>"}]`
	if string(text) != want {
		t.Fatalf("encoded %s, want %s", text, want)
	}
	got, err := feedPacket(newDecoder(parserLimits{}), text, att)
	if err != nil || !samePacket(got, p) {
		t.Fatalf("decoded %s, %v", fmtPacket(got), err)
	}
	name, args, err := eventName(got.Data)
	if err != nil || name != "event" || len(args) != 2 {
		t.Fatalf("eventName: %q %s %v", name, args, err)
	}
	var b []byte
	var m map[string]any
	if err := decodeArg(args[0], got.Attachments, &b); err != nil || !bytes.Equal(b, []byte{1, 2}) {
		t.Fatalf("arg 0: %v %v", b, err)
	}
	if err := decodeArg(args[1], got.Attachments, &m); err != nil || !reflect.DeepEqual(m, map[string]any{"b": []byte{3}, "s": "<&>"}) {
		t.Fatalf("arg 1: %v %v", m, err)
	}
}

func TestPacketTypeString(t *testing.T) {
	t.Parallel()
	want := []string{"CONNECT", "DISCONNECT", "EVENT", "ACK", "CONNECT_ERROR", "BINARY_EVENT", "BINARY_ACK", "PacketType(7)"}
	for i, w := range want {
		if got := PacketType(i).String(); got != w {
			t.Errorf("PacketType(%d).String() = %q, want %q", i, got, w)
		}
	}
}

func TestScannerMatchesJSONValid(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		`1`, `-0`, `-`, `01`, `1.`, `1.5e`, `1e+5`, `1E-5`, `.5`, `"\u12"`, `"\u12ab"`, `"\/"`, `[1,]`, `{"a":1,}`,
		`{"a" 1}`, `{1:1}`, `[[[]]]`, `"` + "\x7f\xff" + `"`, ` [ 1 , { "a" : null } ] `, `tru`, `truee`, `nul`, `[`, `]`, `{`, ``,
	} {
		sc := jsonScanner{data: []byte(s)}
		got := sc.scanAll() == nil
		if want := json.Valid([]byte(s)); got != want {
			t.Errorf("scan(%q) valid = %v, json.Valid = %v", s, got, want)
		}
	}
}

var benchEvent = []byte(`42["chat",{"text":"hi"}]`)[1:]

func BenchmarkDecodeEvent(b *testing.B) {
	d := newDecoder(parserLimits{})
	b.ReportAllocs()
	b.SetBytes(int64(len(benchEvent)))
	for b.Loop() {
		if _, err := d.decodeText(benchEvent); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeEventArgs(b *testing.B) {
	d := newDecoder(parserLimits{})
	var args []json.RawMessage
	b.ReportAllocs()
	for b.Loop() {
		p, err := d.decodeText(benchEvent)
		if err != nil {
			b.Fatal(err)
		}
		args, err = appendArgs(args[:0], p.Data)
		if err != nil {
			b.Fatal(err)
		}
		var m struct {
			Text string `json:"text"`
		}
		if err := decodeArg(args[1], p.Attachments, &m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeEvent(b *testing.B) {
	p := &Packet{Type: PacketEvent, Namespace: "/", ID: -1, Data: json.RawMessage(`["chat",{"text":"hi"}]`)}
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		buf = encodePacket(buf[:0], p)
	}
}

func BenchmarkEncodeEventArgs(b *testing.B) {
	type chat struct {
		Text string `json:"text"`
	}
	args := []any{"chat", chat{Text: "hi"}}
	var data, buf []byte
	b.ReportAllocs()
	for b.Loop() {
		var err error
		data, _, err = encodeArgs(data[:0], args)
		if err != nil {
			b.Fatal(err)
		}
		p := Packet{Type: PacketEvent, Namespace: "/", ID: -1, Data: data}
		buf = encodePacket(buf[:0], &p)
	}
}

// TestConformanceEcho replays the socket.io-protocol suite's echo tests:
// decode the client's packet, relay its arguments (as rawArg, and decoded
// into any), and compare the reply text byte for byte.
func TestConformanceEcho(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   []msg
		ack  bool // answer with an ACK instead of a message-back EVENT
		want string
	}{
		{[]msg{txt(`2["message","message to main namespace"]`)}, false, `2["message-back","message to main namespace"]`},
		{[]msg{txt(`2["message",1,"2",{"3":[true]}]`)}, false, `2["message-back",1,"2",{"3":[true]}]`},
		{[]msg{txt(`52-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`), bin("\x01\x02\x03"), bin("\x04\x05\x06")},
			false, `52-["message-back",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`},
		{[]msg{txt(`2456["message-with-ack",1,"2",{"3":[false]}]`)}, true, `3456[1,"2",{"3":[false]}]`},
		{[]msg{txt(`52-789["message-with-ack",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`), bin("\x01\x02\x03"), bin("\x04\x05\x06")},
			true, `62-789[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`},
	}
	for _, tt := range tests {
		got, err := feed(newDecoder(parserLimits{}), tt.in...)
		if err != nil || len(got) != 1 {
			t.Fatalf("decode %+v: %v", tt.in, err)
		}
		p := got[0]
		_, args, err := eventName(p.Data)
		if err != nil {
			t.Fatal(err)
		}
		for _, mode := range []string{"raw", "any"} {
			var out []any
			if !tt.ack {
				out = append(out, "message-back")
			}
			for _, a := range args {
				if mode == "raw" {
					out = append(out, rawArg{Raw: a, Attachments: p.Attachments})
					continue
				}
				var v any
				if err := decodeArg(a, p.Attachments, &v); err != nil {
					t.Fatal(err)
				}
				out = append(out, v)
			}
			data, att, err := encodeArgs(nil, out)
			if err != nil {
				t.Fatal(err)
			}
			reply := &Packet{Type: PacketEvent, Namespace: "/", ID: -1, Data: data, Attachments: att}
			if tt.ack {
				reply.Type, reply.ID = PacketAck, p.ID
			}
			if len(att) > 0 {
				reply.Type += PacketBinaryEvent - PacketEvent
			}
			if s := string(encodePacket(nil, reply)); s != tt.want {
				t.Errorf("%s: reply %s, want %s", mode, s, tt.want)
			}
			for i := range att {
				if !bytes.Equal(att[i], p.Attachments[i]) {
					t.Errorf("%s: attachment %d = %q, want %q", mode, i, att[i], p.Attachments[i])
				}
			}
		}
	}
}
