package socketio

import (
	"bytes"
	"encoding"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// splitArgs returns the elements of the JSON array data (the payload of an
// EVENT or ACK) without decoding them. The elements alias data. It is an
// error if data is not a valid JSON array.
func splitArgs(data json.RawMessage) ([]json.RawMessage, error) {
	return appendArgs(nil, data)
}

// appendArgs is splitArgs appending to dst, to reuse its storage.
func appendArgs(dst []json.RawMessage, data json.RawMessage) ([]json.RawMessage, error) {
	data = trimJSONSpace(data)
	if len(data) == 0 || data[0] != '[' {
		return dst, errors.New("socketio: arguments are not a JSON array")
	}
	s := jsonScanner{data: data, maxDepth: maxJSONDepth, elems: &dst}
	if err := s.scanAll(); err != nil {
		return dst, fmt.Errorf("socketio: arguments: %w", err)
	}
	return dst, nil
}

// eventName splits the payload of an EVENT into the event name and its
// arguments. A numeric event name (which socket.io-parser lets through) is
// returned as JavaScript prints the number, so 1e3 is "1000".
func eventName(data json.RawMessage) (string, []json.RawMessage, error) {
	args, err := splitArgs(data)
	if err != nil {
		return "", nil, err
	}
	if len(args) == 0 {
		return "", nil, errors.New("socketio: event has no name")
	}
	first := args[0]
	switch c := first[0]; {
	case c == '"':
		inner := first[1 : len(first)-1]
		if bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
			return string(inner), args[1:], nil
		}
		var name string
		if err := json.Unmarshal(first, &name); err != nil {
			return "", nil, fmt.Errorf("socketio: event name: %w", err)
		}
		return name, args[1:], nil
	case c == '-' || (c >= '0' && c <= '9'):
		return jsNumberString(first), args[1:], nil
	}
	return "", nil, fmt.Errorf("socketio: event name %s is not a string or a number", first)
}

// jsNumberString formats the JSON number text num as JavaScript's
// Number.prototype.toString does (ECMA-262 Number::toString), which is the
// property key a JavaScript peer would use for it.
func jsNumberString(num []byte) string {
	f, err := strconv.ParseFloat(string(num), 64)
	if err != nil && !math.IsInf(f, 0) {
		return string(num)
	}
	switch {
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	case f == 0:
		return "0"
	}
	var b []byte
	if f < 0 {
		b = append(b, '-')
		f = -f
	}
	// Shortest digits d1.d2…dk and exponent e: f = 0.d1…dk × 10^n, n = e+1.
	e := strconv.FormatFloat(f, 'e', -1, 64)
	mant, exp, _ := strings.Cut(e, "e")
	digits := strings.Replace(mant, ".", "", 1)
	x, _ := strconv.Atoi(exp)
	k, n := len(digits), x+1
	switch {
	case k <= n && n <= 21:
		b = append(b, digits...)
		b = append(b, strings.Repeat("0", n-k)...)
	case 0 < n && n <= 21:
		b = append(b, digits[:n]...)
		b = append(b, '.')
		b = append(b, digits[n:]...)
	case -6 < n && n <= 0:
		b = append(b, "0."...)
		b = append(b, strings.Repeat("0", -n)...)
		b = append(b, digits...)
	default:
		b = append(b, digits[0])
		if k > 1 {
			b = append(b, '.')
			b = append(b, digits[1:]...)
		}
		b = append(b, 'e')
		if n-1 >= 0 {
			b = append(b, '+')
		}
		b = strconv.AppendInt(b, int64(n-1), 10)
	}
	return string(b)
}

// decodeArg decodes one argument into target, a non-nil pointer, replacing
// the attachment placeholders {"_placeholder":true,"num":N} by
// attachments[N]:
//   - into *[]byte, a placeholder argument gives the attachment itself
//     (not a copy);
//   - into *any, *[]any or *map[string]any, each placeholder becomes a
//     []byte, at the top or nested in maps and slices;
//   - into anything else, nested placeholders reach encoding/json as base64
//     strings, so []byte fields and elements decode natively. An `any`
//     field of a struct therefore receives the base64 string.
//
// When attachments is empty (an EVENT or ACK, not BINARY_*), placeholders
// are ordinary objects, as in socket.io-parser.
func decodeArg(raw json.RawMessage, attachments [][]byte, target any) error {
	if target == nil || reflect.TypeOf(target).Kind() != reflect.Pointer || reflect.ValueOf(target).IsNil() {
		return fmt.Errorf("socketio: decode argument into %T: want a non-nil pointer", target)
	}
	raw = trimJSONSpace(raw)
	var spans []placeholderSpan
	// A placeholder key is "_placeholder", possibly written with \u escapes.
	if len(attachments) > 0 && (bytes.Contains(raw, []byte("placeholder")) || bytes.Contains(raw, []byte(`\u`))) {
		s := jsonScanner{data: raw, maxDepth: maxJSONDepth, attachments: len(attachments), collect: &spans}
		if err := s.scanAll(); err != nil {
			return fmt.Errorf("socketio: argument: %w", err)
		}
	}
	if len(spans) == 0 {
		switch t := target.(type) {
		case *string:
			// The common case, without encoding/json's allocations.
			if len(raw) >= 2 && raw[0] == '"' && raw[len(raw)-1] == '"' {
				if inner := raw[1 : len(raw)-1]; isPlainString(inner) {
					*t = string(inner)
					return nil
				}
			}
		case *json.RawMessage:
			s := jsonScanner{data: raw, maxDepth: maxJSONDepth}
			if err := s.scanAll(); err != nil {
				return fmt.Errorf("socketio: argument: %w", err)
			}
			*t = append((*t)[:0], raw...)
			return nil
		}
		return unmarshalArg(raw, target)
	}
	switch t := target.(type) {
	case *[]byte:
		if sp := spans[len(spans)-1]; sp.start == 0 && sp.end == len(raw) {
			*t = attachments[sp.num]
			return nil
		}
	case *any:
		var v any
		if err := unmarshalArg(raw, &v); err != nil {
			return err
		}
		*t = resolvePlaceholders(v, attachments)
		return nil
	case *[]any:
		var v any
		if err := unmarshalArg(raw, &v); err != nil {
			return err
		}
		s, ok := resolvePlaceholders(v, attachments).([]any)
		if !ok && v != nil {
			return fmt.Errorf("socketio: cannot decode argument %.40s into %T", raw, target)
		}
		*t = s
		return nil
	case *map[string]any:
		var v any
		if err := unmarshalArg(raw, &v); err != nil {
			return err
		}
		m, ok := resolvePlaceholders(v, attachments).(map[string]any)
		if !ok && v != nil {
			return fmt.Errorf("socketio: cannot decode argument %.40s into %T", raw, target)
		}
		*t = m
		return nil
	}
	return unmarshalArg(inlineAttachments(raw, spans, attachments), target)
}

// isPlainString reports whether b, between quotes, is a JSON string that
// needs no unescaping: valid UTF-8 without quotes, backslashes or control
// characters.
func isPlainString(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c == '"' || c == '\\' {
			return false
		}
	}
	return utf8.Valid(b)
}

func unmarshalArg(raw []byte, target any) error {
	if err := json.Unmarshal(raw, target); err != nil {
		return fmt.Errorf("socketio: decode argument into %T: %w", target, err)
	}
	return nil
}

// inlineAttachments returns raw with each placeholder object replaced by
// its attachment as a base64 JSON string.
func inlineAttachments(raw []byte, spans []placeholderSpan, attachments [][]byte) []byte {
	// Spans are noted when their object closes, so inner ones come first.
	slices.SortFunc(spans, func(a, b placeholderSpan) int { return a.start - b.start })
	n := len(raw)
	for _, sp := range spans {
		n += base64.StdEncoding.EncodedLen(len(attachments[sp.num])) + 2
	}
	out := make([]byte, 0, n)
	last := 0
	for _, sp := range spans {
		if sp.start < last {
			continue // inside a placeholder already replaced
		}
		out = append(out, raw[last:sp.start]...)
		out = append(out, '"')
		out = base64.StdEncoding.AppendEncode(out, attachments[sp.num])
		out = append(out, '"')
		last = sp.end
	}
	return append(out, raw[last:]...)
}

// resolvePlaceholders replaces, in a value decoded by encoding/json, every
// placeholder map by its attachment, changing maps and slices in place.
func resolvePlaceholders(v any, attachments [][]byte) any {
	switch x := v.(type) {
	case map[string]any:
		if x["_placeholder"] == true {
			// The scanner has checked num already.
			if f, ok := x["num"].(float64); ok && f >= 0 && f < float64(len(attachments)) && f == math.Trunc(f) {
				return attachments[int(f)]
			}
			return x
		}
		for k, e := range x {
			x[k] = resolvePlaceholders(e, attachments)
		}
	case []any:
		for i, e := range x {
			x[i] = resolvePlaceholders(e, attachments)
		}
	}
	return v
}

// encodeArgs appends the JSON array of args to dst, as JavaScript's
// JSON.stringify would write it (no spaces, <>& not escaped), and returns it
// with the binary attachments taken out of args:
//   - a []byte (or a type whose underlying type is []byte and has no
//     MarshalJSON or MarshalText), at the top or nested in maps, slices,
//     arrays, pointers, interfaces and struct fields, becomes
//     {"_placeholder":true,"num":N}, N counting from 0 in the order written;
//     the attachment is the slice itself, not a copy. A nil slice is null,
//     as encoding/json writes it; an empty one is an empty attachment;
//   - json.RawMessage is written as is (it must be valid; it is compacted);
//     a rawArg too, with its placeholders renumbered;
//   - anything else is written by encoding/json, with its rules for struct
//     tags, map key order (sorted) and Marshalers.
//
// An event's name is just a leading string argument.
func encodeArgs(dst []byte, args []any) ([]byte, [][]byte, error) {
	e := argEncoder{buf: append(dst, '[')}
	for i, a := range args {
		if i > 0 {
			e.buf = append(e.buf, ',')
		}
		if err := e.encode(a); err != nil {
			return dst, nil, err
		}
	}
	return append(e.buf, ']'), e.attachments, nil
}

// maxEncodeDepth bounds the nesting encodeArgs follows, so that a cyclic
// value is an error and not a stack overflow.
const maxEncodeDepth = 1000

type argEncoder struct {
	buf         []byte
	attachments [][]byte
	depth       int
}

func (e *argEncoder) placeholder(b []byte) {
	e.buf = append(e.buf, `{"_placeholder":true,"num":`...)
	e.buf = strconv.AppendInt(e.buf, int64(len(e.attachments)), 10)
	e.buf = append(e.buf, '}')
	e.attachments = append(e.attachments, b)
}

func (e *argEncoder) encode(v any) error {
	switch x := v.(type) {
	case nil:
		e.buf = append(e.buf, "null"...)
	case []byte:
		if x == nil {
			e.buf = append(e.buf, "null"...)
			return nil
		}
		e.placeholder(x)
	case json.RawMessage:
		return e.raw(x)
	case rawArg:
		return e.rawWithAttachments(x)
	case *rawArg:
		if x == nil {
			e.buf = append(e.buf, "null"...)
			return nil
		}
		return e.rawWithAttachments(*x)
	case string:
		e.buf = appendJSONString(e.buf, x)
	case bool:
		e.buf = strconv.AppendBool(e.buf, x)
	case int:
		e.buf = strconv.AppendInt(e.buf, int64(x), 10)
	case int64:
		e.buf = strconv.AppendInt(e.buf, x, 10)
	case int32:
		e.buf = strconv.AppendInt(e.buf, int64(x), 10)
	case uint64:
		e.buf = strconv.AppendUint(e.buf, x, 10)
	case float64:
		return e.float(x, 64)
	case float32:
		return e.float(float64(x), 32)
	case map[string]any:
		if x == nil {
			e.buf = append(e.buf, "null"...)
			return nil
		}
		if err := e.enter(); err != nil {
			return err
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		e.buf = append(e.buf, '{')
		for i, k := range keys {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			e.buf = appendJSONString(e.buf, k)
			e.buf = append(e.buf, ':')
			if err := e.encode(x[k]); err != nil {
				return err
			}
		}
		e.buf = append(e.buf, '}')
		e.depth--
	case []any:
		if x == nil {
			e.buf = append(e.buf, "null"...)
			return nil
		}
		if err := e.enter(); err != nil {
			return err
		}
		e.buf = append(e.buf, '[')
		for i, a := range x {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			if err := e.encode(a); err != nil {
				return err
			}
		}
		e.buf = append(e.buf, ']')
		e.depth--
	default:
		return e.value(reflect.ValueOf(v))
	}
	return nil
}

func (e *argEncoder) enter() error {
	e.depth++
	if e.depth > maxEncodeDepth {
		return fmt.Errorf("socketio: encode arguments: nested deeper than %d levels (is the value cyclic?)", maxEncodeDepth)
	}
	return nil
}

// raw appends a json.RawMessage, checked and compacted as encoding/json does.
func (e *argEncoder) raw(r json.RawMessage) error {
	if r == nil {
		e.buf = append(e.buf, "null"...)
		return nil
	}
	s := jsonScanner{data: r, maxDepth: maxJSONDepth}
	if err := s.scanAll(); err != nil {
		return fmt.Errorf("socketio: encode json.RawMessage argument: %w", err)
	}
	if !bytes.ContainsAny(r, " \t\r\n") {
		e.buf = append(e.buf, r...)
		return nil
	}
	b := bytes.NewBuffer(e.buf)
	if err := json.Compact(b, r); err != nil {
		return fmt.Errorf("socketio: encode json.RawMessage argument: %w", err)
	}
	e.buf = b.Bytes()
	return nil
}

// rawArg is an argument already in JSON whose placeholders refer to
// Attachments, such as an argument of a received BINARY_EVENT with the
// packet's attachments. encodeArgs writes it as is, but renumbers its
// placeholders in the order met and takes the attachments they name, so
// that raw arguments can be relayed, mixed with others, without decoding.
type rawArg struct {
	Raw         json.RawMessage
	Attachments [][]byte
}

func (e *argEncoder) rawWithAttachments(r rawArg) error {
	raw := trimJSONSpace(r.Raw)
	var spans []placeholderSpan
	if len(r.Attachments) > 0 {
		s := jsonScanner{data: raw, maxDepth: maxJSONDepth, attachments: len(r.Attachments), collect: &spans}
		if err := s.scanAll(); err != nil {
			return fmt.Errorf("socketio: encode raw argument: %w", err)
		}
	}
	if len(spans) == 0 {
		return e.raw(raw)
	}
	slices.SortFunc(spans, func(a, b placeholderSpan) int { return a.start - b.start })
	out := make([]byte, 0, len(raw))
	last := 0
	for _, sp := range spans {
		if sp.start < last {
			continue // inside a placeholder already replaced
		}
		out = append(out, raw[last:sp.start]...)
		out = append(out, `{"_placeholder":true,"num":`...)
		out = strconv.AppendInt(out, int64(len(e.attachments)), 10)
		out = append(out, '}')
		e.attachments = append(e.attachments, r.Attachments[sp.num])
		last = sp.end
	}
	return e.raw(append(out, raw[last:]...))
}

// float appends f as encoding/json does, which is how JavaScript prints
// numbers too.
func (e *argEncoder) float(f float64, bits int) error {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return fmt.Errorf("socketio: encode arguments: unsupported number %v", f)
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 {
		if bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			format = 'e'
		}
	}
	start := len(e.buf)
	e.buf = strconv.AppendFloat(e.buf, f, format, -1, bits)
	if format == 'e' {
		// 1e-07 → 1e-7, as JavaScript writes it.
		b := e.buf[start:]
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			e.buf = e.buf[:len(e.buf)-1]
		}
	}
	return nil
}

// value encodes what the type switch of encode did not take.
func (e *argEncoder) value(v reflect.Value) error {
	if !v.IsValid() {
		e.buf = append(e.buf, "null"...)
		return nil
	}
	t := v.Type()
	if !typeHasBinary(t) {
		if v.CanInterface() {
			return e.marshal(v)
		}
		// A field promoted from an unexported embedded struct: reflect
		// does not let it out as an interface, so it is walked below.
		if hasMarshaler(t) {
			return fmt.Errorf("socketio: encode arguments: cannot call the Marshaler of %v reached through an unexported embedded field", t)
		}
	}
	if err := e.enter(); err != nil {
		return err
	}
	defer func() { e.depth-- }()
	switch t.Kind() {
	case reflect.String:
		e.buf = appendJSONString(e.buf, v.String())
		return nil
	case reflect.Bool:
		e.buf = strconv.AppendBool(e.buf, v.Bool())
		return nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		e.buf = strconv.AppendInt(e.buf, v.Int(), 10)
		return nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		e.buf = strconv.AppendUint(e.buf, v.Uint(), 10)
		return nil
	case reflect.Float32:
		return e.float(v.Float(), 32)
	case reflect.Float64:
		return e.float(v.Float(), 64)
	case reflect.Slice:
		if v.IsNil() {
			e.buf = append(e.buf, "null"...)
			return nil
		}
		if isByteSlice(t) {
			e.placeholder(v.Bytes())
			return nil
		}
		return e.elems(v)
	case reflect.Array:
		return e.elems(v)
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			e.buf = append(e.buf, "null"...)
			return nil
		}
		return e.value(v.Elem())
	case reflect.Map:
		return e.mapValue(v)
	case reflect.Struct:
		return e.structValue(v)
	}
	return e.marshal(v)
}

func (e *argEncoder) elems(v reflect.Value) error {
	e.buf = append(e.buf, '[')
	for i := range v.Len() {
		if i > 0 {
			e.buf = append(e.buf, ',')
		}
		if err := e.value(v.Index(i)); err != nil {
			return err
		}
	}
	e.buf = append(e.buf, ']')
	return nil
}

func (e *argEncoder) mapValue(v reflect.Value) error {
	if v.IsNil() {
		e.buf = append(e.buf, "null"...)
		return nil
	}
	type kv struct {
		k string
		v reflect.Value
	}
	kvs := make([]kv, 0, v.Len())
	for it := v.MapRange(); it.Next(); {
		k, err := mapKeyString(it.Key())
		if err != nil {
			return err
		}
		kvs = append(kvs, kv{k, it.Value()})
	}
	slices.SortFunc(kvs, func(a, b kv) int { return strings.Compare(a.k, b.k) })
	e.buf = append(e.buf, '{')
	for i, p := range kvs {
		if i > 0 {
			e.buf = append(e.buf, ',')
		}
		e.buf = appendJSONString(e.buf, p.k)
		e.buf = append(e.buf, ':')
		if err := e.value(p.v); err != nil {
			return err
		}
	}
	e.buf = append(e.buf, '}')
	return nil
}

// mapKeyString names a map key as encoding/json does.
func mapKeyString(k reflect.Value) (string, error) {
	if k.Kind() == reflect.String {
		return k.String(), nil
	}
	if !k.CanInterface() {
		return "", fmt.Errorf("socketio: encode arguments: map key of type %v reached through an unexported embedded field", k.Type())
	}
	if tm, ok := k.Interface().(encoding.TextMarshaler); ok {
		if k.Kind() == reflect.Pointer && k.IsNil() {
			return "", nil
		}
		b, err := tm.MarshalText()
		if err != nil {
			return "", fmt.Errorf("socketio: encode arguments: map key: %w", err)
		}
		return string(b), nil
	}
	switch k.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(k.Int(), 10), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return strconv.FormatUint(k.Uint(), 10), nil
	}
	return "", fmt.Errorf("socketio: encode arguments: unsupported map key type %v", k.Type())
}

func (e *argEncoder) structValue(v reflect.Value) error {
	e.buf = append(e.buf, '{')
	first := true
	fields := structFields(v.Type())
	for i := range fields {
		f := &fields[i]
		fv, err := v.FieldByIndexErr(f.index)
		if err != nil {
			continue // through a nil embedded pointer, as encoding/json
		}
		if f.omitEmpty && isEmptyValue(fv) || f.omitZero && isZeroValue(fv) {
			continue
		}
		if !first {
			e.buf = append(e.buf, ',')
		}
		first = false
		e.buf = append(e.buf, f.key...)
		if f.quoted {
			// `json:",string"` on a scalar: its JSON text as a string.
			inner := argEncoder{}
			if err := inner.value(fv); err != nil {
				return err
			}
			e.buf = appendJSONString(e.buf, string(inner.buf))
			continue
		}
		if err := e.value(fv); err != nil {
			return err
		}
	}
	e.buf = append(e.buf, '}')
	return nil
}

// marshal appends v as encoding/json writes it without HTML escaping.
func (e *argEncoder) marshal(v reflect.Value) error {
	j := jsonEncoders.Get().(*pooledJSONEncoder)
	j.buf.Reset()
	err := j.enc.Encode(v.Interface())
	if err == nil {
		b := j.buf.Bytes()
		e.buf = append(e.buf, b[:len(b)-1]...) // Encode adds a newline
	}
	if j.buf.Cap() <= 64<<10 {
		jsonEncoders.Put(j)
	}
	if err != nil {
		return fmt.Errorf("socketio: encode arguments: %w", err)
	}
	return nil
}

type pooledJSONEncoder struct {
	buf bytes.Buffer
	enc *json.Encoder
}

var jsonEncoders = sync.Pool{New: func() any {
	j := new(pooledJSONEncoder)
	j.enc = json.NewEncoder(&j.buf)
	j.enc.SetEscapeHTML(false) // JSON.stringify does not escape <, > and &
	return j
}}

var (
	jsonMarshalerType = reflect.TypeFor[json.Marshaler]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
)

func hasMarshaler(t reflect.Type) bool {
	p := reflect.PointerTo(t)
	return t.Implements(jsonMarshalerType) || t.Implements(textMarshalerType) ||
		p.Implements(jsonMarshalerType) || p.Implements(textMarshalerType)
}

// isByteSlice reports whether encoding/json writes values of type t (a
// slice) as base64, which makes them binary attachments here.
func isByteSlice(t reflect.Type) bool {
	if t.Kind() != reflect.Slice || t.Elem().Kind() != reflect.Uint8 {
		return false
	}
	p := reflect.PointerTo(t.Elem())
	return !p.Implements(jsonMarshalerType) && !p.Implements(textMarshalerType)
}

var binaryTypes sync.Map // reflect.Type → bool

// typeHasBinary reports whether a value of type t may hold a byte slice
// that encodeArgs must turn into an attachment. Types with their own
// Marshaler are left to it.
func typeHasBinary(t reflect.Type) bool {
	if b, ok := binaryTypes.Load(t); ok {
		return b.(bool)
	}
	b := computeHasBinary(t, map[reflect.Type]bool{})
	binaryTypes.Store(t, b)
	return b
}

func computeHasBinary(t reflect.Type, seen map[reflect.Type]bool) bool {
	if hasMarshaler(t) {
		return false
	}
	switch t.Kind() {
	case reflect.Slice:
		return isByteSlice(t) || computeHasBinary(t.Elem(), seen)
	case reflect.Array, reflect.Pointer, reflect.Map:
		return computeHasBinary(t.Elem(), seen)
	case reflect.Interface:
		return true
	case reflect.Struct:
		if seen[t] {
			return false
		}
		seen[t] = true
		for i := range t.NumField() {
			f := t.Field(i)
			if (f.IsExported() || f.Anonymous) && f.Tag.Get("json") != "-" && computeHasBinary(f.Type, seen) {
				return true
			}
		}
	}
	return false
}

// encField is a struct field as encoding/json names and writes it.
type encField struct {
	name      string
	key       []byte // the name as a JSON string, then ':'
	index     []int
	tagged    bool
	omitEmpty bool
	omitZero  bool
	quoted    bool
}

var structFieldCache sync.Map // reflect.Type → []encField

// structFields returns the fields encoding/json writes for struct type t,
// in order, following its rules for tags, embedding and name conflicts.
func structFields(t reflect.Type) []encField {
	if f, ok := structFieldCache.Load(t); ok {
		return f.([]encField)
	}
	f := typeFields(t)
	structFieldCache.Store(t, f)
	return f
}

func typeFields(t reflect.Type) []encField {
	type level struct {
		typ   reflect.Type
		index []int
	}
	var fields []encField
	next := []level{{typ: t}}
	var count, nextCount map[reflect.Type]int
	visited := map[reflect.Type]bool{}
	for len(next) > 0 {
		current := next
		next = nil
		count, nextCount = nextCount, map[reflect.Type]int{}
		for _, l := range current {
			if visited[l.typ] {
				continue
			}
			visited[l.typ] = true
			for i := range l.typ.NumField() {
				sf := l.typ.Field(i)
				if sf.Anonymous {
					ft := sf.Type
					if ft.Kind() == reflect.Pointer {
						ft = ft.Elem()
					}
					if !sf.IsExported() && ft.Kind() != reflect.Struct {
						continue
					}
				} else if !sf.IsExported() {
					continue
				}
				tag := sf.Tag.Get("json")
				if tag == "-" {
					continue
				}
				name, opts, _ := strings.Cut(tag, ",")
				if !isValidTag(name) {
					name = ""
				}
				index := append(slices.Clone(l.index), i)
				ft := sf.Type
				if ft.Name() == "" && ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if name != "" || !sf.Anonymous || ft.Kind() != reflect.Struct {
					f := encField{name: name, tagged: name != "", index: index}
					if f.name == "" {
						f.name = sf.Name
					}
					for o := range strings.SplitSeq(opts, ",") {
						switch o {
						case "omitempty":
							f.omitEmpty = true
						case "omitzero":
							f.omitZero = true
						case "string":
							switch ft.Kind() {
							case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
								reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
								reflect.Float32, reflect.Float64, reflect.String:
								f.quoted = true
							}
						}
					}
					f.key = append(appendJSONString(nil, f.name), ':')
					fields = append(fields, f)
					if count[l.typ] > 1 {
						// Two embeddings at one level: the copies annihilate below.
						fields = append(fields, fields[len(fields)-1])
					}
					continue
				}
				nextCount[ft]++
				if nextCount[ft] == 1 {
					next = append(next, level{typ: ft, index: index})
				}
			}
		}
	}
	slices.SortStableFunc(fields, func(a, b encField) int {
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		if c := len(a.index) - len(b.index); c != 0 {
			return c
		}
		if a.tagged != b.tagged {
			if a.tagged {
				return -1
			}
			return 1
		}
		return slices.Compare(a.index, b.index)
	})
	out := fields[:0]
	for i, advance := 0, 0; i < len(fields); i += advance {
		for advance = 1; i+advance < len(fields) && fields[i+advance].name == fields[i].name; advance++ {
		}
		group := fields[i : i+advance]
		// The shallowest field wins, then the tagged one; a tie hides all.
		if len(group) > 1 && len(group[0].index) == len(group[1].index) && group[0].tagged == group[1].tagged {
			continue
		}
		out = append(out, group[0])
	}
	slices.SortFunc(out, func(a, b encField) int { return slices.Compare(a.index, b.index) })
	return out
}

func isValidTag(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		switch {
		case strings.ContainsRune("!#$%&()*+-./:;<=>?@[]^_{|}~ ", c):
		case !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c > utf8.RuneSelf):
			return false
		}
	}
	return true
}

// isEmptyValue is encoding/json's omitempty test.
func isEmptyValue(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Interface, reflect.Pointer:
		return v.IsZero()
	}
	return false
}

// isZeroValue is encoding/json's omitzero test: an IsZero method if the
// type has one, else the zero value.
func isZeroValue(v reflect.Value) bool {
	if (v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface) && v.IsNil() {
		return true
	}
	if v.CanInterface() {
		if z, ok := v.Interface().(interface{ IsZero() bool }); ok {
			return z.IsZero()
		}
	}
	return v.IsZero()
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string the way JSON.stringify writes
// it: only ", \ and control characters are escaped (\b \f \n \r \t or
// \u00xx), not <, > and & as encoding/json does by default. Invalid UTF-8
// becomes \ufffd, as in encoding/json.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r != utf8.RuneError || size != 1 {
				i += size
				continue
			}
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		i++
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
