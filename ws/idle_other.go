//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package ws

// idleWaiter is not available here: portable-mode connections read as
// usual, holding their read buffer while idle.
type idleWaiter struct{}

func newIdleWaiter(c *Conn) *idleWaiter { return nil }

func (w *idleWaiter) wait() {}
