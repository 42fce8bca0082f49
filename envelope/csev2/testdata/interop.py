#!/usr/bin/python3
"""The Python azure-storage-blob SDK as a CSE v2 peer for geoseal's interop tests.

    interop.py upload   CONN CONTAINER BLOB KEK ALG KID IN [MAX_SINGLE_PUT]
    interop.py download CONN CONTAINER BLOB KEK ALG KID OUT [OFFSET LENGTH]

KEK is "aes:HEX" (a 32-byte key for A256KW) or "rsa:PEMFILE" (an RSA private
key, for RSA-OAEP, RSA-OAEP-256, or RSA: RSA-OAEP with SHA-1 under the name
the SDK's own test helper RSAKeyWrapper writes). Uploads use
encryption_version "2.0", or the SDK's default "1.0" (AES-CBC, no integrity)
with upload-v1; downloads set require_encryption, so an unencrypted or
undecryptable blob is an error. Exit status 0 on success; errors go to
stderr.

    interop.py upload-v1 CONN CONTAINER BLOB KEK ALG KID IN [MAX_SINGLE_PUT MAX_BLOCK]
"""

import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap, aes_key_wrap

from azure.storage.blob import BlobServiceClient


class KeyEncryptionKey:
    """The SDK's key_encryption_key interface (wrap_key, unwrap_key, get_kid,
    get_key_wrap_algorithm), backed by cryptography."""

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
    cmd, conn, container, blob, spec, alg, kid, path = argv[1:9]
    kek = KeyEncryptionKey(spec, alg, kid)
    kwargs = {}
    if cmd == "upload" and len(argv) > 9:
        kwargs["max_single_put_size"] = int(argv[9])
        kwargs["max_block_size"] = int(argv[9])
    if cmd == "upload-v1" and len(argv) > 10:
        kwargs["max_single_put_size"] = int(argv[9])
        kwargs["max_block_size"] = int(argv[10])
    service = BlobServiceClient.from_connection_string(conn, **kwargs)
    client = service.get_blob_client(container, blob)
    client.require_encryption = True
    client.key_encryption_key = kek
    if cmd == "upload-v1":
        # The SDK's default encryption_version, "1.0", left as it is.
        assert client.encryption_version == "1.0"
        with open(path, "rb") as f:
            client.upload_blob(f, overwrite=True)
        return
    client.encryption_version = "2.0"
    if cmd == "upload":
        with open(path, "rb") as f:
            client.upload_blob(f, overwrite=True)
    elif cmd == "download":
        # A resolver, as a reader with many keys would use: it must be
        # asked for exactly the key id geoseal stored. (12.15 also insists on
        # key_encryption_key being set; the resolver takes priority.)
        def resolve(key_id):
            if key_id != kid:
                raise ValueError("asked for unknown key " + key_id)
            return kek

        client.key_resolver_function = resolve
        offset = length = None
        if len(argv) > 10:
            offset, length = int(argv[9]), int(argv[10])
        data = client.download_blob(offset=offset, length=length).readall()
        with open(path, "wb") as f:
            f.write(data)
    else:
        raise SystemExit("unknown command " + cmd)


if __name__ == "__main__":
    main(sys.argv)
