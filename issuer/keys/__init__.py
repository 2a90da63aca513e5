"""The issuer's keys: signing keys on disk and their life cycle, the data key that seals personal data, and the
signed checkpoints that anchor the audit chain outside the database."""

from issuer.keys.checkpoints import Anchor, AuditVerdict, Ticker, verify_audit
from issuer.keys.sealing import Sealer, load_sealer, save_sealer
from issuer.keys.signing_keys import (
    ActiveKey,
    create_root_key,
    create_signing_key,
    load_active_key,
    root_signing_key,
    rotate,
    trust_entries,
)

__all__ = [
    "ActiveKey",
    "Anchor",
    "AuditVerdict",
    "Sealer",
    "Ticker",
    "create_root_key",
    "create_signing_key",
    "load_active_key",
    "load_sealer",
    "root_signing_key",
    "rotate",
    "save_sealer",
    "trust_entries",
    "verify_audit",
]
