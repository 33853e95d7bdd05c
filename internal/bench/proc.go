package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ProcGroup names a server process to measure; with Children its
// descendants count too (an nginx master and its workers).
type ProcGroup struct {
	Name     string `json:"name"`
	Pid      int    `json:"pid"`
	Children bool   `json:"children"`
}

// ParseProcGroup parses NAME=PID, with a trailing '+' to include the
// process's descendants: "nginx=1234+".
func ParseProcGroup(s string) (ProcGroup, error) {
	name, pid, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return ProcGroup{}, fmt.Errorf("process %q: want NAME=PID or NAME=PID+", s)
	}
	g := ProcGroup{Name: name}
	if strings.HasSuffix(pid, "+") {
		g.Children, pid = true, strings.TrimSuffix(pid, "+")
	}
	n, err := strconv.Atoi(pid)
	if err != nil || n <= 0 {
		return ProcGroup{}, fmt.Errorf("process %q: bad pid", s)
	}
	g.Pid = n
	return g, nil
}

// Pids returns the group's live pids: the process and, with Children,
// its descendants.
func (g ProcGroup) Pids() []int {
	pids := []int{g.Pid}
	if !g.Children {
		return pids
	}
	parent := map[int]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readStat(pid); err == nil {
			parent[pid] = st.ppid
		}
	}
	in := map[int]bool{g.Pid: true}
	for changed := true; changed; { // bounded by the number of processes
		changed = false
		for pid, pp := range parent {
			if in[pp] && !in[pid] {
				in[pid] = true
				pids = append(pids, pid)
				changed = true
			}
		}
	}
	sort.Ints(pids[1:])
	return pids
}

// ProcSample is one reading of a group's processes.
type ProcSample struct {
	Name     string  `json:"name"`
	Pids     []int   `json:"pids"`
	RSS      int64   `json:"rss_bytes"`
	Pss      int64   `json:"pss_bytes"`
	CPU      float64 `json:"cpu_seconds"` // utime+stime, summed
	Missing  []int   `json:"missing,omitempty"`
	sampled  time.Time
	cpuByPid map[int]float64
}

type statInfo struct {
	ppid       int
	utime      uint64
	stime      uint64
	minorFault uint64
}

var clkTck = 100.0 // USER_HZ on Linux

func readStat(pid int) (statInfo, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return statInfo{}, err
	}
	// comm may hold spaces and parens: fields start after the last ')'
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return statInfo{}, fmt.Errorf("/proc/%d/stat: no ')'", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return statInfo{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	// f[0] is state (field 3); ppid field 4; utime 14; stime 15
	var s statInfo
	s.ppid, _ = strconv.Atoi(f[1])
	s.minorFault, _ = strconv.ParseUint(f[7], 10, 64)
	s.utime, _ = strconv.ParseUint(f[11], 10, 64)
	s.stime, _ = strconv.ParseUint(f[12], 10, 64)
	return s, nil
}

// readRollup returns Rss and Pss in bytes from /proc/PID/smaps_rollup.
func readRollup(pid int) (rss, pss int64, err error) {
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), "smaps_rollup"))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) < 1 {
			continue
		}
		n, _ := strconv.ParseInt(fields[0], 10, 64)
		switch k {
		case "Rss":
			rss = n * 1024
		case "Pss":
			pss = n * 1024
		}
	}
	return rss, pss, sc.Err()
}

// Sample reads memory and CPU of the group's processes now.
func (g ProcGroup) Sample() ProcSample {
	s := ProcSample{Name: g.Name, sampled: time.Now(), cpuByPid: map[int]float64{}}
	for _, pid := range g.Pids() {
		st, err := readStat(pid)
		if err != nil {
			s.Missing = append(s.Missing, pid)
			continue
		}
		rss, pss, err := readRollup(pid)
		if err != nil {
			s.Missing = append(s.Missing, pid)
			continue
		}
		cpu := float64(st.utime+st.stime) / clkTck
		s.Pids = append(s.Pids, pid)
		s.RSS += rss
		s.Pss += pss
		s.CPU += cpu
		s.cpuByPid[pid] = cpu
	}
	return s
}

// CPUDelta is the CPU seconds the group used between two samples,
// counting only processes present in both (a worker that died and was
// replaced is reported by GoneBetween).
func CPUDelta(a, b ProcSample) float64 {
	var d float64
	for pid, cb := range b.cpuByPid {
		if ca, ok := a.cpuByPid[pid]; ok {
			d += cb - ca
		} else {
			d += cb // a new process: all its CPU is in the window
		}
	}
	return d
}

// GoneBetween lists pids present in a but not in b (crashed workers).
func GoneBetween(a, b ProcSample) []int {
	var gone []int
	for pid := range a.cpuByPid {
		if _, ok := b.cpuByPid[pid]; !ok {
			gone = append(gone, pid)
		}
	}
	sort.Ints(gone)
	return gone
}

// SelfCPU is this process's user+system CPU seconds so far.
func SelfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// RaiseNofile raises RLIMIT_NOFILE's soft limit to the hard limit and
// returns the new soft limit.
func RaiseNofile() (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			return 0, err
		}
	}
	return rl.Cur, nil
}

// MachineInfo describes the machine for reports.
type MachineInfo struct {
	CPUs     int    `json:"cpus"`
	CPUModel string `json:"cpu_model"`
	MemTotal int64  `json:"mem_total_bytes"`
	Kernel   string `json:"kernel"`
	NofileHi uint64 `json:"nofile_hard"`
}

// Machine reads MachineInfo from /proc.
func Machine() MachineInfo {
	var m MachineInfo
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			k, v, _ := strings.Cut(line, ":")
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			if k == "processor" {
				m.CPUs++
			}
			if k == "model name" && m.CPUModel == "" {
				m.CPUModel = v
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "MemTotal:") {
				f := strings.Fields(line)
				if len(f) >= 2 {
					n, _ := strconv.ParseInt(f[1], 10, 64)
					m.MemTotal = n * 1024
				}
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil {
		m.NofileHi = rl.Max
	}
	return m
}

// MachineCPU reads /proc/stat's first line: busy (everything but idle and
// iowait) and total CPU seconds of the whole machine, summed over CPUs.
func MachineCPU() (busy, total float64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		return 0, 0
	}
	for i, v := range f[1:] {
		if i >= 8 { // guest time is already in user
			break
		}
		n, _ := strconv.ParseFloat(v, 64)
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy / clkTck, total / clkTck
}

// LoadAvg is the 1-minute load average.
func LoadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}
