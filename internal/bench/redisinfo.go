package bench

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// RedisInfo runs INFO SECTION against a Redis at addr (host:port) and
// returns its text.
func RedisInfo(addr, section string) (string, error) {
	nc, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(nc, "*2\r\n$4\r\nINFO\r\n$%d\r\n%s\r\n", len(section), section); err != nil {
		return "", err
	}
	br := bufio.NewReader(nc)
	line, err := br.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if !strings.HasPrefix(line, "$") {
		return "", fmt.Errorf("redis INFO: unexpected reply %q", line)
	}
	n, err := strconv.Atoi(line[1:])
	if err != nil || n < 0 || n > 16<<20 {
		return "", fmt.Errorf("redis INFO: bad length %q", line)
	}
	buf := make([]byte, n+2)
	if _, err := io.ReadFull(br, buf); err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// CommandCalls parses INFO commandstats into calls per command
// ("cmdstat_script|load" becomes "script|load"). In Redis 7 commands run
// inside Lua scripts are counted too, under their own names.
func CommandCalls(info string) map[string]int64 {
	out := map[string]int64{}
	for _, line := range strings.Split(info, "\n") {
		line = strings.TrimSpace(line)
		name, rest, ok := strings.Cut(line, ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		for _, kv := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(kv, "calls="); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				out[strings.TrimPrefix(name, "cmdstat_")] = n
			}
		}
	}
	return out
}

// RedisCommands reads the current command counters of the Redis at addr.
func RedisCommands(addr string) (map[string]int64, error) {
	info, err := RedisInfo(addr, "commandstats")
	if err != nil {
		return nil, err
	}
	return CommandCalls(info), nil
}

// CallsDelta is after - before, leaving out INFO itself (the tool's own).
func CallsDelta(before, after map[string]int64) map[string]int64 {
	d := map[string]int64{}
	for k, v := range after {
		if k == "info" {
			continue
		}
		if n := v - before[k]; n > 0 {
			d[k] = n
		}
	}
	return d
}
