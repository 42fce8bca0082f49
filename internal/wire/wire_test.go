package wire

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCounter(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.Method == http.MethodGet {
			w.Write([]byte(strings.Repeat("x", 1000)))
		}
	}))
	defer srv.Close()
	var c Counter
	tr := NewTransport(&c, nil)
	do := func(method, body string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL, strings.NewReader(body))
		if body == "" {
			req.Body = http.NoBody
		}
		resp, err := tr.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	// Two GETs open at once, one read half way: 1500 bytes received.
	a, b := do(http.MethodGet, ""), do(http.MethodGet, "")
	io.CopyN(io.Discard, a.Body, 500)
	io.Copy(io.Discard, b.Body)
	a.Body.Close()
	b.Body.Close()
	r := do(http.MethodPut, "12345")
	r.Body.Close()
	r = do(http.MethodHead, "")
	r.Body.Close()
	if c.Requests.Load() != 4 || c.Gets.Load() != 2 || c.Puts.Load() != 1 || c.Heads.Load() != 1 ||
		c.Sent.Load() != 5 || c.Received.Load() != 1500 || c.MaxGets.Load() != 2 || c.MaxPuts.Load() != 1 {
		t.Fatalf("counts: %v, max GETs %d, max PUTs %d", &c, c.MaxGets.Load(), c.MaxPuts.Load())
	}

	// Intercept sees every request and can fail it.
	errTest := errors.New("test")
	c.Intercept(func(req *http.Request, send func(*http.Request) (*http.Response, error)) (*http.Response, error) {
		if req.Method == http.MethodPut {
			return nil, errTest
		}
		return send(req)
	})
	if _, err := tr.Do(mustRequest(t, http.MethodPut, srv.URL)); !errors.Is(err, errTest) {
		t.Fatalf("intercepted PUT: %v", err)
	}
	c.Intercept(nil)
	c.Reset()
	if c.Requests.Load() != 0 || c.Received.Load() != 0 || c.MaxGets.Load() != 0 {
		t.Fatalf("after Reset: %v", &c)
	}
}

func mustRequest(t *testing.T, method, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}
