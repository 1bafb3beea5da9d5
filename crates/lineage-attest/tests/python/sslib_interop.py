"""Interop peer for lineage-attest: the securesystemslib reference implementation of DSSE.

Run by tests/attest/interop.rs with the Python named in LINEAGE_TEST_PYTHON. Subcommands:

  sign OUTDIR
      Generates an ECDSA P-256 and an Ed25519 key with securesystemslib's CryptoSigner, signs a
      DSSE envelope with each (securesystemslib.dsse.Envelope.sign), and writes
      OUTDIR/{ecdsa,ed25519}.{envelope.json,pub.pem}. Lineage must verify these.

  verify ENVELOPE PUBPEM KEYID
      Verifies a Lineage-written envelope with securesystemslib.dsse.Envelope.verify, using the
      public key in PUBPEM under KEYID (securesystemslib only tries keys whose keyid matches the
      signature's). Prints the verified keyids as JSON; exits 1 on VerificationError.

  load-key PEM PASSPHRASE
      Loads a Lineage encrypted PKCS#8 key with pyca/cryptography (OpenSSL's reader), signs a
      DSSE envelope with it through securesystemslib, and prints the envelope JSON, proving the
      key file is readable by other tools.

  bench ENVELOPE PUBPEM KEYID SECONDS
      Measures securesystemslib's verify rate on one envelope; prints {"per_sec": N}.
"""

import json
import sys
import time

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import CryptoSigner, SSlibKey

PAYLOAD_TYPE = "application/vnd.in-toto+json"


def public_pem(private_key) -> bytes:
    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def scheme_for(public_key) -> str:
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return "ecdsa-sha2-nistp256"
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "ed25519"
    raise SystemExit(f"unsupported key type {type(public_key)}")


def sign(outdir: str) -> None:
    for name, private_key in (
        ("ecdsa", ec.generate_private_key(ec.SECP256R1())),
        ("ed25519", ed25519.Ed25519PrivateKey.generate()),
    ):
        signer = CryptoSigner(private_key)
        payload = json.dumps(
            {
                "_type": "https://in-toto.io/Statement/v1",
                "subject": [{"name": "interop", "digest": {"sha256": "00" * 32}}],
                "predicateType": "https://example.com/interop/v1",
                "predicate": {"signedBy": "securesystemslib", "key": name},
            }
        ).encode()
        envelope = Envelope(payload=payload, payload_type=PAYLOAD_TYPE, signatures={})
        envelope.sign(signer)
        with open(f"{outdir}/{name}.envelope.json", "w") as f:
            json.dump(envelope.to_dict(), f)
        with open(f"{outdir}/{name}.pub.pem", "wb") as f:
            f.write(public_pem(private_key))


def load_key(pem_path: str, keyid: str):
    with open(pem_path, "rb") as f:
        public_key = serialization.load_pem_public_key(f.read())
    return SSlibKey.from_crypto(public_key, keyid=keyid, scheme=scheme_for(public_key))


def verify(envelope_path: str, pem_path: str, keyid: str) -> None:
    with open(envelope_path) as f:
        envelope = Envelope.from_dict(json.load(f))
    key = load_key(pem_path, keyid)
    try:
        accepted = envelope.verify([key], 1)
    except VerificationError as e:
        print(json.dumps({"verified": False, "error": str(e)}))
        sys.exit(1)
    print(json.dumps({"verified": True, "keyids": sorted(accepted)}))


def load_encrypted(pem_path: str, passphrase: str) -> None:
    with open(pem_path, "rb") as f:
        private_key = serialization.load_pem_private_key(f.read(), passphrase.encode())
    signer = CryptoSigner(private_key)
    envelope = Envelope(payload=b"signed with a Lineage key file", payload_type=PAYLOAD_TYPE, signatures={})
    envelope.sign(signer)
    print(json.dumps(envelope.to_dict()))


def bench(envelope_path: str, pem_path: str, keyid: str, seconds: float) -> None:
    with open(envelope_path) as f:
        data = json.load(f)
    key = load_key(pem_path, keyid)
    # Parse each time, as a verifier of a file would; copy because from_dict mutates.
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        envelope = Envelope.from_dict(json.loads(json.dumps(data)))
        envelope.verify([key], 1)
        n += 1
    elapsed = time.perf_counter() - start
    print(json.dumps({"per_sec": n / elapsed, "count": n}))


def main() -> None:
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "sign" and len(sys.argv) == 3:
        sign(sys.argv[2])
    elif cmd == "verify" and len(sys.argv) == 5:
        verify(sys.argv[2], sys.argv[3], sys.argv[4])
    elif cmd == "load-key" and len(sys.argv) == 4:
        load_encrypted(sys.argv[2], sys.argv[3])
    elif cmd == "bench" and len(sys.argv) == 6:
        bench(sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
