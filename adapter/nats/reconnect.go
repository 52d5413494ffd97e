package nats

import (
	"math/rand/v2"
	"time"

	natsgo "github.com/nats-io/nats.go"
)

// The reconnection delays of Connect; see Backoff.
const (
	// DefaultReconnectDelay is the longest wait before the first
	// reconnection attempt when Backoff.Initial is zero.
	DefaultReconnectDelay = 250 * time.Millisecond
	// DefaultMaxReconnectDelay caps the waits when Backoff.Max is zero.
	DefaultMaxReconnectDelay = 4 * time.Second
)

// Backoff is a capped exponential reconnection delay with jitter, for
// natsgo.CustomReconnectDelay; Connect uses the zero Backoff. Before
// attempt n the wait is a random duration between d/2 and d, where d is
// Initial·2^(n−1), at most Max. With the defaults: 125–250 ms, 250–500
// ms, 0.5–1 s, 1–2 s, then 2–4 s until the server is back. nats.go counts
// the attempts from 1 at each outage (after it tried every server of the
// list once), so the delay starts over once a reconnection succeeded. The
// jitter keeps the processes of a cluster from reconnecting all at once
// after a NATS restart; the cap keeps an outage's end from going unnoticed
// for long.
type Backoff struct {
	// Initial is the longest wait before the first attempt. Zero (or
	// negative) means DefaultReconnectDelay.
	Initial time.Duration
	// Max caps the waits. Zero (or negative) means
	// DefaultMaxReconnectDelay; a Max below Initial means Initial.
	Max time.Duration
}

// Delay returns the wait before reconnection attempt n, counted from 1
// (a smaller n counts as 1). It is a natsgo.ReconnectDelayHandler, safe
// for concurrent use.
func (b Backoff) Delay(n int) time.Duration {
	d := b.Initial
	if d <= 0 {
		d = DefaultReconnectDelay
	}
	limit := b.Max
	if limit <= 0 {
		limit = DefaultMaxReconnectDelay
	}
	limit = max(limit, d)
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	return d/2 + rand.N(d-d/2+1)
}

// setsReconnectDelay reports whether opts choose the reconnection delay
// themselves: natsgo.CustomReconnectDelay, or ReconnectWait or
// ReconnectJitter other than nats.go's defaults. The options are applied
// to a scratch copy of the defaults; their errors are the real Connect's
// to report.
func setsReconnectDelay(opts []natsgo.Option) bool {
	def, o := natsgo.GetDefaultOptions(), natsgo.GetDefaultOptions()
	for _, opt := range opts {
		if opt != nil {
			_ = opt(&o)
		}
	}
	return o.CustomReconnectDelayCB != nil || o.ReconnectWait != def.ReconnectWait ||
		o.ReconnectJitter != def.ReconnectJitter || o.ReconnectJitterTLS != def.ReconnectJitterTLS
}
