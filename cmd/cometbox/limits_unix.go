//go:build unix

package main

import "syscall"

// defaultMaxPolls is 90% of the open-file limit: each held poll is one
// open connection, and the rest is left for Redis, publishers and logs.
func defaultMaxPolls() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur == 0 {
		return 10000
	}
	n := int(min(lim.Cur, 1<<30) * 9 / 10)
	return max(n, 16)
}
