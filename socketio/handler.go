package socketio

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync/atomic"
)

// Args are the arguments of an event or of an acknowledgement, as the
// peer sent them: JSON, with binary attachments.
type Args struct {
	raw []json.RawMessage
	att [][]byte
}

// Len returns the number of arguments.
func (a *Args) Len() int { return len(a.raw) }

// Raw returns argument i as JSON, binary attachments appearing as
// {"_placeholder":true,"num":N}; nil if there is no argument i.
func (a *Args) Raw(i int) json.RawMessage {
	if i < 0 || i >= len(a.raw) {
		return nil
	}
	return a.raw[i]
}

// Decode decodes argument i into v, a pointer, as encoding/json does; a
// *[]byte takes a binary attachment, and binary nested in objects decodes
// into []byte fields.
func (a *Args) Decode(i int, v any) error {
	if i < 0 || i >= len(a.raw) {
		return fmt.Errorf("socketio: no argument %d (there are %d)", i, len(a.raw))
	}
	if err := decodeArg(a.raw[i], a.att, v); err != nil {
		return fmt.Errorf("socketio: argument %d: %w", i, err)
	}
	return nil
}

// Values returns the arguments in a form that Emit and Ack send on
// unchanged: the JSON text as received, with its binary attachments (a
// relay that keeps the order of object keys).
func (a *Args) Values() []any {
	out := make([]any, len(a.raw))
	for i, r := range a.raw {
		out[i] = rawArg{Raw: r, Attachments: a.att}
	}
	return out
}

// Event is an incoming event: its name, its arguments, and the means to
// acknowledge it.
type Event struct {
	Name string // the event's name
	Args        // its arguments

	nsp   string
	ackID int64
	send  func(*Packet) error // nil when no acknowledgement was asked for
	acked atomic.Bool
}

// WantsAck reports whether the peer asked for an acknowledgement.
func (e *Event) WantsAck() bool { return e.send != nil }

// Ack acknowledges the event with args (encoded as Emit does). Only the
// first call sends anything; without a request for one, it does nothing.
func (e *Event) Ack(args ...any) error {
	if e.send == nil || !e.acked.CompareAndSwap(false, true) {
		return nil
	}
	data, att, err := encodeArgs(make([]byte, 0, 32), args)
	if err != nil {
		return fmt.Errorf("socketio: encoding the acknowledgement of %q: %w", e.Name, err)
	}
	p := &Packet{Type: PacketAck, Namespace: e.nsp, ID: e.ackID, Data: data, Attachments: att}
	if len(att) > 0 {
		p.Type = PacketBinaryAck
	}
	return e.send(p)
}

// eventHandler is a handler function given to Socket.On or
// ClientSocket.On; its first parameter is the socket.
type eventHandler struct {
	fn     reflect.Value
	raw    func(owner any, e *Event)                   // the func(S, *Event) form
	params []reflect.Type                              // the argument parameters
	ack    bool                                        // the last parameter is func(...any)
	fast   func(owner any, e *Event, ack func(...any)) // common shapes without reflect.Call
}

var (
	ackType   = reflect.TypeFor[func(...any)]()
	errorType = reflect.TypeFor[error]()
)

// newEventHandler checks fn's shape for a socket of type S.
func newEventHandler[S any](fn any) (*eventHandler, error) {
	if fn == nil {
		return nil, errors.New("nil handler")
	}
	switch f := fn.(type) {
	case func(S, *Event):
		return &eventHandler{raw: func(o any, e *Event) { f(o.(S), e) }}, nil
	case func(S):
		return &eventHandler{fast: func(o any, _ *Event, _ func(...any)) { f(o.(S)) }}, nil
	case func(S, func(...any)):
		return &eventHandler{ack: true, fast: func(o any, _ *Event, ack func(...any)) { f(o.(S), ack) }}, nil
	}
	v := reflect.ValueOf(fn)
	t := v.Type()
	if t.Kind() != reflect.Func {
		return nil, fmt.Errorf("the handler is a %v, not a function", t)
	}
	if st := reflect.TypeFor[S](); t.NumIn() == 0 || t.In(0) != st {
		return nil, fmt.Errorf("the handler's first parameter must be %v (it is %v)", st, t)
	}
	if t.IsVariadic() {
		return nil, fmt.Errorf("the handler %v is variadic: take a *socketio.Event to get every argument", t)
	}
	if t.NumOut() > 1 || (t.NumOut() == 1 && t.Out(0) != errorType) {
		return nil, fmt.Errorf("the handler %v may return nothing or an error", t)
	}
	h := &eventHandler{fn: v}
	n := t.NumIn()
	if n > 1 && t.In(n-1) == ackType {
		h.ack = true
		n--
	}
	for i := 1; i < n; i++ {
		if t.In(i) == ackType {
			return nil, fmt.Errorf("the acknowledgement func(...any) must be the handler's last parameter (%v)", t)
		}
		h.params = append(h.params, t.In(i))
	}
	return h, nil
}

// call runs the handler for e with owner, the socket. It returns an
// argument that did not decode, or the error the handler returned; errors
// of the acknowledgement go to report.
func (h *eventHandler) call(owner any, e *Event, report func(error)) error {
	if h.raw != nil {
		h.raw(owner, e)
		return nil
	}
	ack := func(args ...any) {
		if err := e.Ack(args...); err != nil {
			report(err)
		}
	}
	if h.fast != nil {
		h.fast(owner, e, ack)
		return nil
	}
	in := make([]reflect.Value, 0, len(h.params)+2)
	in = append(in, reflect.ValueOf(owner))
	for i, t := range h.params {
		p := reflect.New(t)
		if i < len(e.raw) && !isJSONNull(e.raw[i]) {
			if err := decodeArg(e.raw[i], e.att, p.Interface()); err != nil {
				return fmt.Errorf("argument %d does not fit the handler's %v: %w", i, t, err)
			}
		}
		in = append(in, p.Elem())
	}
	if h.ack {
		in = append(in, reflect.ValueOf(ack))
	}
	out := h.fn.Call(in)
	if len(out) == 1 && !out[0].IsNil() {
		return out[0].Interface().(error)
	}
	return nil
}

func isJSONNull(r json.RawMessage) bool { return string(r) == "null" }
