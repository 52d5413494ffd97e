//go:build !unix

package main

import "errors"

// raiseFileLimit is a no-op where there is no RLIMIT_NOFILE.
func raiseFileLimit() (soft, hard uint64, err error) {
	return 0, 0, errors.ErrUnsupported
}
