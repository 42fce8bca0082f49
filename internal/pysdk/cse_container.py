#!/usr/bin/python3
"""Fill a container with blobs the Python azure-storage-blob SDK writes, for
geoseal's tests (package internal/pysdk runs it): client-side encrypted v1
(the SDK's default encryption_version, "1.0", AES-CBC) and v2 ("2.0",
AES-GCM), single put and chunked, and plain blobs, each with the metadata
and tags given.

    cse_container.py MANIFEST

MANIFEST is a JSON file:

    {"connection_string": "...", "container": "...",
     "blobs": [{"name": "...", "in": "PLAINTEXT FILE",
                "version": "1.0" | "2.0" | null (no encryption),
                "kek": "aes:HEX" | "rsa:PEMFILE", "alg": "A256KW" | "RSA-OAEP" | "RSA-OAEP-256" | "RSA",
                "kid": "...",
                "chunked": false | true,
                "metadata": {...}, "tags": {...}}]}

A chunked upload forces staged blocks (Put Block, Put Block List) with a
small single-put limit and block size; otherwise the blob is one Put Blob.
One process writes every blob, so a test pays for Python's start-up once.
Exit status 0 on success; errors go to stderr.
"""

import json
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap, aes_key_wrap

from azure.storage.blob import BlobServiceClient

# Chunked uploads: blocks of 64 KiB for v1 and plain blobs; v2 uploads
# encrypted regions of 4 MiB + 28 bytes whatever the block size, split into
# blocks of at most this size.
CHUNKED = {"max_single_put_size": 16, "max_block_size": 64 << 10}


class KeyEncryptionKey:
    """The SDK's key_encryption_key interface (wrap_key, unwrap_key, get_kid,
    get_key_wrap_algorithm), backed by cryptography. envelope/csev2's
    testdata/interop.py imports it from here.

    spec is "aes:HEX" (a 32-byte key for A256KW) or "rsa:PEMFILE" (an RSA
    private key, for RSA-OAEP, RSA-OAEP-256, or RSA: RSA-OAEP with SHA-1
    under the name the SDK's own test helper RSAKeyWrapper writes)."""

    def __init__(self, spec, alg, kid):
        kind, _, value = spec.partition(":")
        self.alg, self.kid = alg, kid
        if kind == "aes":
            self.aes = bytes.fromhex(value)
            assert len(self.aes) == 32 and alg == "A256KW"
        else:
            with open(value, "rb") as f:
                self.rsa = serialization.load_pem_private_key(f.read(), password=None)
            assert alg in ("RSA-OAEP", "RSA-OAEP-256", "RSA")

    def _oaep(self, alg):
        h = hashes.SHA256() if alg == "RSA-OAEP-256" else hashes.SHA1()
        return padding.OAEP(mgf=padding.MGF1(algorithm=h), algorithm=h, label=None)

    def wrap_key(self, key):
        if self.alg == "A256KW":
            return aes_key_wrap(self.aes, key)
        return self.rsa.public_key().encrypt(key, self._oaep(self.alg))

    def unwrap_key(self, key, algorithm):
        if algorithm != self.alg:
            raise ValueError("unexpected key wrap algorithm " + algorithm)
        if algorithm == "A256KW":
            return aes_key_unwrap(self.aes, key)
        return self.rsa.decrypt(key, self._oaep(algorithm))

    def get_kid(self):
        return self.kid

    def get_key_wrap_algorithm(self):
        return self.alg


def main(argv):
    with open(argv[1]) as f:
        m = json.load(f)
    services = {
        False: BlobServiceClient.from_connection_string(m["connection_string"]),
        True: BlobServiceClient.from_connection_string(m["connection_string"], **CHUNKED),
    }
    for b in m["blobs"]:
        client = services[bool(b.get("chunked"))].get_blob_client(m["container"], b["name"])
        version = b.get("version")
        if version is not None:
            client.require_encryption = True
            client.key_encryption_key = KeyEncryptionKey(b["kek"], b["alg"], b["kid"])
            if version == "1.0":
                # The SDK's default, left as it is.
                assert client.encryption_version == "1.0"
            else:
                client.encryption_version = version
        with open(b["in"], "rb") as f:
            client.upload_blob(f, overwrite=True, metadata=b.get("metadata") or None, tags=b.get("tags") or None)


if __name__ == "__main__":
    main(sys.argv)
