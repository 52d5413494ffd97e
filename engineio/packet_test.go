package engineio

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestDecodePacket(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want Packet
	}{
		{"0{\"sid\":\"x\"}", Packet{Type: PacketOpen, Data: []byte(`{"sid":"x"}`)}},
		{"1", Packet{Type: PacketClose, Data: []byte{}}},
		{"2", Packet{Type: PacketPing, Data: []byte{}}},
		{"2probe", Packet{Type: PacketPing, Data: []byte("probe")}},
		{"3probe", Packet{Type: PacketPong, Data: []byte("probe")}},
		{"4", Packet{Type: PacketMessage, Data: []byte{}}},
		{"4hello €", Packet{Type: PacketMessage, Data: []byte("hello €")}},
		{"5", Packet{Type: PacketUpgrade, Data: []byte{}}},
		{"6", Packet{Type: PacketNoop, Data: []byte{}}},
		{"bAQIDBA==", Packet{Type: PacketMessage, Binary: true, Data: []byte{1, 2, 3, 4}}},
		{"b", Packet{Type: PacketMessage, Binary: true, Data: []byte{}}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := DecodePacket([]byte(tt.in))
			if err != nil {
				t.Fatalf("DecodePacket(%q): %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("DecodePacket(%q) (-want +got):\n%s", tt.in, diff)
			}
			if enc := AppendPacket(nil, got); string(enc) != tt.in {
				t.Errorf("AppendPacket(DecodePacket(%q)) = %q", tt.in, enc)
			}
		})
	}
}

func TestDecodePacketErrors(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"", "7", "abc", "x4", "b!!!!", "bAQI", "4\xff", "9hello", " 4"} {
		_, err := DecodePacket([]byte(in))
		if !errors.Is(err, ErrInvalidPacket) {
			t.Errorf("DecodePacket(%q) = %v, want ErrInvalidPacket", in, err)
		}
	}
}

func TestPayload(t *testing.T) {
	t.Parallel()
	packets := []Packet{
		{Type: PacketMessage, Data: []byte("hello")},
		{Type: PacketMessage, Binary: true, Data: []byte{1, 2, 3, 4}},
		{Type: PacketPing},
		{Type: PacketMessage, Data: []byte{}},
	}
	enc := AppendPayload(nil, packets...)
	if want := "4hello\x1ebAQIDBA==\x1e2\x1e4"; string(enc) != want {
		t.Fatalf("AppendPayload = %q, want %q", enc, want)
	}
	got, err := DecodePayload(nil, enc)
	if err != nil {
		t.Fatal(err)
	}
	packets[2].Data = []byte{}
	if diff := cmp.Diff(packets, got); diff != "" {
		t.Errorf("DecodePayload (-want +got):\n%s", diff)
	}
}

func TestDecodePayloadErrors(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"", "\x1e", "4a\x1e", "\x1e4a", "4a\x1e\x1e4b", "4a\x1eabc", "4a\x1eb%%"} {
		_, err := DecodePayload(nil, []byte(in))
		if !errors.Is(err, ErrInvalidPacket) {
			t.Errorf("DecodePayload(%q) = %v, want ErrInvalidPacket", in, err)
		}
	}
}

func TestDecodePayloadAllocs(t *testing.T) {
	payload := []byte("4test1\x1e4test2\x1e4test3\x1e3")
	dst := make([]Packet, 0, 8)
	allocs := testing.AllocsPerRun(100, func() {
		var err error
		dst, err = DecodePayload(dst[:0], payload)
		if err != nil || len(dst) != 4 {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("DecodePayload of text packets: %v allocations, want 0", allocs)
	}
	buf := make([]byte, 0, 64)
	allocs = testing.AllocsPerRun(100, func() {
		buf = AppendPayload(buf[:0], dst...)
	})
	if allocs != 0 {
		t.Errorf("AppendPayload into a large enough buffer: %v allocations, want 0", allocs)
	}
}

func TestPacketTypeString(t *testing.T) {
	t.Parallel()
	if got := PacketUpgrade.String(); got != "upgrade" {
		t.Errorf("PacketUpgrade.String() = %q", got)
	}
	if got := PacketType(9).String(); got != "PacketType(9)" {
		t.Errorf("PacketType(9).String() = %q", got)
	}
}

// FuzzDecodePayload checks that decoding never panics, and that what
// decodes encodes back to a payload that decodes to the same packets.
func FuzzDecodePayload(f *testing.F) {
	for _, s := range []string{
		"4hello", "4test1\x1e4test2\x1e4test3", "4hello\x1ebAQIDBA==", "abc", "", "\x1e",
		"2probe", "1", "6", "b", "bAA", "4\xff\xfe", "4€\x1e3",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		packets, err := DecodePayload(nil, in)
		if err != nil {
			if !errors.Is(err, ErrInvalidPacket) {
				t.Fatalf("error %v does not wrap ErrInvalidPacket", err)
			}
			return
		}
		enc := AppendPayload(nil, packets...)
		again, err := DecodePayload(nil, enc)
		if err != nil {
			t.Fatalf("re-decoding %q (from %q): %v", enc, in, err)
		}
		if !cmp.Equal(packets, again) {
			t.Fatalf("round trip of %q changed the packets: %v, then %v", in, packets, again)
		}
	})
}

// FuzzDecodePacket checks one packet the same way.
func FuzzDecodePacket(f *testing.F) {
	for _, s := range []string{"4hello", "bAQIDBA==", "3probe", "", "b====", "0{}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		p, err := DecodePacket(in)
		if err != nil {
			return
		}
		enc := AppendPacket(nil, p)
		q, err := DecodePacket(enc)
		if err != nil || q.Type != p.Type || q.Binary != p.Binary || !bytes.Equal(q.Data, p.Data) {
			t.Fatalf("round trip of %q: %q decodes to %v, %v", in, enc, q, err)
		}
	})
}

// FuzzServePost posts arbitrary payloads to a session: the server answers
// 200 "ok" or 400, never panics, and a 400 closes the session.
func FuzzServePost(f *testing.F) {
	for _, s := range []string{"4hello", "4a\x1ebAQIDBA==", "abc", "", "1", "2", "3\x1e4x", "4\xff", "5\x1e6"} {
		f.Add([]byte(s))
	}
	srv, err := NewServer(&ServerOptions{MaxPayload: 4096, PingTimeout: 50 * time.Millisecond, Handler: HandlerFuncs{
		Message: func(s *Session, typ MessageType, data []byte) { _ = s.Send(typ, data) },
	}})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = srv.Close() })
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest("GET", "/engine.io/?EIO=4&transport=polling", nil))
		var hs struct{ SID string }
		if err := json.Unmarshal(rec.Body.Bytes()[1:], &hs); err != nil {
			t.Fatalf("handshake %q: %v", rec.Body, err)
		}
		url := "/engine.io/?EIO=4&transport=polling&sid=" + hs.SID
		rec = httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest("POST", url, bytes.NewReader(body)))
		switch {
		case rec.Code == 200 && rec.Body.String() == "ok":
		case rec.Code == 400 || rec.Code == 413:
			if s := srv.Session(hs.SID); s != nil {
				t.Fatalf("POST %q answered %d, and the session is still open", body, rec.Code)
			}
		default:
			t.Fatalf("POST %q: %d %q", body, rec.Code, rec.Body)
		}
		if s := srv.Session(hs.SID); s != nil {
			_ = s.Close()
			<-s.Done()
		}
	})
}
