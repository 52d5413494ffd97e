package nats

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/duplexrt/duplex/internal/brokertest"

	natsgo "github.com/nats-io/nats.go"
)

// TestBackoffDelay: each attempt's wait lies in [d/2, d], d doubling from
// Initial up to Max; zero fields mean the defaults; the waits vary.
func TestBackoffDelay(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		name     string
		b        Backoff
		attempt  int
		min, max time.Duration
	}{
		{"default/0", Backoff{}, 0, 125 * ms, 250 * ms},
		{"default/1", Backoff{}, 1, 125 * ms, 250 * ms},
		{"default/2", Backoff{}, 2, 250 * ms, 500 * ms},
		{"default/3", Backoff{}, 3, 500 * ms, time.Second},
		{"default/4", Backoff{}, 4, time.Second, 2 * time.Second},
		{"default/5", Backoff{}, 5, 2 * time.Second, 4 * time.Second},
		{"default/6", Backoff{}, 6, 2 * time.Second, 4 * time.Second},
		{"default/huge", Backoff{}, 1 << 30, 2 * time.Second, 4 * time.Second},
		{"custom/1", Backoff{Initial: 100 * ms, Max: 300 * ms}, 1, 50 * ms, 100 * ms},
		{"custom/2", Backoff{Initial: 100 * ms, Max: 300 * ms}, 2, 100 * ms, 200 * ms},
		{"custom/3", Backoff{Initial: 100 * ms, Max: 300 * ms}, 3, 150 * ms, 300 * ms},
		{"custom/9", Backoff{Initial: 100 * ms, Max: 300 * ms}, 9, 150 * ms, 300 * ms},
		{"max below initial", Backoff{Initial: time.Second, Max: ms}, 3, 500 * ms, time.Second},
		{"negative", Backoff{Initial: -1, Max: -1}, 1, 125 * ms, 250 * ms},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			seen := map[time.Duration]bool{}
			for range 200 {
				d := tc.b.Delay(tc.attempt)
				if d < tc.min || d > tc.max {
					t.Fatalf("%+v.Delay(%d) = %v; want within [%v, %v]", tc.b, tc.attempt, d, tc.min, tc.max)
				}
				seen[d] = true
			}
			if len(seen) < 10 {
				t.Errorf("%+v.Delay(%d): %d distinct waits in 200; want jitter", tc.b, tc.attempt, len(seen))
			}
		})
	}
}

// TestConnectBackoff: Connect installs the backoff unless the caller's
// options choose the delay.
func TestConnectBackoff(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	url := "nats://" + ln.Addr().String()
	_ = ln.Close() // nothing listens: RetryOnFailedConnect returns at once
	for _, tc := range []struct {
		name       string
		opts       []natsgo.Option
		wantCustom bool
	}{
		{"default", nil, true},
		{"other options", []natsgo.Option{natsgo.Name("x"), nil}, true},
		{"ReconnectWait", []natsgo.Option{natsgo.ReconnectWait(50 * time.Millisecond)}, false},
		{"ReconnectJitter", []natsgo.Option{natsgo.ReconnectJitter(0, 0)}, false},
		{"CustomReconnectDelay", []natsgo.Option{natsgo.CustomReconnectDelay(func(int) time.Duration { return time.Hour })}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc, err := Connect(url, tc.opts...)
			must(t, err)
			defer nc.Close()
			if got := nc.Opts.CustomReconnectDelayCB != nil; got != tc.wantCustom {
				t.Errorf("CustomReconnectDelayCB set = %v; want %v", got, tc.wantCustom)
			}
			if nc.Opts.MaxReconnect != -1 || !nc.Opts.RetryOnFailedConnect {
				t.Errorf("MaxReconnect %d, RetryOnFailedConnect %v; want -1, true", nc.Opts.MaxReconnect, nc.Opts.RetryOnFailedConnect)
			}
			if tc.name == "CustomReconnectDelay" && nc.Opts.CustomReconnectDelayCB(1) != time.Hour {
				t.Error("the caller's CustomReconnectDelay was replaced")
			}
		})
	}
}

// TestBackoffStartsOver kills a private NATS server twice: nats.go asks
// the backoff for attempts 1, 2, 3… during the first outage, and for
// attempt 1 again at the second, so a new outage waits little.
func TestBackoffStartsOver(t *testing.T) {
	br := brokertest.NATS(t)
	var (
		mu       sync.Mutex
		attempts []int
	)
	b := Backoff{Initial: 20 * time.Millisecond, Max: 40 * time.Millisecond}
	nc, err := Connect(br.URL(), natsgo.CustomReconnectDelay(func(n int) time.Duration {
		mu.Lock()
		attempts = append(attempts, n)
		mu.Unlock()
		return b.Delay(n)
	}))
	must(t, err)
	defer nc.Close()
	recorded := func() []int {
		mu.Lock()
		defer mu.Unlock()
		return append([]int(nil), attempts...)
	}
	for outage := 1; outage <= 2; outage++ {
		mu.Lock()
		attempts = nil
		mu.Unlock()
		br.Kill()
		eventually(t, "three reconnection attempts", func() bool { return len(recorded()) >= 3 })
		br.Start()
		eventually(t, "reconnected", nc.IsConnected)
		got := recorded()
		for i, n := range got {
			if n != i+1 {
				t.Fatalf("outage %d: attempts %v; want 1, 2, 3…", outage, got)
			}
		}
	}
}
