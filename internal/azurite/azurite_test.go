package azurite

import (
	"bytes"
	"context"
	"errors"
	"io"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
)

func TestStartRestartStop(t *testing.T) {
	s := ForTest(t)
	if s.External() {
		t.Skip("an external endpoint cannot be restarted")
	}
	ctx := context.Background()
	client, err := azblob.NewClientFromConnectionString(s.ConnectionString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.CreateContainer(ctx, "launcher", nil); err != nil {
		t.Fatalf("create container: %v", err)
	}
	want := []byte("survives a restart")
	if _, err := client.UploadBuffer(ctx, "launcher", "b", want, nil); err != nil {
		t.Fatal(err)
	}

	pid := s.proc.cmd.Process.Pid
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if alive(pid) {
		t.Fatalf("azurite pid %d still running after Stop", pid)
	}
	shortCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
	_, err = client.CreateContainer(shortCtx, "stopped", nil)
	cancel()
	if err == nil {
		t.Fatal("a stopped emulator answered")
	}

	if err := s.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	// The same client (same endpoint, same port) sees the same data.
	got := downloadAll(t, client, "launcher", "b")
	if !bytes.Equal(got, want) {
		t.Fatalf("after restart: got %q, want %q", got, want)
	}
	_, err = client.CreateContainer(ctx, "launcher", nil)
	if !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
		t.Fatalf("re-creating the container after restart: got %v, want ContainerAlreadyExists", err)
	}

	pid = s.proc.cmd.Process.Pid
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if alive(pid) {
		t.Fatalf("azurite pid %d still running after Close", pid)
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("Stop after Close: %v", err)
	}
}

func TestCredentialAndNewClient(t *testing.T) {
	s := ForTest(t)
	client, err := s.NewClient(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.CreateContainer(context.Background(), "shared-key", nil); err != nil {
		t.Fatal(err)
	}
	if s.Credential().AccountName() != s.AccountName {
		t.Fatal("credential names the wrong account")
	}
}

func TestFindBinMissing(t *testing.T) {
	_, err := Start(context.Background(), &Options{Bin: "/nonexistent/azurite-blob"})
	if !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("got %v, want ErrNotInstalled", err)
	}
}

func TestParseConnectionString(t *testing.T) {
	s, err := parseConnectionString("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=" +
		DevAccountKey + ";BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1/;")
	if err != nil {
		t.Fatal(err)
	}
	if s.BlobEndpoint != "http://127.0.0.1:10000/devstoreaccount1" || !s.External() {
		t.Fatalf("got %+v", s)
	}
	if err := s.Stop(); !errors.Is(err, ErrExternal) {
		t.Fatalf("Stop: %v", err)
	}
	if err := s.Restart(context.Background()); !errors.Is(err, ErrExternal) {
		t.Fatalf("Restart: %v", err)
	}
	s, err = parseConnectionString("AccountName=acct;AccountKey=" + DevAccountKey)
	if err != nil || s.BlobEndpoint != "https://acct.blob.core.windows.net" {
		t.Fatalf("default endpoint: %v %q", err, s.BlobEndpoint)
	}
	for _, bad := range []string{"", "AccountName=a", "AccountName=a;AccountKey=not base64!"} {
		if _, err := parseConnectionString(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func alive(pid int) bool {
	return syscall.Kill(pid, 0) == nil
}

func downloadAll(t *testing.T, c *azblob.Client, ctr, name string) []byte {
	t.Helper()
	resp, err := c.DownloadStream(context.Background(), ctr, name, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func FuzzParseConnectionString(f *testing.F) {
	f.Add("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=" + DevAccountKey + ";BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;")
	f.Add("AccountName=a;AccountKey=;EndpointSuffix=core.usgovcloudapi.net")
	f.Add(";;==;")
	f.Fuzz(func(t *testing.T, cs string) {
		s, err := parseConnectionString(cs)
		if err != nil {
			return
		}
		if s.AccountName == "" || s.BlobEndpoint == "" || !s.External() {
			t.Fatalf("%q accepted as %+v", cs, s)
		}
		s.Credential() // must not panic: the key was validated
	})
}
