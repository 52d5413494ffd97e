package socketio

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
)

// PacketType is the type of a Socket.IO packet, the first character of its
// text form (Socket.IO protocol v5).
type PacketType byte

// The Socket.IO packet types, numbered as on the wire.
const (
	PacketConnect      PacketType = iota // CONNECT: join a namespace, with an optional auth object
	PacketDisconnect                     // DISCONNECT: leave a namespace
	PacketEvent                          // EVENT: an event and its arguments
	PacketAck                            // ACK: the arguments of an acknowledgement
	PacketConnectError                   // CONNECT_ERROR: a refused CONNECT
	PacketBinaryEvent                    // BINARY_EVENT: an EVENT followed by binary attachments
	PacketBinaryAck                      // BINARY_ACK: an ACK followed by binary attachments
)

var packetTypeNames = [...]string{
	PacketConnect:      "CONNECT",
	PacketDisconnect:   "DISCONNECT",
	PacketEvent:        "EVENT",
	PacketAck:          "ACK",
	PacketConnectError: "CONNECT_ERROR",
	PacketBinaryEvent:  "BINARY_EVENT",
	PacketBinaryAck:    "BINARY_ACK",
}

// String returns the name the protocol specification uses, such as
// "BINARY_EVENT", or "PacketType(n)" for a value outside the protocol.
func (t PacketType) String() string {
	if int(t) < len(packetTypeNames) {
		return packetTypeNames[t]
	}
	return "PacketType(" + strconv.Itoa(int(t)) + ")"
}

// isBinary reports whether packets of type t are followed by attachments.
func (t PacketType) isBinary() bool { return t == PacketBinaryEvent || t == PacketBinaryAck }

// ErrMalformedPacket is wrapped by every error the decoder returns: the peer
// sent something that is not a valid Socket.IO packet, and the connection
// should be closed (as the official server does). Test with errors.Is.
var ErrMalformedPacket = errors.New("socketio: malformed packet")

// malformed returns an error wrapping ErrMalformedPacket with the detail.
func malformed(format string, args ...any) error {
	return &packetError{msg: fmt.Sprintf(format, args...)}
}

// packetError is a decoding error; its text is
// "socketio: malformed packet: <what was wrong>".
type packetError struct{ msg string }

func (e *packetError) Error() string { return ErrMalformedPacket.Error() + ": " + e.msg }
func (e *packetError) Unwrap() error { return ErrMalformedPacket }

// Packet is one Socket.IO packet, as the parser reads and writes it and
// as adapters pass it between processes.
//
// A decoded BINARY_EVENT or BINARY_ACK keeps its type (the official parser
// turns it into EVENT or ACK); handlers treat the two alike.
type Packet struct {
	Type PacketType
	// Namespace is "/" when the packet names none. Encoding treats "" as "/".
	Namespace string
	// ID is the ack id, or -1 when there is none.
	ID int64
	// Data is the JSON payload as received, without surrounding whitespace;
	// attachments appear in it as {"_placeholder":true,"num":N}. It is nil
	// when the packet has no payload.
	Data json.RawMessage
	// Attachments holds the binary attachments of a BINARY_* packet, in
	// order; attachment N replaces placeholder N.
	Attachments [][]byte
}

// parserLimits bounds what the decoder accepts from a peer. The zero value
// means the defaults.
type parserLimits struct {
	// MaxAttachments is the most binary attachments one BINARY_* packet may
	// announce. socket.io-parser before 4.2.3 had none (CVE-2023-32695).
	// Zero means 10. Negative means no limit.
	MaxAttachments int
	// MaxPacketSize is the most bytes of a packet's text part. Attachments
	// are bounded by Engine.IO's maxPayload each, so one packet holds at
	// most MaxPacketSize + MaxAttachments × maxPayload bytes.
	// Zero means 1e6 (Engine.IO's default maxPayload). Negative means no
	// limit.
	MaxPacketSize int
	// MaxDepth is the deepest nesting of arrays and objects the JSON
	// payload may have; `[]` has depth 1. Deeper JSON is an error.
	// Zero means 32. Negative means maxJSONDepth (10000, encoding/json's own
	// limit).
	MaxDepth int
}

// Default limits; see parserLimits.
const (
	defaultMaxAttachments = 10
	defaultMaxPacketSize  = 1e6
	defaultMaxDepth       = 32
	// maxJSONDepth bounds the recursion of the JSON scanner whatever the
	// limits say; encoding/json refuses deeper input too.
	maxJSONDepth = 10000
)

// withDefaults returns l with zero fields replaced by their defaults and
// negative ones by "no limit".
func (l parserLimits) withDefaults() parserLimits {
	switch {
	case l.MaxAttachments == 0:
		l.MaxAttachments = defaultMaxAttachments
	case l.MaxAttachments < 0:
		l.MaxAttachments = math.MaxInt
	}
	switch {
	case l.MaxPacketSize == 0:
		l.MaxPacketSize = defaultMaxPacketSize
	case l.MaxPacketSize < 0:
		l.MaxPacketSize = math.MaxInt
	}
	if l.MaxDepth == 0 {
		l.MaxDepth = defaultMaxDepth
	}
	if l.MaxDepth < 0 || l.MaxDepth > maxJSONDepth {
		l.MaxDepth = maxJSONDepth
	}
	return l
}

// reservedEvents are the event names a peer may not send (socket.io-parser's
// RESERVED_EVENTS): they name local lifecycle events.
var reservedEvents = [...]string{
	"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener",
}

// decoder assembles packets from the Engine.IO messages of one connection:
// text messages, and the binary attachments that follow a BINARY_* packet.
// It is not safe for concurrent use; one connection's messages arrive in
// order on one goroutine.
type decoder struct {
	limits  parserLimits
	pending *Packet // a BINARY_* packet waiting for attachments
	want    int     // attachments pending needs in all
	lastNsp string  // the last namespace decoded, reused to save an allocation
	scan    jsonScanner
}

// newDecoder returns a decoder enforcing l (zero fields mean the defaults).
func newDecoder(l parserLimits) *decoder {
	return &decoder{limits: l.withDefaults()}
}

// reset drops a half-assembled packet; call it when the connection closes.
func (d *decoder) reset() {
	d.pending = nil
	d.want = 0
}

// decodeText decodes one text message. It returns the packet when complete,
// or nil and no error when it is a BINARY_* packet waiting for attachments.
// Any error wraps ErrMalformedPacket; the decoder is then reset.
//
// The packet does not alias s: s may be reused once decodeText returns.
//
// Decoding is as strict as socket.io-parser 4.2.x's and stricter where that
// parser is lenient by accident (JavaScript's Number() coercion): attachment
// counts and ack ids must be decimal digits, the payload may not start with
// whitespace, EVENT and ACK payloads are required, and every attachment
// placeholder of a BINARY_* packet must be in range even when it announces
// none.
func (d *decoder) decodeText(s []byte) (*Packet, error) {
	if d.pending != nil {
		n, t := d.want-len(d.pending.Attachments), d.pending.Type
		d.reset()
		return nil, malformed("text message while %d binary attachment(s) of a %v packet were expected", n, t)
	}
	if len(s) == 0 {
		return nil, malformed("empty packet")
	}
	if len(s) > d.limits.MaxPacketSize {
		return nil, malformed("packet of %d bytes exceeds the limit of %d bytes", len(s), d.limits.MaxPacketSize)
	}
	if s[0] < '0' || s[0] > '6' {
		return nil, malformed("unknown packet type %q", s[0])
	}
	p := Packet{Type: PacketType(s[0] - '0'), Namespace: "/", ID: -1}
	i := 1

	attachments := 0
	if p.Type.isBinary() {
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			digit := int(s[i] - '0')
			// attachments*10+digit > max, without overflowing.
			if attachments > d.limits.MaxAttachments/10 || attachments*10 > d.limits.MaxAttachments-digit {
				return nil, malformed("%v announces more than %d attachments", p.Type, d.limits.MaxAttachments)
			}
			attachments = attachments*10 + digit
			i++
		}
		if i == start || i == len(s) || s[i] != '-' {
			return nil, malformed("%v has no attachment count (digits followed by '-')", p.Type)
		}
		i++
	}

	if i < len(s) && s[i] == '/' {
		end := bytes.IndexByte(s[i:], ',')
		if end < 0 {
			end = len(s) - i
		}
		nsp := s[i : i+end]
		if string(nsp) != d.lastNsp {
			d.lastNsp = string(nsp)
		}
		p.Namespace = d.lastNsp
		i += end
		if i < len(s) {
			i++ // the comma
		}
	}

	if i < len(s) && s[i] >= '0' && s[i] <= '9' {
		var id int64
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			digit := int64(s[i] - '0')
			if id > (math.MaxInt64-digit)/10 {
				return nil, malformed("ack id overflows int64")
			}
			id = id*10 + digit
			i++
		}
		p.ID = id
	}

	payload := s[i:]
	if len(payload) > 0 {
		if isJSONSpace(payload[0]) {
			return nil, malformed("%v payload starts with whitespace", p.Type)
		}
		payload = trimJSONSpace(payload)
	}
	if err := d.checkPayload(p.Type, payload, attachments); err != nil {
		return nil, err
	}
	if len(payload) > 0 {
		p.Data = append(json.RawMessage(nil), payload...)
	}

	pp := &p
	if attachments > 0 {
		pp.Attachments = make([][]byte, 0, min(attachments, defaultMaxAttachments))
		d.pending = pp
		d.want = attachments
		return nil, nil
	}
	return pp, nil
}

// checkPayload checks the JSON payload of a packet of type t as
// socket.io-parser's isPayloadValid does, plus the placeholders of a
// BINARY_* packet announcing n attachments.
func (d *decoder) checkPayload(t PacketType, payload []byte, n int) error {
	if len(payload) == 0 {
		switch t {
		case PacketConnect, PacketDisconnect:
			return nil
		case PacketConnectError:
			return malformed("%v payload is missing (want a string or an object)", t)
		default:
			return malformed("%v payload is missing (want an array)", t)
		}
	}
	if t == PacketDisconnect {
		return malformed("%v packet carries a payload", t)
	}
	sc := &d.scan
	*sc = jsonScanner{data: payload, maxDepth: d.limits.MaxDepth, checkPlaceholders: t.isBinary(), attachments: n}
	if err := sc.scanAll(); err != nil {
		return malformed("%v payload: %v", t, err)
	}
	switch t {
	case PacketConnect:
		if payload[0] != '{' {
			return malformed("%v payload is not an object", t)
		}
	case PacketConnectError:
		if payload[0] != '{' && payload[0] != '"' {
			return malformed("%v payload is neither a string nor an object", t)
		}
	case PacketAck, PacketBinaryAck:
		if payload[0] != '[' {
			return malformed("%v payload is not an array", t)
		}
	case PacketEvent, PacketBinaryEvent:
		if payload[0] != '[' {
			return malformed("event payload is not an array")
		}
		if sc.firstEnd == 0 {
			return malformed("event payload is an empty array (want the event name first)")
		}
		name := payload[sc.firstStart:sc.firstEnd]
		switch {
		case name[0] == '-' || (name[0] >= '0' && name[0] <= '9'):
		case name[0] == '"':
			if isReservedEvent(name) {
				return malformed("event name %s is reserved", name)
			}
		default:
			return malformed("event name is not a string or a number")
		}
	}
	return nil
}

// isReservedEvent reports whether the JSON string quoted is a reserved event
// name once unescaped.
func isReservedEvent(quoted []byte) bool {
	inner := quoted[1 : len(quoted)-1]
	if bytes.IndexByte(inner, '\\') >= 0 {
		var s string
		if json.Unmarshal(quoted, &s) != nil {
			return false
		}
		inner = []byte(s)
	}
	for _, r := range reservedEvents {
		if string(inner) == r {
			return true
		}
	}
	return false
}

// decodeBinary takes one binary message, an attachment of the pending
// BINARY_* packet. It returns the packet once its last attachment has
// arrived, nil before. It is an error when no attachment is expected.
//
// b is copied: it may be reused once decodeBinary returns.
func (d *decoder) decodeBinary(b []byte) (*Packet, error) {
	p := d.pending
	if p == nil {
		return nil, malformed("binary message with no %v or %v packet expecting it", PacketBinaryEvent, PacketBinaryAck)
	}
	p.Attachments = append(p.Attachments, append(make([]byte, 0, len(b)), b...))
	if len(p.Attachments) < d.want {
		return nil, nil
	}
	d.reset()
	return p, nil
}

// encodePacket appends the text form of p to dst and returns it:
// `<type>[<attachments>-][<nsp>,][<id>][<data>]`, exactly as socket.io-parser
// writes it. The attachment count (len(p.Attachments)) is written for
// BINARY_* types only; the namespace only when it is not "/" (or ""). p.Data
// is written as is. The attachments themselves are sent by the caller, each
// as a binary message, after the text.
func encodePacket(dst []byte, p *Packet) []byte {
	dst = append(dst, '0'+byte(p.Type))
	if p.Type.isBinary() {
		dst = strconv.AppendInt(dst, int64(len(p.Attachments)), 10)
		dst = append(dst, '-')
	}
	if p.Namespace != "" && p.Namespace != "/" {
		dst = append(dst, p.Namespace...)
		dst = append(dst, ',')
	}
	if p.ID >= 0 {
		dst = strconv.AppendInt(dst, p.ID, 10)
	}
	return append(dst, p.Data...)
}

// jsonScanner validates JSON (RFC 8259, as JSON.parse and json.Valid accept
// it) in one pass, without allocating, and notes what the packet and
// argument codecs need: the first element of a top-level array, the
// top-level elements, and the attachment placeholders.
type jsonScanner struct {
	data     []byte
	pos      int
	depth    int
	maxDepth int

	// checkPlaceholders makes every object whose "_placeholder" is true
	// (the last such key wins, as in JSON.parse) need an integer "num" in
	// [0, attachments), as socket.io-parser's reconstructPacket demands.
	checkPlaceholders bool
	attachments       int
	// collect, when not nil, receives every placeholder object met (it
	// implies checkPlaceholders).
	collect *[]placeholderSpan
	// elems, when not nil, receives the elements of a top-level array.
	elems *[]json.RawMessage

	// firstStart and firstEnd delimit the first element of a top-level
	// array; firstEnd is 0 when there is none.
	firstStart, firstEnd int
}

// placeholderSpan is a placeholder object data[start:end] naming
// attachment num.
type placeholderSpan struct{ start, end, num int }

// jsonError is a syntax error at an offset of the scanned text.
type jsonError struct {
	off int
	msg string
}

func (e *jsonError) Error() string {
	return "invalid JSON at offset " + strconv.Itoa(e.off) + ": " + e.msg
}

func (s *jsonScanner) fail(msg string) error { return &jsonError{off: s.pos, msg: msg} }

func (s *jsonScanner) unexpected() error {
	if s.pos >= len(s.data) {
		return s.fail("unexpected end of input")
	}
	return s.fail(fmt.Sprintf("unexpected character %q", s.data[s.pos]))
}

// scanAll scans data as one JSON value, with only whitespace around it.
func (s *jsonScanner) scanAll() error {
	if s.maxDepth <= 0 || s.maxDepth > maxJSONDepth {
		s.maxDepth = maxJSONDepth
	}
	if err := s.value(); err != nil {
		return err
	}
	s.skipSpace()
	if s.pos != len(s.data) {
		return s.fail("data after the JSON value")
	}
	return nil
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func trimJSONSpace(b []byte) []byte {
	for len(b) > 0 && isJSONSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isJSONSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

func (s *jsonScanner) skipSpace() {
	for s.pos < len(s.data) && isJSONSpace(s.data[s.pos]) {
		s.pos++
	}
}

func (s *jsonScanner) value() error {
	s.skipSpace()
	if s.pos >= len(s.data) {
		return s.unexpected()
	}
	switch c := s.data[s.pos]; {
	case c == '{':
		return s.object()
	case c == '[':
		return s.array()
	case c == '"':
		return s.str()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	}
	return s.unexpected()
}

func (s *jsonScanner) literal(lit string) error {
	if len(s.data)-s.pos < len(lit) || string(s.data[s.pos:s.pos+len(lit)]) != lit {
		return s.fail("invalid literal (want " + lit + ")")
	}
	s.pos += len(lit)
	return nil
}

func (s *jsonScanner) digits() int {
	start := s.pos
	for s.pos < len(s.data) && s.data[s.pos] >= '0' && s.data[s.pos] <= '9' {
		s.pos++
	}
	return s.pos - start
}

func (s *jsonScanner) number() error {
	if s.data[s.pos] == '-' {
		s.pos++
	}
	if s.pos < len(s.data) && s.data[s.pos] == '0' {
		s.pos++
	} else if s.digits() == 0 {
		return s.unexpected()
	}
	if s.pos < len(s.data) && s.data[s.pos] == '.' {
		s.pos++
		if s.digits() == 0 {
			return s.unexpected()
		}
	}
	if s.pos < len(s.data) && (s.data[s.pos] == 'e' || s.data[s.pos] == 'E') {
		s.pos++
		if s.pos < len(s.data) && (s.data[s.pos] == '+' || s.data[s.pos] == '-') {
			s.pos++
		}
		if s.digits() == 0 {
			return s.unexpected()
		}
	}
	return nil
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// str scans a string. Bytes 0x20 and above are taken as they are (invalid
// UTF-8 included, as json.Valid does; decoding replaces it with U+FFFD).
func (s *jsonScanner) str() error {
	s.pos++ // the opening quote
	for s.pos < len(s.data) {
		c := s.data[s.pos]
		switch {
		case c == '"':
			s.pos++
			return nil
		case c == '\\':
			s.pos++
			if s.pos >= len(s.data) {
				return s.unexpected()
			}
			switch s.data[s.pos] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.pos++
			case 'u':
				if len(s.data)-s.pos < 5 || !isHex(s.data[s.pos+1]) || !isHex(s.data[s.pos+2]) ||
					!isHex(s.data[s.pos+3]) || !isHex(s.data[s.pos+4]) {
					return s.fail("invalid \\u escape in string")
				}
				s.pos += 5
			default:
				return s.fail(fmt.Sprintf("invalid escape %q in string", s.data[s.pos]))
			}
		case c < 0x20:
			return s.fail("control character in string")
		default:
			s.pos++
		}
	}
	return s.unexpected()
}

func (s *jsonScanner) enter() error {
	s.depth++
	if s.depth > s.maxDepth {
		return s.fail("nesting deeper than " + strconv.Itoa(s.maxDepth) + " levels")
	}
	s.pos++ // the opening bracket
	s.skipSpace()
	return nil
}

func (s *jsonScanner) array() error {
	if err := s.enter(); err != nil {
		return err
	}
	if s.pos < len(s.data) && s.data[s.pos] == ']' {
		s.pos++
		s.depth--
		return nil
	}
	for i := 0; ; i++ {
		s.skipSpace()
		start := s.pos
		if err := s.value(); err != nil {
			return err
		}
		if s.depth == 1 {
			if i == 0 {
				s.firstStart, s.firstEnd = start, s.pos
			}
			if s.elems != nil {
				*s.elems = append(*s.elems, s.data[start:s.pos:s.pos])
			}
		}
		s.skipSpace()
		if s.pos >= len(s.data) {
			return s.unexpected()
		}
		switch s.data[s.pos] {
		case ',':
			s.pos++
		case ']':
			s.pos++
			s.depth--
			return nil
		default:
			return s.fail(fmt.Sprintf("unexpected character %q in array (want ',' or ']')", s.data[s.pos]))
		}
	}
}

func (s *jsonScanner) object() error {
	start := s.pos
	if err := s.enter(); err != nil {
		return err
	}
	if s.pos < len(s.data) && s.data[s.pos] == '}' {
		s.pos++
		s.depth--
		return nil
	}
	watch := s.checkPlaceholders || s.collect != nil
	isPlaceholder := false
	numStart, numEnd := -1, -1
	for {
		s.skipSpace()
		if s.pos >= len(s.data) || s.data[s.pos] != '"' {
			return s.fail("object key is not a string")
		}
		keyStart := s.pos
		if err := s.str(); err != nil {
			return err
		}
		key := s.data[keyStart:s.pos]
		s.skipSpace()
		if s.pos >= len(s.data) || s.data[s.pos] != ':' {
			return s.fail("missing ':' after object key")
		}
		s.pos++
		s.skipSpace()
		valStart := s.pos
		if err := s.value(); err != nil {
			return err
		}
		if watch {
			if keyIs(key, "_placeholder") {
				isPlaceholder = string(s.data[valStart:s.pos]) == "true"
			} else if keyIs(key, "num") {
				numStart, numEnd = valStart, s.pos
			}
		}
		s.skipSpace()
		if s.pos >= len(s.data) {
			return s.unexpected()
		}
		switch s.data[s.pos] {
		case ',':
			s.pos++
		case '}':
			s.pos++
			s.depth--
			if isPlaceholder {
				return s.placeholder(start, numStart, numEnd)
			}
			return nil
		default:
			return s.fail(fmt.Sprintf("unexpected character %q in object (want ',' or '}')", s.data[s.pos]))
		}
	}
}

// placeholder checks the placeholder object data[start:s.pos] whose "num"
// is data[numStart:numEnd] (numStart < 0 when absent).
func (s *jsonScanner) placeholder(start, numStart, numEnd int) error {
	num := -1
	if numStart >= 0 && s.data[numStart] != '"' && s.data[numStart] != '[' && s.data[numStart] != '{' {
		// JSON.parse accepts 1.0 or 1e0 as the number 1, so do we.
		if f, err := strconv.ParseFloat(string(s.data[numStart:numEnd]), 64); err == nil &&
			f >= 0 && f == math.Trunc(f) && f < float64(s.attachments) {
			num = int(f)
		}
	}
	if num < 0 {
		if numStart < 0 {
			return &jsonError{off: start, msg: "attachment placeholder has no num"}
		}
		return &jsonError{off: start, msg: fmt.Sprintf("attachment placeholder num %s is not an attachment index in [0, %d)", s.data[numStart:numEnd], s.attachments)}
	}
	if s.collect != nil {
		*s.collect = append(*s.collect, placeholderSpan{start: start, end: s.pos, num: num})
	}
	return nil
}

// keyIs reports whether the JSON string quoted equals k once unescaped.
func keyIs(quoted []byte, k string) bool {
	inner := quoted[1 : len(quoted)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return string(inner) == k
	}
	var s string
	return json.Unmarshal(quoted, &s) == nil && s == k
}
