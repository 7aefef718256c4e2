"""One-shot job (runs in LEO's image, which has `cryptography`): the certificates for mTLS to
Temporal's frontend, made at the first start and kept in volumes.

    python make-certs.py SERVER_DIR WORKER_DIR TOOLS_DIR

- SERVER_DIR (mounted only into `temporal`): ca.pem, server.pem, server.key. The server's
  certificate names `temporal`, `localhost` and 127.0.0.1.
- WORKER_DIR (mounted only into the workers): ca.pem, client.pem, client.key; the key is 0600
  and belongs to root, the worker's user, so no agent (LEO_AGENT_USER) can read it.
- TOOLS_DIR (mounted only into the admin-tools jobs and the Web UI, which run as their images'
  own users): ca.pem, tools.pem, tools.key.

Every certificate is signed by a CA made here whose private key is never written: nothing can
sign another client later. If all files exist already, nothing is changed (a restart); if only
some do (an interrupted first start), all are made again. To rotate, remove the three volumes.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_DAYS = 3650
SERVER_NAMES = ("temporal", "localhost")


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _builder(
    subject: str, issuer: x509.Name, public: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
    )


def make(server_dir: Path, worker_dir: Path, tools_dir: Path) -> dict[str, Path]:
    """Write the certificates (see the module's text); returns every file written or kept."""
    files = {
        "server_ca": server_dir / "ca.pem",
        "server_cert": server_dir / "server.pem",
        "server_key": server_dir / "server.key",
        "worker_ca": worker_dir / "ca.pem",
        "worker_cert": worker_dir / "client.pem",
        "worker_key": worker_dir / "client.key",
        "tools_ca": tools_dir / "ca.pem",
        "tools_cert": tools_dir / "tools.pem",
        "tools_key": tools_dir / "tools.key",
    }
    if all(path.is_file() and path.stat().st_size for path in files.values()):
        return files
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("LEO compose Temporal CA")
    ca = (
        _builder("LEO compose Temporal CA", ca_name, ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(
        common: str, usages: list[x509.ObjectIdentifier], names: tuple[str, ...] = ()
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = _builder(common, ca_name, key.public_key()).add_extension(
            x509.ExtendedKeyUsage(usages), critical=False
        )
        if names:
            alt: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
            alt.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
            builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
        return builder.sign(ca_key, hashes.SHA256()), key

    client = [ExtendedKeyUsageOID.CLIENT_AUTH]
    # The server's certificate also serves its own services as clients of each other.
    server, server_key = leaf("temporal", [ExtendedKeyUsageOID.SERVER_AUTH, *client], SERVER_NAMES)
    worker, worker_key = leaf("leo-worker", client)
    tools, tools_key = leaf("temporal-tools", client)
    ca_pem = _pem_cert(ca)
    writes = [
        (files["server_ca"], ca_pem, 0o644),
        (files["server_cert"], _pem_cert(server), 0o644),
        # Read by the server image's own user; the volume is mounted nowhere else.
        (files["server_key"], _pem_key(server_key), 0o644),
        (files["worker_ca"], ca_pem, 0o644),
        (files["worker_cert"], _pem_cert(worker), 0o644),
        (files["worker_key"], _pem_key(worker_key), 0o600),  # root's: agents cannot read it
        (files["tools_ca"], ca_pem, 0o644),
        (files["tools_cert"], _pem_cert(tools), 0o644),
        (files["tools_key"], _pem_key(tools_key), 0o644),  # as the server's key
    ]
    for path, data, mode in writes:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, mode)  # not narrowed by the umask
        tmp.replace(path)
    return files


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: make-certs.py SERVER_DIR WORKER_DIR TOOLS_DIR")
    written = make(*(Path(arg) for arg in sys.argv[1:]))
    print(f"Temporal mTLS certificates in place: {', '.join(str(p) for p in written.values())}")
