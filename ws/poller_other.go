//go:build !linux

package ws

import (
	"errors"
	"time"
)

// Poller holds idle connections without a goroutine or a buffer each. It
// needs Linux's epoll; elsewhere NewPoller returns an error and a Server
// serves its Handler in the portable mode, a goroutine per connection.
type Poller struct{}

// PollerOptions configures a Poller. A nil *PollerOptions means the
// defaults.
type PollerOptions struct {
	// WorkerIdleTimeout is how long a worker goroutine with nothing to do
	// waits for work before it exits. Zero means 10 seconds.
	WorkerIdleTimeout time.Duration
}

// NewPoller returns an error: the poller needs Linux.
func NewPoller(opts *PollerOptions) (*Poller, error) {
	return nil, errors.New("ws: NewPoller: the poller needs Linux (epoll); leave Server.Poller nil for the portable mode")
}

// Len returns 0.
func (p *Poller) Len() int { return 0 }

// Close does nothing.
func (p *Poller) Close() error { return nil }

func (p *Poller) hold(c *Conn, h Handler, s *Server) bool { return false }

// pollEntry is a connection held by a Poller, which there is none of here.
type pollEntry struct{}

func (e *pollEntry) schedule() {}
