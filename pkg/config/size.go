package config

import (
	"fmt"
	"strconv"
	"strings"
)

// Size is a byte count that reads "1MiB", "64KiB", "512KB", "2M" or plain
// bytes. K and M are binary (1024) in every spelling: the limits guard
// memory, and nobody means 1000 there.
type Size int64

var units = []struct {
	suffix string
	mult   int64
}{
	{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
	{"GB", 1 << 30}, {"MB", 1 << 20}, {"KB", 1 << 10},
	{"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1},
}

// Set implements flag.Value.
func (s *Size) Set(text string) error {
	t := strings.TrimSpace(text)
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(strings.ToUpper(t), strings.ToUpper(u.suffix)) {
			t, mult = strings.TrimSpace(t[:len(t)-len(u.suffix)]), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<40)/mult {
		return fmt.Errorf("size %q: want bytes or a number with KiB, MiB or GiB", text)
	}
	*s = Size(n * mult)
	return nil
}

// String implements flag.Value, in the largest exact unit.
func (s Size) String() string {
	n := int64(s)
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return strconv.FormatInt(n>>30, 10) + "GiB"
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + "MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + "KiB"
	}
	return strconv.FormatInt(n, 10)
}
