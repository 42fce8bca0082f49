package keyring

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// errServiceDown stands for a remote keyring that cannot be reached.
var errServiceDown = errors.New("test: key service unavailable (503)")

// downKeyring fails every call, like a KMS that is down.
type downKeyring struct{}

func (downKeyring) Wrap(context.Context, []byte, Context) ([]WrappedKey, error) {
	return nil, errServiceDown
}

func (downKeyring) Unwrap(context.Context, []WrappedKey, Context) ([]byte, error) {
	return nil, errServiceDown
}

// blockingKeyring blocks every call until ctx is done, like a KMS that
// hangs, after signalling started.
type blockingKeyring struct{ started chan struct{} }

func (b blockingKeyring) Wrap(ctx context.Context, _ []byte, _ Context) ([]WrappedKey, error) {
	b.started <- struct{}{}
	<-ctx.Done()
	return nil, ctx.Err()
}

func (b blockingKeyring) Unwrap(ctx context.Context, _ []WrappedKey, _ Context) ([]byte, error) {
	b.started <- struct{}{}
	<-ctx.Done()
	return nil, ctx.Err()
}

// barrierKeyring wraps only once every child of the barrier has started:
// with sequential calls it would wait forever (until ctx ends).
type barrierKeyring struct {
	Keyring
	barrier *sync.WaitGroup
}

func (b barrierKeyring) Wrap(ctx context.Context, dek []byte, ec Context) ([]WrappedKey, error) {
	b.barrier.Done()
	done := make(chan struct{})
	go func() { b.barrier.Wait(); close(done) }()
	select {
	case <-done:
		return b.Keyring.Wrap(ctx, dek, ec)
	case <-ctx.Done():
		return nil, errors.New("children were not called in parallel")
	}
}

func TestMultiRoundTrip(t *testing.T) {
	ctx := context.Background()
	aesKR := mustNewAES(t, mustAESKey(t), nil)
	rsaKR := mustNewRSAPrivate(t, rsaTestKey(t, 0), nil)
	m := NewMulti(aesKR, rsaKR)
	dek := testDEK(t)
	ec := Context{"a": "b"}
	keys, err := m.Wrap(ctx, dek, ec)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0].Provider != ProviderAES || keys[1].Provider != ProviderRSA {
		t.Fatalf("wrapped keys not in order, primary first: %+v", keys)
	}
	for name, u := range map[string]Unwrapper{"multi": m, "aes": aesKR, "rsa": rsaKR, "multi reversed": NewMulti(rsaKR, aesKR)} {
		got, err := u.Unwrap(ctx, keys, ec)
		if err != nil || !bytes.Equal(got, dek) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// A keyring outside the multi-keyring unwraps nothing.
	_, err = mustNewAES(t, mustAESKey(t), nil).Unwrap(ctx, keys, ec)
	var nm *NoMatchError
	if !errors.As(err, &nm) || len(nm.Available) != 2 {
		t.Fatalf("outsider: %v", err)
	}
}

func TestMultiWrapFailure(t *testing.T) {
	ctx := context.Background()
	m := NewMulti(mustNewAES(t, mustAESKey(t), nil), downKeyring{}, mustNewAES(t, mustAESKey(t), nil))
	keys, err := m.Wrap(ctx, testDEK(t), nil)
	if err == nil || keys != nil {
		t.Fatalf("Wrap with a failing child: keys %v, err %v", keys, err)
	}
	if !errors.Is(err, errServiceDown) {
		t.Fatalf("error does not wrap the child's: %v", err)
	}
	if !strings.Contains(err.Error(), "child 1") || !strings.Contains(err.Error(), "downKeyring") {
		t.Fatalf("error does not say which child failed: %v", err)
	}
	// Two failures: both named.
	_, err = NewMulti(downKeyring{}, mustNewAES(t, mustAESKey(t), nil), downKeyring{}).Wrap(ctx, testDEK(t), nil)
	if err == nil || !strings.Contains(err.Error(), "child 0 (primary") || !strings.Contains(err.Error(), "child 2") {
		t.Fatalf("two failing children: %v", err)
	}
	// A child's refusal of the input is a failure too.
	if _, err := NewMulti(mustNewAES(t, mustAESKey(t), nil)).Wrap(ctx, make([]byte, 5), nil); err == nil {
		t.Fatal("short data key wrapped")
	}
	if _, err := NewMulti(nil).Wrap(ctx, testDEK(t), nil); err == nil {
		t.Fatal("nil child wrapped")
	}
}

func TestMultiWrapParallel(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var barrier sync.WaitGroup
	barrier.Add(3)
	m := NewMulti(
		barrierKeyring{mustNewAES(t, mustAESKey(t), nil), &barrier},
		barrierKeyring{mustNewAES(t, mustAESKey(t), nil), &barrier},
		barrierKeyring{mustNewRSAPublic(t, &rsaTestKey(t, 1).PublicKey, nil), &barrier},
	)
	keys, err := m.Wrap(ctx, testDEK(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 3 || keys[2].Provider != ProviderRSA {
		t.Fatalf("keys %+v", keys)
	}
}

func TestMultiUnwrapChildUnavailable(t *testing.T) {
	ctx := context.Background()
	good := mustNewAES(t, mustAESKey(t), nil)
	dek := testDEK(t)
	keys, err := good.Wrap(ctx, dek, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The primary is down; the second child still unwraps.
	m := NewMulti(downKeyring{}, good)
	got, err := m.Unwrap(ctx, keys, nil)
	if err != nil || !bytes.Equal(got, dek) {
		t.Fatalf("Unwrap with the primary down: %v", err)
	}
	// When nothing unwraps, the NoMatchError aggregates every child's
	// attempts, the unavailable one included.
	other := mustNewAES(t, mustAESKey(t), nil)
	forged := keys[0]
	forged.KeyID = other.KeyID()
	_, err = NewMulti(downKeyring{}, other).Unwrap(ctx, []WrappedKey{forged}, nil)
	var nm *NoMatchError
	if !errors.As(err, &nm) || len(nm.Tried) != 2 || len(nm.Available) != 1 {
		t.Fatalf("aggregate: %v", err)
	}
	if !errors.Is(err, errServiceDown) || !errors.Is(err, errAESOpen) {
		t.Fatalf("aggregate hides an attempt: %v", err)
	}
	// Each child applies its own limit: ErrTooManyKeys shows through.
	_, err = NewMulti(good).Unwrap(ctx, make([]WrappedKey, 17), nil)
	if !errors.Is(err, ErrTooManyKeys) {
		t.Fatalf("17 keys: %v", err)
	}
}

func TestMultiCancelNoLeak(t *testing.T) {
	defer goleak.VerifyNone(t)
	started := make(chan struct{}, 2)
	m := NewMulti(mustNewAES(t, mustAESKey(t), nil), blockingKeyring{started}, blockingKeyring{started})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := m.Wrap(ctx, testDEK(t), nil)
		errc <- err
	}()
	<-started
	<-started
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled Wrap: %v", err)
	}
	// Unwrap stops at the cancellation instead of moving on to the next
	// child.
	ctx, cancel = context.WithCancel(context.Background())
	go func() {
		_, err := NewMulti(blockingKeyring{started}, downKeyring{}).Unwrap(ctx, nil, nil)
		errc <- err
	}()
	<-started
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled Unwrap: %v", err)
	}
}
