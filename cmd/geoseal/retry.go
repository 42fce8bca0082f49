package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// azcoreDefaultRetries is how many times azcore's retry policy tries a
// request again when RetryOptions.MaxRetries is zero.
const azcoreDefaultRetries = 3

// retryNotices returns a per-try policy that says on stderr when azcore's
// retry policy tries a request again, and why the try before failed:
//
//	geoseal: retrying (2/3): connection refused
//
// azcore decides whether and when to retry (its RetryOptions); this only
// watches, from inside its loop. With --quiet it says nothing.
func (e *environment) retryNotices(o policy.RetryOptions) policy.Policy {
	n := &retryNotices{w: e.stderr, max: o.MaxRetries, tryTimeout: o.TryTimeout}
	if e.common.quiet {
		n.w = nil
	}
	switch {
	case n.max == 0:
		n.max = azcoreDefaultRetries
	case n.max < 0:
		n.max = 0
	}
	return n
}

type retryNotices struct {
	mu         sync.Mutex // one notice at a time: requests run in parallel
	w          io.Writer  // nil: quiet
	max        int32
	tryTimeout time.Duration
}

// tries is the state of one operation's tries, kept in the request's
// operation values, which azcore shares between the clones it makes for
// each try.
type tries struct {
	n    int32
	raw  *http.Request // the current try's request
	last string        // why the previous try failed
}

func (n *retryNotices) Do(req *policy.Request) (*http.Response, error) {
	var t *tries
	if !req.OperationValue(&t) {
		t = new(tries)
		req.SetOperationValue(t)
	}
	// The retry policy clones the request for each try. A policy between
	// it and this one may send one try twice (a bearer token policy
	// answering a 401 challenge does): the same *http.Request, not a
	// retry.
	if req.Raw() == t.raw {
		resp, err := req.Next()
		t.last = n.failure(req.Raw().Context(), resp, err)
		return resp, err
	}
	t.raw = req.Raw()
	t.n++
	if t.n > 1 && n.w != nil {
		n.mu.Lock()
		fmt.Fprintf(n.w, "geoseal: retrying (%d/%d): %s\n", t.n-1, n.max, oneLine(redactSAS(t.last)))
		n.mu.Unlock()
	}
	resp, err := req.Next()
	t.last = n.failure(req.Raw().Context(), resp, err)
	return resp, err
}

// failure says why a try failed, in a few words.
func (n *retryNotices) failure(ctx context.Context, resp *http.Response, err error) string {
	switch {
	case err != nil && errors.Is(err, context.DeadlineExceeded) && errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Sprintf("no answer within %s (--try-timeout)", n.tryTimeout)
	case err != nil:
		return networkReason(err)
	case resp != nil:
		s := resp.Status
		if code := resp.Header.Get("x-ms-error-code"); code != "" {
			s += " (" + code + ")"
		}
		return s
	}
	return "no response"
}
