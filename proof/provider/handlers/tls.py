"""pulumi-tls's keys, requests and certificates, made here as hashicorp/terraform-provider-tls makes
them (with `cryptography`); their Read returns the state as it is."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from proof import provider
from proof.provider import NotModelled
from proof.provider.handlers.base import Docker, Handler, Resource, refuse_unknown


class TlsHandler(Handler):
    types = tuple(sorted(provider.TLS_TYPES))

    def check(self, type_token: str, inputs: dict[str, Any], engine: Docker) -> dict[str, Any]:
        refuse_unknown("input", inputs, set(provider.FIELDS[type_token]))
        return inputs

    def create(self, resource: Resource, inputs: dict[str, Any], engine: Docker) -> tuple[str, dict[str, Any]]:
        return tls_resource(resource.type, inputs)


_USES = {
    "digital_signature": "digital_signature",
    "key_encipherment": "key_encipherment",
    "cert_signing": "key_cert_sign",
    "crl_signing": "crl_sign",
}


def tls_resource(type_token: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Make the key, request or certificate a pulumi-tls resource makes, with `cryptography`."""
    pem = serialization.Encoding.PEM

    def load_key(text: str) -> Any:
        return serialization.load_pem_private_key(text.encode(), password=None)

    def subject(block: dict[str, Any] | None) -> x509.Name:
        block = block or {}
        names = [x509.NameAttribute(NameOID.COMMON_NAME, block["commonName"])] if block.get("commonName") else []
        if block.get("organization"):
            names.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, block["organization"]))
        return x509.Name(names)

    def certificate(
        name: x509.Name, issuer: x509.Name, public_key: Any, signer: Any, spec: dict[str, Any], dns: list[str]
    ) -> tuple[str, dict[str, Any]]:
        now = datetime.now(UTC)
        end = now + timedelta(hours=int(spec["validityPeriodHours"]))
        uses = set(spec.get("allowedUses") or [])
        usage = {v: k in uses for k, v in _USES.items()}
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=bool(spec.get("isCaCertificate")), path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    content_commitment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                    **usage,
                ),
                critical=True,
            )  # fmt: skip
        )
        if "server_auth" in uses:
            builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        if dns:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]), critical=False)
        cert = builder.sign(signer, hashes.SHA256())
        state = {
            **inputs,
            "certPem": cert.public_bytes(pem).decode(),
            "validityStartTime": now.isoformat(),
            "validityEndTime": end.isoformat(),
            "readyForRenewal": False,
        }
        return str(cert.serial_number), state

    if type_token == provider.PRIVATE_KEY:
        algorithm = inputs.get("algorithm")
        if algorithm == "ECDSA" and inputs.get("ecdsaCurve", "P224") == "P256":
            key: Any = ec.generate_private_key(ec.SECP256R1())
            private = key.private_bytes(
                pem, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
            )
        elif algorithm == "RSA":
            key = rsa.generate_private_key(public_exponent=65537, key_size=int(inputs.get("rsaBits", 2048)))
            private = key.private_bytes(
                pem, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
            )
        else:
            raise NotModelled(f"private key {algorithm} {inputs.get('ecdsaCurve', '')}")
        public = key.public_key().public_bytes(pem, serialization.PublicFormat.SubjectPublicKeyInfo)
        state = {**inputs, "privateKeyPem": private.decode(), "publicKeyPem": public.decode()}
        return hashlib.sha1(public).hexdigest(), state  # noqa: S324 (an id, as the provider's)
    if type_token == provider.SELF_SIGNED_CERT:
        key = load_key(inputs["privateKeyPem"])
        name = subject(inputs.get("subject"))
        return certificate(name, name, key.public_key(), key, inputs, inputs.get("dnsNames") or [])
    if type_token == provider.CERT_REQUEST:
        key = load_key(inputs["privateKeyPem"])
        dns = inputs.get("dnsNames") or []
        builder = x509.CertificateSigningRequestBuilder().subject_name(subject(inputs.get("subject")))
        if dns:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]), critical=False)
        request = builder.sign(key, hashes.SHA256())
        text = request.public_bytes(pem).decode()
        return hashlib.sha1(text.encode()).hexdigest(), {**inputs, "certRequestPem": text}  # noqa: S324
    request = x509.load_pem_x509_csr(inputs["certRequestPem"].encode())
    ca = x509.load_pem_x509_certificate(inputs["caCertPem"].encode())
    san = request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    dns = san.get_values_for_type(x509.DNSName)
    return certificate(
        request.subject, ca.subject, request.public_key(), load_key(inputs["caPrivateKeyPem"]), inputs, dns
    )
