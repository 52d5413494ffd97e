package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/duplexrt/duplex/socketio"
)

// runSoakJSON runs duplex bench soak with --json, checks its exit status
// and decodes the summary (printed whatever the status).
func runSoakJSON(t *testing.T, wantCode int, args ...string) soakSummary {
	t.Helper()
	var out, errOut bytes.Buffer
	args = append([]string{"bench", "soak", "--json"}, args...)
	code := run(args, strings.NewReader(""), &out, &errOut)
	var s soakSummary
	if err := json.Unmarshal(out.Bytes(), &s); err != nil {
		t.Fatalf("duplex %s: exit %d, the summary is not JSON: %v\nstdout %s\nstderr %s", strings.Join(args, " "), code, err, out.String(), errOut.String())
	}
	if code != wantCode {
		t.Fatalf("duplex %s: exit %d, want %d; failures %q\nstderr %s", strings.Join(args, " "), code, wantCode, s.Failures, errOut.String())
	}
	return s
}

// TestBenchSoak runs a short soak as CI affords it under -race: two
// in-process servers on a private redis-server, 300 clients, one Redis
// restart. It checks that the soak exercised what it claims to (joins,
// leaves, drops and reconnections, deliveries across the servers, the
// restart and the healing) and that it passed: nothing lost, memory
// flat, goroutines back.
func TestBenchSoak(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		msg := "redis-server is not in PATH: this test starts its own (apt-get install redis-server)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	// The race detector costs 5 to 10 times the CPU, and CI shares two
	// cores with the other packages' tests: 30 operations per second
	// (the default is 250), and 30 s for a handshake or an
	// acknowledgement. A heap of a few MiB measured over 12 s is noisy:
	// 50% rather than the default 20%.
	s := runSoakJSON(t, 0, "--conns", "300", "--rooms", "20", "--rate", "30", "--timeout", "30s",
		"--duration", "12s", "--warmup", "3s", "--redis-restarts", "1", "--redis-down", "1s", "--mem-tolerance", "50")
	if !s.Passed || len(s.Failures) > 0 {
		t.Fatalf("soak failed: %q", s.Failures)
	}
	if !s.InProcess || !s.PrivateRedis || len(s.Servers) != 2 || s.StoppedBy != "duration" {
		t.Errorf("in process %v, private Redis %v, servers %q, stopped by %q", s.InProcess, s.PrivateRedis, s.Servers, s.StoppedBy)
	}
	checkDial(t, s.Dial, 300)
	if c := s.Clients; c.Joins == 0 || c.Leaves == 0 || c.Drops == 0 || c.Reconnects == 0 || c.Errors != 0 {
		t.Errorf("clients %+v: want joins, leaves, drops, reconnections and no errors", c)
	}
	if m := s.Messages; m.Acknowledged == 0 || m.Unacknowledged != 0 || m.Acknowledged+m.Refused+m.Unacknowledged+m.Interrupted != m.Sent {
		t.Errorf("messages %+v", m)
	}
	d := s.Deliveries
	if d.Delivered == 0 || d.DeliveredAcross == 0 || d.Lost != 0 || d.Duplicates != 0 || d.Stray != 0 {
		t.Errorf("deliveries %+v: want some across servers, none lost", d)
	}
	if d.Required != d.Delivered+d.Late+d.ReportedFailed+d.Lost || d.Expected != d.Required+d.Excused {
		t.Errorf("deliveries %+v: the categories do not add up", d)
	}
	checkLatency(t, "delivery", d.Latency)
	if r := s.Restarts; r.Planned != 1 || r.Done != 1 || len(r.Outages) != 1 || !r.Outages[0].Healed || r.Resubscriptions == 0 {
		t.Errorf("redis restarts %+v: want one, healed, with the adapters resubscribing", r)
	}
	if m := s.Memory; m == nil || !m.Checked || len(m.Processes) != 1 || m.Processes[0].AfterWarmup <= 0 {
		t.Errorf("memory %+v: not checked", m)
	}
	if g := s.Goroutines; g == nil || !g.Back || g.Peak <= g.Baseline {
		t.Errorf("goroutines %+v", g)
	}
}

// TestBenchSoakDetectsLoss points the soak at a server that acknowledges
// every say but drops some and doubles others: the soak must fail and
// say why. The server is given by URL, twice (one server behind two
// listeners, as two processes of a cluster): no Redis is needed.
func TestBenchSoakDetectsLoss(t *testing.T) {
	srv, err := socketio.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	var says atomic.Int64
	srv.OnConnection(func(s *socketio.Socket) {
		serveSoakRoomsOn(s)
		s.On("say", func(s *socketio.Socket, room, text string, ack func(...any)) {
			switch n := says.Add(1); {
			case n%5 == 0: // lost
			case n%7 == 0:
				_ = s.To(room).Emit("said", room, text, s.ID())
				_ = s.To(room).Emit("said", room, text, s.ID())
			default:
				_ = s.To(room).Emit("said", room, text, s.ID())
			}
			ack(true)
		})
	})
	a, b := httptest.NewServer(srv), httptest.NewServer(srv)
	defer a.Close()
	defer b.Close()
	defer srv.Close()
	s := runSoakJSON(t, 1, "--conns", "20", "--rooms", "3", "--rate", "100", "--duration", "2s", "--warmup", "500ms", "--grace", "1s", a.URL+"/", b.URL+"/")
	if s.Passed || s.InProcess || s.Deliveries.Lost == 0 || s.Deliveries.Duplicates == 0 || s.Deliveries.Delivered == 0 {
		t.Fatalf("passed %v, in process %v, deliveries %+v: want losses and duplicates found", s.Passed, s.InProcess, s.Deliveries)
	}
	if len(s.Deliveries.LostSamples) == 0 || !strings.Contains(strings.Join(s.Failures, "\n"), "lost") || !strings.Contains(strings.Join(s.Failures, "\n"), "duplicate") {
		t.Errorf("failures %q, samples %q: want the losses and the duplicates named", s.Failures, s.Deliveries.LostSamples)
	}
	if s.Restarts.Skipped == "" || s.Goroutines != nil || s.Memory == nil || s.Memory.Checked {
		t.Errorf("restarts %+v, goroutines %+v, memory %+v: servers given by URL are not restarted, and not measured without --server-pid", s.Restarts, s.Goroutines, s.Memory)
	}
}

// serveSoakRoomsOn installs join and leave as serveSoakRooms does.
func serveSoakRoomsOn(s *socketio.Socket) {
	s.On("join", func(s *socketio.Socket, room string, ack func(...any)) {
		s.Join(room)
		ack(true)
	})
	s.On("leave", func(s *socketio.Socket, room string, ack func(...any)) {
		s.Leave(room)
		ack(true)
	})
}

func TestBenchSoakFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--conns", "1"}, 1, "--conns 1"},
		{[]string{"--size", "5"}, 1, "--size 5"},
		{[]string{"--duration", "2s", "--redis-restarts", "5"}, 1, "too many"},
		{[]string{"--server-pid", "1"}, 1, "servers given by URL only"},
		{[]string{"--redis-restarts", "1", "http://127.0.0.1:1/"}, 1, "in-process servers only"},
		{[]string{"--redis", "redis://127.0.0.1:1", "--redis-restarts", "1"}, 1, "only a redis-server it started"},
		{[]string{"http://192.0.2.1/"}, 1, "refusing"},
		{[]string{"--no-such-flag"}, 2, "no-such-flag"},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(append([]string{"bench", "soak"}, c.args...), strings.NewReader(""), &out, &errOut)
			if code != c.code || !strings.Contains(errOut.String(), c.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, errOut.String(), c.code, c.want)
			}
		})
	}
}

// TestSoakLedgerVerdicts walks the ledger through each verdict a
// (say, member) pair can get, without a network: client 0 says in room 0
// on server 0, where client 1 is too; clients 2 to 4 are on server 1.
func TestSoakLedgerVerdicts(t *testing.T) {
	l := newSoakLedger(2, time.Hour, "t")
	for i, server := range []int{0, 0, 1, 1, 1} {
		l.clients = append(l.clients, &soakClient{idx: int32(i), server: server, rooms: map[int32]soakMember{}, askedFor: map[int32]bool{}})
	}
	c := l.clients
	for _, m := range c {
		m.ask(0)
		m.mu.Lock()
		l.joinLocked(m, 0)
		m.mu.Unlock()
	}
	time.Sleep(time.Millisecond) // the joins precede the says
	recv := func(m *soakClient, msg *soakMsg) {
		l.receipt(m, []byte(`"`+l.roomName(msg.room)+`"`), []byte(fmt.Sprintf(`"m%016x"`, msg.id)))
	}

	// Delivered (one across servers), a duplicate, excused (client 4
	// drops), late (client 3, after the first verdict).
	m1 := l.newMsg(c[0], 1, 0)
	recv(c[1], m1)
	recv(c[2], m1)
	recv(c[1], m1)
	l.acknowledged(m1, []byte("true"))
	l.endAll(c[4])
	l.judgeDue(true)
	recv(c[3], m1)

	// During an outage: across servers reported failed, on the sender's
	// server overdue, then lost at the final verdict.
	l.outageBegin()
	m2 := l.newMsg(c[0], 2, 0)
	l.acknowledged(m2, []byte("true"))
	l.outageEnd()
	l.judgeDue(true)
	l.sweep(true)

	// After the outage: overdue, then late (clients 2 and 3) or excused
	// (client 1 leaves before it arrives).
	m3 := l.newMsg(c[0], 3, 0)
	l.acknowledged(m3, []byte("true"))
	l.judgeDue(true)
	recv(c[2], m3)
	recv(c[3], m3)
	l.left(c[1], 0)
	l.sweep(false)

	// A stray (room 1, which client 1 never asked for) and a refusal.
	m4 := l.newMsg(c[0], 4, 1)
	recv(c[1], m4)
	m5 := l.newMsg(c[0], 5, 0)
	l.acknowledged(m5, []byte(`{"error":"full"}`))
	l.judgeDue(true)

	got := map[string]int64{
		"expected": l.expected.Load(), "delivered": l.delivered.Load(), "across": l.deliveredCross.Load(),
		"late": l.late.Load(), "excused": l.excused.Load(), "reported failed": l.reportedFailed.Load(),
		"lost": l.lost.Load(), "duplicates": l.duplicates.Load(), "stray": l.stray.Load(),
		"refused": l.refused.Load(), "acked": l.acked.Load(), "overdue": l.overduePairs.Load(), "extra": l.extra.Load(),
	}
	want := map[string]int64{
		"expected": 10, "delivered": 2, "across": 1, "late": 3, "excused": 2, "reported failed": 2,
		"lost": 1, "duplicates": 1, "stray": 1, "refused": 1, "acked": 3, "overdue": 0, "extra": 0,
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %d, want %d", k, got[k], w)
		}
	}
	if len(l.samples) != 1 || !strings.Contains(l.samples[0], "never received by client 1 (server 0)") {
		t.Errorf("samples %q: want client 1's loss of say 2", l.samples)
	}
}
