package keyring

// KeyIDs returns the KeyID of each wrapped key w's Wrap returns, in order,
// without wrapping anything, or nil when w cannot tell. Every keyring of
// this package can: AES, RSA, KeyVault, PKCS11 and TinkAEAD by their KeyID
// method, Multi and Cache by asking the keyrings inside them. Another
// Wrapper can tell by having a method KeyID() string or KeyIDs() []string.
//
// A key rotation uses it to recognise an object that is already wrapped
// for exactly the new keys, and to leave it alone without a single call to
// the KMS.
func KeyIDs(w Wrapper) []string {
	switch k := w.(type) {
	case interface{ KeyIDs() []string }:
		return k.KeyIDs()
	case interface{ KeyID() string }:
		if id := k.KeyID(); id != "" {
			return []string{id}
		}
	}
	return nil
}

// KeyIDs returns the KeyID of each wrapped key Wrap returns, primary
// first, or nil when one of the keyrings cannot tell (see the function
// KeyIDs).
func (m *Multi) KeyIDs() []string {
	var ids []string
	for _, child := range m.children {
		if child == nil {
			return nil
		}
		c := KeyIDs(child)
		if c == nil {
			return nil
		}
		ids = append(ids, c...)
	}
	return ids
}

// KeyIDs returns the KeyID of each wrapped key Wrap returns: those of the
// inner keyring (see the function KeyIDs).
func (c *Cache) KeyIDs() []string { return KeyIDs(c.inner) }
