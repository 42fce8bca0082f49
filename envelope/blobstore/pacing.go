package blobstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/geoseal/geoseal/keyring"
)

// KMS pacing: a container-wide operation makes one or two keyring calls per
// blob, millions in all, and Key Vault throttles a vault (and a
// subscription) past a few hundred operations a second, answering 429 Too
// Many Requests with a Retry-After. azcore's retry policy retries each call
// a few times, each goroutine on its own schedule; once those retries are
// spent, the call fails and, without pacing, the blob with it, while the
// other goroutines go on at full speed. A kmsPacer makes the goroutines of
// one worker act as one client of the KMS:
//
//   - a rate limit (KMSRate calls per second, spaced evenly), so that N
//     workers can split a vault's budget between them;
//   - one back-off for all of them: the first throttled call (429, or 503,
//     which Key Vault also sends under load) stops every call of the worker
//     until its Retry-After has passed (at least minBackOff, doubling with
//     each round that is throttled again, at most maxBackOff), and is then
//     tried again, up to maxKMSTries times in all.

const (
	minBackOff  = 250 * time.Millisecond
	maxBackOff  = 30 * time.Second
	maxKMSTries = 10
	// maxRetryAfter bounds what a Retry-After may ask for.
	maxRetryAfter = 5 * time.Minute
)

// A kmsPacer paces the keyring calls of one walk. It is safe for
// concurrent use.
type kmsPacer struct {
	interval time.Duration // between two calls; 0: no rate limit

	mu    sync.Mutex
	next  time.Time // the earliest start of the next call, by the rate
	until time.Time // no call starts before it: the back-off
	round uint64    // back-off rounds so far
	level int       // consecutive rounds without a success
}

// newPacer returns a pacer for rate calls per second (0: no limit).
func newPacer(rate float64) (*kmsPacer, error) {
	if rate < 0 || math.IsNaN(rate) || math.IsInf(rate, 0) {
		return nil, fmt.Errorf("blobstore: KMS rate %v: want a number of calls per second, or 0 for no limit", rate)
	}
	p := &kmsPacer{}
	if rate > 0 {
		p.interval = time.Duration(float64(time.Second) / rate)
	}
	return p, nil
}

// do runs call when the rate and the back-off allow, again while the KMS
// throttles it.
func (p *kmsPacer) do(ctx context.Context, call func() error) error {
	for try := 1; ; try++ {
		round, err := p.wait(ctx)
		if err != nil {
			return err
		}
		err = call()
		retryAfter, throttled := throttling(err)
		if !throttled || ctx.Err() != nil {
			if err == nil {
				p.succeeded(round)
			}
			return err
		}
		if try == maxKMSTries {
			return fmt.Errorf("blobstore: the KMS still throttles after %d tries: %w", try, err)
		}
		p.backOff(round, retryAfter)
	}
}

// wait blocks until the call may start, and returns the back-off round it
// starts in.
func (p *kmsPacer) wait(ctx context.Context) (uint64, error) {
	p.mu.Lock()
	now := time.Now()
	start := now
	if p.until.After(start) {
		start = p.until
	}
	if p.interval > 0 {
		if p.next.After(start) {
			start = p.next
		}
		p.next = start.Add(p.interval)
	}
	round := p.round
	p.mu.Unlock()
	if d := start.Sub(now); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return 0, context.Cause(ctx)
		}
	}
	return round, nil
}

// backOff starts a new round of back-off, unless the call failed in a
// round another call already started (its wait then covers this one).
func (p *kmsPacer) backOff(round uint64, retryAfter time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if round != p.round {
		return
	}
	p.round++
	p.level++
	d := min(minBackOff<<min(p.level-1, 16), maxBackOff)
	d = max(d, min(retryAfter, maxRetryAfter))
	if until := time.Now().Add(d); until.After(p.until) {
		p.until = until
	}
}

// succeeded ends the escalation: the KMS answered a call of the current
// round.
func (p *kmsPacer) succeeded(round uint64) {
	p.mu.Lock()
	if round == p.round {
		p.level = 0
	}
	p.mu.Unlock()
}

// throttling reports whether err is the KMS saying it is overloaded (a 429
// or 503 *azcore.ResponseError anywhere in the chain, which the keyrings
// keep) and how long it asked to wait.
func throttling(err error) (time.Duration, bool) {
	var re *azcore.ResponseError
	if err == nil || !errors.As(err, &re) {
		return 0, false
	}
	if re.StatusCode != http.StatusTooManyRequests && re.StatusCode != http.StatusServiceUnavailable {
		return 0, false
	}
	if re.RawResponse == nil {
		return 0, true
	}
	return retryAfter(re.RawResponse.Header), true
}

// retryAfter reads the delay a response asks for: retry-after-ms,
// x-ms-retry-after-ms, or Retry-After in seconds or as an HTTP date (the
// headers azcore's retry policy honours, in its order).
func retryAfter(h http.Header) time.Duration {
	// Bounded before multiplying: a hostile header must not overflow into
	// a negative wait.
	bounded := func(n int64, unit time.Duration) time.Duration {
		return time.Duration(min(n, int64(maxRetryAfter/unit))) * unit
	}
	for _, k := range []string{"retry-after-ms", "x-ms-retry-after-ms"} {
		if ms, err := strconv.ParseInt(h.Get(k), 10, 64); err == nil && ms > 0 {
			return bounded(ms, time.Millisecond)
		}
	}
	v := h.Get("Retry-After")
	if s, err := strconv.ParseInt(v, 10, 64); err == nil && s > 0 {
		return bounded(s, time.Second)
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(time.Until(t), 0), maxRetryAfter)
	}
	return 0
}

// pacedUnwrapper and pacedWrapper put a keyring's calls through a pacer.
type pacedUnwrapper struct {
	u keyring.Unwrapper
	p *kmsPacer
}

func (k pacedUnwrapper) Unwrap(ctx context.Context, keys []keyring.WrappedKey, ec keyring.Context) (dek []byte, err error) {
	err = k.p.do(ctx, func() error {
		dek, err = k.u.Unwrap(ctx, keys, ec)
		return err
	})
	return dek, err
}

type pacedWrapper struct {
	w keyring.Wrapper
	p *kmsPacer
}

func (k pacedWrapper) Wrap(ctx context.Context, dek []byte, ec keyring.Context) (keys []keyring.WrappedKey, err error) {
	err = k.p.do(ctx, func() error {
		keys, err = k.w.Wrap(ctx, dek, ec)
		return err
	})
	return keys, err
}
