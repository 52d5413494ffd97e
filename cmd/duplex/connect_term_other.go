//go:build !unix

package main

// onResize does nothing where there is no SIGWINCH: the line editor keeps
// the size the terminal had at the start.
func onResize(func()) (stop func()) { return func() {} }
