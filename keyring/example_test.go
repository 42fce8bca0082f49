package keyring_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/geoseal/geoseal/keyring"
)

func ExampleNewAES() {
	ctx := context.Background()

	// In production, load the key with LoadAESKeyFile from a file only the
	// service can read, or better, keep it in an HSM or Key Vault.
	kek, err := keyring.GenerateAESKey()
	if err != nil {
		log.Fatal(err)
	}
	kr, err := keyring.NewAES(kek, nil)
	if err != nil {
		log.Fatal(err)
	}

	dek := make([]byte, 32)
	rand.Read(dek)
	ec := keyring.Context{"project": "x-57"}
	wrapped, err := kr.Wrap(ctx, dek, ec)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(wrapped[0].Provider, wrapped[0].Algorithm, wrapped[0].KeyID == kr.KeyID())

	got, err := kr.Unwrap(ctx, wrapped, ec)
	fmt.Println(bytes.Equal(got, dek), err)

	// The context is bound: a wrapped key moved to another object does not
	// unwrap.
	_, err = kr.Unwrap(ctx, wrapped, keyring.Context{"project": "x-58"})
	var nm *keyring.NoMatchError
	fmt.Println(errors.As(err, &nm))
	// Output:
	// local-aes A256GCM true
	// true <nil>
	// true
}

func ExampleNewRSAPublic() {
	ctx := context.Background()
	// The recipient keeps the private key (here generated for the example);
	// the writer needs only the public key, e.g. from LoadRSAPublicPEM.
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		log.Fatal(err)
	}
	writer, err := keyring.NewRSAPublic(&priv.PublicKey, nil)
	if err != nil {
		log.Fatal(err)
	}
	dek := make([]byte, 32)
	rand.Read(dek)
	wrapped, err := writer.Wrap(ctx, dek, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(wrapped[0].Provider, wrapped[0].Algorithm)

	// The writer cannot read back what it wrapped.
	_, err = writer.Unwrap(ctx, wrapped, nil)
	fmt.Println(errors.Is(err, keyring.ErrNoPrivateKey))
	// Output:
	// local-rsa RSA-OAEP-256
	// true
}

func ExampleNewRSAPrivate() {
	ctx := context.Background()
	// In production, load the key with LoadRSAPrivatePEM.
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		log.Fatal(err)
	}
	writer, _ := keyring.NewRSAPublic(&priv.PublicKey, nil)
	reader, err := keyring.NewRSAPrivate(priv, nil)
	if err != nil {
		log.Fatal(err)
	}
	dek := make([]byte, 32)
	rand.Read(dek)
	wrapped, _ := writer.Wrap(ctx, dek, nil)
	got, err := reader.Unwrap(ctx, wrapped, nil)
	fmt.Println(bytes.Equal(got, dek), err, writer.KeyID() == reader.KeyID())
	// Output: true <nil> true
}

func ExampleNewMulti() {
	ctx := context.Background()
	// Every object gets a wrapped key for the service's key and one for an
	// offline break-glass RSA key whose private half is kept in a safe.
	kek, _ := keyring.GenerateAESKey()
	service, _ := keyring.NewAES(kek, nil)
	breakGlass, _ := rsa.GenerateKey(rand.Reader, 2048)
	offline, _ := keyring.NewRSAPublic(&breakGlass.PublicKey, nil)
	kr := keyring.NewMulti(service, offline)

	dek := make([]byte, 32)
	rand.Read(dek)
	wrapped, err := kr.Wrap(ctx, dek, nil)
	if err != nil {
		log.Fatal(err) // every recipient or none
	}
	for _, w := range wrapped {
		fmt.Println(w.Provider)
	}

	// On the day the service key is lost, the break-glass key still reads
	// every object.
	recovery, _ := keyring.NewRSAPrivate(breakGlass, nil)
	got, err := recovery.Unwrap(ctx, wrapped, nil)
	fmt.Println(bytes.Equal(got, dek), err)
	// Output:
	// local-aes
	// local-rsa
	// true <nil>
}

func ExampleNewCache() {
	ctx := context.Background()
	kek, _ := keyring.GenerateAESKey()
	remote, _ := keyring.NewAES(kek, nil) // stands for a Key Vault or HSM keyring

	kr := keyring.NewCache(remote, &keyring.CacheOptions{
		MaxAge:  10 * time.Minute,
		MaxUses: 100,
		// One data key, and one call to the KMS, for up to 100 objects.
		ReuseDataKey: &keyring.ReuseOptions{MaxObjects: 100, MaxAge: time.Minute},
	})
	ec := keyring.Context{"bucket": "telemetry"}
	dek1, wrapped1, err := kr.GenerateDataKey(ctx, ec)
	if err != nil {
		log.Fatal(err)
	}
	dek2, wrapped2, _ := kr.GenerateDataKey(ctx, ec)
	fmt.Println(bytes.Equal(dek1, dek2), bytes.Equal(wrapped1[0].Ciphertext, wrapped2[0].Ciphertext))

	// Reading the objects back unwraps once and then hits the cache.
	got, err := kr.Unwrap(ctx, wrapped2, ec)
	fmt.Println(bytes.Equal(got, dek1), err)

	kr.Purge() // e.g. on shutdown: zero every cached data key
	// Output:
	// true true
	// true <nil>
}

func ExampleUnwrapChecked() {
	ctx := context.Background()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		log.Fatal(err)
	}
	kr, err := keyring.NewRSAPrivate(priv, nil)
	if err != nil {
		log.Fatal(err)
	}
	// Anyone with the public key can wrap a data key of their own, and
	// list it before an object's genuine wrapped key.
	dek, other := make([]byte, 32), make([]byte, 32)
	rand.Read(dek)
	rand.Read(other)
	decoy, _ := kr.Wrap(ctx, other, nil)
	genuine, _ := kr.Wrap(ctx, dek, nil)
	keys := append(decoy, genuine...)

	// The caller knows which data key it wants: envelope checks the
	// object's key commitment. Here the check compares with dek.
	errNotMine := errors.New("not the object's data key")
	check := func(got []byte) error {
		if !bytes.Equal(got, dek) {
			return errNotMine
		}
		return nil
	}
	got, err := keyring.UnwrapChecked(ctx, kr, keys, nil, check)
	fmt.Println(bytes.Equal(got, dek), err)

	// Plain Unwrap stops at the first wrapped key that unwraps.
	first, _ := kr.Unwrap(ctx, keys, nil)
	fmt.Println(bytes.Equal(first, other))

	// With only the decoy, the check's error comes back.
	_, err = keyring.UnwrapChecked(ctx, kr, decoy, nil, check)
	fmt.Println(errors.Is(err, errNotMine))
	// Output:
	// true <nil>
	// true
	// true
}
