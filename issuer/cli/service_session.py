"""The service a command works on: opened on the configured database, closed after, and the audit
checkpoint signed anew when the command may have written."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from issuer.cli.support import print_warning
from issuer.errors import CheckpointRefused, IssuerError, bilingual
from issuer.opening import open_storage
from issuer.service import IssuerService
from issuer.settings import Settings
from issuer.signing_health import require_initialised
from suishenma import SuishenmaError

CLI_ACTOR = "cli"


@contextmanager
def open_service(settings: Settings, *, anchor: bool = True, create: bool = False) -> Iterator[IssuerService]:
    """The service on the configured database; after a command that may have written, a fresh signed
    checkpoint of the audit head (a failure to sign one is a warning: the change itself is done).

    Raises:
        NotInitialised: no database here and ``create`` is false (a mistyped ``--dir`` makes nothing).
    """
    if not create:
        require_initialised(settings)
    service = IssuerService(settings, open_storage(settings, create=create))
    try:
        yield service
        if anchor:
            write_checkpoint(service)
    finally:
        service.storage.close()


def write_checkpoint(service: IssuerService) -> None:
    try:
        service.anchor.write(int(time.time()))
    except CheckpointRefused as exc:
        print_warning(f"审计检查点被拒绝：{exc}", f"audit checkpoint refused: {exc}")
    except (IssuerError, SuishenmaError, OSError) as exc:
        zh, en = bilingual(exc)
        print_warning(
            f"审计检查点未更新（{zh}）；服务器或下一条命令会更新它",
            f"the audit checkpoint was not updated ({en}); the server or the next command will",
        )
