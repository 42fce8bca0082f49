// Package exenv gives geoseal's examples a storage account and a place to
// print their report.
//
// An example uses the account in $AZURE_STORAGE_CONNECTION_STRING when it
// is set; otherwise Open starts Azurite (internal/azurite, installed by make
// deps) on a loopback port for the length of the run, puts its connection
// string in that variable, and Close stops it at the end. Either way the
// example builds its container client from the variable, as a program
// would. Each run works in a container of its own (ContainerName), so runs
// never see each other's blobs.
package exenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/geoseal/geoseal/internal/azurite"
)

// EnvConnectionString names the storage account the examples use instead
// of a local Azurite.
const EnvConnectionString = "AZURE_STORAGE_CONNECTION_STRING"

// Environment variables declaring where a real account's data lives, for
// the region guard (an Azurite run declares eastus). Declaring makes you
// responsible for it being true; see region.Static.
const (
	EnvPrimary   = "GEOSEAL_EXAMPLE_PRIMARY_REGION"
	EnvSecondary = "GEOSEAL_EXAMPLE_SECONDARY_REGION"
)

// ErrAzuriteMissing is matched by Open's error when no account is given
// and Azurite is not installed.
var ErrAzuriteMissing = azurite.ErrNotInstalled

// Storage is the account an example runs against.
type Storage struct {
	azurite *azurite.Server
	// Primary and Secondary are the regions the example declares to the
	// region guard for this account.
	Primary, Secondary string
	// Where describes the account for the report.
	Where string
}

// Open makes sure $AZURE_STORAGE_CONNECTION_STRING names a storage
// account: the one it names, or, when it is unset, a freshly started
// Azurite, whose connection string Open puts there for the length of the
// run, so that the example builds its clients from it as a program would.
// The caller must Close the Storage.
func Open(ctx context.Context) (*Storage, error) {
	if os.Getenv(EnvConnectionString) != "" {
		s := &Storage{Primary: os.Getenv(EnvPrimary), Secondary: os.Getenv(EnvSecondary)}
		if s.Primary == "" {
			return nil, fmt.Errorf("with $%s set, declare the account's region in $%s (and $%s if it is geo-replicated)", EnvConnectionString, EnvPrimary, EnvSecondary)
		}
		s.Where = "the account in $" + EnvConnectionString
		return s, nil
	}
	srv, err := azurite.Start(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("starting Azurite (make deps installs it): %w", err)
	}
	if err := os.Setenv(EnvConnectionString, srv.ConnectionString()); err != nil {
		srv.Close()
		return nil, err
	}
	return &Storage{
		azurite: srv,
		Primary: "eastus",
		Where:   "Azurite at " + srv.BlobEndpoint + " (started for this run; declared region eastus)",
	}, nil
}

// ContainerName returns a container name for this run of an example,
// prefix and the time, so that runs never see each other's blobs.
func ContainerName(prefix string) string {
	return fmt.Sprintf("%s-%d", strings.ToLower(prefix), time.Now().UnixNano())
}

// Close stops Azurite, and takes its connection string out of the
// environment, if Open started it.
func (s *Storage) Close() error {
	if s == nil || s.azurite == nil {
		return nil
	}
	os.Unsetenv(EnvConnectionString)
	return s.azurite.Close()
}

// Report prints numbered steps of an example's story.
type Report struct {
	W    io.Writer
	step int
}

// Step prints the start of a step.
func (r *Report) Step(format string, args ...any) {
	r.step++
	fmt.Fprintf(r.W, "\n%d. %s\n", r.step, fmt.Sprintf(format, args...))
}

// Line prints a detail of the current step.
func (r *Report) Line(format string, args ...any) {
	fmt.Fprintf(r.W, "   %s\n", fmt.Sprintf(format, args...))
}

// Short abbreviates long identifiers (URLs, key ids) for the report.
func Short(s string) string {
	if u, err := url.Parse(s); err == nil && u.Host != "" {
		return u.Host + u.Path
	}
	return s
}

// FormatContext prints an encryption context as sorted key=value pairs.
func FormatContext(ec map[string]string) string {
	var pairs []string
	for _, k := range slices.Sorted(maps.Keys(ec)) {
		pairs = append(pairs, k+"="+ec[k])
	}
	return strings.Join(pairs, ", ")
}

// Unexpected is returned when an outcome differs from what the example
// shows; the example then exits non-zero.
func Unexpected(format string, args ...any) error {
	return errors.New("UNEXPECTED: " + fmt.Sprintf(format, args...))
}

// RequestCounter is an azcore pipeline policy that counts the requests an
// example sends and the bytes of their bodies: what left the process, and
// what came back.
type RequestCounter struct {
	mu            sync.Mutex
	requests      int
	bodyBytes     int64 // request bodies sent
	responseBytes int64 // response bodies received (Content-Length)
}

// Do implements policy.Policy.
func (c *RequestCounter) Do(req *policy.Request) (*http.Response, error) {
	c.mu.Lock()
	c.requests++
	if req.Raw().ContentLength > 0 {
		c.bodyBytes += req.Raw().ContentLength
	}
	c.mu.Unlock()
	resp, err := req.Next()
	// A HEAD response's Content-Length is the size of what a GET would
	// return, not bytes received.
	if err == nil && resp.ContentLength > 0 && req.Raw().Method != http.MethodHead {
		c.mu.Lock()
		c.responseBytes += resp.ContentLength
		c.mu.Unlock()
	}
	return resp, err
}

// Reset zeroes the counts.
func (c *RequestCounter) Reset() {
	c.mu.Lock()
	c.requests, c.bodyBytes, c.responseBytes = 0, 0, 0
	c.mu.Unlock()
}

// Received returns the response body bytes counted so far.
func (c *RequestCounter) Received() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.responseBytes
}

// Counts returns the requests and body bytes counted so far.
func (c *RequestCounter) Counts() (requests int, bodyBytes int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.requests, c.bodyBytes
}

// ClientOptions returns container client options whose pipeline counts
// into c.
func (c *RequestCounter) ClientOptions() *container.ClientOptions {
	return &container.ClientOptions{ClientOptions: azcore.ClientOptions{PerRetryPolicies: []policy.Policy{c}}}
}
