"""Content Credentials (C2PA): sign our outputs and read the credentials of any file, with ``c2pa-python``.

What it does: creates, on first use, a signing key and a small certificate chain (a self-signed
"root" and a signing certificate issued by it; c2pa refuses a lone self-signed certificate) in the
user's config directory, files with mode 0600; writes a manifest into PNG, JPEG, MP4, WAV (and MP3)
files saying the studio created them with a trained model (IPTC digital source type
``trainedAlgorithmicMedia``), with the model and engine names and, for twin videos, that consent was
given; reads a file's manifest back and sorts it into valid / tampered / invalid / absent.

What it does not: prove who the studio is. A self-signed certificate is on no trust list, so other
viewers show the credentials as "unknown signer"; see the README ("Content Credentials") for using a
certificate from a C2PA-trusted authority (set AIGC_C2PA_CERT and AIGC_C2PA_KEY).

Where the key lives: ``$AIGC_PROVENANCE_DIR`` when set (tests use a temporary folder), else the
platform's user config directory (``~/.config/aigc-studio/provenance`` on Linux).
"""
from __future__ import annotations

import datetime as dt
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STUDIO = "AIGC Digital-Twin Studio"
STUDIO_VERSION = "1.0"
TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
GENERATION_LABEL = "org.aigc-studio.generation"  # our own assertion: model, engine, output id, consent
KEY_DIR_ENV = "AIGC_PROVENANCE_DIR"
CERT_ENV, KEY_ENV = "AIGC_C2PA_CERT", "AIGC_C2PA_KEY"  # a real certificate chain (PEM) and its key
ALG_ENV = "AIGC_C2PA_ALG"  # its algorithm when not ES256 (es384, es512, ps256, ps384, ps512, ed25519)

MIME_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".mp4": "video/mp4",
              ".m4v": "video/mp4", ".mov": "video/quicktime", ".wav": "audio/wav", ".mp3": "audio/mpeg",
              ".webp": "image/webp", ".gif": "image/gif", ".tif": "image/tiff", ".tiff": "image/tiff",
              ".flac": "audio/flac", ".m4a": "audio/mp4", ".avif": "image/avif", ".heic": "image/heic"}
SIGNABLE = (".png", ".jpg", ".jpeg", ".mp4", ".wav", ".mp3", ".gif")

# c2pa validation codes that mean "the content changed after signing"; the other failures (an edited
# assertion, a signature that does not verify) mean the manifest itself is forged or broken: "invalid"
_TAMPER_CODES = ("assertion.dataHash.mismatch", "assertion.bmffHash.mismatch", "assertion.boxesHash.mismatch",
                 "assertion.collectionHash.mismatch")
# informational: a self-signed certificate is on no trust list; that says nothing about tampering
_UNTRUSTED_CODES = ("signingCredential.untrusted",)

_lock = threading.Lock()


def key_dir() -> Path:
    override = os.environ.get(KEY_DIR_ENV)
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir("aigc-studio", appauthor=False)) / "provenance"


# ---------------------------------------------------------------- key and certificates
def _write_private(path: Path, data: bytes) -> None:
    """Create ``path`` readable by its owner only (0600) from the start: never world-readable, even briefly."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o600)


def create_signing_identity(folder: Path) -> tuple[Path, Path]:
    """A P-256 root certificate and a signing certificate issued by it; returns (chain.pem, signing.key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, STUDIO),
                           x509.NameAttribute(NameOID.COMMON_NAME, f"{STUDIO} local root (self-signed)")])
    root = (x509.CertificateBuilder().subject_name(root_name).issuer_name(root_name)
            .public_key(root_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, STUDIO),
                      x509.NameAttribute(NameOID.COMMON_NAME, f"{STUDIO} content signer")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(root_name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA256()))
    chain = cert.public_bytes(serialization.Encoding.PEM) + root.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    chain_path, key_path = folder / "chain.pem", folder / "signing.key"
    _write_private(key_path, key_pem)
    _write_private(chain_path, chain)
    # The root's own key is not kept: nothing else is ever issued from it.
    return chain_path, key_path


def signing_identity() -> tuple[Path, Path]:
    """(certificate chain, private key): AIGC_C2PA_CERT/AIGC_C2PA_KEY when set, else ours (made on first use)."""
    if os.environ.get(CERT_ENV) and os.environ.get(KEY_ENV):
        return Path(os.environ[CERT_ENV]), Path(os.environ[KEY_ENV])
    folder = key_dir()
    chain, key = folder / "chain.pem", folder / "signing.key"
    with _lock:
        if not (chain.is_file() and key.is_file()):
            chain, key = create_signing_identity(folder)
    return chain, key


def _context():
    """c2pa settings: no thumbnail in the manifest (making one takes ~0.35 s per image, 10x the rest of
    signing; viewers show the file itself)."""
    import c2pa

    return c2pa.Context.from_dict({"builder": {"thumbnail": {"enabled": False}}})


def _signer():
    import c2pa

    chain, key = signing_identity()
    alg = os.environ.get(ALG_ENV, "es256") if os.environ.get(CERT_ENV) else "es256"
    info = c2pa.C2paSignerInfo(alg.encode(), chain.read_bytes(), key.read_bytes(), None)
    return c2pa.Signer.from_info(info)


# ---------------------------------------------------------------- signing
def manifest_definition(*, title: str, fmt: str, model: str, engine: str, output_id: str | None,
                        consent: str | None = None, parameters: dict[str, Any] | None = None) -> dict:
    generation = {"model": model, "engine": engine, "studio": STUDIO, "ai_generated": True}
    if output_id:
        generation["output_id"] = output_id
    if consent:
        generation["consent"] = consent
    if parameters:
        generation["parameters"] = _json_safe(parameters)
    return {
        "claim_generator_info": [{"name": STUDIO, "version": STUDIO_VERSION}],
        "title": title,
        "format": fmt,
        "assertions": [
            {"label": "c2pa.actions.v2",
             "data": {"actions": [{"action": "c2pa.created", "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
                                   "softwareAgent": {"name": f"{STUDIO} ({engine})"},
                                   "parameters": {"model": model, "engine": engine}}]}},
            {"label": GENERATION_LABEL, "data": generation},
        ],
    }


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, ensure_ascii=False, default=str))


def sign_file(path: Path, *, model: str, engine: str, output_id: str | None = None, consent: str | None = None,
              parameters: dict[str, Any] | None = None, title: str | None = None) -> None:
    """Embed a signed manifest in ``path`` (rewritten in place through a temporary file beside it)."""
    import c2pa

    path = Path(path)
    suffix = path.suffix.lower()
    fmt = MIME_TYPES.get(suffix)
    if suffix not in SIGNABLE or fmt is None:
        raise ValueError(f"cannot sign {suffix or 'extension-less'} files")
    definition = manifest_definition(title=title or path.name, fmt=fmt, model=model, engine=engine,
                                     output_id=output_id, consent=consent, parameters=parameters)
    signed = path.with_name(f".{path.stem}.signing{path.suffix}")
    try:
        with _signer() as signer, c2pa.Builder(definition, context=_context()) as builder:
            with open(path, "rb") as source, open(signed, "w+b") as dest:
                builder.sign(signer, fmt, source, dest)
        os.replace(signed, path)
    finally:
        signed.unlink(missing_ok=True)


# ---------------------------------------------------------------- reading
@dataclass
class Credentials:
    """What a file's Content Credentials say. ``status``: valid | tampered | invalid | absent."""

    status: str
    claim_generator: str = ""
    signer: str = ""
    signed_at: str = ""
    trusted: bool = False  # the signer is on a C2PA trust list (never for our self-signed key)
    actions: list[dict] = field(default_factory=list)
    digital_source_type: str = ""
    generation: dict = field(default_factory=dict)  # our assertion, when the studio made the file
    problems: list[str] = field(default_factory=list)  # c2pa's failure codes and explanations
    error: str = ""  # why the manifest could not be read at all (forged / corrupt)

    @property
    def ai_generated(self) -> bool:
        return self.digital_source_type.endswith(("trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia",
                                                  "algorithmicMedia"))


def read_credentials(path: Path, mime: str | None = None) -> Credentials:
    """The Content Credentials embedded in ``path`` (absent when there are none); ``mime`` overrides the
    type guessed from the extension (the checker sniffs the bytes)."""
    import c2pa

    path = Path(path)
    fmt = mime or MIME_TYPES.get(path.suffix.lower())
    if fmt is None:
        return Credentials("absent")
    try:
        with open(path, "rb") as stream:
            reader = c2pa.Reader(fmt, stream)
            with reader:
                store = json.loads(reader.json())
    except Exception as exc:  # noqa: BLE001 - c2pa raises its own error types for every kind of failure
        text = str(exc)
        if "ManifestNotFound" in type(exc).__name__ or "no JUMBF" in text or "not found" in text.lower():
            return Credentials("absent")
        if "NotSupported" in type(exc).__name__:
            return Credentials("absent")
        return Credentials("invalid", error=text[:300])
    return _credentials_from_store(store)


def _credentials_from_store(store: dict) -> Credentials:
    active = store.get("manifests", {}).get(store.get("active_manifest", ""), {})
    codes = [(item.get("code", ""), item.get("explanation", "")) for item in store.get("validation_status") or []]
    results = store.get("validation_results", {}).get("activeManifest", {})
    codes += [(item.get("code", ""), item.get("explanation", "")) for item in results.get("failure", [])]
    failures = sorted({(c, e) for c, e in codes if c and c not in _UNTRUSTED_CODES})
    if not active:
        status = "invalid"
    elif any(c in _TAMPER_CODES for c, _ in failures):
        status = "tampered"
    elif failures:
        status = "invalid"
    else:
        status = "valid"
    actions, generation = [], {}
    for assertion in active.get("assertions", []):
        label = assertion.get("label", "")
        if label.startswith("c2pa.actions"):
            actions += assertion.get("data", {}).get("actions", [])
        elif label == GENERATION_LABEL:
            generation = assertion.get("data", {})
    source_type = next((a.get("digitalSourceType", "") for a in actions if a.get("digitalSourceType")), "")
    info = active.get("claim_generator_info") or [{}]
    generator = active.get("claim_generator") or " ".join(str(info[0].get(k, "")) for k in ("name", "version")).strip()
    signature = active.get("signature_info", {})
    trusted = store.get("validation_state", "").lower() == "trusted"
    return Credentials(status=status, claim_generator=generator, signer=signature.get("common_name")
                       or signature.get("issuer", ""), signed_at=signature.get("time", ""), trusted=trusted,
                       actions=actions, digital_source_type=source_type, generation=generation,
                       problems=[f"{c}: {e}" if e else c for c, e in failures])
