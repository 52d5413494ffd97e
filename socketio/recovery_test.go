package socketio

import (
	"encoding/json"
	"fmt"
	"testing"
)

// TestRecoveryLimits: the packet log keeps at most MaxPackets and
// MaxBytes, the oldest dropped first (an offset older than what is kept
// recovers nothing), and at most MaxSessions sessions.
func TestRecoveryLimits(t *testing.T) {
	st := &sessionStore{opts: (&RecoveryOptions{MaxPackets: 10, MaxBytes: 1000, MaxSessions: 3}).withDefaults()}
	var offsets []string
	for i := range 50 {
		p := st.record(&Packet{Type: PacketEvent, Namespace: "/", ID: -1, Data: json.RawMessage(fmt.Sprintf(`["e",%d]`, i))}, &BroadcastOptions{})
		var args []any
		_ = json.Unmarshal(p.Data, &args)
		offsets = append(offsets, args[len(args)-1].(string))
	}
	if n := len(st.packets) - st.head; n != 10 {
		t.Fatalf("%d packets kept, want 10", n)
	}
	st.persist(&SessionState{SID: "s", PID: "p"})
	if got := st.restore("p", offsets[30]); got != nil {
		t.Fatalf("restored from a dropped offset: %+v", got)
	}
	got := st.restore("p", offsets[45])
	if got == nil || len(got.Missed) != 4 {
		t.Fatalf("restored from offset 45: %+v, want 4 missed", got)
	}
	// Bytes: one big packet pushes the small ones out.
	big := make([]byte, 900)
	st.record(&Packet{Type: PacketBinaryEvent, Namespace: "/", ID: -1, Data: json.RawMessage(`["b",{"_placeholder":true,"num":0}]`), Attachments: [][]byte{big}}, &BroadcastOptions{})
	if st.bytes > 1000 {
		t.Fatalf("%d bytes kept, over MaxBytes 1000", st.bytes)
	}
	big[0] = 1 // the log kept a copy
	if st.packets[len(st.packets)-1].p.Attachments[0][0] != 0 {
		t.Fatal("the log aliases the caller's attachment")
	}
	for i := range 5 {
		st.persist(&SessionState{SID: fmt.Sprint(i), PID: fmt.Sprint("p", i)})
	}
	if len(st.sessions) > 3 {
		t.Fatalf("%d sessions kept, over MaxSessions 3", len(st.sessions))
	}
}
