package socketio

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

// The seed corpora are in testdata/fuzz/<FuzzName>/: the conformance
// suite's packets, each valid form of every packet type, and the malformed
// ones of TestDecodeMalformed.

// FuzzDecodePacket feeds a text message, its attachments (bins cut into
// parts pieces) and a second text message to one decoder. It must never
// panic, every error must wrap ErrMalformedPacket, and every packet decoded
// must encode to text that decodes to the same packet.
func FuzzDecodePacket(f *testing.F) {
	f.Add([]byte(`52-["event",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`), []byte("ab"), uint8(2), []byte(`2["chat",{"text":"hi"}]`))
	f.Fuzz(func(t *testing.T, text, bins []byte, parts uint8, next []byte) {
		limits := parserLimits{MaxPacketSize: 1 << 16}
		d := newDecoder(limits)
		var msgs []msg
		msgs = append(msgs, msg{data: string(text)})
		n := int(parts % 12)
		for i := range n {
			msgs = append(msgs, msg{binary: true, data: string(bins[i*len(bins)/n : (i+1)*len(bins)/n])})
		}
		msgs = append(msgs, msg{data: string(next)})
		for _, m := range msgs {
			var p *Packet
			var err error
			if m.binary {
				p, err = d.decodeBinary([]byte(m.data))
			} else {
				p, err = d.decodeText([]byte(m.data))
			}
			if err != nil {
				if !errors.Is(err, ErrMalformedPacket) {
					t.Fatalf("error %v does not wrap ErrMalformedPacket", err)
				}
				continue
			}
			if p != nil {
				checkPacket(t, limits, p)
			}
		}
	})
}

func checkPacket(t *testing.T, limits parserLimits, p *Packet) {
	t.Helper()
	if p.Data != nil && !json.Valid(p.Data) {
		t.Fatalf("decoded invalid JSON %q", p.Data)
	}
	if p.Namespace == "" || p.Namespace[0] != '/' {
		t.Fatalf("namespace %q", p.Namespace)
	}
	text := encodePacket(nil, p)
	again, err := feedPacket(newDecoder(limits), text, p.Attachments)
	if err != nil {
		t.Fatalf("re-encoded %q does not decode: %v", text, err)
	}
	if !samePacket(again, p) {
		t.Fatalf("re-encoded %q decodes to %s, want %s", text, fmtPacket(again), fmtPacket(p))
	}
	switch p.Type {
	case PacketEvent, PacketBinaryEvent:
		name, args, err := eventName(p.Data)
		if err != nil {
			t.Fatalf("eventName(%s): %v", p.Data, err)
		}
		if first, _ := splitArgs(p.Data); name == "" && first[0][0] != '"' {
			t.Fatalf("numeric event name of %s is empty", p.Data)
		}
		for _, a := range args {
			var v any
			_ = decodeArg(a, p.Attachments, &v) // may fail: 1e400 does not fit a float64
		}
	case PacketAck, PacketBinaryAck:
		if _, err := splitArgs(p.Data); err != nil {
			t.Fatalf("splitArgs(%s): %v", p.Data, err)
		}
	}
}

// FuzzArgs checks the JSON scanner against json.Valid, and that what
// decodeArg decodes into any encodes with encodeArgs to arguments that
// decode to the same value.
func FuzzArgs(f *testing.F) {
	f.Add([]byte(`{"a":[1,{"_placeholder":true,"num":0}],"b":"x"}`), []byte("zero"), []byte("one"))
	f.Fuzz(func(t *testing.T, raw, a0, a1 []byte) {
		sc := jsonScanner{data: raw}
		if got, want := sc.scanAll() == nil, json.Valid(raw); got != want {
			t.Fatalf("scanner says valid=%v, json.Valid %v, for %q", got, want, raw)
		}
		if args, err := splitArgs(raw); err == nil {
			for _, a := range args {
				if !json.Valid(a) {
					t.Fatalf("splitArgs(%q) gave invalid %q", raw, a)
				}
			}
			_, _, _ = eventName(raw)
		}
		attachments := [][]byte{append([]byte{}, a0...), append([]byte{}, a1...)}
		var v any
		if err := decodeArg(raw, attachments, &v); err != nil {
			return
		}
		data, att, err := encodeArgs(nil, []any{v})
		if err != nil {
			t.Fatalf("encodeArgs(%#v): %v", v, err)
		}
		args, err := splitArgs(data)
		if err != nil || len(args) != 1 {
			t.Fatalf("splitArgs(%s) = %v, %v", data, args, err)
		}
		var w any
		if err := decodeArg(args[0], att, &w); err != nil {
			t.Fatalf("decodeArg(%s): %v", args[0], err)
		}
		if !reflect.DeepEqual(v, w) {
			t.Fatalf("%q decoded to %#v, re-encoded as %s, decoded to %#v", raw, v, data, w)
		}
		// Relayed undecoded, it means the same.
		data, att, err = encodeArgs(nil, []any{rawArg{Raw: raw, Attachments: attachments}})
		if err != nil {
			t.Fatalf("encodeArgs(rawArg %q): %v", raw, err)
		}
		w = nil
		if args, err = splitArgs(data); err != nil || len(args) != 1 {
			t.Fatalf("splitArgs(%s) = %v, %v", data, args, err)
		}
		if err := decodeArg(args[0], att, &w); err != nil || !reflect.DeepEqual(v, w) {
			t.Fatalf("%q relayed as %s decodes to %#v, %v; want %#v", raw, data, w, err, v)
		}
	})
}
