"""Federation: regions join one offline root, and one trust list is signed for all of them (issue: regions)."""

from __future__ import annotations

import contextlib
import io
import json
import time
from pathlib import Path

import pytest

from issuer.cli import main
from suishenma import SigningKey, load_verification_key, parse_trust_list, write_key_pair

URLS = {"SH": "https://sh.example.cn", "JS": "https://js.example.cn"}


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    """The shared root, kept offline: its private key in one folder, its public key handed to regions."""
    offline = tmp_path / "offline"
    offline.mkdir()
    write_key_pair(SigningKey.generate(), offline / "root")
    return offline


def cli(home: Path, *args: str, monkeypatch: pytest.MonkeyPatch, region: str | None = None) -> int:
    if region:
        monkeypatch.setenv("SUISHENMA_ISSUER_PUBLIC_URL", URLS[region])
    else:
        monkeypatch.delenv("SUISHENMA_ISSUER_PUBLIC_URL", raising=False)
    with contextlib.redirect_stdout(io.StringIO()):
        return main(["--dir", str(home), *args])


def join(tmp_path: Path, root: Path, region: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / region
    assert cli(home, "init", "--issuer-id", region, "--root-pub", str(root / "root.pub"), monkeypatch=monkeypatch) == 0
    return home


def request(home: Path, region: str, monkeypatch: pytest.MonkeyPatch, name: str | None = None) -> Path:
    out = home.parent / (name or f"{region}.json")
    assert cli(home, "trust-list", "request", "--out", str(out), monkeypatch=monkeypatch, region=region) == 0
    return out


def sign(root: Path, out: Path, *requests: Path) -> int:
    args = ["trust-list", "sign", "--root-key", str(root / "root.key"), "--out", str(out)]
    for r in requests:
        args += ["--request", str(r)]
    with contextlib.redirect_stdout(io.StringIO()):
        return main(args)


def test_init_remembers_the_issuer_id_and_joins_the_root_without_a_root_key(
    tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = join(tmp_path, root, "JS", monkeypatch)
    assert not (home / "keys" / "root.key").exists()
    assert load_verification_key(home / "keys/root.pub").kid == load_verification_key(root / "root.pub").kid
    req = json.loads(request(home, "JS", monkeypatch).read_text())
    # not given again: later commands are JS because init said so
    assert req["issuer"] == "JS" and {e["issuer"] for e in req["entries"]} == {"JS"}
    assert req["entries"][0]["status_uri"] == "https://js.example.cn/v1/status-lists/JS"
    monkeypatch.setenv("SUISHENMA_ISSUER_ISSUER_ID", "SH")  # the wrong region's settings on this folder
    assert cli(home, "trust-list", "request", "--out", str(tmp_path / "x.json"), monkeypatch=monkeypatch) == 2
    assert "this folder belongs to issuer JS" in capsys.readouterr().err


def test_one_list_for_two_regions_is_imported_by_both(
    tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sh, js = join(tmp_path, root, "SH", monkeypatch), join(tmp_path, root, "JS", monkeypatch)
    signed = tmp_path / "trust.cwt"
    assert sign(root, signed, request(sh, "SH", monkeypatch), request(js, "JS", monkeypatch)) == 0
    trust = parse_trust_list(signed.read_bytes(), load_verification_key(root / "root.pub"), now=int(time.time()))
    assert trust.issuer_ids() == ["SH", "JS"] and trust.version == 1
    assert {e.status_uri for e in trust.issuers} == {f"{URLS[r]}/v1/status-lists/{r}" for r in URLS}
    for home, region in ((sh, "SH"), (js, "JS")):
        assert cli(home, "trust-list", "import", str(signed), monkeypatch=monkeypatch, region=region) == 0
    # the next round grows the version; leaving JS out removes that region, and JS cannot import it
    assert sign(root, signed, request(sh, "SH", monkeypatch)) == 0
    assert (
        parse_trust_list(signed.read_bytes(), load_verification_key(root / "root.pub"), now=int(time.time())).version
        == 2
    )
    assert cli(sh, "trust-list", "import", str(signed), monkeypatch=monkeypatch, region="SH") == 0
    assert cli(js, "trust-list", "import", str(signed), monkeypatch=monkeypatch, region="JS") == 1


def test_tampered_request_is_refused(
    tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sh, js = join(tmp_path, root, "SH", monkeypatch), join(tmp_path, root, "JS", monkeypatch)
    req = request(js, "JS", monkeypatch)
    # someone on the way points JS's status list at a host of their own
    req.write_text(req.read_text().replace("https://js.example.cn", "https://evil.example"))
    assert sign(root, tmp_path / "t.cwt", request(sh, "SH", monkeypatch), req) == 1
    assert "was changed after its issuer made it" in capsys.readouterr().err
    # or swaps in a key of their own: the proof was not made by it
    data = json.loads(request(js, "JS", monkeypatch).read_text())
    forged = SigningKey.generate()
    data["entries"][0].update(kid=forged.kid.hex(), public_key=forged.public().pem().decode())
    req.write_text(json.dumps(data))
    assert sign(root, tmp_path / "t.cwt", req) == 1
    assert "was changed after its issuer made it" in capsys.readouterr().err
    assert not (tmp_path / "t.cwt").exists()


def test_duplicated_request_or_issuer_already_present_is_refused(
    tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sh = join(tmp_path, root, "SH", monkeypatch)
    req = request(sh, "SH", monkeypatch)
    assert sign(root, tmp_path / "t.cwt", req, req) == 1
    assert "already present" in capsys.readouterr().err
    other = tmp_path / "other"  # a second issuer claiming the id SH
    assert cli(other, "init", "--issuer-id", "SH", "--root-pub", str(root / "root.pub"), monkeypatch=monkeypatch) == 0
    assert sign(root, tmp_path / "t.cwt", req, request(other, "SH", monkeypatch, "other.json")) == 1
    assert "is for issuer SH, already present" in capsys.readouterr().err


def test_federated_list_needs_absolute_status_urls(
    tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sh, js = join(tmp_path, root, "SH", monkeypatch), join(tmp_path, root, "JS", monkeypatch)
    relative = tmp_path / "js-relative.json"
    assert cli(js, "trust-list", "request", "--out", str(relative), monkeypatch=monkeypatch) == 0  # no public_url
    assert sign(root, tmp_path / "t.cwt", request(sh, "SH", monkeypatch), relative) == 1
    assert "is not absolute; set public_url" in capsys.readouterr().err


def test_import_refuses_a_list_that_moves_this_issuers_status_list(
    tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sh = join(tmp_path, root, "SH", monkeypatch)
    signed = tmp_path / "trust.cwt"
    assert sign(root, signed, request(sh, "SH", monkeypatch)) == 0
    monkeypatch.setenv("SUISHENMA_ISSUER_PUBLIC_URL", "https://moved.example.cn")
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["--dir", str(sh), "trust-list", "import", str(signed)]) == 1
    assert "publishes its status list at 'https://sh.example.cn/v1/status-lists/SH'" in capsys.readouterr().err


def test_join_refuses_a_folder_pinned_to_another_root(
    tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "dev"
    assert cli(home, "init", monkeypatch=monkeypatch) == 0  # its own development root
    assert (home / "keys" / "root.key").exists()
    fresh = tmp_path / "fresh"
    (fresh / "keys").mkdir(parents=True)
    write_key_pair(SigningKey.generate(), fresh / "keys" / "root")
    (fresh / "keys" / "root.key").unlink()  # pinned to some other root, no private key
    assert cli(fresh, "init", "--root-pub", str(root / "root.pub"), monkeypatch=monkeypatch) == 1
    assert "pins another root" in capsys.readouterr().err
