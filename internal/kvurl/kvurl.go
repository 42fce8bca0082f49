// Package kvurl parses Azure Key Vault and Managed HSM key URLs and key ids,
// https://{vault}/keys/{name}[/{version}]: one parser, with one set of
// bounds, for every package that takes them (keyring, envelope/csev2 and
// cmd/geoseal).
package kvurl

import (
	"fmt"
	"net/url"
	"strings"
)

// MaxLen bounds the key URLs and key ids Parse accepts.
const MaxLen = 2048

// Parse splits https://{host}/keys/{name}[/{version}] into the
// vault URL (host lower-cased, default port dropped), the name and the
// version, which may be empty.
func Parse(s string) (vault, name, version string, err error) {
	bad := func(why string) (string, string, string, error) {
		return "", "", "", fmt.Errorf("invalid Key Vault key URL %q: %s; want https://{vault}/keys/{name}[/{version}]", truncate(s), why)
	}
	if len(s) > MaxLen {
		return bad("too long")
	}
	u, err := url.Parse(s)
	if err != nil {
		return bad(err.Error())
	}
	switch {
	case u.Scheme != "https":
		return bad("the scheme must be https")
	case u.Host == "" || u.User != nil || u.Opaque != "":
		return bad("no host")
	case u.RawQuery != "" || u.Fragment != "":
		return bad("query and fragment are not allowed")
	}
	parts := strings.Split(strings.TrimSuffix(strings.TrimPrefix(u.Path, "/"), "/"), "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] != "keys" {
		return bad("the path must be /keys/{name}[/{version}]")
	}
	name = parts[1]
	if !validName(name, 127, true) {
		return bad("a key name is 1 to 127 letters, digits and dashes")
	}
	if len(parts) == 3 {
		version = parts[2]
		if !validName(version, 64, false) {
			return bad("a key version is 1 to 64 letters and digits")
		}
	}
	host := strings.TrimSuffix(strings.ToLower(u.Host), ":443")
	if u.Hostname() == "" || host == "" {
		return bad("no host")
	}
	return "https://" + host, name, version, nil
}

func validName(s string, max int, dash bool) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || dash && c == '-') {
			return false
		}
	}
	return true
}

func truncate(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

// managedHSMSuffixes are the Managed HSM host suffixes of the clouds.
var managedHSMSuffixes = []string{".managedhsm.azure.net", ".managedhsm.usgovcloudapi.net", ".managedhsm.azure.cn"}

// IsManagedHSM reports whether vault, a vault URL as Parse returns it, is
// a Managed HSM rather than a vault.
func IsManagedHSM(vault string) bool {
	host := strings.TrimPrefix(vault, "https://")
	if i := strings.IndexByte(host, ':'); i >= 0 {
		host = host[:i]
	}
	for _, s := range managedHSMSuffixes {
		if strings.HasSuffix(host, s) {
			return true
		}
	}
	return false
}

// SameKey reports whether the key ids a and b name the same key (same
// vault, same name, whatever the versions): the rule by which the Key
// Vault keyring unwraps what any version of its key wrapped.
func SameKey(a, b string) bool {
	va, na, _, err := Parse(a)
	if err != nil {
		return false
	}
	vb, nb, _, err := Parse(b)
	return err == nil && va == vb && strings.EqualFold(na, nb)
}
