package ws

import (
	"encoding/binary"
	"fmt"
)

// opcode is a frame's opcode (RFC 6455 §5.2).
type opcode byte

const (
	opContinuation opcode = 0x0
	opText         opcode = 0x1
	opBinary       opcode = 0x2
	opClose        opcode = 0x8
	opPing         opcode = 0x9
	opPong         opcode = 0xA
)

func (o opcode) isControl() bool { return o&0x8 != 0 }

func (o opcode) String() string {
	switch o {
	case opContinuation:
		return "continuation"
	case opText:
		return "text"
	case opBinary:
		return "binary"
	case opClose:
		return "close"
	case opPing:
		return "ping"
	case opPong:
		return "pong"
	}
	return fmt.Sprintf("reserved opcode 0x%x", byte(o))
}

// maxControlPayload is the largest payload a control frame may carry
// (RFC 6455 §5.5).
const maxControlPayload = 125

// header is a decoded frame header.
type header struct {
	fin    bool
	rsv1   bool
	rsv2   bool
	rsv3   bool
	opcode opcode
	masked bool
	length int64
	key    uint32 // masking key, little-endian so that mask can XOR word-wise
}

// headerLen returns how many bytes the header that starts with b0, b1 has.
func headerLen(b1 byte) int {
	n := 2
	switch b1 & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if b1&0x80 != 0 {
		n += 4
	}
	return n
}

// parseHeader decodes a frame header from b, which must hold exactly
// headerLen(b[1]) bytes. It checks what the header alone can tell: the length
// encoding is minimal and the 64-bit length has its top bit clear
// (RFC 6455 §5.2). Everything that depends on connection state is checked by
// the reader.
func parseHeader(b []byte) (header, error) {
	h := header{
		fin:    b[0]&0x80 != 0,
		rsv1:   b[0]&0x40 != 0,
		rsv2:   b[0]&0x20 != 0,
		rsv3:   b[0]&0x10 != 0,
		opcode: opcode(b[0] & 0x0f),
		masked: b[1]&0x80 != 0,
	}
	rest := b[2:]
	switch l := b[1] & 0x7f; l {
	case 126:
		n := binary.BigEndian.Uint16(rest)
		if n < 126 {
			return h, protocolErrorf("16-bit length %d is not minimally encoded", n)
		}
		h.length = int64(n)
		rest = rest[2:]
	case 127:
		n := binary.BigEndian.Uint64(rest)
		if n>>63 != 0 {
			return h, protocolErrorf("64-bit length has its most significant bit set")
		}
		if n <= 0xffff {
			return h, protocolErrorf("64-bit length %d is not minimally encoded", n)
		}
		h.length = int64(n)
		rest = rest[8:]
	default:
		h.length = int64(l)
	}
	if h.masked {
		h.key = binary.LittleEndian.Uint32(rest)
	}
	return h, nil
}

// appendHeader appends the encoding of h to b.
func appendHeader(b []byte, h header) []byte {
	b0 := byte(h.opcode)
	if h.fin {
		b0 |= 0x80
	}
	if h.rsv1 {
		b0 |= 0x40
	}
	if h.rsv2 {
		b0 |= 0x20
	}
	if h.rsv3 {
		b0 |= 0x10
	}
	var b1 byte
	if h.masked {
		b1 = 0x80
	}
	switch {
	case h.length <= 125:
		b = append(b, b0, b1|byte(h.length))
	case h.length <= 0xffff:
		b = append(b, b0, b1|126)
		b = binary.BigEndian.AppendUint16(b, uint16(h.length))
	default:
		b = append(b, b0, b1|127)
		b = binary.BigEndian.AppendUint64(b, uint64(h.length))
	}
	if h.masked {
		b = binary.LittleEndian.AppendUint32(b, h.key)
	}
	return b
}
