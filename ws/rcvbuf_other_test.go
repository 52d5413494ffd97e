//go:build !unix

package ws_test

// setRecvBuffer leaves the buffer as it is where SO_RCVBUF is not set
// through a Unix file descriptor.
func setRecvBuffer(fd uintptr, n int) error { return nil }
