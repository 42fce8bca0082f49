package keyring

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Multi is a keyring made of several: it wraps each data key for all of them,
// and unwraps with whichever can. Use it to give an object several
// recipients, such as a Key Vault key in each of two regions, or an HSM key
// plus an offline break-glass RSA key, or to migrate from an old key to a
// new one.
//
// Multi adds no audit records of its own: its children log theirs.
//
// Multi is safe for concurrent use if its children are.
type Multi struct {
	children []Keyring // primary first
}

// NewMulti returns a keyring over primary and others. Wrap returns their
// wrapped keys in that order, primary first, and Unwrap tries them in that
// order, so the primary should be the keyring cheapest or most likely to
// unwrap.
//
// To reuse data keys across a Multi, put the cache outside it:
// NewCache(NewMulti(...), opts).
func NewMulti(primary Keyring, others ...Keyring) *Multi {
	children := make([]Keyring, 0, 1+len(others))
	children = append(children, primary)
	children = append(children, others...)
	return &Multi{children: children}
}

// Wrap wraps dek with every child at once, each in its own goroutine since
// children may be remote, and returns all their wrapped keys, the primary's
// first. It waits for every child, even after one has failed.
//
// If any child fails, Wrap fails, naming each child that did. Every failure
// is fatal because the caller asked for every recipient: an object stored
// without the wrapped key of, say, the disaster-recovery key would look
// fine today and be unreadable on the day that key is the only one left.
// Silent loss of a recipient is silent data loss.
func (m *Multi) Wrap(ctx context.Context, dek []byte, ec Context) ([]WrappedKey, error) {
	type result struct {
		keys []WrappedKey
		err  error
	}
	results := make([]result, len(m.children))
	var wg sync.WaitGroup
	for i, child := range m.children {
		if child == nil {
			results[i].err = errors.New("nil keyring")
			continue
		}
		wg.Go(func() {
			// Children only read dek, so sharing it is safe.
			keys, err := child.Wrap(ctx, dek, ec)
			if err == nil && len(keys) == 0 {
				err = errors.New("returned no wrapped key")
			}
			results[i] = result{keys, err}
		})
	}
	wg.Wait()
	var all []WrappedKey
	var errs []error
	for i, r := range results {
		if r.err != nil {
			errs = append(errs, fmt.Errorf("keyring: multi-keyring child %d (%s): %w", i, m.name(i), r.err))
			continue
		}
		all = append(all, r.keys...)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return all, nil
}

// Unwrap asks each child in order and returns the first data key one of them
// recovers. Each child applies its own limits on the number of keys and of
// attempts, and considers only its own wrapped keys. If none succeeds,
// Unwrap returns a *NoMatchError whose Tried holds the attempts of every
// child. If ctx is done, it stops and returns ctx's error.
//
// With UnwrapChecked, every child checks each data key it recovers, so that
// a wrapped key holding another data key does not end the search.
func (m *Multi) Unwrap(ctx context.Context, keys []WrappedKey, ec Context) ([]byte, error) {
	dek, _, err := m.unwrapChecked(ctx, keys, ec, nil)
	return dek, err
}

func (m *Multi) unwrapChecked(ctx context.Context, keys []WrappedKey, ec Context, check func([]byte) error) ([]byte, int, error) {
	var tried []Attempt
	skipped := 0
	for i, child := range m.children {
		if err := ctx.Err(); err != nil {
			return nil, -1, err
		}
		if child == nil {
			continue
		}
		dek, index, err := unwrapWith(ctx, child, keys, ec, check)
		if err == nil {
			return dek, index, nil
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, -1, ctxErr
		}
		var nm *NoMatchError
		if errors.As(err, &nm) {
			tried = append(tried, nm.Tried...)
			skipped += nm.Skipped
			continue
		}
		// A child that refused the whole list (too many keys, invalid
		// context, an unreachable service) is recorded as one attempt.
		tried = append(tried, Attempt{Err: fmt.Errorf("keyring: multi-keyring child %d (%s): %w", i, m.name(i), err)})
	}
	return nil, -1, &NoMatchError{Tried: tried, Skipped: skipped, Available: append([]WrappedKey(nil), keys...)}
}

// name describes child i in errors without calling into it.
func (m *Multi) name(i int) string {
	if i == 0 {
		return fmt.Sprintf("primary, %T", m.children[i])
	}
	return fmt.Sprintf("%T", m.children[i])
}
