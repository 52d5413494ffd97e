package engineio

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// PacketType is the type of an Engine.IO packet, the digit that starts its
// text encoding.
type PacketType byte

// The seven packet types of Engine.IO protocol v4.
const (
	PacketOpen    PacketType = 0 // the server's handshake, with the session's parameters as JSON
	PacketClose   PacketType = 1 // the end of the session, from either side
	PacketPing    PacketType = 2 // a heartbeat (server to client), or "probe" during an upgrade
	PacketPong    PacketType = 3 // the answer to a ping, or "probe" during an upgrade
	PacketMessage PacketType = 4 // application data, text or binary
	PacketUpgrade PacketType = 5 // the client completes an upgrade to WebSocket
	PacketNoop    PacketType = 6 // nothing: ends a pending long-poll
)

var packetTypeNames = [...]string{"open", "close", "ping", "pong", "message", "upgrade", "noop"}

// String returns the packet type's name in the protocol, such as "message".
func (t PacketType) String() string {
	if int(t) < len(packetTypeNames) {
		return packetTypeNames[t]
	}
	return "PacketType(" + strconv.Itoa(int(t)) + ")"
}

// Packet is one Engine.IO packet. Binary is set only for message packets
// whose data is binary: they travel as WebSocket binary frames, and over
// long-polling as "b" followed by the data in base64.
type Packet struct {
	Type   PacketType
	Binary bool
	Data   []byte
}

// ErrInvalidPacket is wrapped by the errors of DecodePacket and
// DecodePayload: the input is not an Engine.IO v4 packet or payload.
// A server closes a session that sends one with reason ReasonParseError.
var ErrInvalidPacket = errors.New("engineio: invalid packet")

// recordSeparator joins the packets of a long-polling payload.
const recordSeparator = 0x1e

// AppendPacket appends the text encoding of p to dst: the type digit and the
// data, or for a binary message "b" and the data in base64 (the long-polling
// form; over WebSocket a binary message is sent as its raw data instead).
func AppendPacket(dst []byte, p Packet) []byte {
	if p.Binary && p.Type == PacketMessage {
		dst = append(dst, 'b')
		return base64.StdEncoding.AppendEncode(dst, p.Data)
	}
	dst = append(dst, '0'+byte(p.Type))
	return append(dst, p.Data...)
}

// AppendPayload appends the long-polling payload of packets to dst: their
// text encodings joined with the record separator 0x1e.
func AppendPayload(dst []byte, packets ...Packet) []byte {
	for i, p := range packets {
		if i > 0 {
			dst = append(dst, recordSeparator)
		}
		dst = AppendPacket(dst, p)
	}
	return dst
}

// DecodePacket decodes the text encoding of one packet, as sent in a
// WebSocket text frame or as one record of a long-polling payload. The
// packet's Data aliases b, except for a base64 binary message, which is
// decoded into a new slice. Text data must be valid UTF-8.
//
// The error wraps ErrInvalidPacket and says what is wrong.
func DecodePacket(b []byte) (Packet, error) {
	if len(b) == 0 {
		return Packet{}, fmt.Errorf("%w: empty packet", ErrInvalidPacket)
	}
	c := b[0]
	if c == 'b' {
		data := make([]byte, base64.StdEncoding.DecodedLen(len(b)-1))
		n, err := base64.StdEncoding.Decode(data, b[1:])
		if err != nil {
			return Packet{}, fmt.Errorf("%w: binary packet of %d bytes is not base64: %v", ErrInvalidPacket, len(b), err)
		}
		return Packet{Type: PacketMessage, Binary: true, Data: data[:n]}, nil
	}
	if c < '0' || c > '6' {
		return Packet{}, fmt.Errorf("%w: unknown packet type %q", ErrInvalidPacket, quoteStart(b))
	}
	if !utf8.Valid(b[1:]) {
		return Packet{}, fmt.Errorf("%w: %v packet data is not valid UTF-8", ErrInvalidPacket, PacketType(c-'0'))
	}
	return Packet{Type: PacketType(c - '0'), Data: b[1:]}, nil
}

// DecodePayload decodes a long-polling payload: packets joined with 0x1e.
// It appends them to dst and returns the extended slice, so a caller that
// reuses dst decodes text packets without allocating. Data of text packets
// aliases payload; binary packets' data is decoded into new slices.
//
// An empty payload, an empty record or a record that DecodePacket refuses
// fail the whole payload; the error wraps ErrInvalidPacket and names the
// record.
func DecodePayload(dst []Packet, payload []byte) ([]Packet, error) {
	if len(payload) == 0 {
		return dst, fmt.Errorf("%w: empty payload", ErrInvalidPacket)
	}
	for i := 0; ; i++ {
		rec := payload
		end := bytes.IndexByte(payload, recordSeparator)
		if end >= 0 {
			rec = payload[:end]
		}
		p, err := DecodePacket(rec)
		if err != nil {
			return dst, fmt.Errorf("record %d of payload: %w", i, err)
		}
		dst = append(dst, p)
		if end < 0 {
			return dst, nil
		}
		payload = payload[end+1:]
	}
}

// quoteStart returns the start of b for an error message.
func quoteStart(b []byte) string {
	const max = 16
	if len(b) > max {
		return string(b[:max]) + "…"
	}
	return string(b)
}
