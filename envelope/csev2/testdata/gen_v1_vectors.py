#!/usr/bin/python3
"""Record CSE v1 (protocol 1.0, AES-CBC) blobs written by the real Python SDK.

Debian's python3-azure-storage (azure-storage-blob 12.15.0b1) writes v1 by
default. This script uploads plaintexts through it to a Blob endpoint, single
put and chunked, and records what the SDK stored: the encryptiondata
metadata and the body (inline up to 4 KiB, else its size and SHA-256; the Go
test rebuilds it from the recorded content key and IV and checks the hash).
It checks that the SDK reads each blob back, and that the body is AES-256-CBC
with PKCS #7 padding of the plaintext under the IV in the metadata.

Start Azurite (the pinned one), then run, with Debian's python3:

    internal/azurite/node_modules/.bin/azurite-blob --skipApiVersionCheck --loose \\
        --blobHost 127.0.0.1 --blobPort 10000 --location "$(mktemp -d)" &
    /usr/bin/python3 envelope/csev2/testdata/gen_v1_vectors.py \\
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;" \\
        > envelope/csev2/testdata/v1_vectors.json

The plaintext of size n is byte(i*31 + (i >> 11)) for i in [0, n), as in
gen_vectors.py.
"""

import base64
import hashlib
import json
import os
import sys
import warnings

from cryptography.hazmat.primitives import padding as sympadding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from azure.storage.blob import BlobServiceClient

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from interop import KeyEncryptionKey  # noqa: E402

INLINE_MAX = 4096
MIB = 1 << 20
AES_KEY = hashlib.sha256(b"geoseal csev2 v1 vectors: A256KW KEK").digest()
AES_KID = "local:v1-aes"
RSA_KID = "local:v1-rsa"

# Single put: the SDK's defaults (everything here fits one Put Blob).
# Chunked: Put Block + Put Block List from 16 bytes of padded ciphertext up,
# 64 KiB blocks, the SDK's streaming CBC encryptor across blocks.
UPLOADS = {"single": {}, "chunked": {"max_single_put_size": 16, "max_block_size": 64 << 10}}
SIZES = [0, 1, 15, 16, 17, 100000, 4 * MIB + 1]


def plaintext(n):
    return bytes(((i * 31 + (i >> 11)) & 0xFF) for i in range(n))


def main(conn):
    warnings.simplefilter("ignore")  # the SDK warns that v1 is insecure: it is
    raw = BlobServiceClient.from_connection_string(conn)
    container = raw.get_container_client("v1vectors")
    if not container.exists():
        container.create_container()
    keks = [
        ("A256KW", KeyEncryptionKey("aes:" + AES_KEY.hex(), "A256KW", AES_KID), SIZES),
        ("RSA-OAEP", KeyEncryptionKey("rsa:" + os.path.join(HERE, "rsa2048.pem"), "RSA-OAEP", RSA_KID), SIZES),
        ("RSA-OAEP-256", KeyEncryptionKey("rsa:" + os.path.join(HERE, "rsa2048.pem"), "RSA-OAEP-256", RSA_KID), [0, 17, 100000]),
        ("RSA", KeyEncryptionKey("rsa:" + os.path.join(HERE, "rsa2048.pem"), "RSA", RSA_KID), [17]),
    ]
    out = []
    cache = {}
    for alg, kek, sizes in keks:
        for upload, settings in UPLOADS.items():
            service = BlobServiceClient.from_connection_string(conn, **settings)
            for n in sizes:
                name = f"1.0/{alg}/{upload}/{n}"
                pt = cache.setdefault(n, plaintext(n))
                client = service.get_blob_client("v1vectors", name)
                client.key_encryption_key = kek
                client.require_encryption = True
                assert client.encryption_version == "1.0"
                client.upload_blob(pt, overwrite=True)
                assert client.download_blob().readall() == pt, name

                plain = raw.get_blob_client("v1vectors", name)
                body = plain.download_blob().readall()
                md = plain.get_blob_properties().metadata["encryptiondata"]
                blocks = len(plain.get_block_list("committed")[0])
                assert (blocks > 0) == (upload == "chunked" and n >= 16), (name, blocks)

                ed = json.loads(md)
                assert ed["EncryptionAgent"] == {"Protocol": "1.0", "EncryptionAlgorithm": "AES_CBC_256"}, ed
                wk = ed["WrappedContentKey"]
                cek = kek.unwrap_key(base64.b64decode(wk["EncryptedKey"]), wk["Algorithm"])
                iv = base64.b64decode(ed["ContentEncryptionIV"])
                d = Cipher(algorithms.AES(cek), modes.CBC(iv)).decryptor()
                u = sympadding.PKCS7(128).unpadder()
                assert u.update(d.update(body) + d.finalize()) + u.finalize() == pt, name

                v = {
                    "name": name,
                    "wrap": wk["Algorithm"],
                    "upload": upload,
                    "committed_blocks": blocks,
                    "plaintext_size": n,
                    "cek": cek.hex(),
                    "encryptiondata": md,
                    "ciphertext_size": len(body),
                    "ciphertext_sha256": hashlib.sha256(body).hexdigest(),
                }
                if len(body) <= INLINE_MAX:
                    v["ciphertext"] = body.hex()
                out.append(v)
    json.dump({
        "comment": "Written by the Python SDK (azure-storage-blob 12.15.0b1) through gen_v1_vectors.py; see its docstring.",
        "aes_kek": AES_KEY.hex(),
        "aes_kid": AES_KID,
        "rsa_key": "rsa2048.pem",
        "rsa_kid": RSA_KID,
        "vectors": out,
    }, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
