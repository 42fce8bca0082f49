// Package wire counts what crosses the HTTP transport of an Azure SDK
// client: requests by method, request bodies sent and response bodies
// received. Tests and benchmarks put a Transport in azcore.ClientOptions
// (below the retry policy, so retried requests count) to measure how much
// an operation fetches, and use its Intercept hook to inject faults.
package wire

import (
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
)

// A Counter holds the counts of one or more Transports.
type Counter struct {
	Requests atomic.Int64
	Gets     atomic.Int64
	Heads    atomic.Int64
	Puts     atomic.Int64
	Sent     atomic.Int64 // request body bytes
	Received atomic.Int64 // response body bytes read by the client

	inflightPuts, inflightGets atomic.Int64
	MaxPuts                    atomic.Int64 // most PUTs in flight at once
	MaxGets                    atomic.Int64 // most GETs in flight at once (until their bodies are closed)

	mu        sync.Mutex
	intercept func(*http.Request, func(*http.Request) (*http.Response, error)) (*http.Response, error)
}

// Reset zeroes the counts.
func (c *Counter) Reset() {
	for _, n := range []*atomic.Int64{&c.Requests, &c.Gets, &c.Heads, &c.Puts, &c.Sent, &c.Received, &c.MaxPuts, &c.MaxGets} {
		n.Store(0)
	}
}

func (c *Counter) String() string {
	return fmt.Sprintf("%d requests (%d GET, %d HEAD, %d PUT), %d bytes sent, %d received",
		c.Requests.Load(), c.Gets.Load(), c.Heads.Load(), c.Puts.Load(), c.Sent.Load(), c.Received.Load())
}

// Intercept makes every request go through fn, which may inspect it,
// change it, fail it, or pass it on with send (and then, say, drop the
// response). Nil removes the hook.
func (c *Counter) Intercept(fn func(req *http.Request, send func(*http.Request) (*http.Response, error)) (*http.Response, error)) {
	c.mu.Lock()
	c.intercept = fn
	c.mu.Unlock()
}

// A Transport is a policy.Transporter that counts into a Counter.
type Transport struct {
	c      *Counter
	client *http.Client
}

// NewTransport returns a Transport that sends through t (a fresh
// http.Transport when nil) and counts into c.
func NewTransport(c *Counter, t http.RoundTripper) *Transport {
	if t == nil {
		t = &http.Transport{MaxIdleConnsPerHost: 64}
	}
	return &Transport{c: c, client: &http.Client{Transport: t}}
}

// Do implements policy.Transporter.
func (t *Transport) Do(req *http.Request) (*http.Response, error) {
	t.c.mu.Lock()
	hook := t.c.intercept
	t.c.mu.Unlock()
	if hook != nil {
		return hook(req, t.send)
	}
	return t.send(req)
}

func (t *Transport) send(req *http.Request) (*http.Response, error) {
	c := t.c
	c.Requests.Add(1)
	var done func()
	switch req.Method {
	case http.MethodGet:
		c.Gets.Add(1)
		done = inflight(&c.inflightGets, &c.MaxGets)
	case http.MethodHead:
		c.Heads.Add(1)
	case http.MethodPut:
		c.Puts.Add(1)
		defer inflight(&c.inflightPuts, &c.MaxPuts)()
	}
	if req.Body != nil && req.Body != http.NoBody {
		req.Body = &countingBody{ReadCloser: req.Body, n: &c.Sent}
	}
	resp, err := t.client.Do(req)
	if err != nil {
		if done != nil {
			done()
		}
		return nil, err
	}
	resp.Body = &countingBody{ReadCloser: resp.Body, n: &c.Received, done: done}
	return resp, nil
}

// inflight counts one more in flight, records the maximum, and returns the
// function that counts it done.
func inflight(n, maxSeen *atomic.Int64) func() {
	v := n.Add(1)
	for {
		m := maxSeen.Load()
		if v <= m || maxSeen.CompareAndSwap(m, v) {
			break
		}
	}
	var once sync.Once
	return func() { once.Do(func() { n.Add(-1) }) }
}

type countingBody struct {
	io.ReadCloser
	n    *atomic.Int64
	done func() // called on Close
}

func (b *countingBody) Close() error {
	if b.done != nil {
		b.done()
	}
	return b.ReadCloser.Close()
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}
