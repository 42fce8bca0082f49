package blobstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/geoseal/geoseal/keyring"
)

func throttled(status int, header http.Header) *azcore.ResponseError {
	return &azcore.ResponseError{StatusCode: status, RawResponse: &http.Response{StatusCode: status, Header: header}}
}

func TestThrottling(t *testing.T) {
	date := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	for _, tc := range []struct {
		name      string
		err       error
		throttled bool
		wait      time.Duration // at least
	}{
		{"nil", nil, false, 0},
		{"plain", errors.New("boom"), false, 0},
		{"500", throttled(500, nil), false, 0},
		{"403", throttled(403, nil), false, 0},
		{"429 without Retry-After", throttled(429, http.Header{}), true, 0},
		{"429 Retry-After seconds", throttled(429, http.Header{"Retry-After": {"7"}}), true, 7 * time.Second},
		{"429 Retry-After date", throttled(429, http.Header{"Retry-After": {date}}), true, 80 * time.Second},
		{"429 retry-after-ms", throttled(429, http.Header{"Retry-After-Ms": {"1500"}, "Retry-After": {"9"}}), true, 1500 * time.Millisecond},
		{"429 x-ms-retry-after-ms", throttled(429, http.Header{"X-Ms-Retry-After-Ms": {"250"}}), true, 250 * time.Millisecond},
		{"503", throttled(503, http.Header{"Retry-After": {"2"}}), true, 2 * time.Second},
		{"absurd Retry-After", throttled(429, http.Header{"Retry-After": {"99999999"}}), true, maxRetryAfter},
		{"garbage Retry-After", throttled(429, http.Header{"Retry-After": {"soon"}}), true, 0},
		// As the Key Vault keyring returns it: inside a NoMatchError.
		{"429 in a NoMatchError", fmt.Errorf("envelope: %w", &keyring.NoMatchError{Tried: []keyring.Attempt{{Err: throttled(429, http.Header{"Retry-After": {"3"}})}}}), true, 3 * time.Second},
	} {
		d, ok := throttling(tc.err)
		if ok != tc.throttled || d < tc.wait || d > max(tc.wait, time.Second)*2 || d > maxRetryAfter {
			t.Errorf("%s: throttling = %v, %v; want %v, at least %v", tc.name, d, ok, tc.throttled, tc.wait)
		}
	}
}

// TestPacerRate checks the schedule a rate imposes: calls start one
// interval apart, whoever makes them.
func TestPacerRate(t *testing.T) {
	p, err := newPacer(200) // 5 ms apart
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			if _, err := p.wait(context.Background()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := p.next.Sub(start); got < 10*p.interval {
		t.Fatalf("10 calls at 200/s reserved %v, want at least %v", got, 10*p.interval)
	}
	for _, bad := range []float64{-1, math.NaN(), math.Inf(1)} {
		if _, err := newPacer(bad); err == nil {
			t.Errorf("newPacer(%v) accepted", bad)
		}
	}
}

// TestPacerBackOff checks the shared back-off: the first throttled call of
// a round stops every call for its Retry-After (or the round's minimum),
// the others of the round add nothing, a throttled retry doubles the wait,
// and a success ends the escalation.
func TestPacerBackOff(t *testing.T) {
	p, _ := newPacer(0)
	now := time.Now()
	p.backOff(0, 2*time.Second)
	if p.round != 1 || p.level != 1 || p.until.Sub(now) < 2*time.Second {
		t.Fatalf("after a 429 asking for 2s: round %d, level %d, until +%v", p.round, p.level, p.until.Sub(now))
	}
	until := p.until
	p.backOff(0, 0) // another call of round 0
	if p.round != 1 || p.level != 1 || p.until != until {
		t.Fatalf("a second failure of the same round escalated: round %d, level %d", p.round, p.level)
	}
	p.backOff(1, 0)
	p.backOff(2, 0)
	p.backOff(3, 0)
	if p.level != 4 || time.Until(p.until) < 8*minBackOff-time.Millisecond {
		t.Fatalf("after 4 rounds: level %d, until +%v, want at least %v", p.level, time.Until(p.until), 8*minBackOff)
	}
	p.succeeded(3) // a call of an older round says nothing
	if p.level != 4 {
		t.Fatalf("a success of an old round reset the level")
	}
	p.succeeded(4)
	if p.level != 0 {
		t.Fatalf("a success of the current round left level %d", p.level)
	}
	// A waiting call ends with its context.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("wait under a back-off, cancelled: %v", err)
	}
}

// TestPacerRetries checks do: a throttled call is tried again after the
// back-off and its result returned; an error that is not throttling is
// returned at once.
func TestPacerRetries(t *testing.T) {
	p, _ := newPacer(0)
	calls := 0
	err := p.do(context.Background(), func() error {
		calls++
		if calls == 1 {
			return throttled(429, http.Header{"Retry-After-Ms": {"1"}})
		}
		return nil
	})
	if err != nil || calls != 2 {
		t.Fatalf("a throttled call: %v after %d calls", err, calls)
	}
	boom := errors.New("boom")
	calls = 0
	if err := p.do(context.Background(), func() error { calls++; return boom }); err != boom || calls != 1 {
		t.Fatalf("a failing call: %v after %d calls", err, calls)
	}
}
