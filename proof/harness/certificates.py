"""Certificates for stand-ins (a Compose baseline, a proxy in front of a stack), made as the
program's pulumi-tls resources make them."""

from __future__ import annotations

from proof.provider.handlers.tls import tls_resource


def ca_and_server(hosts: list[str], name: str = "bench") -> tuple[str, str]:
    """(CA certificate, server certificate + key) made as the program's pulumi-tls resources make them."""
    _, ca_key = tls_resource("tls:index/privateKey:PrivateKey", {"algorithm": "ECDSA", "ecdsaCurve": "P256"})
    _, ca = tls_resource(
        "tls:index/selfSignedCert:SelfSignedCert",
        {
            "privateKeyPem": ca_key["privateKeyPem"],
            "subject": {"commonName": f"{name} CA"},
            "isCaCertificate": True,
            "validityPeriodHours": 24,
            "allowedUses": ["cert_signing"],
        },
    )
    _, key = tls_resource("tls:index/privateKey:PrivateKey", {"algorithm": "ECDSA", "ecdsaCurve": "P256"})
    _, csr = tls_resource(
        "tls:index/certRequest:CertRequest",
        {"privateKeyPem": key["privateKeyPem"], "subject": {"commonName": hosts[0]}, "dnsNames": hosts},
    )
    _, server = tls_resource(
        "tls:index/locallySignedCert:LocallySignedCert",
        {
            "certRequestPem": csr["certRequestPem"],
            "caPrivateKeyPem": ca_key["privateKeyPem"],
            "caCertPem": ca["certPem"],
            "validityPeriodHours": 24,
            "allowedUses": ["digital_signature", "server_auth"],
        },
    )
    return ca["certPem"], server["certPem"] + key["privateKeyPem"]
