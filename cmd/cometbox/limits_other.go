//go:build !unix

package main

// defaultMaxPolls is a fixed bound where the open-file limit is not known.
func defaultMaxPolls() int { return 10000 }
