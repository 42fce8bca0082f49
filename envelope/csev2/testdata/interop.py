#!/usr/bin/python3
"""The Python azure-storage-blob SDK as a CSE v2 peer for geoseal's interop tests.

    interop.py upload   CONN CONTAINER BLOB KEK ALG KID IN [MAX_SINGLE_PUT]
    interop.py download CONN CONTAINER BLOB KEK ALG KID OUT [OFFSET LENGTH]

KEK is "aes:HEX" (a 32-byte key for A256KW) or "rsa:PEMFILE" (an RSA private
key, for RSA-OAEP, RSA-OAEP-256, or RSA: RSA-OAEP with SHA-1 under the name
the SDK's own test helper RSAKeyWrapper writes). Uploads use
encryption_version "2.0"; downloads set require_encryption, so an
unencrypted or undecryptable blob is an error. Exit status 0 on success;
errors go to stderr. (CSE v1 blobs the SDK writes come from
internal/pysdk's cse_container.py.)
"""

import os
import sys

from azure.storage.blob import BlobServiceClient

# The SDK's key_encryption_key, as internal/pysdk's script gives it to the
# SDK. No bytecode is written into the source tree when a test imports it.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "internal", "pysdk"))
from cse_container import KeyEncryptionKey  # noqa: E402


def main(argv):
    cmd, conn, container, blob, spec, alg, kid, path = argv[1:9]
    kek = KeyEncryptionKey(spec, alg, kid)
    kwargs = {}
    if cmd == "upload" and len(argv) > 9:
        kwargs["max_single_put_size"] = int(argv[9])
        kwargs["max_block_size"] = int(argv[9])
    service = BlobServiceClient.from_connection_string(conn, **kwargs)
    client = service.get_blob_client(container, blob)
    client.require_encryption = True
    client.key_encryption_key = kek
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
