"""Federation: regions join one offline root, and one trust list is signed for all of them (issue: regions)."""

from __future__ import annotations

import contextlib
import io
import json
import time
from pathlib import Path

import pytest

from issuer.cli import main
from issuer.errors import InputError, Problem
from issuer.lists import merge_requests, plan_signing, sign_plan
from issuer.lists.federation import add_proof
from suishenma import (
    SigningKey,
    load_signing_key,
    load_verification_key,
    parse_trust_list,
    sign_trust_list,
    write_key_pair,
)

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


def kids_of(*requests: Path) -> str:
    """``--expect``'s value for these requests: every key id they list, as each region reads them out to the
    root's operator over another channel."""
    entries = [e for r in requests for e in json.loads(r.read_text())["entries"]]
    return ",".join(f"{e['issuer']}={e['kid']}" for e in entries)


def sign_out(
    root: Path, out: Path, *requests: Path, expect: str | None = None, current: Path | None = None
) -> tuple[int, str]:
    """``trust-list sign`` on the offline machine: its exit code and what it printed."""
    args = ["trust-list", "sign", "--root-key", str(root / "root.key"), "--out", str(out)]
    for r in requests:
        args += ["--request", str(r)]
    if expect is not None:
        args += ["--expect", expect]
    if current is not None:
        args += ["--current", str(current)]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        return main(args), printed.getvalue()


def sign(root: Path, out: Path, *requests: Path) -> int:
    """Sign with every key of ``requests`` confirmed by the operator (``--expect``)."""
    return sign_out(root, out, *requests, expect=kids_of(*requests))[0]


def re_signed(path: Path, base: Path, signer: SigningKey, vouchers: tuple[SigningKey, ...] = ()) -> Path:
    """``base`` with its first key swapped for ``signer``'s and its status list moved to the attacker's host,
    signed again by ``signer`` (and vouched for by ``vouchers``): what someone on the way can make."""
    data = {k: v for k, v in json.loads(base.read_text()).items() if k not in ("proof", "vouched_by")}
    data["entries"][0].update(kid=signer.kid.hex(), public_key=signer.public().pem().decode())
    data["entries"][0]["status_uri"] = "https://evil.example/v1/status-lists/JS"
    path.write_text(json.dumps(add_proof(data, signer, vouchers)))
    return path


def joined_with_list_in_force(tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """SH and JS joined, a first list signed for both (``trust.cwt``, version 1) and imported by each."""
    sh, js = join(tmp_path, root, "SH", monkeypatch), join(tmp_path, root, "JS", monkeypatch)
    in_force = tmp_path / "trust.cwt"
    assert sign(root, in_force, request(sh, "SH", monkeypatch), request(js, "JS", monkeypatch)) == 0
    for home, region in ((sh, "SH"), (js, "JS")):
        assert cli(home, "trust-list", "import", str(in_force), monkeypatch=monkeypatch, region=region) == 0
    return sh, js


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


def test_request_re_signed_by_a_swapped_in_key_is_refused_until_its_kid_is_confirmed(
    tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sh, js = joined_with_list_in_force(tmp_path, root, monkeypatch)
    in_force = tmp_path / "trust.cwt"
    # on the way to the root, JS's request gets a key of the attacker's, and a proof made with it
    forged = SigningKey.generate()
    attack = re_signed(tmp_path / "forged.json", request(js, "JS", monkeypatch), forged)
    sh_next, out = request(sh, "SH", monkeypatch), tmp_path / "t.cwt"
    capsys.readouterr()
    code, printed = sign_out(root, out, sh_next, attack, current=in_force)
    assert code == 1 and not out.exists()
    assert f"issuer JS: key {forged.kid.hex()}  新密钥，未确认 / new, NOT confirmed" in printed  # shown before
    err = capsys.readouterr().err
    assert f"new key JS={forged.kid.hex()} is not confirmed" in err and f"--expect JS={forged.kid.hex()}" in err
    assert f"新密钥 JS={forged.kid.hex()} 未经确认" in err
    # the first list too: no list in force, and no confirmation
    assert sign_out(root, out, attack)[0] == 1 and not out.exists()
    # confirming the kid JS reads out does not let the swapped one through
    js_kid = json.loads(request(js, "JS", monkeypatch).read_text())["entries"][0]["kid"]
    assert sign_out(root, out, attack, expect=f"JS={js_kid}", current=in_force)[0] == 1
    assert f"--expect names JS={js_kid}, but no request lists that key" in capsys.readouterr().err
    # nor does a vouch by a key the list trusts for another region (SH's)
    sh_key = load_signing_key(next((sh / "keys").glob("issuer-*.key")))
    vouched_by_sh = re_signed(tmp_path / "sh-vouched.json", request(js, "JS", monkeypatch), forged, (sh_key,))
    assert sign_out(root, out, vouched_by_sh, current=in_force)[0] == 1 and not out.exists()
    # the library's refusal is typed
    trust = parse_trust_list(in_force.read_bytes(), load_verification_key(root / "root.pub"), now=int(time.time()))
    plan = plan_signing(merge_requests([sh_next, attack]), trust, {})
    with pytest.raises(InputError) as refused:
        sign_plan(plan, load_signing_key(root / "root.key"), int(time.time()))
    assert refused.value.problem is Problem.TRUST_LIST_KEY_UNCONFIRMED
    assert plan.keys["SH"] == {json.loads(sh_next.read_text())["entries"][0]["kid"]: "listed"}
    # once the operator has checked the kid with JS, it is theirs to sign
    assert sign_out(root, out, sh_next, attack, expect=f"JS={forged.kid.hex()}", current=in_force)[0] == 0


def test_key_rotation_vouched_for_by_the_region_s_listed_key_needs_no_confirmation(
    tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sh, js = joined_with_list_in_force(tmp_path, root, monkeypatch)
    in_force = tmp_path / "trust.cwt"
    old_kid = json.loads(request(js, "JS", monkeypatch).read_text())["entries"][0]["kid"]
    assert cli(js, "keys", "rotate", monkeypatch=monkeypatch, region="JS") == 0
    rotated = request(js, "JS", monkeypatch)
    data = json.loads(rotated.read_text())
    new_kid = data["proof"]["kid"]
    assert new_kid != old_kid and [v["kid"] for v in data["vouched_by"]] == [old_kid]  # the listed key vouches
    out = tmp_path / "next.cwt"
    sh_next = request(sh, "SH", monkeypatch)
    sh_kid = json.loads(sh_next.read_text())["entries"][0]["kid"]
    code, printed = sign_out(root, out, sh_next, rotated, current=in_force)
    assert code == 0, capsys.readouterr().err
    assert f"issuer SH: key {sh_kid}  已在现行信任列表中 / listed in the trust list in force" in printed
    # the old one's codes expired; the operator sees which listed key vouched
    assert f"issuer JS: key {new_kid}  新密钥，由该地区已受信任的密钥作保" in printed
    assert f"vouched for by the region's trusted key ({old_kid})" in printed
    assert (
        parse_trust_list(out.read_bytes(), load_verification_key(root / "root.pub"), now=int(time.time())).version == 2
    )
    assert cli(js, "trust-list", "import", str(out), monkeypatch=monkeypatch, region="JS") == 0
    # without the list in force the new key is new to the root, and must be confirmed
    assert sign_out(root, tmp_path / "t.cwt", rotated)[0] == 1
    assert f"--expect JS={new_kid}" in capsys.readouterr().err


def test_expect_that_is_not_region_equals_kid_is_a_usage_error(
    tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    req = request(join(tmp_path, root, "SH", monkeypatch), "SH", monkeypatch)
    for bad in ("SH", "SH=xyz", "=0a0b0c0d"):
        assert sign_out(root, tmp_path / "t.cwt", req, expect=bad)[0] == 2
        assert "is not REGION=KID" in capsys.readouterr().err


def test_old_request_replayed_after_the_list_in_force_is_refused(
    tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # JS's request for version 1, kept by someone, and replayed once version 1 is in force: its keys may have
    # been retired since, and the list in force still vouches for them
    sh, js = join(tmp_path, root, "SH", monkeypatch), join(tmp_path, root, "JS", monkeypatch)
    old_js = request(js, "JS", monkeypatch, name="js-v1.json")
    in_force = tmp_path / "trust.cwt"
    assert sign(root, in_force, request(sh, "SH", monkeypatch), old_js) == 0
    for home, region in ((sh, "SH"), (js, "JS")):
        assert cli(home, "trust-list", "import", str(in_force), monkeypatch=monkeypatch, region=region) == 0
    out = tmp_path / "next.cwt"
    capsys.readouterr()
    assert sign_out(root, out, request(sh, "SH", monkeypatch), old_js, current=in_force)[0] == 1
    assert not out.exists()
    err = capsys.readouterr().err
    assert "js-v1.json asks for version 1, but the trust list in force (--current) is already version 1" in err
    trust = parse_trust_list(in_force.read_bytes(), load_verification_key(root / "root.pub"), now=int(time.time()))
    with pytest.raises(InputError) as refused:
        plan_signing(merge_requests([old_js]), trust, {})
    assert refused.value.problem is Problem.TRUST_LIST_REQUEST_STALE
    # the region's fresh request is signed
    assert sign_out(root, out, request(sh, "SH", monkeypatch), request(js, "JS", monkeypatch), current=in_force)[0] == 0


def test_current_older_than_the_requests_show_is_refused(
    tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # an operator passing last month's list as --current: it may still trust a key retired since
    sh, js = joined_with_list_in_force(tmp_path, root, monkeypatch)
    v1 = tmp_path / "trust.cwt"
    v2 = tmp_path / "v2.cwt"
    assert sign_out(root, v2, request(sh, "SH", monkeypatch), request(js, "JS", monkeypatch), current=v1)[0] == 0
    for home, region in ((sh, "SH"), (js, "JS")):
        assert cli(home, "trust-list", "import", str(v2), monkeypatch=monkeypatch, region=region) == 0
    capsys.readouterr()
    out = tmp_path / "v3.cwt"
    assert sign_out(root, out, request(sh, "SH", monkeypatch), request(js, "JS", monkeypatch), current=v1)[0] == 1
    assert not out.exists()
    assert "holds a list newer than --current (version 1)" in capsys.readouterr().err
    trust = parse_trust_list(v1.read_bytes(), load_verification_key(root / "root.pub"), now=int(time.time()))
    with pytest.raises(InputError) as refused:
        plan_signing(merge_requests([request(sh, "SH", monkeypatch)]), trust, {})
    assert refused.value.problem is Problem.TRUST_LIST_CURRENT_OUTDATED
    assert sign_out(root, out, request(sh, "SH", monkeypatch), request(js, "JS", monkeypatch), current=v2)[0] == 0


def test_expired_current_is_named_and_the_operator_is_told_to_confirm_with_expect(
    tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sh = join(tmp_path, root, "SH", monkeypatch)
    root_key = load_signing_key(root / "root.key")
    old = tmp_path / "old.cwt"
    old.write_bytes(sign_trust_list([], root_key, version=1, now=1_000_000, ttl=3600))
    capsys.readouterr()
    assert sign_out(root, tmp_path / "t.cwt", request(sh, "SH", monkeypatch), current=old)[0] == 1
    err = capsys.readouterr().err
    assert "the trust list given with --current (version 1) expired at 1003600" in err and "--expect" in err
    assert "Traceback" not in err


def test_old_key_that_no_longer_opens_is_left_out_of_the_request_with_a_warning(
    tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _, js = joined_with_list_in_force(tmp_path, root, monkeypatch)
    old_file = next((js / "keys").glob("issuer-*.key"))
    old_kid = json.loads(request(js, "JS", monkeypatch).read_text())["entries"][0]["kid"]
    assert cli(js, "keys", "rotate", monkeypatch=monkeypatch, region="JS") == 0
    old_file.write_text("-----BEGIN PRIVATE KEY-----\ndamaged\n-----END PRIVATE KEY-----\n")
    capsys.readouterr()
    rotated = request(js, "JS", monkeypatch)
    err = capsys.readouterr().err
    assert f"old key {old_kid} cannot vouch for the new key" in err and "--expect" in err
    assert "vouched_by" not in json.loads(rotated.read_text())
    # the root's operator confirms the new key instead
    new_kid = json.loads(rotated.read_text())["proof"]["kid"]
    current = tmp_path / "trust.cwt"
    assert sign_out(root, tmp_path / "t.cwt", rotated, current=current)[0] == 1
    assert sign_out(root, tmp_path / "t.cwt", rotated, current=current, expect=f"JS={new_kid}")[0] == 0
