//go:build unix

package ws_test

import "syscall"

// setRecvBuffer sets a socket's SO_RCVBUF. Called from a net.Dialer's
// Control, before connect: a buffer shrunk after connect can be smaller
// than the window already advertised, and Linux then drops every segment
// the sender retransmits into it (TCPRcvQDrop), stalling the stream.
func setRecvBuffer(fd uintptr, n int) error {
	return syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, n)
}
