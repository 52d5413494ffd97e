package socketio

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

func rawList(ss ...string) []json.RawMessage {
	out := make([]json.RawMessage, len(ss))
	for i, s := range ss {
		out[i] = json.RawMessage(s)
	}
	return out
}

func TestSplitArgs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want []json.RawMessage
		bad  bool
	}{
		{in: `[]`, want: rawList()},
		{in: `["a"]`, want: rawList(`"a"`)},
		{in: `["a",{"b":[1,2]},null,-1.5e3,"x,y]"]`, want: rawList(`"a"`, `{"b":[1,2]}`, `null`, `-1.5e3`, `"x,y]"`)},
		{in: ` [ "a" , [ ] ] `, want: rawList(`"a"`, `[ ]`)},
		{in: `{}`, bad: true},
		{in: `"a"`, bad: true},
		{in: `["a"`, bad: true},
		{in: `["a"]x`, bad: true},
		{in: ``, bad: true},
	}
	for _, tt := range tests {
		got, err := splitArgs(json.RawMessage(tt.in))
		if tt.bad {
			if err == nil {
				t.Errorf("splitArgs(%s) = %s, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || len(got) != len(tt.want) {
			t.Errorf("splitArgs(%s) = %s, %v; want %s", tt.in, got, err, tt.want)
			continue
		}
		for i := range got {
			if !bytes.Equal(got[i], tt.want[i]) {
				t.Errorf("splitArgs(%s)[%d] = %s, want %s", tt.in, i, got[i], tt.want[i])
			}
		}
	}
}

func TestEventName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in    string
		name  string
		nargs int
		bad   bool
	}{
		{in: `["chat",{"text":"hi"}]`, name: "chat", nargs: 1},
		{in: `["a\"b\u00e9"]`, name: "a\"bé"},
		{in: `["é"]`, name: "é"},
		{in: `[1,2,3]`, name: "1", nargs: 2},
		{in: `[1.0]`, name: "1"},
		{in: `[-0]`, name: "0"},
		{in: `[1e3]`, name: "1000"},
		{in: `[1.5]`, name: "1.5"},
		{in: `[-12.25]`, name: "-12.25"},
		{in: `[1e21]`, name: "1e+21"},
		{in: `[123456789012345678901]`, name: "123456789012345680000"},
		{in: `[1.5e-7]`, name: "1.5e-7"},
		{in: `[0.000001]`, name: "0.000001"},
		{in: `[1e400]`, name: "Infinity"},
		{in: `[]`, bad: true},
		{in: `[null]`, bad: true},
		{in: `[{}]`, bad: true},
		{in: `{}`, bad: true},
	}
	for _, tt := range tests {
		name, args, err := eventName(json.RawMessage(tt.in))
		if tt.bad {
			if err == nil {
				t.Errorf("eventName(%s) = %q, want an error", tt.in, name)
			}
			continue
		}
		if err != nil || name != tt.name || len(args) != tt.nargs {
			t.Errorf("eventName(%s) = %q, %d args, %v; want %q, %d args", tt.in, name, len(args), err, tt.name, tt.nargs)
		}
	}
}

type withBinary struct {
	Name    string            `json:"name"`
	Data    []byte            `json:"data"`
	Opt     []byte            `json:"opt,omitempty"`
	Inner   *withBinaryInner  `json:"inner,omitempty"`
	List    [][]byte          `json:"list,omitempty"`
	ByKey   map[string][]byte `json:"byKey,omitempty"`
	Any     any               `json:"any,omitempty"`
	Skip    []byte            `json:"-"`
	private []byte
}

type withBinaryInner struct {
	Blob []byte
	N    int `json:"n,string"`
}

type Embedded struct {
	E    []byte `json:"e"`
	Over string `json:"name"`
}

type embedding struct {
	Embedded
	Name string `json:"name"`
}

type unexportedInner struct {
	Name  string            `json:"name"`
	N     int               `json:"n,string"`
	F     float64           `json:"f"`
	Tags  map[string]string `json:"tags"`
	Blob  []byte            `json:"blob"`
	Flags []bool            `json:"flags"`
}

type outerWithUnexported struct {
	unexportedInner
	Data []byte `json:"data"`
}

type named []byte

type stamped struct {
	At   time.Time `json:"at"`
	Data []byte    `json:"data"`
}

func TestEncodeArgs(t *testing.T) {
	t.Parallel()
	type cyclic struct {
		Next any
		B    []byte
	}
	loop := &cyclic{B: []byte{1}}
	loop.Next = loop

	tests := []struct {
		name string
		args []any
		want string
		att  []string
		bad  bool
	}{
		{name: "empty", args: nil, want: `[]`},
		{name: "event", args: []any{"chat", map[string]any{"text": "hi"}}, want: `["chat",{"text":"hi"}]`},
		{name: "auth empty object", args: []any{"auth", map[string]any{}}, want: `["auth",{}]`},
		{name: "scalars", args: []any{1, "2", map[string]any{"3": []any{false}}, nil, true, int64(-5), uint64(7), int32(3), 1.5, float32(0.1), 1e21, 1e-7},
			want: `[1,"2",{"3":[false]},null,true,-5,7,3,1.5,0.1,1e+21,1e-7]`},
		{name: "html and control chars like JSON.stringify", args: []any{"<a&b>\"\\\n\t\x01\u2028é\xff"},
			want: `["<a&b>\"\\\n\t\u0001` + "\u2028é" + `\ufffd"]`},
		{name: "top-level binary", args: []any{"event", []byte("x"), []byte("y")},
			want: `["event",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`, att: []string{"x", "y"}},
		{name: "nested binary in generic values", args: []any{map[string]any{"b": []any{[]byte("1"), "s"}, "a": []byte("0")}},
			want: `[{"a":{"_placeholder":true,"num":0},"b":[{"_placeholder":true,"num":1},"s"]}]`, att: []string{"0", "1"}},
		{name: "struct with binary fields", args: []any{withBinary{
			Name: "n", Data: []byte("d"), Inner: &withBinaryInner{Blob: []byte("i"), N: 4},
			List: [][]byte{[]byte("l0"), []byte("l1")}, ByKey: map[string][]byte{"k": []byte("m")}, Any: []byte("any"),
			Skip: []byte("no"), private: []byte("no"),
		}},
			want: `[{"name":"n","data":{"_placeholder":true,"num":0},"inner":{"Blob":{"_placeholder":true,"num":1},"n":"4"},` +
				`"list":[{"_placeholder":true,"num":2},{"_placeholder":true,"num":3}],"byKey":{"k":{"_placeholder":true,"num":4}},` +
				`"any":{"_placeholder":true,"num":5}}]`,
			att: []string{"d", "i", "l0", "l1", "m", "any"}},
		{name: "struct pointer, nil and omitempty binary", args: []any{&withBinary{Name: "n"}}, want: `[{"name":"n","data":null}]`},
		{name: "empty binary is an attachment, nil is null", args: []any{[]byte{}, []byte(nil)}, want: `[{"_placeholder":true,"num":0},null]`, att: []string{""}},
		{name: "embedded struct, shallower field wins", args: []any{embedding{Embedded: Embedded{E: []byte("e"), Over: "hidden"}, Name: "top"}},
			want: `[{"e":{"_placeholder":true,"num":0},"name":"top"}]`, att: []string{"e"}},
		{name: "unexported embedded struct", args: []any{outerWithUnexported{
			unexportedInner: unexportedInner{Name: "n", N: 3, F: 0.5, Tags: map[string]string{"k": "v"}, Blob: []byte("b"), Flags: []bool{true}},
			Data:            []byte("d")}},
			want: `[{"name":"n","n":"3","f":0.5,"tags":{"k":"v"},"blob":{"_placeholder":true,"num":0},"flags":[true],"data":{"_placeholder":true,"num":1}}]`,
			att:  []string{"b", "d"}},
		{name: "named byte slice", args: []any{named("n")}, want: `[{"_placeholder":true,"num":0}]`, att: []string{"n"}},
		{name: "marshaler field kept", args: []any{stamped{At: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Data: []byte("z")}},
			want: `[{"at":"2026-01-02T03:04:05Z","data":{"_placeholder":true,"num":0}}]`, att: []string{"z"}},
		{name: "struct without binary through encoding/json", args: []any{struct {
			A string `json:"a"`
			B int    `json:"b,omitempty"`
		}{A: "<x>"}}, want: `[{"a":"<x>"}]`},
		{name: "int map keys sorted as strings", args: []any{map[int][]byte{10: []byte("a"), 9: []byte("b")}},
			want: `[{"10":{"_placeholder":true,"num":0},"9":{"_placeholder":true,"num":1}}]`, att: []string{"a", "b"}},
		{name: "array of byte slices", args: []any{[2][]byte{[]byte("a"), nil}}, want: `[[{"_placeholder":true,"num":0},null]]`, att: []string{"a"}},
		{name: "raw message as is", args: []any{json.RawMessage(`{"z":1,"a":[true]}`)}, want: `[{"z":1,"a":[true]}]`},
		{name: "raw message compacted", args: []any{json.RawMessage(" { \"a\" : [ 1 , \"<b c>\" ] } ")}, want: `[{"a":[1,"<b c>"]}]`},
		{name: "raw args with attachments renumbered", args: []any{[]byte("first"),
			rawArg{Raw: json.RawMessage(`{"b":{"_placeholder":true,"num":1}, "a":[{"_placeholder":true,"num":0}]}`), Attachments: [][]byte{[]byte("x"), []byte("y")}},
			&rawArg{Raw: json.RawMessage(`"plain"`)}},
			want: `[{"_placeholder":true,"num":0},{"b":{"_placeholder":true,"num":1},"a":[{"_placeholder":true,"num":2}]},"plain"]`,
			att:  []string{"first", "y", "x"}},
		{name: "raw arg with bad placeholder", args: []any{rawArg{Raw: json.RawMessage(`{"_placeholder":true,"num":1}`), Attachments: [][]byte{{1}}}}, bad: true},
		{name: "nil raw message", args: []any{json.RawMessage(nil)}, want: `[null]`},
		{name: "invalid raw message", args: []any{json.RawMessage(`{`)}, bad: true},
		{name: "NaN", args: []any{math.NaN()}, bad: true},
		{name: "cyclic", args: []any{loop}, bad: true},
		{name: "channel", args: []any{make(chan int)}, bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, att, err := encodeArgs([]byte("prefix"), tt.args)
			if tt.bad {
				if err == nil {
					t.Fatalf("encodeArgs = %s, want an error", got)
				}
				if string(got) != "prefix" {
					t.Errorf("dst after error = %q, want it unchanged", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != "prefix"+tt.want {
				t.Errorf("encodeArgs = %s\nwant           prefix%s", got, tt.want)
			}
			if len(att) != len(tt.att) {
				t.Fatalf("attachments %q, want %q", att, tt.att)
			}
			for i := range att {
				if string(att[i]) != tt.att[i] {
					t.Errorf("attachment %d = %q, want %q", i, att[i], tt.att[i])
				}
			}
			if !json.Valid(got[len("prefix"):]) {
				t.Errorf("invalid JSON %s", got)
			}
		})
	}
}

func TestEncodeArgsAttachmentIsNotACopy(t *testing.T) {
	t.Parallel()
	b := []byte("abc")
	_, att, err := encodeArgs(nil, []any{b})
	if err != nil || len(att) != 1 || &att[0][0] != &b[0] {
		t.Fatalf("attachment %v, %v: want the argument itself", att, err)
	}
}

func TestDecodeArg(t *testing.T) {
	t.Parallel()
	atts := [][]byte{[]byte("zero"), []byte("one")}
	type target struct {
		Name  string   `json:"name"`
		Data  []byte   `json:"data"`
		List  [][]byte `json:"list"`
		Other any      `json:"other"`
	}
	t.Run("bytes top level is the attachment", func(t *testing.T) {
		var b []byte
		if err := decodeArg(json.RawMessage(`{"_placeholder":true,"num":1}`), atts, &b); err != nil {
			t.Fatal(err)
		}
		if &b[0] != &atts[1][0] {
			t.Errorf("got %q, not the attachment itself", b)
		}
	})
	t.Run("bytes from base64 without attachments", func(t *testing.T) {
		var b []byte
		if err := decodeArg(json.RawMessage(`"aGk="`), nil, &b); err != nil || string(b) != "hi" {
			t.Errorf("got %q, %v", b, err)
		}
	})
	t.Run("struct fields", func(t *testing.T) {
		var v target
		raw := `{"name":"n","data":{"_placeholder":true,"num":0},"list":[{"_placeholder":true,"num":1},{"_placeholder":true,"num":0}],"other":{"_placeholder":true,"num":1}}`
		if err := decodeArg(json.RawMessage(raw), atts, &v); err != nil {
			t.Fatal(err)
		}
		want := target{Name: "n", Data: []byte("zero"), List: [][]byte{[]byte("one"), []byte("zero")}, Other: "b25l"}
		if !reflect.DeepEqual(v, want) {
			t.Errorf("got %+v, want %+v", v, want)
		}
	})
	t.Run("any", func(t *testing.T) {
		var v any
		raw := `{"a":[1,{"_placeholder":true,"num":0}],"b":{"_placeholder":true,"num":1},"c":{"_placeholder":false,"num":0}}`
		if err := decodeArg(json.RawMessage(raw), atts, &v); err != nil {
			t.Fatal(err)
		}
		want := map[string]any{"a": []any{1.0, []byte("zero")}, "b": []byte("one"), "c": map[string]any{"_placeholder": false, "num": 0.0}}
		if !reflect.DeepEqual(v, want) {
			t.Errorf("got %#v, want %#v", v, want)
		}
	})
	t.Run("any top level", func(t *testing.T) {
		var v any
		if err := decodeArg(json.RawMessage(`{"_placeholder":true,"num":0}`), atts, &v); err != nil || !reflect.DeepEqual(v, []byte("zero")) {
			t.Errorf("got %#v, %v", v, err)
		}
	})
	t.Run("slice of any", func(t *testing.T) {
		var v []any
		if err := decodeArg(json.RawMessage(`[{"_placeholder":true,"num":0},"x"]`), atts, &v); err != nil || !reflect.DeepEqual(v, []any{[]byte("zero"), "x"}) {
			t.Errorf("got %#v, %v", v, err)
		}
	})
	t.Run("placeholder without attachments stays an object", func(t *testing.T) {
		var v any
		if err := decodeArg(json.RawMessage(`{"_placeholder":true,"num":0}`), nil, &v); err != nil ||
			!reflect.DeepEqual(v, map[string]any{"_placeholder": true, "num": 0.0}) {
			t.Errorf("got %#v, %v", v, err)
		}
	})
	t.Run("escaped placeholder key", func(t *testing.T) {
		var b []byte
		if err := decodeArg(json.RawMessage(`{"\u005fplaceholder":true,"num":0}`), atts, &b); err != nil || string(b) != "zero" {
			t.Errorf("got %q, %v", b, err)
		}
	})
	t.Run("nested placeholder inside placeholder", func(t *testing.T) {
		var v struct{ A []byte }
		if err := decodeArg(json.RawMessage(`{"A":{"_placeholder":true,"num":0,"x":{"_placeholder":true,"num":1}}}`), atts, &v); err != nil || string(v.A) != "zero" {
			t.Errorf("got %q, %v", v.A, err)
		}
	})
	t.Run("string fast path and escapes", func(t *testing.T) {
		for raw, want := range map[string]string{`"plain é"`: "plain é", `"a\nb\u0041"`: "a\nbA", "\"\xff\"": "\ufffd"} {
			var s string
			if err := decodeArg(json.RawMessage(raw), nil, &s); err != nil || s != want {
				t.Errorf("decodeArg(%s) = %q, %v; want %q", raw, s, err, want)
			}
		}
	})
	t.Run("raw message", func(t *testing.T) {
		var r json.RawMessage
		if err := decodeArg(json.RawMessage(` {"a":1} `), nil, &r); err != nil || string(r) != `{"a":1}` {
			t.Errorf("got %s, %v", r, err)
		}
	})
	for _, bad := range []struct {
		name   string
		raw    string
		target any
	}{
		{"out of range", `{"_placeholder":true,"num":2}`, new([]byte)},
		{"not a pointer", `1`, 1},
		{"nil pointer", `1`, (*int)(nil)},
		{"nil", `1`, nil},
		{"type mismatch", `"a"`, new(int)},
		{"invalid json", `{`, new(any)},
		{"invalid raw message", `{`, new(json.RawMessage)},
		{"control char in string", "\"a\x01\"", new(string)},
		{"placeholder into map", `{"_placeholder":true,"num":0}`, new(map[string]any)},
	} {
		t.Run("error "+bad.name, func(t *testing.T) {
			if err := decodeArg(json.RawMessage(bad.raw), atts, bad.target); err == nil || !strings.HasPrefix(err.Error(), "socketio: ") {
				t.Errorf("error %v, want a socketio error", err)
			}
		})
	}
}

func TestArgsRoundTrip(t *testing.T) {
	t.Parallel()
	in := withBinary{Name: "n", Data: []byte("d"), Inner: &withBinaryInner{Blob: []byte("i"), N: 4}, List: [][]byte{[]byte("l")}}
	data, att, err := encodeArgs(nil, []any{"ev", in, []byte("top")})
	if err != nil {
		t.Fatal(err)
	}
	name, args, err := eventName(data)
	if err != nil || name != "ev" || len(args) != 2 {
		t.Fatalf("%q %s %v", name, args, err)
	}
	var out withBinary
	var top []byte
	if err := decodeArg(args[0], att, &out); err != nil {
		t.Fatal(err)
	}
	if err := decodeArg(args[1], att, &top); err != nil || string(top) != "top" {
		t.Fatalf("%q %v", top, err)
	}
	if !reflect.DeepEqual(out, in) {
		t.Errorf("got %+v, want %+v", out, in)
	}
}

func TestEncodeArgsAllocs(t *testing.T) {
	args := []any{"chat", map[string]any{"text": "hi"}, 1, true, []byte("x")}
	buf := make([]byte, 0, 128)
	n := testing.AllocsPerRun(100, func() {
		buf, _, _ = encodeArgs(buf[:0], args)
	})
	// The sorted key slice and the attachment list.
	if n > 2 {
		t.Errorf("encodeArgs allocates %v times, want at most 2", n)
	}
}

type conflictA struct {
	X int `json:"x"`
	Y int
}

type conflictB struct {
	V int `json:"Y"` // tagged, so it beats conflictA.Y
	Q int `json:"Html"`
	Z int
}

type Deep struct {
	conflictA
	W any `json:"w,omitempty"`
}

type walked struct {
	Any     any               `json:"any"`
	Omit    any               `json:"omit,omitempty"`
	Zero    time.Time         `json:"zero,omitzero"`
	When    time.Time         `json:"when"`
	Str     int64             `json:"str,string"`
	Ptr     *int              `json:"ptr"`
	NilPtr  *int              `json:"nilPtr,omitempty"`
	Map     map[int]any       `json:"map"`
	Slice   []any             `json:"slice"`
	Nested  *walked           `json:"nested,omitempty"`
	Dash    string            `json:"dash,omitempty"`
	Skipped string            `json:"-"`
	Unicode string            `json:"ünï"`
	Texts   map[string]string `json:",omitempty"`
	*Deep
	conflictA
	conflictB
	Html string
}

// TestEncodeArgsMatchesEncodingJSON walks structs that hold interfaces (so
// encodeArgs writes them itself, looking for binary) and compares the text
// with encoding/json's.
func TestEncodeArgsMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	one := 1
	values := []any{
		walked{},
		walked{Any: "<&>", When: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), Str: 42, Ptr: &one, Map: map[int]any{2: 1.5, 10: nil},
			Slice: []any{1, "a", nil, map[string]any{"b": false}}, Nested: &walked{Any: []any{}}, Dash: "dash", Skipped: "no", Unicode: "é",
			Deep: &Deep{conflictA: conflictA{X: 1, Y: 2}, W: "w"}, conflictA: conflictA{X: 3, Y: 4}, conflictB: conflictB{V: 7, Q: 8, Z: 5}, Html: "<b>"},
		&walked{Omit: 0, Texts: map[string]string{"a": "b"}},
		map[string]any{"a": walked{}, "b": []any{walked{}}},
		[]walked{{}, {Any: 1}},
	}
	for i, v := range values {
		got, _, err := encodeArgs(nil, []any{v})
		if err != nil {
			t.Fatalf("%d: %v", i, err)
		}
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
		if w := "[" + strings.TrimSuffix(want.String(), "\n") + "]"; string(got) != w {
			t.Errorf("%d: encodeArgs\n%s\nencoding/json\n%s", i, got, w)
		}
	}
}
