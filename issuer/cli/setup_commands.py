"""``init`` (a new issuer folder, or one that joins a shared root) and ``serve``."""

from __future__ import annotations

import argparse
import logging
import logging.config
import os
import time

from issuer.cli.log_format import log_config
from issuer.cli.service_session import CLI_ACTOR, open_service
from issuer.cli.support import print_json
from issuer.keys.signing_keys import create_root_key, create_signing_key, token_ref
from issuer.lists.federation import join_root, remember_identity
from issuer.opening import data_sealer, open_storage
from issuer.settings import Settings
from issuer.signing_health import check_can_sign, require_initialised
from suishenma import Alg


def cmd_init(settings: Settings, args: argparse.Namespace) -> int:
    """Raises: InputError (a ``--signing-key`` that is not a usable ``pkcs11:`` URI), KeyUnusable (its token
    cannot be used), KeyFileError."""
    now = int(time.time())
    token = token_ref(args.signing_key) if args.signing_key else None
    alg = Alg[args.alg] if args.alg else Alg.ES256 if token else Alg.EdDSA
    with open_service(settings, create=True) as service:
        existing = service.storage.signing_keys()
        if existing:
            if args.json:
                print_json({"already_initialised": True, "database": str(settings.db_path), "kid": existing[-1].kid})
            else:
                print(f"already initialised: {settings.db_path} (signing key {existing[-1].kid})")
            return 0
        root = join_root(settings, args.root_pub) if args.root_pub else None
        kid = create_signing_key(settings, service.storage, now, CLI_ACTOR, alg, token)
        service.pseudonym_keys(now)  # keys/pseudonym.key, beside data.key
        remember_identity(settings)
        if root is None:
            root = create_root_key(settings)
            trust_version: int | None = service.publisher.trust_list(now, force=True, actor=CLI_ACTOR).version
        else:  # the shared root signs this region's first list: request, sign offline, import
            trust_version = None
        status = service.publisher.status_list(now, actor=CLI_ACTOR)
        key_file = None if token else settings.keys_path / f"issuer-{kid}.key"
        where = service.storage.signing_keys()[-1].path if token else str(key_file)
        if args.json:
            print_json(
                {
                    "already_initialised": False,
                    "database": str(settings.db_path),
                    "issuer_id": settings.issuer_id,
                    "kid": kid,
                    "key_file": str(key_file) if key_file else None,
                    "signing_key": where,
                    "root_key": str(root),
                    "joined_root": bool(args.root_pub),
                    "trust_list_version": trust_version,
                    "status_list_version": status.version,
                }
            )
            return 0
        print(f"database      {settings.db_path}")
        print(f"issuer        {settings.issuer_id}, signing key {kid} in {where}")
        if args.root_pub:
            print(f"root key      {root} pinned (the shared root stays offline)")
            print(f"status list   version {status.version}; no trust list yet: set public_url, then")
            print("              `trust-list request`, the root signs it with the others'; then `trust-list import`")
            return 0
        print(f"root key      {root} (development only: keep the production root offline)")
        print(f"trust list    version {trust_version}; status list version {status.version}")
        return 0


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    """Refuses to start (exit 1, the cause in both languages) when the issuer could not sign."""
    import uvicorn

    from issuer.http.app import SERVE_SETTINGS_ENV, create_app
    from issuer.http.worker_metrics import METRICS_DIR_ENV, ServeFolder, metrics_root

    require_initialised(settings)
    storage = open_storage(settings, private_data=False)
    try:
        check_can_sign(settings, storage)
        storage.sealer = data_sealer(settings)
    except BaseException:
        storage.close()
        raise
    config = log_config("INFO", args.access_log)
    logging.config.dictConfig(config)
    logging.captureWarnings(True)
    options = {"host": args.host, "port": args.port, "access_log": args.access_log, "log_config": config}
    if args.workers == 1:
        uvicorn.run(create_app(settings, storage), **options)
        return 0
    # Each worker process builds its own app (``app.app_from_environment``) from these settings.
    storage.close()
    os.environ[SERVE_SETTINGS_ENV] = settings.model_dump_json()
    # The workers share their counters through a folder of this serve alone, new (a restart is a counter
    # reset) and removed when uvicorn returns, also when it could not bind; no other serve touches it.
    with ServeFolder.create(metrics_root(settings)) as folder:
        os.environ[METRICS_DIR_ENV] = str(folder.path)
        uvicorn.run("issuer.http.app:app_from_environment", factory=True, workers=args.workers, **options)
    return 0


def workers_count(text: str) -> int:
    n = int(text)
    if not 1 <= n <= 64:
        raise argparse.ArgumentTypeError("must be between 1 and 64")
    return n
