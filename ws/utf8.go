package ws

import "unicode/utf8"

// utf8Validator checks UTF-8 (RFC 3629, as RFC 6455 §8.1 requires of text
// messages) incrementally: a message may arrive in many frames and a frame in
// many reads, and a code point may be split anywhere. It fails on the first
// byte that cannot begin or continue a valid sequence, so an invalid message
// is refused before the rest of it arrives (Autobahn 6.4).
//
// The zero value is ready and expects the start of a sequence.
type utf8Validator struct {
	need   uint8 // continuation bytes still expected
	lo, hi byte  // the range the next continuation byte must fall in
}

// valid feeds p to the validator and reports whether p keeps the input a
// valid UTF-8 prefix.
func (v *utf8Validator) valid(p []byte) bool {
	// Finish a sequence left open by the previous chunk.
	for v.need > 0 {
		if len(p) == 0 {
			return true
		}
		if !v.step(p[0]) {
			return false
		}
		p = p[1:]
	}
	// Whole sequences go through the standard library, which has an ASCII
	// fast path. An incomplete sequence at the end is held back and checked
	// byte by byte, so that its state carries into the next chunk.
	cut := incompleteTail(p)
	if !utf8.Valid(p[:cut]) {
		return false
	}
	for _, c := range p[cut:] {
		if !v.step(c) {
			return false
		}
	}
	return true
}

// complete reports whether the input so far ends on a sequence boundary.
func (v *utf8Validator) complete() bool { return v.need == 0 }

// step advances the validator by one byte.
func (v *utf8Validator) step(c byte) bool {
	if v.need > 0 {
		if c < v.lo || c > v.hi {
			return false
		}
		v.need--
		v.lo, v.hi = 0x80, 0xbf
		return true
	}
	v.lo, v.hi = 0x80, 0xbf
	switch {
	case c < 0x80:
	case c >= 0xc2 && c <= 0xdf:
		v.need = 1
	case c == 0xe0:
		v.need, v.lo = 2, 0xa0 // no overlong 3-byte forms
	case c == 0xed:
		v.need, v.hi = 2, 0x9f // no surrogates
	case c >= 0xe1 && c <= 0xef:
		v.need = 2
	case c == 0xf0:
		v.need, v.lo = 3, 0x90 // no overlong 4-byte forms
	case c >= 0xf1 && c <= 0xf3:
		v.need = 3
	case c == 0xf4:
		v.need, v.hi = 3, 0x8f // nothing above U+10FFFF
	default:
		return false
	}
	return true
}

// incompleteTail returns the index where a trailing, possibly incomplete,
// multi-byte sequence starts in p, or len(p) when p ends on a boundary or
// with bytes that are invalid anyway (utf8.Valid then reports them).
func incompleteTail(p []byte) int {
	n := len(p)
	for i := n - 1; i >= 0 && i >= n-3; i-- {
		c := p[i]
		if c < 0x80 {
			return n
		}
		if c >= 0xc0 { // a lead byte
			want := 2
			switch {
			case c >= 0xf0:
				want = 4
			case c >= 0xe0:
				want = 3
			}
			if n-i < want {
				return i
			}
			return n
		}
	}
	return n
}
