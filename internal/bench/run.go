package bench

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"
)

// RunOptions drives one benchmark run: connect every generator's
// subscribers, measure the servers' memory with them held, then run the
// phases in lock step across generators, measuring the servers' CPU and
// Redis commands over each phase's window.
type RunOptions struct {
	Label  string
	Target string
	Commit string
	URLs   []string
	// Phases as given to every generator (rates already split).
	Phases []Phase
	// Procs are the server processes to measure (node + Redis, or the
	// nginx master with its workers + Redis).
	Procs []ProcGroup
	// RedisAddrs are the Redis servers whose INFO commandstats to diff.
	RedisAddrs []string
	// Target adapter, for asking the servers how many polls they hold.
	Adapter        Target
	ConnectTimeout time.Duration
	// HeldWait bounds the wait until the servers report every connected
	// subscriber as held. Default 30s.
	HeldWait time.Duration
	// Settle is a pause before the held memory reading. Default 2s.
	Settle time.Duration
	// Progress receives a live line every second (nil: none); TTY
	// rewrites one line instead of printing one per tick.
	Progress io.Writer
	TTY      bool
	// Config is recorded in the result as is.
	Config ResultConfig
}

// ResultConfig records how the run was set up.
type ResultConfig struct {
	URLs         []string `json:"urls"`
	Subscribers  int      `json:"subscribers"`
	Generators   int      `json:"generators"`
	Publishers   int      `json:"publishers"`
	SourceAddrs  int      `json:"source_addrs"`
	PayloadBytes int      `json:"payload_bytes"`
	Workers      int      `json:"workers,omitempty"` // nginx worker_processes, for labels
	// Groups is the number of groups in group mode (0: none), each of
	// Subscribers/Groups members.
	Groups int `json:"groups,omitempty"`
	// Stream: the subscribers held server-sent event streams.
	Stream bool `json:"stream,omitempty"`
}

// Result is everything one run measured; the tool prints it as a table
// and writes it as JSON.
type Result struct {
	Tool         string        `json:"tool"`
	Label        string        `json:"label"`
	Target       string        `json:"target"`
	Date         string        `json:"date"`
	Commit       string        `json:"commit,omitempty"`
	Machine      MachineInfo   `json:"machine"`
	Config       ResultConfig  `json:"config"`
	Connect      ConnectStats  `json:"connect"`
	HeldReported int           `json:"held_reported"` // by the servers, -1 unknown
	Memory       *Memory       `json:"memory,omitempty"`
	Phases       []PhaseResult `json:"phases"`
	Final        FinalStats    `json:"final"`
	Errors       uint64        `json:"errors"`
	// GeneratorCPU is the generators' CPU seconds over the whole run.
	GeneratorCPU float64  `json:"generator_cpu_seconds"`
	Gone         []string `json:"processes_gone,omitempty"`
	Notes        []string `json:"notes,omitempty"`
}

// Memory is the servers' memory idle and with every subscriber held.
type Memory struct {
	Idle []ProcSample `json:"idle"`
	Held []ProcSample `json:"held"`
	// PerHeldPss and PerHeldRSS are (held - idle) / connected, summed
	// over every measured process, in bytes.
	PerHeldPss float64            `json:"per_held_pss_bytes"`
	PerHeldRSS float64            `json:"per_held_rss_bytes"`
	ByGroup    map[string]float64 `json:"per_held_pss_bytes_by_process"`
}

// PhaseResult is one phase, summed over generators.
type PhaseResult struct {
	Phase
	PublishersUsed  int         `json:"publishers_used"`
	PublishedPerSec float64     `json:"published_per_sec"`
	DeliveredPerSec float64     `json:"delivered_per_sec"`
	RequestsPerSec  float64     `json:"publish_requests_per_sec"`
	Published       uint64      `json:"published"`
	Delivered       uint64      `json:"delivered"`
	PublishErrors   uint64      `json:"publish_errors"`
	PollErrors      uint64      `json:"poll_errors"`
	Dups            uint64      `json:"dups"`
	Outstanding     int64       `json:"outstanding_after_drain"`
	Latency         Percentiles `json:"latency"`
	// LastCopy, in group mode, is the latency of each group message's
	// last member's copy.
	LastCopy          *Percentiles       `json:"last_copy_latency,omitempty"`
	ServerCPU         float64            `json:"server_cpu_seconds"`
	ServerCPUByGroup  map[string]float64 `json:"server_cpu_seconds_by_process"`
	ServerCPUPer1k    float64            `json:"server_cpu_seconds_per_1k"`
	GeneratorCPU      float64            `json:"generator_cpu_seconds"`
	GeneratorCPUPer1k float64            `json:"generator_cpu_seconds_per_1k"`
	RedisCalls        map[string]int64   `json:"redis_calls,omitempty"`
	RedisPerDelivered float64            `json:"redis_calls_per_delivered"`
	Gone              []int              `json:"pids_gone,omitempty"`
	// OtherCPU is CPU seconds the machine spent in the window on anything
	// but the measured servers and this tool's processes (other programs
	// on the machine competing for its cores); 0 is a clean measurement.
	OtherCPU float64 `json:"other_cpu_seconds"`
	LoadAvg  float64 `json:"load_avg_1m"`
}

// Run runs the benchmark over gens.
func Run(opts RunOptions, gens []Generator) (*Result, error) {
	if opts.HeldWait <= 0 {
		opts.HeldWait = 30 * time.Second
	}
	if opts.Settle <= 0 {
		opts.Settle = 2 * time.Second
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 2 * time.Minute
	}
	res := &Result{
		Tool: "cometbox-bench", Label: opts.Label, Target: opts.Target, Commit: opts.Commit,
		Date: time.Now().UTC().Format(time.RFC3339), Machine: Machine(), Config: opts.Config, HeldReported: -1,
	}
	prog := newProgress(opts.Progress, opts.TTY, gens)
	defer prog.stop()

	// Idle memory, before any subscriber.
	idle := sampleAll(opts.Procs)

	prog.setPhase("connect")
	cs := make([]ConnectStats, len(gens))
	if err := forEach(gens, func(i int, g Generator) (err error) {
		cs[i], err = g.Connect(opts.ConnectTimeout)
		return err
	}); err != nil {
		return nil, err
	}
	for _, c := range cs {
		res.Connect.Subscribers += c.Subscribers
		res.Connect.Connected += c.Connected
		res.Connect.DialErrors += c.DialErrors
		res.Connect.Seconds = max(res.Connect.Seconds, c.Seconds)
	}

	// Wait until the servers hold every connected poll.
	prog.setPhase("hold")
	if opts.Adapter != nil {
		deadline := time.Now().Add(opts.HeldWait)
		for {
			held, err := heldTotal(opts.Adapter, opts.URLs)
			if err == nil {
				res.HeldReported = held
			}
			if err != nil || int64(held) >= res.Connect.Connected || time.Now().After(deadline) {
				if err != nil {
					res.Notes = append(res.Notes, "held count unavailable: "+err.Error())
				}
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	time.Sleep(opts.Settle)
	if len(opts.Procs) > 0 {
		held := sampleAll(opts.Procs)
		m := &Memory{Idle: idle, Held: held, ByGroup: map[string]float64{}}
		n := float64(max(res.Connect.Connected, 1))
		for i := range held {
			m.PerHeldPss += float64(held[i].Pss-idle[i].Pss) / n
			m.PerHeldRSS += float64(held[i].RSS-idle[i].RSS) / n
			m.ByGroup[held[i].Name] = float64(held[i].Pss-idle[i].Pss) / n
		}
		res.Memory = m
	}

	for i, ph := range opts.Phases {
		prog.setPhase(ph.Name)
		var (
			mu     sync.Mutex
			p0, p1 []ProcSample
			r0, r1 map[string]int64
			m0, m1 float64
		)
		window := func(start bool) {
			s := sampleAll(opts.Procs)
			r := redisCalls(opts.RedisAddrs)
			busy, _ := MachineCPU()
			mu.Lock()
			defer mu.Unlock()
			if start {
				p0, r0, m0 = s, r, busy
			} else {
				p1, r1, m1 = s, r, busy
			}
		}
		window(true)
		timer := time.AfterFunc(ph.Duration, func() { window(false) })
		stats := make([]PhaseStats, len(gens))
		err := forEach(gens, func(j int, g Generator) (err error) {
			stats[j], err = g.Phase(i)
			return err
		})
		timer.Stop()
		if err != nil {
			return nil, err
		}
		mu.Lock()
		if p1 == nil { // the timer lost the race with a very short phase
			mu.Unlock()
			window(false)
			mu.Lock()
		}
		pubs := opts.Config.Publishers
		if ph.Publishers > 0 {
			pubs = ph.Publishers
		}
		pr := PhaseResult{Phase: ph, PublishersUsed: pubs, ServerCPUByGroup: map[string]float64{}, LoadAvg: LoadAvg()}
		hist := &HistSnapshot{Counts: make([]uint64, histBuckets)}
		var last *HistSnapshot
		var window64 uint64
		for _, s := range stats {
			if s.LastCopy != nil {
				if last == nil {
					last = &HistSnapshot{Counts: make([]uint64, histBuckets)}
				}
				last.Merge(s.LastCopy.Snapshot())
			}
			pr.Published += s.PublishedTotal
			pr.Delivered += s.Delivered
			pr.PublishErrors += s.PublishErrors
			pr.PollErrors += s.PollErrors
			pr.Dups += s.Dups
			pr.Outstanding += s.Outstanding
			pr.GeneratorCPU += s.GenCPU
			window64 += s.DeliveredWindow
			pr.PublishedPerSec += float64(s.Published) / ph.Duration.Seconds()
			pr.RequestsPerSec += float64(s.PublishRequests) / ph.Duration.Seconds()
			hist.Merge(s.Latency.Snapshot())
		}
		pr.DeliveredPerSec = float64(window64) / ph.Duration.Seconds()
		pr.Latency = hist.Percentiles()
		if last != nil {
			p := last.Percentiles()
			pr.LastCopy = &p
		}
		for k := range p0 {
			d := CPUDelta(p0[k], p1[k])
			pr.ServerCPU += d
			pr.ServerCPUByGroup[p0[k].Name] = d
			pr.Gone = append(pr.Gone, GoneBetween(p0[k], p1[k])...)
		}
		pr.OtherCPU = max(0, m1-m0-pr.ServerCPU-pr.GeneratorCPU-0.01*ph.Duration.Seconds()) // minus this process's sampling
		if window64 > 0 {
			pr.ServerCPUPer1k = pr.ServerCPU / (float64(window64) / 1000)
			pr.GeneratorCPUPer1k = pr.GeneratorCPU / (float64(window64) / 1000)
		}
		if r0 != nil && r1 != nil {
			pr.RedisCalls = CallsDelta(r0, r1)
			var total int64
			for _, v := range pr.RedisCalls {
				total += v
			}
			if window64 > 0 {
				pr.RedisPerDelivered = float64(total) / float64(window64)
			}
		}
		mu.Unlock()
		for _, pid := range pr.Gone {
			res.Gone = append(res.Gone, fmt.Sprintf("phase %s: pid %d", ph.Name, pid))
		}
		res.Phases = append(res.Phases, pr)
	}

	prog.setPhase("finish")
	fs := make([]FinalStats, len(gens))
	if err := forEach(gens, func(i int, g Generator) (err error) {
		fs[i], err = g.Finish()
		return err
	}); err != nil {
		return nil, err
	}
	res.Final = FinalStats{ErrorSample: map[string]int{}}
	for _, f := range fs {
		t := &res.Final
		t.Subscribers += f.Subscribers
		t.Connected += f.Connected
		t.Published += f.Published
		t.Delivered += f.Delivered
		t.Lost += f.Lost
		t.StalledSubs += f.StalledSubs
		t.SkippedSubs += f.SkippedSubs
		t.Extra += f.Extra
		t.Dups += f.Dups
		t.Misrouted += f.Misrouted
		t.Gaps += f.Gaps
		t.Resets += f.Resets
		t.Answers += f.Answers
		t.Empty += f.Empty
		t.Reconnects += f.Reconnects
		t.PollErrors += f.PollErrors
		t.DialErrors += f.DialErrors
		t.PubErrors += f.PubErrors
		t.GenCPU += f.GenCPU
		for k, v := range f.ErrorSample {
			t.ErrorSample[k] += v
		}
	}
	res.Errors = res.Final.Errors()
	res.GeneratorCPU = res.Final.GenCPU
	return res, nil
}

func forEach(gens []Generator, fn func(int, Generator) error) error {
	errs := make([]error, len(gens))
	var wg sync.WaitGroup
	for i, g := range gens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn(i, g)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func sampleAll(groups []ProcGroup) []ProcSample {
	out := make([]ProcSample, len(groups))
	for i, g := range groups {
		out[i] = g.Sample()
	}
	return out
}

func redisCalls(addrs []string) map[string]int64 {
	if len(addrs) == 0 {
		return nil
	}
	total := map[string]int64{}
	for _, a := range addrs {
		m, err := RedisCommands(a)
		if err != nil {
			return nil
		}
		for k, v := range m {
			total[k] += v
		}
	}
	return total
}

func heldTotal(t Target, urls []string) (int, error) {
	total := 0
	for _, u := range urls {
		n, err := t.Held(u)
		if err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}

// progress prints one live line a second.
type progress struct {
	w     io.Writer
	tty   bool
	gens  []Generator
	mu    sync.Mutex
	phase string
	since time.Time
	done  chan struct{}
	wg    sync.WaitGroup
}

func newProgress(w io.Writer, tty bool, gens []Generator) *progress {
	p := &progress{w: w, tty: tty, gens: gens, done: make(chan struct{}), since: time.Now()}
	if w == nil {
		return p
	}
	p.wg.Add(1)
	go p.loop()
	return p
}

func (p *progress) setPhase(name string) {
	p.mu.Lock()
	p.phase, p.since = name, time.Now()
	p.mu.Unlock()
}

func (p *progress) stop() {
	close(p.done)
	p.wg.Wait()
	if p.w != nil && p.tty {
		fmt.Fprintln(p.w)
	}
}

func (p *progress) loop() {
	defer p.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var prev Live
	var prevHist *HistSnapshot
	prevAt := time.Now()
	for {
		select {
		case <-p.done:
			return
		case now := <-t.C:
			var cur Live
			h := &HistSnapshot{Counts: make([]uint64, histBuckets)}
			for _, g := range p.gens {
				l := g.Live()
				cur.Connected += l.Connected
				cur.Subscribers += l.Subscribers
				cur.Published += l.Published
				cur.Delivered += l.Delivered
				cur.Errors += l.Errors
				h.Merge(l.Latency.Snapshot())
			}
			dt := now.Sub(prevAt).Seconds()
			iv := h
			if prevHist != nil && h.Total() >= prevHist.Total() {
				iv = h.Sub(prevHist)
			}
			p.mu.Lock()
			phase, el := p.phase, now.Sub(p.since).Truncate(time.Second)
			p.mu.Unlock()
			line := fmt.Sprintf("[%-9s %4s] subs %d/%d  pub %7.0f/s  dlv %7.0f/s  p50 %6.2fms p99 %7.2fms  errors %d",
				phase, el, cur.Connected, cur.Subscribers,
				float64(cur.Published-prev.Published)/dt, float64(cur.Delivered-prev.Delivered)/dt,
				float64(iv.Quantile(0.5))/1e6, float64(iv.Quantile(0.99))/1e6, cur.Errors)
			if p.tty {
				fmt.Fprintf(p.w, "\r%s\x1b[K", line)
			} else {
				fmt.Fprintln(p.w, line)
			}
			prev, prevHist, prevAt = cur, h, now
		}
	}
}

// WriteTable prints res as a human-readable table.
func WriteTable(w io.Writer, res *Result) {
	fmt.Fprintf(w, "%s (%s) %s, %d CPUs, commit %s\n", res.Label, res.Target, res.Date, res.Machine.CPUs, orDash(res.Commit))
	kind := "long-polls"
	if res.Config.Stream {
		kind = "event streams"
	}
	fmt.Fprintf(w, "subscribers (%s): %d connected of %d in %.1fs (servers report %d held), %d generator process(es), %d publisher connection(s)\n",
		kind, res.Connect.Connected, res.Connect.Subscribers, res.Connect.Seconds, res.HeldReported, res.Config.Generators, res.Config.Publishers)
	if m := res.Memory; m != nil {
		var parts []string
		for i := range m.Held {
			parts = append(parts, fmt.Sprintf("%s %s -> %s Pss", m.Held[i].Name, mib(m.Idle[i].Pss), mib(m.Held[i].Pss)))
		}
		fmt.Fprintf(w, "memory per held poll: %.1f kB Pss, %.1f kB RSS (%s)\n", m.PerHeldPss/1000, m.PerHeldRSS/1000, strings.Join(parts, "; "))
	}
	fmt.Fprintf(w, "\n%-10s %6s %5s %10s %10s %8s %8s %8s %9s %9s %9s %9s %6s %6s\n",
		"phase", "rate", "batch", "pub/s", "dlv/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "srvCPU/1k", "genCPU/1k", "redis/msg", "errors", "other%")
	for _, p := range res.Phases {
		rate := "max"
		if p.Rate > 0 {
			rate = fmt.Sprintf("%.0f", p.Rate)
		}
		fmt.Fprintf(w, "%-10s %6s %5d %10.0f %10.0f %8.2f %8.2f %8.2f %9.1f %9.3f %9.3f %9.2f %6d %6.0f\n",
			p.Name, rate, p.Batch, p.PublishedPerSec, p.DeliveredPerSec, p.Latency.P50, p.Latency.P90, p.Latency.P99, p.Latency.Max,
			p.ServerCPUPer1k, p.GeneratorCPUPer1k, p.RedisPerDelivered, p.PublishErrors+p.PollErrors, 100*p.OtherCPU/p.Duration.Seconds())
	}
	f := res.Final
	if res.Config.Groups > 0 {
		fmt.Fprintf(w, "\ngroup mode: %d groups of %d members; rate is group messages per second, pub/s and dlv/s count copies; the last member's copy of each group message:\n",
			res.Config.Groups, res.Config.Subscribers/res.Config.Groups)
		for _, p := range res.Phases {
			if l := p.LastCopy; l != nil {
				fmt.Fprintf(w, "%-10s %d group messages: p50 %.1f ms, p99 %.1f ms, max %.1f ms\n", p.Name, l.Count, l.P50, l.P99, l.Max)
			}
		}
	}
	fmt.Fprintf(w, "\npublished %d, delivered %d, lost %d, duplicated %d, extra %d; errors %d (poll %d, dial %d, publish %d, misrouted %d, gaps %d, resets %d); reconnects %d\n",
		f.Published, f.Delivered, f.Lost, f.Dups, f.Extra, res.Errors, f.PollErrors, f.DialErrors, f.PubErrors, f.Misrouted, f.Gaps, f.Resets, f.Reconnects)
	if f.Lost > 0 {
		fmt.Fprintf(w, "subscribers with lost messages: %d stalled (nothing received after the first loss), %d skipping (later messages received)\n", f.StalledSubs, f.SkippedSubs)
	}
	fmt.Fprintf(w, "generator CPU: %.1f s over the run; other%%: CPU used by other programs on the machine during the phase, in %% of one core\n", res.GeneratorCPU)
	for _, p := range res.Phases {
		if len(p.RedisCalls) == 0 {
			continue
		}
		fmt.Fprintf(w, "redis commands per delivered message, %s: %s\n", p.Name, topCalls(p.RedisCalls, p.DeliveredPerSec*p.Duration.Seconds(), 8))
	}
	writeErrorSamples(w, f.ErrorSample)
	for _, g := range res.Gone {
		fmt.Fprintf(w, "process gone: %s\n", g)
	}
	for _, n := range res.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}

// topCalls lists the n commands with the most calls per delivered message.
func topCalls(calls map[string]int64, delivered float64, n int) string {
	per := make(map[string]float64, len(calls))
	for k, v := range calls {
		per[k] = float64(v) / max(delivered, 1)
	}
	return rankCalls(per, n, "%s %.2f", 0)
}

// rankCalls lists the n largest values of calls, largest first (ties by
// name), each printed with format from its name and value; values below
// minimum are left out.
func rankCalls(calls map[string]float64, n int, format string, minimum float64) string {
	type kv struct {
		k string
		v float64
	}
	var all []kv
	for k, v := range calls {
		if v >= minimum {
			all = append(all, kv{k, v})
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].v > all[j].v || all[i].v == all[j].v && all[i].k < all[j].k })
	var parts []string
	for i, e := range all {
		if i == n {
			parts = append(parts, "...")
			break
		}
		parts = append(parts, fmt.Sprintf(format, e.k, e.v))
	}
	return strings.Join(parts, ", ")
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// writeErrorSamples writes a run's error samples, in the order of their
// text, each with how often it came.
func writeErrorSamples(w io.Writer, samples map[string]int) {
	if len(samples) == 0 {
		return
	}
	fmt.Fprintln(w, "error samples:")
	keys := make([]string, 0, len(samples))
	for k := range samples {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "  %6d x %s\n", samples[k], k)
	}
}
