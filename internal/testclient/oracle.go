package testclient

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Oracle checks cometbox's promise over a whole test: every payload
// answered 2xx reaches its client's page, ids only grow within an epoch,
// no page gets a payload twice, and no (epoch, id) ever names two
// payloads. Payloads must be unique across the test.
type Oracle struct {
	// ExcuseResets lets a payload go undelivered when its page was told
	// of a reset after the payload was accepted: the promise for a Redis
	// that may lose acknowledged writes (asynchronous replication), where
	// a loss must be announced, not avoided. Report.Announced counts
	// them. Set it before the test starts.
	ExcuseResets bool

	mu        sync.Mutex
	accepted  map[string]map[string]time.Time // client -> payload -> when its 2xx came
	delivered map[*Page]map[string]int        // page -> payload -> times
	names     map[string]map[string]string    // client -> "epoch:id" -> payload
	resets    map[string]time.Time            // client -> when its page last took in a reset
	problems  []string
}

// NewOracle returns an empty Oracle.
func NewOracle() *Oracle {
	return &Oracle{
		accepted:  map[string]map[string]time.Time{},
		delivered: map[*Page]map[string]int{},
		names:     map[string]map[string]string{},
		resets:    map[string]time.Time{},
	}
}

// Accepted records a payload whose publish was answered 2xx.
func (o *Oracle) Accepted(client, payload string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.accepted[client] == nil {
		o.accepted[client] = map[string]time.Time{}
	}
	o.accepted[client][payload] = time.Now()
}

// reset records that a page took in an answer with Cometbox-Reset.
func (o *Oracle) reset(p *Page) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.resets[p.Client] = time.Now()
}

// Forget drops the payloads accepted so far for every client: for a test
// that wipes Redis on purpose, after which those are lost by design.
func (o *Oracle) Forget() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.accepted = map[string]map[string]time.Time{}
}

func (o *Oracle) delivery(p *Page, epoch string, m Message) {
	o.mu.Lock()
	defer o.mu.Unlock()
	payload := m.Text()
	if o.delivered[p] == nil {
		o.delivered[p] = map[string]int{}
	}
	o.delivered[p][payload]++
	if n := o.delivered[p][payload]; n == 2 {
		o.problems = append(o.problems, fmt.Sprintf("%s: payload %q delivered twice to one page", p.Client, payload))
	}
	if o.names[p.Client] == nil {
		o.names[p.Client] = map[string]string{}
	}
	name := epoch + ":" + strconv.FormatUint(m.ID, 10)
	if prev, ok := o.names[p.Client][name]; ok && prev != payload {
		o.problems = append(o.problems, fmt.Sprintf("%s: %s names both %q and %q", p.Client, name, prev, payload))
	}
	o.names[p.Client][name] = payload
}

func (o *Oracle) problem(format string, args ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.problems = append(o.problems, fmt.Sprintf(format, args...))
}

// Report is an Oracle's verdict.
type Report struct {
	Accepted, Delivered, Lost, Duplicated int
	// Announced counts payloads lost with a reset told to their page
	// afterwards; with Oracle.ExcuseResets they are not in Lost.
	Announced int
	Problems  []string
}

func (r Report) String() string {
	return fmt.Sprintf("accepted %d, delivered %d, lost %d, lost with a reset %d, duplicated %d, problems %d",
		r.Accepted, r.Delivered, r.Lost, r.Announced, r.Duplicated, len(r.Problems))
}

// OK reports whether the promise held.
func (r Report) OK() bool { return r.Lost == 0 && r.Duplicated == 0 && len(r.Problems) == 0 }

// Verify checks what pages received against what was accepted. Each
// client is expected to have one page among pages.
func (o *Oracle) Verify(pages []*Page) Report {
	o.mu.Lock()
	defer o.mu.Unlock()
	r := Report{Problems: append([]string(nil), o.problems...)}
	byClient := map[string]*Page{}
	for _, p := range pages {
		byClient[p.Client] = p
	}
	var lost []string
	for client, payloads := range o.accepted {
		got := o.delivered[byClient[client]]
		for payload, at := range payloads {
			r.Accepted++
			if got[payload] > 0 {
				continue
			}
			if reset, ok := o.resets[client]; ok && reset.After(at) {
				r.Announced++
				if o.ExcuseResets {
					continue
				}
			}
			r.Lost++
			lost = append(lost, client+":"+payload)
		}
	}
	for _, got := range o.delivered {
		for _, n := range got {
			r.Delivered += n
			if n > 1 {
				r.Duplicated += n - 1
			}
		}
	}
	sort.Strings(lost)
	if len(lost) > 5 {
		lost = append(lost[:5], "…")
	}
	if len(lost) > 0 {
		r.Problems = append(r.Problems, "lost: "+strings.Join(lost, ", "))
	}
	return r
}

// Missing counts accepted payloads not yet delivered, for waiting.
func (o *Oracle) Missing(pages []*Page) int {
	return o.Verify(pages).Lost
}

// Follow polls with p until ctx ends, the way the browser client does:
// on a network error or a 5xx it backs off (honouring Retry-After) and
// moves to the next of bases. pollTimeout bounds one poll, so a poll the
// node never answers is noticed. It returns the number of failed polls.
func (p *Page) Follow(ctx context.Context, bases []string, pollTimeout time.Duration) (failures int) {
	i := rand.IntN(len(bases))
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		p.Base = bases[i%len(bases)]
		pctx, cancel := context.WithTimeout(ctx, pollTimeout)
		_, a, err := p.PollOnce(pctx)
		cancel()
		if err == nil && a.Status == http.StatusOK {
			backoff = 50 * time.Millisecond
			continue
		}
		if ctx.Err() != nil {
			return failures
		}
		failures++
		wait := backoff
		if s, _ := strconv.Atoi(a.Header.Get("Retry-After")); s > 0 {
			wait = time.Duration(s) * time.Second
		}
		backoff = min(backoff*2, time.Second)
		i++ // elsewhere
		select {
		case <-ctx.Done():
		case <-time.After(wait/2 + rand.N(wait/2+1)):
		}
	}
	return failures
}
