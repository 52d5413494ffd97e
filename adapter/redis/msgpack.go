package redis

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/tinylib/msgp/msgp"
)

// Socket.IO packets travel between processes as JavaScript values encoded
// by notepack.io (MessagePack), with binary data as MessagePack bin. Duplex
// keeps a packet's arguments as JSON text whose binary parts are
// placeholders {"_placeholder":true,"num":N} into a list of attachments.
// The two functions below translate between the forms, keeping the order
// of object keys.

// maxDepth bounds the nesting of arrays and maps in a message, both
// ways; deeper values are refused rather than recursed into. A client's
// event is at most 32 deep (socketio's parser), a broadcast 2 more.
const maxDepth = 128

var (
	errTooDeep    = errors.New("values nested too deeply")
	errBadMsgpack = errors.New("malformed MessagePack")
)

// appendMsgpackFromJSON appends to dst the MessagePack form of the JSON
// value data, its placeholders replaced by the attachments they number.
func appendMsgpackFromJSON(dst []byte, data json.RawMessage, attachments [][]byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	t := jsonToMsgpack{dec: dec, att: attachments}
	tok, err := dec.Token()
	if err != nil {
		return dst, err
	}
	return t.value(dst, tok, 0)
}

type jsonToMsgpack struct {
	dec *json.Decoder
	att [][]byte
}

func (t *jsonToMsgpack) value(dst []byte, tok json.Token, depth int) ([]byte, error) {
	if depth > maxDepth {
		return dst, errTooDeep
	}
	switch v := tok.(type) {
	case nil:
		return msgp.AppendNil(dst), nil
	case bool:
		return msgp.AppendBool(dst, v), nil
	case string:
		return msgp.AppendString(dst, v), nil
	case json.Number:
		return appendNumber(dst, v), nil
	case json.Delim:
		switch v {
		case '[':
			var body []byte
			n := uint32(0)
			for t.dec.More() {
				tok, err := t.dec.Token()
				if err != nil {
					return dst, err
				}
				if body, err = t.value(body, tok, depth+1); err != nil {
					return dst, err
				}
				n++
			}
			if _, err := t.dec.Token(); err != nil { // ]
				return dst, err
			}
			dst = msgp.AppendArrayHeader(dst, n)
			return append(dst, body...), nil
		case '{':
			var body []byte
			n := uint32(0)
			// A placeholder is exactly {"_placeholder":true,"num":N}.
			placeholder, num := true, -1
			for t.dec.More() {
				ktok, err := t.dec.Token()
				if err != nil {
					return dst, err
				}
				key, _ := ktok.(string)
				vtok, err := t.dec.Token()
				if err != nil {
					return dst, err
				}
				switch key {
				case "_placeholder":
					placeholder = placeholder && vtok == true
				case "num":
					if nv, ok := vtok.(json.Number); ok {
						if i, err := strconv.Atoi(string(nv)); err == nil {
							num = i
						}
					}
				default:
					placeholder = false
				}
				body = msgp.AppendString(body, key)
				if body, err = t.value(body, vtok, depth+1); err != nil {
					return dst, err
				}
				n++
			}
			if _, err := t.dec.Token(); err != nil { // }
				return dst, err
			}
			if placeholder && n == 2 && num >= 0 && num < len(t.att) {
				return msgp.AppendBytes(dst, t.att[num]), nil
			}
			dst = msgp.AppendMapHeader(dst, n)
			return append(dst, body...), nil
		}
	}
	return dst, fmt.Errorf("unexpected JSON token %v", tok)
}

// appendNumber encodes a JSON number as notepack.io encodes a JavaScript
// number: an integer when it has no fraction, a float64 otherwise.
func appendNumber(dst []byte, n json.Number) []byte {
	if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		return appendInt(dst, i)
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil {
		return msgp.AppendNil(dst)
	}
	if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return appendInt(dst, int64(f))
	}
	return msgp.AppendFloat64(dst, f)
}

// appendInt encodes i in the shortest form, unsigned when it is not
// negative, as notepack.io does.
func appendInt(dst []byte, i int64) []byte {
	if i >= 0 {
		return msgp.AppendUint64(dst, uint64(i))
	}
	return msgp.AppendInt64(dst, i)
}

// msgpackToJSON reads one MessagePack value from b and appends its JSON
// form to dst, bin values replaced by placeholders numbered from
// len(*attachments) on and appended to *attachments (they alias b). It
// returns the rest of b.
func msgpackToJSON(dst []byte, b []byte, attachments *[][]byte) ([]byte, []byte, error) {
	return appendJSONValue(dst, b, attachments, 0)
}

func appendJSONValue(dst, b []byte, att *[][]byte, depth int) ([]byte, []byte, error) {
	if depth > maxDepth {
		return dst, b, errTooDeep
	}
	var err error
	switch msgp.NextType(b) {
	case msgp.StrType:
		var s []byte
		if s, b, err = msgp.ReadStringZC(b); err != nil {
			return dst, b, err
		}
		return appendJSONString(dst, s), b, nil
	case msgp.BinType:
		var v []byte
		if v, b, err = msgp.ReadBytesZC(b); err != nil {
			return dst, b, err
		}
		dst = append(dst, `{"_placeholder":true,"num":`...)
		dst = strconv.AppendInt(dst, int64(len(*att)), 10)
		*att = append(*att, v)
		return append(dst, '}'), b, nil
	case msgp.MapType:
		var n uint32
		if n, b, err = msgp.ReadMapHeaderBytes(b); err != nil {
			return dst, b, err
		}
		if int(n) > len(b)/2 { // each entry takes 2 bytes at least
			return dst, b, errBadMsgpack
		}
		dst = append(dst, '{')
		first := true
		for range n {
			var key []byte
			switch msgp.NextType(b) {
			case msgp.StrType:
				var k []byte
				if k, b, err = msgp.ReadStringZC(b); err != nil {
					return dst, b, err
				}
				key = appendJSONString(nil, k)
			case msgp.IntType, msgp.UintType, msgp.Float64Type, msgp.Float32Type:
				var k []byte
				if k, b, err = appendJSONValue(nil, b, att, depth+1); err != nil {
					return dst, b, err
				}
				key = appendJSONString(nil, k)
			default:
				return dst, b, fmt.Errorf("%w: a map key of type %v", errBadMsgpack, msgp.NextType(b))
			}
			if !first {
				dst = append(dst, ',')
			}
			first = false
			dst = append(dst, key...)
			dst = append(dst, ':')
			if dst, b, err = appendJSONValue(dst, b, att, depth+1); err != nil {
				return dst, b, err
			}
		}
		return append(dst, '}'), b, nil
	case msgp.ArrayType:
		var n uint32
		if n, b, err = msgp.ReadArrayHeaderBytes(b); err != nil {
			return dst, b, err
		}
		if int(n) > len(b) {
			return dst, b, errBadMsgpack
		}
		dst = append(dst, '[')
		for i := range n {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dst, b, err = appendJSONValue(dst, b, att, depth+1); err != nil {
				return dst, b, err
			}
		}
		return append(dst, ']'), b, nil
	case msgp.Float64Type:
		var f float64
		if f, b, err = msgp.ReadFloat64Bytes(b); err != nil {
			return dst, b, err
		}
		return appendJSNumber(dst, f), b, nil
	case msgp.Float32Type:
		var f float32
		if f, b, err = msgp.ReadFloat32Bytes(b); err != nil {
			return dst, b, err
		}
		return appendJSNumber(dst, float64(f)), b, nil
	case msgp.IntType:
		var i int64
		if i, b, err = msgp.ReadInt64Bytes(b); err != nil {
			return dst, b, err
		}
		return strconv.AppendInt(dst, i, 10), b, nil
	case msgp.UintType:
		var u uint64
		if u, b, err = msgp.ReadUint64Bytes(b); err != nil {
			return dst, b, err
		}
		return strconv.AppendUint(dst, u, 10), b, nil
	case msgp.BoolType:
		var v bool
		if v, b, err = msgp.ReadBoolBytes(b); err != nil {
			return dst, b, err
		}
		return strconv.AppendBool(dst, v), b, nil
	case msgp.NilType:
		if b, err = msgp.ReadNilBytes(b); err != nil {
			return dst, b, err
		}
		return append(dst, "null"...), b, nil
	case msgp.TimeType:
		// notepack.io encodes a Date as the timestamp extension (-1);
		// JSON.stringify would have given its ISO form.
		var t time.Time
		if t, b, err = msgp.ReadTimeBytes(b); err != nil {
			return dst, b, err
		}
		return appendJSONString(dst, []byte(t.UTC().Format("2006-01-02T15:04:05.000Z"))), b, nil
	case msgp.InvalidType:
		return dst, b, errBadMsgpack
	default: // other extensions: no JSON form
		if b, err = msgp.Skip(b); err != nil {
			return dst, b, err
		}
		return append(dst, "null"...), b, nil
	}
}

// appendJSNumber formats f as JavaScript's Number.prototype.toString
// does (JSON.stringify gives null for NaN and infinities).
func appendJSNumber(dst []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e21) {
		start := len(dst)
		dst = strconv.AppendFloat(dst, f, 'e', -1, 64)
		// Go writes e-07 and e+21; JavaScript e-7 and e+21.
		if i := bytes.IndexByte(dst[start:], 'e'); i >= 0 {
			i += start + 2 // after the sign
			for i < len(dst)-1 && dst[i] == '0' {
				dst = append(dst[:i], dst[i+1:]...)
			}
		}
		return dst
	}
	return strconv.AppendFloat(dst, f, 'f', -1, 64)
}

// appendJSONString appends s as a JSON string; invalid UTF-8 becomes
// U+FFFD, as encoding/json does.
func appendJSONString(dst, s []byte) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
