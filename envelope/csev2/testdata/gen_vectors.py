#!/usr/bin/python3
"""Generate CSE v2 test vectors independently of the Go code.

Run with Debian's python3 (python3-azure-storage 12.15.0b1, python3-cryptography):

    /usr/bin/python3 envelope/csev2/testdata/gen_vectors.py > envelope/csev2/testdata/vectors.json
    /usr/bin/python3 envelope/csev2/testdata/gen_vectors.py --sparse > envelope/csev2/testdata/sparse_vectors.json

The second writes regions of blobs too big to store (past region 2^31), by
index, for the nonce layout the Java SDK wrote before 12.34.2.

The construction follows the SDK sources (see FORMAT.md, "Azure client-side
encryption v2"): regions of DataLength plaintext bytes sealed with AES-256-GCM
as nonce(12) || ciphertext || tag(16), the CEK wrapped after the protocol
string NUL-padded to 8 bytes. Protocol 2.0 metadata comes from the Python
SDK's own _generate_encryption_data_dict, and Python-scheme 2.0 ciphertexts are
checked against the SDK's own GCMBlobEncryptionStream.

Everything is deterministic except RSA-OAEP wraps (OAEP is randomized), which
are recorded as generated. Big ciphertexts are recorded by SHA-256 only; the
Go test rebuilds them from the parameters. The plaintext of size n is
byte(i*31 + (i >> 11)) for i in [0, n).
"""

import base64
import hashlib
import io
import json
import os
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap, aes_key_wrap

from azure.storage.blob import _encryption as sdk

HERE = os.path.dirname(os.path.abspath(__file__))
MIB = 1 << 20
REGION = 4 * MIB
INLINE_MAX = 4096  # ciphertexts up to this size are stored in hex

AES_KEK = hashlib.sha256(b"geoseal csev2 vectors: A256KW KEK").digest()
AES_KID = "local:aes-kek-1"
RSA_KID = "local:rsa-kek-1"
with open(os.path.join(HERE, "rsa2048.pem"), "rb") as f:
    RSA_KEY = serialization.load_pem_private_key(f.read(), password=None)


def plaintext(n):
    return bytes(((i * 31 + (i >> 11)) & 0xFF) for i in range(n))


PT_CACHE = plaintext(2 * REGION + 5)


def pt(n):
    return PT_CACHE[:n] if n <= len(PT_CACHE) else plaintext(n)


def nonce(scheme, i):
    if scheme == "java":  # EncryptorV2: ByteBuffer.allocate(12).putLong(index)
        return i.to_bytes(8, "big") + bytes(4)
    if scheme == "python":  # GCMBlobEncryptionStream: counter.to_bytes(12, 'big')
        return i.to_bytes(12, "big")
    if scheme == "dotnet":  # GcmAuthenticatedCryptographicTransform: 4 zeros, LE64 counter from 1
        return bytes(4) + (i + 1).to_bytes(8, "little")
    raise ValueError(scheme)


def regions(cek, scheme, region_len, data):
    out = []
    g = AESGCM(cek)
    for i, off in enumerate(range(0, len(data), region_len)):
        n = nonce(scheme, i)
        out.append(n + g.encrypt(n, data[off:off + region_len], None))
    return out


class KEK:
    """The Python SDK's key_encryption_key interface."""

    def __init__(self, alg):
        self.alg = alg

    def wrap_key(self, key):
        if self.alg == "A256KW":
            return aes_key_wrap(AES_KEK, key)
        return RSA_KEY.public_key().encrypt(key, oaep(self.alg))

    def unwrap_key(self, key, alg):
        assert alg == self.alg
        if alg == "A256KW":
            return aes_key_unwrap(AES_KEK, key)
        return RSA_KEY.decrypt(key, oaep(alg))

    def get_kid(self):
        return AES_KID if self.alg == "A256KW" else RSA_KID

    def get_key_wrap_algorithm(self):
        return self.alg


def oaep(alg):
    h = hashes.SHA1() if alg == "RSA-OAEP" else hashes.SHA256()
    return padding.OAEP(mgf=padding.MGF1(algorithm=h), algorithm=h, label=None)


def metadata(kek, cek, protocol, region_len, wrap_prefix=None):
    if protocol == "2.0" and wrap_prefix is None and region_len == REGION:
        d = sdk._generate_encryption_data_dict(kek, cek, None, "2.0")
        d["EncryptionMode"] = "FullBlob"
        return d
    prefix = (wrap_prefix if wrap_prefix is not None else protocol).encode().ljust(8, b"\0")
    return {
        "WrappedContentKey": {
            "KeyId": kek.get_kid(),
            "EncryptedKey": base64.b64encode(kek.wrap_key(prefix + cek)).decode(),
            "Algorithm": kek.get_key_wrap_algorithm(),
        },
        "EncryptionAgent": {"Protocol": protocol, "EncryptionAlgorithm": "AES_GCM_256"},
        "EncryptedRegionInfo": {"DataLength": region_len, "NonceLength": 12},
        "KeyWrappingMetadata": {"EncryptionLibrary": "geoseal gen_vectors.py"},
        "EncryptionMode": "FullBlob",
    }


def vector(name, alg, scheme, protocol, region_len, size, cek=None, regs=None,
           result="valid", error=None, wrap_prefix=None, md_override=None):
    cek = cek or hashlib.sha256(name.encode()).digest()
    kek = KEK(alg)
    md = metadata(kek, cek, protocol, region_len, wrap_prefix)
    if md_override:
        md_override(md)
    if regs is None:
        regs = regions(cek, scheme, region_len, pt(size))
    ct = b"".join(regs)
    v = {
        "name": name,
        "wrap": alg,
        "scheme": scheme,
        "protocol": protocol,
        "region_length": region_len,
        "plaintext_size": size,
        "cek": cek.hex(),
        "encryptiondata": json.dumps(md),
        "ciphertext_size": len(ct),
        "ciphertext_sha256": hashlib.sha256(ct).hexdigest(),
        "result": result,
    }
    if len(ct) <= INLINE_MAX:
        v["ciphertext"] = ct.hex()
    if error:
        v["error"] = error
    # Cross-check the Python scheme against the SDK's own encryption stream.
    if scheme == "python" and region_len == REGION and result == "valid":
        sdk_ct = sdk.GCMBlobEncryptionStream(cek, io.BytesIO(pt(size))).read()
        assert sdk_ct == ct, name
    # Check that the SDK's own unwrap accepts what we wrapped (2.0 only).
    if protocol == "2.0" and result == "valid":
        ed = sdk._dict_to_encryption_data(json.loads(v["encryptiondata"]))
        assert sdk._validate_and_unwrap_cek(ed, kek) == cek, name
    return v


def main():
    out = []
    sizes = [0, 1, REGION - 1, REGION, REGION + 1, 2 * REGION + 5]
    for scheme in ("java", "python", "dotnet"):
        for alg, ss in (("A256KW", sizes), ("RSA-OAEP-256", sizes), ("RSA-OAEP", [0, 1, 1000])):
            for n in ss:
                out.append(vector(f"2.0/{alg}/{scheme}/{n}", alg, scheme, "2.0", REGION, n))
        # Protocol 2.1 with small regions: multi-region vectors small enough to inline.
        for rl in (16, 100):
            for n in (0, 1, rl - 1, rl, rl + 1, 3 * rl + 7):
                out.append(vector(f"2.1/A256KW/{scheme}/r{rl}/{n}", "A256KW", scheme, "2.1", rl, n))
        out.append(vector(f"2.1/RSA-OAEP-256/{scheme}/r16/50", "RSA-OAEP-256", scheme, "2.1", 16, 50))

        # Invalid: region order, truncation, tampering. Four 16-byte regions.
        base = f"invalid/{scheme}"
        cek = hashlib.sha256(base.encode()).digest()
        good = regions(cek, scheme, 16, pt(60))

        def bad(tag, regs, error):
            out.append(vector(f"{base}/{tag}", "A256KW", scheme, "2.1", 16, 60, cek=cek,
                              regs=regs, result="invalid", error=error))

        bad("swapped-1-2", [good[0], good[2], good[1], good[3]], "order")
        bad("swapped-0-1", [good[1], good[0], good[2], good[3]], "order")
        bad("duplicated-0", [good[0], good[0], good[1], good[2], good[3]], "order")
        bad("dropped-1", [good[0], good[2], good[3]], "order")
        bad("last-cut-to-20", good[:3] + [good[3][:20]], "truncated")
        bad("last-cut-by-1", good[:3] + [good[3][:-1]], "auth")
        bad("middle-cut-by-1", [good[0], good[1][:-1], good[2], good[3]], "auth")
        flipped = bytearray(good[1])
        flipped[20] ^= 1
        bad("bitflip-1", [good[0], bytes(flipped), good[2], good[3]], "auth")
        # A region sealed under a nonce of another scheme at the right index.
        other = {"java": "dotnet", "python": "dotnet", "dotnet": "java"}[scheme]
        g = AESGCM(cek)
        n2 = nonce(other, 2)
        bad("mixed-scheme-2", good[:2] + [n2 + g.encrypt(n2, pt(60)[32:48], None), good[3]], "order")

    # Downgrade protection: the wrapped prefix must match the metadata protocol.
    def mismatch(name, protocol, prefix, alg="A256KW"):
        out.append(vector(name, alg, "java", protocol, REGION if protocol == "2.0" else 16, 10,
                          result="invalid", error="protocol", wrap_prefix=prefix))

    mismatch("invalid/protocol/2.0-metadata-2.1-wrapped", "2.0", "2.1")
    mismatch("invalid/protocol/2.1-metadata-2.0-wrapped", "2.1", "2.0")
    mismatch("invalid/protocol/2.0-metadata-1.0-wrapped", "2.0", "1.0")
    mismatch("invalid/protocol/2.0-metadata-2.0-space-padded", "2.0", "2.0     ")
    mismatch("invalid/protocol/rsa-2.0-metadata-2.1-wrapped", "2.0", "2.1", "RSA-OAEP-256")

    def unprefixed(md):
        # A 1.0-style wrap: the bare 32-byte CEK, no protocol prefix.
        cek = hashlib.sha256(b"invalid/protocol/unprefixed").digest()
        md["WrappedContentKey"]["EncryptedKey"] = base64.b64encode(aes_key_wrap(AES_KEK, cek)).decode()

    out.append(vector("invalid/protocol/unprefixed", "A256KW", "java", "2.0", REGION, 10,
                      cek=hashlib.sha256(b"invalid/protocol/unprefixed").digest(),
                      result="invalid", error="protocol", md_override=unprefixed))

    def region_len_lie(md):
        md["EncryptedRegionInfo"]["DataLength"] = 32

    out.append(vector("invalid/region-length-altered", "A256KW", "java", "2.1", 16, 60,
                      result="invalid", error="auth", md_override=region_len_lie))

    json.dump({
        "comment": "Generated by gen_vectors.py; see its docstring.",
        "aes_kek": AES_KEK.hex(),
        "aes_kid": AES_KID,
        "rsa_key": "rsa2048.pem",
        "rsa_kid": RSA_KID,
        "vectors": out,
    }, sys.stdout, indent=1)
    sys.stdout.write("\n")


def java_int32_nonce(i):
    """EncryptorV2 before azure-storage-blob-cryptography 12.34.2:
    ByteBuffer.allocate(12).putLong(index.intValue()), the index truncated to
    a Java int and sign-extended back to a long."""
    v = i & 0xFFFFFFFF
    if v >= 1 << 31:
        v -= 1 << 32
    return (v & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "big") + bytes(4)


def sparse_main():
    """Regions of 2.1 blobs with 16-byte regions, too big to store, by index."""
    rl = 16
    out = []

    def sparse(name, picks, read, result="valid", error=None):
        # picks: list of (index, nonce function) for the regions stored.
        cek = hashlib.sha256(name.encode()).digest()
        kek = KEK("A256KW")
        md = metadata(kek, cek, "2.1", rl)
        g = AESGCM(cek)
        regs = []
        for index, nf in picks:
            n = nf(index)
            data = plaintext_at(index * rl, rl)
            regs.append({"index": index, "ciphertext": (n + g.encrypt(n, data, None)).hex()})
        off, length = read
        v = {
            "name": name,
            "wrap": "A256KW",
            "region_length": rl,
            "cek": cek.hex(),
            "encryptiondata": json.dumps(md),
            "blob_regions": max(i for i, _ in picks) + 1,
            "regions": regs,
            "read_offset": off,
            "read_length": length,
            "result": result,
        }
        if result == "valid":
            v["plaintext"] = plaintext_at(off, length).hex()
        if error:
            v["error"] = error
        out.append(v)

    java_long = lambda i: nonce("java", i)
    b31, b32 = 1 << 31, 1 << 32
    sparse("java-int32/around-2^31", [(b31 - 1, java_int32_nonce), (b31, java_int32_nonce), (b31 + 1, java_int32_nonce)],
           ((b31 - 1) * rl + 3, 2 * rl + 10))
    sparse("java-int32/last-before-2^32", [(b32 - 2, java_int32_nonce), (b32 - 1, java_int32_nonce)],
           ((b32 - 2) * rl, 2 * rl))
    sparse("java-long/around-2^31", [(b31 - 1, java_long), (b31, java_long)], ((b31 - 1) * rl, 2 * rl))
    sparse("python/around-2^32", [(b32 - 1, lambda i: nonce("python", i)), (b32, lambda i: nonce("python", i))],
           ((b32 - 1) * rl, 2 * rl))
    sparse("invalid/java-int32-then-long", [(b31, java_int32_nonce), (b31 + 1, java_long)],
           (b31 * rl, 2 * rl), "invalid", "order")
    # At 2^32 the old Java nonce is region 0's again: no position can be
    # told, so it is refused even where it is what that encoder wrote.
    sparse("invalid/java-int32-at-2^32", [(b32 - 1, java_int32_nonce), (b32, java_int32_nonce)],
           ((b32 - 1) * rl, 2 * rl), "invalid", "order")

    json.dump({
        "comment": "Generated by gen_vectors.py --sparse; see its docstring.",
        "aes_kek": AES_KEK.hex(),
        "aes_kid": AES_KID,
        "vectors": out,
    }, sys.stdout, indent=1)
    sys.stdout.write("\n")


def plaintext_at(off, n):
    return bytes((((i * 31) + (i >> 11)) & 0xFF) for i in range(off, off + n))


if __name__ == "__main__":
    if sys.argv[1:] == ["--sparse"]:
        sparse_main()
    else:
        main()
