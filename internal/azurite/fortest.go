package azurite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/geoseal/geoseal/internal/testenv"
)

// ForTest returns an emulator for t: a fresh Azurite started for this test
// and stopped (process group killed, data removed) in t.Cleanup, or, when
// GEOSEAL_AZURITE_CONNECTION_STRING is set, the endpoint it names (whose
// Stop and Restart return ErrExternal; tests that need them should skip
// with t.Skip when Server.External reports true).
//
// When node or the Azurite package is missing, ForTest calls
// testenv.Missing: the test fails in CI and is skipped, loudly, elsewhere.
func ForTest(t testing.TB) *Server {
	t.Helper()
	if cs := os.Getenv(EnvConnectionString); cs != "" {
		s, err := parseConnectionString(cs)
		if err != nil {
			t.Fatalf("%s: %v", EnvConnectionString, err)
		}
		return s
	}
	s, err := Start(context.Background(), nil)
	if errors.Is(err, ErrNotInstalled) {
		testenv.Missing(t, "Azurite", err, "make deps (npm install --prefix internal/azurite)")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("stopping Azurite: %v", err)
		}
	})
	return s
}

// External reports whether the server was given by a connection string
// rather than started by this process.
func (s *Server) External() bool { return s.external }

// parseConnectionString reads the account name, key and blob endpoint of
// an Azure Storage connection string.
func parseConnectionString(cs string) (*Server, error) {
	s := &Server{external: true}
	var protocol, suffix string
	for _, part := range strings.Split(cs, ";") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "accountname":
			s.AccountName = v
		case "accountkey":
			s.AccountKey = v
		case "blobendpoint":
			s.BlobEndpoint = strings.TrimSuffix(v, "/")
		case "defaultendpointsprotocol":
			protocol = v
		case "endpointsuffix":
			suffix = v
		}
	}
	if s.AccountName == "" || s.AccountKey == "" {
		return nil, errors.New("connection string lacks AccountName or AccountKey")
	}
	if s.BlobEndpoint == "" {
		if protocol == "" {
			protocol = "https"
		}
		if suffix == "" {
			suffix = "core.windows.net"
		}
		s.BlobEndpoint = fmt.Sprintf("%s://%s.blob.%s", protocol, s.AccountName, suffix)
	}
	if _, err := azblob.NewSharedKeyCredential(s.AccountName, s.AccountKey); err != nil {
		return nil, fmt.Errorf("connection string: %w", err)
	}
	return s, nil
}
