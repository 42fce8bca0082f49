package kvurl

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in                   string
		vault, name, version string
	}{
		{"https://contoso.vault.azure.net/keys/k", "https://contoso.vault.azure.net", "k", ""},
		{"https://Contoso.vault.azure.net:443/keys/K-1/", "https://contoso.vault.azure.net", "K-1", ""},
		{"https://contoso.managedhsm.azure.net/keys/k/0123abcd", "https://contoso.managedhsm.azure.net", "k", "0123abcd"},
		{"https://127.0.0.1:8443/keys/a/b", "https://127.0.0.1:8443", "a", "b"},
	} {
		v, n, ver, err := Parse(tc.in)
		if err != nil || v != tc.vault || n != tc.name || ver != tc.version {
			t.Errorf("Parse(%q) = %q %q %q %v, want %q %q %q", tc.in, v, n, ver, err, tc.vault, tc.name, tc.version)
		}
	}
	for _, bad := range []string{
		"", "http://x/keys/k", "https://x/keys//v", "https://x/keys/k?q", "https://x/keys/k#f",
		"https://x/secrets/k", "https://x/keys", "https://x/keys/k/v/w", "https://x/keys/k_1",
		"https://u@x/keys/k", "https:///keys/k", "https://:443/keys/0", "https://:8443/keys/k", "https://x/keys/k/v-1", "https://x/keys/" + strings.Repeat("a", 128),
		"https://x/keys/k/" + strings.Repeat("a", 65), "https://x/keys/" + strings.Repeat("a", MaxLen),
	} {
		if _, _, _, err := Parse(bad); err == nil || !strings.Contains(err.Error(), "invalid Key Vault key URL") {
			t.Errorf("Parse(%q) = %v, want an invalid-URL error", bad, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"https://contoso.vault.azure.net/keys/k",
		"https://contoso.managedhsm.azure.net/keys/k/0123456789abcdef0123456789abcdef",
		"https://Contoso.vault.azure.net:443/keys/K-1/",
		"https://127.0.0.1:8443/keys/a/b",
		"http://x/keys/k", "https://x/keys//v", "https://x/keys/k?q", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		vault, name, version, err := Parse(s)
		if err != nil {
			return
		}
		if !strings.HasPrefix(vault, "https://") || !validName(name, 127, true) || (version != "" && !validName(version, 64, false)) {
			t.Fatalf("%q parsed to %q %q %q", s, vault, name, version)
		}
		// What a key id is rebuilt from parses to the same parts.
		id := vault + "/keys/" + name
		if version != "" {
			id += "/" + version
		}
		v2, n2, ver2, err := Parse(id)
		if err != nil || v2 != vault || n2 != name || ver2 != version {
			t.Fatalf("%q -> %q does not reparse: %q %q %q %v", s, id, v2, n2, ver2, err)
		}
	})
}

func TestSameKeyAndManagedHSM(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		same bool
	}{
		{"https://v.vault.azure.net/keys/k/1", "https://v.vault.azure.net/keys/k/2", true},
		{"https://v.vault.azure.net/keys/k/1", "https://V.vault.azure.net:443/keys/K", true},
		{"https://v.vault.azure.net/keys/k/1", "https://v.vault.azure.net/keys/k2/1", false},
		{"https://v.vault.azure.net/keys/k/1", "https://w.vault.azure.net/keys/k/1", false},
		{"https://v.vault.azure.net/keys/k/1", "local-aes fingerprint", false},
		{"not a url", "not a url", false},
	} {
		if got := SameKey(tc.a, tc.b); got != tc.same {
			t.Errorf("SameKey(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.same)
		}
	}
	for vault, hsm := range map[string]bool{
		"https://h.managedhsm.azure.net":         true,
		"https://h.managedhsm.usgovcloudapi.net": true,
		"https://h.managedhsm.azure.cn:8443":     true,
		"https://v.vault.azure.net":              false,
		"https://managedhsm.azure.net.evil.test": false,
	} {
		if got := IsManagedHSM(vault); got != hsm {
			t.Errorf("IsManagedHSM(%q) = %v, want %v", vault, got, hsm)
		}
	}
}
