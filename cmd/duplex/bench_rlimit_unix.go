//go:build unix

package main

import "syscall"

// raiseFileLimit raises this process's soft limit on open files to the hard
// limit, as idle needs a descriptor per connection, and returns both. (Go
// raises it at startup on most systems already; doing it here as well lets
// bench report the limit it actually has.)
func raiseFileLimit() (soft, hard uint64, err error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, 0, err
	}
	if l.Cur < l.Max {
		raised := l
		raised.Cur = raised.Max
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised) == nil {
			l = raised
		}
	}
	return uint64(l.Cur), uint64(l.Max), nil
}
