//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package ws

import (
	"syscall"
	"unsafe"
)

// peeker reads what has arrived on a socket without consuming it, waiting
// in Go's network poller until there is more than it saw last time.
type peeker struct {
	rc    syscall.RawConn
	buf   []byte
	n     int           // bytes seen by the last peek
	errno syscall.Errno // of the last peek
	wait  bool          // the peek waits for input; else it says there is none
	none  bool          // the last peek found no new input, and did not wait
	fn    func(fd uintptr) bool
}

// newPeeker returns a peeker for nc into buf, or nil if nc is not a plain
// socket.
func newPeeker(nc any, buf []byte) *peeker {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	p := &peeker{rc: rc, buf: buf}
	p.fn = p.peek
	return p
}

// more peeks at the socket's input once it holds more than the last call
// saw (or EOF, or an error): the input is then buf[:n]. With wait, it
// waits for that in Go's network poller, until the read deadline; without,
// it reports none true at once if there is nothing new.
func (p *peeker) more(wait bool) (n int, none bool, err error) {
	p.wait, p.none = wait, false
	if err := p.rc.Read(p.fn); err != nil {
		return 0, false, err
	}
	if p.none {
		return p.n, true, nil
	}
	if p.errno != 0 {
		return 0, false, p.errno
	}
	return p.n, false, nil
}

// peek is the RawConn.Read callback: false waits for input.
func (p *peeker) peek(fd uintptr) bool {
	for {
		n, _, errno := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&p.buf[0])), uintptr(len(p.buf)),
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		switch errno {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			p.none = !p.wait
			return p.none
		case 0:
			if int(n) == p.n && n != 0 && int(n) < len(p.buf) {
				p.none = !p.wait // nothing new since the last look
				return p.none
			}
			p.n = int(n)
		}
		p.errno = errno
		return true
	}
}
