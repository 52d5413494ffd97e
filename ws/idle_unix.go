//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package ws

import (
	"syscall"
	"unsafe"
)

// idleWaiter waits for a connection's socket to become readable without
// reading from it, so that a portable-mode connection that is idle holds
// no read buffer, only its goroutine's stack.
type idleWaiter struct {
	rc    syscall.RawConn
	peek  [1]byte
	first bool
	fn    func(fd uintptr) bool // made once: a closure per wait would allocate
}

// newIdleWaiter returns a waiter for c's socket, or nil if c is not a
// plain socket (TLS, a net.Pipe, a wrapped conn): those read as usual.
func newIdleWaiter(c *Conn) *idleWaiter {
	sc, ok := c.nc.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	w := &idleWaiter{rc: rc}
	w.fn = w.ready
	return w
}

// ready is the RawConn.Read callback. Its first call asks the kernel,
// without consuming anything, whether input (or EOF, or an error) is
// there; false parks the goroutine in Go's network poller until the
// socket is readable, and the next call says so.
func (w *idleWaiter) ready(fd uintptr) bool {
	if !w.first {
		return true
	}
	w.first = false
	for {
		_, _, errno := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&w.peek[0])), 1,
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		switch errno {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		return true // input, EOF or an error: the read that follows tells which
	}
}

// wait returns once the socket is readable, or closed, or its read
// deadline passed; the read that follows finds out which.
func (w *idleWaiter) wait() {
	w.first = true
	_ = w.rc.Read(w.fn)
}
