package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Phase is one measured window of publishing.
type Phase struct {
	Name string `json:"name"`
	// Rate is the target messages per second; 0 publishes as fast as the
	// publisher connections allow.
	Rate float64 `json:"rate"`
	// Batch is the number of messages per publish request (default 1).
	Batch    int           `json:"batch"`
	Duration time.Duration `json:"duration_ns"`
	// Publishers overrides GenConfig.Publishers for this phase when > 0.
	Publishers int `json:"publishers,omitempty"`
}

// GenConfig configures one load generator (one process).
type GenConfig struct {
	Target Target
	// URLs are the servers' base URLs (http://127.0.0.1:PORT); subscriber
	// i and publisher j use URLs[i%len] and URLs[j%len].
	URLs []string
	// Subscribers is the number of long-polls to hold, one client id and
	// one TCP connection each.
	Subscribers int
	// SourceAddrs spreads subscriber connections over 127.0.0.1 ..
	// 127.0.0.SourceAddrs so their number can pass the ephemeral port
	// range. Default 1.
	SourceAddrs int
	// IDPrefix starts every client id; it should be unique per run so
	// that no queue from an earlier run is read.
	IDPrefix string
	// Publishers is the number of publisher connections. Default 8.
	Publishers int
	// DialConcurrency bounds connection attempts in flight. Default 256.
	DialConcurrency int
	// Phases run in order after Connect.
	Phases []Phase
	// Drain is the most time to wait after a phase for every acknowledged
	// message to arrive. Default 10s.
	Drain time.Duration
	// MaxRun bounds the whole run; every loop stops by then. Default 30m.
	MaxRun time.Duration
	// Timeline, when set, records when each message was sent and
	// delivered and when empty answers came (see Runner.Windows).
	Timeline *Timeline
	// Idle is how many subscribers (the last ones) get no message: their
	// polls are held until they time out. Default 0.
	Idle int
	// Stream makes every subscriber hold a server-sent event stream
	// instead of long-polling; the target must be a Streamer.
	Stream bool
	// Groups, when above 0, runs group mode: subscriber i is a member of
	// group i mod Groups, each publish request sends one message to one
	// group (in turn), and each member gets a copy; phases' rates are
	// group messages per second, and published and delivered count
	// copies. Default 0: one message per client.
	Groups int
}

// Runner is the load generator: it holds the subscribers and runs the
// publishing phases. All its loops are bounded by MaxRun and by Close.
type Runner struct {
	cfg      GenConfig
	hosts    []string
	subs     []*subscriber
	ctx      context.Context
	cancel   context.CancelFunc
	deadline time.Time
	wg       sync.WaitGroup
	dialSem  chan struct{}

	hist     atomic.Pointer[Histogram]
	nextMsg  atomic.Uint64 // global message index, across phases
	phaseReq atomic.Uint64 // request index within the current phase

	// In group mode, the latest copy of each group message (by its index)
	// so far, since it was sent, in ns: the last member's.
	lastMu sync.Mutex
	last   map[uint64]int64
	// members of each group, in group mode.
	members [][]*subscriber
	// acks carries the streams' acknowledgements (nil: none).
	acks chan ackReq

	connected   atomic.Int64
	connectedEv atomic.Int64 // subscribers that sent their first poll
	delivered   atomic.Uint64
	dups        atomic.Uint64
	misrouted   atomic.Uint64
	answers     atomic.Uint64 // poll answers
	empty       atomic.Uint64 // answers without messages (timeouts)
	gaps        atomic.Uint64
	resets      atomic.Uint64
	reconnects  atomic.Uint64
	pollErrors  atomic.Uint64
	dialErrors  atomic.Uint64
	published   atomic.Uint64 // messages acknowledged by the server
	pubRequests atomic.Uint64
	pubErrors   atomic.Uint64

	errMu      sync.Mutex
	errSamples map[string]int
}

type subscriber struct {
	idx   int
	want  int // the payloads' subscriber field: idx, or its group in group mode
	st    SubState
	addr  string
	host  string
	local *net.TCPAddr
	tr    Tracker

	mu   sync.Mutex
	conn *Conn
}

// NewRunner validates cfg and prepares (but does not connect) the
// subscribers.
func NewRunner(cfg GenConfig) (*Runner, error) {
	if cfg.Target == nil || len(cfg.URLs) == 0 || cfg.Subscribers <= 0 {
		return nil, errors.New("bench: need a target, at least one URL and one subscriber")
	}
	if _, ok := cfg.Target.(Streamer); cfg.Stream && !ok {
		return nil, fmt.Errorf("bench: %s serves no streams", cfg.Target.Name())
	}
	if cfg.Idle < 0 || cfg.Idle >= cfg.Subscribers {
		return nil, fmt.Errorf("bench: %d idle subscribers of %d: want at least one that gets messages", cfg.Idle, cfg.Subscribers)
	}
	if cfg.Groups < 0 || cfg.Groups > cfg.Subscribers || cfg.Groups > 0 && cfg.Idle > 0 {
		return nil, fmt.Errorf("bench: %d groups of %d subscribers (%d idle): want 0, or 1 to %d without idle subscribers",
			cfg.Groups, cfg.Subscribers, cfg.Idle, cfg.Subscribers)
	}
	cfg.SourceAddrs = max(cfg.SourceAddrs, 1)
	if cfg.SourceAddrs > 250 {
		return nil, errors.New("bench: at most 250 source addresses")
	}
	if cfg.Publishers <= 0 {
		cfg.Publishers = 8
	}
	if cfg.DialConcurrency <= 0 {
		cfg.DialConcurrency = 256
	}
	if cfg.Drain <= 0 {
		cfg.Drain = 10 * time.Second
	}
	if cfg.MaxRun <= 0 {
		cfg.MaxRun = 30 * time.Minute
	}
	for i := range cfg.Phases {
		p := &cfg.Phases[i]
		if p.Batch <= 0 {
			p.Batch = 1
		}
		if p.Batch > cfg.Target.MaxBatch() {
			return nil, fmt.Errorf("bench: phase %s: batch %d: %s takes at most %d messages per publish",
				p.Name, p.Batch, cfg.Target.Name(), cfg.Target.MaxBatch())
		}
		if p.Batch > cfg.Subscribers-cfg.Idle {
			return nil, fmt.Errorf("bench: phase %s: batch %d is larger than the %d subscribers that get messages", p.Name, p.Batch, cfg.Subscribers-cfg.Idle)
		}
		if cfg.Groups > 0 && p.Batch != 1 {
			return nil, fmt.Errorf("bench: phase %s: batch %d: group mode publishes one group message per request", p.Name, p.Batch)
		}
		if p.Duration <= 0 {
			return nil, fmt.Errorf("bench: phase %s: no duration", p.Name)
		}
	}
	r := &Runner{cfg: cfg, errSamples: map[string]int{}, dialSem: make(chan struct{}, cfg.DialConcurrency)}
	for _, u := range cfg.URLs {
		pu, err := url.Parse(u)
		if err != nil || pu.Scheme != "http" || pu.Host == "" {
			return nil, fmt.Errorf("bench: URL %q: want http://HOST:PORT", u)
		}
		host := pu.Hostname()
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return nil, fmt.Errorf("bench: URL %q: loopback targets only", u)
		}
		r.hosts = append(r.hosts, pu.Host)
	}
	r.hist.Store(new(Histogram))
	r.deadline = time.Now().Add(cfg.MaxRun)
	r.ctx, r.cancel = context.WithDeadline(context.Background(), r.deadline)
	r.subs = make([]*subscriber, cfg.Subscribers)
	if cfg.Groups > 0 {
		r.members = make([][]*subscriber, cfg.Groups)
		r.last = map[uint64]int64{}
	}
	for i := range r.subs {
		ip := net.IPv4(127, 0, 0, byte(1+i%cfg.SourceAddrs))
		h := r.hosts[i%len(r.hosts)]
		s := &subscriber{
			idx: i, want: i, st: SubState{ID: cfg.IDPrefix + strconv.Itoa(i)},
			addr: h, host: h, local: &net.TCPAddr{IP: ip},
		}
		if cfg.Groups > 0 {
			s.want = i % cfg.Groups
			s.st.ID = cfg.Target.Subscriber(s.st.ID, r.groupName(s.want))
			r.members[s.want] = append(r.members[s.want], s)
		}
		r.subs[i] = s
	}
	return r, nil
}

// groupName is the name of group g in group mode.
func (r *Runner) groupName(g int) string { return r.cfg.IDPrefix + "g" + strconv.Itoa(g) }

// JoinGroups registers every group's members with the servers, when the
// target needs that (Joiner), before Connect.
func (r *Runner) JoinGroups() error {
	j, ok := r.cfg.Target.(Joiner)
	if !ok || r.cfg.Groups == 0 {
		return nil
	}
	for g, members := range r.members {
		ids := make([]string, len(members))
		for i, s := range members {
			ids[i] = s.st.ID
		}
		if err := j.Join(r.cfg.URLs[g%len(r.cfg.URLs)], r.groupName(g), ids); err != nil {
			return err
		}
	}
	return nil
}

func (r *Runner) noteErr(kind string, err error) {
	msg := kind + ": " + err.Error()
	if len(msg) > 160 {
		msg = msg[:160]
	}
	r.errMu.Lock()
	if _, ok := r.errSamples[msg]; ok || len(r.errSamples) < 20 {
		r.errSamples[msg]++
	}
	r.errMu.Unlock()
}

// ConnectStats reports how the subscribers connected.
type ConnectStats struct {
	Subscribers int     `json:"subscribers"`
	Connected   int64   `json:"connected"`
	DialErrors  uint64  `json:"dial_errors"`
	Seconds     float64 `json:"seconds"`
}

// Connect opens every subscriber's connection and sends its first poll,
// DialConcurrency at a time, and returns once each has done so or failed
// its first attempt (the failed ones keep retrying in the background), or
// after timeout.
func (r *Runner) Connect(timeout time.Duration) ConnectStats {
	start := time.Now()
	var first sync.WaitGroup
	first.Add(len(r.subs))
	st, _ := r.cfg.Target.(Streamer)
	if r.cfg.Stream && st.AppendAck(nil, "", &SubState{ID: "x", Pos: [2]string{"x:1"}}) != nil {
		r.startAckers(st)
	}
	for _, s := range r.subs {
		r.wg.Add(1)
		if r.cfg.Stream {
			go r.streamLoop(s, st, first.Done)
		} else {
			go r.subLoop(s, first.Done)
		}
	}
	done := make(chan struct{})
	go func() { first.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
	case <-r.ctx.Done():
	}
	return ConnectStats{
		Subscribers: len(r.subs),
		Connected:   r.connected.Load(),
		DialErrors:  r.dialErrors.Load(),
		Seconds:     time.Since(start).Seconds(),
	}
}

func (r *Runner) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.ctx.Done():
		return false
	}
}

func (s *subscriber) setConn(c *Conn) {
	s.mu.Lock()
	s.conn = c
	s.mu.Unlock()
}

func (r *Runner) dropConn(s *subscriber, c *Conn) {
	_ = c.Close()
	s.setConn(nil)
	r.connected.Add(-1)
}

// subLoop holds s's long-poll until the run ends: poll, read the answer,
// account for its messages, poll again from the new position.
func (r *Runner) subLoop(s *subscriber, firstDone func()) {
	defer r.wg.Done()
	signal := func() {
		if firstDone != nil {
			firstDone()
			firstDone = nil
		}
	}
	defer signal()
	backoff := 50 * time.Millisecond
	want := r.cfg.Target.PollHeaders()
	tl := r.cfg.Timeline
	var c *Conn
	var sentAt int64 // of the poll, with a Timeline
	for r.ctx.Err() == nil {
		if tl != nil {
			sentAt = time.Now().UnixNano()
		}
		if c == nil {
			r.dialSem <- struct{}{}
			var err error
			c, err = Dial(s.addr, s.local, 5*time.Second, want...)
			if err != nil {
				<-r.dialSem
				r.dialErrors.Add(1)
				if r.ctx.Err() == nil {
					r.noteErr("dial", err)
				}
				signal()
				if !r.sleep(backoff) {
					return
				}
				backoff = min(2*backoff, 2*time.Second)
				continue
			}
			s.setConn(c)
			r.connected.Add(1)
			if r.ctx.Err() != nil { // closed while dialing
				<-r.dialSem
				r.dropConn(s, c)
				return
			}
			err = c.Send(r.cfg.Target.AppendPoll(c.Buf(), s.host, &s.st), r.deadline)
			<-r.dialSem
			if err != nil {
				r.pollFailed(s, c, err)
				c = nil
				signal()
				continue
			}
			if firstDone != nil {
				r.connectedEv.Add(1)
			}
			signal()
		} else if err := c.Send(r.cfg.Target.AppendPoll(c.Buf(), s.host, &s.st), r.deadline); err != nil {
			r.pollFailed(s, c, err)
			c = nil
			continue
		}
		resp, err := c.ReadResponse()
		if err != nil {
			r.pollFailed(s, c, err)
			c = nil
			continue
		}
		now := time.Now().UnixNano()
		r.answers.Add(1)
		out, herr := r.cfg.Target.HandlePoll(resp, &s.st)
		if out.Gap {
			r.gaps.Add(1)
		}
		if out.Reset {
			r.resets.Add(1)
		}
		n, perr := ScanPayloads(resp.Body, func(p Payload) { r.received(s, p, now) })
		switch {
		case herr != nil:
			r.pollErrors.Add(1)
			r.noteErr("poll", herr)
		case perr != nil:
			r.pollErrors.Add(1)
			r.noteErr("poll", perr)
		case n != out.Messages:
			r.pollErrors.Add(1)
			r.noteErr("poll", fmt.Errorf("%d payloads in an answer of %d messages", n, out.Messages))
		case n == 0:
			r.empty.Add(1)
			if tl != nil {
				tl.noteEmpty(now, now-sentAt)
			}
		}
		if resp.Close {
			r.reconnects.Add(1)
			r.dropConn(s, c)
			c = nil
		}
		backoff = 50 * time.Millisecond
		if out.Retry > 0 && !r.sleep(out.Retry) {
			break
		}
	}
	if c != nil {
		r.dropConn(s, c)
	}
}

// received accounts for payload p, received by s at now (Unix ns).
func (r *Runner) received(s *subscriber, p Payload, now int64) {
	tl := r.cfg.Timeline
	if p.Sub != s.want {
		r.misrouted.Add(1)
		return
	}
	if s.tr.Received(p.Seq) {
		r.dups.Add(1)
		if tl != nil {
			tl.noteDup(p.SentNanos)
		}
		return
	}
	r.delivered.Add(1)
	r.hist.Load().Record(time.Duration(now - p.SentNanos))
	if tl != nil {
		tl.noteDelivered(p.SentNanos, now)
	}
	if r.last != nil {
		r.noteCopy((p.Seq-1)*uint64(r.cfg.Groups)+uint64(p.Sub), now-p.SentNanos)
	}
}

// noteCopy records a group message's copy delivered d ns after it was
// sent: the message's latest copy so far when later than the others.
func (r *Runner) noteCopy(msg uint64, d int64) {
	r.lastMu.Lock()
	if d > r.last[msg] {
		r.last[msg] = d
	}
	r.lastMu.Unlock()
}

// lastCopies returns, and forgets, the latency of each group message's
// latest copy.
func (r *Runner) lastCopies() Sparse {
	h := new(Histogram)
	r.lastMu.Lock()
	for _, d := range r.last {
		h.Record(time.Duration(d))
	}
	clear(r.last)
	r.lastMu.Unlock()
	return h.Snapshot().Sparse()
}

func (r *Runner) pollFailed(s *subscriber, c *Conn, err error) {
	r.dropConn(s, c)
	if r.ctx.Err() != nil {
		return
	}
	r.pollErrors.Add(1)
	r.noteErr("poll", err)
	r.sleep(50 * time.Millisecond)
}

// PhaseStats is one generator's account of one phase.
type PhaseStats struct {
	Published       uint64  `json:"published"`        // messages acknowledged in the window
	PublishRequests uint64  `json:"publish_requests"` // requests acknowledged in the window
	PublishErrors   uint64  `json:"publish_errors"`
	DeliveredWindow uint64  `json:"delivered_window"` // distinct messages received in the window
	Delivered       uint64  `json:"delivered"`        // including the drain after the window
	PublishedTotal  uint64  `json:"published_total"`  // including requests finishing after the window
	Dups            uint64  `json:"dups"`
	PollErrors      uint64  `json:"poll_errors"`
	Outstanding     int64   `json:"outstanding"` // acknowledged, not received when the drain ended
	DrainSeconds    float64 `json:"drain_seconds"`
	GenCPU          float64 `json:"generator_cpu_seconds"` // in the window
	Latency         Sparse  `json:"latency"`
	// LastCopy, in group mode, is the latency of each group message's
	// last member's copy (one value per group message).
	LastCopy *Sparse `json:"last_copy,omitempty"`
}

type counters struct {
	delivered, dups, pollErrors, published, pubRequests, pubErrors uint64
}

func (r *Runner) counters() counters {
	return counters{r.delivered.Load(), r.dups.Load(), r.pollErrors.Load(),
		r.published.Load(), r.pubRequests.Load(), r.pubErrors.Load()}
}

// RunPhase runs phase i: publishers for its duration, then a drain until
// every acknowledged message arrived (or Drain passed). onWindow, if not
// nil, is called at the start (true) and end (false) of the window.
func (r *Runner) RunPhase(i int, onWindow func(start bool)) (PhaseStats, error) {
	if i < 0 || i >= len(r.cfg.Phases) {
		return PhaseStats{}, fmt.Errorf("bench: no phase %d", i)
	}
	ph := r.cfg.Phases[i]
	r.hist.Store(new(Histogram))
	r.phaseReq.Store(0)
	if r.last != nil {
		r.lastCopies() // copies of the phase before that came late
	}
	c0 := r.counters()
	cpu0 := SelfCPU()
	start := time.Now()
	end := start.Add(ph.Duration)
	if onWindow != nil {
		onWindow(true)
	}
	var pw sync.WaitGroup
	pubs := r.cfg.Publishers
	if ph.Publishers > 0 {
		pubs = ph.Publishers
	}
	for j := range pubs {
		pw.Add(1)
		go func() {
			defer pw.Done()
			r.pubLoop(j, ph, start, end)
		}()
	}
	select {
	case <-time.After(time.Until(end)):
	case <-r.ctx.Done():
	}
	c1 := r.counters()
	cpu1 := SelfCPU()
	if onWindow != nil {
		onWindow(false)
	}
	pw.Wait()
	drainStart := time.Now()
	for time.Since(drainStart) < r.cfg.Drain && r.ctx.Err() == nil {
		if r.delivered.Load() >= r.published.Load() {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	c2 := r.counters()
	lost, _, _ := r.Accounting()
	var last *Sparse
	if r.last != nil {
		l := r.lastCopies()
		last = &l
	}
	return PhaseStats{
		LastCopy:        last,
		Published:       c1.published - c0.published,
		PublishRequests: c1.pubRequests - c0.pubRequests,
		PublishErrors:   c2.pubErrors - c0.pubErrors,
		DeliveredWindow: c1.delivered - c0.delivered,
		Delivered:       c2.delivered - c0.delivered,
		PublishedTotal:  c2.published - c0.published,
		Dups:            c2.dups - c0.dups,
		PollErrors:      c2.pollErrors - c0.pollErrors,
		Outstanding:     int64(lost),
		DrainSeconds:    time.Since(drainStart).Seconds(),
		GenCPU:          cpu1 - cpu0,
		Latency:         r.hist.Load().Snapshot().Sparse(),
	}, nil
}

// busy is how many subscribers get messages: the first ones.
func (r *Runner) busy() uint64 { return uint64(len(r.subs) - r.cfg.Idle) }

// pubLoop publishes on one connection until end: at the phase's rate
// (requests scheduled on a shared clock) or back to back.
func (r *Runner) pubLoop(j int, ph Phase, start, end time.Time) {
	host := r.hosts[j%len(r.hosts)]
	n := r.busy()
	b := uint64(ph.Batch)
	var interval time.Duration
	if ph.Rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(b) / ph.Rate)
	}
	msgs := make([]OutMsg, b)
	payloads := make([]byte, 0, int(b)*PayloadSize)
	var c *Conn
	defer func() {
		if c != nil {
			_ = c.Close()
		}
	}()
	for range 1 << 40 { // bounded by end
		if r.ctx.Err() != nil {
			return
		}
		if interval > 0 {
			k := r.phaseReq.Add(1) - 1
			at := start.Add(time.Duration(k) * interval)
			if !at.Before(end) {
				return
			}
			if d := time.Until(at); d > 0 && !r.sleep(d) {
				return
			}
		} else if !time.Now().Before(end) {
			return
		}
		if c == nil {
			var err error
			if c, err = Dial(host, nil, 5*time.Second); err != nil {
				r.pubErrors.Add(1)
				r.noteErr("publish dial", err)
				c = nil
				r.sleep(100 * time.Millisecond)
				continue
			}
		}
		base := r.nextMsg.Add(b) - b
		sent := time.Now().UnixNano()
		if r.cfg.Timeline != nil {
			r.cfg.Timeline.noteSent(base, b, sent)
		}
		payloads = payloads[:0]
		if groups := uint64(r.cfg.Groups); groups > 0 { // b is 1
			g := base % groups
			payloads = AppendPayload(payloads, int(g), base/groups+1, sent)
			msgs[0] = OutMsg{To: r.groupName(int(g)), Group: true, Payload: payloads}
		} else {
			for m := range b {
				g := base + m
				sub := g % n
				payloads = AppendPayload(payloads, int(sub), g/n+1, sent)
				msgs[m] = OutMsg{To: r.subs[sub].st.ID, Payload: payloads[len(payloads)-PayloadSize:]}
			}
		}
		resp, err := c.Do(r.cfg.Target.AppendPublish(c.Buf(), host, msgs), time.Now().Add(10*time.Second))
		if err == nil {
			err = r.cfg.Target.CheckPublish(resp, int(b))
		}
		if err != nil {
			r.pubErrors.Add(1)
			r.noteErr("publish", err)
			_ = c.Close()
			c = nil
			r.sleep(50 * time.Millisecond)
			continue
		}
		r.pubRequests.Add(1)
		if groups := uint64(r.cfg.Groups); groups > 0 {
			members := r.members[base%groups]
			for _, s := range members {
				s.tr.Acked(base/groups + 1)
			}
			r.published.Add(uint64(len(members)))
		} else {
			for m := range b {
				g := base + m
				r.subs[g%n].tr.Acked(g/n + 1)
			}
			r.published.Add(b)
		}
		if resp.Close {
			_ = c.Close()
			c = nil
		}
	}
}

// Accounting sums lost (acknowledged, never received), extra (received,
// never acknowledged) and duplicate messages over every subscriber.
func (r *Runner) Accounting() (lost, extra, dups uint64) {
	for _, s := range r.subs {
		l, e, d := s.tr.Counts()
		lost += l
		extra += e
		dups += d
	}
	return lost, extra, dups
}

// LossySubscribers counts the subscribers with lost messages: stalled
// ones received nothing after their first loss (their poll was never
// answered again), the others skipped messages and received later ones.
func (r *Runner) LossySubscribers() (stalled, skipped uint64) {
	for _, s := range r.subs {
		first, maxRecv := s.tr.Lossy()
		switch {
		case first == 0:
		case maxRecv < first:
			stalled++
		default:
			skipped++
		}
	}
	return stalled, skipped
}

// Live is a cheap view of the run for progress lines.
type Live struct {
	Connected   int64  `json:"connected"`
	Published   uint64 `json:"published"`
	Delivered   uint64 `json:"delivered"`
	Errors      uint64 `json:"errors"`
	Subscribers int    `json:"subscribers"`
	Latency     Sparse `json:"latency"` // the current phase's, so far
}

// Live returns the current counters.
func (r *Runner) Live() Live {
	return Live{
		Connected:   r.connected.Load(),
		Published:   r.published.Load(),
		Delivered:   r.delivered.Load(),
		Errors:      r.pollErrors.Load() + r.pubErrors.Load() + r.dialErrors.Load() + r.misrouted.Load() + r.gaps.Load() + r.resets.Load(),
		Subscribers: len(r.subs),
		Latency:     r.hist.Load().Snapshot().Sparse(),
	}
}

// FinalStats is a generator's account of the whole run.
type FinalStats struct {
	Subscribers int    `json:"subscribers"`
	Connected   int64  `json:"connected_at_end"`
	Published   uint64 `json:"published"`
	Delivered   uint64 `json:"delivered"`
	Lost        uint64 `json:"lost"`
	// StalledSubs and SkippedSubs count the subscribers with lost
	// messages (see LossySubscribers).
	StalledSubs uint64         `json:"stalled_subscribers"`
	SkippedSubs uint64         `json:"skipping_subscribers"`
	Extra       uint64         `json:"extra"`
	Dups        uint64         `json:"dups"`
	Misrouted   uint64         `json:"misrouted"`
	Gaps        uint64         `json:"gaps"`
	Resets      uint64         `json:"resets"`
	Answers     uint64         `json:"poll_answers"`
	Empty       uint64         `json:"empty_answers"`
	Reconnects  uint64         `json:"reconnects"`
	PollErrors  uint64         `json:"poll_errors"`
	DialErrors  uint64         `json:"dial_errors"`
	PubErrors   uint64         `json:"publish_errors"`
	ErrorSample map[string]int `json:"error_samples,omitempty"`
	GenCPU      float64        `json:"generator_cpu_seconds"`
}

// Errors is the sum of every kind of error.
func (f FinalStats) Errors() uint64 {
	return f.PollErrors + f.DialErrors + f.PubErrors + f.Misrouted + f.Gaps + f.Resets
}

// Close stops every loop, closes every connection and returns the run's
// totals.
func (r *Runner) Close() FinalStats {
	connected := r.connected.Load()
	lost, extra, dups := r.Accounting()
	stalled, skipped := r.LossySubscribers()
	r.cancel()
	for _, s := range r.subs {
		s.mu.Lock()
		if s.conn != nil {
			_ = s.conn.Close()
		}
		s.mu.Unlock()
	}
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
	r.errMu.Lock()
	samples := make(map[string]int, len(r.errSamples))
	keys := make([]string, 0, len(r.errSamples))
	for k := range r.errSamples {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		samples[k] = r.errSamples[k]
	}
	r.errMu.Unlock()
	return FinalStats{
		Subscribers: len(r.subs), Connected: connected,
		Published: r.published.Load(), Delivered: r.delivered.Load(),
		Lost: lost, Extra: extra, Dups: dups, StalledSubs: stalled, SkippedSubs: skipped,
		Misrouted: r.misrouted.Load(), Gaps: r.gaps.Load(), Resets: r.resets.Load(),
		Answers: r.answers.Load(), Empty: r.empty.Load(), Reconnects: r.reconnects.Load(),
		PollErrors: r.pollErrors.Load(), DialErrors: r.dialErrors.Load(), PubErrors: r.pubErrors.Load(),
		ErrorSample: samples, GenCPU: SelfCPU(),
	}
}
