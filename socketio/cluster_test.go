package socketio

import (
	"encoding/json"
	"testing"
)

func TestNewArgs(t *testing.T) {
	a, err := NewArgs(json.RawMessage(` [1,{"_placeholder":true,"num":0},"x"] `), [][]byte{{5}})
	if err != nil {
		t.Fatal(err)
	}
	var b []byte
	if a.Len() != 3 || string(a.Raw(2)) != `"x"` || a.Decode(1, &b) != nil || len(b) != 1 || b[0] != 5 {
		t.Errorf("args %d %s %v", a.Len(), a.Raw(2), b)
	}
	if len(a.Attachments()) != 1 {
		t.Errorf("attachments %v", a.Attachments())
	}
	for _, bad := range []string{``, `{}`, `[1,`, `[{"_placeholder":true,"num":1}]`, `[{"_placeholder":true}]`} {
		if _, err := NewArgs(json.RawMessage(bad), [][]byte{{1}}); err == nil {
			t.Errorf("NewArgs(%q): no error", bad)
		}
	}
}
